import CLibbpf
import Glibc
import SystemPackage

/// A netfilter hook for a BPF program (`BPF_PROG_TYPE_NETFILTER`, Linux >= 6.4): the program runs
/// on each packet at that hook of the network namespace the link is made in, like a netfilter
/// rule, and returns its verdict (NF_ACCEPT: 1). Debian's libbpf 1.1 knows neither the program
/// type nor the link (added in libbpf 1.3): the type is set by hand before load, and the link is
/// made with a raw `BPF_LINK_CREATE` (a `Link` like any other).
public enum NetfilterHook: UInt32, Sendable {
    case preRouting = 0, localIn = 1, forward = 2, localOut = 3, postRouting = 4
}

public enum NetfilterFamily: UInt32, Sendable {
    case ipv4 = 2    // NFPROTO_IPV4
    case ipv6 = 10   // NFPROTO_IPV6
}

/// The kernel's numbers (uapi/linux/bpf.h of Linux >= 6.4), absent from Debian 12's headers.
enum NetfilterABI {
    static let programType: UInt32 = 32      // BPF_PROG_TYPE_NETFILTER
    static let attachType: UInt32 = 45       // BPF_NETFILTER
    static let linkCreate: Int32 = 28        // BPF_LINK_CREATE
}

extension Program {
    /// Makes this a netfilter program; call before `BPFObject.load()`. Its section name can be
    /// anything libbpf accepts (the objects here use `netfilter`).
    public func makeNetfilterProgram() throws {
        guard !object.isLoaded else {
            throw BPFError("setting the type of", subject, errno: .alreadyInProcess, hint: "Program types are fixed at load")
        }
        var result = bpf_program__set_type(pointer, bpf_prog_type(rawValue: NetfilterABI.programType))
        guard result == 0 else { throw BPFError("setting the type of", subject, code: result) }
        result = bpf_program__set_expected_attach_type(pointer, bpf_attach_type(rawValue: NetfilterABI.attachType))
        guard result == 0 else { throw BPFError("setting the attach type of", subject, code: result) }
    }

    /// Attaches a loaded netfilter program at `hook` for `family`, in this process's network
    /// namespace. `priority` orders it among the hook's functions (iptables' filter table is 0);
    /// INT32_MIN and INT32_MAX are reserved. It lasts as long as the returned link.
    public func attachNetfilter(_ family: NetfilterFamily, _ hook: NetfilterHook, priority: Int32) throws -> Link {
        let subject = "\(self.subject) to netfilter hook \(hook) (\(family)) at priority \(priority)"
        guard let program = fileDescriptor else {
            throw BPFError("attaching", subject, errno: .badFileDescriptor, hint: "It is not loaded")
        }
        // union bpf_attr's link_create: prog_fd, target_fd, attach_type, flags, then netfilter's
        // pf, hooknum, priority, flags; the rest of the attribute zero.
        var attribute = [UInt32](repeating: 0, count: 16)
        attribute[0] = UInt32(bitPattern: program.rawValue)
        attribute[2] = NetfilterABI.attachType
        attribute[4] = family.rawValue
        attribute[5] = hook.rawValue
        attribute[6] = UInt32(bitPattern: priority)
        let fd = attribute.withUnsafeMutableBytes { raw in
            netacct_bpf_syscall(NetfilterABI.linkCreate, raw.baseAddress, UInt32(raw.count))
        }
        guard fd >= 0 else {
            let error = Errno(rawValue: Glibc.errno)
            let hint: String? = switch error {
            case Errno(rawValue: ERANGE): "The priority must be between INT32_MIN and INT32_MAX, both excluded (netfilter reserves them)"
            case .invalidArgument: "Netfilter links need Linux >= 6.4 with CONFIG_NETFILTER_BPF_LINK"
            default: nil
            }
            throw BPFError("attaching", subject, errno: error, hint: hint)
        }
        return Link(descriptor: FileDescriptor(rawValue: Int32(fd)), subject: subject)
    }
}
