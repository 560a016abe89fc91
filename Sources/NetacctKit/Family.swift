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

/// TCP states by number (include/net/tcp_states.h), as the STATE column shows them.
public enum TCPStates {
    static let names = ["", "ESTABLISHED", "SYN_SENT", "SYN_RECV", "FIN_WAIT1", "FIN_WAIT2", "TIME_WAIT", "CLOSE",
                        "CLOSE_WAIT", "LAST_ACK", "LISTEN", "CLOSING", "NEW_SYN_RECV", "BOUND_INACTIVE"]

    public static func name(_ state: UInt8) -> String? {
        state == 0 ? nil : Int(state) < names.count ? names[Int(state)] : "STATE_\(state)"
    }
}
