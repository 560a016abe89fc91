/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Log-linear histograms (libbpf-tools' bits.bpf.h log2 in spirit, with four buckets per power
 * of two so that percentiles are within 19%): the bucket of a value, as latency.h describes
 * the layout. Needs NETACCT_LATENCY_BUCKETS.
 */
#ifndef NETACCT_HISTOGRAM_H
#define NETACCT_HISTOGRAM_H

/* floor(log2(v)) for v > 0, branch-free halving. */
static __always_inline __u32 log2_u64(__u64 v)
{
	__u32 r = 0, shift;

	shift = (v > 0xFFFFFFFF) << 5; v >>= shift; r |= shift;
	shift = (v > 0xFFFF) << 4; v >>= shift; r |= shift;
	shift = (v > 0xFF) << 3; v >>= shift; r |= shift;
	shift = (v > 0xF) << 2; v >>= shift; r |= shift;
	shift = (v > 0x3) << 1; v >>= shift; r |= shift;
	r |= (v >> 1);
	return r;
}

static __always_inline __u32 histogram_bucket(__u64 v)
{
	__u32 l, bucket;

	if (v < 4)
		return v;
	l = log2_u64(v);
	bucket = 4 * l - 4 + ((v >> (l - 2)) & 3);
	return bucket < NETACCT_LATENCY_BUCKETS ? bucket : NETACCT_LATENCY_BUCKETS - 1;
}

static __always_inline void histogram_add(struct netacct_latency_histogram *h, __u64 v)
{
	__u32 bucket;

	h->count++;
	h->sum_ns += v;
	if (v > h->max_ns)
		h->max_ns = v;
	bucket = histogram_bucket(v);
	/* The verifier sees the bound only if it is checked where the index is used. */
	barrier_var(bucket);
	if (bucket < NETACCT_LATENCY_BUCKETS)
		h->buckets[bucket]++;
}

#endif /* NETACCT_HISTOGRAM_H */
