// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * accounting: TCP and UDP calls and bytes per thread, from the sock_send_length and
 * sock_recv_length tracepoints (Linux >= 6.3).
 *
 * Hot path: one task-local-storage lookup (the kernel caches it in the task) and two
 * plain increments. No hash lookup per process, thread or cgroup: the thread's state
 * carries its cgroup, and processes and cgroups are sums that user space makes.
 * Only the owning thread writes its state, so plain increments are exact without atomics.
 *
 * Exit: sched_process_exit moves a thread's final counters into the exit ledger (a hash
 * keyed by thread identity) and marks the state exited; the last thread of a process
 * also marks the process as exited, so user space can report it once more.
 *
 * Reading: the iter/task program writes one record per thread that has state.
 */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "accounting.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Non-zero: count only this process (set before load; the verifier drops the test when 0). */
const volatile __u32 only_tgid = 0;

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct netacct_thread_state);
} threads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, NETACCT_LEDGER_ENTRIES);
	__type(key, struct netacct_task_id);
	__type(value, struct netacct_exit_record);
} ledger SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NETACCT_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void stat_inc(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &which);

	if (v)
		*v += 1;
}

/* The calling thread's state, created on its first counted call. */
static __always_inline struct netacct_thread_state *current_state(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct netacct_thread_state *s;

	s = bpf_task_storage_get(&threads, task, 0, 0);
	if (s)
		return s;
	s = bpf_task_storage_get(&threads, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s) {
		stat_inc(NETACCT_STAT_STORAGE_FAILED);
		return 0;
	}
	s->cgroup_id = bpf_get_current_cgroup_id();
	/*
	 * Give the group leader state too, so that the process stays visible to the
	 * iterator (and its exit is recorded) even when only other threads talk.
	 */
	if (task->group_leader != task)
		bpf_task_storage_get(&threads, task->group_leader, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	return s;
}

/* Returns 1 for TCP (and MPTCP), 2 for UDP (and UDP-Lite), 0 for everything else. */
static __always_inline int classify(struct sock *sk)
{
	__u16 family = sk->__sk_common.skc_family;
	__u16 protocol;

	if (family != AF_INET && family != AF_INET6)
		return 0;
	protocol = sk->sk_protocol;
	if (protocol == IPPROTO_TCP || protocol == IPPROTO_MPTCP)
		return 1;
	if (protocol == IPPROTO_UDP || protocol == IPPROTO_UDPLITE)
		return 2;
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(count_send, struct sock *sk, int ret, int flags)
{
	struct netacct_thread_state *s;
	int kind;

	if (ret <= 0)
		return 0;
	if (only_tgid && (bpf_get_current_pid_tgid() >> 32) != only_tgid)
		return 0;
	kind = classify(sk);
	if (!kind)
		return 0;
	s = current_state();
	if (!s)
		return 0;
	if (kind == 1) {
		s->counters.tcp_tx_packets += 1;
		s->counters.tcp_tx_bytes += ret;
	} else {
		s->counters.udp_tx_packets += 1;
		s->counters.udp_tx_bytes += ret;
	}
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(count_recv, struct sock *sk, int ret, int flags)
{
	struct netacct_thread_state *s;
	int kind;

	if (ret <= 0 || (flags & (MSG_PEEK | MSG_ERRQUEUE)))
		return 0;
	if (only_tgid && (bpf_get_current_pid_tgid() >> 32) != only_tgid)
		return 0;
	kind = classify(sk);
	if (!kind)
		return 0;
	s = current_state();
	if (!s)
		return 0;
	if (kind == 1) {
		s->counters.tcp_rx_packets += 1;
		s->counters.tcp_rx_bytes += ret;
	} else {
		s->counters.udp_rx_packets += 1;
		s->counters.udp_rx_bytes += ret;
	}
	return 0;
}

static __always_inline void fill_id(struct netacct_task_id *id, struct task_struct *task)
{
	id->tgid = task->tgid;
	id->tid = task->pid;
	id->process_start_ns = task->group_leader->start_time;
	id->thread_start_ns = task->start_time;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(record_exit, struct task_struct *task)
{
	struct netacct_thread_state *s, *leader_state = 0;
	struct netacct_exit_record rec = {};
	struct netacct_task_id id = {};
	bool process_exited = task->signal->live.counter == 0;

	s = bpf_task_storage_get(&threads, task, 0, 0);
	if (s) {
		rec.counters = s->counters;
		rec.cgroup_id = s->cgroup_id;
	} else {
		/* A silent last thread still has to report the end of a counted process. */
		if (!process_exited)
			return 0;
		leader_state = bpf_task_storage_get(&threads, task->group_leader, 0, 0);
		if (!leader_state)
			return 0;
		rec.cgroup_id = leader_state->cgroup_id;
	}
	fill_id(&id, task);
	rec.exit_ns = bpf_ktime_get_ns();
	rec.process_exited = process_exited;
	BPF_CORE_READ_STR_INTO(&rec.comm, task, comm);
	BPF_CORE_READ_STR_INTO(&rec.process_comm, task, group_leader, comm);
	if (bpf_map_update_elem(&ledger, &id, &rec, BPF_NOEXIST)) {
		stat_inc(NETACCT_STAT_LEDGER_FULL);
		return 0;
	}
	if (s)
		s->exited = 1;
	return 0;
}

SEC("iter/task")
int dump_threads(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct netacct_thread_state *s;
	struct netacct_thread_record r = {};

	if (!task)
		return 0;
	s = bpf_task_storage_get(&threads, task, 0, 0);
	if (!s)
		return 0;
	fill_id(&r.id, task);
	r.counters = s->counters;
	r.cgroup_id = s->cgroup_id;
	r.exited = s->exited;
	BPF_CORE_READ_STR_INTO(&r.comm, task, comm);
	BPF_CORE_READ_STR_INTO(&r.process_comm, task, group_leader, comm);
	bpf_seq_write(seq, &r, sizeof(r));
	return 0;
}
