/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/* selftest: records shared by selftest.bpf.c and the BPF module's tests. */
#ifndef NETACCT_SELFTEST_H
#define NETACCT_SELFTEST_H
#ifndef __bpf__
#include <linux/types.h>
#endif

struct selftest_event {
	__u32 pid;
	__u32 tid;
	__u64 sequence;
};

/* An element whose size divides no page (24 bytes), to test reading a mapped array. */
struct selftest_element {
	__u64 index;
	__u64 square;
	__u32 tag;
	__u32 pad;
};

#endif
