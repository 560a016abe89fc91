// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * wire: frames and bytes on the wire per process and interface, and what no process owned.
 *
 * Every frame is counted twice over: in its interface's totals (all of them, whoever sent or
 * receives them), and in its owner's entry when a process owns its socket. User space finds the
 * unattributed traffic as the difference, so that attributed + unattributed = the interface's
 * totals by construction, and the totals are what the device itself counts.
 *
 * - Out: net_dev_start_xmit, the frame handed to the driver, link-layer header in skb->len.
 * - In, totals: netif_receive_skb (the link-layer header already pulled: hard_header_len added).
 * - Loopback counts a frame without its Ethernet header (loopback_xmit counts after pulling it):
 *   so does netacct there, so that lo's totals are lo's own counters too.
 * - In, attributed: cgroup_skb/ingress on the cgroup2 root, where the socket that takes the packet
 *   is known (sk_filter, before the socket's receive queue), for every socket of the host.
 * - Retransmissions: tcp_retransmit_skb and tcp_retransmit_synack, counted where TcpRetransSegs is.
 *
 * A socket's owner is a word in the socket's storage, never the task a softirq interrupted: the
 * process that created it (cgroup/sock_create), then the last process to send or receive on it
 * through a call (sock_send_length, sock_recv_length: a socket handed to a child that goes on
 * using it moves to the child). Those two fire as the call ends, after its frames went out, so
 * that the frames of the first call of a process on a socket handed to it are its own in other
 * ways: a TCP send makes its caller the owner as it starts (tcp_sendmsg_locked, Linux >= 6.16),
 * and a frame of another socket sent while a process other than its owner runs is held until
 * the call or what comes next says whose it is (hold). An accepted socket inherits its
 * listener's owner (BPF_F_CLONE) until the acceptor's first call; a request socket's SYN-ACK
 * counts for its listener. Packets of sockets with no owner (the kernel's control sockets' RSTs
 * and ICMP, TIME_WAIT's last ACK, forwarded frames, sockets that made no call since netacct
 * started) are unattributed.
 *
 * Needs Linux >= 6.3 (sock_send_length for the call owner rule; bpf_rdonly_cast and
 * bpf_cast_to_kern_ctx are 6.2). Every frame costs a lookup in its interface's per-CPU slot and,
 * when owned, a socket storage lookup and two array lookups (the cell the socket last counted
 * in, checked against the cell's identity: `cells`); a hash only when the socket has no cell
 * yet on that interface for that owner.
 */
#include "netdev.h"
#include "sockets.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "maps.h"
#include "typed.h"
#include "tcp.h"
#include "wire.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define AF_PACKET 17
#define BPF_F_CLONE (1U << 9)

/* The uapi contexts of the cgroup programs: only the fields read here, at their ABI offsets. */
struct bpf_sock {
	__u32 bound_dev_if;
	__u32 family;
	__u32 type;
	__u32 protocol;
};

struct __sk_buff {
	__u32 len;
	__u32 unread[41];
	union {
		struct bpf_sock *sk;	/* offset 168 */
		__u64 sk_word;
	};
};

/* include/linux/skbuff.h: kinds of segmentation a GSO packet asks for (an anonymous enum, the same since 2.6). */
#define SKB_GSO_TCPV4 (1 << 0)
#define SKB_GSO_TCPV6 (1 << 4)

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct netacct_wire_owner);
} owners SEC(".maps");

