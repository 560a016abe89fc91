/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Map helpers every program may share (libbpf-tools' maps.bpf.h in spirit). Include after
 * bpf_helpers.h.
 */
#ifndef NETACCT_MAPS_H
#define NETACCT_MAPS_H

/* Adds 1 to the __u64 at `key` of a per-CPU array: a counter that user space sums. */
static __always_inline void percpu_counter_inc(void *map, __u32 key)
{
	__u64 *value = bpf_map_lookup_elem(map, &key);

	if (value)
		*value += 1;
}

#endif /* NETACCT_MAPS_H */
