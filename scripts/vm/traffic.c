/*
 * traffic: the traffic generator and atop client of the VM tests (scripts/vm/check-kernel).
 *
 *   traffic run      forks a child that makes TCP and UDP traffic over loopback (IPv4 and IPv6,
 *                    connected and unconnected UDP, sendmmsg/recvmmsg, read/write, readv/writev,
 *                    sendmsg/recvmsg, a second thread, failed and peeking receives that are not
 *                    traffic) and exits; prints "CHILD <pid>" and "EXPECT <counters>": what the
 *                    child counted of its own successful calls, by netacct's rules.
 *   traffic atop PID asks a netacct daemon over the netatop-bpf protocol (/run/netatop-bpf-socket)
 *                    and prints "ATOP <counters>" of PID's record.
 *
 * Counters are printed in netacct's JSON names, in its order:
 * tcp_tx_packets tcp_tx_bytes tcp_rx_packets tcp_rx_bytes udp_tx_packets udp_tx_bytes udp_rx_packets udp_rx_bytes
 * Built statically with gcc, so the VM needs no C library of its own for it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

enum { TCP_TX_P, TCP_TX_B, TCP_RX_P, TCP_RX_B, UDP_TX_P, UDP_TX_B, UDP_RX_P, UDP_RX_B, COUNTERS };
static uint64_t expected[COUNTERS];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static void die(const char *what)
{
	fprintf(stderr, "traffic: %s: %s\n", what, strerror(errno));
	exit(2);
}

/* Counts one successful call of `n` bytes in counters `packets` and `packets + 1`. */
static ssize_t counted(ssize_t n, int packets, const char *what)
{
	if (n < 0)
		die(what);
	if (n > 0) {
		pthread_mutex_lock(&lock);
		expected[packets] += 1;
		expected[packets + 1] += n;
		pthread_mutex_unlock(&lock);
	}
	return n;
}

static socklen_t loopback(int family, struct sockaddr_storage *address)
{
	memset(address, 0, sizeof(*address));
	if (family == AF_INET) {
		struct sockaddr_in *in = (struct sockaddr_in *)address;
		in->sin_family = AF_INET;
		in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		return sizeof(*in);
	}
	struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)address;
	in6->sin6_family = AF_INET6;
	in6->sin6_addr = in6addr_loopback;
	return sizeof(*in6);
}

/* A bound socket and its address (the port the kernel chose). */
static int bound(int family, int type, struct sockaddr_storage *address, socklen_t *length)
{
	int fd = socket(family, type, 0);
	if (fd < 0)
		die("socket");
	*length = loopback(family, address);
	if (bind(fd, (struct sockaddr *)address, *length) || getsockname(fd, (struct sockaddr *)address, length))
		die("bind");
	return fd;
}

static void tcp(int family)
{
	struct sockaddr_storage address;
	socklen_t length;
	char buffer[10000];
	int listener = bound(family, SOCK_STREAM, &address, &length), client, server;
	ssize_t received = 0;

	memset(buffer, 'a', sizeof(buffer));
	if (listen(listener, 1) || (client = socket(family, SOCK_STREAM, 0)) < 0 ||
	    connect(client, (struct sockaddr *)&address, length) || (server = accept(listener, NULL, NULL)) < 0)
		die("tcp connect");
	for (int i = 0; i < 10; i++)
		counted(send(client, buffer, 1000, 0), TCP_TX_P, "send");
	while (received < 10000)
		received += counted(recv(server, buffer, sizeof(buffer) - received, 0), TCP_RX_P, "recv");
	/* Peeking twice is not traffic; the read after it is. */
	counted(write(server, buffer, 64), TCP_TX_P, "write");
	for (int i = 0; i < 2; i++)
		if (recv(client, buffer, 64, MSG_PEEK | MSG_WAITALL) != 64)
			die("recv(MSG_PEEK)");
	counted(read(client, buffer, 64), TCP_RX_P, "read");
	/* writev, sendmsg, readv, recvmsg */
	struct iovec pieces[2] = { { buffer, 100 }, { buffer + 100, 200 } };
	struct msghdr message = { .msg_iov = pieces, .msg_iovlen = 2 };
	counted(writev(client, pieces, 2), TCP_TX_P, "writev");
	counted(sendmsg(client, &message, 0), TCP_TX_P, "sendmsg");
	struct iovec whole = { buffer, 300 };
	struct msghdr into = { .msg_iov = &whole, .msg_iovlen = 1 };
	counted(recvmsg(server, &into, MSG_WAITALL), TCP_RX_P, "recvmsg");
	counted(readv(server, &whole, 1), TCP_RX_P, "readv");
	close(client);
	close(server);
	close(listener);
}

static void udp(int family, int connected)
{
	struct sockaddr_storage address;
	socklen_t length;
	char buffer[2000];
	int receiver = bound(family, SOCK_DGRAM, &address, &length);
	int sender = socket(family, SOCK_DGRAM, 0);

	memset(buffer, 'b', sizeof(buffer));
	if (sender < 0 || (connected && connect(sender, (struct sockaddr *)&address, length)))
		die("udp socket");
	for (int size = 1; size <= 7; size++) {
		if (connected)
			counted(send(sender, buffer, size * 100, 0), UDP_TX_P, "send");
		else
			counted(sendto(sender, buffer, size * 100, 0, (struct sockaddr *)&address, length), UDP_TX_P, "sendto");
	}
	for (int i = 0; i < 7; i++)
		counted(recvfrom(receiver, buffer, sizeof(buffer), 0, NULL, NULL), UDP_RX_P, "recvfrom");
	/* Failed receives (EAGAIN) are not traffic. */
	for (int i = 0; i < 100; i++)
		if (recv(receiver, buffer, sizeof(buffer), MSG_DONTWAIT) >= 0 || errno != EAGAIN)
			die("a receive that should fail");
	close(sender);
	close(receiver);
}

