/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * A TCP skb's control block (TCP_SKB_CB), read from skb->cb where the kernel's struct
 * tcp_skb_cb has each field (CO-RE offsets: tcp_flags grew from one byte to two in 6.7, and a
 * flag is in its low byte either way). Include after netdev.h and bpf_core_read.h.
 */
#ifndef NETACCT_TCP_H
#define NETACCT_TCP_H

#define TCPHDR_SYN 0x02
#define TCPHDR_ACK 0x10

struct tcp_skb_cb {
	__u16 tcp_gso_segs;
	__u8 tcp_flags;
} __attribute__((preserve_access_index));

/* The segments a queued skb stands for (tcp_skb_pcount). */
static __always_inline __u32 tcp_skb_segments(const struct sk_buff *skb)
{
	__u32 at = bpf_core_field_offset(struct tcp_skb_cb, tcp_gso_segs);
	__u8 low = skb->cb[at], high = skb->cb[at + 1];
	__u32 segments = low | (__u32)high << 8;

	return segments ? segments : 1;
}

/* The TCPHDR_* flags of a queued skb (the low byte of tcp_flags: FIN to CWR). */
static __always_inline __u8 tcp_skb_flags(const struct sk_buff *skb)
{
	return skb->cb[bpf_core_field_offset(struct tcp_skb_cb, tcp_flags)];
}

#endif /* NETACCT_TCP_H */
