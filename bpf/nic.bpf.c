// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * nic: frames, bytes and wire segments per interface, per direction and per queue, from the
 * net_dev_start_xmit (TX) and netif_receive_skb (RX) tracepoints.
 *
 * Only the interfaces user space asks for are counted (their ifindexes are read-only globals,
 * found by a scan of at most 16: no hash per packet), in one network namespace (an ifindex is
 * unique only within one). Counters are per CPU, indexed by interface slot, direction and
 * queue: plain increments, summed by user space.
 *
 * With `netns_inum` 0 every device of every namespace is counted instead (-A, which follows
 * namespaces made later from their first frame): each (namespace, ifindex, direction, queue)
 * gets a slot of a per-CPU array on its first frame, which each CPU keeps in a small cache, so
 * that a frame costs an array lookup or two as in one namespace, and a hash lookup only when a
 * CPU meets a device queue it has not met lately.
 */
#include "netdev.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "maps.h"
#include "nic.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* The interfaces counted, and how many of the slots are used (set before load). */
const volatile __u32 ifindexes[NETACCT_NIC_INTERFACES] = {};
const volatile __u32 interface_count = 0;
/* The network namespace's inode number (/proc/self/ns/net): devices elsewhere are not counted; 0: every namespace's. */
const volatile __u32 netns_inum = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NETACCT_NIC_ENTRIES);
	__type(key, __u32);
	__type(value, struct netacct_nic_counters);
} counters SEC(".maps");

/*
 * Every namespace: a device queue's slot (its key's), given on its first frame from the free
 * slots user space keeps in `free_slots` (and gives back, zeroed, once the device has gone).
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NETACCT_NIC_DEVICE_ENTRIES);
	__type(key, struct netacct_nic_device_key);
	__type(value, __u32);
} slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, NETACCT_NIC_DEVICE_ENTRIES);
	__type(value, __u32);
} free_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NETACCT_NIC_DEVICE_ENTRIES);
	__type(key, __u32);
	__type(value, struct netacct_nic_counters);
} device_counters SEC(".maps");

/*
 * A hash lookup per frame costs three times the rest: each CPU keeps the keys it met and their
 * slots, one per entry of a small direct-mapped cache (the entry a cheap mix of the key's
 * fields picks: one compare per frame), each good in the `epoch` it was found in. User space
 * moves the epoch on when it takes the slots of devices gone, and again when it gives them back
 * a second later (after any program that read them then has long finished), so no CPU counts
 * into a slot that has changed hands; it never writes the caches.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct netacct_nic_slot_cache);
} cache SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} epoch SEC(".maps");

/* Frames of every-namespace mode with no slot left (per CPU, one entry). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/*
 * A typed view of kernel memory that the verifier lets the program read directly (Linux >= 6.2):
 * the skb's shared info has no pointer to it, only an offset, and bpf_probe_read_kernel() (a
 * helper call per frame) costs more than everything else here. Weak: on an older kernel only
 * the *_read programs load, which read it with the helper instead.
 */
extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym __weak;

/* The slot of a device counted here, or -1. */
static __always_inline int slot_of(struct net_device *dev)
{
	__u32 ifindex = dev->ifindex;

	if (dev->nd_net.net->ns.inum != netns_inum)
		return -1;
	for (int i = 0; i < NETACCT_NIC_INTERFACES; i++) {
		if (i >= interface_count)
			break;
		if (ifindexes[i] == ifindex)
			return i;
	}
	return -1;
}

static __always_inline bool same_key(const struct netacct_nic_device_key *a, const struct netacct_nic_device_key *b)
{
	return a->netns == b->netns && a->ifindex == b->ifindex && a->direction == b->direction && a->queue == b->queue;
}

/* Every namespace: the slot of a device queue, found in this CPU's cache, else in `slots`, else
 * given from the free ones (false: none left). */
