/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The network-device kernel types the nic programs touch (CO-RE, as in kernel.h: only the
 * field names and types must match the running kernel's BTF).
 */
#ifndef NETACCT_NETDEV_H
#define NETACCT_NETDEV_H

#include "kernel.h"

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct net_device {
	char name[16];
	unsigned int flags;	/* IFF_*: IFF_LOOPBACK */
	int ifindex;
	unsigned short hard_header_len;
	possible_net_t nd_net;
};

struct skb_shared_info {
	unsigned short gso_segs;
	unsigned int gso_type;	/* enum skb_gso_type bits: SKB_GSO_TCPV4, SKB_GSO_TCPV6, SKB_GSO_UDP_L4… */
};

/* A route: the device it leaves by. */
struct dst_entry {
	struct net_device *dev;
};

struct sock;

struct sk_buff {
	struct net_device *dev;
	struct sock *sk;
	unsigned int len;
	__u16 queue_mapping;
	int skb_iif;		/* the interface it came in on; 0 for what this host sends */
	__be16 protocol;	/* ETH_P_IP, ETH_P_IPV6 */
	__u16 mac_header;	/* offsets from head */
	__u16 network_header;
	__u16 transport_header;
	unsigned char *head;
	unsigned char *data;	/* where the current layer's header starts */
	char cb[48];		/* the layer's control block: TCP's struct tcp_skb_cb starts with seq */
	unsigned int end;	/* sk_buff_data_t: an offset from head on 64-bit kernels */
};

#pragma clang attribute pop

/*
 * Packet headers, read through bpf_rdonly_cast views of the kernel's types of the same names:
 * their layout is the wire's, so they need no CO-RE relocation (the kernel's have bitfields
 * where these have whole bytes).
 */
struct iphdr {
	__u8 ihl_version;	/* ihl:4 (low bits), version:4 */
	__u8 tos;
	__be16 tot_len;
	__be16 id;
	__be16 frag_off;
	__u8 ttl;
	__u8 protocol;
	__u16 check;
	__be32 saddr;
	__be32 daddr;
};

struct ipv6hdr {
	__u8 priority_version;
	__u8 flow_lbl[3];
	__be16 payload_len;
	__u8 nexthdr;
	__u8 hop_limit;
	__u8 saddr[16];
	__u8 daddr[16];
};

/* The first four bytes of a TCP or UDP header: the kernel's struct udphdr starts so. */
struct ports {
	__be16 source;
	__be16 dest;
};

struct tcphdr {
	__be16 source;
	__be16 dest;
	__be32 seq;
	__be32 ack_seq;
	__u8 doff_res;		/* doff:4 (high bits): the header's length in 32-bit words */
	__u8 flags;
	__be16 window;
	__u16 check;
	__be16 urg_ptr;
};

struct udphdr {
	__be16 source;
	__be16 dest;
	__be16 len;
	__u16 check;
};


#endif /* NETACCT_NETDEV_H */
