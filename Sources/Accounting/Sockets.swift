import CNetacct
import Glibc
import NetacctKit

/// A socket's traffic as one process used it: calls ("packets") and payload bytes each way.
public struct SocketTraffic: Hashable, Sendable {
    public var txPackets: UInt64 = 0
    public var txBytes: UInt64 = 0
    public var rxPackets: UInt64 = 0
    public var rxBytes: UInt64 = 0

    public init(txPackets: UInt64 = 0, txBytes: UInt64 = 0, rxPackets: UInt64 = 0, rxBytes: UInt64 = 0) {
        self.txPackets = txPackets
        self.txBytes = txBytes
        self.rxPackets = rxPackets
        self.rxBytes = rxBytes
    }

    public static let zero = SocketTraffic()
    public var isZero: Bool { self == .zero }

    /// What was added since `earlier` (a counter never goes back; a smaller one is 0).
    public func since(_ earlier: SocketTraffic) -> SocketTraffic {
        SocketTraffic(txPackets: txPackets &- min(txPackets, earlier.txPackets), txBytes: txBytes &- min(txBytes, earlier.txBytes),
                      rxPackets: rxPackets &- min(rxPackets, earlier.rxPackets), rxBytes: rxBytes &- min(rxBytes, earlier.rxBytes))
    }

    public static func + (a: SocketTraffic, b: SocketTraffic) -> SocketTraffic {
        SocketTraffic(txPackets: a.txPackets &+ b.txPackets, txBytes: a.txBytes &+ b.txBytes,
                      rxPackets: a.rxPackets &+ b.rxPackets, rxBytes: a.rxBytes &+ b.rxBytes)
    }
}

/// One socket (TCP or UDP, IPv4 or IPv6) as one process used it, from per-socket counting
/// (`top --connections`): its endpoints when first counted, its cumulative traffic, and the
/// interval's (`delta`, filled by `SocketDeltas`).
public struct SocketSample: Hashable, Sendable {
    public enum Transport: String, Sendable, CaseIterable { case tcp, udp }
    public enum Family: String, Sendable, CaseIterable { case ipv4, ipv6 }

    /// Identity: a socket cookie is never reused until reboot; a socket two processes use has
    /// a sample for each.
    public struct ID: Hashable, Sendable {
        public var cookie: UInt64
        public var process: ProcessID
        public init(cookie: UInt64, process: ProcessID) {
            self.cookie = cookie
            self.process = process
        }
    }

    public var id: ID
    public var transport: Transport
    public var family: Family
    /// Addresses as inet_ntop writes them (an IPv4-mapped IPv6 one as `::ffff:a.b.c.d`).
    public var localAddress: String
    public var localPort: UInt16
    /// nil: not connected (an unconnected UDP socket, whose traffic is that of all its peers).
    public var remoteAddress: String?
    public var remotePort: UInt16
    public var total: SocketTraffic
    public var delta: SocketTraffic = .zero
    /// Released (its last descriptor closed): `total` is final, and this is its last sample.
    public var closed: Bool
    /// A second (or later) process's sample of the socket (the first process's is its owner's).
    public var shared = false

    public init(id: ID, transport: Transport, family: Family, localAddress: String, localPort: UInt16,
                remoteAddress: String?, remotePort: UInt16, total: SocketTraffic, closed: Bool) {
        self.id = id
        self.transport = transport
        self.family = family
        self.localAddress = localAddress
        self.localPort = localPort
        self.remoteAddress = remoteAddress
        self.remotePort = remotePort
        self.total = total
        self.closed = closed
    }

