import BPF
import FoundationEssentials
import Glibc

/// A failure the user can act on: what is wrong and what to do, without a stack trace.
public struct NetacctError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Checks, before loading anything, that this process and this kernel can run the
/// accounting programs, so that the user reads why not instead of a verifier error.
public enum KernelRequirements {
    public static let minimumKernel = (major: 6, minor: 3)
    static let tracepoints = ["sock_send_length", "sock_recv_length", "sched_process_exit"]

    public static func check() throws {
        try checkPrivileges()
        guard access(KernelBTF.path, F_OK) == 0 else {
            throw NetacctError("""
                The running kernel (\(kernelRelease)) has no BTF (\(KernelBTF.path) is missing). \
                netacct's programs are compiled once and adapt to each kernel through BTF: \
                use a kernel built with CONFIG_DEBUG_INFO_BTF=y (the default on Debian, Ubuntu, Fedora, RHEL >= 8.2).
                """)
        }
        let btf: KernelBTF
        do { btf = try KernelBTF() } catch { throw NetacctError("\(error)") }
        for name in tracepoints where !btf.hasTracepoint(name) {
            throw NetacctError("""
                Kernel \(kernelRelease) has no \(name) tracepoint: netacct needs Linux >= \
                \(minimumKernel.major).\(minimumKernel.minor), where sock:sock_send_length and \
                sock:sock_recv_length were added.
                """)
        }
    }

    public static func checkPrivileges() throws {
        if geteuid() == 0 { return }
        // CAP_PERFMON (38) and CAP_BPF (39) suffice for tracing programs.
        let needed: UInt64 = (1 << 38) | (1 << 39)
        if let capabilities = effectiveCapabilities(), capabilities & needed == needed { return }
        throw NetacctError("""
            netacct must run as root, or with the CAP_BPF and CAP_PERFMON capabilities, to load \
            its BPF programs (try: sudo netacct …).
            """)
    }

    static func effectiveCapabilities() -> UInt64? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return nil }
        for line in status.split(separator: "\n") where line.hasPrefix("CapEff:") {
            return UInt64(line.dropFirst("CapEff:".count).filter { !$0.isWhitespace }, radix: 16)
        }
        return nil
    }

    public static var kernelRelease: String {
        var name = utsname()
        uname(&name)
        return withUnsafeBytes(of: name.release) { raw in
            String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
        }
    }
}
