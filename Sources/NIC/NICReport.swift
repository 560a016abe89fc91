import FoundationEssentials
import NetacctKit

/// One interval of `netacct nic`: per interface, per direction, the counts of each queue in
/// the interval and their total.
public struct NICInterval: Sendable {
    public struct Direction: Sendable, Equatable {
        public var queues: [QueueCounters]
        public init(queues: [QueueCounters]) { self.queues = queues }
        public var total: QueueCounters { queues.reduce(QueueCounters(), +) }
    }

    public struct Interface: Sendable {
        public var name: String
        public var ifindex: UInt32
        public var tx: Direction
        public var rx: Direction
        /// Its namespace, when what is shown names it (`-A`, `--netns`).
        public var namespace: NamespaceLabel?
        public init(name: String, ifindex: UInt32, tx: Direction, rx: Direction, namespace: NamespaceLabel? = nil) {
            self.name = name
            self.ifindex = ifindex
            self.tx = tx
            self.rx = rx
            self.namespace = namespace
        }
    }

    public var time: Date
    public var seconds: Double
    public var interfaces: [Interface]
}

/// The table (as the seed's nic_throughput prints it: TX then RX, a row per queue and a
/// Total, average size, bytes/s and packets/s) and the JSON line of an interval.
public enum NICRenderer {
    public static func table(_ interval: NICInterval) -> String {
        var lines = [Units.clock(interval.time) + "  (\(Units.seconds(interval.seconds)))"]
        for interface in interval.interfaces {
            lines.append("\(interface.name) (ifindex \(interface.ifindex))" + (interface.namespace.map { "  netns \(Self.describe($0))" } ?? ""))
            for (title, direction) in [("TX", interface.tx), ("RX", interface.rx)] {
                lines.append(title)
                lines.append(row("QueueID", "avg_size", "BPS", "PPS", "segments/s"))
                for (queue, counters) in direction.queues.enumerated() {
                    lines.append(row(String(queue), counters, seconds: interval.seconds))
                }
                lines.append(row("Total", direction.total, seconds: interval.seconds))
                lines.append("")
            }
        }
        lines.append(String(repeating: "-", count: 60))
        return lines.joined(separator: "\n") + "\n"
    }

    /// `ns1 (4026532290, container 3f2a…)`: the name shown, then the inode and what runs there.
    static func describe(_ label: NamespaceLabel) -> String {
        var details: [String] = []
        if label.display != String(label.inode) { details.append(String(label.inode)) }
        if let workload = label.workload, workload.name != label.display { details.append("\(workload.kind.rawValue) \(workload.name)") }
        return details.isEmpty ? label.display : "\(label.display) (\(details.joined(separator: ", ")))"
    }

    static func row(_ queue: String, _ counters: QueueCounters, seconds: Double) -> String {
        let average = counters.packets == 0 ? 0 : Double(counters.bytes) / Double(counters.packets)
        let rate = { (value: UInt64) in Units.fixed(Double(value) / max(seconds, 1e-9), decimals: 1) }
        return row(queue, Units.fixed(average, decimals: 1), rate(counters.bytes), rate(counters.packets), rate(counters.segments))
    }

    static func row(_ columns: String...) -> String {
        var line = " " + columns.map { Units.pad($0, 10, left: true) }.joined(separator: " ")
        while line.last == " " { line.removeLast() }
        return line
    }

    /// One line of `netacct nic --json` (without the newline): counts in the interval.
    public static func json(_ interval: NICInterval) -> String {
        var out = JSONWriter()
        out.begin("{")
        out.field("time", string: interval.time.formatted(.iso8601.year().month().day()
            .time(includingFractionalSeconds: true).timeZone(separator: .omitted)))
        out.field("interval_s", number: Units.fixed(interval.seconds, decimals: 3))
        out.key("interfaces")
        out.begin("[")
        for interface in interval.interfaces {
            write(interface, into: &out)
        }
        out.end("]")
        out.end("}")
        return out.text
    }

    /// One interface's object: `{"name","ifindex","tx":{"queues":[…],"total":{…}},"rx":{…}}`
    /// (`--json`, per interval; the daemon's `nic` verb, cumulative).
    public static func write(_ interface: NICInterval.Interface, into out: inout JSONWriter) {
        out.begin("{")
        out.field("name", string: interface.name)
        out.field("ifindex", number: String(interface.ifindex))
        interface.namespace?.write(into: &out)
        for (key, direction) in [("tx", interface.tx), ("rx", interface.rx)] {
            out.key(key)
            out.begin("{")
            out.key("queues")
            out.begin("[")
            for (queue, counters) in direction.queues.enumerated() {
                out.begin("{")
                out.field("queue", number: String(queue))
                write(counters, into: &out)
                out.end("}")
            }
            out.end("]")
            out.key("total")
            out.begin("{")
            write(direction.total, into: &out)
            out.end("}")
            out.end("}")
        }
        out.end("}")
    }

    public static func write(_ counters: QueueCounters, into out: inout JSONWriter) {
        out.field("packets", number: String(counters.packets))
        out.field("bytes", number: String(counters.bytes))
        out.field("segments", number: String(counters.segments))
    }
}
