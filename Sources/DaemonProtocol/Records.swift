import FoundationEssentials
import NetacctKit

/// A verb's reply: its fields follow `version` and `verb` in the reply line. Fields are written
/// in the order they are declared, keys in snake_case; an optional is left out when nil unless
/// `@Nullable` (then `null`).
public protocol DaemonReply: Codable, Sendable {
    static var verb: DaemonAPI.Verb { get }
}

// MARK: processes (accounting)

/// `processes`: every process's cumulative counters since it was first seen, each exited one
/// once per client (as for atop), and the losses since start.
public struct ProcessesReply: DaemonReply, Equatable {
    public static let verb = DaemonAPI.Verb.processes
    /// The daemon keeps per-thread rows (`netacct daemon --threads`): every process has `threads`.
    public var threadsKept: Bool
    public var processes: [ProcessRecord]
    public var losses: Losses
    public init(threadsKept: Bool, processes: [ProcessRecord], losses: Losses) {
        (self.threadsKept, self.processes, self.losses) = (threadsKept, processes, losses)
    }
}

/// A process: its identity (PID and start, CLOCK_MONOTONIC ns), then its counters.
public struct ProcessRecord: CarriesCounters, Codable, Hashable, Sendable {
    public var pid: Int32
    public var startNs: UInt64
    public var comm: String
    public var cgroupId: UInt64
    public var exited: Bool
    public var tcpTxPackets: UInt64 = 0, tcpTxBytes: UInt64 = 0, tcpRxPackets: UInt64 = 0, tcpRxBytes: UInt64 = 0
    public var udpTxPackets: UInt64 = 0, udpTxBytes: UInt64 = 0, udpRxPackets: UInt64 = 0, udpRxBytes: UInt64 = 0
    /// Only when the daemon keeps threads.
    public var threads: [ThreadRecord]?
    public init(pid: Int32, startNs: UInt64, comm: String, cgroupId: UInt64, exited: Bool, counters: Counters, threads: [ThreadRecord]? = nil) {
        (self.pid, self.startNs, self.comm, self.cgroupId, self.exited, self.threads) = (pid, startNs, comm, cgroupId, exited, threads)
        self.counters = counters
    }
}

public struct ThreadRecord: CarriesCounters, Codable, Hashable, Sendable {
    public var tid: Int32
    public var startNs: UInt64
    public var comm: String
    public var exited: Bool
    public var tcpTxPackets: UInt64 = 0, tcpTxBytes: UInt64 = 0, tcpRxPackets: UInt64 = 0, tcpRxBytes: UInt64 = 0
    public var udpTxPackets: UInt64 = 0, udpTxBytes: UInt64 = 0, udpRxPackets: UInt64 = 0, udpRxBytes: UInt64 = 0
    public init(tid: Int32, startNs: UInt64, comm: String, exited: Bool, counters: Counters) {
        (self.tid, self.startNs, self.comm, self.exited) = (tid, startNs, comm, exited)
        self.counters = counters
    }
}

/// What could not be counted or delivered since the daemon started (README: What is counted).
public struct Losses: Codable, Hashable, Sendable {
    public var uncountedCalls: UInt64 = 0
    public var droppedExits: UInt64 = 0
    public var unregisteredProcesses: UInt64 = 0
    public var lateThreadExits: UInt64 = 0
    public var forgottenExits: UInt64 = 0
    public var uncountedSocketCalls: UInt64 = 0
    public init(uncountedCalls: UInt64 = 0, droppedExits: UInt64 = 0, unregisteredProcesses: UInt64 = 0,
                lateThreadExits: UInt64 = 0, forgottenExits: UInt64 = 0, uncountedSocketCalls: UInt64 = 0) {
        (self.uncountedCalls, self.droppedExits, self.unregisteredProcesses) = (uncountedCalls, droppedExits, unregisteredProcesses)
        (self.lateThreadExits, self.forgottenExits, self.uncountedSocketCalls) = (lateThreadExits, forgottenExits, uncountedSocketCalls)
    }
}

