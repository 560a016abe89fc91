/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * wire: the records shared by wire.bpf.c and the Swift wire engine (Accounting). This header
 * is the only definition of their layout (Swift imports it through CNetacct).
 *
 * "On the wire" means what a NIC's own counters count: every frame with all its headers, link
 * layer included, one per segment (a GSO or GRO packet counts as the segments it stands for),
 * pure ACKs and retransmissions included.
 */
#ifndef NETACCT_WIRE_H
#define NETACCT_WIRE_H

#ifndef __bpf__
#include <linux/types.h>
#endif

#define NETACCT_WIRE_COMM_LEN 16

/*
 * Counter cells, one per (owner, interface) pair counted at once; past that a frame is left
 * unattributed and counted as such.
 */
#define NETACCT_WIRE_OWNER_ENTRIES 16384
/* Interfaces of all network namespaces, first in the array (by a hash of their identity), then in the hash. */
#define NETACCT_WIRE_INTERFACE_SLOTS 256
#define NETACCT_WIRE_MORE_INTERFACES 4096
/* Identities of the processes that own sockets (least recently written go first). */
#define NETACCT_WIRE_PROCESSES 16384
/* Listening TCP sockets followed (for their SYN-ACKs). */
#define NETACCT_WIRE_LISTENERS 8192

/*
 * A socket's owner, in the socket's storage: the TGID in the high half, the low 32 bits of the
 * process's start time (ns since boot) in the low half. One word, so that a frame counted in
 * softirq while the owner changes sees the old owner or the new one, never half of each.
 */
struct netacct_wire_owner {
	__u64 word;
	/*
	 * The cell this socket's frames last counted in: its interface's ifindex in the high half,
	 * the cell's index + 1 in the low half (0: none). Used only while the cell's identity
	 * (`cell_owners`) is this owner's on that interface, checked at each frame.
	 */
	__u64 cell;
	/*
	 * Frames of a socket that is not TCP's, sent while a process other than the owner ran
	 * (`held_caller`, the TGID), and not counted yet: the first frames of a call that process is
	 * making (a socket handed to it), which are its own once the call ends and it owns the
	 * socket, or frames the kernel sent for the owner in a process it interrupted, which go to
	 * `held_word` at the next call, frame or release of the socket (wire.bpf.c, hold).
	 */
	__u64 held_word;
	__u32 held_caller;
	__u32 held_netns;
	__u32 held_ifindex;
	__u32 held_unused;
	__u64 held_packets;
	__u64 held_bytes;
};

/*
 * Whose a cell's counters are (the `cell_owners` array, by cell index): an owner's word and an
 * interface. A word of 0: a free cell, or one being retired (no frame counts in it any more).
 */
struct netacct_wire_cell {
	__u64 word;
	__u32 netns;
	__u32 ifindex;
};

/* Wire counters of one (owner, interface): frames out and in, and TCP retransmissions. */
struct netacct_wire_counters {
	__u64 tx_packets;
	__u64 tx_bytes;
	__u64 rx_packets;
	__u64 rx_bytes;
	__u64 retransmitted_segments;	/* TCP segments sent again (SYN and SYN-ACK included) */
	__u64 retransmitted_bytes;	/* their payload bytes (what `ss -i` calls bytes_retrans) */
	/* The frames above that UDP sockets sent and took (the rest: TCP, ICMP, packet sockets). */
	__u64 udp_tx_packets;
	__u64 udp_tx_bytes;
	__u64 udp_rx_packets;
	__u64 udp_rx_bytes;
};

/*
 * A process on one interface: the key that finds its cell (`cell_index`). `ifindex` 0: no
 * device is known (a retransmission of a socket that has no route cached).
 */
struct netacct_wire_key {
	__u32 tgid;
	__u32 start;	/* the low 32 bits of the process's start time */
	__u32 netns;	/* the interface's network namespace (inode number) */
	__u32 ifindex;
};

/*
 * An interface's frames, all of them (attributed or not), per CPU. In the `interfaces` array a
 * CPU's copy of a slot belongs to the first interface that CPU counted there; `netns` and
 * `ifindex` say which (0: free), and another interface of the same slot goes to the hash.
 */
struct netacct_wire_interface {
	__u32 netns;
	__u32 ifindex;
	char name[16];
	__u64 tx_packets;
	__u64 tx_bytes;
	__u64 rx_packets;
	__u64 rx_bytes;
};

struct netacct_wire_interface_key {
	__u32 netns;
	__u32 ifindex;
};

/* Who a (TGID, start) is: written when the process becomes a socket's owner. */
struct netacct_wire_process_key {
	__u32 tgid;
	__u32 start;
};

struct netacct_wire_process {
	__u64 start_ns;
	__u64 cgroup_id;
	char comm[NETACCT_WIRE_COMM_LEN];
};

/* Counters of what could not be counted (per CPU, summed by user space). */
enum netacct_wire_stat {
	NETACCT_WIRE_STAT_OWNERS_FULL = 0,	/* frames left unattributed: no room for their owner's entry */
	NETACCT_WIRE_STAT_INTERFACES_FULL,	/* frames of an interface with no room left (not in any total) */
	NETACCT_WIRE_STAT_STORAGE_FULL,		/* sockets whose owner could not be recorded */
	NETACCT_WIRE_STAT_COUNT,
};

#endif /* NETACCT_WIRE_H */
