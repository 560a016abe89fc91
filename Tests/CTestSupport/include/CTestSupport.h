#ifndef CTESTSUPPORT_H
#define CTESTSUPPORT_H
#include <stddef.h>
/* GNU extensions that Swift's Glibc module does not expose. */
int test_gettid(void);
/* One sendmmsg(2) call sending `count` datagrams of `length` bytes each; returns its result. */
int test_sendmmsg(int fd, size_t length, unsigned int count);
/* One recvmmsg(2) call receiving up to `count` datagrams; returns its result. */
int test_recvmmsg(int fd, size_t length, unsigned int count);
#endif
