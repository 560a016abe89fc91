/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * latency: the records shared by latency_in.bpf.c, latency_out.bpf.c and the Swift Latency
 * module. This header is the only definition of their layout (Swift imports it through
 * CNetacct).
 *
 * A followed TCP segment is timed where it enters each layer; a stage is the time between two
 * of those points:
 *
 *   in:  netif_receive_skb -MAC-> netfilter PRE_ROUTING -IP-> tcp_probe -TCP-> copied to the
 *        application (skb_copy_datagram_iovec)
 *   out: tcp_sendmsg_locked -TCP-> netfilter LOCAL_OUT -IP-> net_dev_queue -QDISC->
 *        net_dev_start_xmit
 *
 * A point the segment did not pass leaves the stage that ends there missed (a bit in `missed`):
 * its time is counted in the next stage, so the stages always add up to the total.
 */
#ifndef NETACCT_LATENCY_H
#define NETACCT_LATENCY_H

#ifndef __bpf__
#include <linux/types.h>
#endif

#define NETACCT_LATENCY_STAGES 3	/* and the total, after them in a histogram */
#define NETACCT_LATENCY_POINTS (NETACCT_LATENCY_STAGES + 1)
#define NETACCT_LATENCY_PIDS 16
#define NETACCT_LATENCY_COMM_LEN 16

enum netacct_latency_direction {
	NETACCT_LATENCY_IN = 0,
	NETACCT_LATENCY_OUT = 1,
};

/* A received segment TCP has not taken yet, or has and the application has not read. */
struct netacct_latency_pending {
	__u32 seq;
	__u32 ack;
	__u64 time_ns[NETACCT_LATENCY_STAGES];	/* device, IP, TCP (CLOCK_MONOTONIC); 0: not passed */
};

/*
 * A connection as its received packets have it: the peer is the source. Addresses in network
 * order (IPv4 in the first 4 bytes), ports in host order.
 */
struct netacct_latency_flow {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 sport;
	__u16 dport;
	__u16 family;		/* AF_INET or AF_INET6 */
	__u16 padding;
	__u32 netns;		/* the namespace's inode: one 4-tuple can be in two */
};

/*
 * Per connection, the segments delivered to it (netfilter's LOCAL_IN) that TCP has not taken
 * yet: at once in the same call chain, or from the backlog when the socket's owner held it,
 * maybe merged (the `arriving` hash, by the connection's addresses and ports, which LOCAL_IN
 * reads from the packet and tcp_probe from the socket: a netfilter program has no socket
 * storage, and on loopback no socket is known yet at LOCAL_IN). In sequence order.
 */
#define NETACCT_LATENCY_ARRIVING_SLOTS 16
struct netacct_latency_arriving {
	__u32 head;
	__u32 tail;
	struct netacct_latency_pending slot[NETACCT_LATENCY_ARRIVING_SLOTS];
};

/* Per socket (socket-local storage), in sequence order: the application reads in order. */
#define NETACCT_LATENCY_SOCKET_SLOTS 64
struct netacct_latency_socket {
	__u32 head;		/* the next to leave: slot[head % SLOTS] */
	__u32 tail;		/* the next free */
	__u16 unwanted;		/* its reader is not one of the -p processes: follow nothing of it */
	__u16 ended;		/* a segment was ended: last_seq is its sequence number */
	__u32 last_seq;		/* what the application read last began there: a copy again is not new */
	struct netacct_latency_pending slot[NETACCT_LATENCY_SOCKET_SLOTS];
};

/*
 * A segment on its way out, from the send that started it at `seq` (write_seq then) until the
 * driver has it. The transmit path may merge buffers (tcp_grow_skb) or split them, so a packet
 * carries every waiting segment whose first byte it holds: [its seq, its end).
 */
