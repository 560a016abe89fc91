// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * wire_parts: the wire programs (wire.bpf.c, included whole: the same code and maps) and the
 * transmit program cut after each of its steps, for the benchmark's account of where a frame's
 * time goes (netacct-bench wire). Each runs alone on the hook, with the owner programs.
 */
#include "../wire.bpf.c"

/* The interface's totals only: its per-CPU slot, the frame's size on the wire. */
SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(parts_totals, struct sk_buff *skb, struct net_device *dev)
{
	__u32 netns = dev->nd_net.net->ns.inum, ifindex = dev->ifindex;
	struct netacct_wire_interface *totals = interface_totals(dev, netns, ifindex);
	__u64 packets, bytes;

	__u32 link = counted_header(dev);

	on_the_wire(skb, skb->len - dev->hard_header_len + link, link, &packets, &bytes);
	if (totals) {
		totals->tx_packets += packets;
		totals->tx_bytes += bytes;
	}
	return 0;
}

/* The totals, then the owner's word from the socket's storage (kept, so that the lookup is not dropped). */
SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(parts_owner, struct sk_buff *skb, struct net_device *dev)
{
	__u32 netns = dev->nd_net.net->ns.inum, ifindex = dev->ifindex;
	struct netacct_wire_interface *totals = interface_totals(dev, netns, ifindex);
	struct netacct_wire_owner *o;
	struct sock *sk = skb->sk;
	__u64 packets, bytes;

	__u32 link = counted_header(dev);

	on_the_wire(skb, skb->len - dev->hard_header_len + link, link, &packets, &bytes);
	if (!totals)
		return 0;
	totals->tx_packets += packets;
	totals->tx_bytes += bytes;
	if (sk)
		totals->rx_packets += owner_of(sk, &o) >> 63;
	return 0;
}
