#define _GNU_SOURCE
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <linux/nsfs.h>
#include "CGlibcExtras.h"

const char *netacct_errno_name(int number)
{
	return strerrorname_np(number);
}

int netacct_enter_network_namespace(int fd)
{
	return setns(fd, CLONE_NEWNET);
}

int netacct_terminal_size(int fd, unsigned short *rows, unsigned short *columns)
{
	struct winsize size;

	if (ioctl(fd, TIOCGWINSZ, &size) != 0)
		return -1;
	*rows = size.ws_row;
	*columns = size.ws_col;
	return 0;
}

int netacct_namespace_type(int fd)
{
	return ioctl(fd, NS_GET_NSTYPE);
}
