// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * netfilter: exercises netfilter links (BPF module test, not netacct): counts the packets of one
 * chosen length (a read-only global: no one else sends 1234-byte datagrams) at the hook it is
 * attached to, and accepts every packet.
 */
#include "netdev.h"
#include <bpf/bpf_helpers.h>
#include "maps.h"
#include "netfilter.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 target_length = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} packets SEC(".maps");

SEC("netfilter")
int count_length(struct bpf_nf_ctx *ctx)
{
	if (ctx->skb->len == target_length)
		percpu_counter_inc(&packets, 0);
	return NF_ACCEPT;
}

/* Nothing but the verdict: the floor of a netfilter program, for the benchmarks. */
SEC("netfilter")
int accept_all(struct bpf_nf_ctx *ctx)
{
	return NF_ACCEPT;
}
