#ifndef CSELFTEST_H
#define CSELFTEST_H
#include "../../../bpf/tests/selftest.h"
#include "../../../bpf/tests/stack.h"
#endif
