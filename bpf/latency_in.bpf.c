// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * latency in: where a received TCP segment spends its time, layer by layer (latency.h). A
 * segment with data is taken up at netif_receive_skb, timed at netfilter's PRE_ROUTING (a
 * netfilter link, the earliest priority) and at tcp_probe (the top of tcp_rcv_established), in
 * `inflight` by its addresses, ports and sequence number; then it waits in its socket's storage
 * until the application's read copies its first byte (skb_copy_datagram_iovec, with the socket's
 * copied_seq: segments merged into one buffer by the receive queue end as their bytes are read).
 *
 * A dropped segment leaves `inflight` at kfree_skb; one that never reaches a point (a forwarded
 * packet, a socket not established) is swept by user space after a second; what waits in a
 * socket goes with it.
 *
 * Needs Linux >= 6.4 (netfilter links), the bpf_rdonly_cast kfunc (6.2) and socket storage
 * for tracing programs (5.11).
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


struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct netacct_latency_in_key);
	__type(value, struct netacct_latency_in_value);
} inflight SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct netacct_latency_socket);
} sockets SEC(".maps");

/* A TCP segment's key from its headers (the network header at `network`). False for anything else. */
static __always_inline bool segment(struct sk_buff *skb, unsigned char *network, struct netacct_latency_in_key *key,
				    __u32 *ack, __u32 *payload)
{
	struct addresses a = {};
	struct tcphdr *th;

	if (!tcp_packet(skb, network, &a, &th, payload))
		return false;
	__builtin_memcpy(key->saddr, a.saddr, 16);
	__builtin_memcpy(key->daddr, a.daddr, 16);
	key->family = a.family;
	key->sport = bpf_ntohs(th->source);
	key->dport = bpf_ntohs(th->dest);
	key->seq = bpf_ntohl(th->seq);
	*ack = bpf_ntohl(th->ack_seq);
	return true;
}