struct netacct_latency_sent {
	__u32 seq;
	__u32 pid;		/* the sender (TGID) */
	__u32 ack;		/* as the packet carrying it at the IP point had it */
	__u32 padding;
	__u64 time_ns[NETACCT_LATENCY_STAGES];	/* sendmsg, IP, device queue */
	char comm[NETACCT_LATENCY_COMM_LEN];
};

/*
 * Per socket (the `sending` hash, by the struct sock's address: the netfilter point has no
 * socket storage), in sequence order, as a socket sends new data. Each point has its own next
 * slot; slots [head, tail) wait.
 */
#define NETACCT_LATENCY_SENDING_SLOTS 64
struct netacct_latency_sending {
	__u32 head;		/* the next to reach the driver: it leaves then */
	__u32 queued;		/* the next to reach the device queue */
	__u32 routed;		/* the next to pass IP */
	__u32 tail;		/* the next free */
	struct netacct_latency_sent slot[NETACCT_LATENCY_SENDING_SLOTS];
};

/*
 * One reported segment. For `in` the source is the peer; for `out` the source is this host,
 * as the socket has it, and nat_* what it became on the wire (source NAT), 0 when unchanged.
 * pid/comm: for `in` the process that read it, for `out` the one that sent it.
 */
struct netacct_latency_event {
	__u64 time_ns;		/* the first point (CLOCK_MONOTONIC) */
	__u64 stage_ns[NETACCT_LATENCY_STAGES];
	__u64 total_ns;
	__u32 pid;
	__u32 seq;
	__u32 ack;
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u16 nat_port;
	__u8 direction;		/* enum netacct_latency_direction */
	__u8 missed;		/* bit i: stage i's end was not seen (its time is in stage i + 1) */
	__u8 padding[2];
	__u8 saddr[16];
	__u8 daddr[16];
	__u8 nat_addr[16];
	char comm[NETACCT_LATENCY_COMM_LEN];
	__u32 netns;		/* the network namespace's inode number */
	__u32 padding2;
};

/*
 * --hist: per stage (and the total, last) a log-linear histogram of nanoseconds, four buckets
 * per power of two: bucket b < 4 holds b ns; above, with l = b / 4 + 1 and s = b % 4, it holds
 * [2^l + s * 2^(l-2), 2^l + (s + 1) * 2^(l-2)). The last bucket holds everything above.
 */
#define NETACCT_LATENCY_BUCKETS 160
struct netacct_latency_histogram {
	__u64 count;
	__u64 sum_ns;
	__u64 max_ns;
	__u64 buckets[NETACCT_LATENCY_BUCKETS];
};

/* The `histograms` per-CPU array has two of these: the programs fill the one `generation` names. */
struct netacct_latency_histograms {
	struct netacct_latency_histogram stage[NETACCT_LATENCY_POINTS];
};

/* Indexes of the `counters` per-CPU array. */
enum netacct_latency_counter {
	NETACCT_LATENCY_LOST = 0,		/* reports the ring buffer had no room for */
	NETACCT_LATENCY_TABLE_FULL = 1,		/* sampled segments not followed: `arriving` or `sending` full */
	NETACCT_LATENCY_SOCKET_FULL = 2,	/* not followed: their socket had 64 followed waiting */
	NETACCT_LATENCY_DROPPED = 3,		/* followed segments the kernel dropped on the way */
	NETACCT_LATENCY_LEFT = 4,		/* in: followed segments that left the path before a socket (forwarded, no socket) */
	NETACCT_LATENCY_NAMESPACES_FULL = 5,	/* --hist, every namespace: segments of a namespace with no histograms left */
	NETACCT_LATENCY_COUNTERS = 6,
};

/*
 * --hist in every namespace (-A): the `namespace_histograms` hash, a generation's histograms per
 * namespace, for this many namespaces at once (per generation).
 */
struct netacct_latency_namespace_key {
	__u32 generation;	/* 0 or 1: the half of `histograms` it stands for */
	__u32 netns;		/* the namespace's inode number */
};

#define NETACCT_LATENCY_NAMESPACES 256

#endif /* NETACCT_LATENCY_H */
