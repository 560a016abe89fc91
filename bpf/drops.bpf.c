// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * drops: every incoming TCP or UDP packet the kernel frees as dropped (skb:kfree_skb with a drop
 * reason), with the socket it was for. A socket's owner is recorded where its process acts on it
 * (bind, listen, connect, accept, a first send: the caller's context) in `owners`, keyed by the
 * socket's inode, which user space fills at start with the sockets that exist; a drop is never
 * attributed to the task its softirq interrupted.
 *
 * The reason filter is the first thing done: a reason not asked for costs a bit test. Then only
 * packets that came in on an interface of one network namespace (or of any, with netns_inum 0:
 * -A), over IPv4 or IPv6, to TCP or UDP; each drop carries its namespace. In line mode each drop is an event in a ring buffer (losses counted); with --summary the
 * drops are only counted here, by reason, protocol and socket, and nothing is lost.
 *
 * Needs Linux >= 6.12 (kfree_skb's rx_sk argument) and the bpf_rdonly_cast kfunc (6.2).
 */
#include "netdev.h"
#include "sockets.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "maps.h"
#include "typed.h"
#include "fd.h"
#include "packet.h"
#include "filters.h"
#include "drops.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Set before load. */
const volatile __u64 reasons[NETACCT_DROPS_REASON_WORDS] = {};	/* a bit per reason shown */
const volatile bool every_reason = false;	/* reasons >= NETACCT_DROPS_REASONS too */
const volatile __u16 family = 0;		/* AF_INET or AF_INET6; 0: both */
const volatile __u8 protocol = 0;		/* IPPROTO_TCP or IPPROTO_UDP; 0: both */
const volatile __u32 netns_inum = 0;		/* /proc/self/ns/net's inode; 0: every namespace */
const volatile bool summary = false;		/* count, send no events */
const volatile __u32 pids[NETACCT_DROPS_PIDS] = {};	/* only drops for sockets of these */
const volatile __u32 pid_count = 0;

/*
 * Events never wake user space, which looks every 100 ms (a wakeup, or even asking the ring how
 * full it is, costs more per drop than the rest): 8 MiB hold 116,000 drops, a quarter of a
 * second of a 450,000 drops/s flood.
 */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");

/* The least recently written owners go first when it is full: sockets come and go. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct netacct_drop_owner);
} owners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct netacct_drop_key);
	__type(value, __u64);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NETACCT_DROPS_TOTALS);
	__type(key, __u32);
	__type(value, __u64);
} totals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NETACCT_DROPS_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");


/* Records the current process as the owner of `sk` (unless one is known and !replace). */
static __always_inline void own(struct sock *sk, bool replace)
{
	struct netacct_drop_owner owner = {};
	struct task_struct *task;
	__u64 inode;

	if (!sk)
		return;
	inode = socket_inode(sk);
	if (!inode || (!replace && bpf_map_lookup_elem(&owners, &inode)))
		return;
	task = bpf_get_current_task_btf();
	owner.pid = task->tgid;
	owner.cgroup = bpf_get_current_cgroup_id();
	__builtin_memcpy(owner.comm, task->group_leader->comm, sizeof(owner.comm));
	bpf_map_update_elem(&owners, &inode, &owner, BPF_ANY);
}

static __always_inline bool owner_wanted(__u64 inode)
{
	struct netacct_drop_owner *owner = bpf_map_lookup_elem(&owners, &inode);

	return owner && listed(pids, NETACCT_DROPS_PIDS, pid_count, owner->pid);
}

static __always_inline bool reason_wanted(__u32 reason)
{
	if (reason >= NETACCT_DROPS_REASONS)
		return every_reason;
	return reasons[reason / 64] & (1ULL << (reason % 64));
}

/* The addresses, ports and protocol of a packet, from its network header. */
struct packet {
	struct addresses a;
	__u16 sport;
	__u16 dport;
};

static __always_inline bool parse(struct sk_buff *skb, struct packet *p)
{
	unsigned char *network = skb->head + skb->network_header;
	struct ports *ports;
	__u32 length, transport = network_header(network, bpf_ntohs(skb->protocol), &p->a, &length);

	/* An IPv6 extension header first: not TCP or UDP here. */
	if (!transport || (p->a.protocol != IPPROTO_TCP && p->a.protocol != IPPROTO_UDP))
		return false;
	ports = (struct ports *)TYPED(struct udphdr, network + transport);
	p->sport = bpf_ntohs(ports->source);
	p->dport = bpf_ntohs(ports->dest);
	return true;
}

/* The socket's inode (0: none, or a minisock with no file) and its TCP state. */
static __always_inline __u64 socket_of(struct sock *sk, __u8 *state)
{
	if (!sk)
		return 0;
	*state = sk->__sk_common.skc_state;
	if (*state == TCP_NEW_SYN_RECV)		/* a SYN answered: the listener's */
		sk = TYPED(struct sock, (void *)sk->__sk_common.skc_listener); /* a union member: a scalar to the verifier */
	else if (*state == TCP_TIME_WAIT)	/* no file any more */
		return 0;
	if (!sk)
		return 0;
	return socket_inode(sk);
}

static __always_inline void count(__u64 inode, __u32 reason, __u8 proto, __u32 netns)
{
	struct netacct_drop_key key = { .socket_inode = inode, .reason = reason, .netns = netns, .protocol = proto };
	__u64 *value, zero = 0;

	if (reason < NETACCT_DROPS_REASONS)
		percpu_counter_inc(&totals, reason * 2 + (proto == IPPROTO_UDP));
	/* Per CPU: an add of this CPU's own value. */
	value = lookup_or_init(&counts, &key, &zero);
	if (value)
		*value += 1;
	else
		percpu_counter_inc(&counters, NETACCT_DROPS_UNKEYED);
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(dropped, struct sk_buff *skb, void *location, int reason, struct sock *rx_sk)
{
	struct netacct_drop_event *e;
	struct net_device *dev;
	struct sock *sk;
	struct net *net;
	struct packet p = {};
	__u8 state = 0;
	__u64 inode;

	if (!reason_wanted(reason))
		return 0;
	if (!skb->skb_iif)		/* sent by this host, not received */
		return 0;
	/* The namespace: the device's, or (TCP may have cleared skb->dev by now) the socket's. */
	sk = rx_sk ? rx_sk : skb->sk;
	dev = skb->dev;
	net = dev ? dev->nd_net.net : sk ? sk->__sk_common.skc_net.net : NULL;
	if (!net || (netns_inum && net->ns.inum != netns_inum))
		return 0;
	if (!parse(skb, &p))
		return 0;
	if ((family && p.a.family != family) || (protocol && p.a.protocol != protocol))
		return 0;
	inode = socket_of(sk, &state);
	if (p.a.protocol != IPPROTO_TCP)
		state = 0;
	if (pid_count && !owner_wanted(inode))
		return 0;
	if (summary) {
		count(inode, reason, p.a.protocol, net->ns.inum);
		return 0;
	}
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		percpu_counter_inc(&counters, NETACCT_DROPS_LOST);
		return 0;
	}
	e->time_ns = bpf_ktime_get_ns();
	e->socket_inode = inode;
	e->reason = reason;
	e->ifindex = skb->skb_iif;
	__builtin_memcpy(e->saddr, p.a.saddr, 16);
	__builtin_memcpy(e->daddr, p.a.daddr, 16);
	e->sport = p.sport;
	e->dport = p.dport;
	e->family = p.a.family;
	e->protocol = p.a.protocol;
	e->state = state;
	e->netns = net->ns.inum;
	e->padding = 0;
	bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);
	return 0;
}

/* Where a process makes a socket its own, in its context: the socket behind the call's fd. */
SEC("tracepoint/syscalls/sys_enter_bind")
int owner_bind(struct syscall_enter *ctx)
{
	own(socket_of_fd(ctx->args[0]), true);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_listen")
int owner_listen(struct syscall_enter *ctx)
{
	own(socket_of_fd(ctx->args[0]), true);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_connect")
int owner_connect(struct syscall_enter *ctx)
{
	own(socket_of_fd(ctx->args[0]), true);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int owner_accept4(struct syscall_exit *ctx)
{
	own(socket_of_fd(ctx->ret), true);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept")
int owner_accept(struct syscall_exit *ctx)
{
	own(socket_of_fd(ctx->ret), true);
	return 0;
}

/* A UDP socket that was never bound gets its port on its first send. */
SEC("tp_btf/sock_send_length")
int BPF_PROG(owner_send, struct sock *sk, int ret, int flags)
{
	if (sk->sk_protocol == IPPROTO_UDP)
		own(sk, false);
	return 0;
}
