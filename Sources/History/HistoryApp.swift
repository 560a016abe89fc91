import Glibc
import NetacctKit

/// `netacct history`: what the daemon recorded, read from its file (the daemon need not run),
/// as a table or JSON: for a time range (or the interval at a moment), per process or cgroup,
/// in total or interval by interval.
public struct HistoryApp {
    public struct Configuration: Sendable {
        public var path = HistoryStore.defaultPath
        public var from: Int64 = 0
        public var until: Int64 = 0
        /// `--at`: the interval that holds `from`, which must exist.
        public var at = false
        public var grouping = HistoryQuery.Grouping.process
        public var pid: Int32?
        public var json = false
        /// A report per interval instead of one for the whole range.
        public var perInterval = false
        public init() {}

        /// The range of `--at`, `--since` or `--from`/`--until` (the last hour without any),
        /// as of `now`: the command line's and the HTTP API's parameters alike (`prefix`: "--"
        /// for the options' names in messages).
        public mutating func range(at: String?, since: String?, from: String?, until: String?, now: Int64 = HistoryTime.now(),
                                   prefix: String = "") throws {
            let (at_, since_, from_, until_) = ("\(prefix)at", "\(prefix)since", "\(prefix)from", "\(prefix)until")
            guard [at, since, from].compactMap({ $0 }).count <= 1 else { throw NetacctError("Give one of \(at_), \(since_) and \(from_).") }
            guard until == nil || from != nil else { throw NetacctError("\(until_) goes with \(from_).") }
            self.until = try until.map { try HistoryTime.moment($0, now: now) } ?? now
            self.at = at != nil
            if let at {
                self.from = try HistoryTime.moment(at, now: now)
            } else if let from {
                self.from = try HistoryTime.moment(from, now: now)
            } else {
                self.from = now - (try HistoryTime.duration(since ?? "1h"))
            }
            if !self.at && self.from >= self.until { throw NetacctError("\(from_) must come before \(until_).") }
        }
    }

    let configuration: Configuration

    public init(_ configuration: Configuration) { self.configuration = configuration }

    public func run() throws {
        let signals = StopSignals()
        let reports = try Self.reports(configuration)
        var out = TextBuffer(capacity: 1 << 14)
        if configuration.json {
            out.append(bytes: Self.json(reports))
        } else {
            for report in reports { Self.writeTable(report, into: &out) }
        }
        _ = try signals.write(out.bytes, to: 1)
    }

    /// What `configuration` asks of the file: one report, or one per interval; an error that
    /// says what the file covers when nothing was recorded then.
    public static func reports(_ configuration: Configuration) throws -> [HistoryReport] {
        let store = try HistoryStore(path: configuration.path, mode: .readOnly)
        // One snapshot for every read: a merge the daemon commits meanwhile is seen by none.
        try store.database.execute("BEGIN")
        defer { try? store.database.execute("COMMIT") }
        var query = HistoryQuery(from: configuration.from, until: configuration.at ? configuration.from + 1 : configuration.until,
                                 grouping: configuration.grouping, pid: configuration.pid)
        let whole = try store.report(query)
        guard whole.intervals > 0 else {
            let span = try store.span()
            let what = configuration.at ? "at \(HistoryTime.describe(query.from, withDate: true))"
                : "from \(HistoryTime.describe(query.from, withDate: true)) to \(HistoryTime.describe(query.until, withDate: true))"
            let covered = span.map { "it covers \(HistoryTime.describe($0.start, withDate: true)) to \(HistoryTime.describe($0.end, withDate: true)) (\($0.intervals) intervals)" }
                ?? "it is empty"
            throw NetacctError("Nothing recorded \(what) in \(configuration.path): \(covered).")
        }
        guard configuration.perInterval else { return [whole] }
        return try store.intervals(overlapping: query.from, query.until).map { interval in
            query.from = interval.start
            query.until = interval.end
            var report = try store.report(query)
            report.span = (interval.start, interval.end)
            return report
        }
    }

    /// The reports as JSON, an object per line (the command's --json, the HTTP API's body).
    public static func json(_ reports: [HistoryReport]) -> [UInt8] {
        var out = TextBuffer(capacity: 1 << 14)
        for report in reports { writeJSON(report, into: &out) }
        return out.bytes
    }

