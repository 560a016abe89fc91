/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * accounting: the records shared by accounting.bpf.c and the Swift engine (NetacctCore).
 * This header is the only definition of their layout; Swift imports it through the
 * CNetacct module and a test asserts each size, so the two sides cannot drift.
 */
#ifndef NETACCT_ACCOUNTING_H
#define NETACCT_ACCOUNTING_H

#ifndef __bpf__
#include <linux/types.h>
#endif

#define NETACCT_COMM_LEN 16

/* Socket-level traffic: a "packet" is one successful send or receive call, "bytes" its payload. */
struct netacct_counters {
	__u64 tcp_tx_packets;
	__u64 tcp_tx_bytes;
	__u64 tcp_rx_packets;
	__u64 tcp_rx_bytes;
	__u64 udp_tx_packets;
	__u64 udp_tx_bytes;
	__u64 udp_rx_packets;
	__u64 udp_rx_bytes;
};

/*
 * Per-thread state in task local storage: created when a thread cannot have a slot (below)
 * and for every counted process's group leader, so that the process stays visible to the
 * iterator while it lives. Written only by its thread; freed with the task.
 */
struct netacct_thread_state {
	struct netacct_counters counters;
	__u64 cgroup_id;   /* cgroup v2 id of the thread at its first counted call */
	__u32 exited;      /* set by the exit hook: the counters have moved to the ledger */
	__u32 _pad;
};

/*
 * The fast path: an array of slots indexed by TID modulo NETACCT_SLOTS. A thread claims
 * the slot of its TID on its first counted call (compare-and-swap of `tid`) and keeps it
 * until it exits; then the exit hook moves the counters to the ledger and frees the slot.
 * A thread whose slot is taken by another thread counts in task local storage instead.
 * Only the owner writes a slot, so plain increments are exact.
 */
struct netacct_slot {
	__u32 tid;              /* owner, 0 when free: the only field checked per event */
	__u32 tgid;
	__u64 thread_start_ns;  /* owner's identity, written after the claim */
	__u64 cgroup_id;
	struct netacct_counters counters;
};

#define NETACCT_SLOTS 32768

/* Identity of a thread or process: an id is reused, an (id, start time) pair never is. */
struct netacct_task_id {
	__u32 tgid;
	__u32 tid;
	__u64 process_start_ns; /* group leader's start_time (CLOCK_MONOTONIC ns) */
	__u64 thread_start_ns;  /* this thread's start_time */
};

/* One record per thread with state, written by the iter/task program. */
struct netacct_thread_record {
	struct netacct_task_id id;
	struct netacct_counters counters;
	__u64 cgroup_id;
	__u32 exited;
	__u32 _pad;
	char comm[NETACCT_COMM_LEN];         /* the thread's name */
	char process_comm[NETACCT_COMM_LEN]; /* the group leader's name */
};

/*
 * The exit ledger: a hash keyed by thread identity. The exit hook moves an exiting
 * thread's final counters here; the last thread of a process sets process_exited.
 * User space reads and deletes entries in one batch per sample.
 */
struct netacct_exit_record {
	struct netacct_counters counters;
	__u64 cgroup_id;
	__u64 exit_ns;
	__u32 process_exited;
	__u32 _pad;
	char comm[NETACCT_COMM_LEN];
	char process_comm[NETACCT_COMM_LEN];
};

/* Indexes of the per-CPU statistics array: things that must never be silent. */
enum netacct_stat {
	NETACCT_STAT_STORAGE_FAILED = 0, /* a thread's state could not be created: its calls were not counted */
	NETACCT_STAT_LEDGER_FULL = 1,    /* an exiting thread's final counters did not fit in the ledger */
	NETACCT_STAT_COUNT = 2,
};

#define NETACCT_LEDGER_ENTRIES 65536

#endif /* NETACCT_ACCOUNTING_H */
