import CLibbpf

/// The running kernel's BTF (`/sys/kernel/btf/vmlinux`): what types, and so which
/// tracepoints, the kernel has. CO-RE programs need it to load at all.
public final class KernelBTF {
    private let handle: OpaquePointer

    public static let path = "/sys/kernel/btf/vmlinux"

    public init() throws {
        guard let btf = btf__load_vmlinux_btf() else {
            throw BPFError("reading", "the kernel's BTF (\(Self.path))", code: -Glibc.errno)
                .withHint("This kernel was built without CONFIG_DEBUG_INFO_BTF; netacct needs a kernel with BTF (most distributions ship it)")
        }
        handle = btf
    }

    deinit { btf__free(handle) }

    /// Whether the kernel has a tracepoint: every tracepoint has a `btf_trace_<name>` typedef.
    public func hasTracepoint(_ name: String) -> Bool {
        btf__find_by_name_kind(handle, "btf_trace_\(name)", UInt32(BTF_KIND_TYPEDEF as Int)) > 0
    }

    /// How many arguments a tracepoint hands to a `tp_btf` program (its prototype's, less the
    /// context pointer the kernel adds), or nil when the kernel has no such tracepoint. Some
    /// gained one over the years (tcp_retransmit_skb its `err` in 6.12).
    public func tracepointArguments(_ name: String) -> Int? {
        let id = btf__find_by_name_kind(handle, "btf_trace_\(name)", UInt32(BTF_KIND_TYPEDEF as Int))
        guard id > 0, let typedef = btf__type_by_id(handle, UInt32(id)),
              let pointer = btf__type_by_id(handle, typedef.pointee.type),
              let prototype = btf__type_by_id(handle, pointer.pointee.type),
              btf_kind(prototype) == UInt16(BTF_KIND_FUNC_PROTO as Int) else { return nil }
        return Int(btf_vlen(prototype)) - 1
    }

    /// The enumerators of a kernel enum (`skb_drop_reason`, say), in their declared order; nil
    /// when the kernel has no such enum. Their values change between kernels: read them here.
    public func enumerators(of name: String) -> [(name: String, value: Int64)]? {
        let id = btf__find_by_name_kind(handle, name, UInt32(BTF_KIND_ENUM as Int))
        guard id > 0, let type = btf__type_by_id(handle, UInt32(id)) else { return nil }
        let members = btf_enum(type)!
        return (0..<Int(btf_vlen(type))).map { index in
            let member = members[index]
            return (String(cString: btf__name_by_offset(handle, member.name_off)), Int64(member.val))
        }
    }

    /// Whether the kernel has a function of that name (a kfunc such as `bpf_rdonly_cast`).
    public func hasFunction(_ name: String) -> Bool {
        btf__find_by_name_kind(handle, name, UInt32(BTF_KIND_FUNC as Int)) > 0
    }
}

extension BPFError {
    func withHint(_ hint: String) -> BPFError {
        var copy = self
        copy.hint = hint
        return copy
    }
}

#if canImport(Glibc)
import Glibc
#endif
