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
