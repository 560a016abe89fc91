/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * connections: the records shared by connections.bpf.c and the Swift Connections module.
 * This header is the only definition of their layout (Swift imports it through CNetacct).
 */
#ifndef NETACCT_CONNECTIONS_H
#define NETACCT_CONNECTIONS_H

#ifndef __bpf__
#include <linux/types.h>
#endif

/* Filter capacities: processes (-p) and ports (-P) given at once. */
#define NETACCT_CONNECTIONS_PIDS 16
#define NETACCT_CONNECTIONS_PORTS 16
#define NETACCT_CONNECTIONS_COMM_LEN 16

/* What an event reports; the `kinds` filter is a mask of (1 << kind). */
enum netacct_connection_kind {
	NETACCT_CONNECTION_CONNECT = 0,	/* an outbound connection established */
	NETACCT_CONNECTION_ACCEPT = 1,	/* an inbound connection returned by accept() */
	NETACCT_CONNECTION_FAILED = 2,	/* a connect that ended before it was established */
	NETACCT_CONNECTION_CLOSE = 3,	/* an established connection closed */
	NETACCT_CONNECTION_NONE = 255,	/* (a thread inside connect() with no failure yet) */
};

/* Who opened a connection; the `directions` filter is a mask of (1 << direction). */
enum netacct_connection_direction {
	NETACCT_CONNECTION_OUTBOUND = 0,	/* connect() */
	NETACCT_CONNECTION_INBOUND = 1,		/* accept() */
	NETACCT_CONNECTION_UNKNOWN = 2,		/* established before netacct started */
};

/* Which of an event's optional fields are known. */
enum {
	NETACCT_CONNECTION_HAS_PROCESS = 1 << 0,	/* pid, tid, comm, cgroup */
	NETACCT_CONNECTION_HAS_LATENCY = 1 << 1,	/* latency_us */
	NETACCT_CONNECTION_HAS_DURATION = 1 << 2,	/* duration_ns (close) */
};

/* One event, as the ring buffer carries it. Addresses in network order, ports in host order. */
struct netacct_connection_event {
	__u64 time_ns;		/* CLOCK_MONOTONIC (bpf_ktime_get_ns) */
	__u64 cgroup;		/* the caller's cgroup v2 id */
	__u64 duration_ns;	/* close: established to closed */
	__u64 tx_bytes;		/* close: payload bytes sent and acknowledged */
	__u64 rx_bytes;		/* close: payload bytes received */
	__u32 pid;		/* the caller's process (TGID) */
	__u32 tid;		/* the caller's thread */
	__u32 latency_us;	/* the handshake: SYN sent, or SYN-ACK sent, to established */
	__s32 error;		/* failed: the socket's error (0: closed before it was established) */
	__u8 laddr[16];		/* IPv4 in the first 4 bytes */
	__u8 raddr[16];
	__u16 lport;
	__u16 rport;
	__u16 family;		/* AF_INET or AF_INET6 */
	__u8 kind;		/* enum netacct_connection_kind */
	__u8 direction;		/* enum netacct_connection_direction */
	__u8 known;		/* NETACCT_CONNECTION_HAS_* */
	__u8 padding[7];
	char comm[NETACCT_CONNECTIONS_COMM_LEN];	/* the caller's thread's name */
	char process_comm[NETACCT_CONNECTIONS_COMM_LEN];	/* its process's (group leader's) name */
};

/* A thread's state across connect() (task storage): inside it, and a failure kept for its exit. */
struct netacct_connecting {
	__u8 inside;
	__u8 padding[7];
	struct netacct_connection_event pending;	/* kind NETACCT_CONNECTION_NONE: none */
};

/* What the kernel side knows of a connection it follows, keyed by its struct sock. */
struct netacct_connection {
	__u64 start_ns;		/* connect: SYN sent; then: established */
	__u64 cgroup;
	__u32 pid;
	__u32 tid;
	__u32 latency_us;
	__u8 direction;
	__u8 known;		/* NETACCT_CONNECTION_HAS_*: duration means start_ns is the establishment */
	__u8 padding[2];
	char comm[NETACCT_CONNECTIONS_COMM_LEN];
	char process_comm[NETACCT_CONNECTIONS_COMM_LEN];
};

/* Indexes of the `counters` per-CPU array: what the kernel side could not do. */
enum netacct_connections_counter {
	NETACCT_CONNECTIONS_LOST = 0,		/* events dropped: the ring buffer was full */
	NETACCT_CONNECTIONS_UNTRACKED = 1,	/* connections not followed: the table was full */
	NETACCT_CONNECTIONS_COUNTERS = 2,
};

#endif /* NETACCT_CONNECTIONS_H */
