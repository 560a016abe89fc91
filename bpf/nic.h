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
 * Every namespace at once (-A): the `devices` hash's key, a queue of a direction of a device of
 * a namespace (ifindex 1 is in every one). Entries for 4096 such queues: past them a frame is
 * counted in `lost` only.
 */
struct netacct_nic_device_key {
	__u32 netns;		/* the namespace's inode number */
	__u32 ifindex;
	__u16 direction;	/* enum netacct_nic_direction */
	__u16 queue;
};

#define NETACCT_NIC_DEVICE_ENTRIES 4096

#endif /* NETACCT_NIC_H */
