import NetacctKit

/// Checks, before loading anything, that this process and this kernel can run the
/// accounting programs, so that the user reads why not instead of a verifier error.
public enum KernelRequirements {
    public static let minimumKernel = (major: 6, minor: 3)
    static let tracepoints = ["sock_send_length", "sock_recv_length", "sched_process_exit"]

    public static func check() throws {
        try KernelProbe.checkPrivileges()
        let btf = try KernelProbe.requireBTF()
        for name in tracepoints where !btf.hasTracepoint(name) {
            throw NetacctError("""
                Kernel \(KernelProbe.kernelRelease) has no \(name) tracepoint: netacct needs Linux >= \
                \(minimumKernel.major).\(minimumKernel.minor), where sock:sock_send_length and \
                sock:sock_recv_length were added.
                """, kind: .unsupported)
        }
    }
}
