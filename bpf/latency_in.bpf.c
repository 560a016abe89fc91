// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * latency in: where a received TCP segment spends its time, layer by layer (latency.h). A
 * segment with data is taken up at netif_receive_skb and timed at netfilter's PRE_ROUTING (a
 * netfilter link, the earliest priority) by the CPU that receives it (`taking`: these run in
 * one call chain in softirq). At LOCAL_IN (the latest priority) it joins its connection's queue
 * of arriving segments (`arriving`, by addresses and ports); tcp_probe (the top of
 * tcp_rcv_established) takes every arriving segment the packet carries, at once or later from
 * the backlog, merged or not, into the socket's storage, where it waits until the application's
 * read copies its first byte (skb_copy_datagram_iovec, with the socket's copied_seq: segments the
 * receive queue merged are ended too).
 *
 * A dropped segment is let go at kfree_skb; one that leaves the path before a socket
 * (forwarded, no socket) is counted when the next one comes; what waits in a socket goes with
 * it (tcp_destroy_sock, socket storage).
 *
 * Needs Linux >= 6.12 (kfree_skb's rx_sk), netfilter links (6.4), bpf_loop (5.17), the
 * bpf_rdonly_cast kfunc (6.2) and socket storage for tracing programs (5.11).
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

#define ARRIVING NETACCT_LATENCY_ARRIVING_SLOTS
#define WAITING NETACCT_LATENCY_SOCKET_SLOTS

/* The segment this CPU is taking up, between netif_receive_skb and LOCAL_IN. */
struct taking {
	__u64 skb;		/* the struct sk_buff's address, 0: free */
	struct netacct_latency_pending segment;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct taking);
} taking SEC(".maps");

/*
 * An entry ends with its connection (tcp_destroy_sock) or, for a packet no socket took, when
 * its last segment is dropped. What is left all the same (a socket the kernel never destroyed
 * while netacct ran, a peer that sends to sockets that never existed) goes first when the table
 * is full: least recently used.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct netacct_latency_flow);
	__type(value, struct netacct_latency_arriving);
} arriving SEC(".maps");

/* A queue's first value: never written, so all zero (too large for the stack). */
static struct netacct_latency_arriving empty_queue;

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct netacct_latency_socket);
} sockets SEC(".maps");

static __always_inline struct taking *this_cpu(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&taking, &zero);
}

/* A received packet's connection, from its headers (the network header at `network`). */
static __always_inline bool flow_of_packet(struct sk_buff *skb, unsigned char *network, struct netacct_latency_flow *flow,
					   __u32 *seq, __u32 netns)
{
	struct addresses a = {};
	struct tcphdr *th;
	__u32 payload;

	if (!tcp_packet(skb, network, &a, &th, &payload))
		return false;
	__builtin_memcpy(flow->saddr, a.saddr, 16);
	__builtin_memcpy(flow->daddr, a.daddr, 16);
	flow->family = a.family;
	flow->sport = bpf_ntohs(th->source);
	flow->dport = bpf_ntohs(th->dest);
	flow->netns = netns;
	*seq = bpf_ntohl(th->seq);
	return true;
}

/* The namespace of a received packet: its device's, or (TCP may have cleared skb->dev) its socket's. */
static __always_inline __u32 packet_namespace(struct sk_buff *skb, struct sock *sk)
{
	struct net_device *dev = skb->dev;

	if (dev)
		return dev->nd_net.net->ns.inum;
	return sk ? sk->__sk_common.skc_net.net->ns.inum : 0;
}

/*
 * A socket's connection as its received packets have it. The local port is inet_sport's:
 * skc_num is cleared when the socket gives its port back, before tcp_destroy_sock, whose
 * lookup must find the same key.
 */