/// The eight counters (calls and payload bytes, TCP and UDP, each way), in the documented order.
public struct Counters: CarriesCounters, Codable, Hashable, Sendable {
    public var tcpTxPackets: UInt64 = 0, tcpTxBytes: UInt64 = 0, tcpRxPackets: UInt64 = 0, tcpRxBytes: UInt64 = 0
    public var udpTxPackets: UInt64 = 0, udpTxBytes: UInt64 = 0, udpRxPackets: UInt64 = 0, udpRxBytes: UInt64 = 0
    public init(tcpTxPackets: UInt64 = 0, tcpTxBytes: UInt64 = 0, tcpRxPackets: UInt64 = 0, tcpRxBytes: UInt64 = 0,
                udpTxPackets: UInt64 = 0, udpTxBytes: UInt64 = 0, udpRxPackets: UInt64 = 0, udpRxBytes: UInt64 = 0) {
        (self.tcpTxPackets, self.tcpTxBytes, self.tcpRxPackets, self.tcpRxBytes) = (tcpTxPackets, tcpTxBytes, tcpRxPackets, tcpRxBytes)
        (self.udpTxPackets, self.udpTxBytes, self.udpRxPackets, self.udpRxBytes) = (udpTxPackets, udpTxBytes, udpRxPackets, udpRxBytes)
    }
}

/// A record whose object carries the eight counters among its own fields.
public protocol CarriesCounters {
    var tcpTxPackets: UInt64 { get set }
    var tcpTxBytes: UInt64 { get set }
    var tcpRxPackets: UInt64 { get set }
    var tcpRxBytes: UInt64 { get set }
    var udpTxPackets: UInt64 { get set }
    var udpTxBytes: UInt64 { get set }
    var udpRxPackets: UInt64 { get set }
    var udpRxBytes: UInt64 { get set }
}

extension CarriesCounters {
    /// The eight counters, together.
    public var counters: Counters {
        get {
            Counters(tcpTxPackets: tcpTxPackets, tcpTxBytes: tcpTxBytes, tcpRxPackets: tcpRxPackets, tcpRxBytes: tcpRxBytes,
                     udpTxPackets: udpTxPackets, udpTxBytes: udpTxBytes, udpRxPackets: udpRxPackets, udpRxBytes: udpRxBytes)
        }
        set {
            (tcpTxPackets, tcpTxBytes, tcpRxPackets, tcpRxBytes) = (newValue.tcpTxPackets, newValue.tcpTxBytes, newValue.tcpRxPackets, newValue.tcpRxBytes)
            (udpTxPackets, udpTxBytes, udpRxPackets, udpRxBytes) = (newValue.udpTxPackets, newValue.udpTxBytes, newValue.udpRxPackets, newValue.udpRxBytes)
        }
    }
}

// MARK: sockets (per-socket counting)

/// `sockets`: every socket's cumulative counters as each process used it, closed ones once per
/// client.
public struct SocketsReply: DaemonReply, Equatable {
    public static let verb = DaemonAPI.Verb.sockets
    public var sockets: [SocketRecord]
    public init(sockets: [SocketRecord]) { self.sockets = sockets }
}

/// A socket as one process used it: the process, the socket cookie (SO_COOKIE), the endpoints
/// when first counted (`"raddr":"*","rport":null` when not connected), the counters.
public struct SocketRecord: Codable, Hashable, Sendable {
    public var pid: Int32
    public var startNs: UInt64
    public var cookie: UInt64
    /// "tcp" or "udp".
    public var `protocol`: String
    /// "ipv4" or "ipv6".
    public var family: String
    public var laddr: String
    public var lport: UInt16
    public var raddr: String
    @Nullable public var rport: UInt16?
    public var txPackets: UInt64, txBytes: UInt64, rxPackets: UInt64, rxBytes: UInt64
    public var closed: Bool
    public init(pid: Int32, startNs: UInt64, cookie: UInt64, protocol: String, family: String, laddr: String, lport: UInt16,
                raddr: String, rport: UInt16?, txPackets: UInt64, txBytes: UInt64, rxPackets: UInt64, rxBytes: UInt64, closed: Bool) {
        (self.pid, self.startNs, self.cookie, self.protocol, self.family) = (pid, startNs, cookie, `protocol`, family)
        (self.laddr, self.lport, self.raddr) = (laddr, lport, raddr)
        self.rport = rport
        (self.txPackets, self.txBytes, self.rxPackets, self.rxBytes, self.closed) = (txPackets, txBytes, rxPackets, rxBytes, closed)
    }
}

// MARK: nic

