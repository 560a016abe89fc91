import CNetacct
import Glibc
import NetacctKit

extension TCPHealthCounters {
    /// The counters of a kernel record (`netacct_tcp_counters` and the kernel's own beside it).
    init(_ r: netacct_tcp_record) {
        self.init()
        var c = r.counters
        withUnsafeBytes(of: &c.retransmitted_segments) { raw in
            for (i, cause) in RetransmitCause.allCases.enumerated() { retransmittedSegments[cause] = UInt64(raw.load(fromByteOffset: i * 4, as: UInt32.self)) }
        }
        withUnsafeBytes(of: &c.retransmitted_bytes) { raw in
            for (i, cause) in RetransmitCause.allCases.enumerated() { retransmittedBytes[cause] = raw.load(fromByteOffset: i * 8, as: UInt64.self) }
        }
        withUnsafeBytes(of: &c.rtt_samples) { raw in
            rtt = RTTHistogram(buckets: (0..<RTTHistogram.bucketCount).map { UInt64(raw.load(fromByteOffset: $0 * 4, as: UInt32.self)) },
                               sumMicroseconds: c.rtt_sum_us)
        }
        resetsSent = UInt64(c.resets_sent)
        resetsReceived = UInt64(c.resets_received)
        failedConnects = UInt64(c.failed_connects)
        timeouts = UInt64(c.timeouts)
        zeroWindowsReceived = UInt64(c.zero_windows_received)
        zeroWindowsSent = UInt64(c.zero_windows_sent)
        windowProbes = UInt64(c.window_probes)
        outOfOrder = UInt64(r.out_of_order)
        dsacks = UInt64(r.dsacks)
    }

    /// The counters of the unattributed events (`netacct_tcp_counters` alone).
    init(_ c: netacct_tcp_counters) {
        var record = netacct_tcp_record()
        record.counters = c
        self.init(record)
    }
}

/// Who a TCP socket's events count for.
public struct TCPOwner: Sendable, Equatable {
    public var id: ProcessID
    public var comm: String
    public var cgroupID: UInt64
    /// No longer running (its counters are kept for the retention).
    public var exited = false

    public init(id: ProcessID, comm: String, cgroupID: UInt64, exited: Bool = false) {
        (self.id, self.comm, self.cgroupID, self.exited) = (id, comm, cgroupID, exited)
    }
}

/// One TCP socket as last read: its endpoints, state and owner, the kernel's RTT, and its counters.
public struct TCPConnection: Sendable, Equatable {
    public var cookie: UInt64
    public var owner: ProcessID
    public var family: SocketSample.Family
    /// Its TCP state's number (TCPStates names it).
    public var state: UInt8
    /// Addresses as inet_ntop writes them.
    public var localAddress: String
    public var localPort: UInt16
    public var remoteAddress: String
    public var remotePort: UInt16
    /// The smoothed RTT and its mean deviation, in microseconds (0: no sample yet).
    public var srttMicroseconds: UInt32
    public var rttvarMicroseconds: UInt32
    /// The kernel's own count of the connection's segments sent again.
    public var kernelRetransmits: UInt32
    /// Since the socket had an owner (or since netacct started).
    public var counters: TCPHealthCounters
    /// Its final record: the socket is gone.
    public var closed: Bool

    public init(cookie: UInt64, owner: ProcessID, family: SocketSample.Family, state: UInt8, localAddress: String, localPort: UInt16,
                remoteAddress: String, remotePort: UInt16, srttMicroseconds: UInt32, rttvarMicroseconds: UInt32, kernelRetransmits: UInt32,
                counters: TCPHealthCounters, closed: Bool) {
        (self.cookie, self.owner, self.family, self.state) = (cookie, owner, family, state)
        (self.localAddress, self.localPort, self.remoteAddress, self.remotePort) = (localAddress, localPort, remoteAddress, remotePort)
        (self.srttMicroseconds, self.rttvarMicroseconds, self.kernelRetransmits) = (srttMicroseconds, rttvarMicroseconds, kernelRetransmits)
        (self.counters, self.closed) = (counters, closed)
    }

    init(_ r: netacct_tcp_record) {
        var r = r
        let ipv6 = r.family == UInt16(AF_INET6)
        cookie = r.cookie
        owner = ProcessID(pid: Int32(bitPattern: r.tgid), startNanoseconds: r.process_start_ns)
        family = ipv6 ? .ipv6 : .ipv4
        state = r.state
        localAddress = withUnsafeBytes(of: &r.laddr) { SocketSample.text($0, ipv6: ipv6) }
        remoteAddress = withUnsafeBytes(of: &r.raddr) { SocketSample.text($0, ipv6: ipv6) }
        (localPort, remotePort) = (r.lport, r.rport)
        srttMicroseconds = r.srtt_us
        rttvarMicroseconds = r.rttvar_us
        kernelRetransmits = r.total_retrans
        counters = TCPHealthCounters(r)
        closed = r.closed != 0
    }
}

/// What the TCP health programs counted since they started.
public struct TCPHealthSample: Sendable {
    public struct Losses: Sendable, Equatable {
        /// Sockets that got no storage: their events count as unattributed.
        public var storageFull: UInt64 = 0
        /// Closed sockets whose final record found the ring buffer full: their last counts are missing.
        public var closedLost: UInt64 = 0
        public init(storageFull: UInt64 = 0, closedLost: UInt64 = 0) { (self.storageFull, self.closedLost) = (storageFull, closedLost) }
        public var isZero: Bool { self == Self() }
        public var phrases: [String] {
            var said: [String] = []
            if storageFull > 0 { said.append("\(storageFull) sockets got no storage (their events are unattributed)") }
            if closedLost > 0 { said.append("\(closedLost) closed sockets' last counts lost (ring buffer full)") }
            return said
        }
    }

    /// Every owner's counters since the start, exited ones included (for the retention).
    public var processes: [ProcessID: TCPHealthCounters] = [:]
    public var owners: [ProcessID: TCPOwner] = [:]
    /// The live sockets with an owner.
    public var connections: [TCPConnection] = []
    /// Events of sockets with no owner (a reset answering a segment for no socket, a kernel socket's).
    public var unattributed = TCPHealthCounters()
    public var losses = Losses()

    public init() {}

    /// The counters by cgroup v2 id (the cgroup an owner was in when it took its sockets).
    public var cgroups: [UInt64: TCPHealthCounters] {
        var result: [UInt64: TCPHealthCounters] = [:]
        for (id, counters) in processes { result[owners[id]?.cgroupID ?? 0, default: TCPHealthCounters()] += counters }
        return result
    }

    /// All counters together, unattributed included.
    public var total: TCPHealthCounters { processes.values.reduce(unattributed, +) }
}
