import FoundationEssentials
import Glibc

/// One interval of `netacct top`: the processes with traffic in it, filtered and sorted.
public struct TopInterval: Sendable {
    public enum SortKey: String, CaseIterable, Sendable {
        case rx, tx, total
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

    /// Keeps the processes the filter admits that had traffic in the interval, busiest first.
    public init(time: Date, seconds: Double, samples: [ProcessTable.ProcessSample],
                filter: Filter = .init(), sort: SortKey = .total) {
        self.time = time
        self.seconds = seconds
        let key: (Traffic) -> UInt64
        switch sort {
        case .rx: key = \.rxBytes
        case .tx: key = \.txBytes
        case .total: key = { $0.rxBytes &+ $0.txBytes }
        }
        processes = samples
            .filter { !$0.delta.isZero && filter.admits($0) }
            .map { sample in
                var sample = sample
                sample.threads = sample.threads.filter { !$0.delta.isZero }
                return sample
            }
            .sorted { (key($0.delta), $1.id.pid) > (key($1.delta), $0.id.pid) }
    }

    public var total: Traffic { processes.reduce(.zero) { $0 + $1.delta } }
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

    static let header = [
        pad("PID", 7), pad("COMM", 16, left: true), pad("CGROUP", 20, left: true),
        pad("TCP-RXP", 8), pad("TCP-RX", 7), pad("TCP-TXP", 8), pad("TCP-TX", 7),
        pad("UDP-RXP", 8), pad("UDP-RX", 7), pad("UDP-TXP", 8), pad("UDP-TX", 7),
    ].joined(separator: " ")

    public mutating func table(_ interval: TopInterval, loadAverage: String? = nil, losses: Snapshot.Losses = .init()) -> String {
        var lines: [String] = []
        if summary {
            let total = interval.total
            let clock = Self.clock(interval.time)
            var line = "\(clock) loadavg: \(loadAverage ?? "-")"
            line += "  TCP rx \(Self.count(total.tcpRxPackets))/\(Self.bytes(total.tcpRxBytes))"
            line += " tx \(Self.count(total.tcpTxPackets))/\(Self.bytes(total.tcpTxBytes))"
            line += "  UDP rx \(Self.count(total.udpRxPackets))/\(Self.bytes(total.udpRxBytes))"
            line += " tx \(Self.count(total.udpTxPackets))/\(Self.bytes(total.udpTxBytes))"
            line += "  (\(interval.processes.count) processes, \(Self.seconds(interval.seconds)))"
            lines.append(line)
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
        return lines.joined(separator: "\n") + "\n"
    }

    static func row(id: String, comm: String, cgroup: String, traffic t: Traffic) -> String {
        [
            pad(id, 7), pad(String(comm.prefix(16)), 16, left: true), pad(String(cgroup.suffix(20)), 20, left: true),
            pad(count(t.tcpRxPackets), 8), pad(bytes(t.tcpRxBytes), 7),
            pad(count(t.tcpTxPackets), 8), pad(bytes(t.tcpTxBytes), 7),
            pad(count(t.udpRxPackets), 8), pad(bytes(t.udpRxBytes), 7),
            pad(count(t.udpTxPackets), 8), pad(bytes(t.udpTxBytes), 7),
        ].joined(separator: " ")
    }

    static func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
        let padding = String(repeating: " ", count: max(0, width - text.count))
        return left ? text + padding : padding + text
    }

    /// Bytes in binary units: 512B, 1.5K, 20M, 3.1G.
    public static func bytes(_ value: UInt64) -> String {
        scaled(value, base: 1024, suffixes: ["B", "K", "M", "G", "T", "P"])
    }

    /// Counts in decimal units: 999, 1.2k, 35M.
    public static func count(_ value: UInt64) -> String {
        scaled(value, base: 1000, suffixes: ["", "k", "M", "G", "T", "P"])
    }

