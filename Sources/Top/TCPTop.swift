import FoundationEssentials
import Glibc
import Logging
import SystemPackage
import Accounting
import DaemonProtocol
import NetacctKit

/// Where `top --tcp` reads: a running daemon that follows TCP health, else its own programs.
typealias TCPHealthSource = CollectorSource<TCPHealthEngine>

extension CollectorSource<TCPHealthEngine> {
    init(_ configuration: TopApp.Configuration, logger: Logger) throws {
        try self.init(configuration, reading: TCPHealthReply.self, what: "TCP health", option: "--tcp", logger: logger) {
            try TCPHealthEngine(logger: logger)
        }
    }

    func sample() throws -> TCPHealthSample {
        switch self {
        case .local(let engine): try engine.sample()
        case .daemon(let connection): TCPHealthSample(try connection.request(TCPHealthReply.self))
        }
    }
}

/// One interval: what each process and connection counted in it.
struct TCPInterval {
    var processes: [ProcessID: TCPHealthCounters] = [:]
    var owners: [ProcessID: TCPOwner]
    /// The connections of the interval's end (and those that closed in it), their counters the interval's.
    var connections: [TCPConnection] = []
    var unattributed: TCPHealthCounters

    init(_ current: TCPHealthSample, since previous: TCPHealthSample) {
        owners = current.owners
        for (id, counters) in current.processes {
            let delta = counters.since(previous.processes[id] ?? TCPHealthCounters())
            if !delta.isZero { processes[id] = delta }
        }
        var before: [UInt64: TCPHealthCounters] = [:]
        for connection in previous.connections where !connection.closed { before[connection.cookie] = connection.counters }
        connections = current.connections.map { connection in
            var c = connection
            c.counters = connection.counters.since(before[connection.cookie] ?? TCPHealthCounters())
            return c
        }
        unattributed = current.unattributed.since(previous.unattributed)
    }
}

/// What `top --tcp`'s rows are sorted by (the interactive screen's keys): segments sent again,
/// the RTT's 99th percentile, resets, failed connects and timeouts, zero windows.
public enum TCPSortKey: String, CaseIterable, Sendable {
    case retransmissions, rtt, errors, windows

    var key: Character {
        switch self {
        case .retransmissions: "x"
        case .rtt: "l"
        case .errors: "e"
        case .windows: "w"
        }
    }
}

/// The table and the JSON lines of `top --tcp`.
struct TCPRenderer: IntervalRenderer {
    var configuration: TopApp.Configuration
    var cgroups: CgroupNames

    static let sortKeys: [(key: Character, name: String, set: @Sendable (inout TopApp.Configuration) -> Void)] =
        TCPSortKey.allCases.map { sort in (sort.key, sort.rawValue, { $0.tcpSort = sort }) }

    static func sortName(_ configuration: TopApp.Configuration) -> String { configuration.tcpSort.rawValue }

    static let hasConnections = true

    func interval(_ current: TCPHealthSample, since previous: TCPHealthSample) -> TCPInterval { TCPInterval(current, since: previous) }

    struct Line {
        var pid: Int32?
        var name: String
        var exited: Bool
        var counters: TCPHealthCounters
    }

    mutating func lines(_ interval: TCPInterval, cgroups filter: Set<UInt64>?) -> [Line] {
        var rows = interval.processes.map { (id: $0.key, owner: interval.owners[$0.key], counters: $0.value) }
        if !configuration.pids.isEmpty { rows = rows.filter { configuration.pids.contains($0.id.pid) } }
        if let filter { rows = rows.filter { $0.owner.map { filter.contains($0.cgroupID) } ?? false } }
        var lines: [Line]
        switch configuration.grouping {
        case .process:
            lines = rows.map { Line(pid: $0.id.pid, name: $0.owner?.comm ?? "?", exited: $0.owner?.exited ?? false, counters: $0.counters) }
        case .cgroup:
            var byCgroup: [UInt64: TCPHealthCounters] = [:]
            for row in rows { byCgroup[row.owner?.cgroupID ?? 0, default: TCPHealthCounters()] += row.counters }
            lines = byCgroup.map { id, counters in
                Line(pid: nil, name: id == 0 ? "?" : cgroups.path(of: id) ?? "cgroup \(id)", exited: false, counters: counters)
            }
        }
        // The most troubled first by the sort asked for, then the others.
        func key(_ line: Line) -> (Double, UInt64, UInt64, Int32) {
            let c = line.counters
            let troubles = c.resets &+ c.failedConnects &+ c.timeouts
            let first: Double = switch configuration.tcpSort {
            case .retransmissions: Double(c.retransmitted)
            case .rtt: c.rtt.quantile(0.99) ?? 0
            case .errors: Double(troubles)
            case .windows: Double(c.zeroWindowsReceived &+ c.zeroWindowsSent)
            }
            return (first, c.retransmitted, troubles, -(line.pid ?? 0))
        }
        return lines.sorted { key($0) > key($1) }
    }

