#define _GNU_SOURCE
#include <sched.h>
#include <string.h>
#include "CGlibcExtras.h"

const char *netacct_errno_name(int number)
{
	return strerrorname_np(number);
}

int netacct_enter_network_namespace(int fd)
{
	return setns(fd, CLONE_NEWNET);
}
