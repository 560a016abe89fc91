#define _GNU_SOURCE
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "CTestSupport.h"

int test_gettid(void)
{
	return (int)syscall(SYS_gettid);
}

static int mmsg(int fd, size_t length, unsigned int count, int send)
{
	char buffers[16][2048];
	struct iovec iov[16];
	struct mmsghdr messages[16];

	if (count > 16 || length > sizeof(buffers[0]))
		return -1;
	memset(messages, 0, sizeof(messages));
	for (unsigned int i = 0; i < count; i++) {
		memset(buffers[i], 'm', length);
		iov[i].iov_base = buffers[i];
		iov[i].iov_len = length;
		messages[i].msg_hdr.msg_iov = &iov[i];
		messages[i].msg_hdr.msg_iovlen = 1;
	}
	return send ? sendmmsg(fd, messages, count, 0) : recvmmsg(fd, messages, count, MSG_WAITFORONE, NULL);
}

int test_sendmmsg(int fd, size_t length, unsigned int count)
{
	return mmsg(fd, length, count, 1);
}

int test_recvmmsg(int fd, size_t length, unsigned int count)
{
	return mmsg(fd, length, count, 0);
}

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>

/*
 * Forks `count` children; each runs `child(port, bytes)`, then sleeps until killed (its
 * parent's death kills it too). Their PIDs go to `pids`. Returns how many were started.
 */
static int spawn_sleepers(int count, unsigned short port, int bytes, pid_t *pids, void (*child)(unsigned short, int))
{
	int started = 0;

	for (int i = 0; i < count; i++) {
		pid_t pid = fork();

		if (pid < 0)
			break;
		if (pid == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			child(port, bytes);
			for (;;)
				pause();
		}
		pids[started++] = pid;
	}
	return started;
}

static struct sockaddr_in loopback_address(unsigned short port)
{
	struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons(port) };

	address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return address;
}

static void send_once(unsigned short port, int bytes)
{
	struct sockaddr_in address = loopback_address(port);
	char payload[1024];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	memset(payload, 'p', sizeof(payload));
	sendto(fd, payload, bytes, 0, (struct sockaddr *)&address, sizeof(address));
}

int test_spawn_senders(int count, unsigned short port, int bytes, pid_t *pids)
{
	return spawn_sleepers(count, port, bytes, pids, send_once);
}

static int signalled_fd = -1;
static int signalled_bytes;
static struct sockaddr_in signalled_address;
static char signalled_payload[1024];

static void send_on_signal(int signal)
{
	(void)signal;
	sendto(signalled_fd, signalled_payload, signalled_bytes, 0, (struct sockaddr *)&signalled_address, sizeof(signalled_address));
}

static void send_on_each_signal(unsigned short port, int bytes)
{
	struct sigaction action = { .sa_handler = send_on_signal, .sa_flags = SA_RESTART };

	signalled_address = loopback_address(port);
	memset(signalled_payload, 'h', sizeof(signalled_payload));
	signalled_bytes = bytes < (int)sizeof(signalled_payload) ? bytes : (int)sizeof(signalled_payload);
	signalled_fd = socket(AF_INET, SOCK_DGRAM, 0);
	sigaction(SIGUSR1, &action, NULL);
}

int test_spawn_signalled_senders(int count, unsigned short port, int bytes, pid_t *pids)
{
	return spawn_sleepers(count, port, bytes, pids, send_on_each_signal);
}

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <fcntl.h>
#include <sys/wait.h>

struct exiter {
	struct sockaddr_in address;
	int bytes;
	atomic_int *sent;
};

static void *send_one_and_spin(void *context)
{
	struct exiter *e = context;
	char payload[1024];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	memset(payload, 'q', sizeof(payload));
	sendto(fd, payload, e->bytes, 0, (struct sockaddr *)&e->address, sizeof(e->address));
	atomic_fetch_add(e->sent, 1);
	for (;;)
		; /* still running on a CPU when the process exits */
	return NULL;
}

