/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * What latency_in.bpf.c and latency_out.bpf.c share: the filters, the maps a followed segment
 * ends in (reports or histograms) and the helpers that end it. Included by each once.
 *
 * The decision to follow a segment is made once, at its first point (the filters, then 1 in
 * `sample` at random). When most segments are not followed (`gated`: sampling or a filter), the
 * later points look one up only while something is followed at all (`followed`, a count the
 * programs keep), so a segment not followed costs them a load; when
 * every segment is, the count would only cost an atomic add on a shared line per point.
 */
#ifndef NETACCT_LATENCY_BPF_H
#define NETACCT_LATENCY_BPF_H

#include "latency.h"
#include "histogram.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set before load. */
const volatile __u16 family = 0;		/* AF_INET or AF_INET6; 0: both */
const volatile __u16 sport = 0;			/* the packet's source port; 0: any */
const volatile __u16 dport = 0;			/* its destination port; 0: any */
const volatile __u32 sample = 1;		/* follow 1 segment in `sample` */
const volatile __u32 sample_below = 0;		/* a random u32 below this: 2^32 / sample (no division) */
const volatile __u32 netns_inum = 0;		/* only this network namespace's packets; 0: every one's */
const volatile bool histograms_only = false;	/* --hist: count, report nothing */
const volatile bool gated = false;		/* keep `followed` and look at it first */
const volatile __u32 pids[NETACCT_LATENCY_PIDS] = {};	/* only these processes' sockets */
const volatile __u32 pid_count = 0;

/* Reports never wake user space, which looks every 100 ms. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct netacct_latency_histograms);
} histograms SEC(".maps");

/* Every namespace (netns_inum 0): the histograms of each namespace, by generation. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 2 * NETACCT_LATENCY_NAMESPACES);
	__type(key, struct netacct_latency_namespace_key);
	__type(value, struct netacct_latency_histograms);
} namespace_histograms SEC(".maps");

/* A namespace's first histograms: never written, so all zero (too large for the stack). */
static struct netacct_latency_histograms empty_histograms;

/* Which of the two `histograms` the programs fill: user space flips it, then reads the other. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} generation SEC(".maps");

/* How many segments are followed now (with `gated`): waiting in their sockets' queues. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} followed SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NETACCT_LATENCY_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

static __always_inline __u64 *followed_count(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&followed, &zero);
}

/* True while no segment is followed: a later point has nothing to look up. */
static __always_inline bool nothing_followed(void)
{
	__u64 *count;

	if (!gated)
		return false;
	count = followed_count();
	return !count || !*count;
}

static __always_inline void follow_count(__s64 delta)
{
	__u64 *count;

	if (!gated)
		return;
	count = followed_count();
	if (count)
		__sync_fetch_and_add(count, delta);
}

static __always_inline void follow_started(void)
{
	follow_count(1);
}

static __always_inline void follow_ended(void)
{
	follow_count(-1);
}

static __always_inline bool pid_wanted(__u32 pid)
{
	return listed(pids, NETACCT_LATENCY_PIDS, pid_count, pid);
}

/*
 * A fast random number per CPU: xorshift64* (Marsaglia; Vigna), seeded once from the kernel's
 * bpf_get_prandom_u32, which costs several times more per call here. Good enough to pick
 * segments; not for secrets.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} random_state SEC(".maps");

static __always_inline __u32 fast_random(void)
{
	__u32 zero = 0;
	__u64 *state = bpf_map_lookup_elem(&random_state, &zero), x;

	if (!state)
		return bpf_get_prandom_u32();
	x = *state;
	if (!x)
		x = ((__u64)bpf_get_prandom_u32() << 32) | bpf_get_prandom_u32() | 1;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return (x * 0x2545F4914F6CDD1DULL) >> 32;
}

/* 1 in `sample`, at random. */
static __always_inline bool sampled(void)
{
	return sample <= 1 || fast_random() < sample_below;
}

/* Whether a filter needs the packet's headers to decide. */
static __always_inline bool filtered(void)
{
	return family || sport || dport;
}

/* The filters on a segment's ports and family: its first point's decision, with sampled(). */
static __always_inline bool wanted(__u16 packet_family, __u16 source, __u16 destination)
{
	return !((family && packet_family != family) || (sport && source != sport) || (dport && destination != dport));
}

static __always_inline bool follow(__u16 packet_family, __u16 source, __u16 destination)
{
	return wanted(packet_family, source, destination) && sampled();
}

/*
 * The stages between the points' times (0: not passed). A missed point's stage is marked and
 * its time goes to the next; a clock read on another CPU a little behind counts as no time.
 */
static __always_inline __u64 stages(const __u64 time_ns[NETACCT_LATENCY_STAGES], __u64 end_ns,
				    __u64 stage_ns[NETACCT_LATENCY_STAGES], __u8 *missed)
{
	__u64 last = time_ns[0], point;

	*missed = 0;
	for (int i = 0; i < NETACCT_LATENCY_STAGES; i++) {
		point = i + 1 < NETACCT_LATENCY_STAGES ? time_ns[i + 1] : end_ns;
		if (!point) {
			*missed |= 1 << i;
			stage_ns[i] = 0;
			continue;
		}
		stage_ns[i] = point > last ? point - last : 0;
		if (point > last)
			last = point;
	}
	return last - time_ns[0];
}

