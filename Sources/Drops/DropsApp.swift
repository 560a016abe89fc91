import CNetacct
import FoundationEssentials
import Glibc
import Logging
import NetacctKit
import SystemPackage

/// `netacct drops`: a line per dropped packet as it happens, or with `summary` the counts per
/// reason, protocol and owner every interval.
public struct DropsApp {
    public struct Configuration: Sendable {
        public var filter = DropFilter()
        public var summary: Double?
        public var json = false
        public var count: Int?
        public init() {}
    }

    public let configuration: Configuration
    let logger: Logger

    public init(_ configuration: Configuration, logger: Logger = Logger(label: "netacct.drops")) {
        self.configuration = configuration
        self.logger = logger
    }

    public func run(output: FileDescriptor = .standardOutput, errors: FileDescriptor = .standardError) throws {
        let signals = StopSignals()
        let engine = try DropsEngine(filter: configuration.filter, summary: configuration.summary != nil, logger: logger)
        var owners = SocketOwners()
        func say(_ line: String) { _ = try? errors.writeAll(Array(line.utf8)) }
        /// False once the output is closed, or a stop signal came while it was not being read.
        func write(_ bytes: [UInt8]) -> Bool {
            (try? signals.write(bytes, to: output.rawValue)) == .written
        }
        func write(_ text: String) -> Bool { write(Array(text.utf8)) }
        if let seconds = configuration.summary {
            try summarize(engine, every: seconds, owners: &owners, signals: signals, write: write)
            return
        }
        if !configuration.json { _ = write(DropsRenderer.header) }
        var renderer = DropsRenderer(reasons: engine.reasons, wallClockOffset: engine.wallClockOffset)
        var text = TextBuffer()
        var shown = 0, reportedLost: UInt64 = 0
        var going = true, stopping = false
        while going {
            // After a signal, what the kernel sent before it is still shown.
            let records = try engine.poll(milliseconds: stopping ? 0 : 100)
            text.bytes.removeAll(keepingCapacity: true)
            for record in records {
                if let count = configuration.count, shown >= count { break }
                let owner = engine.owner(of: record.socket_inode) ?? owners.owner(of: record.socket_inode, now: StopSignals.now())
                if configuration.json { renderer.json(record, owner: owner, into: &text) } else { renderer.row(record, owner: owner, into: &text) }
                shown += 1
            }
            if !text.bytes.isEmpty && !write(text.bytes) { break }
            if let count = configuration.count, shown >= count { going = false }
            let lost = try engine.lostEvents()
            if lost > reportedLost {
                say("netacct: \(lost - reportedLost) drops not shown: the ring buffer was full (user space fell behind; --summary counts them all); \(lost) in all\n")
                reportedLost = lost
            }
            if stopping { break }
            if signals.pending() != nil { stopping = true }
        }
        say("netacct drops: \(shown) drops shown, \(reportedLost) lost\n")
    }

    /// Every `seconds`, the drops counted in the kernel since the last interval.
    func summarize(_ engine: DropsEngine, every seconds: Double, owners: inout SocketOwners, signals: StopSignals,
                   write: ([UInt8]) -> Bool) throws {
        var previous = try engine.counted(), previousTotals = try engine.totalsByReason()
        var start = StopSignals.now()
        var printed = 0
        while configuration.count.map({ printed < $0 }) ?? true {
            let stopped = signals.wait(until: start + seconds) != nil
            let end = StopSignals.now()
            let current = try engine.counted(), currentTotals = try engine.totalsByReason()
            var grouped: [GroupKey: UInt64] = [:]
            var attributed: [DropKey: UInt64] = [:]   // by (reason, protocol)
            for (key, value) in current {
                let delta = value - min(value, previous[key] ?? 0)
                guard delta > 0 else { continue }
                let owner = engine.owner(of: key.inode) ?? owners.owner(of: key.inode, now: end)
                grouped[GroupKey(reason: key.reason, proto: key.proto, pid: owner?.pid, comm: owner?.comm), default: 0] += delta
                attributed[DropKey(inode: 0, reason: key.reason, proto: key.proto), default: 0] += delta
            }
            var rows: [DropsRenderer.Interval.Row] = []
            for (key, count) in grouped {
                rows.append(.init(reason: engine.reasons.name(key.reason), reasonWords: engine.reasons.words(key.reason),
                                  proto: key.proto == UInt8(IPPROTO_UDP) ? "udp" : "tcp",
                                  owner: key.pid.map { SocketOwners.Owner(pid: $0, comm: key.comm ?? "?") }, count: count))
            }
            // Drops the per-socket table had no room for: in the totals, owner unknown.
            for (key, value) in currentTotals {
                let delta = value - min(value, previousTotals[key] ?? 0)
                let rest = delta - min(delta, attributed[key] ?? 0)
                if rest > 0 {
                    rows.append(.init(reason: engine.reasons.name(key.reason), reasonWords: engine.reasons.words(key.reason),
                                      proto: key.proto == UInt8(IPPROTO_UDP) ? "udp" : "tcp", owner: nil, unattributed: true, count: rest))
                }
            }
            if !configuration.filter.pids.isEmpty {
                rows = rows.filter { row in row.owner.map { configuration.filter.pids.contains($0.pid) } ?? false }
            }
            rows.sort { ($0.count, $1.reason) > ($1.count, $0.reason) }
            previous = current
            previousTotals = currentTotals
            let interval = DropsRenderer.Interval(time: Date(), seconds: end - start, rows: rows)
            guard write(Array((configuration.json ? DropsRenderer.summaryJSON(interval) : DropsRenderer.summaryTable(interval)).utf8)) else { return }
            printed += 1
            start = end
            if stopped { break }
        }
    }

    struct GroupKey: Hashable {
        var reason: UInt32
        var proto: UInt8
        var pid: Int32?
        var comm: String?
    }
}