/* The child's part of test_spawn_exiters: `threads` threads send, then the process ends. */
static void exiter_child(int threads, unsigned short port, int bytes)
{
	static atomic_int sent;
	struct exiter e = { .address = { .sin_family = AF_INET, .sin_port = htons(port) }, .bytes = bytes, .sent = &sent };
	pthread_t thread;

	e.address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (threads <= 1) {
		int fd = socket(AF_INET, SOCK_DGRAM, 0);
		char payload[1024];

		memset(payload, 'q', sizeof(payload));
		sendto(fd, payload, bytes, 0, (struct sockaddr *)&e.address, sizeof(e.address));
		_exit(0);
	}
	for (int i = 0; i < threads; i++)
		pthread_create(&thread, NULL, send_one_and_spin, &e);
	while (atomic_load(&sent) < threads)
		;
	_exit(0);
}

/* In a process of its own, so that waiting for any child reaps only the exiters. */
static void spawn_exiters(int count, int threads, unsigned short port, int bytes, int concurrent, int out)
{
	int running = 0;

	for (int i = 0; i < count; i++) {
		pid_t pid;

		while (running >= concurrent) {
			if (waitpid(-1, NULL, 0) > 0)
				running--;
		}
		pid = fork();
		if (pid < 0)
			break;
		if (pid == 0)
			exiter_child(threads, port, bytes);
		if (write(out, &pid, sizeof(pid)) != sizeof(pid))
			break;
		running++;
	}
	while (running > 0 && waitpid(-1, NULL, 0) > 0)
		running--;
	_exit(0);
}

int test_spawn_exiters(int count, int threads, unsigned short port, int bytes, pid_t *pids, int concurrent)
{
	int channel[2], started = 0;
	pid_t spawner;

	if (pipe(channel) != 0)
		return 0;
	spawner = fork();
	if (spawner < 0)
		return 0;
	if (spawner == 0) {
		close(channel[0]);
		spawn_exiters(count, threads, port, bytes, concurrent, channel[1]);
	}
	close(channel[1]);
	while (started < count && read(channel[0], &pids[started], sizeof(pid_t)) == sizeof(pid_t))
		started++;
	close(channel[0]);
	waitpid(spawner, NULL, 0);
	return started;
}

pid_t test_spawn_sender_with_pid(pid_t wanted, unsigned short port, int bytes, int datagrams, int stay)
{
	char last[32];
	int fd = open("/proc/sys/kernel/ns_last_pid", O_WRONLY);
	pid_t pid;

	if (fd < 0)
		return -1;
	snprintf(last, sizeof(last), "%d", wanted - 1);
	if (write(fd, last, strlen(last)) < 0) {
		close(fd);
		return -1;
	}
	close(fd);
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons(port) };
		char payload[1024];
		int s = socket(AF_INET, SOCK_DGRAM, 0);

		address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		memset(payload, 'r', sizeof(payload));
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		for (int i = 0; i < datagrams; i++)
			sendto(s, payload, bytes, 0, (struct sockaddr *)&address, sizeof(address));
		if (!stay)
			_exit(0);
		for (;;)
			pause();
	}
	return pid;
}

static void *send_one_and_end(void *context)
{
	struct exiter *e = context;
	char payload[1024];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	memset(payload, 'w', sizeof(payload));
	sendto(fd, payload, e->bytes, 0, (struct sockaddr *)&e->address, sizeof(e->address));
	close(fd);
	return NULL;
}

static void send_once_from_a_thread(unsigned short port, int bytes)
{
	static atomic_int unused;
	struct exiter e = { .address = loopback_address(port), .bytes = bytes, .sent = &unused };
	pthread_t worker;

	pthread_create(&worker, NULL, send_one_and_end, &e);
	pthread_join(worker, NULL);
}

int test_spawn_worker_senders(int count, unsigned short port, int bytes, pid_t *pids)
{
	return spawn_sleepers(count, port, bytes, pids, send_once_from_a_thread);
}

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

static socklen_t loopback(int family, unsigned short port, struct sockaddr_storage *address)
{
	memset(address, 0, sizeof(*address));
	if (family == AF_INET6) {
		struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)address;

		in6->sin6_family = AF_INET6;
		in6->sin6_port = htons(port);
		in6->sin6_addr = in6addr_loopback;
		return sizeof(*in6);
	}
	struct sockaddr_in *in = (struct sockaddr_in *)address;

	in->sin_family = AF_INET;
	in->sin_port = htons(port);
	in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	return sizeof(*in);
}

static unsigned short port_of(int fd, int peer)
{
	struct sockaddr_storage address;
	socklen_t length = sizeof(address);

	if ((peer ? getpeername : getsockname)(fd, (struct sockaddr *)&address, &length) != 0)
		return 0;
	return ntohs(address.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&address)->sin6_port
						   : ((struct sockaddr_in *)&address)->sin_port);
}

