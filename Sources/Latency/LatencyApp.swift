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
        let events = EventRunner(count: configuration.count, output: output, errors: errors)
        let intervals = configuration.histograms.map { IntervalRunner(every: $0, count: configuration.count, output: output, errors: errors) }
        let engine = try LatencyEngine(direction: configuration.direction, filter: configuration.filter,
                                       histograms: intervals != nil, logger: logger)
        var lost = LossCounter("segments not shown: the ring buffer was full (user space fell behind; --hist counts them all)")
        var tableFull = LossCounter("sampled segments not followed: the kernel's table of connections with segments on their way had no room (4,096 connections at once)")
        var socketFull = LossCounter("segments not followed: their socket already had \(NETACCT_LATENCY_SOCKET_SLOTS) followed segments waiting to be read (sample fewer: -s N)")
        func losses() throws -> String {
            let now = try engine.losses()
            return lost.news(now.lostReports) + tableFull.news(now.tableFull) + socketFull.news(now.socketFull)
        }
        func summary(_ shown: Int) throws -> String {
            let losses = try engine.losses()
            return "netacct latency \(configuration.direction.rawValue): \(shown) \(intervals != nil ? "intervals" : "segments") shown, \(losses.lostReports) lost, \(losses.tableFull + losses.socketFull) not followed (tables full), \(losses.dropped) dropped on the way, \(losses.leftThePath) left the path before a socket, \(try engine.inflightCount()) still on their way\n"
        }
        var renderer = LatencyRenderer(direction: configuration.direction, wallClockOffset: engine.wallClockOffset)
        if let intervals {
            let start = StopSignals.now()
            _ = try engine.takeHistograms()
            try intervals.run(from: start) { seconds in
                let interval = LatencyRenderer.Interval(time: Date(), seconds: seconds, stages: try engine.takeHistograms())
                return (configuration.json ? renderer.histogramJSON(interval) : renderer.histogramTable(interval), false)
            } losses: { try losses() } summary: { try summary($0) }
        } else {
            try events.run(header: configuration.json ? nil : renderer.header, poll: engine.poll) { record, text in
                if configuration.json { renderer.json(record, into: &text) } else { renderer.row(record, into: &text) }
            } losses: { try losses() } summary: { try summary($0) }
        }
    }
}