    static let header = "    PID COMM              RETRANS     RTO    FAST     TLP SYN/ACK  RTT p50  RTT p99 RST-OUT  RST-IN  FAILED  ZWIN-IN ZWIN-OUT"
    static let cgroupHeader = "RETRANS     RTO    FAST     TLP SYN/ACK  RTT p50  RTT p99 RST-OUT  RST-IN  FAILED  ZWIN-IN ZWIN-OUT CGROUP"
    static let connectionHeader = "          LOCAL                  REMOTE                 STATE          RTT  RTTVAR RETRANS  RST-OUT  RST-IN"

    /// A time in microseconds as a person reads it (us, ms or s), "-" with none.
    static func duration(_ microseconds: Double?) -> String {
        guard let us = microseconds else { return "-" }
        if us < 1000 { return "\(Int(us.rounded()))us" }
        if us < 1_000_000 { return Units.fixed(us / 1000, decimals: us < 10_000 ? 2 : 1) + "ms" }
        return Units.fixed(us / 1_000_000, decimals: 2) + "s"
    }

    mutating func table(_ interval: TCPInterval, time: Date, seconds: Double, cgroups filter: Set<UInt64>?) -> String {
        var text = "netacct top --tcp   \(Units.clock(time))   interval \(Units.seconds(seconds))   TCP health per \(configuration.grouping == .process ? "process" : "cgroup")\n"
        if configuration.summary {
            let u = interval.unattributed
            if !u.isZero {
                text += "unattributed (no socket owner): \(u.retransmitted) segments sent again, \(u.resetsSent) resets sent, \(u.resetsReceived) received\n"
            }
        }
        text += "\n" + (configuration.grouping == .process ? Self.header : Self.cgroupHeader) + "\n"
        func numbers(_ c: TCPHealthCounters) -> String {
            let r = c.retransmittedSegments
            return [Units.pad(Units.count(r.total), 7), Units.pad(Units.count(r.timeout), 7), Units.pad(Units.count(r.fast), 7),
                    Units.pad(Units.count(r.probe), 7), Units.pad(Units.count(r.syn &+ r.synack), 7),
                    Units.pad(Self.duration(c.rtt.quantile(0.5)), 8), Units.pad(Self.duration(c.rtt.quantile(0.99)), 8),
                    Units.pad(Units.count(c.resetsSent), 7), Units.pad(Units.count(c.resetsReceived), 7),
                    Units.pad(Units.count(c.failedConnects), 7), Units.pad(Units.count(c.zeroWindowsReceived), 8),
                    Units.pad(Units.count(c.zeroWindowsSent), 8)].joined(separator: " ")
        }
        for line in lines(interval, cgroups: filter) {
            if let pid = line.pid {
                let name = String((line.exited ? "*" + line.name : line.name).prefix(16))
                text += Units.pad("\(pid)", 7) + " " + Units.pad(name, 16, left: true) + " " + numbers(line.counters) + "\n"
                if configuration.connections {
                    let mine = interval.connections.filter { $0.owner.pid == pid }.sorted { $0.localPort < $1.localPort }
                    if !mine.isEmpty { text += Self.connectionHeader + "\n" }
                    for c in mine {
                        text += "          " + Units.pad(SocketSample.endpoint(c.localAddress, c.localPort), 22, left: true) + " "
                            + Units.pad(SocketSample.endpoint(c.remoteAddress, c.remotePort), 22, left: true) + " "
                            + Units.pad(c.closed ? "closed" : TCPStates.name(c.state) ?? "?", 11, left: true) + " "
                            + Units.pad(Self.duration(c.srttMicroseconds == 0 ? nil : Double(c.srttMicroseconds)), 8) + " "
                            + Units.pad(Self.duration(c.srttMicroseconds == 0 ? nil : Double(c.rttvarMicroseconds)), 7) + " "
                            + Units.pad(Units.count(c.counters.retransmitted), 7) + " "
                            + Units.pad(Units.count(c.counters.resetsSent), 8) + " " + Units.pad(Units.count(c.counters.resetsReceived), 7) + "\n"
                    }
                }
            } else {
                text += numbers(line.counters) + " " + line.name + "\n"
            }
        }
        return text
    }

