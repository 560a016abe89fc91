import CNetacct
import FoundationEssentials
import Logging
import NetacctKit
import SystemPackage

/// `netacct latency in|out`: a line per followed TCP segment with the time it spent in each
/// layer, or with `histograms` a histogram per stage every interval, counted in the kernel.
/// Segments given up on the way (dropped, never read, tables full) are counted and said on
/// standard error as they are noticed, and in the summary at the end.
public struct LatencyApp {
    public struct Configuration: Sendable {
        public var direction = LatencyDirection.in
        public var filter = LatencyFilter()
        /// --hist: seconds between histograms.
        public var histograms: Double?
        public var json = false
        public var count: Int?
        public init() {}
    }

    public let configuration: Configuration
    let logger: Logger

    public init(_ configuration: Configuration, logger: Logger = Logger(label: "netacct.latency")) {
        self.configuration = configuration
        self.logger = logger
    }

    public func run(output: FileDescriptor = .standardOutput, errors: FileDescriptor = .standardError) throws {
        let signals = StopSignals()
        let engine = try LatencyEngine(direction: configuration.direction, filter: configuration.filter,
                                       histograms: configuration.histograms != nil, logger: logger)
        func say(_ line: String) { _ = try? errors.writeAll(Array(line.utf8)) }
        /// False once the output is closed, or a stop signal came while it was not being read.
        func write(_ bytes: [UInt8]) -> Bool { (try? signals.write(bytes, to: output.rawValue)) == .written }
        var said = LatencyEngine.Losses()
        func sayLosses() throws {
            let now = try engine.losses()
            if now.lostReports > said.lostReports {
                say("netacct: \(now.lostReports - said.lostReports) segments not shown: the ring buffer was full (user space fell behind; --hist counts them all); \(now.lostReports) in all\n")
            }
            if now.tableFull > said.tableFull {
                say("netacct: \(now.tableFull - said.tableFull) sampled segments not followed: the kernel's table of connections with segments on their way had no room (4,096 connections at once); \(now.tableFull) in all\n")
            }
            if now.socketFull > said.socketFull {
                say("netacct: \(now.socketFull - said.socketFull) segments not followed: their socket already had \(NETACCT_LATENCY_SOCKET_SLOTS) followed segments waiting to be read (sample fewer: -s N); \(now.socketFull) in all\n")
            }
            said = now
        }
        var shown = 0
        if let seconds = configuration.histograms {
            var start = StopSignals.now()
            _ = try engine.takeHistograms()
            while configuration.count.map({ shown < $0 }) ?? true {
                let stopped = signals.wait(until: start + seconds) != nil
                let end = StopSignals.now()
                let interval = LatencyRenderer.Interval(time: Date(), seconds: end - start, stages: try engine.takeHistograms())
                let renderer = LatencyRenderer(direction: configuration.direction, wallClockOffset: engine.wallClockOffset)
                guard write(Array((configuration.json ? renderer.histogramJSON(interval) : renderer.histogramTable(interval)).utf8)) else { break }
                shown += 1
                try sayLosses()
                start = end
                if stopped { break }
            }
        } else {
            var renderer = LatencyRenderer(direction: configuration.direction, wallClockOffset: engine.wallClockOffset)
            if !configuration.json { _ = write(Array(renderer.header.utf8)) }
            var text = TextBuffer()
            var stopping = false
            while true {
                // After a signal, what the kernel sent before it is still shown.
                let records = try engine.poll(milliseconds: stopping ? 0 : 100)
                text.bytes.removeAll(keepingCapacity: true)
                for record in records {
                    if let count = configuration.count, shown >= count { break }
                    if configuration.json { renderer.json(record, into: &text) } else { renderer.row(record, into: &text) }
                    shown += 1
                }
                if !text.bytes.isEmpty && !write(text.bytes) { break }
                if let count = configuration.count, shown >= count { break }
                try sayLosses()
                if stopping { break }
                if signals.pending() != nil { stopping = true }
            }
        }
        try sayLosses()
        let losses = try engine.losses()
        let what = configuration.histograms != nil ? "intervals" : "segments"
        say("netacct latency \(configuration.direction.rawValue): \(shown) \(what) shown, \(losses.lostReports) lost, \(losses.tableFull + losses.socketFull) not followed (tables full), \(losses.dropped) dropped on the way, \(losses.leftThePath) left the path before a socket, \(try engine.inflightCount()) still on their way\n")
    }
}