int test_tcp_listen(int family, unsigned short port, unsigned short *bound)
{
	struct sockaddr_storage address;
	socklen_t length = loopback(family, port, &address);
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;

	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&address, length) != 0 || listen(fd, 128) != 0) {
		int error = errno;
		close(fd);
		return -error;
	}
	*bound = port_of(fd, 0);
	return fd;
}

int test_tcp_connect(int family, unsigned short port, unsigned short *local)
{
	struct sockaddr_storage address;
	socklen_t length = loopback(family, port, &address);
	int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&address, length) != 0) {
		int error = errno;
		close(fd);
		return -error;
	}
	if (local)
		*local = port_of(fd, 0);
	return fd;
}

int test_tcp_send(int fd, int bytes)
{
	char buffer[4096];

	memset(buffer, 'c', sizeof(buffer));
	while (bytes > 0) {
		ssize_t sent = send(fd, buffer, bytes < (int)sizeof(buffer) ? (size_t)bytes : sizeof(buffer), MSG_NOSIGNAL);
		if (sent <= 0)
			return -1;
		bytes -= (int)sent;
	}
	return 0;
}

int test_tcp_receive(int fd, int bytes)
{
	char buffer[4096];

	while (bytes > 0) {
		ssize_t got = recv(fd, buffer, bytes < (int)sizeof(buffer) ? (size_t)bytes : sizeof(buffer), 0);
		if (got <= 0)
			return -1;
		bytes -= (int)got;
	}
	return 0;
}

int test_tcp_accept(int listener)
{
	return accept4(listener, NULL, NULL, SOCK_CLOEXEC);
}

struct acceptor {
	int listener;
	int fd;
	int tid;
};

static void *accept_one(void *context)
{
	struct acceptor *acceptor = context;

	acceptor->tid = test_gettid();
	acceptor->fd = accept4(acceptor->listener, NULL, NULL, SOCK_CLOEXEC);
	return NULL;
}

int test_accept_in_thread(int listener, int *tid)
{
	struct acceptor acceptor = { .listener = listener, .fd = -1, .tid = 0 };
	pthread_t thread;

	if (pthread_create(&thread, NULL, accept_one, &acceptor) != 0)
		return -1;
	pthread_join(thread, NULL);
	*tid = acceptor.tid;
	return acceptor.fd;
}

pid_t test_spawn_connector(int family, unsigned short port, int bytes, const char *cgroup)
{
	pid_t pid = fork();

	if (pid != 0)
		return pid;
	if (cgroup) {
		char path[4096];
		int fd;

		snprintf(path, sizeof(path), "%s/cgroup.procs", cgroup);
		fd = open(path, O_WRONLY);
		if (fd < 0 || write(fd, "0", 1) != 1)
			_exit(1);
		close(fd);
	}
	int fd = test_tcp_connect(family, port, NULL);
	if (fd < 0 || test_tcp_send(fd, bytes) != 0)
		_exit(1);
	close(fd);
	_exit(0);
}

pid_t test_spawn_gated_connector(int family, unsigned short port, int *gate)
{
	int fds[2];
	pid_t pid;

	if (pipe2(fds, O_CLOEXEC) != 0)
		return -1;
	pid = fork();
	if (pid != 0) {
		close(fds[0]);
		*gate = fds[1];
		return pid;
	}
	char byte;
	close(fds[1]);
	if (read(fds[0], &byte, 1) != 0)
		_exit(1);
	int fd = test_tcp_connect(family, port, NULL);
	_exit(fd >= 0 ? 0 : 1);
}

#include <time.h>

struct storm {
	double seconds;
	double interval;	/* seconds between one thread's connections; 0: none */
	long made;
	int failed;
};

