// SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause
/*
 * tcp_health_parts: the TCP health programs (tcp_health.bpf.c, included whole: the same code and
 * maps) and the two that miss their goal cut after each of their steps, for the benchmark's
 * account of where the time goes (netacct-bench tcp). Each runs alone on its hook, with the
 * owner programs.
 */
#include "../tcp_health.bpf.c"

/* tcp_probe's common path only: the segment's acknowledgement and window, three fields of the socket. */
SEC("tp_btf/tcp_probe")
int BPF_PROG(parts_gate, struct sock *sk, const struct sk_buff *skb)
{
	struct tcp_sock *tp = TYPED(struct tcp_sock, sk);
	struct tcphdr *th = TYPED(struct tcphdr, skb->data);
	__u32 ack = bpf_ntohl(th->ack_seq), srtt = tp->srtt_us;
	bool round = srtt && (__s32)(ack - tp->rtt_seq) > 0;
	bool stalled = th->window == 0 && tp->snd_wnd != 0;

	return round || stalled || tp->rcv_wnd == 0;
}

/* The same, then the socket's storage where a round trip ends (kept, so that the lookup is not dropped). */
SEC("tp_btf/tcp_probe")
int BPF_PROG(parts_lookup, struct sock *sk, const struct sk_buff *skb)
{
	struct tcp_sock *tp = TYPED(struct tcp_sock, sk);
	struct tcphdr *th = TYPED(struct tcphdr, skb->data);
	__u32 ack = bpf_ntohl(th->ack_seq), srtt = tp->srtt_us;
	struct netacct_tcp_socket *s;

	if (!srtt || (__s32)(ack - tp->rtt_seq) <= 0)
		return 0;
	s = socket_of(sk, false);
	return s && s->tgid;
}

/* tcp_destroy_sock's storage lookup only. */
SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(parts_closed_lookup, struct sock *sk)
{
	struct netacct_tcp_socket *s = socket_of(sk, false);

	return s && s->tgid;
}

/* The lookup, then a record reserved and submitted with nothing written in it but `closed`. */
SEC("tp_btf/tcp_destroy_sock")
int BPF_PROG(parts_closed_reserve, struct sock *sk)
{
	struct netacct_tcp_socket *s = socket_of(sk, false);
	struct netacct_tcp_record *r;

	if (!s || !s->tgid)
		return 0;
	r = bpf_ringbuf_reserve(&closed, sizeof(*r), 0);
	if (!r)
		return 0;
	r->closed = 1;
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
	return 0;
}
