import BPF

/// The test-only BPF objects compiled from `bpf/tests/*.bpf.c`, e.g. `BPFObjects.selftest`.
public enum BPFObjects {}
