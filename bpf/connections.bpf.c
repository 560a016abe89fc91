// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * connections: TCP connections as they are established, fail and close, attributed to the
 * process and thread that called connect() or accept().
 *
 * Most of a handshake's state changes (sock:inet_sock_set_state) run in softirq, where the
 * current task is whatever the interrupt found: identity is taken only where the caller runs,
 * at CLOSE -> SYN_SENT inside connect() and at the exit of accept()/accept4(), and kept in
 * `connections`, keyed by the socket, until the connection closes. The filters are read-only
 * globals: what they exclude costs a comparison in the kernel and never reaches user space.
 *
 * Needs Linux >= 6.2 (tp_btf on inet_sock_set_state, bpf_get_current_task_btf in tracepoints,
 * ring buffers, the bpf_rdonly_cast kfunc) and tracefs for the two syscall tracepoints.
 */
#include "sockets.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "maps.h"
#include "typed.h"
#include "fd.h"
#include "filters.h"
#include "connections.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";

#define KIND(k) (1U << NETACCT_CONNECTION_##k)
#define DIRECTION(d) (1U << NETACCT_CONNECTION_##d)

/* Set before load; the verifier drops the code they make dead. */
const volatile __u32 kinds = KIND(CONNECT) | KIND(ACCEPT);
const volatile __u32 directions = DIRECTION(OUTBOUND) | DIRECTION(INBOUND);
const volatile __u16 family = 0;	/* AF_INET or AF_INET6; 0: both */
const volatile __u32 pids[NETACCT_CONNECTIONS_PIDS] = {};
const volatile __u32 pid_count = 0;
const volatile __u16 ports[NETACCT_CONNECTIONS_PORTS] = {};	/* local or remote */
const volatile __u32 port_count = 0;
const volatile bool in_cgroup = false;	/* only callers in cgroup_filter[0] or below it */

/*
 * User space is woken once this much is waiting (and polls every 100 ms anyway): a wakeup per
 * event would cost more than the event, in the kernel and in user space.
 */
#define WAKEUP_BYTES (512 << 10)

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 8 << 20);
} events SEC(".maps");


struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);	/* the struct sock's address */
	__type(value, struct netacct_connection);
} connections SEC(".maps");

/*
 * Each thread's state across connect() (only with --failed): a connect that failed before its
 * SYN left (no ephemeral port, no buffer) has no error on its socket, and connect()'s own result
 * says why, at its exit. Task storage: no table to fill, gone with the thread.
 */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct netacct_connecting);
} connecting SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} cgroup_filter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, NETACCT_CONNECTIONS_COUNTERS);
	__type(key, __u32);
	__type(value, __u64);
} counters SEC(".maps");

/* Whether a filter on who made the connection is set: a connection of nobody known cannot pass it. */
static __always_inline bool filters_callers(void)
{
	return pid_count || in_cgroup;
}

/* Whether the current task passes -p and --cgroup. Only meaningful in the caller's context. */
static __always_inline bool caller_matches(__u32 tgid)
{
	if (pid_count && !listed(pids, NETACCT_CONNECTIONS_PIDS, pid_count, tgid))
		return false;
	return !in_cgroup || bpf_current_task_under_cgroup(&cgroup_filter, 0) == 1;
}

/* Whether the socket passes -4/-6 (and is an internet socket at all). */
static __always_inline bool family_matches(__u16 sk_family)
{
	if (family)
		return sk_family == family;
	return sk_family == AF_INET || sk_family == AF_INET6;
}

static __always_inline __u16 local_port(struct sock *sk)
{
	return bpf_ntohs(TYPED(struct inet_sock, sk)->inet_sport);
}

/* Whether either port passes -P. */
static __always_inline bool ports_match(struct sock *sk)
{
	__u16 local, remote;

	if (!port_count)
		return true;
	local = local_port(sk);
	remote = bpf_ntohs(sk->__sk_common.skc_dport);
	for (int i = 0; i < NETACCT_CONNECTIONS_PORTS; i++) {
		if (i >= port_count)
			break;
		if (ports[i] == local || ports[i] == remote)
			return true;
	}
	return false;
}

/* Takes the current task as the connection's owner. */
static __always_inline void remember_caller(struct netacct_connection *c)
{
	__u64 id = bpf_get_current_pid_tgid();

	c->pid = id >> 32;
	c->tid = (__u32)id;
	c->cgroup = bpf_get_current_cgroup_id();
	bpf_get_current_comm(c->comm, sizeof(c->comm));
	__builtin_memcpy(c->process_comm, bpf_get_current_task_btf()->group_leader->comm, sizeof(c->process_comm));
	c->known |= NETACCT_CONNECTION_HAS_PROCESS;
}

