/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Typed views of kernel memory (Linux >= 6.2): bpf_rdonly_cast gives the verifier a pointer of a
 * kernel type that the program may read directly, with faults handled. A direct read is a load;
 * bpf_probe_read_kernel() is a helper call of tens of nanoseconds. Include after
 * bpf_core_read.h.
 */
#ifndef NETACCT_TYPED_H
#define NETACCT_TYPED_H

extern void *bpf_rdonly_cast(const void *obj, __u32 btf_id) __ksym;

/* `pointer` as a `type *` of the running kernel's BTF. */
#define TYPED(type, pointer) ((type *)bpf_rdonly_cast((pointer), bpf_core_type_id_kernel(type)))

#endif /* NETACCT_TYPED_H */
