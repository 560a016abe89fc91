/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The network-device kernel types the nic programs touch (CO-RE, as in kernel.h: only the
 * field names and types must match the running kernel's BTF).
 */
#ifndef NETACCT_NETDEV_H
#define NETACCT_NETDEV_H

#include "kernel.h"

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct ns_common {
	unsigned int inum;
};

struct net {
	struct ns_common ns;
};

typedef struct {
	struct net *net;
} possible_net_t;

struct net_device {
	int ifindex;
	unsigned short hard_header_len;
	possible_net_t nd_net;
};

struct skb_shared_info {
	unsigned short gso_segs;
};

struct sk_buff {
	struct net_device *dev;
	unsigned int len;
	__u16 queue_mapping;
	unsigned char *head;
	unsigned int end;	/* sk_buff_data_t: an offset from head on 64-bit kernels */
};

#pragma clang attribute pop

#endif /* NETACCT_NETDEV_H */
