/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * drops: the records shared by drops.bpf.c and the Swift Drops module. This header is the only
 * definition of their layout (Swift imports it through CNetacct).
 */
#ifndef NETACCT_DROPS_H
#define NETACCT_DROPS_H

#ifndef __bpf__
#include <linux/types.h>
#endif

/*
 * Drop reasons below this number are filtered by a bitmap (the kernel has about a hundred; a
 * subsystem's own reasons, numbered from 1 << 16, pass only with every reason asked for).
 */
#define NETACCT_DROPS_REASONS 256
#define NETACCT_DROPS_REASON_WORDS (NETACCT_DROPS_REASONS / 64)

/* Owners (-p) filtered in the kernel at once. */
#define NETACCT_DROPS_PIDS 16
#define NETACCT_DROPS_COMM_LEN 16

/* Who holds a socket, by its inode: the process that bound, listened, connected, accepted or
 * first sent on it (or held it when netacct started), and the cgroup v2 it was in then. */
struct netacct_drop_owner {
	__u64 cgroup;
	__u32 pid;
	char comm[NETACCT_DROPS_COMM_LEN];
	__u8 padding[4];
};

/* One dropped packet. Addresses in network order, ports in host order. */
struct netacct_drop_event {
	__u64 time_ns;		/* CLOCK_MONOTONIC */
	__u64 socket_inode;	/* the socket it was for (its owner is found by it), 0: none */
	__u32 reason;		/* enum skb_drop_reason, as numbered by the running kernel */
	__u32 ifindex;		/* where it came in */
	__u8 saddr[16];		/* IPv4 in the first 4 bytes */
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 family;		/* AF_INET or AF_INET6 */
	__u8 protocol;		/* IPPROTO_TCP or IPPROTO_UDP */
	__u8 state;		/* the socket's TCP state, 0: no socket or not TCP */
	__u32 netns;		/* the network namespace's inode number (ifindex is its) */
	__u32 padding;
};

/* What --summary counts by, in the kernel. */
struct netacct_drop_key {
	__u64 socket_inode;
	__u32 reason;
	__u32 netns;		/* the network namespace's inode number */
	__u8 protocol;
	__u8 padding[7];
};

/* The `totals` per-CPU array: reason * 2 + (UDP ? 1 : 0), for reasons below NETACCT_DROPS_REASONS. */
#define NETACCT_DROPS_TOTALS (NETACCT_DROPS_REASONS * 2)

/* Indexes of the `counters` per-CPU array. */
enum netacct_drops_counter {
	NETACCT_DROPS_LOST = 0,		/* events the ring buffer had no room for */
	NETACCT_DROPS_UNKEYED = 1,	/* summary counts with no room in `counts` (still in `totals`) */
	NETACCT_DROPS_COUNTERS = 2,
};

#endif /* NETACCT_DROPS_H */
