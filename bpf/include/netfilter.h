/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Netfilter programs (BPF_PROG_TYPE_NETFILTER, Linux >= 6.4): their context and verdicts.
 */
#ifndef NETACCT_NETFILTER_H
#define NETACCT_NETFILTER_H

#define NF_DROP 0
#define NF_ACCEPT 1

struct nf_hook_state;

/* The context of a netfilter program (include/linux/filter.h). */
struct bpf_nf_ctx {
	const struct nf_hook_state *state;
	struct sk_buff *skb;
} __attribute__((preserve_access_index));

#endif /* NETACCT_NETFILTER_H */
