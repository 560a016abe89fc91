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

#ifndef EEXIST
#define EEXIST 17
#endif

/*
 * The value at `key`, created from `init` if there is none (libbpf-tools' lookup-or-try-init):
 * an insert that another CPU's insert of the same key beat (-EEXIST) is no failure, the value
 * it made is used. NULL only when the map has no room.
 */
static __always_inline void *lookup_or_init(void *map, const void *key, const void *init)
{
	void *value = bpf_map_lookup_elem(map, key);
	long err;

	if (value)
		return value;
	err = bpf_map_update_elem(map, key, init, BPF_NOEXIST);
	if (err && err != -EEXIST)
		return NULL;
	return bpf_map_lookup_elem(map, key);
}

#endif /* NETACCT_MAPS_H */
