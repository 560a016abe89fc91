import Logging
import NetacctKit
import SystemPackage

/// `netacct connections`: a line per TCP connection event as it happens, until interrupted or
/// `count` events; events the kernel lost are said on standard error as they are noticed, and
/// in the summary at the end.
public struct ConnectionsApp {
    public struct Configuration: Sendable {
        public var filter = ConnectionFilter()
        public var json = false
        public var count: Int?
        public init() {}
    }

    public let configuration: Configuration
    let logger: Logger

    public init(_ configuration: Configuration, logger: Logger = Logger(label: "netacct.connections")) {
        self.configuration = configuration
        self.logger = logger
    }

    public func run(output: FileDescriptor = .standardOutput, errors: FileDescriptor = .standardError) throws {
        let signals = StopSignals()
        let engine = try ConnectionsEngine(filter: configuration.filter, logger: logger)
        var renderer = ConnectionsRenderer(showsOutcomes: configuration.filter.failed || configuration.filter.closes)
        var shown = 0
        var reportedLost: UInt64 = 0
        var text = TextBuffer()
        /// A stop signal came while the output was not being read.
        var interrupted = false
        func say(_ line: String) { _ = try? errors.writeAll(Array(line.utf8)) }
        /// Prints a batch; false once the output is closed or the count reached.
        func show(_ events: [ConnectionEvent]) throws -> Bool {
            text.bytes.removeAll(keepingCapacity: true)
            for event in events {
                if let count = configuration.count, shown >= count { break }
                if configuration.json { renderer.json(event, into: &text) } else { renderer.row(event, into: &text) }
                shown += 1
            }
            if !text.bytes.isEmpty {
                switch try signals.write(text.bytes, to: output.rawValue) {
                case .written: break
                case .closed: return false
                case .stopped:
                    interrupted = true
                    return false
                }
            }
            return configuration.count.map { shown < $0 } ?? true
        }
        var reportedUntracked: UInt64 = 0
        func reportLosses() throws {
            let lost = try engine.lostEvents()
            if lost > reportedLost {
                say("netacct: \(lost - reportedLost) events lost: the ring buffer was full (user space fell behind); \(lost) in all\n")
                reportedLost = lost
            }
            let untracked = try engine.untrackedConnections()
            if untracked > reportedUntracked {
                say("netacct: \(untracked - reportedUntracked) connections not followed: the kernel's table of connections was full (their events are missing or show no process); \(untracked) in all\n")
                reportedUntracked = untracked
            }
        }

        if !configuration.json {
            _ = try? output.writeAll(Array(renderer.header.utf8))
        }
        var going = true
        while going {
            going = try show(engine.poll(milliseconds: 100))
            try reportLosses()
            if interrupted { break }
            if signals.pending() != nil {
                // What the kernel sent before the signal is still shown.
                if going { _ = try show(engine.drain()) }
                break
            }
        }
        try reportLosses()
        var summary = "netacct connections: \(shown) events shown, \(reportedLost) lost"
        if reportedUntracked > 0 { summary += ", \(reportedUntracked) connections not followed (the kernel's table was full)" }
        say(summary + "\n")
    }
}