/* A point on the way: its time, once, for a followed segment. */
static __always_inline void passed(struct sk_buff *skb, unsigned char *network, int point)
{
	struct netacct_latency_in_key key = {};
	struct netacct_latency_in_value *value;
	__u32 ack, payload;

	if (nothing_followed() || !segment(skb, network, &key, &ack, &payload))
		return;
	value = bpf_map_lookup_elem(&inflight, &key);
	if (value && !value->time_ns[point])
		value->time_ns[point] = bpf_ktime_get_ns();
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(received, struct sk_buff *skb)
{
	struct netacct_latency_in_key key = {};
	struct netacct_latency_in_value value = {};
	struct net_device *dev = skb->dev;
	__u32 ack, payload;
	long err;

	if (!dev || dev->nd_net.net->ns.inum != netns_inum)
		return 0;
	/* The link layer's header is behind: data is at the network header. */
	if (!segment(skb, skb->data, &key, &ack, &payload) || !payload)
		return 0;
	if (!follow(key.family, key.sport, key.dport))
		return 0;
	value.time_ns[0] = bpf_ktime_get_ns();
	value.ack = ack;
	/* The first time only: a packet seen again on a second device keeps its first time. */
	err = bpf_map_update_elem(&inflight, &key, &value, BPF_NOEXIST);
	if (!err)
		follow_started();
	else if (err != -17 /* EEXIST */)
		percpu_counter_inc(&counters, NETACCT_LATENCY_TABLE_FULL);
	return 0;
}

SEC("netfilter")
int ip_received(struct bpf_nf_ctx *ctx)
{
	struct sk_buff *skb = ctx->skb;

	passed(skb, skb->data, 1);
	return NF_ACCEPT;
}

SEC("tp_btf/tcp_probe")
int BPF_PROG(tcp_received, struct sock *sk, struct sk_buff *skb)
{
	struct netacct_latency_in_key key = {};
	struct netacct_latency_in_value *value;
	struct netacct_latency_socket *queue;
	struct netacct_latency_pending *slot;
	struct tcp_sock *tp;
	__u64 now;
	__u32 ack, payload;

	if (nothing_followed() || !segment(skb, skb->head + skb->network_header, &key, &ack, &payload))
		return 0;
	value = bpf_map_lookup_elem(&inflight, &key);
	if (!value)
		return 0;
	now = bpf_ktime_get_ns();
	tp = TYPED(struct tcp_sock, sk);
	/* Data already received (a retransmission) is never read again: not followed further. */
	queue = bpf_sk_storage_get(&sockets, sk, NULL, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (queue && !queue->unwanted && seq_before(tp->rcv_nxt, key.seq + payload)) {
		if (queue->tail - queue->head < NETACCT_LATENCY_SOCKET_SLOTS) {
			slot = &queue->slot[queue->tail % NETACCT_LATENCY_SOCKET_SLOTS];
			slot->seq = key.seq;
			slot->ack = value->ack;
			slot->time_ns[0] = value->time_ns[0];
			slot->time_ns[1] = value->time_ns[1];
			slot->time_ns[2] = now;
			queue->tail++;
		} else {
			percpu_counter_inc(&counters, NETACCT_LATENCY_SOCKET_FULL);
		}
	}
	if (!bpf_map_delete_elem(&inflight, &key))
		follow_ended();
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

/* Ends the oldest waiting segment if its first byte is among those copied; 1 stops the walk. */
static long end_copied(__u32 index, struct copy_walk *w)
{
	struct netacct_latency_socket *queue = w->queue;
	struct netacct_latency_pending *slot;

	if (queue->head == queue->tail)
		return 1;
	slot = &queue->slot[queue->head % NETACCT_LATENCY_SOCKET_SLOTS];
	if (!seq_before(slot->seq, w->end))
		return 1;
	queue->head++;
	finish(slot->time_ns, w->now, NETACCT_LATENCY_IN, w->pid, w->comm, slot->seq, slot->ack, &w->where);
	return 0;
}

SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(copied, struct sk_buff *skb, int len)
{
	struct copy_walk w = {};
	struct sock *sk = skb->sk;

	if (!sk || sk->sk_protocol != IPPROTO_TCP)
		return 0;
	w.queue = bpf_sk_storage_get(&sockets, sk, NULL, 0);
	if (!w.queue || w.queue->head == w.queue->tail)
		return 0;
	w.pid = current_process(w.comm);
	if (pid_count && !pid_wanted(w.pid)) {
		w.queue->unwanted = 1;
		w.queue->head = w.queue->tail;
		return 0;
	}
	/* The bytes copied now: [copied_seq, copied_seq + len). */
	w.end = TYPED(struct tcp_sock, sk)->copied_seq + len;
	w.now = bpf_ktime_get_ns();
	/* The peer is the source: the socket's remote side. */
	w.where.family = socket_addresses(sk, w.where.daddr, w.where.saddr);
	w.where.sport = bpf_ntohs(sk->__sk_common.skc_dport);
	w.where.dport = sk->__sk_common.skc_num;
	bpf_loop(NETACCT_LATENCY_SOCKET_SLOTS, end_copied, &w, 0);
	return 0;
}

/* A followed segment dropped on the way: it leaves `inflight`, or the tail of its socket's queue. */
SEC("tp_btf/kfree_skb")
int BPF_PROG(dropped, struct sk_buff *skb, void *location, int reason, struct sock *rx_sk)
{
	struct netacct_latency_in_key key = {};
	struct netacct_latency_socket *queue;
	struct netacct_latency_pending *slot;
	__u32 ack, payload;

	if (!skb->skb_iif || nothing_followed())
		return 0;
	if (!segment(skb, skb->head + skb->network_header, &key, &ack, &payload))
		return 0;
	if (!bpf_map_delete_elem(&inflight, &key)) {
		follow_ended();
		percpu_counter_inc(&counters, NETACCT_LATENCY_DROPPED);
		return 0;
	}
	if (!rx_sk || rx_sk->sk_protocol != IPPROTO_TCP)
		return 0;
	queue = bpf_sk_storage_get(&sockets, rx_sk, NULL, 0);
	if (!queue || queue->head == queue->tail)
		return 0;
	slot = &queue->slot[(queue->tail - 1) % NETACCT_LATENCY_SOCKET_SLOTS];
	if (slot->seq == key.seq) {
		queue->tail--;
		percpu_counter_inc(&counters, NETACCT_LATENCY_DROPPED);
	}
	return 0;
}
