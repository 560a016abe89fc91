// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * floor: empty programs on the hooks of the accounting, nic, wire, connections, drops and latency
 * programs (the netfilter floor is netfilter.bpf.c's accept_all). Their run time is the floor of
 * any program there (the kernel's statistics include their own clock reads): the benchmark
 * reports netacct's cost beside it.
 */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

SEC("tp_btf/sock_send_length")
int BPF_PROG(floor_send, struct sock *sk, int ret, int flags)
{
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(floor_recv, struct sock *sk, int ret, int flags)
{
	return 0;
}

struct sk_buff;
struct net_device;

SEC("tp_btf/net_dev_start_xmit")
int BPF_PROG(floor_xmit, struct sk_buff *skb, struct net_device *dev)
{
	return 0;
}

SEC("tp_btf/netif_receive_skb")
int BPF_PROG(floor_receive, struct sk_buff *skb)
{
	return 0;
}

SEC("cgroup_skb/ingress")
int floor_ingress(void *ctx)
{
	return 1;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(floor_state_change, struct sock *sk, int oldstate, int newstate)
{
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int floor_accept4(void *ctx)
{
	return 0;
}

SEC("tp_btf/kfree_skb")
int BPF_PROG(floor_kfree_skb, struct sk_buff *skb, void *location, int reason, struct sock *rx_sk)
{
	return 0;
}

/* The empty program and one clock read, kept in a global so that it is made: what a drop's
 * time costs by itself (the drops benchmark's second floor; a line per drop carries a time). */
__u64 floor_clock_sink;

SEC("tp_btf/kfree_skb")
int BPF_PROG(floor_kfree_skb_clock, struct sk_buff *skb, void *location, int reason, struct sock *rx_sk)
{
	floor_clock_sink = bpf_ktime_get_ns();
	return 0;
}

struct msghdr;

SEC("tp_btf/tcp_probe")
int BPF_PROG(floor_tcp_probe, struct sock *sk, struct sk_buff *skb)
{
	return 0;
}

SEC("tp_btf/skb_copy_datagram_iovec")
int BPF_PROG(floor_copy, struct sk_buff *skb, int len)
{
	return 0;
}

SEC("tp_btf/tcp_sendmsg_locked")
int BPF_PROG(floor_sendmsg, struct sock *sk, struct msghdr *msg, struct sk_buff *skb, int size_goal)
{
	return 0;
}

SEC("tp_btf/net_dev_queue")
int BPF_PROG(floor_queue, struct sk_buff *skb)
{
	return 0;
}

/*
 * The same tracepoints as classic (perf) tracepoint programs, the kind netatop-bpf attaches: the
 * floor the peer's figure is read against (`netacct-bench events --peer`).
 */
SEC("tracepoint/sock/sock_send_length")
int floor_send_tp(void *ctx)
{
	return 0;
}

SEC("tracepoint/sock/sock_recv_length")
int floor_recv_tp(void *ctx)
{
	return 0;
}

/* The syscall engine's floor: empty programs on the exits the benchmark's loads make. */
SEC("tracepoint/syscalls/sys_exit_sendto")
int floor_sendto(void *ctx)
{
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int floor_recvfrom(void *ctx)
{
	return 0;
}

/* TCP health's event hooks (tcp_health.bpf.c). */
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(floor_retransmit, struct sock *sk, struct sk_buff *skb, int err)
{
	return 0;
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(floor_send_reset, struct sock *sk, struct sk_buff *skb)
{
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(floor_receive_reset, struct sock *sk)
{
	return 0;
}

SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(floor_destroy_sock, struct sock *sk)
{
	return 0;
}
