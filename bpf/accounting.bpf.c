// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * accounting: TCP and UDP calls and bytes per thread, from the sock_send_length and
 * sock_recv_length tracepoints (Linux >= 6.3), or the system calls' exits (Linux >= 5.15).
 *
 * Hot path: one array lookup by TID (the verifier inlines it to an address computation),
 * one compare that this thread owns the slot, and two plain increments. No hash lookup per
 * process, thread or cgroup: the slot carries its thread's process and cgroup, and
 * processes and cgroups are sums that user space makes. A thread whose slot another thread
 * owns (TIDs equal modulo the array size) counts in the overflow hash: exact too, slower.
 *
 * Exit: sched_process_exit moves a thread's final counters into the exit ledger (a hash
 * keyed by thread identity) and frees its slot. The process's last counted thread through the
 * hook (or its last thread, when the group is dead) takes it out of the registry and adds a
 * "process exited" record after all of its threads' records. A thread that is not its process's
 * leader and calls exec takes the leader's TID: the exec hook ends its counting under its own.
 *
 * Reading needs no walk over the kernel's tasks: user space maps the slot array read-only
 * and reads the registry, the overflow hash and the ledger in batches.
 *
 * On kernels without those tracepoints (5.15 to 6.2) the syscall engine counts instead: the
 * same counters, from the exits of write, send*, recv*, read, sendfile and splice on a TCP or UDP
 * socket (its section below). User space loads one engine's programs, never both.
 *
 * Per socket (count_send_sockets and count_recv_sockets, loaded instead of count_send and
 * count_recv only when asked, with release_socket on the cgroup2 root): the same code and one
 * more step, the socket's record (kept in the thread's slot for the thread's last socket; a
 * socket storage lookup when the thread changes sockets) and two plain per-CPU increments
 * (accounting.h says how records are claimed, closed and given back).
 */
#include "kernel.h"
#include "sockets.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "maps.h"
#include "accounting.h"
#include "typed.h"
#include "fd.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

/* Non-zero: count only this process (set before load; the verifier drops the test when 0). */
const volatile __u32 only_tgid = 0;
/* Slots - 1; user space may size the slot array to another power of two before load. */
const volatile __u32 slot_mask = NETACCT_SLOTS - 1;
/*
 * Set once the registry was full: from then on an exiting process that is not in the registry
 * may still have been counted, so its last thread always leaves an exit record.
 */
__u32 registry_overflowed = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, NETACCT_SLOTS);
	__type(key, __u32);
	__type(value, struct netacct_slot);
} slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, NETACCT_OVERFLOW_ENTRIES);
	__type(key, __u32);
	__type(value, struct netacct_slot);
} overflow SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, NETACCT_PROCESS_ENTRIES);
	__type(key, __u32);
	__type(value, struct netacct_process);
} processes SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, NETACCT_LEDGER_ENTRIES);
	__type(key, struct netacct_task_id);
	__type(value, struct netacct_exit_record);
} ledger SEC(".maps");

/* Per-socket counting (see accounting.h); user space sizes these to 1 when it is not asked for. */
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct netacct_socket_owner);
} socket_owners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE);
	__uint(max_entries, NETACCT_SOCKET_RECORDS);
	__type(key, __u32);
	__type(value, struct netacct_socket);
} sockets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NETACCT_SOCKET_RECORDS);
	__type(key, __u32);
	__type(value, struct netacct_socket_counters);
} socket_counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_QUEUE);
	__uint(max_entries, NETACCT_SOCKET_RECORDS);
	__type(value, __u32);
} free_sockets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, NETACCT_SHARED_SOCKETS);
	__type(key, struct netacct_socket_user);
	__type(value, __u32);
} shared_sockets SEC(".maps");

/* The size of `sockets` (set before load, with the map's). */
const volatile __u32 socket_records = NETACCT_SOCKET_RECORDS;
/* Records of `sockets` never used yet start here (the ones given back are in `free_sockets`). */
__u32 fresh_sockets = 0;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NETACCT_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

static __always_inline void stat_inc(__u32 which)
{
	percpu_counter_inc(&stats, which);
}

/* Fills a slot's identity for the calling thread; thread_start_ns last, as "ready". */
static __always_inline void fill_identity(struct netacct_slot *slot, struct task_struct *task)
{
	slot->tgid = task->tgid;
	slot->process_start_ns = task->group_leader->start_time;
	slot->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(&slot->comm, sizeof(slot->comm));
	slot->socket_cookie = 0;
	barrier();
	slot->thread_start_ns = task->start_time;
}