/// `nic`: each counted interface's cumulative frames, bytes and segments per queue since the
/// daemon started (the fields of `netacct nic --json`).
public struct NICReply: DaemonReply, Equatable {
    public static let verb = DaemonAPI.Verb.nic
    public var interfaces: [InterfaceRecord]
    public init(interfaces: [InterfaceRecord]) { self.interfaces = interfaces }
}

public struct InterfaceRecord: Codable, Hashable, Sendable {
    public var name: String
    public var ifindex: UInt32
    public var tx: QueuesRecord
    public var rx: QueuesRecord
    /// Its network namespace (a daemon that follows every one); absent: the daemon's own.
    public var netns: NamespaceRecord?
    public init(name: String, ifindex: UInt32, tx: QueuesRecord, rx: QueuesRecord, netns: NamespaceRecord? = nil) {
        (self.name, self.ifindex, self.tx, self.rx, self.netns) = (name, ifindex, tx, rx, netns)
    }
}

/// A network namespace: its inode number, its /run/netns name, and the container, pod or
/// systemd unit its processes are in (`netacct nic -A --json`'s `netns` object).
public struct NamespaceRecord: Codable, Hashable, Sendable {
    public var inode: UInt32
    public var name: String?
    public var container: String?
    public var pod: String?
    public var unit: String?
    public var host: Bool
    public init(inode: UInt32, name: String? = nil, container: String? = nil, pod: String? = nil, unit: String? = nil, host: Bool = false) {
        (self.inode, self.name, self.container, self.pod, self.unit, self.host) = (inode, name, container, pod, unit, host)
    }

    public init(_ label: NamespaceLabel) {
        func named(_ kind: Workload.Kind) -> String? { label.workload?.kind == kind ? label.workload?.name : nil }
        self.init(inode: label.inode, name: label.name, container: named(.container), pod: named(.pod), unit: named(.unit), host: label.isHost)
    }
}

/// One direction's queues, and their sum (`total`: no `queue`).
public struct QueuesRecord: Codable, Hashable, Sendable {
    public var queues: [Queue]
    public var total: Queue
    public init(queues: [Queue], total: Queue) { (self.queues, self.total) = (queues, total) }

    public struct Queue: Codable, Hashable, Sendable {
        public var queue: Int?
        public var packets: UInt64, bytes: UInt64, segments: UInt64
        public init(queue: Int?, packets: UInt64, bytes: UInt64, segments: UInt64) {
            (self.queue, self.packets, self.bytes, self.segments) = (queue, packets, bytes, segments)
        }
    }
}

// MARK: latency

/// `latency`: for each direction, the histogram of each stage and of the total since the
/// daemon started (the fields of `netacct latency --hist --json`'s stages).
public struct LatencyReply: DaemonReply, Equatable {
    public static let verb = DaemonAPI.Verb.latency
    public var directions: [Direction]
    public init(directions: [Direction]) { self.directions = directions }

    public struct Direction: Codable, Hashable, Sendable {
        /// "in" or "out".
        public var direction: String
        public var stages: [Stage]
        /// Its network namespace (a daemon that follows every one: a direction per namespace);
        /// absent: the daemon's own.
        public var netns: NamespaceRecord?
        public init(direction: String, stages: [Stage], netns: NamespaceRecord? = nil) {
            (self.direction, self.stages, self.netns) = (direction, stages, netns)
        }
    }

    /// A stage's count, percentiles and maximum (`null` when nothing was counted), sum, and
    /// counts per power of two (`le_us`: the octave's exclusive upper bound).
    public struct Stage: Codable, Hashable, Sendable {
        public var stage: String
        public var count: UInt64
        @Nullable public var p50Us: Microseconds?
        @Nullable public var p90Us: Microseconds?
        @Nullable public var p99Us: Microseconds?
        @Nullable public var maxUs: Microseconds?
        public var sumUs: Microseconds
        public var buckets: [Bucket]
        public init(stage: String, count: UInt64, p50Us: Microseconds?, p90Us: Microseconds?, p99Us: Microseconds?,
                    maxUs: Microseconds?, sumUs: Microseconds, buckets: [Bucket]) {
            (self.stage, self.count, self.sumUs, self.buckets) = (stage, count, sumUs, buckets)
            self.p50Us = p50Us
            self.p90Us = p90Us
            self.p99Us = p99Us
            self.maxUs = maxUs
        }
    }

