/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The few kernel types and constants netacct's BPF programs touch, declared by hand
 * instead of a 3 MB vmlinux.h generated from one machine's kernel.
 *
 * Every struct is marked preserve_access_index, so each field access is a CO-RE
 * relocation that libbpf resolves against the running kernel's BTF at load time:
 * only the field names and types must match, never the offsets or the full layout.
 * Building therefore needs neither root, bpftool nor this machine's kernel BTF.
 */
#ifndef NETACCT_KERNEL_H
#define NETACCT_KERNEL_H

typedef signed char __s8;
typedef unsigned char __u8;
typedef short __s16;
typedef unsigned short __u16;
typedef int __s32;
typedef unsigned int __u32;
typedef long long __s64;
typedef unsigned long long __u64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0

/* Used by bpf_helper_defs.h's prototypes only as pointers. */
struct bpf_map;
struct __sk_buff;
struct xdp_md;
struct sk_msg_md;
struct sk_reuseport_md;
struct bpf_sock_ops;
struct bpf_sock;
struct bpf_sock_addr;
struct bpf_perf_event_data;

/* uapi/linux/bpf.h */
enum {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_HASH = 5,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_CGROUP_ARRAY = 8,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_QUEUE = 22,
	BPF_MAP_TYPE_SK_STORAGE = 24,
	BPF_MAP_TYPE_RINGBUF = 27,
	BPF_MAP_TYPE_TASK_STORAGE = 29,
};
enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_EXIST = 2,
};
/* bpf_ringbuf_submit flags and bpf_ringbuf_query fields */
enum {
	BPF_RB_NO_WAKEUP = (1ULL << 0),
	BPF_RB_FORCE_WAKEUP = (1ULL << 1),
};
enum {
	BPF_RB_AVAIL_DATA = 0,
};
#define BPF_F_NO_PREALLOC (1U << 0)
#define BPF_F_MMAPABLE (1U << 10)
#define BPF_LOCAL_STORAGE_GET_F_CREATE (1ULL << 0)

/* uapi/linux/socket.h, in.h */
#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define IPPROTO_UDPLITE 136
#define IPPROTO_MPTCP 262
#define MSG_PEEK 0x2
#define MSG_ERRQUEUE 0x2000

#define TASK_COMM_LEN 16

/* uapi/asm-generic/errno.h */
#define ECONNABORTED 103

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

typedef struct {
	int counter;
} atomic_t;

typedef struct {
	__s64 counter;
} atomic64_t;

struct sock;

struct ns_common {
	unsigned int inum;
};

struct net {
	struct ns_common ns;
};

typedef struct {
	struct net *net;
} possible_net_t;

struct in6_addr {
	union {
		__u8 u6_addr8[16];
		__be32 u6_addr32[4];
	} in6_u;
};

/*
 * The kernel nests several of these in anonymous unions (skc_daddr with skc_rcv_saddr in
 * skc_addrpair, skc_dport with skc_num in skc_portpair): CO-RE finds a field by its name
 * through anonymous members, so they are declared flat here.
 */
struct sock_common {
	__be32 skc_daddr;
	__be32 skc_rcv_saddr;
	__be16 skc_dport;
	__u16 skc_num;		/* the local port, in host order */
	unsigned short skc_family;
	unsigned char skc_state;
	unsigned long skc_flags;	/* sk_flags */
	struct sock *skc_listener;	/* of a request sock (TCP_NEW_SYN_RECV): rsk_listener */
	possible_net_t skc_net;
	atomic64_t skc_cookie;		/* the socket's cookie once one was asked for (0 before): never reused */
	struct in6_addr skc_v6_daddr;
	struct in6_addr skc_v6_rcv_saddr;
};

struct socket;

/* A socket's lock: `owned` while a process holds it (lock_sock), when softirq queues to the backlog. */
typedef struct {
	int owned;
} socket_lock_t;

struct dst_entry;

struct sock {
	struct sock_common __sk_common;
	socket_lock_t sk_lock;
	struct dst_entry *sk_dst_cache;	/* the route cached for sending (netdev.h), or NULL */
	__u16 sk_protocol;
	int sk_err;
	struct socket *sk_socket;
};

struct signal_struct {
	atomic_t live;
};

struct files_struct;

/* A task's cgroup v2: task->cgroups->dfl_cgrp->kn->id is bpf_get_current_cgroup_id() for any task. */
struct kernfs_node {
	__u64 id;
};

struct cgroup {
	struct kernfs_node *kn;
};

struct css_set {
	struct cgroup *dfl_cgrp;
};

struct task_struct {
	unsigned int flags;	/* PF_*: PF_KTHREAD */
	int pid;
	int tgid;
	__u64 start_time;
	struct task_struct *group_leader;
	struct signal_struct *signal;
	struct files_struct *files;
	struct css_set *cgroups;
	char comm[TASK_COMM_LEN];
};

/*
 * The user registers a task's system call saved at entry, where its arguments stay until it
 * returns (bpf_task_pt_regs, Linux >= 5.15): a syscall exit tracepoint reads them there, with
 * no program at the entry. SYSCALL_ARG(regs, n) is argument n (0-5) of the call.
 */
#if defined(__TARGET_ARCH_x86)
struct pt_regs {
	unsigned long di;
	unsigned long si;
	unsigned long dx;
	unsigned long r10;
	unsigned long r8;
	unsigned long r9;
};
#define SYSCALL_ARG(regs, n) ((n) == 0 ? (regs)->di : (n) == 1 ? (regs)->si : (n) == 2 ? (regs)->dx : \
			      (n) == 3 ? (regs)->r10 : (n) == 4 ? (regs)->r8 : (regs)->r9)
#elif defined(__TARGET_ARCH_arm64)
struct pt_regs {
	__u64 regs[31];
	__u64 orig_x0;		/* x0 is the return value once the call returns */
};
#define SYSCALL_ARG(regs, n) ((n) == 0 ? (regs)->orig_x0 : (regs)->regs[n])
#endif

struct seq_file;

struct bpf_iter_meta {
	struct seq_file *seq;
	__u64 session_id;
	__u64 seq_num;
};

struct bpf_iter__task {
	struct bpf_iter_meta *meta;
	struct task_struct *task;
};

struct bpf_iter__tcp {
	struct bpf_iter_meta *meta;
	struct sock_common *sk_common;
	unsigned int uid;
};

#pragma clang attribute pop

#endif /* NETACCT_KERNEL_H */
