// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * floor: empty programs on the accounting tracepoints. Their run time is the floor of any
 * program there (the kernel's statistics include their own clock reads): the benchmark
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
