import DaemonProtocol
import NetacctKit

/// The history stores the daemon protocol's eight counters (socket calls and their payload,
/// TCP and UDP, each way), a column each.
extension Counters {
    /// The columns, in the store's order.
    static let columns = ["tcp_tx_packets", "tcp_tx_bytes", "tcp_rx_packets", "tcp_rx_bytes",
                          "udp_tx_packets", "udp_tx_bytes", "udp_rx_packets", "udp_rx_bytes"]

    var values: [UInt64] { [tcpTxPackets, tcpTxBytes, tcpRxPackets, tcpRxBytes, udpTxPackets, udpTxBytes, udpRxPackets, udpRxBytes] }

    init(_ statement: SQLiteStatement, from column: Int32) {
        self.init(tcpTxPackets: statement.uint64(column), tcpTxBytes: statement.uint64(column + 1),
                  tcpRxPackets: statement.uint64(column + 2), tcpRxBytes: statement.uint64(column + 3),
                  udpTxPackets: statement.uint64(column + 4), udpTxBytes: statement.uint64(column + 5),
                  udpRxPackets: statement.uint64(column + 6), udpRxBytes: statement.uint64(column + 7))
    }

    /// Adds `other`'s counters (a cgroup's row is its processes' sum).
    mutating func add(_ other: Counters) {
        let sums = zip(values, other.values).map { $0 &+ $1 }
        self = Counters(tcpTxPackets: sums[0], tcpTxBytes: sums[1], tcpRxPackets: sums[2], tcpRxBytes: sums[3],
                        udpTxPackets: sums[4], udpTxBytes: sums[5], udpRxPackets: sums[6], udpRxBytes: sums[7])
    }

    func write(into json: inout JSONWriter) {
        for (name, value) in zip(Self.columns, values) { json.field(name, number: value) }
    }
}

/// What the daemon records of one interval: each process with traffic in it (exited ones
/// included), and the cgroups' paths. The cgroups' rows are the sums of their processes'.
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

    public init(start: Int64, end: Int64, processes: [Process], cgroupPaths: [UInt64: String]) {
        (self.start, self.end, self.processes, self.cgroupPaths) = (start, end, processes, cgroupPaths)
    }
}

/// What to read back: a time range, grouped by process or cgroup, optionally one PID.
public struct HistoryQuery: Sendable {
    public enum Grouping: String, Sendable, CaseIterable { case process, cgroup }
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
}