/*
 * The owners' counters, in cells: a per-CPU array of counters, whose identities are in
 * `cell_owners`, found by (owner, interface) in `cell_index`, taken from `free_cells` (given
 * back by user space once a retired owner's counters are read) or never used yet. A socket
 * keeps its last cell in its storage: a frame checks the cell is still its owner's on its
 * interface and counts there, with no hash on the way (wire.h, netacct_wire_owner.cell).
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NETACCT_WIRE_OWNER_ENTRIES);
	__type(key, __u32);
	__type(value, struct netacct_wire_counters);
} cells SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, NETACCT_WIRE_OWNER_ENTRIES);
	__type(key, __u32);
	__type(value, struct netacct_wire_cell);
} cell_owners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NETACCT_WIRE_OWNER_ENTRIES);
	__type(key, struct netacct_wire_key);
	__type(value, __u32);
} cell_index SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, NETACCT_WIRE_OWNER_ENTRIES);
	__type(value, __u32);
} free_cells SEC(".maps");

/* The number of cells (set before load, with the maps'), and where the never used ones start. */
const volatile __u32 cell_count = NETACCT_WIRE_OWNER_ENTRIES;
__u32 fresh_cells = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NETACCT_WIRE_INTERFACE_SLOTS);
	__type(key, __u32);
	__type(value, struct netacct_wire_interface);
} interfaces SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_HASH);
	__uint(max_entries, NETACCT_WIRE_MORE_INTERFACES);
	__type(key, struct netacct_wire_interface_key);
	__type(value, struct netacct_wire_interface);
} more_interfaces SEC(".maps");

/* Listening sockets by address: their owners' words (see owner_of). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NETACCT_WIRE_LISTENERS);
	__type(key, __u64);
	__type(value, __u64);
} listeners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, NETACCT_WIRE_PROCESSES);
	__type(key, struct netacct_wire_process_key);
	__type(value, struct netacct_wire_process);
} processes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NETACCT_WIRE_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* ---- Owners (process context only) ---- */

/* Families whose sockets put frames on an interface: IPv4, IPv6 and packet sockets. */
static __always_inline bool owned_family(__u32 family)
{
	return family == AF_INET || family == AF_INET6 || family == AF_PACKET;
}

/* Makes the calling process the owner `o` records, and remembers who it is. */
static __noinline void become_owner(struct netacct_wire_owner *o)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct netacct_wire_process who = {};
	struct netacct_wire_process_key key = {};

	if (!o)
		return;
	who.start_ns = task->group_leader->start_time;
	who.cgroup_id = bpf_get_current_cgroup_id();
	__builtin_memcpy(who.comm, task->group_leader->comm, sizeof(who.comm));
	key.tgid = task->tgid;
	key.start = (__u32)who.start_ns;
	bpf_map_update_elem(&processes, &key, &who, BPF_ANY);
	/* One store: a frame counted in softirq meanwhile sees the old owner or the new one. */
	o->word = (__u64)key.tgid << 32 | key.start;
}

SEC("cgroup/sock_create")
int own_created(struct bpf_sock *sk)
{
	struct netacct_wire_owner *o;

	if (!owned_family(sk->family))
		return 1;
	o = bpf_sk_storage_get(&owners, sk, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!o)
		percpu_counter_inc(&stats, NETACCT_WIRE_STAT_STORAGE_FULL);
	else
		become_owner(o);
	return 1;
}

#define PF_KTHREAD 0x00200000

/* Whether the calling task is a kernel thread (a worker, ksoftirqd, an idle task): never a socket's caller. */
static __always_inline bool in_kernel_thread(void)
{
	return bpf_get_current_task_btf()->flags & PF_KTHREAD;
}

static __always_inline void release_held(struct netacct_wire_owner *o, __u64 word, bool udp);

/*
 * A call on `sk`: its caller owns it from now on (a check of one word when it already does).
 * Frames held back for it (hold) are its own when this is a send of the process they were sent
 * by; any others are the owner's they were held from. `create`: give a socket with no storage
 * (made before netacct started) an owner.
 */
