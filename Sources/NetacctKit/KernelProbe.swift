import BPF
import FoundationEssentials
import Glibc

/// What every tool checks before loading its programs, so that the user reads why not
/// instead of a verifier error: privileges, BTF, the kernel's name.
public enum KernelProbe {
    public static func checkPrivileges() throws {
        if geteuid() == 0 { return }
        // CAP_PERFMON (38) and CAP_BPF (39) suffice for tracing programs.
        let needed: UInt64 = (1 << 38) | (1 << 39)
        if let capabilities = effectiveCapabilities(), capabilities & needed == needed { return }
        throw NetacctError("""
            netacct must run as root, or with the CAP_BPF and CAP_PERFMON capabilities, to load \
            its BPF programs (try: sudo netacct …).
            """, kind: .permission)
    }

    public static func effectiveCapabilities() -> UInt64? {
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

    /// Throws unless the running kernel has BTF (`/sys/kernel/btf/vmlinux`); returns it.
    public static func requireBTF() throws -> KernelBTF {
        guard access(KernelBTF.path, F_OK) == 0 else {
            throw NetacctError("""
                The running kernel (\(kernelRelease)) has no BTF (\(KernelBTF.path) is missing). \
                netacct's programs are compiled once and adapt to each kernel through BTF: \
                use a kernel built with CONFIG_DEBUG_INFO_BTF=y (the default on Debian, Ubuntu, Fedora, RHEL >= 8.2).
                """, kind: .unsupported)
        }
        do { return try KernelBTF() } catch { throw NetacctError("\(error)", kind: .failure) }
    }
}
