import CNetacct
import Glibc
import NetacctKit

/// One event of `netacct connections`: the kernel's record, read through typed accessors (no
/// copy, no string made until a renderer asks).
public struct ConnectionEvent: Sendable {
    public enum Kind: String, Sendable, CaseIterable {
        case connect, accept, failed, close
    }

    public let record: netacct_connection_event
    /// Nanoseconds since the Unix epoch.
    public let wallClockNanoseconds: Int64

    public init(_ record: netacct_connection_event, wallClockOffset: Int64) {
        self.record = record
        wallClockNanoseconds = Int64(bitPattern: record.time_ns) &+ wallClockOffset
    }

    public var kind: Kind {
        switch UInt32(record.kind) {
        case NETACCT_CONNECTION_CONNECT.rawValue: .connect
        case NETACCT_CONNECTION_ACCEPT.rawValue: .accept
        case NETACCT_CONNECTION_FAILED.rawValue: .failed
        default: .close
        }
    }

    /// Who opened the connection; nil for one established before netacct started.
    public var direction: ConnectionFilter.Direction? {
        switch UInt32(record.direction) {
        case NETACCT_CONNECTION_OUTBOUND.rawValue: .connect
        case NETACCT_CONNECTION_INBOUND.rawValue: .accept
        default: nil
        }
    }

    private func has(_ flag: Int) -> Bool { Int(record.known) & flag != 0 }

    /// Whether the process that made the connection is known (pid, tid, comm, cgroup).
    public var hasProcess: Bool { has(NETACCT_CONNECTION_HAS_PROCESS) }
    public var pid: Int32? { hasProcess ? Int32(bitPattern: record.pid) : nil }
    public var tid: Int32? { hasProcess ? Int32(bitPattern: record.tid) : nil }
    public var cgroupID: UInt64? { hasProcess ? record.cgroup : nil }
    /// The caller's thread's name.
    public var comm: String? {
        guard hasProcess else { return nil }
        return withUnsafeBytes(of: record.comm) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }
    /// The caller's process's name (its group leader's, as `top` and the accounting families name it).
    public var processComm: String? {
        guard hasProcess else { return nil }
        return withUnsafeBytes(of: record.process_comm) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
    }

    public var family: Family { Family(addressFamily: record.family) }
    public var localPort: UInt16 { record.lport }
    public var remotePort: UInt16 { record.rport }
    public var localAddress: String { Self.address(record.laddr, family) }
    public var remoteAddress: String { Self.address(record.raddr, family) }

    /// The handshake: SYN sent (connect) or SYN-ACK sent (accept) to established; for a failed
    /// connect, SYN sent to the failure.
    public var latencyMicroseconds: UInt32? { has(NETACCT_CONNECTION_HAS_LATENCY) ? record.latency_us : nil }

    /// The socket's error of a failed connect: ECONNREFUSED, ETIMEDOUT, EHOSTUNREACH…; 0 when it
    /// ended without one (closed before it was established).
    public var error: Int32? { kind == .failed ? record.error : nil }

    /// Of a close: from established to closed (unknown for a connection older than netacct).
    public var durationNanoseconds: UInt64? {
        kind == .close && has(NETACCT_CONNECTION_HAS_DURATION) ? record.duration_ns : nil
    }
    /// Of a close: payload bytes sent and acknowledged by the peer, and received.
    public var txBytes: UInt64? { kind == .close ? record.tx_bytes : nil }
    public var rxBytes: UInt64? { kind == .close ? record.rx_bytes : nil }

    static func address<T>(_ bytes: T, _ family: Family) -> String {
        var text = TextBuffer(capacity: Int(INET6_ADDRSTRLEN))
        withUnsafeBytes(of: bytes) { text.address($0, ipv6: family == .ipv6) }
        return String(decoding: text.bytes, as: UTF8.self)
    }

    /// A failed connect's reason in a word, as the table shows it.
    public static func reason(_ error: Int32) -> String {
        switch error {
        case 0: "aborted"
        case ECONNREFUSED: "refused"
        case ETIMEDOUT: "timed out"
        case EHOSTUNREACH, ENETUNREACH: "unreachable"
        case ECONNRESET: "reset"
        default: ErrnoNames.name(error)
        }
    }

    /// A failed connect's error as JSON gives it: the errno name; ECONNABORTED for one that
    /// ended without an error (closed before it was established).
    public static func errorName(_ error: Int32) -> String {
        ErrnoNames.name(error == 0 ? ECONNABORTED : error)
    }
}
