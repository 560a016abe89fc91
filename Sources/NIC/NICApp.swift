import FoundationEssentials
import Logging
import NetacctKit
import SystemPackage

/// `netacct nic`: every interval, per interface of this network namespace (or of another, or of
/// every one), the frames, bytes and segments of each TX and RX queue.
public struct NICApp {
    public struct Configuration: Sendable {
        /// Interface names; empty: every interface that is up.
        public var names: [String] = []
        public var interval: Double = 1
        public var count: Int?
        public var json = false
        /// The namespaces whose interfaces are counted.
        public var scope = NamespaceScope.current
        public init() {}
    }

    public let configuration: Configuration
    let logger: Logger

    public init(_ configuration: Configuration, logger: Logger = Logger(label: "netacct.nic")) {
        self.configuration = configuration
        self.logger = logger
    }

    public func run(output: FileDescriptor = .standardOutput) throws {
        let runner = IntervalRunner(every: configuration.interval, count: configuration.count, output: output)
        let monitor = try NICMonitor(scope: configuration.scope, names: configuration.names, logger: logger)
        let labelled = configuration.scope.labelled
        var previous = try monitor.read()
        var lost = LossCounter("frames not counted: the table of devices was full (\(NICEngine.maximumDevices) queues of every namespace)")
        try runner.run { seconds in
            try monitor.refresh()
            let current = try monitor.read()
            let rows = monitor.ordered.map { key, device -> NICInterval.Interface in
                func delta(_ direction: KeyPath<DeviceReading, [QueueCounters]>) -> NICInterval.Direction {
                    let now = current[key]?[keyPath: direction] ?? []
                    let before = previous[key]?[keyPath: direction] ?? []
                    return NICInterval.Direction(queues: now.enumerated().map { index, counters in
                        counters.since(index < before.count ? before[index] : QueueCounters())
                    })
                }
                return NICInterval.Interface(name: device.interface.name, ifindex: key.ifindex, tx: delta(\.tx), rx: delta(\.rx),
                                             namespace: labelled ? device.namespace : nil)
            }
            previous = current
            let interval = NICInterval(time: Date(), seconds: seconds, interfaces: rows)
            // One namespace: done when its interfaces have all gone; every namespace: never.
            let last = monitor.devices.isEmpty && configuration.scope != .all
            return (configuration.json ? NICRenderer.json(interval) + "\n" : NICRenderer.table(interval), last)
        } losses: {
            configuration.scope == .all ? lost.news(try monitor.engine.lostFrames()) : ""
        }
    }
}
