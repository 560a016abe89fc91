/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * What latency_in_parts.bpf.c and latency_out_parts.bpf.c share, after the program file each
 * includes (latency.bpf.h's `events` and `counters`).
 */
#ifndef NETACCT_LATENCY_PARTS_H
#define NETACCT_LATENCY_PARTS_H

/* `count` records of `size` bytes reserved and submitted, unwritten, as the reporting point reserves its reports. */
#define PARTS_RESERVE(count, size)							\
	do {										\
		void *e;								\
		for (int i = 0; i < 64; i++) {						\
			if (i >= (count))						\
				break;							\
			e = bpf_ringbuf_reserve(&events, (size), 0);			\
			if (!e) {							\
				percpu_counter_inc(&counters, NETACCT_LATENCY_LOST);	\
				break;							\
			}								\
			bpf_ringbuf_submit(e, BPF_RB_NO_WAKEUP);			\
		}									\
	} while (0)

/* A record that fills one cache line with the ring's 8-byte header. */
#define PARTS_SMALL_RECORD 56

#endif /* NETACCT_LATENCY_PARTS_H */
