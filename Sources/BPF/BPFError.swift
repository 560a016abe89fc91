import SystemPackage

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

    static func hint(for errno: Errno?) -> String? {
        switch errno {
        case .notPermitted?:
            return "Loading BPF programs needs root, or CAP_BPF and CAP_PERFMON"
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
