/*
 * The glibc calls Swift's Glibc module does not export: malloc tuning (malloc.h) and the
 * GNU extensions of string.h (strerrorname_np, glibc >= 2.32) and sched.h (setns).
 */
#ifndef NETACCT_CGLIBCEXTRAS_H
#define NETACCT_CGLIBCEXTRAS_H
#include <malloc.h>

/* "ECONNREFUSED" for ECONNREFUSED; NULL for a number glibc has no name for. */
const char *netacct_errno_name(int number);

/* The terminal's size (TIOCGWINSZ: ioctl is variadic, which Swift cannot call); 0, or -1 with errno. */
int netacct_terminal_size(int fd, unsigned short *rows, unsigned short *columns);

/* Moves the calling thread into the network namespace open at `fd`; 0, or -1 with errno. */
int netacct_enter_network_namespace(int fd);

/* The type of the namespace open at `fd` (CLONE_NEWNET…: NS_GET_NSTYPE), or -1 with errno. */
int netacct_namespace_type(int fd);
#endif
