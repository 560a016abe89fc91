// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * tcp_health: how each process's TCP connections fare. Retransmissions by cause, the smoothed
 * RTT once per round trip, resets both ways, failed connects and zero-window stalls, counted
 * per socket in the socket's storage and read per connection; the kernel's own per-connection
 * counters (RTT and its variation, out-of-order segments, DSACKs) read beside them.
 *
 * A socket's owner is the process that made it (cgroup/sock_create), connected it or made it
 * listen (the process context of those state changes), or closed it (FIN_WAIT1 and LAST_ACK
 * are entered only by close() and shutdown()); an accepted socket inherits its listener's
 * owner (BPF_F_CLONE) until it is closed. Sockets that were open when netacct started get
 * a process found holding them in /proc (own_existing).
 * Events run in softirq and timers as often as not: they count for the socket's owner, never
 * for the interrupted task. Events of sockets with no owner (a reset answering a segment for
 * no socket, a kernel socket's) are counted as unattributed.
 *
 * Costs: nothing on the per-call path. tcp_probe runs for every segment a connection
 * receives: it reads the segment's acknowledgement and window and three fields of the socket,
 * and looks up the socket's storage only once per round trip (the kernel's rtt_seq) or in a
 * zero-window stall. The other programs run per retransmission, reset or state change.
 *
 * Needs Linux >= 6.2 (bpf_rdonly_cast); tcp_retransmit_skb's err argument (6.12) is handled by
 * a program for each prototype, as in wire.bpf.c.
 */
#include "netdev.h"
#include "sockets.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "maps.h"
#include "typed.h"
#include "fd.h"
#include "tcp.h"
#include "tcp_health.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define BPF_F_CLONE (1U << 9)
#define PF_KTHREAD 0x00200000
#define ETIMEDOUT 110

extern struct task_struct *bpf_task_from_pid(__s32 pid) __ksym;
extern void bpf_task_release(struct task_struct *p) __ksym;

/* The uapi context of cgroup/sock_create: only the fields read here, at their ABI offsets. */
struct bpf_sock {
	__u32 bound_dev_if;
	__u32 family;
	__u32 type;
	__u32 protocol;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC | BPF_F_CLONE);
	__type(key, int);
	__type(value, struct netacct_tcp_socket);
} sockets SEC(".maps");

