/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Packet headers read in place through typed views (a load each, no helper call): the network
 * header of an IPv4 or IPv6 packet and the TCP header after it. Include after netdev.h,
 * bpf_endian.h and typed.h.
 */
#ifndef NETACCT_PACKET_H
#define NETACCT_PACKET_H

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IP_OFFSET_MASK 0x1FFF

/* A packet's addresses (network order, IPv4 in the first 4 bytes, the other 12 zero) and transport protocol. */
struct addresses {
	__u8 saddr[16];
	__u8 daddr[16];
	__u16 family;		/* AF_INET or AF_INET6 */
	__u8 protocol;
};

/*
 * Reads the network header at `network` (of ethertype `ethertype`, as skb->protocol has it).
 * Returns the transport header's offset from it, or 0 for anything but IPv4 and IPv6 and for a
 * fragment after the first. `length`: the datagram's length as its header says (without the
 * link layer's padding); an IPv6 extension header leaves `protocol` at its own number.
 */
static __always_inline __u32 network_header(unsigned char *network, __u16 ethertype, struct addresses *a,
					    __u32 *length)
{
	if (ethertype == ETH_P_IP) {
		struct iphdr *ip = TYPED(struct iphdr, network);

		if ((ip->ihl_version >> 4) != 4 || (bpf_ntohs(ip->frag_off) & IP_OFFSET_MASK))
			return 0;
		a->family = AF_INET;
		a->protocol = ip->protocol;
		/* Every byte written: callers compare and copy the 16 whole. */
		for (int i = 0; i < 4; i++) {
			((__be32 *)a->saddr)[i] = 0;
			((__be32 *)a->daddr)[i] = 0;
		}
		*(__be32 *)a->saddr = ip->saddr;
		*(__be32 *)a->daddr = ip->daddr;
		*length = bpf_ntohs(ip->tot_len);
		return (ip->ihl_version & 0xF) * 4;
	}
	if (ethertype == ETH_P_IPV6) {
		struct ipv6hdr *ip6 = TYPED(struct ipv6hdr, network);

		a->family = AF_INET6;
		a->protocol = ip6->nexthdr;
		for (int i = 0; i < 4; i++) {
			((__be32 *)a->saddr)[i] = ((__be32 *)ip6->saddr)[i];
			((__be32 *)a->daddr)[i] = ((__be32 *)ip6->daddr)[i];
		}
		*length = sizeof(struct ipv6hdr) + bpf_ntohs(ip6->payload_len);
		return sizeof(struct ipv6hdr);
	}
	return 0;
}

/* The TCP header at `transport`, as a typed view. */
static __always_inline struct tcphdr *tcp_header(unsigned char *transport)
{
	return TYPED(struct tcphdr, transport);
}

static __always_inline __u32 tcp_header_length(struct tcphdr *th)
{
	return (th->doff_res >> 4) * 4;
}

/*
 * A TCP packet's addresses, its TCP header and its data bytes, from its network header at
 * `network` (the link layer's padding left out). False for anything else.
 */
static __always_inline bool tcp_packet(struct sk_buff *skb, unsigned char *network, struct addresses *a,
				       struct tcphdr **th, __u32 *payload)
{
	__u32 length, transport = network_header(network, bpf_ntohs(skb->protocol), a, &length);

	if (!transport || a->protocol != IPPROTO_TCP)
		return false;
	*th = tcp_header(network + transport);
	/* BIG TCP's IPv4 length is 0: the buffer's, from the network header on. */
	if (!length)
		length = skb->len - (network - skb->data);
	length -= transport + tcp_header_length(*th);
	*payload = (__s32)length > 0 ? length : 0;
	return true;
}

/*
 * Whether a packet's source differs from what its socket has as its local end (`local`, 16 bytes
 * as `struct addresses` holds them, and `port`): the source was translated (NAT). A packet of
 * the other family (an IPv6 socket's IPv4-mapped peer) is never called translated.
 */
static __always_inline bool source_translated(const struct addresses *packet, __u16 packet_port, __u16 family,
					      const __u8 local[16], __u16 port)
{
	return packet->family == family && (__builtin_memcmp(packet->saddr, local, 16) || packet_port != port);
}

/* Sequence numbers wrap: a before b. */
static __always_inline bool seq_before(__u32 a, __u32 b)
{
	return (__s32)(a - b) < 0;
}

#endif /* NETACCT_PACKET_H */