/*
 * Counts the calling thread, which has just claimed its counters, in its process's registry
 * entry (created on the process's first counted thread).
 */
static __always_inline void register_thread(struct task_struct *task, __u64 cgroup_id)
{
	struct netacct_process fresh = {}, *process;
	__u32 tgid = task->tgid;
	long err;

	fresh.start_ns = task->group_leader->start_time;
	fresh.cgroup_id = cgroup_id;
	BPF_CORE_READ_STR_INTO(&fresh.comm, task, group_leader, comm);
	err = bpf_map_update_elem(&processes, &tgid, &fresh, BPF_NOEXIST);
	if (!err) {
		stat_inc(NETACCT_STAT_REGISTRY_CHANGES);
	} else if (err != -17 /* EEXIST */) {
		stat_inc(NETACCT_STAT_REGISTRY_FULL);
		registry_overflowed = 1;
		return;
	}
	process = bpf_map_lookup_elem(&processes, &tgid);
	if (!process)
		return;
	if (process->start_ns != fresh.start_ns) {
		/* An entry a process with this TGID left behind (its exit was never seen). */
		fresh.threads = 1;
		if (bpf_map_update_elem(&processes, &tgid, &fresh, BPF_EXIST) == 0)
			stat_inc(NETACCT_STAT_REGISTRY_CHANGES);
		return;
	}
	__sync_fetch_and_add(&process->threads, 1);
}

/* The calling thread's entry in the overflow hash, created if needed. */
static __noinline struct netacct_slot *overflow_entry(__u32 tid)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct netacct_slot *entry, fresh = {};

	entry = bpf_map_lookup_elem(&overflow, &tid);
	if (entry)
		return entry;
	fresh.tid = tid;
	fill_identity(&fresh, task);
	bpf_map_update_elem(&overflow, &tid, &fresh, BPF_NOEXIST);
	entry = bpf_map_lookup_elem(&overflow, &tid);
	if (!entry) {
		stat_inc(NETACCT_STAT_OVERFLOW_FULL);
		return 0;
	}
	register_thread(task, fresh.cgroup_id);
	return entry;
}

/* Claims a free slot for the calling thread, or falls back to the overflow hash. */
static __noinline struct netacct_slot *claim(struct netacct_slot *slot, __u32 tid)
{
	struct task_struct *task;

	struct netacct_slot *entry;

	if (slot->tid != 0 || __sync_val_compare_and_swap(&slot->tid, 0, tid) != 0)
		return overflow_entry(tid);
	task = bpf_get_current_task_btf();
	fill_identity(slot, task);
	/* A thread that counted in the overflow hash while another owned this slot is registered already. */
	entry = bpf_map_lookup_elem(&overflow, &tid);
	if (!entry || entry->thread_start_ns != task->start_time)
		register_thread(task, slot->cgroup_id);
	return slot;
}

/* The calling thread's (`tid`'s) slot when it owns one (nearly always), else its overflow entry. */
static __always_inline struct netacct_slot *thread_slot(__u32 tid)
{
	__u32 key = tid & slot_mask;
	struct netacct_slot *slot = bpf_map_lookup_elem(&slots, &key);

	if (!slot)
		return 0;
	if (slot->tid == tid)
		return slot;
	return claim(slot, tid);
}

/* The counters of the calling thread, `tid`. */
static __always_inline struct netacct_counters *thread_counters(__u32 tid)
{
	struct netacct_slot *slot = thread_slot(tid);

	return slot ? &slot->counters : 0;
}

/* 1 for TCP (and MPTCP), 2 for UDP (and UDP-Lite), 0 for everything else. */
static __always_inline int kind_of(__u16 family, __u16 protocol)
{
	if (family != AF_INET && family != AF_INET6)
		return 0;
	if (protocol == IPPROTO_TCP || protocol == IPPROTO_MPTCP)
		return 1;
	if (protocol == IPPROTO_UDP || protocol == IPPROTO_UDPLITE)
		return 2;
	return 0;
}

/* The kind of a socket the tracepoint hands over (a typed pointer: two loads). */
static __always_inline int classify(struct sock *sk)
{
	__u16 family = sk->__sk_common.skc_family;

	if (family != AF_INET && family != AF_INET6)
		return 0;
	return kind_of(family, sk->sk_protocol);
}