/*
 * An event of `kind` for `sk`, with what `c` knows of it (NULL: nothing), reserved in the ring
 * buffer for the caller to complete and submit; NULL, counted as lost, when the buffer is full.
 */
static __always_inline struct netacct_connection_event *
event_for(__u8 kind, struct sock *sk, struct netacct_connection *c, __u64 now)
{
	struct netacct_connection_event *e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	__u16 sk_family;

	if (!e) {
		percpu_counter_inc(&counters, NETACCT_CONNECTIONS_LOST);
		return NULL;
	}
	__builtin_memset(e, 0, sizeof(*e));
	e->time_ns = now;
	e->kind = kind;
	if (c) {
		e->direction = c->direction;
		e->known = c->known & (NETACCT_CONNECTION_HAS_PROCESS | NETACCT_CONNECTION_HAS_LATENCY);
		e->pid = c->pid;
		e->tid = c->tid;
		e->cgroup = c->cgroup;
		e->latency_us = c->latency_us;
		__builtin_memcpy(e->comm, c->comm, sizeof(e->comm));
		__builtin_memcpy(e->process_comm, c->process_comm, sizeof(e->process_comm));
	} else {
		e->direction = NETACCT_CONNECTION_UNKNOWN;
	}
	sk_family = sk->__sk_common.skc_family;
	e->family = sk_family;
	e->lport = local_port(sk);
	e->rport = socket_endpoints(sk, e->laddr, e->raddr);
	return e;
}

/* Hands an event to user space, waking it only once a batch is waiting. */
static __always_inline void submit(struct netacct_connection_event *e)
{
	bool batch = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= WAKEUP_BYTES;

	bpf_ringbuf_submit(e, batch ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP);
}

/*
 * A failure with no error on the socket, inside connect() (this thread is in `connecting`): kept
 * there until connect() returns its error. Returns whether it was kept.
 */
static __always_inline bool defer_to_connect_exit(struct netacct_connection_event *e)
{
	struct netacct_connecting *state = bpf_task_storage_get(&connecting, bpf_get_current_task_btf(), 0, 0);

	if (!state || !state->inside)
		return false;
	__builtin_memcpy(&state->pending, e, sizeof(*e));
	return true;
}

static __always_inline void follow(__u64 key, struct netacct_connection *c)
{
	if (bpf_map_update_elem(&connections, &key, c, BPF_ANY))
		percpu_counter_inc(&counters, NETACCT_CONNECTIONS_UNTRACKED);
}

/* CLOSE -> SYN_SENT, inside connect() (or a fast-open sendmsg()): the caller's context. */
static __always_inline int connect_started(__u64 key)
{
	struct netacct_connection c = {};

	/*
	 * A connection not followed leaves no entry behind: an earlier socket at this address
	 * whose end was not seen must not lend it its owner.
	 */
	if (!(directions & DIRECTION(OUTBOUND)) || !caller_matches(bpf_get_current_pid_tgid() >> 32)) {
		if (filters_callers() || directions != (DIRECTION(OUTBOUND) | DIRECTION(INBOUND)))
			bpf_map_delete_elem(&connections, &key);
		return 0;
	}
	c.start_ns = bpf_ktime_get_ns();
	c.direction = NETACCT_CONNECTION_OUTBOUND;
	remember_caller(&c);
	follow(key, &c);
	return 0;
}

/* SYN_SENT -> ESTABLISHED (the SYN-ACK arrived) or -> CLOSE (the connect failed). */
static __always_inline int connect_ended(struct sock *sk, __u64 key, int newstate)
{
	struct netacct_connection_event *e;
	struct netacct_connection *c = bpf_map_lookup_elem(&connections, &key);
	__u64 now = bpf_ktime_get_ns();

	if (!c)
		return 0;
	c->latency_us = (now - c->start_ns) / 1000;
	c->known |= NETACCT_CONNECTION_HAS_LATENCY;
	if (newstate == TCP_ESTABLISHED) {
		if (!ports_match(sk)) {
			bpf_map_delete_elem(&connections, &key);
			return 0;
		}
		c->start_ns = now;
		c->known |= NETACCT_CONNECTION_HAS_DURATION;
		if (kinds & KIND(CONNECT)) {
			e = event_for(NETACCT_CONNECTION_CONNECT, sk, c, now);
			if (e)
				submit(e);
		}
		if (!(kinds & KIND(CLOSE)))
			bpf_map_delete_elem(&connections, &key);
		return 0;
	}
	if (newstate == TCP_CLOSE) {
		if ((kinds & KIND(FAILED)) && ports_match(sk)) {
			e = event_for(NETACCT_CONNECTION_FAILED, sk, c, now);
			if (e) {
				e->error = sk->sk_err;
				if (!e->error && defer_to_connect_exit(e))
					bpf_ringbuf_discard(e, BPF_RB_NO_WAKEUP);
				else
					submit(e);
			}
		}
		bpf_map_delete_elem(&connections, &key);
	}
	return 0;
}

