/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * nic: the records shared by nic.bpf.c and the Swift NIC module. This header is the only
 * definition of their layout (Swift imports it through CNetacct).
 */
#ifndef NETACCT_NIC_H
#define NETACCT_NIC_H

#ifndef __bpf__
#include <linux/types.h>
#endif

/* Interfaces counted at once, and queues per direction of each (a higher queue counts in the last). */
#define NETACCT_NIC_INTERFACES 16
#define NETACCT_NIC_QUEUES 64

/*
 * One queue of one direction of one interface, per CPU: frames as the device's own statistics
 * count them (`packets`, `bytes` with the link-layer header, a GSO/GRO super-packet once) and
 * the wire segments they stand for (`segments`, gso_segs).
 */
struct netacct_nic_counters {
	__u64 packets;
	__u64 bytes;
	__u64 segments;
};

enum netacct_nic_direction {
	NETACCT_NIC_TX = 0,
	NETACCT_NIC_RX = 1,
};

/* The counters' index: (interface slot * 2 + direction) * NETACCT_NIC_QUEUES + queue. */
#define NETACCT_NIC_ENTRIES (NETACCT_NIC_INTERFACES * 2 * NETACCT_NIC_QUEUES)

/*
 * Every namespace at once (-A): a queue of a direction of a device of a namespace (ifindex 1 is
 * in every one), the key of the `slots` hash, which gives it a slot of the `device_counters`
 * per-CPU array; 4096 such queues at once, past them a frame is counted in `lost` only.
 */
struct netacct_nic_device_key {
	__u32 netns;		/* the namespace's inode number */
	__u32 ifindex;
	__u16 direction;	/* enum netacct_nic_direction */
	__u16 queue;
};

/*
 * Each CPU's recent keys with their slots, a direct-mapped cache (the `cache` per-CPU array's
 * one value), each entry good while the `epoch` it was found in lasts.
 */
#define NETACCT_NIC_CACHE_BITS 4
#define NETACCT_NIC_CACHED (1 << NETACCT_NIC_CACHE_BITS)

struct netacct_nic_cached_slot {
	struct netacct_nic_device_key key;
	__u32 slot;
	__u32 epoch;
};

struct netacct_nic_slot_cache {
	struct netacct_nic_cached_slot entry[NETACCT_NIC_CACHED];
};

#define NETACCT_NIC_DEVICE_ENTRIES 4096

#endif /* NETACCT_NIC_H */
