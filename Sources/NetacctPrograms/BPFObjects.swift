import BPF

/// The BPF objects compiled from `bpf/*.bpf.c` and embedded by the BPFCompiler plugin:
/// one static `BPFObjectImage` per program, e.g. `BPFObjects.accounting`.
public enum BPFObjects {}
