/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * tcp_health: the records shared by tcp_health.bpf.c and the Swift engine (TCPHealthEngine).
 * This header is the only definition of their layout (Swift imports it through CNetacct).
 */
#ifndef NETACCT_TCP_HEALTH_H
#define NETACCT_TCP_HEALTH_H

#ifndef __bpf__
#include <linux/types.h>
#endif

#define NETACCT_TCP_COMM_LEN 16

/*
 * Why a segment was sent again, as the kernel tells it at tcp_retransmit_skb: the socket's
 * congestion state then (Loss after a retransmission timeout, Recovery after duplicate
 * acknowledgements or SACK), a SYN flag, or the listener of a request socket's SYN-ACK.
 */
enum netacct_tcp_cause {
	NETACCT_TCP_CAUSE_TIMEOUT = 0,	/* RTO: the Loss state */
	NETACCT_TCP_CAUSE_FAST = 1,	/* fast retransmit: the Recovery state */
	NETACCT_TCP_CAUSE_PROBE = 2,	/* tail-loss probe: sent again in the Open, Disorder or CWR state */
	NETACCT_TCP_CAUSE_SYN = 3,	/* a connect's SYN */
	NETACCT_TCP_CAUSE_SYNACK = 4,	/* a listener's (or a simultaneous open's) SYN-ACK */
	NETACCT_TCP_CAUSES = 5,
};

/*
 * The smoothed RTT sampled once per round trip, counted by floor(log2(microseconds)): bucket 0
 * holds 0-1 us, bucket k [2^k, 2^(k+1)) us, the last one everything from 2^26 us (67 s) on.
 */
#define NETACCT_TCP_RTT_BUCKETS 28

/*
 * A socket's counters, kept in its storage from the moment it has an owner: the programs add
 * to them where the kernel acts on the socket (softirq, timers, the owner's calls), and user
 * space reads them through the iterator (live sockets) and the ring buffer (closed ones).
 */
struct netacct_tcp_counters {
	__u64 retransmitted_bytes[NETACCT_TCP_CAUSES];	/* payload bytes sent again */
	__u32 retransmitted_segments[NETACCT_TCP_CAUSES];
	__u32 resets_sent;
	__u32 resets_received;
	__u32 failed_connects;		/* SYN_SENT -> CLOSE: refused, reset, timed out */
	__u32 timeouts;			/* given up after retransmission timeouts (closed with ETIMEDOUT) */
	__u32 zero_windows_received;	/* the peer's advertised window went to zero (seen on its ACKs) */
	__u32 zero_windows_sent;	/* a stall of this side's window at zero (seen as segments arrive into it) */
	__u32 window_probes;		/* segments that arrived while this side advertised a zero window */
	__u64 rtt_sum_us;		/* the samples' sum */
	__u32 rtt_samples[NETACCT_TCP_RTT_BUCKETS];
};

/* Who a socket's events count for: its owner process, and the counters. */
struct netacct_tcp_socket {
	__u64 process_start_ns;	/* the owner's group leader's start_time (CLOCK_MONOTONIC ns) */
	__u64 cgroup_id;	/* the owner's cgroup v2 id when it took the socket */
	__u32 tgid;		/* 0: none */
	__u32 zero_window_mark;	/* rcv_wup | 1 of the zero-window stall counted last (0: none) */
	char comm[NETACCT_TCP_COMM_LEN];
	struct netacct_tcp_counters counters;
};

/*
 * One socket as user space reads it: from the `sockets` iterator (live) or the `closed` ring
 * buffer (its final record, `closed` set). The kernel's own per-connection counters (RTT,
 * out-of-order segments, DSACKs) are read from tcp_sock beside the socket's storage.
 */
struct netacct_tcp_record {
	__u64 cookie;		/* the socket's cookie: unique until reboot */
	__u64 process_start_ns;
	__u64 cgroup_id;
	__u32 tgid;
	__u16 family;		/* AF_INET or AF_INET6 */
	__u8 state;		/* TCP state (TCP_ESTABLISHED = 1 ...) */
	__u8 closed;
	__u8 laddr[16];		/* network order; IPv4 in the first 4 bytes */
	__u8 raddr[16];
	__u16 lport;		/* host order */
	__u16 rport;
	__u32 srtt_us;		/* smoothed RTT (tcp_info's tcpi_rtt), 0: no sample yet */
	__u32 rttvar_us;	/* its mean deviation (tcpi_rttvar) */
	__u32 out_of_order;	/* out-of-order segments received (tcpi_rcv_ooopack) */
	__u32 dsacks;		/* duplicate segments the peer reported (tcpi_dsack_dups) */
	__u32 total_retrans;	/* the kernel's own count of segments sent again (tcpi_total_retrans) */
	char comm[NETACCT_TCP_COMM_LEN];
	struct netacct_tcp_counters counters;
};

/* No hidden padding: every byte of a record is written, none is left for the compiler to fill. */
_Static_assert(sizeof(struct netacct_tcp_counters) == 5 * 8 + 5 * 4 + 7 * 4 + 8 + NETACCT_TCP_RTT_BUCKETS * 4, "netacct_tcp_counters has padding");
_Static_assert(sizeof(struct netacct_tcp_record) == 104 + sizeof(struct netacct_tcp_counters), "netacct_tcp_record has padding");

#define NETACCT_TCP_CLOSED_RING_BYTES (1 << 20)

/* Sockets open at start that user space can name an owner of. */
#define NETACCT_TCP_EXISTING_SOCKETS 65536

/* Indexes of the per-CPU `stats` array: what could not be counted for an owner. */
enum netacct_tcp_stat {
	NETACCT_TCP_STAT_STORAGE_FULL = 0,	/* a socket got no storage: its events count as unattributed */
	NETACCT_TCP_STAT_CLOSED_LOST = 1,	/* a closed socket's final record found the ring buffer full */
	NETACCT_TCP_STAT_COUNT = 2,
};

#endif /* NETACCT_TCP_HEALTH_H */
