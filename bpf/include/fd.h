/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * Sockets by file descriptor, for the syscall tracepoints, which see the calling task's fds.
 * Include after sockets.h, bpf_helpers.h and typed.h.
 */
#ifndef NETACCT_FD_H
#define NETACCT_FD_H

/* The file behind descriptor `fd` of `task` (the current one), or NULL (an untyped pointer). */
static __always_inline struct file *task_file_of_fd(struct task_struct *task, long fd)
{
	struct fdtable *fdt = task->files->fdt;
	struct file *file;

	if (fd < 0 || fd >= fdt->max_fds)
		return NULL;
	/* An element of the descriptor array: the one read that needs the helper. */
	if (bpf_probe_read_kernel(&file, sizeof(file), &fdt->fd[fd]))
		return NULL;
	return file;
}

/* The file behind descriptor `fd` of the current task, or NULL (an untyped pointer). */
static __always_inline struct file *file_of_fd(long fd)
{
	return task_file_of_fd(bpf_get_current_task_btf(), fd);
}

/* The socket behind file descriptor `fd` of the current task, or NULL. */
static __always_inline struct sock *socket_of_fd(long fd)
{
	struct file *file = file_of_fd(fd);
	struct socket *socket;

	if (!file)
		return NULL;
	file = TYPED(struct file, file);
	socket = TYPED(struct socket, file->private_data);
	/* Only a socket's file and its struct socket point at each other. */
	if (!socket || socket->file != file)
		return NULL;
	return socket->sk;
}

/*
 * The same without typed views (bpf_rdonly_cast is Linux >= 6.2), for the accounting's
 * syscall engine on older kernels, given the current task (its caller already has it): two
 * reads through bpf_probe_read_kernel (CO-RE) instead of three loads.
 */
static __always_inline struct sock *socket_of_fd_read(struct task_struct *task, long fd)
{
	struct file *file = task_file_of_fd(task, fd);
	struct { struct file *file; struct sock *sk; } pair;
	struct socket *socket;
	__u32 at;

	if (!file)
		return NULL;
	socket = BPF_CORE_READ(file, private_data);
	if (!socket)
		return NULL;
	/* Both fields in one read where they are neighbours (every kernel so far). */
	at = bpf_core_field_offset(struct socket, file);
	if (bpf_core_field_offset(struct socket, sk) == at + sizeof(pair.file)) {
		if (bpf_probe_read_kernel(&pair, sizeof(pair), (void *)socket + at))
			return NULL;
	} else {
		pair.file = BPF_CORE_READ(socket, file);
		pair.sk = BPF_CORE_READ(socket, sk);
	}
	return pair.file == file ? pair.sk : NULL;
}

/* The inode of a socket's file (what /proc/PID/fd shows as socket:[INODE]), or 0. */
static __always_inline __u64 socket_inode(struct sock *sk)
{
	struct socket *socket = sk->sk_socket;

	if (!socket)
		return 0;
	return TYPED(struct socket_alloc, socket)->vfs_inode.i_ino;
}

/* The record of syscalls:sys_enter_* and sys_exit_* (tracefs events/syscalls/…/format). */
struct syscall_enter {
	__u64 common;
	__s64 syscall_nr;
	__u64 args[6];
};

struct syscall_exit {
	__u64 common;
	__s64 syscall_nr;
	__s64 ret;
};

#endif /* NETACCT_FD_H */