/*
 * SYN_RECV -> ESTABLISHED of a passive connection (softirq: nobody has accepted it yet). Its
 * round-trip time is the kernel's measure of SYN-ACK to ACK, the handshake as the server sees it.
 */
static __always_inline int passive_established(struct sock *sk, __u64 key)
{
	struct netacct_connection c = {}, *known = bpf_map_lookup_elem(&connections, &key);
	__u32 srtt;

	if (known) {
		/* A simultaneous open (or a connect to itself): the connect it was. */
		if (known->direction == NETACCT_CONNECTION_OUTBOUND)
			return connect_ended(sk, key, TCP_ESTABLISHED);
		/* A fast-open connection accepted before its handshake ended: now established. */
		known->start_ns = bpf_ktime_get_ns();
		known->known |= NETACCT_CONNECTION_HAS_DURATION;
		return 0;
	}
	if (!(directions & DIRECTION(INBOUND)) || !(kinds & (KIND(ACCEPT) | KIND(CLOSE))))
		return 0;
	if (!ports_match(sk))
		return 0;
	c.start_ns = bpf_ktime_get_ns();
	c.direction = NETACCT_CONNECTION_INBOUND;
	c.known = NETACCT_CONNECTION_HAS_DURATION;
	srtt = TYPED(struct tcp_sock, sk)->srtt_us;
	if (srtt) {
		c.latency_us = srtt >> 3;
		c.known |= NETACCT_CONNECTION_HAS_LATENCY;
	}
	follow(key, &c);
	return 0;
}

/* States a socket reaches only once it has sent its FIN. */
static __always_inline bool fin_sent(int state)
{
	return state == TCP_FIN_WAIT1 || state == TCP_FIN_WAIT2 || state == TCP_CLOSING || state == TCP_LAST_ACK;
}

/*
 * The payload bytes of a closing connection: the kernel's counts of acknowledged and received
 * sequence space (RFC 4898's ThruOctets), less what was not payload: the SYN of an outbound
 * connection, our FIN once acknowledged, the peer's FIN once received.
 */
static __always_inline void payload_bytes(struct sock *sk, struct netacct_connection *c, int oldstate,
					  struct netacct_connection_event *e)
{
	struct tcp_sock *tp = TYPED(struct tcp_sock, sk);
	__u64 acked = tp->bytes_acked;
	__u64 received = tp->bytes_received;
	unsigned long flags = sk->__sk_common.skc_flags;

	if (c && c->direction == NETACCT_CONNECTION_OUTBOUND && acked)
		acked -= 1;
	if (fin_sent(oldstate) && tp->snd_una == tp->write_seq && acked)
		acked -= 1;
	if ((flags & (1UL << bpf_core_enum_value(enum sock_flags, SOCK_DONE))) && received)
		received -= 1;
	e->tx_bytes = acked;
	e->rx_bytes = received;
}

static __always_inline bool was_established(int state)
{
	return state == TCP_ESTABLISHED || state == TCP_FIN_WAIT1 || state == TCP_FIN_WAIT2 ||
	       state == TCP_CLOSE_WAIT || state == TCP_LAST_ACK || state == TCP_CLOSING;
}

