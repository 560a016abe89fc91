// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * latency out: where a sent TCP segment spends its time, layer by layer (latency.h). A segment
 * is taken up where the application's send starts it (tcp_sendmsg_locked, when the write
 * queue's tail has no room: the data begins a new buffer at write_seq), in the sender's context,
 * and waits in its socket's queue (`sending`). Each later point — netfilter's LOCAL_OUT (a
 * netfilter link, the earliest priority), net_dev_queue, net_dev_start_xmit — stamps the waiting
 * segments whose first byte the packet holds: the transmit path merges buffers (tcp_grow_skb) and
 * splits them, and a socket sends new data in order. Data appended to a started buffer goes with
 * it; a retransmission carries nothing still waiting.
 *
 * A segment never sent goes with its socket (tcp_destroy_sock). Needs Linux >= 6.16 (the
 * tcp_sendmsg_locked tracepoint), netfilter links (6.4), bpf_loop (5.17) and the
 * bpf_rdonly_cast kfunc (6.2).
 */
#include "netdev.h"
#include "sockets.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "maps.h"
#include "typed.h"
#include "packet.h"
#include "netfilter.h"
#include "filters.h"
#include "latency.bpf.h"

#define SLOTS NETACCT_LATENCY_SENDING_SLOTS

/* By the struct sock's address; only sockets a followed segment was sent on. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, __u64);
	__type(value, struct netacct_latency_sending);
} sending SEC(".maps");

/* A queue's first value: never written, so all zero (too large for the stack). */
static struct netacct_latency_sending empty_queue;

struct msghdr;

/* An outgoing TCP packet of a socket with followed segments: its queue and the packet's range. */
struct carried {
	struct netacct_latency_sending *queue;
	struct tcphdr *th;
	struct addresses a;
	__u32 seq;
	__u32 end;		/* the sequence number after its last data byte */
};

static __always_inline bool carrying(struct sk_buff *skb, struct carried *c)
{
	__u64 socket = (__u64)skb->sk;
	__u32 payload;

	if (nothing_followed() || !socket)
		return false;
	c->queue = bpf_map_lookup_elem(&sending, &socket);
	if (!c->queue || c->queue->head == c->queue->tail)
		return false;
	if (!tcp_packet(skb, skb->head + skb->network_header, &c->a, &c->th, &payload))
		return false;
	c->seq = bpf_ntohl(c->th->seq);
	c->end = c->seq + payload;
	return true;
}

/* The waiting segment at `*next` if the packet carries its first byte, `*next` moved past it; NULL when not. */
static __always_inline struct netacct_latency_sent *next_carried(struct carried *c, __u32 *next)
{
	struct netacct_latency_sent *slot;

	if (*next == c->queue->tail)
		return NULL;
	slot = &c->queue->slot[*next % SLOTS];
	if (!seq_before(slot->seq, c->end))
		return NULL;
	*next += 1;
	return slot;
}

/* Stamps point `point` on the segments from `*next` that the packet carries; the time is read once, if any. */
static __always_inline void stamp(struct carried *c, __u32 *next, int point)
{
	struct netacct_latency_sent *slot;
	__u64 now = 0;

	for (int i = 0; i < SLOTS; i++) {
		slot = next_carried(c, next);
		if (!slot)
			break;
		if (!now)
			now = bpf_ktime_get_ns();
		slot->time_ns[point] = now;
		if (point == 1)
			slot->ack = bpf_ntohl(c->th->ack_seq);
	}
}

/* A later point never waits for an earlier one that did not see the segment. */
static __always_inline void catch_up(__u32 *behind, __u32 ahead)
{
	if (seq_before(*behind, ahead))
		*behind = ahead;
}

SEC("tp_btf/tcp_sendmsg_locked")
int BPF_PROG(sending_data, struct sock *sk, struct msghdr *msg, struct sk_buff *skb, int size_goal)
{
	struct netacct_latency_sending *queue;
	struct netacct_latency_sent *slot;
	struct sock_common *c = &sk->__sk_common;
	__u64 socket = (__u64)sk;
	__u32 seq, pid;
	char comm[NETACCT_LATENCY_COMM_LEN];

	/* Data that joins the write queue's last buffer: that buffer's segment, already decided. */
	if (skb && size_goal > (int)skb->len)
		return 0;
	/* With nothing to filter on, the die is cast first. */
	if (!filtered() && !sampled())
		return 0;
	if (!namespace_wanted(c->skc_net.net->ns.inum))
		return 0;
	if (filtered() && !follow(socket_family(sk), c->skc_num, bpf_ntohs(c->skc_dport)))
		return 0;
	pid = current_process(comm);
	if (pid_count && !pid_wanted(pid))
		return 0;
	seq = TYPED(struct tcp_sock, sk)->write_seq;
	queue = lookup_or_init(&sending, &socket, &empty_queue);
	if (!queue) {
		percpu_counter_inc(&counters, NETACCT_LATENCY_TABLE_FULL);
		return 0;
	}
	/* A send that waited for room and came back here keeps its first time. */
	if (queue->head != queue->tail && queue->slot[(queue->tail - 1) % SLOTS].seq == seq)
		return 0;
	if (queue->tail - queue->head >= SLOTS) {
		percpu_counter_inc(&counters, NETACCT_LATENCY_SOCKET_FULL);
		return 0;
	}
	slot = &queue->slot[queue->tail % SLOTS];
	slot->seq = seq;
	slot->pid = pid;
	slot->ack = 0;
	__builtin_memcpy(slot->comm, comm, sizeof(slot->comm));
	slot->time_ns[0] = bpf_ktime_get_ns();
	slot->time_ns[1] = 0;
	slot->time_ns[2] = 0;
	queue->tail++;
	follow_started();
	return 0;
}