/*
 * Claims a free socket record and fills it for the calling process (cookie last). Returns its
 * index + 1, or 0 when none is free.
 */
static __always_inline __u32 new_socket_record(struct sock *sk, __u32 tgid, int kind, bool shared)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct netacct_socket *s;
	__u32 index;

	if (bpf_map_pop_elem(&free_sockets, &index) != 0) {
		/* Read first: once all are used, the counter stops (it cannot wrap to a used one). */
		if (*(volatile __u32 *)&fresh_sockets >= socket_records)
			return 0;
		index = __sync_fetch_and_add(&fresh_sockets, 1);
		if (index >= socket_records)
			return 0;
	}
	s = bpf_map_lookup_elem(&sockets, &index);
	if (!s)
		return 0;
	s->process_start_ns = task->group_leader->start_time;
	s->tgid = tgid;
	s->protocol = kind == 1 ? IPPROTO_TCP : IPPROTO_UDP;
	s->family = sk->__sk_common.skc_family;
	s->shared = shared;
	s->lport = sk->__sk_common.skc_num;
	s->rport = socket_endpoints(sk, s->laddr, s->raddr);
	return index + 1;
}

/*
 * Makes a record the caller won visible to user space: its cookie, written last. (A record
 * that lost a race is never published, so user space never sees two records of one socket
 * and process.)
 */
static __always_inline __u32 publish_socket_record(__u32 ref, struct sock *sk)
{
	__u32 index = ref - 1;
	struct netacct_socket *s = bpf_map_lookup_elem(&sockets, &index);

	if (s) {
		barrier();
		s->cookie = bpf_get_socket_cookie(sk);
	}
	return ref;
}

/* Gives a claimed record back, unpublished (it lost a race). */
static __always_inline void drop_socket_record(__u32 ref)
{
	__u32 index = ref - 1;

	bpf_map_push_elem(&free_sockets, &index, BPF_ANY);
}

/*
 * The record (index + 1) of `sk` for the calling process when its owner word does not name it:
 * the socket's first call (the caller becomes its owner), or a second process using it (its
 * record in `shared_sockets`). 0: no record free.
 */
static __noinline __u32 socket_record_slow(struct sock *sk, struct netacct_socket_owner *owner, __u32 tgid, int kind)
{
	struct netacct_socket_user user = {};
	__u64 word = owner->word;
	__u32 ref, *found;

	if (word == 0) {
		/*
		 * A kernel socket (NFS, SMB, iSCSI…) has no file: it is never released through a
		 * descriptor, so its record would never come back. It is not counted per socket.
		 */
		struct socket *sock = sk->sk_socket;

		if (!sock || !sock->file) {
			__sync_val_compare_and_swap(&owner->word, 0, NETACCT_SOCKET_UNCOUNTED);
			return NETACCT_SOCKET_UNCOUNTED;
		}
		ref = new_socket_record(sk, tgid, kind, false);
		if (!ref)
			return 0;
		word = (__u64)tgid << 32 | ref;
		if (__sync_val_compare_and_swap(&owner->word, 0, word) == 0)
			return publish_socket_record(ref, sk);
		/* Another thread claimed the socket first. */
		drop_socket_record(ref);
		word = owner->word;
		if (word >> 32 == tgid)
			return (__u32)word;
	}
	if (word == NETACCT_SOCKET_UNCOUNTED)
		return NETACCT_SOCKET_UNCOUNTED;
	user.cookie = bpf_get_socket_cookie(sk);
	user.tgid = tgid;
	found = bpf_map_lookup_elem(&shared_sockets, &user);
	if (found)
		return *found;
	ref = new_socket_record(sk, tgid, kind, true);
	if (!ref)
		return 0;
	if (bpf_map_update_elem(&shared_sockets, &user, &ref, BPF_NOEXIST) == 0)
		return publish_socket_record(ref, sk);
	drop_socket_record(ref);
	found = bpf_map_lookup_elem(&shared_sockets, &user);
	return found ? *found : 0;
}

/*
 * The record (index + 1) of `sk` for the calling process, `tgid`, through the socket's storage;
 * NETACCT_SOCKET_UNCOUNTED, or 0 when none is free (counted).
 */
