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

    /// Where libbpf looks for tracefs (it prefers the debugfs path when that exists).
    public static let tracefsPaths = ["/sys/kernel/debug/tracing", "/sys/kernel/tracing"]

    /// Makes sure tracefs is mounted, which attaching a classic tracepoint needs (libbpf reads
    /// the event's id there): mounts it at /sys/kernel/tracing when no tracefs is found, as
    /// systemd's sys-kernel-tracing.mount would. Returns where it is, and whether it was mounted now.
    @discardableResult
    public static func requireTracefs() throws -> (path: String, mounted: Bool) {
        for path in tracefsPaths where access(path + "/events", F_OK) == 0 { return (path, false) }
        let path = "/sys/kernel/tracing"
        guard mount("tracefs", path, "tracefs", UInt(MS_NOSUID | MS_NODEV | MS_NOEXEC), nil) == 0 else {
            let reason = String(cString: strerror(errno))
            throw NetacctError("""
                tracefs is not mounted and mounting it at \(path) failed (\(reason)): netacct needs it to \
                attach syscall tracepoints (mount -t tracefs tracefs \(path)).
                """, kind: .unsupported)
        }
        return (path, true)
    }

    /// Throws unless the kernel has the classic tracepoint `group:name` (tracefs mounted first).
    public static func requireTracepoint(_ group: String, _ name: String, for tool: String) throws {
        let tracefs = try requireTracefs().path
        guard access("\(tracefs)/events/\(group)/\(name)", F_OK) == 0 else {
            throw NetacctError("""
                Kernel \(kernelRelease) has no \(group):\(name) tracepoint, which \(tool) needs \
                (syscall tracepoints need a kernel built with CONFIG_FTRACE_SYSCALLS=y).
                """, kind: .unsupported)
        }
    }
}