    public struct Bucket: Codable, Hashable, Sendable {
        public var leUs: Microseconds
        public var count: UInt64
        public init(leUs: Microseconds, count: UInt64) { (self.leUs, self.count) = (leUs, count) }
    }
}

/// A time in microseconds to the nanosecond: written with exactly three decimals (`1.536`),
/// read back exactly.
public struct Microseconds: Codable, Hashable, Sendable {
    public var nanoseconds: UInt64
    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    public func encode(to encoder: any Encoder) throws {
        var text = TextBuffer(capacity: 24)
        text.append(nanoseconds, decimals: 3)
        var value = encoder.singleValueContainer()
        try value.encode(JSONWriter.Raw(String(decoding: text.bytes, as: UTF8.self)))
    }

    public init(from decoder: any Decoder) throws {
        let value = try decoder.singleValueContainer().decode(Decimal.self)
        guard let nanoseconds = UInt64((value * 1000).description) else {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(value) is not a time in µs to the ns"))
        }
        self.nanoseconds = nanoseconds
    }
}

// MARK: drops and connection events: counts per process group and per cgroup

/// A process group's counts since the daemon started, as its Prometheus series has them: its
/// command name (`pid` too with `--metrics-pids`); `other` for the groups without a series of
/// their own (`--metrics-top`), `-` for what no process is known for.
public struct GroupCounts<Counts: Codable & Hashable & Sendable>: Codable, Hashable, Sendable {
    public var group: String
    public var pid: Int32?
    public var counts: Counts
    public init(group: String, pid: Int32? = nil, counts: Counts) { (self.group, self.pid, self.counts) = (group, pid, counts) }
}

/// A cgroup's counts since the daemon started, as its Prometheus series has them: its path
/// (`#id` once gone; `other`, `-`), its unit, container or pod name and kind (`none` for `-`).
public struct CgroupCounts<Counts: Codable & Hashable & Sendable>: Codable, Hashable, Sendable {
    public var cgroup: String
    public var name: String
    public var kind: String
    public var counts: Counts
    public init(cgroup: String, name: String, kind: String, counts: Counts) {
        (self.cgroup, self.name, self.kind, self.counts) = (cgroup, name, kind, counts)
    }
}

/// `drops`: incoming packets the kernel dropped since the daemon started, by reason and
/// protocol, in all and per process group and cgroup of the socket's owner (`netacct drops
/// --summary`'s reason names); `unkeyed_drops` were counted without their socket (the kernel's
/// per-socket table was full), in the `-` rows.
public struct DropsReply: DaemonReply, Equatable {
    public static let verb = DaemonAPI.Verb.drops
    public var total: [DropCount]
    public var processGroups: [GroupCounts<[DropCount]>]
    public var cgroups: [CgroupCounts<[DropCount]>]
    public var unkeyedDrops: UInt64
    public init(total: [DropCount], processGroups: [GroupCounts<[DropCount]>], cgroups: [CgroupCounts<[DropCount]>], unkeyedDrops: UInt64) {
        (self.total, self.processGroups, self.cgroups, self.unkeyedDrops) = (total, processGroups, cgroups, unkeyedDrops)
    }
}

public struct DropCount: Codable, Hashable, Sendable {
    /// The kernel's name (`SOCKET_RCVBUFF`).
    public var reason: String
    /// "tcp" or "udp".
    public var `protocol`: String
    public var count: UInt64
    /// Its network namespace (a daemon that follows every one); absent: the daemon's own.
    public var netns: NamespaceRecord?
    public init(reason: String, protocol: String, count: UInt64, netns: NamespaceRecord? = nil) {
        (self.reason, self.protocol, self.count, self.netns) = (reason, `protocol`, count, netns)
    }
}

/// `connection_events`: TCP connections opened, failed and closed since the daemon started, in
/// all and per process group and cgroup of the process that connected or accepted; the events
/// the kernel could not deliver (`lost_events`: its ring buffer was full) and the connections
/// it could not follow (`unfollowed_connections`: its table was full; their close is in `-`).
public struct ConnectionEventsReply: DaemonReply, Equatable {
    public static let verb = DaemonAPI.Verb.connectionEvents
    public var total: ConnectionCounts
    public var processGroups: [GroupCounts<ConnectionCounts>]
    public var cgroups: [CgroupCounts<ConnectionCounts>]
    public var lostEvents: UInt64
    public var unfollowedConnections: UInt64
    public init(total: ConnectionCounts, processGroups: [GroupCounts<ConnectionCounts>], cgroups: [CgroupCounts<ConnectionCounts>],
                lostEvents: UInt64, unfollowedConnections: UInt64) {
        (self.total, self.processGroups, self.cgroups) = (total, processGroups, cgroups)
        (self.lostEvents, self.unfollowedConnections) = (lostEvents, unfollowedConnections)
    }
}

