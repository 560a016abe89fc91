// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * sockets: exercises per-socket storage and a program run at a socket's release (BPF module
 * test, not netacct): counts the sends of the UDP sockets of one process (a read-only global) in
 * socket storage, with the socket's cookie; cgroup/sock_release keeps a released socket's final
 * record in `released`. (An iter/bpf_sk_storage_map iterator would list the storage, but this
 * machine refuses that attach type before verification, as it does fentry.)
 */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 target_tgid = 0;

struct record {
	__u64 cookie;
	__u64 sends;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct record);
} counts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 64);
	__type(key, __u64);
	__type(value, struct record);
} released SEC(".maps");

SEC("tp_btf/sock_send_length")
int BPF_PROG(count_send, struct sock *sk, int ret, int flags)
{
	struct record *r;

	if (ret <= 0 || sk->sk_protocol != IPPROTO_UDP || (bpf_get_current_pid_tgid() >> 32) != target_tgid)
		return 0;
	r = bpf_sk_storage_get(&counts, sk, NULL, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!r)
		return 0;
	if (!r->cookie)
		r->cookie = bpf_get_socket_cookie(sk);
	r->sends++;
	r->bytes += ret;
	return 0;
}

SEC("cgroup/sock_release")
int keep_released(struct bpf_sock *sock)
{
	struct record *r = bpf_sk_storage_get(&counts, sock, NULL, 0);

	if (r && r->cookie)
		bpf_map_update_elem(&released, &r->cookie, r, BPF_ANY);
	return 1;
}
