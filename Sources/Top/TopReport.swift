import FoundationEssentials
import Glibc
import Accounting
import DaemonProtocol
import NetacctKit

/// One interval of `netacct top`: the processes with traffic in it, filtered and sorted.
public struct TopInterval: Sendable {
    public enum SortKey: String, CaseIterable, Sendable {
        case rx, tx, total
    }

    /// What a row is: a process, or a cgroup (the sum of its processes).
    public enum Grouping: String, CaseIterable, Sendable {
        case process, cgroup
    }

    public struct Filter: Sendable {
        public var pids: Set<Int32> = []
        /// cgroup ids (a cgroup and its descendants); nil: every cgroup.
        public var cgroups: Set<UInt64>?
        public init(pids: Set<Int32> = [], cgroups: Set<UInt64>? = nil) {
            self.pids = pids
            self.cgroups = cgroups
        }

        func admits(_ process: ProcessTable.ProcessSample) -> Bool {
            (pids.isEmpty || pids.contains(process.id.pid)) && (cgroups?.contains(process.cgroupID) ?? true)
        }
    }

    public var time: Date
    public var seconds: Double
    public var processes: [ProcessTable.ProcessSample]
    /// With `--connections`: each shown process's sockets with traffic in the interval, busiest
    /// first, of the families asked for (nil: connections are not shown).
    public var connections: [ProcessID: [SocketSample]]?

    /// Keeps the processes the filter admits that had traffic in the interval, busiest first,
    /// and, given `sockets`, their sockets of `families` that had traffic or closed in it (a
    /// socket's close is shown once, with its final traffic: nothing, if it was idle). A process
    /// with such a socket is shown even when its own counters moved nothing: the sockets are
    /// read a moment before the processes, so a call made in between is in the process's delta
    /// of one interval and the socket's of the next; hiding the process then would lose it from
    /// the socket's rows for good (the next delta starts from this sample).
    public init(time: Date, seconds: Double, samples: [ProcessTable.ProcessSample],
                filter: Filter = .init(), sort: SortKey = .total,
                sockets: [SocketSample]? = nil, families: Set<SocketSample.Family> = Set(SocketSample.Family.allCases)) {
        self.time = time
        self.seconds = seconds
        let key = sort.key
        let sockets = sockets?.filter { (!$0.delta.isZero || $0.closed) && families.contains($0.family) }
        let withSockets = Set(sockets?.map(\.id.process) ?? [])
        processes = samples
            .filter { (!$0.delta.isZero || withSockets.contains($0.id)) && filter.admits($0) }
            .map { sample in
                var sample = sample
                sample.threads = sample.threads.filter { !$0.delta.isZero }
                return sample
            }
            .sorted { (key($0.delta), $1.id.pid) > (key($1.delta), $0.id.pid) }
        if let sockets {
            let shown = Set(processes.map(\.id))
            let socketKey = sort.socketKey
            connections = Dictionary(grouping: sockets.filter { shown.contains($0.id.process) }, by: \.id.process)
                .mapValues { $0.sorted { (socketKey($0.delta), $1.id.cookie) > (socketKey($1.delta), $0.id.cookie) } }
        }
    }

    /// The connections shown, of one family, in the order of their processes.
    public func connections(of family: SocketSample.Family) -> [SocketSample] {
        guard let connections else { return [] }
        return processes.flatMap { (connections[$0.id] ?? []).filter { $0.family == family } }
    }

    public var total: Traffic { processes.reduce(.zero) { $0 + $1.delta } }

    /// The interval's traffic per cgroup (`--by cgroup`): the sum of its processes', busiest
    /// first by the interval's sort key.
    public struct CgroupRow: Sendable {
        public var id: UInt64
        public var processes: Int
        public var delta: Traffic
    }

    public func byCgroup(sort: SortKey = .total) -> [CgroupRow] {
        var rows: [UInt64: CgroupRow] = [:]
        for process in processes {
            rows[process.cgroupID, default: CgroupRow(id: process.cgroupID, processes: 0, delta: .zero)].processes += 1
            rows[process.cgroupID]!.delta = rows[process.cgroupID]!.delta + process.delta
        }
        let key = sort.key
        return rows.values.sorted { (key($0.delta), $1.id) > (key($1.delta), $0.id) }
    }
}

