import BPF

/// An error netacct shows a user as one line, with the kind of trouble it is, so that a caller
/// can tell "this kernel cannot do it" from "missing privilege" from "bad input" from a
/// failure, and a command can say each in its own words (cilium/ebpf's `ErrNotSupported`).
/// Every tool's errors adopt it, and `BPFError` (below: the BPF module knows nothing of it).
public protocol UserFacingError: Error, CustomStringConvertible, Sendable {
    var kind: ErrorKind { get }
}

public enum ErrorKind: Sendable, Equatable {
    /// The running kernel lacks what the feature needs (a hook, a BTF type, a helper).
    case unsupported
    /// The process lacks a privilege (root, CAP_BPF, CAP_PERFMON, access to a socket).
    case permission
    /// What the user asked for cannot be (an unknown interface, cgroup or group, a busy path).
    case badInput
    /// Anything else: the kernel or libbpf refused for another reason.
    case failure
}

extension BPFError: UserFacingError {
    public var kind: ErrorKind {
        switch errno {
        case .notPermitted?: .permission
        case .noSuchFileOrDirectory?, .noSuchProcess?, .notSupported?, .noFunction?: .unsupported
        default: .failure
        }
    }
}
