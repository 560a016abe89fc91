import BPF
import NetacctKit

/// The running kernel's drop reasons (`enum skb_drop_reason` in its BTF): their numbers change
/// between kernels, so they are only ever read from it.
public struct DropReasons: Sendable {
    /// Kernel name without the SKB_DROP_REASON_ prefix ("NO_SOCKET"), by number.
    public let names: [UInt32: String]
    /// The reason a drop with no better one has: left out unless every reason is asked for.
    public static let notSpecified = "NOT_SPECIFIED"

    public init(names: [UInt32: String]) { self.names = names }

    /// Reads them from the kernel's BTF.
    public init(btf: KernelBTF) throws {
        guard let enumerators = btf.enumerators(of: "skb_drop_reason") else {
            throw NetacctError("Kernel \(KernelProbe.kernelRelease) has no enum skb_drop_reason in its BTF: netacct drops needs Linux >= 5.17 (drop reasons), and >= 6.12 (kfree_skb's socket).", kind: .unsupported)
        }
        self.init(enumerators: enumerators)
    }

    /// From the enumerators of `enum skb_drop_reason` (SKB_DROP_REASON_NO_SOCKET = 2, …).
    public init(enumerators: [(name: String, value: Int64)]) {
        var names: [UInt32: String] = [:]
        for (name, value) in enumerators where name.hasPrefix("SKB_DROP_REASON_") && name != "SKB_DROP_REASON_MAX" {
            names[UInt32(truncatingIfNeeded: value)] = String(name.dropFirst("SKB_DROP_REASON_".count))
        }
        self.names = names
    }

    public func name(_ reason: UInt32) -> String { names[reason] ?? "REASON_\(reason)" }

    /// In words, as the table shows it: "TCP_INVALID_SEQUENCE" → "tcp invalid sequence".
    public func words(_ reason: UInt32) -> String {
        name(reason).lowercased().split(separator: "_").joined(separator: " ")
    }

    /// The number of a reason given by name (NO_SOCKET, no_socket, SKB_DROP_REASON_NO_SOCKET);
    /// an unknown one is an error that lists this kernel's reasons.
    public func number(of given: String) throws -> UInt32 {
        var name = given.uppercased()
        if name.hasPrefix("SKB_DROP_REASON_") { name.removeFirst("SKB_DROP_REASON_".count) }
        name = String(name.map { $0 == "-" || $0 == " " ? "_" : $0 })
        if let (number, _) = names.first(where: { $0.value == name }) { return number }
        let known = names.sorted { $0.key < $1.key }.map(\.value).joined(separator: ", ")
        throw NetacctError("Kernel \(KernelProbe.kernelRelease) has no drop reason \(given); its reasons: \(known).", kind: .badInput)
    }
}
