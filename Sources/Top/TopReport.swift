import FoundationEssentials
import Glibc
import Accounting
import NetacctKit

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
        Units.pad("PID", 7), Units.pad("COMM", 16, left: true), Units.pad("CGROUP", 20, left: true),
        Units.pad("TCP-RXP", 8), Units.pad("TCP-RX", 7), Units.pad("TCP-TXP", 8), Units.pad("TCP-TX", 7),
        Units.pad("UDP-RXP", 8), Units.pad("UDP-RX", 7), Units.pad("UDP-TXP", 8), Units.pad("UDP-TX", 7),
    ].joined(separator: " ")

    public mutating func table(_ interval: TopInterval, loadAverage: String? = nil, losses: Snapshot.Losses = .init()) -> String {
        var lines: [String] = []
        if summary {
            let total = interval.total
            let clock = Units.clock(interval.time)
            var line = "\(clock) loadavg: \(loadAverage ?? "-")"
            line += "  TCP rx \(Units.count(total.tcpRxPackets))/\(Units.bytes(total.tcpRxBytes))"
            line += " tx \(Units.count(total.tcpTxPackets))/\(Units.bytes(total.tcpTxBytes))"
            line += "  UDP rx \(Units.count(total.udpRxPackets))/\(Units.bytes(total.udpRxBytes))"
            line += " tx \(Units.count(total.udpTxPackets))/\(Units.bytes(total.udpTxBytes))"
            line += "  (\(interval.processes.count) processes, \(Units.seconds(interval.seconds)))"
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
            Units.pad(id, 7), Units.pad(String(comm.prefix(16)), 16, left: true), Units.pad(String(cgroup.suffix(20)), 20, left: true),
            Units.pad(Units.count(t.tcpRxPackets), 8), Units.pad(Units.bytes(t.tcpRxBytes), 7),
            Units.pad(Units.count(t.tcpTxPackets), 8), Units.pad(Units.bytes(t.tcpTxBytes), 7),
            Units.pad(Units.count(t.udpRxPackets), 8), Units.pad(Units.bytes(t.udpRxBytes), 7),
            Units.pad(Units.count(t.udpTxPackets), 8), Units.pad(Units.bytes(t.udpTxBytes), 7),
        ].joined(separator: " ")
    }

    // MARK: JSON

    /// One line of `netacct top --json` (without the newline), keys in the documented order.
    public mutating func json(_ interval: TopInterval) -> String {
        var out = JSONWriter()
        out.begin("{")
        let time = interval.time.formatted(.iso8601.year().month().day()
            .time(includingFractionalSeconds: true).timeZone(separator: .omitted))
        out.field("time", string: time)
        out.field("interval_s", number: Units.fixed(interval.seconds, decimals: 3))
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