static __always_inline int own_called(struct sock *sk, bool send, bool create)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	struct netacct_wire_owner *o;
	__u32 held;

	if (!owned_family(sk->__sk_common.skc_family))
		return 0;
	o = bpf_sk_storage_get(&owners, sk, 0, create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
	if (!o) {
		if (create)
			percpu_counter_inc(&stats, NETACCT_WIRE_STAT_STORAGE_FULL);
		return 0;
	}
	held = o->held_caller;
	if (o->word >> 32 != tgid)
		become_owner(o);
	if (held)
		release_held(o, send && held == tgid ? o->word : o->held_word, sk->sk_protocol == IPPROTO_UDP);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(own_send, struct sock *sk, int ret, int flags)
{
	return own_called(sk, true, true);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(own_recv, struct sock *sk, int ret, int flags)
{
	return own_called(sk, false, true);
}

/*
 * Linux >= 6.16: a TCP send as it starts, before any of its frames (once per buffer it fills).
 * Only sockets that have an owner already, and never for a kernel thread (kTLS's worker pushes
 * a process's records): a kernel socket, or a worker, never becomes an owner here.
 */
SEC("tp_btf/tcp_sendmsg_locked")
int BPF_PROG(own_tcp_send, struct sock *sk)
{
	struct netacct_wire_owner *o = bpf_sk_storage_get(&owners, sk, 0, 0);

	/* The owner sending again (nearly always): one word compared. */
	if (!o || (o->word >> 32 == bpf_get_current_pid_tgid() >> 32 && !o->held_caller) || in_kernel_thread())
		return 0;
	return own_called(sk, true, false);
}

/* ---- Frames (any context) ---- */

/*
 * The segments `skb` stands for on the wire and their bytes, link-layer headers included:
 * `bytes` is its length with one link-layer header; each segment after the first repeats the
 * link, network and transport headers (the arithmetic of the kernel's qdisc_pkt_len_init).
 */
static __always_inline void on_the_wire(struct sk_buff *skb, __u32 bytes, __u32 link, __u64 *packets, __u64 *total)
{
	struct skb_shared_info *shinfo = TYPED(struct skb_shared_info, skb->head + skb->end);
	__u32 segments = shinfo->gso_segs, headers;

	*packets = 1;
	*total = bytes;
	if (segments <= 1)
		return;
	headers = link + (__u16)(skb->transport_header - skb->network_header);
	if (shinfo->gso_type & (SKB_GSO_TCPV4 | SKB_GSO_TCPV6)) {
		struct tcphdr *th = TYPED(struct tcphdr, skb->head + skb->transport_header);

		headers += (th->doff_res >> 4) * 4;
	} else {
		headers += sizeof(struct udphdr);
	}
	*packets = segments;
	*total = bytes + (__u64)(segments - 1) * headers;
}

#define IFF_LOOPBACK 0x8

/* The link-layer header bytes `dev` counts in each frame: none on loopback (see above). */
static __always_inline __u32 counted_header(struct net_device *dev)
{
	return dev->flags & IFF_LOOPBACK ? 0 : dev->hard_header_len;
}

/* The per-CPU totals of interface `dev` in the hash, created on its first frame. */
static __noinline struct netacct_wire_interface *more_interface(struct net_device *dev, __u32 netns, __u32 ifindex)
{
	struct netacct_wire_interface_key key = { .netns = netns, .ifindex = ifindex };
	struct netacct_wire_interface fresh = { .netns = netns, .ifindex = ifindex };

	if (!dev)
		return 0;
	bpf_probe_read_kernel(fresh.name, sizeof(fresh.name), dev->name);
	return lookup_or_init(&more_interfaces, &key, &fresh);
}

/*
 * The calling CPU's totals of interface `dev`: its slot of the array when that CPU's copy is
 * free or already this interface's (nearly always), else the hash.
 */
static __always_inline struct netacct_wire_interface *interface_totals(struct net_device *dev, __u32 netns,
									__u32 ifindex)
{
	__u32 slot = (ifindex ^ (netns * 2654435761u)) & (NETACCT_WIRE_INTERFACE_SLOTS - 1);
	struct netacct_wire_interface *i = bpf_map_lookup_elem(&interfaces, &slot), *more;

	if (!i)
		return 0;
	if (i->ifindex == ifindex && i->netns == netns)
		return i;
	if (i->ifindex == 0) {
		/* Per CPU, and no frame program nests in another on one CPU (softirq is off): no race. */
		bpf_probe_read_kernel(i->name, sizeof(i->name), dev->name);
		i->netns = netns;
		i->ifindex = ifindex;
		return i;
	}
	more = more_interface(dev, netns, ifindex);
	if (!more)
		percpu_counter_inc(&stats, NETACCT_WIRE_STAT_INTERFACES_FULL);
	return more;
}

/*
 * The cell (index + 1) of owner `word` on interface (netns, ifindex): the one `cell_index` has,
 * or a new one (identity first, then the index, so that a cell found is never half made). 0: no
 * cell free.
 */
static __noinline __u32 find_cell(__u64 word, __u32 netns, __u32 ifindex)
{
	struct netacct_wire_key key = { .tgid = word >> 32, .start = (__u32)word, .netns = netns, .ifindex = ifindex };
	struct netacct_wire_cell *identity;
	__u32 *found = bpf_map_lookup_elem(&cell_index, &key), index;

	if (found)
		return *found + 1;
	if (bpf_map_pop_elem(&free_cells, &index) != 0) {
		/* Read first: once all are used, the counter stops (it cannot wrap to a used one). */
		if (*(volatile __u32 *)&fresh_cells >= cell_count)
			return 0;
		index = __sync_fetch_and_add(&fresh_cells, 1);
		if (index >= cell_count)
			return 0;
	}
	identity = bpf_map_lookup_elem(&cell_owners, &index);
	if (!identity)
		return 0;
	identity->netns = netns;
	identity->ifindex = ifindex;
	identity->word = word;
	if (bpf_map_update_elem(&cell_index, &key, &index, BPF_NOEXIST) == 0)
		return index + 1;
	/* Another CPU made it first (or the index is full): this cell goes back unused. */
	identity->word = 0;
	bpf_map_push_elem(&free_cells, &index, BPF_ANY);
	found = bpf_map_lookup_elem(&cell_index, &key);
	return found ? *found + 1 : 0;
}

/*
 * The counters of owner `word` on interface (netns, ifindex), or NULL: no owner, or no room.
 * `o`: the storage of the socket the frame is of (NULL: none), whose cached cell is used when it
 * is still this owner's there, and replaced when not.
 */
static __always_inline struct netacct_wire_counters *owner_counters(struct netacct_wire_owner *o, __u64 word,
								    __u32 netns, __u32 ifindex)
{
	struct netacct_wire_cell *identity;
	struct netacct_wire_counters *c;
	__u64 cell;
	__u32 ref, index;

	if (!word)
		return 0;
	if (o && o->word == word) {
		cell = o->cell;
		if (cell >> 32 == ifindex && (__u32)cell) {
			index = (__u32)cell - 1;
			identity = bpf_map_lookup_elem(&cell_owners, &index);
			if (identity && identity->word == word && identity->ifindex == ifindex && identity->netns == netns) {
				c = bpf_map_lookup_elem(&cells, &index);
				if (c)
					return c;
			}
		}
	}
	ref = find_cell(word, netns, ifindex);
	if (!ref) {
		percpu_counter_inc(&stats, NETACCT_WIRE_STAT_OWNERS_FULL);
		return 0;
	}
	if (o && o->word == word)
		o->cell = (__u64)ifindex << 32 | ref;
	index = ref - 1;
	return bpf_map_lookup_elem(&cells, &index);
}

/*
 * The owner of the socket a frame was sent from: the word in its storage; for a request socket
 * (a SYN answered: the SYN-ACK), its listener's, which `listeners` keeps by address (the listener
 * pointer shares a union with a number, so the verifier sees a number there, not a socket).
 */
static __always_inline __u64 owner_of(struct sock *sk, struct netacct_wire_owner **storage)
{
	struct netacct_wire_owner *o;

	*storage = 0;
	if (sk->__sk_common.skc_state == TCP_NEW_SYN_RECV) {
		__u64 listener = (__u64)sk->__sk_common.skc_listener;
		__u64 *word = bpf_map_lookup_elem(&listeners, &listener);

		return word ? *word : 0;
	}
	o = bpf_sk_storage_get(&owners, sk, 0, 0);
	*storage = o;
	return o ? o->word : 0;
}

/* A socket that starts or stops listening: its owner is kept by address for its request sockets. */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(follow_listener, struct sock *sk, int oldstate, int newstate)
{
	__u64 address = (__u64)sk;
	struct netacct_wire_owner *o;

	if (newstate == TCP_LISTEN) {
		o = bpf_sk_storage_get(&owners, sk, 0, 0);
		if (o && o->word)
			bpf_map_update_elem(&listeners, &address, &o->word, BPF_ANY);
	} else if (oldstate == TCP_LISTEN) {
		bpf_map_delete_elem(&listeners, &address);
	}
	return 0;
}

/*
 * Frames held back in `o` (see hold) counted now for owner `word` (none: 0), from a UDP socket
 * or not. Any context; each held frame is taken once (exchanged for 0).
 */
static __always_inline void release_held(struct netacct_wire_owner *o, __u64 word, bool udp)
{
	struct netacct_wire_counters *c;
	__u64 packets, bytes;

	o->held_caller = 0;
	packets = __sync_lock_test_and_set(&o->held_packets, 0);
	bytes = __sync_lock_test_and_set(&o->held_bytes, 0);
	/* Either may be taken alone when a frame is held between the two exchanges. */
	if (!packets && !bytes)
		return;
	c = owner_counters(o, word, o->held_netns, o->held_ifindex);
	if (!c)
		return;
	/*
	 * Atomic adds: this runs in process context too (a call), where a frame program in softirq
	 * may interrupt it on this CPU and add to the same cell.
	 */
	__sync_fetch_and_add(&c->tx_packets, packets);
	__sync_fetch_and_add(&c->tx_bytes, bytes);
	if (udp) {
		__sync_fetch_and_add(&c->udp_tx_packets, packets);
		__sync_fetch_and_add(&c->udp_tx_bytes, bytes);
	}
}

/*
 * A frame of an owned socket that is not TCP's (UDP, ICMP, raw, packet: their frames come from
 * calls), sent while a user process other than its owner runs, is held back in the socket's
 * storage rather than counted: it is either a frame of a call that process is making on the
 * socket (handed to it: its first), which becomes that process's when its send ends and makes
 * it the owner (own_called), or one the kernel sent for the owner in whatever process it
 * interrupted (a neighbour's queue flushed in softirq, a qdisc another sender runs), which goes
 * to the owner it was held from at the socket's next call, next frame from elsewhere, or
 * release. Until then it is in its interface's totals only (unattributed). True when held.
 * (TCP sends frames in softirq all the time; its sends change the owner as they start.)
 */
static __always_inline bool hold(struct netacct_wire_owner *o, bool udp, __u32 netns, __u32 ifindex, __u64 packets,
				 __u64 bytes)
{
	__u32 caller = bpf_get_current_pid_tgid() >> 32;
	__u64 word = o->word;

	if (o->held_caller && (o->held_caller != caller || o->held_word != word || o->held_netns != netns ||
			       o->held_ifindex != ifindex))
		release_held(o, o->held_word, udp);
	if (!word || word >> 32 == caller || in_kernel_thread())
		return false;
	if (!o->held_caller) {
		o->held_word = word;
		o->held_netns = netns;
		o->held_ifindex = ifindex;
		o->held_caller = caller;
	}
	__sync_fetch_and_add(&o->held_packets, packets);
	__sync_fetch_and_add(&o->held_bytes, bytes);
	return true;
}

/* A socket closed: what it still held is its owner's (see hold). */
SEC("cgroup/sock_release")
int release_socket(struct bpf_sock *sk)
{
	struct netacct_wire_owner *o = bpf_sk_storage_get(&owners, sk, 0, 0);

	if (o && o->held_caller)
		release_held(o, o->held_word, sk->protocol == IPPROTO_UDP);
	return 1;
}

SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(count_tx, struct sk_buff *skb, struct net_device *dev)
{
	__u32 netns = dev->nd_net.net->ns.inum, ifindex = dev->ifindex;
	struct netacct_wire_interface *totals = interface_totals(dev, netns, ifindex);
	struct netacct_wire_counters *c;
	struct netacct_wire_owner *o;
	struct sock *sk = skb->sk;
	__u64 packets, bytes, word;
	__u32 link;

	link = counted_header(dev);
	/* skb->len has the header the device put in front (dev_hard_header); loopback counts without. */
	on_the_wire(skb, skb->len - dev->hard_header_len + link, link, &packets, &bytes);
	if (totals) {
		totals->tx_packets += packets;
		totals->tx_bytes += bytes;
	}
	if (!sk)
		return 0;
	if (sk->__sk_common.skc_state == TCP_NEW_SYN_RECV || sk->sk_protocol == IPPROTO_TCP) {
		word = owner_of(sk, &o);
	} else {
		o = bpf_sk_storage_get(&owners, sk, 0, 0);
		if (!o || hold(o, sk->sk_protocol == IPPROTO_UDP, netns, ifindex, packets, bytes))
			return 0;
		word = o->word;
	}
	c = owner_counters(o, word, netns, ifindex);
	if (!c)
		return 0;
	c->tx_packets += packets;
	c->tx_bytes += bytes;
	/* A request socket is TCP's; a full one says its protocol. */
	if (sk->__sk_common.skc_state != TCP_NEW_SYN_RECV && sk->sk_protocol == IPPROTO_UDP) {
		c->udp_tx_packets += packets;
		c->udp_tx_bytes += bytes;
	}
	return 0;
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(count_rx, struct sk_buff *skb)
{
	struct net_device *dev = skb->dev;
	struct netacct_wire_interface *totals = interface_totals(dev, dev->nd_net.net->ns.inum, dev->ifindex);
	__u32 link = counted_header(dev);
	__u64 packets, bytes;

	if (!totals)
		return 0;
	on_the_wire(skb, skb->len + link, link, &packets, &bytes);
	totals->rx_packets += packets;
	totals->rx_bytes += bytes;
	return 0;
}

/* A packet a socket takes (its filter runs before the receive queue): counted for the socket's owner. */
SEC("cgroup_skb/ingress")
int count_delivered(struct __sk_buff *ctx)
{
	struct netacct_wire_owner *o;
	struct netacct_wire_counters *c;
	struct net_device *dev;
	struct bpf_sock *sk = ctx->sk;
	struct sk_buff *skb;
	__u64 packets, bytes;
	__u32 link;

	if (!sk)
		return 1;
	sk = bpf_sk_fullsock(sk);
	if (!sk)
		return 1;
	skb = bpf_cast_to_kern_ctx(ctx);
	dev = skb->dev;
	if (!dev)
		return 1;
	o = bpf_sk_storage_get(&owners, sk, 0, 0);
	if (!o)
		return 1;
	c = owner_counters(o, o->word, dev->nd_net.net->ns.inum, dev->ifindex);
	if (!c)
		return 1;
	link = counted_header(dev);
	on_the_wire(skb, skb->len + link, link, &packets, &bytes);
	c->rx_packets += packets;
	c->rx_bytes += bytes;
	if (sk->protocol == IPPROTO_UDP) {
		c->udp_rx_packets += packets;
		c->udp_rx_bytes += bytes;
	}
	return 1;
}

/* A TCP socket's segments sent again, on the interface of its cached route (0: none cached). */
static __always_inline void count_resent(struct sock *sk, __u64 segments, __u64 bytes)
{
	struct dst_entry *dst = sk->sk_dst_cache;
	struct net_device *dev = dst ? dst->dev : 0;
	struct netacct_wire_counters *c;
	struct netacct_wire_owner *o;
	__u64 word = owner_of(sk, &o);

	c = owner_counters(o, word, sk->__sk_common.skc_net.net->ns.inum, dev ? dev->ifindex : 0);
	if (!c)
		return;
	/* A retransmission may be sent in process context (release_sock), interruptible by softirq. */
	__sync_fetch_and_add(&c->retransmitted_segments, segments);
	__sync_fetch_and_add(&c->retransmitted_bytes, bytes);
}

/* Linux >= 6.12 (the err argument): counted where TcpRetransSegs counts it. */
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(count_retransmit, struct sock *sk, struct sk_buff *skb, int err)
{
	if (retransmission_counted(err))
		count_resent(sk, tcp_skb_segments(skb), skb->len);
	return 0;
}

/* Older kernels fire it only for a retransmission that went out. */
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(count_retransmit_sent, struct sock *sk, struct sk_buff *skb)
{
	count_resent(sk, tcp_skb_segments(skb), skb->len);
	return 0;
}

/* A listener's SYN-ACK sent again (sk: the listener): one segment, no payload. */
SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(count_synack_retransmit, struct sock *sk)
{
	count_resent(sk, 1, 0);
	return 0;
}
