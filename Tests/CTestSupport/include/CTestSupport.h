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

/* Like test_spawn_senders, but each child sends nothing at first, and one datagram of `bytes`
 * bytes each time it gets SIGUSR1 (the history benchmark's "active" processes). */
int test_spawn_signalled_senders(int count, unsigned short port, int bytes, pid_t *pids);
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
/*
 * TCP, for the connections tests. test_tcp_listen: a listener on the loopback address of
 * `family` (AF_INET or AF_INET6) at `port` (0: any), its port in *bound. test_tcp_connect: a
 * connected socket to loopback:`port`, its local port in *local; -errno on failure.
 */
int test_tcp_listen(int family, unsigned short port, unsigned short *bound);
int test_tcp_connect(int family, unsigned short port, unsigned short *local);
/* Writes exactly `bytes` bytes (0: none); reads exactly `bytes` bytes. 0, or -1 on failure. */
int test_tcp_send(int fd, int bytes);
int test_tcp_receive(int fd, int bytes);
/* accept4(2) on `listener` (close-on-exec): the new fd, or -1. */
int test_tcp_accept(int listener);
/* accept(2) on `listener` in a new thread; that thread's TID goes to *tid. The new fd, or -1. */
int test_accept_in_thread(int listener, int *tid);
/*
 * Forks a child that, once in the cgroup v2 directory `cgroup` (NULL: where it is), connects
 * to loopback:`port` of `family`, sends `bytes` bytes, closes and exits (status 0, or 1 on
 * failure). Returns its PID (the caller reaps it) or -1.
 */
pid_t test_spawn_connector(int family, unsigned short port, int bytes, const char *cgroup);
/*
 * As test_spawn_connector, but the child waits to connect until the descriptor put in *gate is
 * closed by the caller (its PID is known before it connects).
 */
pid_t test_spawn_gated_connector(int family, unsigned short port, int *gate);
/*
 * A storm of loopback TCP connections for `seconds` (the connections benchmark): `threads`
 * threads, each with its own listener, connect, accept, close the server's end, then the
 * client's (the server keeps the TIME_WAIT, so the client's ephemeral ports never run out),
 * at `rate` connections per second in all (0: as fast as they go). Returns how many were
 * made, or -1 on failure.
 */
long test_connection_storm(int threads, double seconds, double rate);
/*
 * `count` sends of `length` bytes on connected socket `fd` through io_uring (IORING_OP_SEND, one
 * submission and completion at a time): no send system call. Returns how many sent `length`
 * bytes, or -errno when io_uring cannot be set up.
 */
int test_io_uring_send(int fd, size_t length, unsigned int count);
#endif
