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

/*
 * Whether __tcp_retransmit_skb counted the segment in TcpRetransSegs (and the socket's
 * total_retrans) before it returned `err` (since 6.12 tcp_retransmit_skb fires either way). Its
 * exits before the count return -EBUSY (the first copy still in the host's queues), -EAGAIN (no
 * window), -EHOSTUNREACH (no route) or -ENOMEM (no memory to split it); after the count comes the
 * transmit's own result: 0, a NET_XMIT code (> 0: dropped on the way to the device, as a veth
 * whose peer's backlog is full does) or an errno. (A transmit that fails after the count with
 * -EHOSTUNREACH or -ENOMEM is taken for one before it: the one ambiguity, on routing and memory
 * failures.)
 */
static __always_inline bool retransmission_counted(int err)
{
	return err >= 0 || (err != -16 /* EBUSY */ && err != -11 /* EAGAIN */ && err != -113 /* EHOSTUNREACH */ &&
			    err != -12 /* ENOMEM */);
}

#endif /* NETACCT_TCP_H */