static __always_inline __u32 socket_record(struct sock *sk, __u32 tgid, int kind)
{
	struct netacct_socket_owner *owner;
	__u32 ref;
	__u64 word;

	owner = bpf_sk_storage_get(&socket_owners, sk, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!owner)
		return 0;
	word = owner->word;
	ref = word >> 32 == tgid ? (__u32)word : 0;
	if (!ref)
		ref = socket_record_slow(sk, owner, tgid, kind);
	return ref;
}

/*
 * Counts one call on `sk` in its record for the calling process, `tgid`, whose thread's slot is
 * `thread`. The thread's last socket and its record are kept in the slot: a call on the same
 * socket again (its cookie, never reused, read from the socket) makes no storage lookup, the
 * one helper call of this path. The record stays the process's for as long as the socket is
 * open and the process lives (user space frees a record only once its socket is released, or,
 * for a second process's record, once /proc says that process is gone, and with it this slot's
 * thread). The slot's process is checked too: a slot its thread never gave back (it left by an
 * exec from a thread other than the main one) may be used again by a thread of another process.
 */
static __always_inline void count_socket(struct sock *sk, struct netacct_slot *thread, __u32 tgid, int kind, int ret, bool tx)
{
	__u64 cookie = sk->__sk_common.skc_cookie.counter;
	struct netacct_socket_counters *c;
	__u32 ref, index;

	if (thread && cookie && thread->socket_cookie == cookie && thread->tgid == tgid) {
		ref = thread->socket_ref;
	} else {
		ref = socket_record(sk, tgid, kind);
		if (ref == NETACCT_SOCKET_UNCOUNTED)
			return;
		/* A record was made or found: the socket has its cookie by now. */
		cookie = sk->__sk_common.skc_cookie.counter;
		if (thread && ref && cookie) {
			thread->socket_cookie = cookie;
			thread->socket_ref = ref;
		}
	}
	index = ref - 1;
	c = ref ? bpf_map_lookup_elem(&socket_counters, &index) : 0;
	if (!c) {
		stat_inc(NETACCT_STAT_SOCKETS_FULL);
		return;
	}
	if (tx) {
		c->tx_packets += 1;
		c->tx_bytes += ret;
	} else {
		c->rx_packets += 1;
		c->rx_bytes += ret;
	}
}

/* Counts `calls` calls of `bytes` in all, sent (tx) or received, in a thread's counters `c`. */
static __always_inline void count_in(struct netacct_counters *c, int kind, __u64 calls, __u64 bytes, bool tx)
{
	if (!c)
		return;
	if (kind == 1 && tx) {
		c->tcp_tx_packets += calls;
		c->tcp_tx_bytes += bytes;
	} else if (kind == 1) {
		c->tcp_rx_packets += calls;
		c->tcp_rx_bytes += bytes;
	} else if (tx) {
		c->udp_tx_packets += calls;
		c->udp_tx_bytes += bytes;
	} else {
		c->udp_rx_packets += calls;
		c->udp_rx_bytes += bytes;
	}
}

/* Whether process `tgid` is left out by the -p filter (the verifier drops the test when it is unset). */
static __always_inline bool filtered_out(__u32 tgid)
{
	return only_tgid && tgid != only_tgid;
}

/*
 * One counted call: `ret` bytes sent (tx) or received by the calling thread on `sk`; with
 * `per_socket` (a constant of each entry point), in the socket's record too.
 */
