import CNetacct
import NetacctKit

/// Socket-level traffic of a thread, process or cgroup: a "packet" is one successful send
/// or receive call on a TCP or UDP socket, "bytes" its payload (no headers).
public struct Traffic: Hashable, Sendable {
    public var tcpTxPackets: UInt64 = 0
    public var tcpTxBytes: UInt64 = 0
    public var tcpRxPackets: UInt64 = 0
    public var tcpRxBytes: UInt64 = 0
    public var udpTxPackets: UInt64 = 0
    public var udpTxBytes: UInt64 = 0
    public var udpRxPackets: UInt64 = 0
    public var udpRxBytes: UInt64 = 0

    public init() {}

    public init(tcpTxPackets: UInt64 = 0, tcpTxBytes: UInt64 = 0, tcpRxPackets: UInt64 = 0, tcpRxBytes: UInt64 = 0,
                udpTxPackets: UInt64 = 0, udpTxBytes: UInt64 = 0, udpRxPackets: UInt64 = 0, udpRxBytes: UInt64 = 0) {
        self.tcpTxPackets = tcpTxPackets
        self.tcpTxBytes = tcpTxBytes
        self.tcpRxPackets = tcpRxPackets
        self.tcpRxBytes = tcpRxBytes
        self.udpTxPackets = udpTxPackets
        self.udpTxBytes = udpTxBytes
        self.udpRxPackets = udpRxPackets
        self.udpRxBytes = udpRxBytes
    }

    init(_ c: netacct_counters) {
        self.init(tcpTxPackets: c.tcp_tx_packets, tcpTxBytes: c.tcp_tx_bytes,
                  tcpRxPackets: c.tcp_rx_packets, tcpRxBytes: c.tcp_rx_bytes,
                  udpTxPackets: c.udp_tx_packets, udpTxBytes: c.udp_tx_bytes,
                  udpRxPackets: c.udp_rx_packets, udpRxBytes: c.udp_rx_bytes)
    }

    public static let zero = Traffic()
    public var isZero: Bool { self == .zero }

    public var rxBytes: UInt64 { tcpRxBytes &+ udpRxBytes }
    public var txBytes: UInt64 { tcpTxBytes &+ udpTxBytes }
    public var rxPackets: UInt64 { tcpRxPackets &+ udpRxPackets }
    public var txPackets: UInt64 { tcpTxPackets &+ udpTxPackets }

    public static func + (a: Traffic, b: Traffic) -> Traffic {
        Traffic(tcpTxPackets: a.tcpTxPackets &+ b.tcpTxPackets, tcpTxBytes: a.tcpTxBytes &+ b.tcpTxBytes,
                tcpRxPackets: a.tcpRxPackets &+ b.tcpRxPackets, tcpRxBytes: a.tcpRxBytes &+ b.tcpRxBytes,
                udpTxPackets: a.udpTxPackets &+ b.udpTxPackets, udpTxBytes: a.udpTxBytes &+ b.udpTxBytes,
                udpRxPackets: a.udpRxPackets &+ b.udpRxPackets, udpRxBytes: a.udpRxBytes &+ b.udpRxBytes)
    }

    public static func += (a: inout Traffic, b: Traffic) { a = a + b }

    /// Each counter's larger value of the two: what a total must be at least when it may not
    /// go back (an exit record lost to a full ledger must not undo counts already reported).
    public func atLeast(_ other: Traffic) -> Traffic {
        Traffic(tcpTxPackets: max(tcpTxPackets, other.tcpTxPackets), tcpTxBytes: max(tcpTxBytes, other.tcpTxBytes),
                tcpRxPackets: max(tcpRxPackets, other.tcpRxPackets), tcpRxBytes: max(tcpRxBytes, other.tcpRxBytes),
                udpTxPackets: max(udpTxPackets, other.udpTxPackets), udpTxBytes: max(udpTxBytes, other.udpTxBytes),
                udpRxPackets: max(udpRxPackets, other.udpRxPackets), udpRxBytes: max(udpRxBytes, other.udpRxBytes))
    }

    /// The traffic since `earlier` (counters never go back; a counter below its earlier value
    /// gives 0 rather than wrapping).
    public func since(_ earlier: Traffic) -> Traffic {
        func minus(_ a: UInt64, _ b: UInt64) -> UInt64 { a >= b ? a - b : 0 }
        return Traffic(tcpTxPackets: minus(tcpTxPackets, earlier.tcpTxPackets), tcpTxBytes: minus(tcpTxBytes, earlier.tcpTxBytes),
                       tcpRxPackets: minus(tcpRxPackets, earlier.tcpRxPackets), tcpRxBytes: minus(tcpRxBytes, earlier.tcpRxBytes),
                       udpTxPackets: minus(udpTxPackets, earlier.udpTxPackets), udpTxBytes: minus(udpTxBytes, earlier.udpTxBytes),
                       udpRxPackets: minus(udpRxPackets, earlier.udpRxPackets), udpRxBytes: minus(udpRxBytes, earlier.udpRxBytes))
    }
}