static double monotonic(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

static void *storm_thread(void *context)
{
	struct storm *storm = context;
	unsigned short port;
	int listener = test_tcp_listen(AF_INET, 0, &port);
	double start = monotonic(), now = start;

	if (listener < 0) {
		storm->failed = 1;
		return NULL;
	}
	while (now - start < storm->seconds) {
		int client = test_tcp_connect(AF_INET, port, NULL);
		int server = client >= 0 ? accept4(listener, NULL, NULL, SOCK_CLOEXEC) : -1;
		char byte;

		if (server < 0) {
			storm->failed = 1;
			break;
		}
		close(server);
		(void)!read(client, &byte, 1);	/* the server's FIN */
		close(client);
		storm->made++;
		now = monotonic();
		if (storm->interval > 0) {
			double due = start + (double)storm->made * storm->interval;
			if (due > now) {
				struct timespec pause = { (time_t)(due - now), (long)((due - now - (double)(time_t)(due - now)) * 1e9) };
				nanosleep(&pause, NULL);
				now = monotonic();
			}
		}
	}
	close(listener);
	return NULL;
}

long test_connection_storm(int threads, double seconds, double rate)
{
	struct storm storms[64];
	pthread_t ids[64];
	long made = 0;

	if (threads < 1 || threads > 64)
		return -1;
	for (int i = 0; i < threads; i++) {
		storms[i] = (struct storm){ .seconds = seconds, .interval = rate > 0 ? threads / rate : 0 };
		if (pthread_create(&ids[i], NULL, storm_thread, &storms[i]) != 0)
			return -1;
	}
	for (int i = 0; i < threads; i++) {
		pthread_join(ids[i], NULL);
		if (storms[i].failed)
			return -1;
		made += storms[i].made;
	}
	return made;
}

/* io_uring by its raw system calls (no liburing on the machine). */
#include <linux/io_uring.h>
#include <sys/mman.h>

int test_io_uring_send(int fd, size_t length, unsigned int count)
{
	struct io_uring_params params;
	memset(&params, 0, sizeof(params));
	int ring = (int)syscall(__NR_io_uring_setup, 4, &params);
	if (ring < 0)
		return -errno;
	size_t sq_size = params.sq_off.array + params.sq_entries * sizeof(unsigned);
	size_t cq_size = params.cq_off.cqes + params.cq_entries * sizeof(struct io_uring_cqe);
	int single = params.features & IORING_FEAT_SINGLE_MMAP;
	if (single && cq_size > sq_size)
		sq_size = cq_size;
	char *sq = mmap(NULL, sq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQ_RING);
	char *cq = single ? sq : mmap(NULL, cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_CQ_RING);
	size_t sqes_size = params.sq_entries * sizeof(struct io_uring_sqe);
	struct io_uring_sqe *sqes = mmap(NULL, sqes_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, ring, IORING_OFF_SQES);
	if (sq == MAP_FAILED || cq == MAP_FAILED || sqes == MAP_FAILED) {
		close(ring);
		return -ENOMEM;
	}
	unsigned *sq_tail = (unsigned *)(sq + params.sq_off.tail), sq_mask = *(unsigned *)(sq + params.sq_off.ring_mask);
	unsigned *sq_array = (unsigned *)(sq + params.sq_off.array);
	unsigned *cq_head = (unsigned *)(cq + params.cq_off.head), *cq_tail = (unsigned *)(cq + params.cq_off.tail);
	unsigned cq_mask = *(unsigned *)(cq + params.cq_off.ring_mask);
	struct io_uring_cqe *cqes = (struct io_uring_cqe *)(cq + params.cq_off.cqes);
	char buffer[65536];
	int sent = 0;
	if (length > sizeof(buffer))
		length = sizeof(buffer);
	memset(buffer, 'u', length);
	for (unsigned i = 0; i < count; i++) {
		unsigned tail = *sq_tail, index = tail & sq_mask;
		struct io_uring_sqe *sqe = &sqes[index];
		memset(sqe, 0, sizeof(*sqe));
		sqe->opcode = IORING_OP_SEND;
		sqe->fd = fd;
		sqe->addr = (unsigned long)buffer;
		sqe->len = (unsigned)length;
		sq_array[index] = index;
		__atomic_store_n(sq_tail, tail + 1, __ATOMIC_RELEASE);
		if (syscall(__NR_io_uring_enter, ring, 1, 1, IORING_ENTER_GETEVENTS, NULL, 0) < 0)
			break;
		unsigned head = __atomic_load_n(cq_head, __ATOMIC_ACQUIRE);
		if (head == __atomic_load_n(cq_tail, __ATOMIC_ACQUIRE))
			break;
		if (cqes[head & cq_mask].res == (int)length)
			sent++;
		__atomic_store_n(cq_head, head + 1, __ATOMIC_RELEASE);
	}
	munmap(sqes, sqes_size);
	if (!single)
		munmap(cq, cq_size);
	munmap(sq, sq_size);
	close(ring);
	return sent;
}
