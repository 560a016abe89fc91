// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * latency_out_parts: latency out's programs (latency_out.bpf.c, included whole: the same code and
 * maps) and its reporting point, net_dev_start_xmit, cut after each step, for the benchmark's
 * account of where a followed segment's time goes (netacct-bench latency). Each cut runs in
 * place of `transmitted`, with the other points, and ends the segments a packet carries as it
 * does (their queue never fills), so every step sees the same packets.
 */
#include "../latency_out.bpf.c"
#include "latency_parts.h"

/* What a cut keeps, so that clang does not drop the reads it is there to make. */
__u64 parts_out_time;
struct endpoints parts_out_where;

struct parts_transmit_walk {
	struct netacct_latency_sending *queue;
	__u32 end;
	__u32 ended;
};

/* `finish_sent` without the report. */
static long parts_finish_sent(__u32 index, struct parts_transmit_walk *w)
{
	if (!take_sent(w->queue, w->end))
		return 1;
	w->ended++;
	return 0;
}

/* The segments a packet carries leave their queue, as `transmit` walks them; how many did. */
static __always_inline __u32 parts_walk(struct carried *c)
{
	struct parts_transmit_walk w = { .queue = c->queue, .end = c->end };

	if (!seq_before(c->queue->slot[c->queue->head % SLOTS].seq, c->end))
		return 0;
	bpf_loop(SLOTS, parts_finish_sent, &w, 0);
	catch_up(&c->queue->queued, c->queue->head);
	catch_up(&c->queue->routed, c->queue->head);
	return w.ended;
}

/* The socket's queue looked up, the packet's headers read, its segments ended: nothing timed. */
SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(parts_xmit_walk, struct sk_buff *skb, struct net_device *dev)
{
	struct carried c = {};

	if (!skb->sk || !carrying(skb, &c))
		return 0;
	return parts_walk(&c) > 0;
}

/* The walk, then the clock and the socket's addresses once per packet that ends a segment; how many it ended. */
static __always_inline __u32 parts_xmit_timed(struct sk_buff *skb)
{
	struct carried c = {};
	struct sock *sk = skb->sk;
	struct endpoints where = {};
	__u32 ended;

	if (!sk || !carrying(skb, &c))
		return 0;
	ended = parts_walk(&c);
	if (!ended)
		return 0;
	parts_out_time = bpf_ktime_get_ns();
	where.family = socket_addresses(sk, where.saddr, where.daddr);
	where.sport = sk->__sk_common.skc_num;
	where.dport = bpf_ntohs(sk->__sk_common.skc_dport);
	where.netns = sk->__sk_common.skc_net.net->ns.inum;
	parts_out_where = where;
	return ended;
}

SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(parts_xmit_clock, struct sk_buff *skb, struct net_device *dev)
{
	return parts_xmit_timed(skb) > 0;
}

/* The same, then a report reserved and submitted, unwritten, per segment ended. */
SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(parts_xmit_reserve, struct sk_buff *skb, struct net_device *dev)
{
	PARTS_RESERVE(parts_xmit_timed(skb), sizeof(struct netacct_latency_event));
	return 0;
}

/* The same with a record of one cache line (the ring's header included) instead. */
SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(parts_xmit_reserve_line, struct sk_buff *skb, struct net_device *dev)
{
	PARTS_RESERVE(parts_xmit_timed(skb), PARTS_SMALL_RECORD);
	return 0;
}

/* LOCAL_OUT without its clock: the socket's queue looked up, the packet read, the segments it carries passed. */
SEC("netfilter")
int parts_ip_walk(struct bpf_nf_ctx *ctx)
{
	struct carried c = {};

	if (carrying(ctx->skb, &c)) {
		for (int i = 0; i < SLOTS; i++) {
			if (!next_carried(&c, &c.queue->routed))
				break;
		}
	}
	return NF_ACCEPT;
}
