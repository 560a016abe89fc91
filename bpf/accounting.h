/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * accounting: the records shared by accounting.bpf.c and the Swift engine (NetacctCore).
 * This header is the only definition of their layout; Swift imports it through the
 * CNetacct module, and the BPF module checks every map's key and value sizes against the
 * Swift types at load, so the two sides cannot drift.
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
 * A live thread's counters. Most live in the `slots` array, indexed by TID modulo its size:
 * a thread claims the slot of its TID on its first counted call (compare-and-swap of `tid`)
 * and keeps it until it exits, when the exit hook moves the counters to the ledger and frees
 * the slot. A thread whose slot another thread owns lives in the `overflow` hash instead.
 * Only the owning thread writes its counters, so plain increments are exact. User space
 * reads the array through a read-only memory mapping and the hash in batches.
 */
struct netacct_slot {
	__u32 tid;               /* owner, 0 when free: the only field checked per event */
	__u32 tgid;
	__u64 process_start_ns;  /* group leader's start_time (CLOCK_MONOTONIC ns) */
	__u64 cgroup_id;         /* cgroup v2 id of the thread at its first counted call */
	char comm[NETACCT_COMM_LEN];
	struct netacct_counters counters;
	__u64 thread_start_ns;   /* written last when a slot is claimed: 0 means not ready */
	/*
	 * Per-socket counting only: the socket the thread last counted a call on (its cookie, which
	 * is never reused) and that socket's record for the thread's process, so that a call on the
	 * same socket needs no storage lookup. Cleared when the slot is claimed; 0: none.
	 */
	__u64 socket_cookie;
	__u32 socket_ref;
	__u32 _pad;
};

#define NETACCT_SLOTS 32768
#define NETACCT_OVERFLOW_ENTRIES 16384

/*
 * The registry of counted processes, keyed by TGID: one entry from a process's first counted
 * call to its exit, so user space knows which processes live without walking every task.
 * `threads` counts the process's counted threads that have not passed the exit hook yet: the
 * process is marked exited by the last of them (or by its last thread, if that one never
 * counted), so that no thread's final counters can reach the ledger after the process's.
 */
struct netacct_process {
	__u64 start_ns;
	__u64 cgroup_id;
	char comm[NETACCT_COMM_LEN];
	__u32 threads;           /* changed with atomic operations only */
	__u32 _pad;
};

#define NETACCT_PROCESS_ENTRIES 65536

/* Identity of a thread or process: an id is reused, an (id, start time) pair never is. */
struct netacct_task_id {
	__u32 tgid;
	__u32 tid;
	__u64 process_start_ns;
	__u64 thread_start_ns;
};

/*
 * The exit ledger: a hash keyed by thread identity. The exit hook moves an exiting thread's
 * final counters here; the last thread of a process sets process_exited (with zero counters
 * if it never talked itself). User space reads and deletes entries in one batch per sample.
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

#define NETACCT_LEDGER_ENTRIES 65536

/*
 * Per-socket counting (`top --connections`, `daemon --connections`): programs of their own,
 * loaded only when asked, so plain accounting keeps its cost. A socket as one process uses it
 * has a record: its identity in the `sockets` array (written once), its counters at the same
 * index of the per-CPU `socket_counters` array (plain increments, each CPU its own copy: exact
 * with threads sharing the socket, and no cache line moving between CPUs). The record is found
 * through the socket's local storage (its owner word), or, on a call on the thread's last
 * socket again, in the thread's slot (socket_cookie, socket_ref); a socket used by a second
 * process (an inherited or passed descriptor) has one more record per process, found through
 * the `shared_sockets` hash. Identity is the socket cookie, unique per socket until reboot: a
 * new connection on the same 4-tuple is a new socket, a new cookie and a new record that starts
 * from zero.
 *
 * A record is claimed from the `free_sockets` queue (records user space gave back) or, while
 * never-used ones remain, from the array's end; its fields are written first and `cookie`
 * last (0: free or being written). When the socket is released (close of its last
 * descriptor), cgroup/sock_release sets `closed`; user space reports the final counters once
 * and gives the record back: counters zeroed on every CPU, identity zeroed, its index pushed
 * onto `free_sockets`.
 */
struct netacct_socket {
	__u64 cookie;            /* written last when claimed: 0 means free */
	__u64 process_start_ns;  /* the owner process's identity, as in the slots */
	__u32 tgid;
	__u8 protocol;           /* IPPROTO_TCP or IPPROTO_UDP (MPTCP and UDP-Lite counted as these) */
	__u8 family;             /* AF_INET or AF_INET6 */
	__u8 closed;             /* set by the release program: the counters are final */
	__u8 shared;             /* a second (or later) process's record of the socket */
	__u8 laddr[16];          /* network order; IPv4 in the first 4 bytes */
	__u8 raddr[16];          /* all zero: not connected (an unconnected UDP socket) */
	__u16 lport;             /* host order */
	__u16 rport;             /* host order */
	__u32 _pad;
};

/* A record's counters on one CPU (user space sums the CPUs). */
struct netacct_socket_counters {
	__u64 tx_packets;
	__u64 tx_bytes;
	__u64 rx_packets;
	__u64 rx_bytes;
};

/*
 * A socket's local storage: (TGID << 32) | (record index + 1) of its first process; 0 before;
 * NETACCT_SOCKET_UNCOUNTED for a kernel socket (no file), which is not counted per socket.
 */
#define NETACCT_SOCKET_UNCOUNTED 0xffffffffULL
struct netacct_socket_owner {
	__u64 word;
};

/* The key of a socket's record for a process other than its owner. */
struct netacct_socket_user {
	__u64 cookie;
	__u32 tgid;
	__u32 _pad;
};

#define NETACCT_SOCKET_RECORDS 16384
#define NETACCT_SHARED_SOCKETS 4096

/* Indexes of the per-CPU statistics array: things that must never be silent. */
enum netacct_stat {
	NETACCT_STAT_OVERFLOW_FULL = 0,  /* a thread had no slot and no room in the overflow hash: its calls were not counted */
	NETACCT_STAT_LEDGER_FULL = 1,    /* an exiting thread's final counters did not fit in the ledger */
	NETACCT_STAT_REGISTRY_FULL = 2,  /* a process could not be registered: its exit may be noticed late */
	NETACCT_STAT_REGISTRY_CHANGES = 3, /* registry insertions and deletions: user space rereads it only after one */
	NETACCT_STAT_SOCKETS_FULL = 4,   /* a call counted for its thread but not per socket (no free socket record) */
	NETACCT_STAT_COUNT = 5,
};

#endif /* NETACCT_ACCOUNTING_H */
