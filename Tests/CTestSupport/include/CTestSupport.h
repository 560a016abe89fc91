#ifndef CTESTSUPPORT_H
#define CTESTSUPPORT_H
#include <stddef.h>
/* GNU extensions that Swift's Glibc module does not expose. */
int test_gettid(void);
/* One sendmmsg(2) call sending `count` datagrams of `length` bytes each; returns its result. */
int test_sendmmsg(int fd, size_t length, unsigned int count);
/* One recvmmsg(2) call receiving up to `count` datagrams; returns its result. */
int test_recvmmsg(int fd, size_t length, unsigned int count);


#include <sys/types.h>
/*
 * Forks `count` children; each sends one UDP datagram of `bytes` bytes to 127.0.0.1:`port`
 * and then sleeps until killed. Their PIDs go to `pids`. Returns how many were started.
 * (For the daemon benchmark: thousands of live processes with traffic.)
 */
int test_spawn_senders(int count, unsigned short port, int bytes, pid_t *pids);
#endif