    static func scaled(_ value: UInt64, base: Double, suffixes: [String]) -> String {
        var amount = Double(value)
        var index = 0
        while amount >= base && index < suffixes.count - 1 {
            amount /= base
            index += 1
        }
        if index == 0 { return "\(value)\(suffixes[0])" }
        let text = fixed(amount, decimals: amount < 10 ? 1 : 0)
        return text + suffixes[index]
    }

    static func seconds(_ value: Double) -> String { fixed(value, decimals: 2) + "s" }

    /// `value` with `decimals` digits after the point, exactly as printf's %.Nf prints it.
    static func fixed(_ value: Double, decimals: Int) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let written = withVaList([value]) { vsnprintf(&buffer, buffer.count, "%.\(decimals)f", $0) }
        guard written > 0, Int(written) < buffer.count else { return "\(value)" }
        return String(decoding: buffer.prefix(Int(written)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The local wall-clock time of day, HH:MM:SS (as top's header shows it).
    static func clock(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var local = tm()
        guard localtime_r(&seconds, &local) != nil else { return "--:--:--" }
        func twoDigits(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(twoDigits(local.tm_hour)):\(twoDigits(local.tm_min)):\(twoDigits(local.tm_sec))"
    }

    // MARK: JSON

    /// One line of `netacct top --json` (without the newline), keys in the documented order.
    public mutating func json(_ interval: TopInterval) -> String {
        var out = JSONWriter()
        out.begin("{")
        let time = interval.time.formatted(.iso8601.year().month().day()
            .time(includingFractionalSeconds: true).timeZone(separator: .omitted))
        out.field("time", string: time)
        out.field("interval_s", number: TopRenderer.fixed(interval.seconds, decimals: 3))
        out.key("processes")
        out.begin("[")
        for process in interval.processes {
            out.begin("{")
            out.field("pid", number: String(process.id.pid))
            out.field("comm", string: process.comm)
            if let path = cgroups.path(of: process.cgroupID) {
                out.field("cgroup", string: path)
            } else {
                out.field("cgroup", number: "null")
            }
            out.field("exited", number: process.exited ? "true" : "false")
            out.counters(process.delta)
            if threads {
                out.key("threads")
                out.begin("[")
                for thread in process.threads {
                    out.begin("{")
                    out.field("tid", number: String(thread.id.tid))
                    out.field("comm", string: thread.comm)
                    out.field("exited", number: thread.exited ? "true" : "false")
                    out.counters(thread.delta)
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

/// Writes JSON text in the order it is told (the documented key order of `--json`).
struct JSONWriter {
    private(set) var text = ""
    private var needsComma = false

    /// Opens an object ("{") or an array ("["), as a value of its container.
    mutating func begin(_ bracket: String) {
        if needsComma { text += "," }
        text += bracket
        needsComma = false
    }

    mutating func end(_ bracket: String) {
        text += bracket
        needsComma = true
    }

    mutating func key(_ name: String) {
        if needsComma { text += "," }
        text += "\"\(name)\":"
        needsComma = false
    }

    /// A field whose value is already JSON (a number, true, false or null).
    mutating func field(_ name: String, number: String) {
        key(name)
        text += number
        needsComma = true
    }

    mutating func field(_ name: String, string: String) {
        key(name)
        text += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: text.unicodeScalars.append(scalar)
            }
        }
        text += "\""
        needsComma = true
    }

    mutating func counters(_ t: Traffic) {
        field("tcp_tx_packets", number: String(t.tcpTxPackets))
        field("tcp_tx_bytes", number: String(t.tcpTxBytes))
        field("tcp_rx_packets", number: String(t.tcpRxPackets))
        field("tcp_rx_bytes", number: String(t.tcpRxBytes))
        field("udp_tx_packets", number: String(t.udpTxPackets))
        field("udp_tx_bytes", number: String(t.udpTxBytes))
        field("udp_rx_packets", number: String(t.udpRxPackets))
        field("udp_rx_bytes", number: String(t.udpRxBytes))
    }
}
