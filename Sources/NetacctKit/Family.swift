import Glibc

/// IPv4 or IPv6: what -4 and -6 choose (a filter of nil: both), and a record's or a filter's
/// AF_INET / AF_INET6 on the BPF side.
public enum Family: Int, Sendable, CaseIterable {
    case ipv4 = 4
    case ipv6 = 6

    /// A record's family: AF_INET6, or else IPv4.
    public init(addressFamily: UInt16) { self = addressFamily == UInt16(AF_INET6) ? .ipv6 : .ipv4 }

    public var addressFamily: UInt16 { UInt16(self == .ipv6 ? AF_INET6 : AF_INET) }
}

extension Optional where Wrapped == Family {
    /// A program's `family` filter: AF_INET, AF_INET6, or 0 for both.
    public var addressFamily: UInt16 { self?.addressFamily ?? 0 }
}