/* Any other state -> CLOSE: the end of a connection, followed or not. */
static __always_inline int closed(struct sock *sk, __u64 key, int oldstate)
{
	struct netacct_connection_event *e;
	struct netacct_connection *c = bpf_map_lookup_elem(&connections, &key);
	__u64 now;

	if (!(kinds & KIND(CLOSE))) {
		if (c)
			bpf_map_delete_elem(&connections, &key);
		return 0;
	}
	if (c) {
		/* Accepted by nobody known (not yet, or through io_uring): only without -p and --cgroup. */
		if (!(c->known & NETACCT_CONNECTION_HAS_PROCESS) && filters_callers())
			goto forget;
	} else {
		/* Established before netacct started: its owner and direction are unknown. */
		if (filters_callers() || directions != (DIRECTION(OUTBOUND) | DIRECTION(INBOUND)))
			return 0;
		if (!was_established(oldstate) || !ports_match(sk))
			return 0;
	}
	now = bpf_ktime_get_ns();
	e = event_for(NETACCT_CONNECTION_CLOSE, sk, c, now);
	if (e) {
		if (c && (c->known & NETACCT_CONNECTION_HAS_DURATION)) {
			e->duration_ns = now - c->start_ns;
			e->known |= NETACCT_CONNECTION_HAS_DURATION;
		}
		payload_bytes(sk, c, oldstate, e);
		submit(e);
	}
forget:
	if (c)
		bpf_map_delete_elem(&connections, &key);
	return 0;
}

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(state_change, struct sock *sk, int oldstate, int newstate)
{
	__u64 key = (__u64)sk;

	if (sk->sk_protocol != IPPROTO_TCP || !family_matches(sk->__sk_common.skc_family))
		return 0;
	if (newstate == TCP_SYN_SENT)
		return connect_started(key);
	if (oldstate == TCP_SYN_SENT)
		return connect_ended(sk, key, newstate);
	if (oldstate == TCP_SYN_RECV && newstate == TCP_ESTABLISHED)
		return passive_established(sk, key);
	if (newstate == TCP_CLOSE)
		return closed(sk, key, oldstate);
	return 0;
}

/* accept() or accept4() returned `fd`, in the acceptor's context. */
static __always_inline int accepted(long fd)
{
	struct netacct_connection fresh = {}, *c;
	struct netacct_connection_event *e;
	struct sock *sk;
	__u64 key;

	if (fd < 0 || !(directions & DIRECTION(INBOUND)))
		return 0;
	sk = socket_of_fd(fd);
	if (!sk || sk->sk_protocol != IPPROTO_TCP || !family_matches(sk->__sk_common.skc_family))
		return 0;
	key = (__u64)sk;
	c = bpf_map_lookup_elem(&connections, &key);
	if (!caller_matches(bpf_get_current_pid_tgid() >> 32)) {
		if (c)
			bpf_map_delete_elem(&connections, &key);
		return 0;
	}
	if (!c) {
		/* Established before netacct started, or not followed (-P, or the table was full). */
		if (!ports_match(sk) || sk->__sk_common.skc_state == TCP_CLOSE)
			return 0;
		fresh.direction = NETACCT_CONNECTION_INBOUND;
		c = &fresh;
	}
	remember_caller(c);
	if (kinds & KIND(ACCEPT)) {
		e = event_for(NETACCT_CONNECTION_ACCEPT, sk, c, bpf_ktime_get_ns());
		if (e)
			submit(e);
	}
	if (!(kinds & KIND(CLOSE)))
		bpf_map_delete_elem(&connections, &key);
	else if (c == &fresh)
		follow(key, c);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_accept4")
int accept4_exit(struct syscall_exit *ctx)
{
	return accepted(ctx->ret);
}

SEC("tracepoint/syscalls/sys_exit_accept")
int accept_exit(struct syscall_exit *ctx)
{
	return accepted(ctx->ret);
}

/* connect() entered and returned (only with --failed): see `connecting`. */
SEC("tracepoint/syscalls/sys_enter_connect")
int connect_enter(struct syscall_enter *ctx)
{
	struct netacct_connecting *state;

	if (!(kinds & KIND(FAILED)))
		return 0;
	state = bpf_task_storage_get(&connecting, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (state) {
		state->inside = 1;
		state->pending.kind = NETACCT_CONNECTION_NONE;
	}
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int connect_exit(struct syscall_exit *ctx)
{
	struct netacct_connecting *state;
	struct netacct_connection_event *e;

	if (!(kinds & KIND(FAILED)))
		return 0;
	state = bpf_task_storage_get(&connecting, bpf_get_current_task_btf(), 0, 0);
	if (!state || !state->inside)
		return 0;
	state->inside = 0;
	if (state->pending.kind != NETACCT_CONNECTION_FAILED)
		return 0;
	e = bpf_ringbuf_reserve(&events, sizeof(*e), 0);
	if (!e) {
		percpu_counter_inc(&counters, NETACCT_CONNECTIONS_LOST);
		return 0;
	}
	__builtin_memcpy(e, &state->pending, sizeof(*e));
	e->error = ctx->ret < 0 ? -ctx->ret : ECONNABORTED;
	submit(e);
	return 0;
}