/// Connections established by connect() and by accept(), connects that failed by errno name
/// (ECONNREFUSED…), established connections closed, and the handshake of the connects
/// established (SYN sent to SYN-ACK received): its count, sum and non-empty buckets (`le_us`
/// the inclusive upper bound, `null` beyond the last).
public struct ConnectionCounts: Codable, Hashable, Sendable {
    public var connects: UInt64
    public var accepts: UInt64
    public var failures: [Failure]
    public var closes: UInt64
    public var connectLatency: Histogram
    public init(connects: UInt64, accepts: UInt64, failures: [Failure], closes: UInt64, connectLatency: Histogram) {
        (self.connects, self.accepts, self.failures, self.closes, self.connectLatency) = (connects, accepts, failures, closes, connectLatency)
    }

    public struct Failure: Codable, Hashable, Sendable {
        public var error: String
        public var count: UInt64
        public init(error: String, count: UInt64) { (self.error, self.count) = (error, count) }
    }

    public struct Histogram: Codable, Hashable, Sendable {
        public var count: UInt64
        public var sumUs: UInt64
        public var buckets: [Bucket]
        public init(count: UInt64, sumUs: UInt64, buckets: [Bucket]) { (self.count, self.sumUs, self.buckets) = (count, sumUs, buckets) }
    }

    public struct Bucket: Codable, Hashable, Sendable {
        @Nullable public var leUs: UInt64?
        public var count: UInt64
        public init(leUs: UInt64?, count: UInt64) { (self.leUs, self.count) = (leUs, count) }
    }
}

// MARK: the HTTP API

/// `/api/v1/processes`: the live processes' cumulative counters, with `netacct top --json`'s
/// field names (`start_ns` too, to tell two processes of one PID apart).
public struct LiveProcessesReply: Codable, Equatable, Sendable {
    public var processes: [LiveProcessRecord]
    public init(processes: [LiveProcessRecord]) { self.processes = processes }
}

public struct LiveProcessRecord: CarriesCounters, Codable, Hashable, Sendable {
    public var pid: Int32
    public var startNs: UInt64
    public var comm: String
    /// Its cgroup's path under the cgroup2 mount; `null` once the cgroup is gone.
    @Nullable public var cgroup: String?
    public var exited: Bool
    public var tcpTxPackets: UInt64 = 0, tcpTxBytes: UInt64 = 0, tcpRxPackets: UInt64 = 0, tcpRxBytes: UInt64 = 0
    public var udpTxPackets: UInt64 = 0, udpTxBytes: UInt64 = 0, udpRxPackets: UInt64 = 0, udpRxBytes: UInt64 = 0
    public init(pid: Int32, startNs: UInt64, comm: String, cgroup: String?, exited: Bool, counters: Counters) {
        (self.pid, self.startNs, self.comm, self.exited) = (pid, startNs, comm, exited)
        self.cgroup = cgroup
        self.counters = counters
    }
}

/// `/api/v1/cgroups`: per cgroup, its cumulative counters (`netacct top --by cgroup --json`'s
/// rows have the same fields, per interval).
public struct CgroupsReply: Codable, Equatable, Sendable {
    public var cgroups: [CgroupRecord]
    public init(cgroups: [CgroupRecord]) { self.cgroups = cgroups }
}

/// A cgroup: its path (`null` once gone), its unit, container or pod name and kind, its
/// processes, its counters.
public struct CgroupRecord: CarriesCounters, Codable, Hashable, Sendable {
    @Nullable public var cgroup: String?
    public var name: String
    public var kind: String
    public var processes: Int
    public var tcpTxPackets: UInt64 = 0, tcpTxBytes: UInt64 = 0, tcpRxPackets: UInt64 = 0, tcpRxBytes: UInt64 = 0
    public var udpTxPackets: UInt64 = 0, udpTxBytes: UInt64 = 0, udpRxPackets: UInt64 = 0, udpRxBytes: UInt64 = 0
    public init(cgroup: String?, workload: Workload, processes: Int, counters: Counters) {
        (self.name, self.kind, self.processes) = (workload.name, workload.kind.rawValue, processes)
        self.cgroup = cgroup
        self.counters = counters
    }
}

