import FoundationEssentials
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
        /// The namespaces whose drops are shown.
        public var scope = NamespaceScope.current
        public init() {}
    }

    public let configuration: Configuration
    let logger: Logger

    public init(_ configuration: Configuration, logger: Logger = Logger(label: "netacct.drops")) {
        self.configuration = configuration
        self.logger = logger
    }

    public func run(output: FileDescriptor = .standardOutput, errors: FileDescriptor = .standardError) throws {
        if let seconds = configuration.summary { return try summarize(every: seconds, output: output) }
        let runner = EventRunner(count: configuration.count, output: output, errors: errors)
        let scope = configuration.scope
        let engine = try DropsEngine(filter: configuration.filter, summary: false, namespace: scope.filterInode, logger: logger)
        var renderer = DropsRenderer(reasons: engine.reasons, wallClockOffset: engine.wallClockOffset,
                                     namespaces: scope.labelled ? NamespaceDirectory(scope: scope) : nil)
        var lost = LossCounter("drops not shown: the ring buffer was full (user space fell behind; --summary counts them all)")
        var refreshed = StopSignals.now()
        let header = scope.labelled ? DropsRenderer.labelledHeader : DropsRenderer.header
        try runner.run(header: configuration.json ? nil : header, poll: engine.poll) { record, text in
            let owner = engine.owner(of: record.socket_inode)
            if configuration.json { renderer.json(record, owner: owner, into: &text) } else { renderer.row(record, owner: owner, into: &text) }
        } losses: {
            // New namespaces named within a second.
            if scope.labelled, StopSignals.now() - refreshed >= 1 {
                _ = renderer.namespaces?.refresh()
                refreshed = StopSignals.now()
            }
            return lost.news(try engine.lostEvents())
        } summary: { shown in
            "netacct drops: \(shown) drops shown, \(lost.said) lost\n"
        }
    }

    /// Every `seconds`, the drops counted in the kernel since the last interval.
    func summarize(every seconds: Double, output: FileDescriptor) throws {
        let runner = IntervalRunner(every: seconds, count: configuration.count, output: output)
        let scope = configuration.scope
        let engine = try DropsEngine(filter: configuration.filter, summary: true, namespace: scope.filterInode, logger: logger)
        var summary = DropsSummary(reasons: engine.reasons, pids: configuration.filter.pids,
                                   counted: try engine.counted(), totals: try engine.totalsByReason())
        var namespaces = NamespaceDirectory(scope: scope)
        try runner.run { seconds in
            if scope.labelled { _ = namespaces.refresh() }
            let counted = try engine.counted()
            let rows = summary.interval(counted: counted, totals: try engine.totalsByReason(),
                                        namespace: scope.labelled ? { namespaces.label($0) } : nil) { engine.owner(of: $0) }
            let interval = DropsRenderer.Interval(time: Date(), seconds: seconds, rows: rows, labelled: scope.labelled)
            return (configuration.json ? DropsRenderer.summaryJSON(interval) : DropsRenderer.summaryTable(interval), false)
        }
    }
}
