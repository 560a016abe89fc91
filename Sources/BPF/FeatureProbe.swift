import CLibbpf

/// What the running kernel's BPF offers, asked of the kernel itself (libbpf loads a tiny
/// program and reads the verifier's answer): for features that neither BTF nor a kernel
/// version tells reliably, such as a helper backported to an older distribution kernel.
public enum FeatureProbe {
    /// Whether programs of `type` may call `helper` (`BPF_FUNC_task_pt_regs`, say).
    public static func hasHelper(_ helper: bpf_func_id, in type: bpf_prog_type) -> Bool {
        libbpf_probe_bpf_helper(type, helper, nil) == 1
    }
}
