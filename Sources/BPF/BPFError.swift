import SystemPackage
import CLibbpf

/// An error from libbpf or the kernel, naming what failed, on which object, and why.
public struct BPFError: Error, CustomStringConvertible, Sendable {
    /// What was being done: "opening", "loading", "attaching", "looking up in", …
    public var operation: String
    /// The object, program or map concerned, e.g. "program 'count_send' of object 'accounting'".
    public var subject: String
    public var errno: Errno?
    /// Extra words for the user: what the errno most likely means here and what to do.
    public var hint: String?

    public init(_ operation: String, _ subject: String, errno: Errno? = nil, hint: String? = nil) {
        self.operation = operation
        self.subject = subject
        self.errno = errno
        self.hint = hint
    }

    /// Builds the error from a libbpf return value: `-errno`, or `NULL` with errno set.
    init(_ operation: String, _ subject: String, code: Int32) {
        let value = code < 0 ? -code : code
        self.init(operation, subject, errno: Errno(rawValue: value == 0 ? Glibc.errno : value))
        self.hint = Self.hint(for: self.errno)
    }

    public var description: String {
        var text = "\(operation) \(subject) failed"
        if let errno { text += ": \(errno.description) (errno \(errno.rawValue))" }
        if let hint { text += ". \(hint)" }
        return text
    }

    /// The kernel asks more of programs that see packets and sockets (cgroup, tc, sock_ops,
    /// netfilter, XDP ...) than of tracing ones: CAP_NET_ADMIN besides CAP_BPF.
    static let networkingHint = "Loading networking BPF programs (cgroup, tc, sock_ops, netfilter) needs root, or CAP_BPF and CAP_NET_ADMIN"

    static func isNetworking(_ type: bpf_prog_type) -> Bool {
        switch type {
        case BPF_PROG_TYPE_TRACEPOINT, BPF_PROG_TYPE_RAW_TRACEPOINT, BPF_PROG_TYPE_RAW_TRACEPOINT_WRITABLE, BPF_PROG_TYPE_TRACING,
             BPF_PROG_TYPE_KPROBE, BPF_PROG_TYPE_PERF_EVENT, BPF_PROG_TYPE_SYSCALL, BPF_PROG_TYPE_UNSPEC:
            return false
        default:
            return true
        }
    }

    static func hint(for errno: Errno?) -> String? {
        switch errno {
        case .notPermitted?:
            return "Loading BPF programs needs root, or CAP_BPF and CAP_PERFMON (and CAP_NET_ADMIN for networking programs)"
        case .permissionDenied?:
            return "The kernel's verifier refused it (run with --verbose for its log)"
        case .noSuchFileOrDirectory?, .noSuchProcess?:
            return "The running kernel lacks something this program needs (a tracepoint, a BTF type or a helper)"
        case .invalidArgument?:
            return "The kernel refused it; run with --verbose to see libbpf's and the verifier's log"
        case .noMemory?:
            return "The kernel could not allocate memory for it (check the memory cgroup limit)"
        default:
            return nil
        }
    }
}

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