    init(_ record: netacct_socket, _ counters: netacct_socket_counters) {
        let ipv6 = record.family == UInt8(AF_INET6)
        var record = record
        let local = withUnsafeBytes(of: &record.laddr) { Self.text($0, ipv6: ipv6) }
        let connected = withUnsafeBytes(of: &record.raddr) { $0.contains { $0 != 0 } } || record.rport != 0
        let remote = withUnsafeBytes(of: &record.raddr) { Self.text($0, ipv6: ipv6) }
        self.init(id: ID(cookie: record.cookie, process: ProcessID(pid: Int32(bitPattern: record.tgid), startNanoseconds: record.process_start_ns)),
                  transport: record.protocol == UInt8(IPPROTO_TCP) ? .tcp : .udp, family: ipv6 ? .ipv6 : .ipv4,
                  localAddress: local, localPort: record.lport, remoteAddress: connected ? remote : nil, remotePort: record.rport,
                  total: SocketTraffic(txPackets: counters.tx_packets, txBytes: counters.tx_bytes,
                                       rxPackets: counters.rx_packets, rxBytes: counters.rx_bytes),
                  closed: record.closed != 0)
        shared = record.shared != 0
    }

    /// An address as inet_ntop writes it (IPv4 from the first 4 bytes).
    static func text(_ raw: UnsafeRawBufferPointer, ipv6: Bool) -> String {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: Int(INET6_ADDRSTRLEN)) { text in
            guard inet_ntop(ipv6 ? AF_INET6 : AF_INET, raw.baseAddress, text.baseAddress, socklen_t(INET6_ADDRSTRLEN)) != nil else { return "?" }
            return String(cString: text.baseAddress!)
        }
    }

    /// `address:port`, an IPv6 address in brackets; `*` when not connected.
    public static func endpoint(_ address: String?, _ port: UInt16) -> String {
        guard let address else { return "*" }
        return address.contains(":") ? "[\(address)]:\(port)" : "\(address):\(port)"
    }
}

/// Reads the per-socket records of an engine counting per socket, and gives a closed socket's
/// record back once its final sample has been taken: every closed socket is returned once.
/// A second process's record of a socket also ends when that process has exited (the socket
/// lives on in others): it is sampled as closed, once, and given back.
public struct SocketTable {
    /// Whether a process runs (tests replace it).
    let isRunning: (ProcessID) -> Bool

    public init() { isRunning = ProcessLiveness.isRunning }
    init(isRunning: @escaping (ProcessID) -> Bool) { self.isRunning = isRunning }

    /// Every socket counted, cumulative; a closed one for the last time (its record is freed).
    public func sample(_ engine: AccountingEngine) throws -> [SocketSample] {
        let records = try engine.readSockets()
        // A socket's other processes' records close with its owner's.
        let closedCookies = Set(records.lazy.filter { $0.identity.closed != 0 }.map { $0.identity.cookie })
        var samples: [SocketSample] = []
        samples.reserveCapacity(records.count)
        var freed: [(index: UInt32, record: netacct_socket)] = []
        for record in records {
            var sample = SocketSample(record.identity, record.counters)
            // (Only a second process's record: the owner's is what the socket's release
            // finds through its storage, so it waits for that.)
            let ended = record.identity.shared != 0 && !isRunning(sample.id.process)
            if ended || closedCookies.contains(record.identity.cookie) {
                sample.closed = true
                freed.append((record.index, record.identity))
            }
            samples.append(sample)
        }
        try engine.freeSockets(freed)
        return samples
    }
}

/// Per-interval deltas from cumulative socket samples. The first call's samples are a baseline
/// when `baseline` (a daemon's counters since it started); later, a socket not seen before
/// counts from zero (its record was made by its first call).
public struct SocketDeltas: Sendable {
    private var previous: [SocketSample.ID: SocketTraffic]?

    public init(baseline: Bool) {
        previous = baseline ? nil : [:]
    }

    public mutating func deltas(_ samples: [SocketSample]) -> [SocketSample] {
        var next: [SocketSample.ID: SocketTraffic] = [:]
        next.reserveCapacity(samples.count)
        let first = previous == nil
        let result = samples.map { sample in
            var sample = sample
            sample.delta = first ? .zero : sample.total.since(previous?[sample.id] ?? .zero)
            if !sample.closed { next[sample.id] = sample.total }
            return sample
        }
        previous = next
        return result
    }
}
