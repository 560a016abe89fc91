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
        /// The namespaces whose segments are followed.
        public var scope = NamespaceScope.current
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
        let scope = configuration.scope
        var namespaces = NamespaceDirectory(scope: scope)
        var path: String?
        if case .one(let one, _) = scope { path = one }
        let engine = try LatencyEngine(direction: configuration.direction, filter: configuration.filter,
                                       histograms: intervals != nil, namespace: scope.filterInode, namespacePath: path, logger: logger)
        var renderer = LatencyRenderer(direction: configuration.direction, wallClockOffset: engine.wallClockOffset,
                                       namespaces: scope.labelled ? namespaces : nil)
        // Every namespace: the IP points attached in each, as namespaces come and go (looked at
        // every second); the names of what runs in them kept up to date.
        var followed = StopSignals.now()
        if scope == .all {
            engine.follow(present: Array(namespaces.entries.values))
            logger.debug("latency follows every network namespace", metadata: ["namespaces": "\(engine.followedNamespaces.count)"])
        }
        func follow() {
            guard scope.labelled, StopSignals.now() - followed >= 1 else { return }
            followed = StopSignals.now()
            let (_, gone) = namespaces.refresh()
            if scope == .all {
                engine.follow(present: Array(namespaces.entries.values))
                for entry in gone { try? engine.forgetHistograms(of: entry.label.inode) }
            }
            renderer.namespaces = namespaces
        }
        var notFollowed = LossCounter("network namespaces not followed by latency (their IP points could not be attached; said above)")
        var namespacesFull = LossCounter("segments not in a histogram: \(NETACCT_LATENCY_NAMESPACES) namespaces had histograms already")
        var lost = LossCounter("segments not shown: the ring buffer was full (user space fell behind; --hist counts them all)")
        var tableFull = LossCounter("sampled segments not followed: the kernel's table of connections with segments on their way had no room (4,096 connections at once)")
        var socketFull = LossCounter("segments not followed: their socket already had \(NETACCT_LATENCY_SOCKET_SLOTS) followed segments waiting to be read (sample fewer: -s N)")
        func losses() throws -> String {
            let now = try engine.losses()
            follow()
            return lost.news(now.lostReports) + tableFull.news(now.tableFull) + socketFull.news(now.socketFull)
                + notFollowed.news(engine.namespacesNotFollowed) + namespacesFull.news(now.namespacesFull)
        }
        func summary(_ shown: Int) throws -> String {
            let losses = try engine.losses()
            return "netacct latency \(configuration.direction.rawValue): \(shown) \(intervals != nil ? "intervals" : "segments") shown, \(losses.lostReports) lost, \(losses.tableFull + losses.socketFull) not followed (tables full), \(losses.dropped) dropped on the way, \(losses.leftThePath) left the path before a socket, \(try engine.inflightCount()) still on their way\n"
        }
        if let intervals {
            let start = StopSignals.now()
            _ = try engine.takeHistograms()
            try intervals.run(from: start) { seconds in
                let time = Date()
                // One namespace: its histograms; every namespace: each one's that counted.
                let shown: [LatencyRenderer.Interval] = scope == .all
                    ? try engine.takeHistogramsByNamespace().map { LatencyRenderer.Interval(time: time, seconds: seconds, stages: $1, namespace: namespaces.label($0)) }
                        .sorted { ($0.namespace?.display ?? "", $0.namespace?.inode ?? 0) < ($1.namespace?.display ?? "", $1.namespace?.inode ?? 0) }
                    : [LatencyRenderer.Interval(time: time, seconds: seconds, stages: try engine.takeHistograms(),
                                                namespace: scope.labelled ? namespaces.entries.first?.value.label : nil)]
                return (shown.map { configuration.json ? renderer.histogramJSON($0) : renderer.histogramTable($0) }.joined(), false)
            } losses: { try losses() } summary: { try summary($0) } tick: { follow() }
        } else {
            try events.run(header: configuration.json ? nil : renderer.header, poll: engine.poll) { record, text in
                if configuration.json { renderer.json(record, into: &text) } else { renderer.row(record, into: &text) }
            } losses: { try losses() } summary: { try summary($0) }
        }
    }
}
