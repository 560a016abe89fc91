#ifndef CLIBBPF_H
#define CLIBBPF_H
/*
 * libbpf (Debian's libbpf-dev) for Swift, plus shims for what Swift cannot call directly:
 * LIBBPF_OPTS initialisers and libbpf's va_list print callback.
 */
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <linux/bpf.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <unistd.h>

/* libbpf's log lines, formatted, delivered to `sink` (NULL: libbpf prints nothing). */
typedef void (*netacct_libbpf_log_sink)(enum libbpf_print_level level, const char *line);
void netacct_libbpf_set_log_sink(netacct_libbpf_log_sink sink);

static inline struct bpf_object *netacct_object_open_mem(const void *buf, size_t size, const char *name)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = name);
	return bpf_object__open_mem(buf, size, &opts);
}

/* BPF_MAP_LOOKUP_BATCH or BPF_MAP_LOOKUP_AND_DELETE_BATCH; returns 0 or -errno. */
static inline int netacct_map_lookup_batch(int fd, void *in_batch, void *out_batch, void *keys,
					   void *values, __u32 *count, bool and_delete)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	if (and_delete)
		return bpf_map_lookup_and_delete_batch(fd, in_batch, out_batch, keys, values, count, &opts);
	return bpf_map_lookup_batch(fd, in_batch, out_batch, keys, values, count, &opts);
}

/*
 * The bpf(2) system call itself, for commands whose attributes this libbpf cannot build
 * (BPF_LINK_CREATE of a netfilter link: libbpf >= 1.3). Returns its result, -1 with errno.
 */
static inline long netacct_bpf_syscall(int cmd, void *attr, unsigned int size)
{
	return syscall(__NR_bpf, cmd, attr, size);
}

#endif