extension TopInterval.SortKey {
    var key: (Traffic) -> UInt64 {
        switch self {
        case .rx: \.rxBytes
        case .tx: \.txBytes
        case .total: { $0.rxBytes &+ $0.txBytes }
        }
    }

    var socketKey: (SocketTraffic) -> UInt64 {
        switch self {
        case .rx: \.rxBytes
        case .tx: \.txBytes
        case .total: { $0.rxBytes &+ $0.txBytes }
        }
    }
}

/// Renders intervals as a text table (the screen of `netacct top`) or as JSON lines.
public struct TopRenderer {
    public var threads: Bool
    public var summary: Bool
    public var cgroups: CgroupNames

    public init(threads: Bool = false, summary: Bool = true, cgroups: CgroupNames = CgroupNames()) {
        self.threads = threads
        self.summary = summary
        self.cgroups = cgroups
    }

    // MARK: Text

    static let header = ([Units.pad("PID", 7), Units.pad("COMM", 16, left: true), Units.pad("CGROUP", 20, left: true)]
        + counterHeader).joined(separator: " ")

    public mutating func table(_ interval: TopInterval, loadAverage: String? = nil, losses: Snapshot.Losses = .init()) -> String {
        var lines: [String] = []
        if summary {
            let connections = interval.connections.map { ", \($0.values.reduce(0) { $0 + $1.count }) connections" } ?? ""
            lines.append(summaryLine(interval, loadAverage: loadAverage, what: "\(interval.processes.count) processes\(connections)"))
            if !losses.isZero {
                lines.append("WARNING since start: " + losses.phrases.joined(separator: "; "))
            }
            lines.append("")
        }
        lines.append(Self.header)
        for process in interval.processes {
            let comm = process.exited ? "\(process.comm)*" : process.comm
            lines.append(Self.row(id: String(process.id.pid), comm: comm,
                                  cgroup: cgroups.shortName(of: process.cgroupID), traffic: process.delta))
            if threads {
                for thread in process.threads {
                    let comm = thread.exited ? "\(thread.comm)*" : thread.comm
                    lines.append(Self.row(id: "└\(thread.id.tid)", comm: comm, cgroup: "", traffic: thread.delta))
                }
            }
        }
        if interval.processes.contains(where: \.exited) || (threads && interval.processes.contains { $0.threads.contains(where: \.exited) }) {
            lines.append("* exited during the interval (final traffic shown)")
        }
        lines += connectionTables(interval)
        return lines.joined(separator: "\n") + "\n"
    }

    // MARK: Connections

    /// The width of an endpoint column: `255.255.255.255:65535`, or an IPv6 one such as
    /// `[fd00:1234:5678::1]:65535` (longer ones widen their row).
    static func endpointWidth(_ family: SocketSample.Family) -> Int { family == .ipv4 ? 21 : 39 }

    static func connectionHeader(_ family: SocketSample.Family) -> String {
        let width = endpointWidth(family)
        return [Units.pad("PID", 7), Units.pad("COMM", 16, left: true), Units.pad("PROTO", 5, left: true),
                Units.pad("LADDR", width, left: true), Units.pad("RADDR", width, left: true),
                Units.pad("RX-CALLS", 8), Units.pad("RX", 7), Units.pad("TX-CALLS", 8), Units.pad("TX", 7)].joined(separator: " ")
    }

