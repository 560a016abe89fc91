// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * stack: checks that no result of netacct's programs depends on stack memory they did not
 * write. The verifier lets a privileged program read such memory, so a partly written struct
 * compared or copied whole carries whatever the stack held: on one machine nothing, on another
 * a NAT that never happened. Each run first fills the stack with garbage in a function of its
 * own (its frame is where the next call's will be), then runs the packet code netacct uses on
 * a header the test wrote, and a local struct written in part, and copies both out whole.
 */
#include "kernel.h"
#include "netdev.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "typed.h"
#include "packet.h"
#include "stack.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

const volatile __u32 target_tgid = 0;
const volatile long target_syscall = -1;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stack_packet);
} packets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct stack_result);
} results SEC(".maps");

/* Fills its whole frame, where the next function called from the same place will have its own. */
static __noinline int scribble(void)
{
	volatile __u8 junk[256];

	for (int i = 0; i < sizeof(junk); i++)
		junk[i] = STACK_GARBAGE;
	return junk[7];
}

/*
 * latency out's NAT decision, as its transmit hook makes it: the packet's source against the
 * socket's local address, which is the same (as socket_addresses() writes an IPv4 one).
 */
static __noinline int decode(struct stack_packet *packet, struct stack_result *result)
{
	struct addresses a;
	__u8 local[16] = {};
	__u32 length;

	/* Garbage in every byte, whatever the compiler zeroes: each must come from network_header. */
	__builtin_memset(&a, STACK_GARBAGE, sizeof(a));
	if (!network_header(packet->bytes, ETH_P_IP, &a, &length))
		return 0;
	*(__be32 *)local = *(__be32 *)&packet->bytes[12];
	__builtin_memcpy(result->saddr, a.saddr, 16);
	__builtin_memcpy(result->daddr, a.daddr, 16);
	result->translated = source_translated(&a, 0, AF_INET, local, 0);
	return 1;
}

/* A struct of which one member is written, copied whole: the rest must be zero. */
static __noinline int partly_written(struct stack_result *result)
{
	struct { __u64 word[4]; } local;

	local.word[0] = 1;
	__builtin_memcpy(result->untouched, &local, sizeof(local));
	return 1;
}

SEC("raw_tp/sys_enter")
int BPF_PROG(check_stack, void *regs, long id)
{
	struct stack_packet *packet;
	struct stack_result *result;
	__u32 zero = 0;

	if ((bpf_get_current_pid_tgid() >> 32) != target_tgid || id != target_syscall)
		return 0;
	packet = bpf_map_lookup_elem(&packets, &zero);
	result = bpf_map_lookup_elem(&results, &zero);
	if (!packet || !result)
		return 0;
	scribble();
	decode(packet, result);
	scribble();
	partly_written(result);
	result->runs += 1;
	return 0;
}
