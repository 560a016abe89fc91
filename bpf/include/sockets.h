/* SPDX-License-Identifier: GPL-2.0 OR BSD-2-Clause */
/*
 * The TCP and file-table kernel types the connections programs touch (CO-RE, as in kernel.h:
 * only the field names and types must match the running kernel's BTF).
 */
#ifndef NETACCT_SOCKETS_H
#define NETACCT_SOCKETS_H

#include "kernel.h"
#include <bpf/bpf_endian.h>

/* include/net/tcp_states.h */
enum {
	TCP_ESTABLISHED = 1,
	TCP_SYN_SENT = 2,
	TCP_SYN_RECV = 3,
	TCP_FIN_WAIT1 = 4,
	TCP_FIN_WAIT2 = 5,
	TCP_TIME_WAIT = 6,
	TCP_CLOSE = 7,
	TCP_CLOSE_WAIT = 8,
	TCP_LAST_ACK = 9,
	TCP_LISTEN = 10,
	TCP_CLOSING = 11,
	TCP_NEW_SYN_RECV = 12,	/* a request sock: a SYN answered, no full socket yet */
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

/* The bit numbers of sock.sk_flags (enum sock_flags). */
enum sock_flags {
	SOCK_DEAD,
	SOCK_DONE,	/* the peer's FIN was received */
};

struct inet_sock {
	__be16 inet_sport;	/* the local port; skc_num is cleared once the port is released */
};

struct tcp_sock {
	__u32 rcv_nxt;		/* the next byte expected from the peer */
	__u32 copied_seq;	/* the next byte the application will read */
	__u32 srtt_us;		/* smoothed round-trip time << 3, in microseconds */
	__u32 snd_una;		/* the first byte not acknowledged */
	__u32 write_seq;	/* the end of what was queued to send (a FIN included) */
	__u64 bytes_received;	/* payload bytes received (RFC 4898 tcpEStatsAppHCThruOctetsReceived) */
	__u64 bytes_acked;	/* payload bytes sent and acknowledged (tcpEStatsAppHCThruOctetsAcked) */
	__u32 mdev_us;		/* the RTT's mean deviation << 2, in microseconds */
	__u32 rtt_seq;		/* snd_nxt when the RTT variation was last updated: once per round trip */
	__u32 snd_wnd;		/* the window the peer advertised last */
	__u32 rcv_wnd;		/* the window this side advertised last */
	__u32 rcv_wup;		/* rcv_nxt when rcv_wnd was advertised */
	__u32 rcv_ooopack;	/* out-of-order segments received */
	__u32 dsack_dups;	/* segments the peer reported received twice (DSACK) */
	__u32 total_retrans;	/* segments sent again over the connection's life */
};

/* The congestion state (enum tcp_ca_state), a bitfield read with BPF_CORE_READ_BITFIELD. */
struct inet_connection_sock {
	__u8 icsk_ca_state:5;
};

/* include/net/tcp.h: enum tcp_ca_state */
enum {
	TCP_CA_Open = 0,
	TCP_CA_Disorder = 1,
	TCP_CA_CWR = 2,
	TCP_CA_Recovery = 3,
	TCP_CA_Loss = 4,
};

struct file {
	void *private_data;	/* a socket file's struct socket */
};

struct socket {
	struct file *file;
	struct sock *sk;
};

struct inode {
	unsigned long i_ino;
};

/* A socket and its inode are allocated together (SOCK_INODE). */
struct socket_alloc {
	struct socket socket;
	struct inode vfs_inode;
};

struct fdtable {
	unsigned int max_fds;
	struct file **fd;
};

struct files_struct {
	struct fdtable *fdt;
};

#pragma clang attribute pop

/*
 * A socket's local and remote addresses (network order, IPv4 in the first 4 bytes of 16) and
 * its remote port (host order). Needs bpf_endian.h.
 */
static inline __attribute__((always_inline)) __u16 socket_endpoints(const struct sock *sk, __u8 *laddr, __u8 *raddr)
{
	if (sk->__sk_common.skc_family == AF_INET) {
		*(__be32 *)laddr = sk->__sk_common.skc_rcv_saddr;
		*(__be32 *)raddr = sk->__sk_common.skc_daddr;
	} else {
		for (int i = 0; i < 4; i++) {
			((__be32 *)laddr)[i] = sk->__sk_common.skc_v6_rcv_saddr.in6_u.u6_addr32[i];
			((__be32 *)raddr)[i] = sk->__sk_common.skc_v6_daddr.in6_u.u6_addr32[i];
		}
	}
	return bpf_ntohs(sk->__sk_common.skc_dport);
}

#endif /* NETACCT_SOCKETS_H */
