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
/*
 * Forks `count` children, at most `concurrent` at a time, and waits for them all. Each has
 * `threads` threads that send one UDP datagram of `bytes` bytes each to 127.0.0.1:`port`;
 * once all have sent, the process exits while its threads still run. Their PIDs go to `pids`.
 */
int test_spawn_exiters(int count, int threads, unsigned short port, int bytes, pid_t *pids, int concurrent);
/*
 * Forks a child that gets PID `wanted` if it is free (through /proc/sys/kernel/ns_last_pid;
 * another fork on the machine may take it first: check the result), sends `datagrams` UDP
 * datagrams of `bytes` bytes, then exits (`stay` 0) or sleeps until killed. Returns its PID or -1.
 */
pid_t test_spawn_sender_with_pid(pid_t wanted, unsigned short port, int bytes, int datagrams, int stay);
/*
 * Forks `count` children whose main thread never talks: a second thread sends one datagram
 * of `bytes` bytes to 127.0.0.1:`port` and exits; the process sleeps until killed.
 */
int test_spawn_worker_senders(int count, unsigned short port, int bytes, pid_t *pids);
#endif