    static func writeJSON(_ report: HistoryReport, into out: inout TextBuffer) {
        var json = JSONWriter()
        json.begin("{")
        json.field("from_ns", number: report.span?.start ?? report.query.from)
        json.field("until_ns", number: report.span?.end ?? report.query.until)
        json.field("from", string: report.span.map { HistoryTime.describe($0.start, withDate: true) })
        json.field("until", string: report.span.map { HistoryTime.describe($0.end, withDate: true) })
        json.field("intervals", number: report.intervals)
        json.field("resolution_s", number: report.resolution)
        json.field("finest_resolution_s", number: report.finest)
        json.field("dropped_for_size", number: report.droppedForSize)
        json.field("by", string: report.query.grouping.rawValue)
        json.key("rows")
        json.begin("[")
        for row in report.seriesRows {
            json.begin("{")
            json.field("source", string: row.source)
            json.field("labels", string: row.labels)
            for (name, value) in row.values { json.field(name, number: value) }
            json.end("}")
        }
        for row in report.rows {
            json.begin("{")
            if let pid = row.pid { json.field("pid", number: pid) }
            if let start = row.startNs { json.field("start_ns", number: start) }
            if let comm = row.comm { json.field("comm", string: comm) }
            json.field("cgroup_id", number: row.cgroup)
            json.field("cgroup", string: row.cgroupPath)
            if row.pid != nil { json.field("exited", bool: row.exited) }
            row.counters.write(into: &json)
            json.end("}")
        }
        json.end("]")
        json.end("}")
        json.newline()
        out.append(bytes: json.bytes)
    }

    static func writeTable(_ report: HistoryReport, into out: inout TextBuffer) {
        let span = report.span ?? (report.query.from, report.query.until)
        let until = HistoryTime.describe(span.end, withDate: !HistoryTime.sameDay(span.start, span.end))
        let resolution = report.finest == report.resolution ? "\(report.resolution) s" : "\(report.finest) to \(report.resolution) s"
        out.append("\(HistoryTime.describe(span.start, withDate: true)) to \(until): \(report.intervals) interval\(report.intervals == 1 ? "" : "s") of \(resolution), by \(report.query.grouping.rawValue)\n")
        if report.droppedForSize > 0 {
            out.append("(\(report.droppedForSize) of the oldest intervals were dropped to keep the file under --history-max-size)\n")
        }
        out.append("\n")
        switch report.query.grouping {
        case .interface:
            out.append(Units.pad("INTERFACE, QUEUE, DIRECTION", 60, left: true) + " " + Units.pad("FRAMES", 9) + " " + Units.pad("BYTES", 9) + " " + Units.pad("SEGMENTS", 9) + "\n")
            for row in report.seriesRows {
                func value(_ name: String) -> UInt64 { row.values.first { $0.name == name }?.value ?? 0 }
                out.append(Units.pad(row.labels, 60, left: true) + " " + Units.pad(Units.count(value("frames")), 9) + " "
                           + Units.pad(Units.bytes(value("bytes")), 9) + " " + Units.pad(Units.count(value("segments")), 9) + "\n")
            }
            if report.seriesRows.isEmpty { out.append("(no interface counted: the daemon records them with --nic)\n") }
            out.append("\n")
            return
        case .series:
            out.append(Units.pad("SOURCE", 6, left: true) + " " + Units.pad("LABELS", 60, left: true) + " " + Units.pad("NAME", 24, left: true) + " " + Units.pad("VALUE", 12) + "\n")
            for row in report.seriesRows {
                for (name, value) in row.values {
                    out.append(Units.pad(row.source, 6, left: true) + " " + Units.pad(row.labels, 60, left: true) + " " + Units.pad(name, 24, left: true) + " " + Units.pad("\(value)", 12) + "\n")
                }
            }
            if report.seriesRows.isEmpty { out.append("(no other collector's counters: the daemon records them with --wire, --tcp)\n") }
            out.append("\n")
            return
        case .process, .cgroup:
            break
        }
        let counters = ["TCP-RXP", "TCP-RX", "TCP-TXP", "TCP-TX", "UDP-RXP", "UDP-RX", "UDP-TXP", "UDP-TX"]
        let head = report.query.grouping == .process ? Units.pad("PID", 7) + " " + Units.pad("COMM", 16, left: true) + " " + Units.pad("CGROUP", 20, left: true)
            : Units.pad("CGROUP", 40, left: true)
        out.append(head + counters.map { " " + Units.pad($0, 8) }.joined() + "\n")
        for row in report.rows {
            let cgroup = row.cgroupPath ?? "cgroup \(row.cgroup)"
            var line = report.query.grouping == .process
                ? Units.pad("\(row.pid ?? 0)", 7) + " " + Units.pad((row.comm ?? "") + (row.exited ? "*" : ""), 16, left: true) + " "
                    + Units.pad(String(cgroup.suffix(20)), 20, left: true)
                : Units.pad(String(cgroup.suffix(40)), 40, left: true)
            let c = row.counters
            for (value, isBytes) in [(c.tcpRxPackets, false), (c.tcpRxBytes, true), (c.tcpTxPackets, false), (c.tcpTxBytes, true),
                                     (c.udpRxPackets, false), (c.udpRxBytes, true), (c.udpTxPackets, false), (c.udpTxBytes, true)] {
                line += " " + Units.pad(isBytes ? Units.bytes(value) : Units.count(value), 8)
            }
            out.append(line + "\n")
        }
        if report.rows.isEmpty { out.append("(no process had traffic)\n") }
        if report.rows.contains(where: \.exited) { out.append("* exited\n") }
        out.append("\n")
    }
}