static __always_inline void flow_of_socket(struct sock *sk, struct netacct_latency_flow *flow)
{
	flow->family = socket_addresses(sk, flow->daddr, flow->saddr);
	flow->sport = bpf_ntohs(sk->__sk_common.skc_dport);
	flow->dport = bpf_ntohs(TYPED(struct inet_sock, sk)->inet_sport);
	flow->netns = sk->__sk_common.skc_net.net->ns.inum;
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(received, struct sk_buff *skb)
{
	struct net_device *dev = skb->dev;
	struct addresses a = {};
	struct tcphdr *th;
	struct taking *t;
	__u32 payload;

	t = this_cpu();
	if (!t)
		return 0;
	if (t->skb) {
		/* The same packet on a second device keeps its first time. */
		if (t->skb == (__u64)skb)
			return 0;
		/* The last one never reached a socket here: forwarded, or no socket wanted it. */
		percpu_counter_inc(&counters, NETACCT_LATENCY_LEFT);
		t->skb = 0;
	}
	/* With nothing to filter on, the die is cast before anything is read. */
	if (!filtered() && !sampled())
		return 0;
	if (!dev || !namespace_wanted(dev->nd_net.net->ns.inum))
		return 0;
	/* The link layer's header is behind: data is at the network header. Only data is followed. */
	if (!tcp_packet(skb, skb->data, &a, &th, &payload) || !payload)
		return 0;
	if (filtered() && !follow(a.family, bpf_ntohs(th->source), bpf_ntohs(th->dest)))
		return 0;
	t->segment.seq = bpf_ntohl(th->seq);
	t->segment.ack = bpf_ntohl(th->ack_seq);
	t->segment.time_ns[0] = bpf_ktime_get_ns();
	t->segment.time_ns[1] = 0;
	t->segment.time_ns[2] = 0;
	t->skb = (__u64)skb;
	return 0;
}

SEC("netfilter")
int ip_received(struct bpf_nf_ctx *ctx)
{
	struct taking *t = this_cpu();

	if (t && t->skb == (__u64)ctx->skb && !t->segment.time_ns[1])
		t->segment.time_ns[1] = bpf_ktime_get_ns();
	return NF_ACCEPT;
}

/* At LOCAL_IN, after every other function there: the segment joins its connection's queue. */
SEC("netfilter")
int ip_delivered(struct bpf_nf_ctx *ctx)
{
	struct netacct_latency_flow flow = {};
	struct netacct_latency_arriving *queue;
	struct sk_buff *skb = ctx->skb;
	struct taking *t = this_cpu();
	__u32 seq;

	if (!t || t->skb != (__u64)skb)
		return NF_ACCEPT;
	t->skb = 0;
	if (!flow_of_packet(skb, skb->head + skb->network_header, &flow, &seq, packet_namespace(skb, NULL)))
		return NF_ACCEPT;
	queue = lookup_or_init(&arriving, &flow, &empty_queue);
	if (!queue) {
		percpu_counter_inc(&counters, NETACCT_LATENCY_TABLE_FULL);
		return NF_ACCEPT;
	}
	/* A copy again (the first one dropped unseen, or a retransmission): the newer stands. */
	if (queue->head != queue->tail && queue->slot[(queue->tail - 1) % ARRIVING].seq == t->segment.seq) {
		queue->slot[(queue->tail - 1) % ARRIVING] = t->segment;
		return NF_ACCEPT;
	}
	if (queue->tail - queue->head >= ARRIVING) {
		percpu_counter_inc(&counters, NETACCT_LATENCY_SOCKET_FULL);
		return NF_ACCEPT;
	}
	queue->slot[queue->tail % ARRIVING] = t->segment;
	queue->tail++;
	follow_started();
	return NF_ACCEPT;
}

/*
 * Moves a segment TCP has taken to its socket's storage, to wait for the application's read
 * (still followed: `followed` counts it until then).
 */
static __always_inline void taken(struct netacct_latency_socket *waiting, struct netacct_latency_pending *segment)
{
	if (waiting->unwanted) {
		follow_ended();
		return;
	}
	/* Taken again (TCP dropped the first copy after taking it): the newer stands. */
	if (waiting->head != waiting->tail && waiting->slot[(waiting->tail - 1) % WAITING].seq == segment->seq) {
		waiting->slot[(waiting->tail - 1) % WAITING] = *segment;
		follow_ended();
		return;
	}
	if (waiting->tail - waiting->head >= WAITING) {
		percpu_counter_inc(&counters, NETACCT_LATENCY_SOCKET_FULL);
		follow_ended();
		return;
	}
	waiting->slot[waiting->tail % WAITING] = *segment;
	waiting->tail++;
}

/* The queue of segments waiting for TCP on `sk`'s connection; NULL when none waits. */
static __always_inline struct netacct_latency_arriving *arrived_waiting(struct sock *sk)
{
	struct netacct_latency_flow flow = {};
	struct netacct_latency_arriving *queue;

	if (nothing_followed())
		return NULL;
	flow_of_socket(sk, &flow);
	queue = bpf_map_lookup_elem(&arriving, &flow);
	return queue && queue->head != queue->tail ? queue : NULL;
}

/* The oldest segment waiting for TCP, taken off the queue if a packet ending at `end` holds its first byte; NULL when not. */
static __always_inline struct netacct_latency_pending *take_arrived(struct netacct_latency_arriving *queue, __u32 end)
{
	struct netacct_latency_pending *slot;

	if (queue->head == queue->tail)
		return NULL;
	slot = &queue->slot[queue->head % ARRIVING];
	if (!seq_before(slot->seq, end))
		return NULL;
	queue->head++;
	return slot;
}

/* TCP has filled the packet's control block (struct tcp_skb_cb: seq, then end_seq). */
static __always_inline __u32 packet_end_seq(struct sk_buff *skb)
{
	return *(__u32 *)&skb->cb[4];
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(tcp_received, struct sock *sk, struct sk_buff *skb)
{
	struct netacct_latency_socket *waiting = NULL;
	struct netacct_latency_arriving *queue = arrived_waiting(sk);
	struct netacct_latency_pending *slot;
	__u32 end, received;
	__u64 now = 0;

	if (!queue)
		return 0;
	end = packet_end_seq(skb);
	/* Data already received (a retransmission) is never read again: not followed further. */
	received = TYPED(struct tcp_sock, sk)->rcv_nxt;
	for (int i = 0; i < ARRIVING; i++) {
		slot = take_arrived(queue, end);
		if (!slot)
			break;
		if (!seq_before(received, end)) {
			follow_ended();
			continue;
		}
		if (!now) {
			now = bpf_ktime_get_ns();
			waiting = bpf_sk_storage_get(&sockets, sk, NULL, BPF_LOCAL_STORAGE_GET_F_CREATE);
		}
		if (!waiting) {
			follow_ended();
			continue;
		}
		slot->time_ns[2] = now;
		taken(waiting, slot);
	}
	return 0;
}

/* What ending the segments a read copies needs, for each (bpf_loop verifies its body once). */
struct copy_walk {
	struct netacct_latency_socket *queue;
	__u64 now;
	__u32 end;		/* the sequence number after the last byte copied */
	__u32 pid;
	struct endpoints where;
	char comm[NETACCT_LATENCY_COMM_LEN];
};

/*
 * Takes the oldest waiting segment off the queue if a read up to `end` copies its first byte:
 * NULL when it does not (the walk stops there); `*fresh` false when a read ended it before (the
 * application reads it again: not a new segment).
 */
static __always_inline struct netacct_latency_pending *take_copied(struct netacct_latency_socket *queue, __u32 end,
								   bool *fresh)
{
	struct netacct_latency_pending *slot;

	if (queue->head == queue->tail)
		return NULL;
	slot = &queue->slot[queue->head % WAITING];
	if (!seq_before(slot->seq, end))
		return NULL;
	queue->head++;
	follow_ended();
	*fresh = !queue->ended || seq_before(queue->last_seq, slot->seq);
	if (*fresh) {
		queue->ended = 1;
		queue->last_seq = slot->seq;
	}
	return slot;
}

/* Ends the oldest waiting segment if its first byte is among those copied; 1 stops the walk. */
static long end_copied(__u32 index, struct copy_walk *w)
{
	bool fresh = false;
	struct netacct_latency_pending *slot = take_copied(w->queue, w->end, &fresh);

	if (!slot)
		return 1;
	if (fresh)
		finish(slot->time_ns, w->now, NETACCT_LATENCY_IN, w->pid, w->comm, slot->seq, slot->ack, &w->where);
	return 0;
}

/* Ends the waiting segments a read of `len` bytes copies (declared here, after the checks: zeroing it costs). */
static __always_inline void copy(struct netacct_latency_socket *queue, struct sock *sk, int len)
{
	struct copy_walk w = {};

	w.queue = queue;
	w.pid = current_process(w.comm);
	if (pid_count && !pid_wanted(w.pid)) {
		follow_count(-(__s64)(queue->tail - queue->head));
		queue->unwanted = 1;
		queue->head = queue->tail;
		return;
	}
	/* The bytes copied now: [copied_seq, copied_seq + len). */
	w.end = TYPED(struct tcp_sock, sk)->copied_seq + len;
	w.now = bpf_ktime_get_ns();
	/* The peer is the source: the socket's remote side. */
	w.where.family = socket_addresses(sk, w.where.daddr, w.where.saddr);
	w.where.sport = bpf_ntohs(sk->__sk_common.skc_dport);
	w.where.dport = sk->__sk_common.skc_num;
	w.where.netns = sk->__sk_common.skc_net.net->ns.inum;
	bpf_loop(NETACCT_LATENCY_SOCKET_SLOTS, end_copied, &w, 0);
}

/* The queue of segments waiting for a read of `sk`; NULL when none waits. */
static __always_inline struct netacct_latency_socket *read_waiting(struct sock *sk)
{
	struct netacct_latency_socket *queue;

	if (nothing_followed() || !sk || sk->sk_protocol != IPPROTO_TCP)
		return NULL;
	queue = bpf_sk_storage_get(&sockets, sk, NULL, 0);
	return queue && queue->head != queue->tail ? queue : NULL;
}

SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(copied, struct sk_buff *skb, int len)
{
	struct sock *sk = skb->sk;
	struct netacct_latency_socket *queue = read_waiting(sk);

	if (queue && sk)
		copy(queue, sk, len);
	return 0;
}

/* A followed segment dropped on the way: by this CPU before its socket, or in its socket's queue. */
SEC("tp_btf/kfree_skb")
int BPF_PROG(dropped, struct sk_buff *skb, void *location, int reason, struct sock *rx_sk)
{
	struct netacct_latency_flow flow = {};
	struct netacct_latency_arriving *queue;
	struct taking *t;
	__u32 seq;

	if (!skb->skb_iif)
		return 0;
	t = this_cpu();
	if (t && t->skb == (__u64)skb) {
		t->skb = 0;
		percpu_counter_inc(&counters, NETACCT_LATENCY_DROPPED);
		return 0;
	}
	if (nothing_followed() || !flow_of_packet(skb, skb->head + skb->network_header, &flow, &seq, packet_namespace(skb, rx_sk)))
		return 0;
	queue = bpf_map_lookup_elem(&arriving, &flow);
	if (!queue || queue->head == queue->tail)
		return 0;
	if (queue->slot[(queue->tail - 1) % ARRIVING].seq == seq) {
		queue->tail--;
		follow_ended();
		percpu_counter_inc(&counters, NETACCT_LATENCY_DROPPED);
		/* Nothing else on its way: a packet for no socket (or a socket gone) leaves nothing behind. */
		if (queue->head == queue->tail)
			bpf_map_delete_elem(&arriving, &flow);
	}
	return 0;
}

/* A socket's followed segments, never taken or never read, go with it. */
SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(socket_gone, struct sock *sk)
{
	struct netacct_latency_flow flow = {};
	struct netacct_latency_socket *waiting;
	struct netacct_latency_arriving *queue;

	flow_of_socket(sk, &flow);
	queue = bpf_map_lookup_elem(&arriving, &flow);
	if (!queue)
		return 0;
	follow_count(-(__s64)(queue->tail - queue->head));
	bpf_map_delete_elem(&arriving, &flow);
	waiting = bpf_sk_storage_get(&sockets, sk, NULL, 0);
	if (waiting)
		follow_count(-(__s64)(waiting->tail - waiting->head));
	return 0;
}