/// An optional field written `null` when nil, where a synthesized conformance would leave it out.
@propertyWrapper
public struct Nullable<Value: Codable & Hashable & Sendable>: Codable, Hashable, Sendable {
    public var wrappedValue: Value?
    public init(wrappedValue: Value?) { self.wrappedValue = wrappedValue }
    public init(from decoder: any Decoder) throws { wrappedValue = try decoder.singleValueContainer().decode(Value?.self) }
    public func encode(to encoder: any Encoder) throws {
        var value = encoder.singleValueContainer()
        try value.encode(wrappedValue)
    }
}

/// `wire`: frames and bytes on the wire since the daemon started (`netacct top --wire`'s
/// counts): every interface's totals and what no process owned there (per network namespace),
/// each socket owner's frames in all and per interface, and the same per process group and
/// cgroup, bounded as the other families are.
public struct WireReply: DaemonReply, Equatable {
    public static let verb = DaemonAPI.Verb.wire
    public var interfaces: [WireInterfaceRecord]
    public var processes: [WireProcessRecord]
    public var processGroups: [GroupCounts<WireCounts>]
    public var cgroups: [CgroupCounts<WireCounts>]
    public var losses: WireLosses
    public init(interfaces: [WireInterfaceRecord], processes: [WireProcessRecord], processGroups: [GroupCounts<WireCounts>],
                cgroups: [CgroupCounts<WireCounts>], losses: WireLosses) {
        (self.interfaces, self.processes, self.processGroups, self.cgroups, self.losses) = (interfaces, processes, processGroups, cgroups, losses)
    }
}

/// Frames and bytes on the wire each way, TCP segments sent again and their payload; the `udp_`
/// fields are UDP sockets' share of the first four.
public struct WireCounts: Codable, Hashable, Sendable {
    public var txPackets: UInt64
    public var txBytes: UInt64
    public var rxPackets: UInt64
    public var rxBytes: UInt64
    public var retransmittedSegments: UInt64
    public var retransmittedBytes: UInt64
    public var udpTxPackets: UInt64
    public var udpTxBytes: UInt64
    public var udpRxPackets: UInt64
    public var udpRxBytes: UInt64
    public init(txPackets: UInt64 = 0, txBytes: UInt64 = 0, rxPackets: UInt64 = 0, rxBytes: UInt64 = 0, retransmittedSegments: UInt64 = 0,
                retransmittedBytes: UInt64 = 0, udpTxPackets: UInt64 = 0, udpTxBytes: UInt64 = 0, udpRxPackets: UInt64 = 0, udpRxBytes: UInt64 = 0) {
        (self.txPackets, self.txBytes, self.rxPackets, self.rxBytes) = (txPackets, txBytes, rxPackets, rxBytes)
        (self.retransmittedSegments, self.retransmittedBytes) = (retransmittedSegments, retransmittedBytes)
        (self.udpTxPackets, self.udpTxBytes, self.udpRxPackets, self.udpRxBytes) = (udpTxPackets, udpTxBytes, udpRxPackets, udpRxBytes)
    }
}

/// An interface of a network namespace (its inode), its totals and what no process owned.
public struct WireInterfaceRecord: Codable, Hashable, Sendable {
    public var netns: UInt32
    public var ifindex: UInt32
    public var name: String
    public var totals: WireCounts
    public var unattributed: WireCounts
    public init(netns: UInt32, ifindex: UInt32, name: String, totals: WireCounts, unattributed: WireCounts) {
        (self.netns, self.ifindex, self.name, self.totals, self.unattributed) = (netns, ifindex, name, totals, unattributed)
    }
}

/// A socket owner's frames: in all, and on each interface (ifindex 0: retransmissions of a
/// socket with no route known).
public struct WireProcessRecord: Codable, Hashable, Sendable {
    public var pid: Int32
    public var startNs: UInt64?
    public var comm: String?
    public var cgroupId: UInt64?
    public var exited: Bool
    public var counts: WireCounts
    public var interfaces: [WireOnInterface]
    public init(pid: Int32, startNs: UInt64?, comm: String?, cgroupId: UInt64?, exited: Bool, counts: WireCounts, interfaces: [WireOnInterface]) {
        (self.pid, self.startNs, self.comm, self.cgroupId, self.exited, self.counts, self.interfaces) = (pid, startNs, comm, cgroupId, exited, counts, interfaces)
    }
}

