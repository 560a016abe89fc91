// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * selftest: exercises the BPF module (not netacct): a raw_tp program that, for one chosen
 * process (a read-only global) and one chosen system call, counts in a per-CPU array and
 * sends a record through a ring buffer.
 */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include "selftest.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 target_tgid = 0;
const volatile long target_syscall = -1;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} calls SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4096 * 4);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, __u32);
	__type(value, __u64);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 8);
	__type(key, __u32);
	__type(value, __u64);
} mapped SEC(".maps");

/* Filled by the test from user space; read back through the mapping (5000 x 24 bytes). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, 5000);
	__type(key, __u32);
	__type(value, struct selftest_element);
} pages SEC(".maps");

SEC("raw_tp/sys_enter")
int BPF_PROG(on_sys_enter, void *regs, long id)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct selftest_event *event;
	__u32 zero = 0;
	__u64 *count;

	if ((pid_tgid >> 32) != target_tgid || id != target_syscall)
		return 0;
	count = bpf_map_lookup_elem(&calls, &zero);
	if (!count)
		return 0;
	*count += 1;
	__u64 *shared = bpf_map_lookup_elem(&mapped, &zero);
	if (shared)
		__sync_fetch_and_add(shared, 1);
	event = bpf_ringbuf_reserve(&events, sizeof(*event), 0);
	if (!event)
		return 0;
	event->pid = pid_tgid >> 32;
	event->tid = (__u32)pid_tgid;
	event->sequence = *count;
	bpf_ringbuf_submit(event, 0);
	return 0;
}

/* Not loaded unless a test asks ("?" turns autoload off): the verifier must refuse it. */
SEC("?raw_tp/sys_enter")
int BPF_PROG(rejected, void *regs, long id)
{
	__u32 key = id;
	__u64 *value = bpf_map_lookup_elem(&scratch, &key);

	/* No NULL check: an invalid memory access the verifier will not accept. */
	return *value;
}

/* One record per thread of the target process, for the BPF module's iterator support. */
SEC("iter/task")
int own_threads(struct bpf_iter__task *ctx)
{
	struct task_struct *task = ctx->task;
	struct selftest_event event = {};

	if (!task || task->tgid != target_tgid)
		return 0;
	event.pid = task->tgid;
	event.tid = task->pid;
	event.sequence = ctx->meta->seq_num;
	bpf_seq_write(ctx->meta->seq, &event, sizeof(event));
	return 0;
}