    /// One line of `top --tcp --json` (without the newline).
    mutating func json(_ interval: TCPInterval, time: Date, seconds: Double, cgroups filter: Set<UInt64>?) -> String {
        var out = JSONWriter()
        out.begin("{")
        out.field("time", string: time.formatted(.iso8601.year().month().day()
            .time(includingFractionalSeconds: true).timeZone(separator: .omitted)))
        out.field("interval_s", number: Units.fixed(seconds, decimals: 3))
        out.key(configuration.grouping == .process ? "processes" : "cgroups")
        out.begin("[")
        for line in lines(interval, cgroups: filter) {
            out.begin("{")
            out.rowIdentity(pid: line.pid, name: line.name, exited: line.exited)
            Self.counters(&out, line.counters)
            if configuration.connections, let pid = line.pid {
                out.key("connections")
                out.begin("[")
                for c in interval.connections where c.owner.pid == pid {
                    out.begin("{")
                    out.field("cookie", number: c.cookie)
                    out.field("family", string: c.family.rawValue)
                    out.field("local", string: SocketSample.endpoint(c.localAddress, c.localPort))
                    out.field("remote", string: SocketSample.endpoint(c.remoteAddress, c.remotePort))
                    out.field("state", string: TCPStates.name(c.state))
                    out.field("closed", bool: c.closed)
                    out.key("srtt_us")
                    if c.srttMicroseconds == 0 { out.null() } else { out.number(c.srttMicroseconds) }
                    out.key("rttvar_us")
                    if c.srttMicroseconds == 0 { out.null() } else { out.number(c.rttvarMicroseconds) }
                    out.field("kernel_total_retrans", number: c.kernelRetransmits)
                    Self.counters(&out, c.counters)
                    out.end("}")
                }
                out.end("]")
            }
            out.end("}")
        }
        out.end("]")
        out.key("unattributed")
        out.begin("{")
        Self.counters(&out, interval.unattributed)
        out.end("}")
        out.end("}")
        return out.text
    }

    /// A counter set's fields: retransmissions by cause, resets, failures, windows, the kernel's
    /// out-of-order and DSACK counts, and the RTT distribution (log2 buckets by upper bound).
    static func counters(_ out: inout JSONWriter, _ c: TCPHealthCounters) {
        for (key, byCause) in [("retransmitted_segments", c.retransmittedSegments), ("retransmitted_bytes", c.retransmittedBytes)] {
            out.key(key)
            out.begin("{")
            for cause in RetransmitCause.allCases { out.field(cause.rawValue, number: byCause[cause]) }
            out.field("total", number: byCause.total)
            out.end("}")
        }
        out.field("resets_sent", number: c.resetsSent)
        out.field("resets_received", number: c.resetsReceived)
        out.field("failed_connects", number: c.failedConnects)
        out.field("timeouts", number: c.timeouts)
        out.field("zero_windows_received", number: c.zeroWindowsReceived)
        out.field("zero_windows_sent", number: c.zeroWindowsSent)
        out.field("window_probes", number: c.windowProbes)
        out.field("out_of_order", number: c.outOfOrder)
        out.field("dsacks", number: c.dsacks)
        out.key("rtt")
        out.begin("{")
        out.field("samples", number: c.rtt.count)
        for (name, q) in [("p50_us", 0.5), ("p90_us", 0.9), ("p99_us", 0.99)] {
            out.key(name)
            if let v = c.rtt.quantile(q) { out.raw(Units.fixed(v, decimals: 0)) } else { out.null() }
        }
        // Only the buckets with samples: {"below_us": 2^(k+1), "count": n}.
        out.key("buckets")
        out.begin("[")
        for (index, n) in c.rtt.buckets.enumerated() where n > 0 {
            out.begin("{")
            out.key("below_us")
            if index == RTTHistogram.bucketCount - 1 { out.null() } else { out.number(UInt64(1) << UInt64(index + 1)) }
            out.field("count", number: n)
            out.end("}")
        }
        out.end("]")
        out.end("}")
    }
}

extension TCPHealthSample {
    /// A daemon's reply as a sample.
    init(_ reply: TCPHealthReply) {
        self.init()
        for p in reply.processes {
            let id = ProcessID(pid: p.pid, startNanoseconds: p.startNs)
            processes[id] = p.counts
            owners[id] = TCPOwner(id: id, comm: p.comm, cgroupID: p.cgroupId, exited: p.exited)
        }
        connections = reply.connections.map { TCPConnection($0) }
        unattributed = reply.unattributed
        losses = Losses(storageFull: reply.losses.storageFull, closedLost: reply.losses.closedLost)
    }
}

extension TCPConnection {
    init(_ r: TCPConnectionRecord) {
        self.init(cookie: r.cookie, owner: ProcessID(pid: r.pid, startNanoseconds: r.startNs), family: r.family == "ipv6" ? .ipv6 : .ipv4,
                  state: r.state, localAddress: r.localAddress, localPort: r.localPort, remoteAddress: r.remoteAddress, remotePort: r.remotePort,
                  srttMicroseconds: r.srttUs, rttvarMicroseconds: r.rttvarUs, kernelRetransmits: r.kernelTotalRetrans, counters: r.counts,
                  closed: r.closed)
    }
}
