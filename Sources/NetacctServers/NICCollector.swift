import DaemonProtocol
import NIC
import NetacctKit

/// The nic tool as a collector (`netacct daemon --nic`): verb `nic`, each counted interface's
/// cumulative frames, bytes and segments per TX and RX queue since the daemon started (the
/// field names of `netacct nic --json`; a client takes the differences). The interfaces are
/// those that were up in the daemon's network namespace when it started.
final class NICCollector: Collector {
    let engine: NICEngine

    init(engine: NICEngine) {
        self.engine = engine
    }

    var verb: DaemonAPI.Verb { .nic }
    /// The kernel keeps the counters: nothing to do between requests.
    func maintain(interval: Double) throws -> Bool { false }

    func answer(client: APIClientID) throws -> any DaemonReply {
        NICReply(interfaces: try engine.interfaces.enumerated().map { slot, interface in
            // Queues can appear (ethtool -L): read /sys again; a device gone counts no more.
            let now = NetworkInterface.named(interface.name).flatMap { $0.ifindex == interface.ifindex ? $0 : nil } ?? interface
            return InterfaceRecord(NICInterval.Interface(name: interface.name, ifindex: interface.ifindex,
                                                         tx: .init(queues: try engine.read(slot: slot, .tx, queues: now.txQueues)),
                                                         rx: .init(queues: try engine.read(slot: slot, .rx, queues: now.rxQueues))))
        })
    }

    var losses: [String] { [] }

    /// Per interface, queue and direction: frames, bytes and (segmentation offload) segments.
    func writeMetrics(into out: inout PrometheusText) {
        var rows: [(interface: String, queue: Int, direction: String, counters: QueueCounters)] = []
        for (slot, interface) in engine.interfaces.enumerated() {
            let now = NetworkInterface.named(interface.name).flatMap { $0.ifindex == interface.ifindex ? $0 : nil } ?? interface
            for (direction, queues) in [(NICEngine.Direction.tx, now.txQueues), (.rx, now.rxQueues)] {
                guard let counters = try? engine.read(slot: slot, direction, queues: queues) else { continue }
                for (queue, c) in counters.enumerated() { rows.append((interface.name, queue, direction == .tx ? "tx" : "rx", c)) }
            }
        }
        for (name, help, value) in [("netacct_nic_frames_total", "frames per interface queue (as the driver sees them: a GSO/GRO frame is one)", \QueueCounters.packets),
                                    ("netacct_nic_bytes_total", "bytes per interface queue", \QueueCounters.bytes),
                                    ("netacct_nic_segments_total", "TCP/UDP segments per interface queue (a GSO/GRO frame counts its segments)", \QueueCounters.segments)] {
            out.family(name, .counter, help: help)
            for row in rows {
                out.sample(name, [("interface", row.interface), ("queue", String(row.queue)), ("direction", row.direction)], row.counters[keyPath: value])
            }
        }
    }
}

extension InterfaceRecord {
    init(_ interface: NICInterval.Interface) {
        func record(_ direction: NICInterval.Direction) -> QueuesRecord {
            let total = direction.total
            return QueuesRecord(queues: direction.queues.enumerated().map { .init(queue: $0, packets: $1.packets, bytes: $1.bytes, segments: $1.segments) },
                                total: .init(queue: nil, packets: total.packets, bytes: total.bytes, segments: total.segments))
        }
        self.init(name: interface.name, ifindex: interface.ifindex, tx: record(interface.tx), rx: record(interface.rx))
    }
}