SEC("netfilter")
int ip_sending(struct bpf_nf_ctx *ctx)
{
	struct carried c = {};

	if (carrying(ctx->skb, &c))
		stamp(&c, &c.queue->routed, 1);
	return NF_ACCEPT;
}

SEC("tp_btf/net_dev_queue")
int BPF_PROG(queued, struct sk_buff *skb)
{
	struct carried c = {};

	if (!carrying(skb, &c))
		return 0;
	catch_up(&c.queue->queued, c.queue->head);
	stamp(&c, &c.queue->queued, 2);
	catch_up(&c.queue->routed, c.queue->queued);
	return 0;
}

/* What finishing the segments a packet carries needs, for each (bpf_loop verifies its body once). */
struct transmit_walk {
	struct netacct_latency_sending *queue;
	__u64 now;
	__u32 end;
	__u32 padding;
	struct endpoints where;	/* the socket's addresses, and the packet's source when NAT changed it */
};

/* Takes the oldest waiting segment off the queue if a packet ending at `end` carries its first byte; NULL when not. */
static __always_inline struct netacct_latency_sent *take_sent(struct netacct_latency_sending *queue, __u32 end)
{
	struct netacct_latency_sent *slot;

	if (queue->head == queue->tail)
		return NULL;
	slot = &queue->slot[queue->head % SLOTS];
	if (!seq_before(slot->seq, end))
		return NULL;
	queue->head++;
	follow_ended();
	return slot;
}

/* Ends the oldest waiting segment if the packet carries its first byte; 1 stops the walk. */
static long finish_sent(__u32 index, struct transmit_walk *w)
{
	struct netacct_latency_sent *slot = take_sent(w->queue, w->end);

	if (!slot)
		return 1;
	finish(slot->time_ns, w->now, NETACCT_LATENCY_OUT, slot->pid, slot->comm, slot->seq, slot->ack, &w->where);
	return 0;
}

/* Ends the segments the packet carries (declared here, after the checks: zeroing it costs). */
static __always_inline void transmit(struct carried *c, struct sock *sk)
{
	struct transmit_walk w = {};
	__u16 source = bpf_ntohs(c->th->source);

	w.queue = c->queue;
	w.end = c->end;
	w.now = bpf_ktime_get_ns();
	w.where.family = socket_addresses(sk, w.where.saddr, w.where.daddr);
	w.where.sport = sk->__sk_common.skc_num;
	w.where.dport = bpf_ntohs(sk->__sk_common.skc_dport);
	w.where.netns = sk->__sk_common.skc_net.net->ns.inum;
	if (source_translated(&c->a, source, w.where.family, w.where.saddr, w.where.sport)) {
		__builtin_memcpy(w.where.nat_addr, c->a.saddr, 16);
		w.where.nat_port = source;
	}
	bpf_loop(SLOTS, finish_sent, &w, 0);
	catch_up(&c->queue->queued, c->queue->head);
	catch_up(&c->queue->routed, c->queue->head);
}

SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(transmitted, struct sk_buff *skb, struct net_device *dev)
{
	struct carried c = {};
	struct sock *sk = skb->sk;

	if (!sk || !carrying(skb, &c))
		return 0;
	if (seq_before(c.queue->slot[c.queue->head % SLOTS].seq, c.end))
		transmit(&c, sk);
	return 0;
}

/* A socket's last segments, never sent, go with it. */
SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(socket_gone, struct sock *sk)
{
	struct netacct_latency_sending *queue;
	__u64 socket = (__u64)sk;

	queue = bpf_map_lookup_elem(&sending, &socket);
	if (!queue)
		return 0;
	follow_count(-(__s64)(queue->tail - queue->head));
	bpf_map_delete_elem(&sending, &socket);
	return 0;
}
