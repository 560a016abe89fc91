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