    /// tcptop's view: a table per address family (IPv4 first), a row per connection with
    /// traffic in the interval, grouped under their processes in the processes' order. A
    /// socket closed during the interval is marked (`tcp*`) and shows its final traffic.
    func connectionTables(_ interval: TopInterval) -> [String] {
        guard interval.connections != nil else { return [] }
        var lines: [String] = []
        let comms = Dictionary(interval.processes.map { ($0.id, $0.comm) }, uniquingKeysWith: { a, _ in a })
        var anyClosed = false
        for family in SocketSample.Family.allCases {
            let rows = interval.connections(of: family)
            guard !rows.isEmpty else { continue }
            let width = Self.endpointWidth(family)
            lines.append("")
            lines.append(family == .ipv4 ? "IPv4 connections" : "IPv6 connections")
            lines.append(Self.connectionHeader(family))
            for socket in rows {
                anyClosed = anyClosed || socket.closed
                let d = socket.delta
                lines.append([Units.pad(String(socket.id.process.pid), 7),
                              Units.pad(String((comms[socket.id.process] ?? "").prefix(16)), 16, left: true),
                              Units.pad(socket.transport.rawValue + (socket.closed ? "*" : ""), 5, left: true),
                              Units.pad(SocketSample.endpoint(socket.localAddress, socket.localPort), width, left: true),
                              Units.pad(SocketSample.endpoint(socket.remoteAddress, socket.remotePort), width, left: true),
                              Units.pad(Units.count(d.rxPackets), 8), Units.pad(Units.bytes(d.rxBytes), 7),
                              Units.pad(Units.count(d.txPackets), 8), Units.pad(Units.bytes(d.txBytes), 7)].joined(separator: " "))
            }
        }
        if anyClosed { lines.append("tcp* udp*: closed during the interval (final traffic shown)") }
        return lines
    }

    func summaryLine(_ interval: TopInterval, loadAverage: String?, what: String) -> String {
        let total = interval.total
        var line = "\(Units.clock(interval.time)) loadavg: \(loadAverage ?? "-")"
        line += "  TCP rx \(Units.count(total.tcpRxPackets))/\(Units.bytes(total.tcpRxBytes))"
        line += " tx \(Units.count(total.tcpTxPackets))/\(Units.bytes(total.tcpTxBytes))"
        line += "  UDP rx \(Units.count(total.udpRxPackets))/\(Units.bytes(total.udpRxBytes))"
        line += " tx \(Units.count(total.udpTxPackets))/\(Units.bytes(total.udpTxBytes))"
        return line + "  (\(what), \(Units.seconds(interval.seconds)))"
    }

    static func row(id: String, comm: String, cgroup: String, traffic t: Traffic) -> String {
        ([Units.pad(id, 7), Units.pad(String(comm.prefix(16)), 16, left: true), Units.pad(String(cgroup.suffix(20)), 20, left: true)]
            + counterColumns(t)).joined(separator: " ")
    }

    static let counterHeader = [
        Units.pad("TCP-RXP", 8), Units.pad("TCP-RX", 7), Units.pad("TCP-TXP", 8), Units.pad("TCP-TX", 7),
        Units.pad("UDP-RXP", 8), Units.pad("UDP-RX", 7), Units.pad("UDP-TXP", 8), Units.pad("UDP-TX", 7),
    ]

    static func counterColumns(_ t: Traffic) -> [String] {
        [
            Units.pad(Units.count(t.tcpRxPackets), 8), Units.pad(Units.bytes(t.tcpRxBytes), 7),
            Units.pad(Units.count(t.tcpTxPackets), 8), Units.pad(Units.bytes(t.tcpTxBytes), 7),
            Units.pad(Units.count(t.udpRxPackets), 8), Units.pad(Units.bytes(t.udpRxBytes), 7),
            Units.pad(Units.count(t.udpTxPackets), 8), Units.pad(Units.bytes(t.udpTxBytes), 7),
        ]
    }

    // MARK: By cgroup

    static let cgroupHeader = ([Units.pad("CGROUP", 24, left: true), Units.pad("KIND", 9, left: true), Units.pad("PROCS", 5)]
        + counterHeader).joined(separator: " ")

    mutating func workload(of id: UInt64) -> (path: String?, workload: Workload) { cgroups.workload(of: id) }

