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

int test_spawn_senders(int count, unsigned short port, int bytes, pid_t *pids)
{
	struct sockaddr_in address = { .sin_family = AF_INET, .sin_port = htons(port) };
	char payload[1024];
	int started = 0;

	address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	memset(payload, 'p', sizeof(payload));
	for (int i = 0; i < count; i++) {
		pid_t pid = fork();

		if (pid < 0)
			break;
		if (pid == 0) {
			int fd = socket(AF_INET, SOCK_DGRAM, 0);

			prctl(PR_SET_PDEATHSIG, SIGKILL);
			sendto(fd, payload, bytes, 0, (struct sockaddr *)&address, sizeof(address));
			for (;;)
				pause();
		}
		pids[started++] = pid;
	}
	return started;
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

int test_spawn_worker_senders(int count, unsigned short port, int bytes, pid_t *pids)
{
	int started = 0;

	for (int i = 0; i < count; i++) {
		pid_t pid = fork();

		if (pid < 0)
			break;
		if (pid == 0) {
			static atomic_int unused;
			struct exiter e = { .address = { .sin_family = AF_INET, .sin_port = htons(port) }, .bytes = bytes, .sent = &unused };
			pthread_t worker;

			e.address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
			prctl(PR_SET_PDEATHSIG, SIGKILL);
			pthread_create(&worker, NULL, send_one_and_end, &e);
			pthread_join(worker, NULL);
			for (;;)
				pause();
		}
		pids[started++] = pid;
	}
	return started;
}
