import DaemonProtocol
import NetacctKit

/// The history stores the daemon protocol's eight counters (socket calls and their payload,
/// TCP and UDP, each way), a column each.
extension Counters {
    /// The columns, in the store's order.
    static let columns = ["tcp_tx_packets", "tcp_tx_bytes", "tcp_rx_packets", "tcp_rx_bytes",
                          "udp_tx_packets", "udp_tx_bytes", "udp_rx_packets", "udp_rx_bytes"]

    var values: [UInt64] { [tcpTxPackets, tcpTxBytes, tcpRxPackets, tcpRxBytes, udpTxPackets, udpTxBytes, udpRxPackets, udpRxBytes] }

    /// Adds `other`'s counters (a cgroup's row is its processes' sum).
    mutating func add(_ o: Counters) {
        tcpTxPackets &+= o.tcpTxPackets; tcpTxBytes &+= o.tcpTxBytes; tcpRxPackets &+= o.tcpRxPackets; tcpRxBytes &+= o.tcpRxBytes
        udpTxPackets &+= o.udpTxPackets; udpTxBytes &+= o.udpTxBytes; udpRxPackets &+= o.udpRxPackets; udpRxBytes &+= o.udpRxBytes
    }

    /// Payload bytes both ways: what "busiest" means.
    var bytes: UInt64 { tcpTxBytes &+ tcpRxBytes &+ udpTxBytes &+ udpRxBytes }

    func write(into json: inout JSONWriter) {
        for (name, value) in zip(Self.columns, values) { json.field(name, number: value) }
    }
}

/// A counter of another collector (nic's per queue, the wire's and TCP health's totals): the
/// collector, its labels (as on its Prometheus series), its name, and what it counted (since
/// the daemon started, as a collector gives it; in the interval, as the history keeps it).
public struct HistorySeries: Sendable, Equatable, Hashable {
    public var source: String
    public var labels: String
    public var name: String
    public var value: UInt64
    public init(source: String, labels: String, name: String, value: UInt64) {
        (self.source, self.labels, self.name, self.value) = (source, labels, name, value)
    }
}

/// What the daemon records of one interval: each process with traffic in it (exited ones
/// included), the cgroups' paths, and the other collectors' counters that moved. The cgroups'
/// rows are the sums of their processes'.
public struct HistoryInterval: Sendable {
    public struct Process: Sendable, Equatable {
        public var pid: Int32
        /// The process's start (ns since boot): with the PID, which process it is.
        public var startNs: UInt64
        public var comm: String
        public var cgroup: UInt64
        public var exited: Bool
        public var counters: Counters
        public init(pid: Int32, startNs: UInt64, comm: String, cgroup: UInt64, exited: Bool, counters: Counters) {
            (self.pid, self.startNs, self.comm, self.cgroup, self.exited, self.counters) = (pid, startNs, comm, cgroup, exited, counters)
        }
    }

    /// Wall-clock nanoseconds since the epoch.
    public var start: Int64
    public var end: Int64
    public var processes: [Process]
    /// The paths of the cgroups the processes are in (those known).
    public var cgroupPaths: [UInt64: String]
    /// What the other collectors' counters gained in the interval (those that moved).
    public var series: [HistorySeries]

    public init(start: Int64, end: Int64, processes: [Process], cgroupPaths: [UInt64: String], series: [HistorySeries] = []) {
        (self.start, self.end, self.processes, self.cgroupPaths, self.series) = (start, end, processes, cgroupPaths, series)
    }
}

/// What to read back: a time range, grouped by process or cgroup, optionally one PID.
public struct HistoryQuery: Sendable {
    /// A row per process, per cgroup, per interface queue and direction (nic's counters), or
    /// per counter of every other collector (`series`).
    public enum Grouping: String, Sendable, CaseIterable { case process, cgroup, interface, series }
    /// Wall-clock nanoseconds since the epoch: the intervals that overlap [from, until).
    public var from: Int64
    public var until: Int64
    public var grouping: Grouping = .process
    public var pid: Int32?
    public init(from: Int64, until: Int64, grouping: Grouping = .process, pid: Int32? = nil) {
        (self.from, self.until, self.grouping, self.pid) = (from, until, grouping, pid)
    }
}

/// The answer: the intervals found, at which resolution, and a row per process or cgroup with
/// its traffic in them, busiest first.
public struct HistoryReport: Sendable {
    public struct Row: Sendable, Equatable {
        /// A process: its PID, start, name; a cgroup: none of them.
        public var pid: Int32?
        public var startNs: UInt64?
        public var comm: String?
        public var cgroup: UInt64
        public var cgroupPath: String?
        public var exited: Bool
        public var counters: Counters
    }

    /// A collector's row (`--by interface` or `series`): its labels and its counters by name.
    public struct SeriesRow: Sendable, Equatable {
        public var source: String
        public var labels: String
        public var values: [(name: String, value: UInt64)]
        public static func == (a: SeriesRow, b: SeriesRow) -> Bool {
            a.source == b.source && a.labels == b.labels && a.values.map(\.name) == b.values.map(\.name) && a.values.map(\.value) == b.values.map(\.value)
        }
    }

    public var query: HistoryQuery
    /// The span the intervals found cover (nil: none found).
    public var span: (start: Int64, end: Int64)?
    public var intervals: Int
    /// Seconds per interval at the resolution found: the coarsest and the finest of those read.
    public var resolution: Int64
    public var finest: Int64
    /// Intervals the file dropped, oldest first, to stay under its size (since it was made).
    public var droppedForSize: UInt64
    public var rows: [Row]
    public var seriesRows: [SeriesRow] = []
}