/* sendmmsg and recvmmsg: one call per message. */
static void mmsg(void)
{
	struct sockaddr_storage address;
	socklen_t length;
	char buffer[5][50];
	struct iovec iov[5];
	struct mmsghdr messages[5];
	int receiver = bound(AF_INET, SOCK_DGRAM, &address, &length), sender = socket(AF_INET, SOCK_DGRAM, 0);
	int sent, received;

	if (sender < 0 || connect(sender, (struct sockaddr *)&address, length))
		die("udp socket");
	memset(messages, 0, sizeof(messages));
	for (int i = 0; i < 5; i++) {
		iov[i] = (struct iovec){ buffer[i], sizeof(buffer[i]) };
		messages[i].msg_hdr.msg_iov = &iov[i];
		messages[i].msg_hdr.msg_iovlen = 1;
	}
	if ((sent = sendmmsg(sender, messages, 5, 0)) != 5)
		die("sendmmsg");
	if ((received = recvmmsg(receiver, messages, 5, MSG_WAITFORONE, NULL)) < 1)
		die("recvmmsg");
	/* MSG_WAITFORONE may return fewer: the rest by recv. */
	for (int i = 0; i < 5; i++)
		if (i < received)
			counted(messages[i].msg_len, UDP_RX_P, "recvmmsg");
	for (int i = received; i < 5; i++)
		counted(recv(receiver, buffer[0], 50, 0), UDP_RX_P, "recv");
	expected[UDP_TX_P] += 5;
	expected[UDP_TX_B] += 250;
	close(sender);
	close(receiver);
}

static void *second_thread(void *unused)
{
	(void)unused;
	udp(AF_INET, 1);
	return NULL;
}

static void print(const char *tag, const uint64_t *c)
{
	printf("%s tcp_tx_packets=%llu tcp_tx_bytes=%llu tcp_rx_packets=%llu tcp_rx_bytes=%llu "
	       "udp_tx_packets=%llu udp_tx_bytes=%llu udp_rx_packets=%llu udp_rx_bytes=%llu\n", tag,
	       (unsigned long long)c[0], (unsigned long long)c[1], (unsigned long long)c[2], (unsigned long long)c[3],
	       (unsigned long long)c[4], (unsigned long long)c[5], (unsigned long long)c[6], (unsigned long long)c[7]);
	fflush(stdout);
}

static int run(void)
{
	int report[2];
	pid_t child;

	if (pipe(report))
		die("pipe");
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		pthread_t thread;
		tcp(AF_INET);
		tcp(AF_INET6);
		udp(AF_INET, 1);
		udp(AF_INET, 0);
		udp(AF_INET6, 1);
		udp(AF_INET6, 0);
		mmsg();
		if (pthread_create(&thread, NULL, second_thread, NULL) || pthread_join(thread, NULL))
			die("pthread");
		/* The report goes to the parent through a pipe, which is not a socket: not traffic. */
		if (write(report[1], expected, sizeof(expected)) != sizeof(expected))
			die("report");
		_exit(0);
	}
	close(report[1]);
	if (read(report[0], expected, sizeof(expected)) != sizeof(expected) || waitpid(child, NULL, 0) != child)
		die("child");
	printf("CHILD %d\n", child);
	print("EXPECT", expected);
	return 0;
}

/* One sample as atop takes it: one 96-byte record out, records back until id 0. */
struct netpertask {
	int32_t id;
	uint64_t btime;
	char command[16];
	uint64_t counters[COUNTERS];
};

static int atop(pid_t pid)
{
	struct sockaddr_un address = { .sun_family = AF_UNIX, .sun_path = "/run/netatop-bpf-socket" };
	struct netpertask record = {0};
	int fd = socket(AF_UNIX, SOCK_STREAM, 0), found = 0;

	if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof(address)))
		die("connect to the daemon");
	if (send(fd, &record, sizeof(record), 0) != sizeof(record))
		die("send the request");
	for (;;) {
		size_t have = 0;
		while (have < sizeof(record)) {
			ssize_t n = recv(fd, (char *)&record + have, sizeof(record) - have, 0);
			if (n <= 0)
				die("read the reply");
			have += n;
		}
		if (record.id == 0)
			break;
		if (record.id == pid) {
			print("ATOP", record.counters);
			found = 1;
		}
	}
	if (!found)
		printf("ATOP none\n");
	return found ? 0 : 1;
}

int main(int argc, char **argv)
{
	_Static_assert(sizeof(struct netpertask) == 96, "the netatop-bpf record is 96 bytes");
	if (argc == 2 && !strcmp(argv[1], "run"))
		return run();
	if (argc == 3 && !strcmp(argv[1], "atop"))
		return atop(atoi(argv[2]));
	fprintf(stderr, "usage: traffic run | traffic atop PID\n");
	return 2;
}