/* Counts a finished segment's stages in the histograms user space is not reading. */
static __always_inline void count_in_histograms(const __u64 stage_ns[NETACCT_LATENCY_STAGES], __u8 missed,
						__u64 total_ns, __u32 netns)
{
	struct netacct_latency_histograms *h;
	__u32 zero = 0, *slot = bpf_map_lookup_elem(&generation, &zero);
	__u32 index = slot ? *slot & 1 : 0;
	struct netacct_latency_namespace_key key = { .generation = index, .netns = netns };

	if (netns_inum) {
		h = bpf_map_lookup_elem(&histograms, &index);
	} else {
		h = lookup_or_init(&namespace_histograms, &key, &empty_histograms);
		if (!h)
			percpu_counter_inc(&counters, NETACCT_LATENCY_NAMESPACES_FULL);
	}
	if (!h)
		return;
	for (int i = 0; i < NETACCT_LATENCY_STAGES; i++) {
		if (!(missed & (1 << i)))
			histogram_add(&h->stage[i], stage_ns[i]);
	}
	histogram_add(&h->stage[NETACCT_LATENCY_STAGES], total_ns);
}

/* Reserves a report, its times filled in; NULL (counted) when the ring buffer is full. */
static __always_inline struct netacct_latency_event *report(const __u64 time_ns[NETACCT_LATENCY_STAGES], __u64 end_ns,
							    __u8 direction, __u32 netns)
{
	struct netacct_latency_event *e;
	__u64 stage_ns[NETACCT_LATENCY_STAGES];
	__u8 missed;
	__u64 total = stages(time_ns, end_ns, stage_ns, &missed);

	if (histograms_only) {
		count_in_histograms(stage_ns, missed, total, netns);
		return NULL;
	}
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		percpu_counter_inc(&counters, NETACCT_LATENCY_LOST);
		return NULL;
	}
	e->time_ns = time_ns[0];
	for (int i = 0; i < NETACCT_LATENCY_STAGES; i++)
		e->stage_ns[i] = stage_ns[i];
	e->total_ns = total;
	e->missed = missed;
	e->direction = direction;
	e->padding[0] = e->padding[1] = 0;
	return e;
}

/* Where a reported segment went, as its last point finds it once for all the segments it ends. */
struct endpoints {
	__u8 saddr[16];
	__u8 daddr[16];
	__u8 nat_addr[16];	/* out: the source on the wire, when NAT changed it */
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u16 nat_port;		/* 0: no NAT */
	__u32 netns;		/* the socket's network namespace */
} __attribute__((aligned(8)));	/* IPv4 addresses are written as one word */

/* Ends a followed segment: a report (or, with --hist, a count). */
static __always_inline void finish(const __u64 time_ns[NETACCT_LATENCY_STAGES], __u64 end_ns, __u8 direction, __u32 pid,
				   const char comm[NETACCT_LATENCY_COMM_LEN], __u32 seq, __u32 ack,
				   const struct endpoints *where)
{
	struct netacct_latency_event *e = report(time_ns, end_ns, direction, where->netns);

	if (!e)
		return;
	e->pid = pid;
	__builtin_memcpy(e->comm, comm, sizeof(e->comm));
	e->seq = seq;
	e->ack = ack;
	e->family = where->family;
	__builtin_memcpy(e->saddr, where->saddr, 16);
	__builtin_memcpy(e->daddr, where->daddr, 16);
	e->sport = where->sport;
	e->dport = where->dport;
	__builtin_memcpy(e->nat_addr, where->nat_addr, 16);
	e->nat_port = where->nat_port;
	e->netns = where->netns;
	e->padding2 = 0;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
}

/* Whether a packet or socket of namespace `inum` is looked at: one namespace's, or (0) any. */
static __always_inline bool namespace_wanted(__u32 inum)
{
	return !netns_inum || inum == netns_inum;
}

/* The current process's TGID and its leader's name. */
static __always_inline __u32 current_process(char comm[NETACCT_LATENCY_COMM_LEN])
{
	struct task_struct *task = bpf_get_current_task_btf();

	__builtin_memcpy(comm, task->group_leader->comm, NETACCT_LATENCY_COMM_LEN);
	return task->tgid;
}

/* A socket's family as its packets have it: IPv4 for an IPv6 socket talking IPv4 too. */
static __always_inline __u16 socket_family(struct sock *sk)
{
	struct sock_common *c = &sk->__sk_common;
	__be32 *v6 = c->skc_v6_daddr.in6_u.u6_addr32;

	if (c->skc_family == AF_INET6 && !(v6[0] == 0 && v6[1] == 0 && v6[2] == bpf_htonl(0xFFFF)))
		return AF_INET6;
	return AF_INET;
}

/* A socket's addresses: IPv4 for an IPv4 socket and for an IPv6 one talking IPv4 (::ffff:a.b.c.d). */
static __always_inline __u16 socket_addresses(struct sock *sk, __u8 local[16], __u8 remote[16])
{
	struct sock_common *c = &sk->__sk_common;

	if (socket_family(sk) == AF_INET6) {
		__builtin_memcpy(local, c->skc_v6_rcv_saddr.in6_u.u6_addr8, 16);
		__builtin_memcpy(remote, c->skc_v6_daddr.in6_u.u6_addr8, 16);
		return AF_INET6;
	}
	*(__be32 *)local = c->skc_rcv_saddr;
	*(__be32 *)remote = c->skc_daddr;
	return AF_INET;
}

#endif /* NETACCT_LATENCY_BPF_H */