/* Closed sockets' final records. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, NETACCT_TCP_CLOSED_RING_BYTES);
} closed SEC(".maps");

/* Events of sockets with no owner, by CPU. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct netacct_tcp_counters);
} unattributed SEC(".maps");

/* Filled by user space before own_existing runs: socket inode -> a PID holding it. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NETACCT_TCP_EXISTING_SOCKETS);
	__type(key, __u64);
	__type(value, __u32);
} existing SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NETACCT_TCP_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* A socket's storage, made when `create` (and counted when there is no room), or NULL. */
static __always_inline struct netacct_tcp_socket *socket_of(const struct sock *sk, bool create)
{
	struct netacct_tcp_socket *s;

	s = bpf_sk_storage_get(&sockets, (struct sock *)sk, 0, create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
	if (!s && create)
		percpu_counter_inc(&stats, NETACCT_TCP_STAT_STORAGE_FULL);
	return s;
}

/* The counters an event of `sk` adds to: its owner's, or the unattributed ones. */
static __always_inline struct netacct_tcp_counters *counters_of(const struct sock *sk)
{
	struct netacct_tcp_socket *s = sk ? socket_of(sk, false) : 0;
	__u32 zero = 0;

	if (s && s->tgid)
		return &s->counters;
	return bpf_map_lookup_elem(&unattributed, &zero);
}

/* Makes `task`'s process the owner `s` records. */
static __always_inline void become_owner(struct netacct_tcp_socket *s, struct task_struct *task)
{
	struct task_struct *leader = task->group_leader;

	s->process_start_ns = leader->start_time;
	s->cgroup_id = task->cgroups->dfl_cgrp->kn->id;
	__builtin_memcpy(s->comm, leader->comm, sizeof(s->comm));
	s->tgid = task->tgid;
}

/* The calling process takes `sk` (a state change it made), unless a kernel thread is calling. */
static __always_inline void taken_by_caller(struct sock *sk)
{
	struct task_struct *task = bpf_get_current_task_btf();
	struct netacct_tcp_socket *s;

	if (task->flags & PF_KTHREAD)
		return;
	s = socket_of(sk, true);
	if (s && s->tgid != task->tgid)
		become_owner(s, task);
}

static __always_inline bool tcp_family(__u32 family)
{
	return family == AF_INET || family == AF_INET6;
}

SEC("cgroup/sock_create")
int own_created(struct bpf_sock *ctx)
{
	struct netacct_tcp_socket *s;

	if (ctx->protocol != IPPROTO_TCP || !tcp_family(ctx->family))
		return 1;
	s = bpf_sk_storage_get(&sockets, ctx, 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!s)
		percpu_counter_inc(&stats, NETACCT_TCP_STAT_STORAGE_FULL);
	else
		become_owner(s, bpf_get_current_task_btf());
	return 1;
}

/*
 * State changes: who owns the socket (connect, listen and close run in the caller's context),
 * a connect that failed, and an accepted socket's fresh counters (its storage is a copy of its
 * listener's, made as the request became a socket, LISTEN -> SYN_RECV).
 */
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(follow_state, struct sock *sk, int oldstate, int newstate)
{
	struct netacct_tcp_counters *c;
	struct netacct_tcp_socket *s;
	bool timed_out;

	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	switch (newstate) {
	case TCP_SYN_SENT:
	case TCP_LISTEN:
	case TCP_FIN_WAIT1:
	case TCP_LAST_ACK:
		taken_by_caller(sk);
		return 0;
	case TCP_SYN_RECV:
		if (oldstate == TCP_LISTEN) {
			s = socket_of(sk, false);
			if (s) {
				__builtin_memset(&s->counters, 0, sizeof(s->counters));
				s->zero_window_mark = 0;
			}
		}
		return 0;
	case TCP_CLOSE:
		/* tcp_write_err sets ETIMEDOUT before it closes a connection it gave up on. */
		timed_out = sk->sk_err == ETIMEDOUT;
		if (oldstate != TCP_SYN_SENT && !timed_out)
			return 0;
		c = counters_of(sk);
		if (!c)
			return 0;
		if (oldstate == TCP_SYN_SENT)
			__sync_fetch_and_add(&c->failed_connects, 1);
		if (timed_out)
			__sync_fetch_and_add(&c->timeouts, 1);
		return 0;
	}
	return 0;
}

/*
 * A segment sent again, and why: a SYN, or the socket's congestion state. Retransmissions
 * run in timers, softirq and the owner's calls (release_sock): atomic adds.
 */
static __always_inline void count_retransmit(const struct sock *sk, const struct sk_buff *skb)
{
	struct netacct_tcp_counters *c = counters_of(sk);
	struct inet_connection_sock *icsk;
	__u8 flags = tcp_skb_flags(skb);
	__u32 cause;

	if (!c)
		return;
	if (flags & TCPHDR_SYN) {
		cause = flags & TCPHDR_ACK ? NETACCT_TCP_CAUSE_SYNACK : NETACCT_TCP_CAUSE_SYN;
	} else {
		icsk = TYPED(struct inet_connection_sock, sk);
		switch (BPF_CORE_READ_BITFIELD(icsk, icsk_ca_state)) {
		case TCP_CA_Loss:
			cause = NETACCT_TCP_CAUSE_TIMEOUT;
			break;
		case TCP_CA_Recovery:
			cause = NETACCT_TCP_CAUSE_FAST;
			break;
		default:
			cause = NETACCT_TCP_CAUSE_PROBE;
		}
	}
	barrier_var(cause);
	if (cause >= NETACCT_TCP_CAUSES)
		return;
	__sync_fetch_and_add(&c->retransmitted_segments[cause], tcp_skb_segments(skb));
	__sync_fetch_and_add(&c->retransmitted_bytes[cause], skb->len);
}

/* Linux >= 6.12 (the err argument): counted where TcpRetransSegs counts it. */
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(count_retransmit_err, const struct sock *sk, const struct sk_buff *skb, int err)
{
	if (retransmission_counted(err))
		count_retransmit(sk, skb);
	return 0;
}

/* Older kernels fire it only for a retransmission that went out. */
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(count_retransmit_sent, const struct sock *sk, const struct sk_buff *skb)
{
	count_retransmit(sk, skb);
	return 0;
}

/* A request socket's SYN-ACK sent again: its listener's (several CPUs may time out at once). */
SEC("tp_btf/tcp_retransmit_synack")
int BPF_PROG(count_synack_retransmit, const struct sock *sk)
{
	struct netacct_tcp_counters *c = counters_of(sk);

	if (c)
		__sync_fetch_and_add(&c->retransmitted_segments[NETACCT_TCP_CAUSE_SYNACK], 1);
	return 0;
}

/* A reset sent: by a socket (an abort, a segment it could not take), or for none (sk NULL). */
SEC("tp_btf/tcp_send_reset")
int BPF_PROG(count_reset_sent, const struct sock *sk)
{
	struct netacct_tcp_counters *c = counters_of(sk);

	if (c)
		__sync_fetch_and_add(&c->resets_sent, 1);
	return 0;
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(count_reset_received, struct sock *sk)
{
	struct netacct_tcp_counters *c = counters_of(sk);

	if (c)
		__sync_fetch_and_add(&c->resets_received, 1);
	return 0;
}

/* The smoothed RTT into its log2 bucket. */
static __always_inline void sample_rtt(struct netacct_tcp_counters *c, __u32 srtt_us)
{
	__u32 bucket = srtt_us > 1 ? 31 - __builtin_clz(srtt_us) : 0;

	if (bucket >= NETACCT_TCP_RTT_BUCKETS)
		bucket = NETACCT_TCP_RTT_BUCKETS - 1;
	barrier_var(bucket);
	if (bucket < NETACCT_TCP_RTT_BUCKETS)
		c->rtt_samples[bucket]++;
	c->rtt_sum_us += srtt_us;
}

/*
 * Every segment an established connection receives (the top of tcp_rcv_established, under
 * the socket's lock: plain increments). The common case reads the segment's acknowledgement
 * and window and the socket's rtt_seq, snd_wnd and rcv_wnd, and returns:
 * - an acknowledgement past rtt_seq ends a round trip (the kernel updates its RTT variation
 *   there): the smoothed RTT is sampled;
 * - a zero window where the last was open: the peer stalls this side;
 * - a segment while this side advertises a zero window: a window probe, and a stall counted
 *   once (by rcv_wup, where the window was advertised from).
 */
SEC("tp_btf/tcp_probe")
int BPF_PROG(watch_segment, struct sock *sk, const struct sk_buff *skb)
{
	struct tcp_sock *tp = TYPED(struct tcp_sock, sk);
	struct tcphdr *th = TYPED(struct tcphdr, skb->data);
	__u32 ack = bpf_ntohl(th->ack_seq), srtt = tp->srtt_us, mark;
	bool round = srtt && (__s32)(ack - tp->rtt_seq) > 0;
	bool stalled = th->window == 0 && tp->snd_wnd != 0;
	bool closed = tp->rcv_wnd == 0;
	struct netacct_tcp_socket *s;

	if (!round && !stalled && !closed)
		return 0;
	s = socket_of(sk, false);
	if (!s || !s->tgid)
		return 0;
	if (round)
		sample_rtt(&s->counters, srtt >> 3);
	if (stalled)
		s->counters.zero_windows_received++;
	if (closed) {
		s->counters.window_probes++;
		mark = tp->rcv_wup | 1;
		if (s->zero_window_mark != mark) {
			s->zero_window_mark = mark;
			s->counters.zero_windows_sent++;
		}
	}
	return 0;
}

/* A socket as user space reads it: its identity, owner, the kernel's counters and ours; every
 * byte of `r` but `closed` is written (the ring buffer's records are not zeroed for us). */
static __always_inline void describe(struct netacct_tcp_record *r, struct sock *sk, const struct netacct_tcp_socket *s)
{
	struct tcp_sock *tp = TYPED(struct tcp_sock, sk);

	r->cookie = bpf_get_socket_cookie(sk);
	r->process_start_ns = s->process_start_ns;
	r->cgroup_id = s->cgroup_id;
	r->tgid = s->tgid;
	r->family = sk->__sk_common.skc_family;
	r->state = sk->__sk_common.skc_state;
	/* (skc_num is cleared once a closing socket has released its port; inet_sport is kept.) */
	r->lport = bpf_ntohs(TYPED(struct inet_sock, sk)->inet_sport);
	/* An IPv4 socket's addresses fill 4 bytes of 16: the rest of a ring buffer's record is zeroed here. */
	__builtin_memset(r->laddr, 0, sizeof(r->laddr));
	__builtin_memset(r->raddr, 0, sizeof(r->raddr));
	r->rport = socket_endpoints(sk, r->laddr, r->raddr);
	r->srtt_us = tp->srtt_us >> 3;
	r->rttvar_us = tp->mdev_us >> 2;
	r->out_of_order = tp->rcv_ooopack;
	r->dsacks = tp->dsack_dups;
	r->total_retrans = tp->total_retrans;
	__builtin_memcpy(r->comm, s->comm, sizeof(r->comm));
	__builtin_memcpy(&r->counters, &s->counters, sizeof(r->counters));
}

/* A full socket's end: its final record to user space (its storage goes with it). */
SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(report_closed, struct sock *sk)
{
	struct netacct_tcp_socket *s = socket_of(sk, false);
	struct netacct_tcp_record *r;

	if (!s || !s->tgid)
		return 0;
	r = bpf_ringbuf_reserve(&closed, sizeof(*r), 0);
	if (!r) {
		percpu_counter_inc(&stats, NETACCT_TCP_STAT_CLOSED_LOST);
		return 0;
	}
	describe(r, sk, s);
	r->closed = 1;
	/* Nobody waits on it: user space drains it at each sample (a wakeup would cost an irq_work per close). */
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	return 0;
}

/*
 * Every owned TCP socket of the network namespace it is read in, a record each: user space
 * reads it in each namespace at each sample. (An iterator over the storage map itself would
 * see every namespace at once; this kernel refuses iter/bpf_sk_storage_map programs.)
 */
SEC("iter/tcp")
int read_sockets(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct netacct_tcp_record r = {};
	struct netacct_tcp_socket *s;
	struct tcp_sock *tp;

	if (!skc)
		return 0;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	s = socket_of((struct sock *)tp, false);
	if (!s || !s->tgid)
		return 0;
	describe(&r, (struct sock *)tp, s);
	bpf_seq_write(ctx->meta->seq, &r, sizeof(r));
	return 0;
}

/*
 * At start: each TCP socket open then is owned by a process holding it, which user space
 * found in /proc (`existing`: the socket's inode -> PID) for want of a file iterator whose
 * sockets may be given storage (a socket reached from a file is not a trusted pointer). It
 * sees the sockets of the network namespace it is read in: user space reads it in each.
 */
SEC("iter/tcp")
int own_existing(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct netacct_tcp_socket *s;
	struct task_struct *task;
	struct tcp_sock *tp;
	__u64 inode;
	__u32 *pid;

	if (!skc)
		return 0;
	tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	inode = socket_inode((struct sock *)tp);
	pid = inode ? bpf_map_lookup_elem(&existing, &inode) : 0;
	if (!pid)
		return 0;
	task = bpf_task_from_pid(*pid);
	if (!task)
		return 0;
	s = socket_of((struct sock *)tp, true);
	if (s && !s->tgid)
		become_owner(s, task);
	bpf_task_release(task);
	return 0;
}
