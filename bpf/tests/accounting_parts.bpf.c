// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * accounting_parts: the accounting programs (accounting.bpf.c, included whole: the same code and
 * maps) cut after each step of the per-call path, and variants of it, for the benchmark's
 * account of where a call's time goes (netacct-bench accounting-parts). Each pair runs alone on
 * the two sock tracepoints, or on the exits of sendto and recvfrom (the syscall engine's).
 */
#include "../accounting.bpf.c"

/* Step 1: the socket's class only (two loads from the socket: its family, its protocol). */
static __always_inline int parts_classified(struct sock *sk, int ret)
{
	if (ret <= 0)
		return 0;
	return classify(sk);
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(parts_classify_send, struct sock *sk, int ret, int flags) { return parts_classified(sk, ret); }

SEC("tp_btf/sock_recv_length")
int BPF_PROG(parts_classify_recv, struct sock *sk, int ret, int flags) { return parts_classified(sk, ret); }

/* Step 2: + the thread's id, the one helper call of the path; or from the task the other helper returns. */
static __always_inline int parts_thread_id(struct sock *sk, int ret, bool from_task)
{
	if (ret <= 0 || !classify(sk))
		return 0;
	if (from_task)
		return bpf_get_current_task_btf()->pid & 1;
	return (__u32)bpf_get_current_pid_tgid() & 1;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(parts_pid_send, struct sock *sk, int ret, int flags) { return parts_thread_id(sk, ret, false); }

SEC("tp_btf/sock_recv_length")
int BPF_PROG(parts_pid_recv, struct sock *sk, int ret, int flags) { return parts_thread_id(sk, ret, false); }

SEC("tp_btf/sock_send_length")
int BPF_PROG(parts_task_send, struct sock *sk, int ret, int flags) { return parts_thread_id(sk, ret, true); }

SEC("tp_btf/sock_recv_length")
int BPF_PROG(parts_task_recv, struct sock *sk, int ret, int flags) { return parts_thread_id(sk, ret, true); }

/* Step 3: + the thread's slot found and checked (no counting). Step 4 is count_send/count_recv. */
static __always_inline int parts_slot(struct sock *sk, int ret)
{
	if (ret <= 0 || !classify(sk))
		return 0;
	return thread_counters((__u32)bpf_get_current_pid_tgid()) != 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(parts_slot_send, struct sock *sk, int ret, int flags) { return parts_slot(sk, ret); }

SEC("tp_btf/sock_recv_length")
int BPF_PROG(parts_slot_recv, struct sock *sk, int ret, int flags) { return parts_slot(sk, ret); }

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 64);
	__type(key, __u32);
	__type(value, struct netacct_slot);
} small_slots SEC(".maps");

/*
 * Two variants of steps 3 and 4 (TCP counters only): the slot in a 64-entry array of two pages
 * (always in the TLB) instead of the 4 MiB slot array, keyed by the TID; and the same keyed by
 * the task's address (bpf_get_current_task: a number, no load from the task, where the TID is a
 * load from the task's line with pid and tgid).
 */
static __always_inline int parts_small(struct sock *sk, int ret, bool tx, bool by_task)
{
	struct netacct_slot *slot;
	__u64 owner;
	__u32 key;

	if (ret <= 0 || !classify(sk))
		return 0;
	if (by_task) {
		owner = bpf_get_current_task();
		key = (__u32)((owner * 0x9E3779B97F4A7C15ULL) >> 58);
	} else {
		owner = (__u32)bpf_get_current_pid_tgid();
		key = owner & 63;
	}
	slot = bpf_map_lookup_elem(&small_slots, &key);
	if (!slot)
		return 0;
	if (slot->process_start_ns != owner)
		slot->process_start_ns = owner;	/* this array's owner word */
	if (tx) {
		slot->counters.tcp_tx_packets += 1;
		slot->counters.tcp_tx_bytes += ret;
	} else {
		slot->counters.tcp_rx_packets += 1;
		slot->counters.tcp_rx_bytes += ret;
	}
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(parts_small_send, struct sock *sk, int ret, int flags) { return parts_small(sk, ret, true, false); }

SEC("tp_btf/sock_recv_length")
int BPF_PROG(parts_small_recv, struct sock *sk, int ret, int flags) { return parts_small(sk, ret, false, false); }

SEC("tp_btf/sock_send_length")
int BPF_PROG(parts_taskkey_send, struct sock *sk, int ret, int flags) { return parts_small(sk, ret, true, true); }

SEC("tp_btf/sock_recv_length")
int BPF_PROG(parts_taskkey_recv, struct sock *sk, int ret, int flags) { return parts_small(sk, ret, false, true); }

/* The whole without the classification (as if every socket were TCP): its lower bound. */
static __always_inline int parts_unclassified(int ret, bool tx)
{
	if (ret > 0)
		count_in(thread_counters((__u32)bpf_get_current_pid_tgid()), 1, 1, ret, tx);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(parts_unclassified_send, struct sock *sk, int ret, int flags) { return parts_unclassified(ret, true); }

SEC("tp_btf/sock_recv_length")
int BPF_PROG(parts_unclassified_recv, struct sock *sk, int ret, int flags) { return parts_unclassified(ret, false); }

/*
 * The syscall engine's path, cut after each step, on the exits of sendto and recvfrom (the
 * benchmark's loads make those calls): the task and its saved registers (two helper calls),
 * + the descriptor's file (one read), + the socket behind it, checked (two reads), + its class
 * (two reads). count_sendto and count_recvfrom are the whole.
 */
enum parts_syscall_step { PARTS_REGS, PARTS_FILE, PARTS_SOCKET, PARTS_CLASS };

static __always_inline int parts_syscall(struct syscall_exit *ctx, enum parts_syscall_step step)
{
	struct task_struct *task;
	long fd;

	if (ctx->ret <= 0)
		return 0;
	task = bpf_get_current_task_btf();
	fd = SYSCALL_ARG(syscall_regs(task), 0);
	switch (step) {
	case PARTS_REGS:
		return fd & 1;
	case PARTS_FILE:
		return task_file_of_fd(task, fd) != 0;
	case PARTS_SOCKET:
		return socket_of_fd_read(task, fd) != 0;
	default:
		return classify_fd(task, fd);
	}
}

SEC("tracepoint/syscalls/sys_exit_sendto")
int parts_regs_sendto(struct syscall_exit *ctx) { return parts_syscall(ctx, PARTS_REGS); }

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int parts_regs_recvfrom(struct syscall_exit *ctx) { return parts_syscall(ctx, PARTS_REGS); }

SEC("tracepoint/syscalls/sys_exit_sendto")
int parts_file_sendto(struct syscall_exit *ctx) { return parts_syscall(ctx, PARTS_FILE); }

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int parts_file_recvfrom(struct syscall_exit *ctx) { return parts_syscall(ctx, PARTS_FILE); }

SEC("tracepoint/syscalls/sys_exit_sendto")
int parts_socket_sendto(struct syscall_exit *ctx) { return parts_syscall(ctx, PARTS_SOCKET); }

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int parts_socket_recvfrom(struct syscall_exit *ctx) { return parts_syscall(ctx, PARTS_SOCKET); }

SEC("tracepoint/syscalls/sys_exit_sendto")
int parts_class_sendto(struct syscall_exit *ctx) { return parts_syscall(ctx, PARTS_CLASS); }

SEC("tracepoint/syscalls/sys_exit_recvfrom")
int parts_class_recvfrom(struct syscall_exit *ctx) { return parts_syscall(ctx, PARTS_CLASS); }