    /// `--by cgroup`: a row per cgroup with the sum of its processes' traffic.
    public mutating func cgroupTable(_ interval: TopInterval, sort: TopInterval.SortKey = .total, loadAverage: String? = nil,
                                     losses: Snapshot.Losses = .init()) -> String {
        let rows = interval.byCgroup(sort: sort)
        var lines: [String] = []
        if summary {
            lines.append(summaryLine(interval, loadAverage: loadAverage, what: "\(rows.count) cgroups, \(interval.processes.count) processes"))
            if !losses.isZero { lines.append("WARNING since start: " + losses.phrases.joined(separator: "; ")) }
            lines.append("")
        }
        lines.append(Self.cgroupHeader)
        for row in rows {
            let (_, workload) = workload(of: row.id)
            lines.append(([Units.pad(String(workload.name.suffix(24)), 24, left: true), Units.pad(workload.kind.rawValue, 9, left: true),
                           Units.pad(String(row.processes), 5)] + Self.counterColumns(row.delta)).joined(separator: " "))
        }
        lines += connectionTables(interval)
        return lines.joined(separator: "\n") + "\n"
    }

    /// One line of `netacct top --by cgroup --json` (without the newline): the records of
    /// `/api/v1/cgroups`, with the interval's counters.
    public mutating func cgroupJSON(_ interval: TopInterval, sort: TopInterval.SortKey = .total) throws -> String {
        var out = Self.beginLine(interval, list: "cgroups")
        for row in interval.byCgroup(sort: sort) {
            let (path, workload) = workload(of: row.id)
            try out.encode(CgroupRecord(cgroup: path, workload: workload, processes: row.processes, counters: Counters(row.delta)))
        }
        out.end("]")
        out.end("}")
        return out.text
    }

    /// A JSON line's opening: the interval's time and length, then its list of rows, opened.
    static func beginLine(_ interval: TopInterval, list: String) -> JSONWriter {
        var out = JSONWriter()
        out.begin("{")
        out.field("time", string: interval.time.formatted(.iso8601.year().month().day()
            .time(includingFractionalSeconds: true).timeZone(separator: .omitted)))
        out.field("interval_s", number: Units.fixed(interval.seconds, decimals: 3))
        out.key(list)
        out.begin("[")
        return out
    }

    // MARK: JSON

    /// One line of `netacct top --json` (without the newline), keys in the documented order.
    public mutating func json(_ interval: TopInterval) throws -> String {
        var out = Self.beginLine(interval, list: "processes")
        for process in interval.processes {
            out.begin("{")
            out.field("pid", number: process.id.pid)
            out.field("comm", string: process.comm)
            out.field("cgroup", string: cgroups.path(of: process.cgroupID))
            out.field("exited", bool: process.exited)
            try out.fields(of: Counters(process.delta))
            if let connections = interval.connections {
                out.key("connections")
                out.begin("[")
                for socket in connections[process.id] ?? [] {
                    // A socket's fields as in the daemon's `sockets` records, with the interval's counters.
                    let d = socket.delta
                    out.begin("{")
                    out.field("protocol", string: socket.transport.rawValue)
                    out.field("family", string: socket.family.rawValue)
                    out.field("laddr", string: socket.localAddress)
                    out.field("lport", number: socket.localPort)
                    out.field("raddr", string: socket.remoteAddress ?? "*")
                    if socket.remoteAddress == nil { out.key("rport"); out.null() } else { out.field("rport", number: socket.remotePort) }
                    for (key, value) in [("tx_packets", d.txPackets), ("tx_bytes", d.txBytes), ("rx_packets", d.rxPackets), ("rx_bytes", d.rxBytes)] {
                        out.field(key, number: value)
                    }
                    out.field("closed", bool: socket.closed)
                    out.end("}")
                }
                out.end("]")
            }
            if threads {
                out.key("threads")
                out.begin("[")
                for thread in process.threads {
                    out.begin("{")
                    out.field("tid", number: thread.id.tid)
                    out.field("comm", string: thread.comm)
                    out.field("exited", bool: thread.exited)
                    try out.fields(of: Counters(thread.delta))
                    out.end("}")
                }
                out.end("]")
            }
            out.end("}")
        }
        out.end("]")
        out.end("}")
        return out.text
    }
}
