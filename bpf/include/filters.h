/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Filters set before load as `const volatile` array globals: the first `count` elements of a
 * list count, `count` in another global (the verifier knows both, so a loop over the list is
 * bounded by its capacity and cut at `count`).
 */
#ifndef NETACCT_FILTERS_H
#define NETACCT_FILTERS_H

/* Whether `value` is among the first `count` of the `capacity` elements of `list`. */
static __always_inline bool listed(const volatile __u32 *list, int capacity, __u32 count, __u32 value)
{
	for (int i = 0; i < capacity; i++) {
		if (i >= count)
			break;
		if (list[i] == value)
			return true;
	}
	return false;
}

#endif /* NETACCT_FILTERS_H */
