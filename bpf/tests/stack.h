/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* stack: what stack.bpf.c and the BPF module's tests share. */
#ifndef NETACCT_STACK_H
#define NETACCT_STACK_H
#ifndef __bpf__
#include <linux/types.h>
#endif

/* The byte the program fills its stack with before each check. */
#define STACK_GARBAGE 0xA5

/* What a run leaves for the test (one entry of `results`; the test fills it with 0x5A first). */
struct stack_result {
	__u8 saddr[16];		/* network_header()'s source address of the test's IPv4 header */
	__u8 daddr[16];
	__u32 translated;	/* source_translated() of that packet against its own source: 0 */
	__u32 runs;
	__u64 untouched[4];	/* a local struct of which only [0] was written, copied whole */
};

/* The packet the test writes (one entry of `packets`): an IPv4 header. */
struct stack_packet {
	__u8 bytes[64];
};

#endif
