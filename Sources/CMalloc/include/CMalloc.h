/* glibc's malloc tuning calls (malloc.h), which Swift's Glibc module does not export. */
#ifndef NETACCT_CMALLOC_H
#define NETACCT_CMALLOC_H
#include <malloc.h>
#endif
