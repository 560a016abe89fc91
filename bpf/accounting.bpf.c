// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * accounting: TCP and UDP calls and bytes per thread, from the sock_send_length and
 * sock_recv_length tracepoints (Linux >= 6.3).
 *
 * Hot path: one array lookup by TID (the verifier inlines it to an address computation),
 * a check that this thread owns the slot, and two plain increments. No hash lookup per
 * process, thread or cgroup: the slot carries its thread's process and cgroup, and
 * processes and cgroups are sums that user space makes. A thread whose slot is owned by
 * another thread (TIDs equal modulo NETACCT_SLOTS) counts in task local storage, which is
 * exact too but costs ~20 ns more per event. Only the owning thread writes its counters,
 * so plain increments are exact without atomics.
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
/* Slots - 1; user space may size the slot array to another power of two before load. */
const volatile __u32 slot_mask = NETACCT_SLOTS - 1;

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct netacct_thread_state);
} threads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, NETACCT_SLOTS);
	__type(key, __u32);
	__type(value, struct netacct_slot);
} slots SEC(".maps");

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

/* Makes sure the process's group leader has state, so that the iterator sees the process. */
static __always_inline void mark_process(struct task_struct *task)
{
	if (task->group_leader != task)
		bpf_task_storage_get(&threads, task->group_leader, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
}

/* The calling thread's counters in task local storage (the slow path), created if needed. */
static __noinline struct netacct_counters *storage_counters(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct netacct_thread_state *s;

	s = bpf_task_storage_get(&threads, task, 0, 0);
	if (s)
		return &s->counters;
	s = bpf_task_storage_get(&threads, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s) {
		stat_inc(NETACCT_STAT_STORAGE_FAILED);
		return 0;
	}
	s->cgroup_id = bpf_get_current_cgroup_id();
	mark_process(task);
	return &s->counters;
}

/* Claims a free slot for the calling thread; returns its counters, or the slow path's. */
static __noinline struct netacct_counters *claim(struct netacct_slot *slot, __u32 tid)
{
	struct task_struct *task;

	if (slot->tid != 0 || __sync_val_compare_and_swap(&slot->tid, 0, tid) != 0)
		return storage_counters();
	task = bpf_get_current_task_btf();
	slot->tgid = task->tgid;
	slot->thread_start_ns = task->start_time;
	slot->cgroup_id = bpf_get_current_cgroup_id();
	mark_process(task);
	/* The leader's own state (if this is the leader) keeps the process visible. */
	if (task->group_leader == task)
		bpf_task_storage_get(&threads, task, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	return &slot->counters;
}

/* The calling thread's counters: its slot when it owns one (nearly always). */
static __always_inline struct netacct_counters *current_counters(void)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__u32 key = tid & slot_mask;
	struct netacct_slot *slot = bpf_map_lookup_elem(&slots, &key);

	if (!slot)
		return 0;
	if (slot->tid == tid)
		return &slot->counters;
	return claim(slot, tid);
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
	struct netacct_counters *c;
	int kind;

	if (ret <= 0)
		return 0;
	if (only_tgid && (bpf_get_current_pid_tgid() >> 32) != only_tgid)
		return 0;
	kind = classify(sk);
	if (!kind)
		return 0;
	c = current_counters();
	if (!c)
		return 0;
	if (kind == 1) {
		c->tcp_tx_packets += 1;
		c->tcp_tx_bytes += ret;
	} else {
		c->udp_tx_packets += 1;
		c->udp_tx_bytes += ret;
	}
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(count_recv, struct sock *sk, int ret, int flags)
{
	struct netacct_counters *c;
	int kind;

	if (ret <= 0 || (flags & (MSG_PEEK | MSG_ERRQUEUE)))
		return 0;
	if (only_tgid && (bpf_get_current_pid_tgid() >> 32) != only_tgid)
		return 0;
	kind = classify(sk);
	if (!kind)
		return 0;
	c = current_counters();
	if (!c)
		return 0;
	if (kind == 1) {
		c->tcp_rx_packets += 1;
		c->tcp_rx_bytes += ret;
	} else {
		c->udp_rx_packets += 1;
		c->udp_rx_bytes += ret;
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

static __always_inline void add_counters(struct netacct_counters *to, const struct netacct_counters *from)
{
	to->tcp_tx_packets += from->tcp_tx_packets;
	to->tcp_tx_bytes += from->tcp_tx_bytes;
	to->tcp_rx_packets += from->tcp_rx_packets;
	to->tcp_rx_bytes += from->tcp_rx_bytes;
	to->udp_tx_packets += from->udp_tx_packets;
	to->udp_tx_bytes += from->udp_tx_bytes;
	to->udp_rx_packets += from->udp_rx_packets;
	to->udp_rx_bytes += from->udp_rx_bytes;
}

/* The slot `task` owns, if any. */
static __always_inline struct netacct_slot *owned_slot(struct task_struct *task)
{
	__u32 tid = task->pid;
	__u32 key = tid & slot_mask;
	struct netacct_slot *slot = bpf_map_lookup_elem(&slots, &key);

	if (!slot || slot->tid != tid || slot->thread_start_ns != task->start_time)
		return 0;
	return slot;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(record_exit, struct task_struct *task)
{
	struct netacct_thread_state *s, *leader_state;
	struct netacct_exit_record rec = {};
	struct netacct_task_id id = {};
	bool process_exited = task->signal->live.counter == 0;
	struct netacct_slot *slot = owned_slot(task);

	s = bpf_task_storage_get(&threads, task, 0, 0);
	if (s) {
		add_counters(&rec.counters, &s->counters);
		rec.cgroup_id = s->cgroup_id;
	} else if (!slot) {
		/* A silent last thread still has to report the end of a counted process. */
		if (!process_exited)
			return 0;
		leader_state = bpf_task_storage_get(&threads, task->group_leader, 0, 0);
		if (!leader_state)
			return 0;
		rec.cgroup_id = leader_state->cgroup_id;
	}
	if (slot) {
		add_counters(&rec.counters, &slot->counters);
		rec.cgroup_id = slot->cgroup_id;
	}
	fill_id(&id, task);
	rec.exit_ns = bpf_ktime_get_ns();
	rec.process_exited = process_exited;
	BPF_CORE_READ_STR_INTO(&rec.comm, task, comm);
	BPF_CORE_READ_STR_INTO(&rec.process_comm, task, group_leader, comm);
	if (bpf_map_update_elem(&ledger, &id, &rec, BPF_NOEXIST))
		stat_inc(NETACCT_STAT_LEDGER_FULL);
	else if (s)
		s->exited = 1;
	if (slot) {
		/* Free the slot for the next thread: clear it, then release the owner field last. */
		__builtin_memset(&slot->counters, 0, sizeof(slot->counters));
		slot->tgid = 0;
		slot->thread_start_ns = 0;
		slot->cgroup_id = 0;
		__sync_fetch_and_and(&slot->tid, 0);
	}
	return 0;
}

SEC("iter/task")
int dump_threads(struct bpf_iter__task *ctx)
{
	struct seq_file *seq = ctx->meta->seq;
	struct task_struct *task = ctx->task;
	struct netacct_thread_state *s;
	struct netacct_slot *slot;
	struct netacct_thread_record r = {};

	if (!task)
		return 0;
	s = bpf_task_storage_get(&threads, task, 0, 0);
	slot = owned_slot(task);
	if (s) {
		r.exited = s->exited;
		r.cgroup_id = s->cgroup_id;
		if (!s->exited)
			add_counters(&r.counters, &s->counters);
	} else if (!slot) {
		return 0;
	}
	if (slot) {
		r.cgroup_id = slot->cgroup_id;
		add_counters(&r.counters, &slot->counters);
	}
	fill_id(&r.id, task);
	BPF_CORE_READ_STR_INTO(&r.comm, task, comm);
	BPF_CORE_READ_STR_INTO(&r.process_comm, task, group_leader, comm);
	bpf_seq_write(seq, &r, sizeof(r));
	return 0;
}