static __always_inline int count_call(struct sock *sk, int ret, bool tx, bool per_socket)
{
	struct netacct_slot *thread;
	__u64 id;
	int kind;

	kind = classify(sk);
	if (!kind)
		return 0;
	/* The one helper call for the caller's identity, shared by the filter and both counts. */
	id = bpf_get_current_pid_tgid();
	if (filtered_out(id >> 32))
		return 0;
	thread = thread_slot((__u32)id);
	count_in(thread ? &thread->counters : 0, kind, 1, ret, tx);
	if (per_socket)
		count_socket(sk, thread, id >> 32, kind, ret, tx);
	return 0;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(count_send, struct sock *sk, int ret, int flags)
{
	if (ret <= 0)
		return 0;
	return count_call(sk, ret, true, false);
}

/* A receive with MSG_PEEK is read again later; MSG_ERRQUEUE reads no data. */
SEC("tp_btf/sock_recv_length")
int BPF_PROG(count_recv, struct sock *sk, int ret, int flags)
{
	if (ret <= 0 || (flags & (MSG_PEEK | MSG_ERRQUEUE)))
		return 0;
	return count_call(sk, ret, false, false);
}

/* The same, per socket too: loaded instead of count_send and count_recv when asked. */
SEC("tp_btf/sock_send_length")
int BPF_PROG(count_send_sockets, struct sock *sk, int ret, int flags)
{
	if (ret <= 0)
		return 0;
	return count_call(sk, ret, true, true);
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(count_recv_sockets, struct sock *sk, int ret, int flags)
{
	if (ret <= 0 || (flags & (MSG_PEEK | MSG_ERRQUEUE)))
		return 0;
	return count_call(sk, ret, false, true);
}

/*
 * The syscall engine, for kernels without the sock tracepoints (Linux 5.15 to 6.2): the exits
 * of the system calls that move data through a socket. Each program runs at its call's exit
 * only: the call's arguments are still in the user registers the kernel saved at entry
 * (bpf_task_pt_regs), so no entry program has to remember them. The descriptor is resolved
 * to its socket there and the socket classified as above; anything but a TCP or UDP socket
 * (a file, a pipe, a UNIX socket) stops after a few reads. Same rules as the sock engine:
 * only successful calls count, MSG_PEEK and MSG_ERRQUEUE receives do not, and sendmmsg and
 * recvmmsg count one call per message that carried data. What it cannot see (io_uring, the
 * kernel's own sockets, 32-bit programs) is in the README.
 */

/*
 * Each program below asks for the calling task once and reads the rest from it (the saved
 * registers, the descriptor table, the TID, the TGID): every helper call costs ~12 ns on a kernel
 * that returns through a mitigation thunk (BENCHMARKS.md), and these programs make few besides
 * the reads.
 */
/* The saved user registers of the system call `task` (the calling thread) is returning from. */
static __always_inline struct pt_regs *syscall_regs(struct task_struct *task)
{
	return (struct pt_regs *)bpf_task_pt_regs(task);
}

/* The kind (kind_of) of the socket behind descriptor `fd` of `task`, or 0. */
static __always_inline int classify_fd(struct task_struct *task, long fd)
{
	struct sock *sk = socket_of_fd_read(task, fd);
	__u16 family;

	if (!sk)
		return 0;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	return kind_of(family, BPF_CORE_READ(sk, sk_protocol));
}

/* A call that returned `ret` bytes on the descriptor in argument `fd_arg`. */
static __always_inline int count_fd_call(long ret, int fd_arg, bool tx)
{
	struct task_struct *task;
	int kind;

	if (ret <= 0)
		return 0;
	task = bpf_get_current_task_btf();
	if (filtered_out(task->tgid))
		return 0;
	kind = classify_fd(task, SYSCALL_ARG(syscall_regs(task), fd_arg));
	if (kind)
		count_in(thread_counters(task->pid), kind, 1, ret, tx);
	return 0;
}

/* A receive whose flags are in argument `flags_arg`: peeking and the error queue are not traffic. */
static __always_inline int count_fd_recv(long ret, int flags_arg)
{
	struct task_struct *task;
	struct pt_regs *regs;
	int kind;

	if (ret <= 0)
		return 0;
	task = bpf_get_current_task_btf();
	if (filtered_out(task->tgid))
		return 0;
	regs = syscall_regs(task);
	if (SYSCALL_ARG(regs, flags_arg) & (MSG_PEEK | MSG_ERRQUEUE))
		return 0;
	kind = classify_fd(task, SYSCALL_ARG(regs, 0));
	if (kind)
		count_in(thread_counters(task->pid), kind, 1, ret, false);
	return 0;
}

#define UIO_MAXIOV 1024	/* the most messages one sendmmsg or recvmmsg moves */
#define MMSGHDR_SIZE 64	/* struct mmsghdr: a 56-byte msghdr, then msg_len */
#define MMSGHDR_MSG_LEN 56

/*
 * sendmmsg or recvmmsg: `ret` messages moved, each message's byte count written back to the
 * caller's array (msg_len): one call per message that carried data, as the sock engine counts.
 */
static __always_inline int count_mmsg(long ret, bool tx)
{
	struct task_struct *task;
	struct pt_regs *regs;
	unsigned long vector;
	__u64 calls = 0, bytes = 0;
	__u32 len;
	int kind, i;

	if (ret <= 0)
		return 0;
	task = bpf_get_current_task_btf();
	if (filtered_out(task->tgid))
		return 0;
	regs = syscall_regs(task);
	if (!tx && (SYSCALL_ARG(regs, 3) & (MSG_PEEK | MSG_ERRQUEUE)))
		return 0;
	kind = classify_fd(task, SYSCALL_ARG(regs, 0));
	if (!kind)
		return 0;
	vector = SYSCALL_ARG(regs, 1);
	/*
	 * No branch in the body, so that the verifier walks each of up to 1024 iterations once: a
	 * failed read leaves len 0, and (len + 2^32 - 1) >> 32 is 1 for any len but 0.
	 */
	for (i = 0; i < UIO_MAXIOV && i < ret; i++) {
		len = 0;
		bpf_probe_read_user(&len, sizeof(len), (void *)(vector + i * MMSGHDR_SIZE + MMSGHDR_MSG_LEN));
		calls += ((__u64)len + 0xffffffffULL) >> 32;
		bytes += len;
	}
	if (calls)
		count_in(thread_counters(task->pid), kind, calls, bytes, tx);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_write")
int count_write(struct syscall_exit *ctx) { return count_fd_call(ctx->ret, 0, true); }

SEC("tracepoint/syscalls/sys_exit_writev")
int count_writev(struct syscall_exit *ctx) { return count_fd_call(ctx->ret, 0, true); }

SEC("tracepoint/syscalls/sys_exit_sendto")
int count_sendto(struct syscall_exit *ctx) { return count_fd_call(ctx->ret, 0, true); }

SEC("tracepoint/syscalls/sys_exit_sendmsg")
int count_sendmsg(struct syscall_exit *ctx) { return count_fd_call(ctx->ret, 0, true); }

SEC("tracepoint/syscalls/sys_exit_sendmmsg")
int count_sendmmsg(struct syscall_exit *ctx) { return count_mmsg(ctx->ret, true); }

/* sendfile(out_fd, in_fd, …): into a socket when out_fd is one. */
SEC("tracepoint/syscalls/sys_exit_sendfile64")
int count_sendfile(struct syscall_exit *ctx) { return count_fd_call(ctx->ret, 0, true); }

/* splice(fd_in, off_in, fd_out, …): into a socket when fd_out is one. */
SEC("tracepoint/syscalls/sys_exit_splice")
int count_splice(struct syscall_exit *ctx) { return count_fd_call(ctx->ret, 2, true); }

SEC("tracepoint/syscalls/sys_exit_read")
int count_read(struct syscall_exit *ctx) { return count_fd_call(ctx->ret, 0, false); }

SEC("tracepoint/syscalls/sys_exit_readv")
int count_readv(struct syscall_exit *ctx) { return count_fd_call(ctx->ret, 0, false); }

/* recvfrom(fd, buf, len, flags, …) */
SEC("tracepoint/syscalls/sys_exit_recvfrom")
int count_recvfrom(struct syscall_exit *ctx) { return count_fd_recv(ctx->ret, 3); }

/* recvmsg(fd, msg, flags) */
SEC("tracepoint/syscalls/sys_exit_recvmsg")
int count_recvmsg(struct syscall_exit *ctx) { return count_fd_recv(ctx->ret, 2); }

SEC("tracepoint/syscalls/sys_exit_recvmmsg")
int count_recvmmsg(struct syscall_exit *ctx) { return count_mmsg(ctx->ret, false); }

/*
 * A socket's release (the close of its last descriptor, Linux >= 5.9), on the cgroup2 root:
 * its records' counters are final. The owner's record is marked here; user space marks the
 * other processes' records of the same cookie.
 */
SEC("cgroup/sock_release")
int release_socket(struct bpf_sock *sock)
{
	struct netacct_socket_owner *owner = bpf_sk_storage_get(&socket_owners, sock, 0, 0);
	struct netacct_socket *s;
	__u32 index;

	if (!owner || !(__u32)owner->word || owner->word == NETACCT_SOCKET_UNCOUNTED)
		return 1;
	index = (__u32)owner->word - 1;
	s = bpf_map_lookup_elem(&sockets, &index);
	/* Never given back before this release, but check it is this socket's anyway (a stale owner word). */
	if (s && s->cookie == bpf_get_socket_cookie(sock))
		s->closed = 1;
	return 1;
}

static __always_inline void add_counters(struct netacct_counters *to, const struct netacct_counters *from)
{
	to->tcp_tx_packets += from->tcp_tx_packets;
	to->tcp_tx_bytes += from->tcp_tx_bytes;
	to->tcp_rx_packets += from->tcp_rx_packets;
	to->tcp_rx_bytes += from->tcp_rx_bytes;
	to->udp_tx_packets += from->udp_tx_packets;
	to->udp_tx_bytes += from->udp_tx_bytes;
	to->udp_rx_packets += from->udp_rx_packets;
	to->udp_rx_bytes += from->udp_rx_bytes;
}

/*
 * Whether the exiting thread ends its process: the whole thread group is dead and no other
 * counted thread is still on its way through this hook. Exactly one thread decides so (the
 * registry entry is deleted once), after every counted thread has put its record in the ledger.
 */
static __always_inline bool ends_process(struct task_struct *task, __u32 tgid, bool counted)
{
	bool group_dead = task->signal->live.counter == 0;
	struct netacct_process *process;
	__u32 remaining;

	process = bpf_map_lookup_elem(&processes, &tgid);
	if (process && process->start_ns != task->group_leader->start_time)
		process = 0;
	if (!process)
		/* Not registered: counted only if the registry was full at some point. */
		return group_dead && (counted || registry_overflowed);
	if (counted)
		remaining = __sync_sub_and_fetch(&process->threads, 1);
	else
		remaining = *(volatile __u32 *)&process->threads;
	if (!group_dead || remaining != 0)
		return false;
	if (bpf_map_delete_elem(&processes, &tgid) != 0)
		return false; /* another exiting thread decided first */
	stat_inc(NETACCT_STAT_REGISTRY_CHANGES);
	return true;
}

/*
 * Puts a thread's final counters in the ledger under its identity. A record of that identity
 * still unread gets them added instead: after a non-leader exec the thread that remains takes
 * the leader's TID and start time, so the leader's identity can end twice. The sum replaces the
 * record only if it is still there (BPF_EXIST): user space takes and deletes records under the
 * bucket's lock, so a record it took meanwhile is not added to, and the new counters go alone.
 */
static __always_inline void ledger_put(const struct netacct_task_id *id, const struct netacct_exit_record *rec)
{
	struct netacct_exit_record sum, *unread;

	if (bpf_map_update_elem(&ledger, id, rec, BPF_NOEXIST) == 0)
		return;
	unread = bpf_map_lookup_elem(&ledger, id);
	if (unread) {
		sum = *unread;
		add_counters(&sum.counters, &rec->counters);
		if (bpf_map_update_elem(&ledger, id, &sum, BPF_EXIST) == 0)
			return;
	}
	/* Taken by user space in between: the new counters alone. */
	if (bpf_map_update_elem(&ledger, id, rec, BPF_NOEXIST) != 0)
		stat_inc(NETACCT_STAT_LEDGER_FULL);
}

/*
 * Ends a counted thread's counting, `slot` and `entry` being its slot and overflow entry (either
 * may be null): its counters go to the ledger, keyed by `id` (tid and thread_start_ns filled
 * here, and the name of `task` when given), its slot is freed and its overflow entry deleted.
 * Returns whether it was counted.
 */
static __always_inline bool retire_thread(struct netacct_task_id *id, struct netacct_exit_record *rec, __u32 tid,
					  struct netacct_slot *slot, struct netacct_slot *entry, struct task_struct *task)
{
	bool counted = false;

	if (slot) {
		add_counters(&rec->counters, &slot->counters);
		rec->cgroup_id = slot->cgroup_id;
		id->thread_start_ns = slot->thread_start_ns;
		counted = true;
	}
	if (entry) {
		add_counters(&rec->counters, &entry->counters);
		rec->cgroup_id = entry->cgroup_id;
		id->thread_start_ns = entry->thread_start_ns;
		counted = true;
	}
	/* A flag, not a test of both pointers: clang would or them, which the verifier refuses. */
	if (!counted)
		return false;
	/* The exiting `task`'s name now (an exec's caller gives it from the slot instead: NULL). */
	if (task)
		BPF_CORE_READ_STR_INTO(&rec->comm, task, comm);
	id->tid = tid;
	ledger_put(id, rec);
	if (slot) {
		/* Free the slot for the next thread: identity off first, the owner field last. */
		slot->thread_start_ns = 0;
		__builtin_memset(&slot->counters, 0, sizeof(slot->counters));
		__sync_fetch_and_and(&slot->tid, 0);
	}
	if (entry)
		bpf_map_delete_elem(&overflow, &tid);
	return true;
}

/*
 * The exit of every counted thread: its final counters go to the ledger (keyed by the thread's
 * identity) and its slot is freed. When it ends its process, a second record follows, keyed
 * by the process's identity with tid 0: "the process has exited", written after every one of
 * its threads' records, so user space never learns of the exit before the final counters.
 */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(record_exit, struct task_struct *task)
{
	struct netacct_exit_record rec = {};
	struct netacct_task_id id = {};
	struct netacct_slot *slot, *entry;
	__u32 tid = task->pid, tgid = task->tgid, key = tid & slot_mask;
	__u64 start = task->start_time;
	bool counted;

	slot = bpf_map_lookup_elem(&slots, &key);
	if (slot && (slot->tid != tid || slot->thread_start_ns != start))
		slot = 0;
	entry = bpf_map_lookup_elem(&overflow, &tid);
	if (entry && entry->thread_start_ns != start)
		entry = 0;

	id.tgid = tgid;
	id.process_start_ns = task->group_leader->start_time;
	rec.exit_ns = bpf_ktime_get_ns();
	BPF_CORE_READ_STR_INTO(&rec.process_comm, task, group_leader, comm);
	counted = retire_thread(&id, &rec, tid, slot, entry, task);
	if (!ends_process(task, tgid, counted))
		return 0;
	/* The process record: no counters of its own (its threads' records carry them). */
	__builtin_memset(&rec.counters, 0, sizeof(rec.counters));
	__builtin_memset(&rec.comm, 0, sizeof(rec.comm));
	id.tid = 0;
	id.thread_start_ns = 0;
	rec.process_exited = 1;
	/* BPF_ANY: an unregistered process may be ended by two threads at once. */
	if (bpf_map_update_elem(&ledger, &id, &rec, BPF_ANY))
		stat_inc(NETACCT_STAT_LEDGER_FULL);
	return 0;
}

/*
 * An exec by a thread that is not its process's leader (Linux >= 5.5: tp_btf). The kernel
 * ends every other thread (each passes the exit hook), then gives the exec'ing thread the
 * leader's TID and start time: under its own TID it never exits. Its counting ends here, as
 * an exit would end it: its counters go to the ledger under its old identity, its slot is
 * freed and its process counts one counted thread less. Under the leader's TID it is counted
 * afresh, as the leader.
 */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(record_exec, struct task_struct *task, int old_pid, struct linux_binprm *bprm)
{
	struct netacct_exit_record rec = {};
	struct netacct_task_id id = {};
	struct netacct_slot *slot, *entry;
	struct netacct_process *process;
	__u32 tid = old_pid, tgid = task->tgid, key = tid & slot_mask;
	/* The leader's start time, which the exec'ing thread now has. */
	__u64 process_start = task->start_time;

	if (tid == task->pid)
		return 0;
	slot = bpf_map_lookup_elem(&slots, &key);
	if (slot && (slot->tid != tid || slot->tgid != tgid || slot->process_start_ns != process_start))
		slot = 0;
	entry = bpf_map_lookup_elem(&overflow, &tid);
	if (entry && (entry->tgid != tgid || entry->process_start_ns != process_start))
		entry = 0;

	process = bpf_map_lookup_elem(&processes, &tgid);
	if (process && process->start_ns != process_start)
		process = 0;
	id.tgid = tgid;
	id.process_start_ns = process_start;
	rec.exit_ns = bpf_ktime_get_ns();
	if (slot)
		__builtin_memcpy(&rec.comm, &slot->comm, sizeof(rec.comm));
	else if (entry)
		__builtin_memcpy(&rec.comm, &entry->comm, sizeof(rec.comm));
	/* The process's name as registered (the thread's is its own, and the new program's is not yet known). */
	if (process)
		__builtin_memcpy(&rec.process_comm, &process->comm, sizeof(rec.process_comm));
	else
		__builtin_memcpy(&rec.process_comm, &rec.comm, sizeof(rec.process_comm));
	if (retire_thread(&id, &rec, tid, slot, entry, NULL) && process)
		__sync_fetch_and_sub(&process->threads, 1);
	return 0;
}
