#ifndef CSELFTEST_H
#define CSELFTEST_H
#include "../../../bpf/tests/selftest.h"
#endif
