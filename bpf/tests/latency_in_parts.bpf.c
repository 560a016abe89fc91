// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * latency_in_parts: latency in's programs (latency_in.bpf.c, included whole: the same code and
 * maps) and its reporting point, the read (skb_copy_datagram_iovec), cut after each step, for
 * the benchmark's account of where a followed segment's time goes (netacct-bench latency). Each
 * cut runs in place of `copied`, with the other points, and ends the segments a read copies as
 * it does (their queue never fills), so every step sees the same reads.
 */
#include "../latency_in.bpf.c"
#include "latency_parts.h"

/* What a cut keeps, so that clang does not drop the reads it is there to make. */
__u64 parts_in_time;
bool parts_in_storage;
__u32 parts_in_pid;
char parts_in_comm[NETACCT_LATENCY_COMM_LEN];
struct endpoints parts_in_where;

struct parts_copy_walk {
	struct netacct_latency_socket *queue;
	__u32 end;
	__u32 ended;
};

/* `end_copied` without the report. */
static long parts_end_copied(__u32 index, struct parts_copy_walk *w)
{
	bool fresh = false;

	if (!take_copied(w->queue, w->end, &fresh))
		return 1;
	w->ended += fresh;
	return 0;
}

/* The waiting segments whose first byte a read of `len` bytes copies leave the socket's queue, as `copy` walks them. */
static __always_inline __u32 parts_copy_walk(struct netacct_latency_socket *queue, struct sock *sk, int len)
{
	struct parts_copy_walk w = { .queue = queue, .end = TYPED(struct tcp_sock, sk)->copied_seq + len };

	bpf_loop(WAITING, parts_end_copied, &w, 0);
	return w.ended;
}

/* The socket's queue in its storage, and the segments the read copies ended: nothing timed. */
SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(parts_copy_walk_only, struct sk_buff *skb, int len)
{
	struct sock *sk = skb->sk;
	struct netacct_latency_socket *queue = read_waiting(sk);

	return queue && sk && parts_copy_walk(queue, sk, len) > 0;
}

/* The walk and the reader's identity only (no clock, no addresses). */
SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(parts_copy_identity, struct sk_buff *skb, int len)
{
	struct sock *sk = skb->sk;
	struct netacct_latency_socket *queue = read_waiting(sk);

	if (!queue || !sk)
		return 0;
	parts_in_pid = current_process(parts_in_comm);
	return parts_copy_walk(queue, sk, len) > 0;
}

/* The reader's identity, the clock and the socket's addresses where the read copies a waiting
 * segment (as `copied` reads them), then the walk; how many segments it ended. */
static __always_inline __u32 parts_copy_timed(struct sk_buff *skb, int len)
{
	struct sock *sk = skb->sk;
	struct netacct_latency_socket *queue = read_waiting(sk);
	struct endpoints where = {};

	if (!queue || !sk)
		return 0;
	parts_in_pid = current_process(parts_in_comm);
	parts_in_time = bpf_ktime_get_ns();
	where.family = socket_addresses(sk, where.daddr, where.saddr);
	where.sport = bpf_ntohs(sk->__sk_common.skc_dport);
	where.dport = sk->__sk_common.skc_num;
	where.netns = sk->__sk_common.skc_net.net->ns.inum;
	parts_in_where = where;
	return parts_copy_walk(queue, sk, len);
}

SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(parts_copy_clock, struct sk_buff *skb, int len)
{
	return parts_copy_timed(skb, len) > 0;
}

/* The same, then a report reserved and submitted, unwritten, per segment ended. */
SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(parts_copy_reserve, struct sk_buff *skb, int len)
{
	PARTS_RESERVE(parts_copy_timed(skb, len), sizeof(struct netacct_latency_event));
	return 0;
}

/* The same with a record of one cache line (the ring's header included) instead. */
SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(parts_copy_reserve_line, struct sk_buff *skb, int len)
{
	PARTS_RESERVE(parts_copy_timed(skb, len), PARTS_SMALL_RECORD);
	return 0;
}

/*
 * tcp_probe cut: the connection's queue looked up and the segments the packet holds taken off
 * it, then (`timed`) the clock read and (`stored`) the socket's storage got, created, once per
 * packet as tcp_received does; nothing is handed on to the socket (the read finds none).
 */
static __always_inline int parts_tcp(struct sock *sk, struct sk_buff *skb, bool timed, bool stored)
{
	struct netacct_latency_arriving *queue = arrived_waiting(sk);
	__u32 end;

	if (!queue)
		return 0;
	end = packet_end_seq(skb);
	for (int i = 0; i < ARRIVING; i++) {
		if (!take_arrived(queue, end))
			break;
		follow_ended();
		if (i == 0 && timed)
			parts_in_time = bpf_ktime_get_ns();
		if (i == 0 && stored)
			parts_in_storage = bpf_sk_storage_get(&sockets, sk, NULL, BPF_LOCAL_STORAGE_GET_F_CREATE) != NULL;
	}
	return 0;
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(parts_tcp_walk, struct sock *sk, struct sk_buff *skb)
{
	return parts_tcp(sk, skb, false, false);
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(parts_tcp_clock, struct sock *sk, struct sk_buff *skb)
{
	return parts_tcp(sk, skb, true, false);
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(parts_tcp_storage, struct sock *sk, struct sk_buff *skb)
{
	return parts_tcp(sk, skb, true, true);
}
