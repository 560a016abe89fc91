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
        let runner = EventRunner(count: configuration.count, output: output, errors: errors)
        let engine = try ConnectionsEngine(filter: configuration.filter, logger: logger)
        var renderer = ConnectionsRenderer(showsOutcomes: configuration.filter.failed || configuration.filter.closes)
        var lost = LossCounter("events lost: the ring buffer was full (user space fell behind)")
        var untracked = LossCounter("connections not followed: the kernel's table of connections was full (their events are missing or show no process)")
        try runner.run(header: configuration.json ? nil : renderer.header, poll: engine.poll) { event, text in
            if configuration.json { renderer.json(event, into: &text) } else { renderer.row(event, into: &text) }
        } losses: {
            try lost.news(engine.lostEvents()) + untracked.news(engine.untrackedConnections())
        } summary: { shown in
            "netacct connections: \(shown) events shown, \(lost.said) lost"
                + (untracked.said > 0 ? ", \(untracked.said) connections not followed (the kernel's table was full)" : "") + "\n"
        }
    }
}
