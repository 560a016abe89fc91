import FoundationEssentials
import Logging
import NetacctKit
import SystemPackage

/// `netacct nic`: every interval, per interface of this network namespace, the frames, bytes
/// and segments of each TX and RX queue.
public struct NICApp {
    public struct Configuration: Sendable {
        /// Interface names; empty: every interface that is up.
        public var names: [String] = []
        public var interval: Double = 1
        public var count: Int?
        public var json = false
        public init() {}
    }

    public let configuration: Configuration
    let logger: Logger

    public init(_ configuration: Configuration, logger: Logger = Logger(label: "netacct.nic")) {
        self.configuration = configuration
        self.logger = logger
    }

    /// The interfaces asked for: an unknown name is an error that lists the interfaces.
    public static func interfaces(named names: [String]) throws -> [NetworkInterface] {
        let all = NetworkInterface.all()
        guard !names.isEmpty else { return all.filter(\.isUp) }
        return try names.map { name in
            guard let interface = all.first(where: { $0.name == name }) else {
                throw NetacctError("No interface \(name) in this network namespace; its interfaces: \(all.map(\.name).joined(separator: ", ")).")
            }
            return interface
        }
    }

    public func run(output: FileDescriptor = .standardOutput) throws {
        let runner = IntervalRunner(every: configuration.interval, count: configuration.count, output: output)
        let interfaces = try Self.interfaces(named: configuration.names)
        let engine = try NICEngine(interfaces: interfaces, logger: logger)
        var previous = try Self.read(engine, interfaces)
        var present = interfaces
        try runner.run { seconds in
            // Queues can appear (ethtool -L) and interfaces go away: read /sys again.
            var gone: [String] = []
            present = present.compactMap { interface in
                guard let now = NetworkInterface.named(interface.name), now.ifindex == interface.ifindex else {
                    gone.append(interface.name)
                    return nil
                }
                return now
            }
            for name in gone { logger.warning("interface \(name) has gone; the others go on") }
            let current = try Self.read(engine, present)
            let rows = present.map { interface -> NICInterval.Interface in
                func delta(_ direction: KeyPath<Reading, [QueueCounters]>) -> NICInterval.Direction {
                    let now = current[interface.ifindex]?[keyPath: direction] ?? []
                    let before = previous[interface.ifindex]?[keyPath: direction] ?? []
                    return NICInterval.Direction(queues: now.enumerated().map { index, counters in
                        counters.since(index < before.count ? before[index] : QueueCounters())
                    })
                }
                return NICInterval.Interface(name: interface.name, ifindex: interface.ifindex, tx: delta(\.tx), rx: delta(\.rx))
            }
            previous = current
            let interval = NICInterval(time: Date(), seconds: seconds, interfaces: rows)
            return (configuration.json ? NICRenderer.json(interval) + "\n" : NICRenderer.table(interval), present.isEmpty)
        }
    }

    struct Reading {
        var tx: [QueueCounters]
        var rx: [QueueCounters]
    }

    /// Cumulative counters of each interface, by ifindex, at its engine slot.
    static func read(_ engine: NICEngine, _ interfaces: [NetworkInterface]) throws -> [UInt32: Reading] {
        var result: [UInt32: Reading] = [:]
        for interface in interfaces {
            guard let slot = engine.interfaces.firstIndex(where: { $0.ifindex == interface.ifindex }) else { continue }
            result[interface.ifindex] = Reading(tx: try engine.read(slot: slot, .tx, queues: interface.txQueues),
                                                rx: try engine.read(slot: slot, .rx, queues: interface.rxQueues))
        }
        return result
    }
}
