// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * accounting: TCP and UDP calls and bytes per thread, from the sock_send_length and
 * sock_recv_length tracepoints (Linux >= 6.3).
 *
 * Hot path: one array lookup by TID (the verifier inlines it to an address computation),
 * one compare that this thread owns the slot, and two plain increments. No hash lookup per
 * process, thread or cgroup: the slot carries its thread's process and cgroup, and
 * processes and cgroups are sums that user space makes. A thread whose slot another thread
 * owns (TIDs equal modulo the array size) counts in the overflow hash: exact too, slower.
 *
 * Exit: sched_process_exit moves a thread's final counters into the exit ledger (a hash
 * keyed by thread identity) and frees its slot; the last thread of a process marks the
 * process exited and takes it out of the registry.
 *
 * Reading needs no walk over the kernel's tasks: user space maps the slot array read-only
 * and reads the registry, the overflow hash and the ledger in batches.
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
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, NETACCT_SLOTS);
	__type(key, __u32);
	__type(value, struct netacct_slot);
} slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, NETACCT_OVERFLOW_ENTRIES);
	__type(key, __u32);
	__type(value, struct netacct_slot);
} overflow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, NETACCT_PROCESS_ENTRIES);
	__type(key, __u32);
	__type(value, struct netacct_process);
} processes SEC(".maps");

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

/* Fills a slot's identity for the calling thread; thread_start_ns last, as "ready". */
static __always_inline void fill_identity(struct netacct_slot *slot, struct task_struct *task)
{
	slot->tgid = task->tgid;
	slot->process_start_ns = task->group_leader->start_time;
	slot->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(&slot->comm, sizeof(slot->comm));
	barrier();
	slot->thread_start_ns = task->start_time;
}

/* Puts the calling thread's process in the registry (once per process). */
static __always_inline void register_process(struct task_struct *task, __u64 cgroup_id)
{
	struct netacct_process process = {};
	__u32 tgid = task->tgid;
	long err;

	process.start_ns = task->group_leader->start_time;
	process.cgroup_id = cgroup_id;
	BPF_CORE_READ_STR_INTO(&process.comm, task, group_leader, comm);
	err = bpf_map_update_elem(&processes, &tgid, &process, BPF_NOEXIST);
	if (!err)
		stat_inc(NETACCT_STAT_REGISTRY_CHANGES);
	else if (err != -17 /* EEXIST */)
		stat_inc(NETACCT_STAT_REGISTRY_FULL);
}

/* The calling thread's entry in the overflow hash, created if needed. */
static __noinline struct netacct_counters *overflow_counters(__u32 tid)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct netacct_slot *entry, fresh = {};

	entry = bpf_map_lookup_elem(&overflow, &tid);
	if (entry)
		return &entry->counters;
	fresh.tid = tid;
	fill_identity(&fresh, task);
	bpf_map_update_elem(&overflow, &tid, &fresh, BPF_NOEXIST);
	entry = bpf_map_lookup_elem(&overflow, &tid);
	if (!entry) {
		stat_inc(NETACCT_STAT_OVERFLOW_FULL);
		return 0;
	}
	register_process(task, fresh.cgroup_id);
	return &entry->counters;
}

/* Claims a free slot for the calling thread, or falls back to the overflow hash. */
static __noinline struct netacct_counters *claim(struct netacct_slot *slot, __u32 tid)
{
	struct task_struct *task;

	if (slot->tid != 0 || __sync_val_compare_and_swap(&slot->tid, 0, tid) != 0)
		return overflow_counters(tid);
	task = bpf_get_current_task_btf();
	fill_identity(slot, task);
	register_process(task, slot->cgroup_id);
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

SEC("tp_btf/sched_process_exit")
int BPF_PROG(record_exit, struct task_struct *task)
{
	struct netacct_exit_record rec = {};
	struct netacct_task_id id = {};
	struct netacct_slot *slot, *entry;
	struct netacct_process *process = 0;
	bool process_exited = task->signal->live.counter == 0;
	__u32 tid = task->pid, tgid = task->tgid, key = tid & slot_mask;
	__u64 start = task->start_time;
	bool counted = false;

	slot = bpf_map_lookup_elem(&slots, &key);
	if (slot && (slot->tid != tid || slot->thread_start_ns != start))
		slot = 0;
	entry = bpf_map_lookup_elem(&overflow, &tid);
	if (entry && entry->thread_start_ns != start)
		entry = 0;
	if (process_exited) {
		process = bpf_map_lookup_elem(&processes, &tgid);
		if (process && process->start_ns != task->group_leader->start_time)
			process = 0;
	}
	if (slot) {
		add_counters(&rec.counters, &slot->counters);
		rec.cgroup_id = slot->cgroup_id;
		counted = true;
	}
	if (entry) {
		add_counters(&rec.counters, &entry->counters);
		rec.cgroup_id = entry->cgroup_id;
		counted = true;
	}
	if (process) {
		if (!counted)
			rec.cgroup_id = process->cgroup_id;
		counted = true;
	}
	/* Neither this thread nor, if it is the last, its process was ever counted. */
	if (!counted)
		return 0;

	id.tgid = tgid;
	id.tid = tid;
	id.process_start_ns = task->group_leader->start_time;
	id.thread_start_ns = start;
	rec.exit_ns = bpf_ktime_get_ns();
	rec.process_exited = process_exited;
	BPF_CORE_READ_STR_INTO(&rec.comm, task, comm);
	BPF_CORE_READ_STR_INTO(&rec.process_comm, task, group_leader, comm);
	if (bpf_map_update_elem(&ledger, &id, &rec, BPF_NOEXIST))
		stat_inc(NETACCT_STAT_LEDGER_FULL);

	if (slot) {
		/* Free the slot for the next thread: identity off first, the owner field last. */
		slot->thread_start_ns = 0;
		__builtin_memset(&slot->counters, 0, sizeof(slot->counters));
		__sync_fetch_and_and(&slot->tid, 0);
	}
	if (entry)
		bpf_map_delete_elem(&overflow, &tid);
	if (process && bpf_map_delete_elem(&processes, &tgid) == 0)
		stat_inc(NETACCT_STAT_REGISTRY_CHANGES);
	return 0;
}