public struct WireOnInterface: Codable, Hashable, Sendable {
    public var netns: UInt32
    public var ifindex: UInt32
    public var counts: WireCounts
    public init(netns: UInt32, ifindex: UInt32, counts: WireCounts) { (self.netns, self.ifindex, self.counts) = (netns, ifindex, counts) }
}

/// What could not be counted: frames left unattributed for want of room, frames of interfaces
/// that found none, sockets whose owner was not recorded.
public struct WireLosses: Codable, Hashable, Sendable {
    public var ownersFull: UInt64
    public var interfacesFull: UInt64
    public var storageFull: UInt64
    public init(ownersFull: UInt64, interfacesFull: UInt64, storageFull: UInt64) {
        (self.ownersFull, self.interfacesFull, self.storageFull) = (ownersFull, interfacesFull, storageFull)
    }
}

// MARK: tcp (TCP health)

/// `tcp`: every socket owner's TCP health counters since the daemon started (exited owners for
/// the retention), the live connections with their RTT, and the events of sockets with no owner
/// (`netacct top --tcp`'s source).
public struct TCPHealthReply: DaemonReply, Equatable {
    public static let verb = DaemonAPI.Verb.tcp
    public var processes: [TCPHealthProcessRecord]
    public var connections: [TCPConnectionRecord]
    public var unattributed: TCPHealthCounters
    public var losses: TCPHealthLosses
    public init(processes: [TCPHealthProcessRecord], connections: [TCPConnectionRecord], unattributed: TCPHealthCounters, losses: TCPHealthLosses) {
        (self.processes, self.connections, self.unattributed, self.losses) = (processes, connections, unattributed, losses)
    }
}

public struct TCPHealthProcessRecord: Codable, Hashable, Sendable {
    public var pid: Int32
    public var startNs: UInt64
    public var comm: String
    public var cgroupId: UInt64
    public var exited: Bool
    public var counts: TCPHealthCounters
    public init(pid: Int32, startNs: UInt64, comm: String, cgroupId: UInt64, exited: Bool, counts: TCPHealthCounters) {
        (self.pid, self.startNs, self.comm, self.cgroupId, self.exited, self.counts) = (pid, startNs, comm, cgroupId, exited, counts)
    }
}

/// A live TCP connection (or one that closed since the last sample): its owner, endpoints,
/// state, the kernel's smoothed RTT and variation, and its counters since it had an owner.
public struct TCPConnectionRecord: Codable, Hashable, Sendable {
    public var cookie: UInt64
    public var pid: Int32
    public var startNs: UInt64
    public var family: String
    public var state: UInt8
    public var localAddress: String
    public var localPort: UInt16
    public var remoteAddress: String
    public var remotePort: UInt16
    public var srttUs: UInt32
    public var rttvarUs: UInt32
    public var kernelTotalRetrans: UInt32
    public var closed: Bool
    public var counts: TCPHealthCounters
    public init(cookie: UInt64, pid: Int32, startNs: UInt64, family: String, state: UInt8, localAddress: String, localPort: UInt16,
                remoteAddress: String, remotePort: UInt16, srttUs: UInt32, rttvarUs: UInt32, kernelTotalRetrans: UInt32, closed: Bool,
                counts: TCPHealthCounters) {
        (self.cookie, self.pid, self.startNs, self.family, self.state) = (cookie, pid, startNs, family, state)
        (self.localAddress, self.localPort, self.remoteAddress, self.remotePort) = (localAddress, localPort, remoteAddress, remotePort)
        (self.srttUs, self.rttvarUs, self.kernelTotalRetrans, self.closed, self.counts) = (srttUs, rttvarUs, kernelTotalRetrans, closed, counts)
    }
}

/// Sockets that got no storage (their events unattributed) and closed sockets whose final
/// record found the ring buffer full.
public struct TCPHealthLosses: Codable, Hashable, Sendable {
    public var storageFull: UInt64
    public var closedLost: UInt64
    public init(storageFull: UInt64, closedLost: UInt64) { (self.storageFull, self.closedLost) = (storageFull, closedLost) }
}