static __always_inline bool slot_of_key(const struct netacct_nic_device_key *key, __u32 *slot)
{
	struct netacct_nic_slot_cache *c;
	struct netacct_nic_cached_slot *e;
	__u32 zero = 0, *found, *now;

	c = bpf_map_lookup_elem(&cache, &zero);
	now = bpf_map_lookup_elem(&epoch, &zero);
	if (!c || !now)
		return false;
	e = &c->entry[(key->netns ^ key->ifindex * 7 ^ key->direction * 3 ^ key->queue * 5) % NETACCT_NIC_CACHED];
	if (e->epoch == *now && same_key(&e->key, key)) {
		*slot = e->slot;
		return true;
	}
	found = bpf_map_lookup_elem(&slots, key);
	if (found) {
		*slot = *found;
	} else {
		if (bpf_map_pop_elem(&free_slots, slot))
			return false;
		if (bpf_map_update_elem(&slots, key, slot, BPF_NOEXIST)) {
			/* Another CPU gave it one meanwhile: ours goes back. */
			bpf_map_push_elem(&free_slots, slot, 0);
			found = bpf_map_lookup_elem(&slots, key);
			if (!found)
				return false;
			*slot = *found;
		}
	}
	*e = (struct netacct_nic_cached_slot){ .key = *key, .slot = *slot, .epoch = *now };
	return true;
}

/* Every namespace: the device's queue's counters (NULL, counted: no slot left). */
static __always_inline struct netacct_nic_counters *device_counters_of(struct net_device *dev, __u32 direction, __u32 queue)
{
	struct netacct_nic_device_key key = {
		.netns = dev->nd_net.net->ns.inum,
		.ifindex = dev->ifindex,
		.direction = direction,
		.queue = queue,
	};
	__u32 slot = 0;

	if (!slot_of_key(&key, &slot)) {
		percpu_counter_inc(&lost, 0);
		return NULL;
	}
	return bpf_map_lookup_elem(&device_counters, &slot);
}

/* Counts one frame of `skb` on `dev`; `header` is what the device counts beyond skb->len. */
static __always_inline void count_frame(struct sk_buff *skb, struct net_device *dev, __u32 direction,
					__u32 queue, __u32 header, bool typed)
{
	struct netacct_nic_counters *c;
	struct skb_shared_info *shinfo;
	__u16 segments;
	__u32 key;
	int slot;

	if (queue >= NETACCT_NIC_QUEUES)
		queue = NETACCT_NIC_QUEUES - 1;
	if (!netns_inum) {
		c = device_counters_of(dev, direction, queue);
	} else {
		slot = slot_of(dev);
		if (slot < 0)
			return;
		key = ((__u32)slot * 2 + direction) * NETACCT_NIC_QUEUES + queue;
		c = bpf_map_lookup_elem(&counters, &key);
	}
	if (!c)
		return;
	if (typed) {
		shinfo = bpf_rdonly_cast(skb->head + skb->end, bpf_core_type_id_kernel(struct skb_shared_info));
		segments = shinfo->gso_segs;
	} else {
		shinfo = (struct skb_shared_info *)(skb->head + skb->end);
		segments = BPF_CORE_READ(shinfo, gso_segs);
	}
	c->packets += 1;
	c->bytes += skb->len + header;
	c->segments += segments ? segments : 1;
}

static __always_inline void count_tx_frame(struct sk_buff *skb, struct net_device *dev, bool typed)
{
	count_frame(skb, dev, NETACCT_NIC_TX, skb->queue_mapping, 0, typed);
}

/* The link-layer header has been pulled by now (eth_type_trans): the device counted it. */
static __always_inline void count_rx_frame(struct sk_buff *skb, bool typed)
{
	struct net_device *dev = skb->dev;
	__u16 queue = skb->queue_mapping; /* the RX queue + 1, or 0 when none was recorded */

	count_frame(skb, dev, NETACCT_NIC_RX, queue ? queue - 1 : 0, dev->hard_header_len, typed);
}

SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(count_tx, struct sk_buff *skb, struct net_device *dev)
{
	count_tx_frame(skb, dev, true);
	return 0;
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(count_rx, struct sk_buff *skb)
{
	count_rx_frame(skb, true);
	return 0;
}

/* The same for kernels without bpf_rdonly_cast (before 6.2): loaded instead of the two above. */
SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(count_tx_read, struct sk_buff *skb, struct net_device *dev)
{
	count_tx_frame(skb, dev, false);
	return 0;
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(count_rx_read, struct sk_buff *skb)
{
	count_rx_frame(skb, false);
	return 0;
}
