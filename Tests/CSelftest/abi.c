/* CSelftest only makes bpf/tests/selftest.h importable from Swift. */
