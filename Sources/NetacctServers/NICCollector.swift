import DaemonProtocol
import History
import NIC
import NetacctKit

/// The nic tool as a collector (`netacct daemon --nic`): verb `nic`, each counted interface's
/// cumulative frames, bytes and segments per TX and RX queue since the daemon started (the
/// field names of `netacct nic --json`; a client takes the differences). The interfaces are
/// those that were up in the daemon's network namespace when it started, or with
/// `--all-namespaces` every up interface of every namespace, followed as they come and go (each
/// with its namespace: `netns`, and `container`, `pod` or `unit` on its series).
final class NICCollector: Collector {
    let monitor: NICMonitor
    private var refreshed = -Double.infinity

    init(monitor: NICMonitor) {
        self.monitor = monitor
    }

    var verb: DaemonAPI.Verb { .nic }

    /// Namespaces and interfaces read again (queues can appear, `ethtool -L`; a device gone
    /// counts no more), at most once a second.
    func maintain(interval: Double) throws -> Bool {
        let now = StopSignals.now()
        guard now - refreshed >= 1 else { return false }
        refreshed = now
        return !(try monitor.refresh()).isEmpty
    }

    private var rows: [NICInterval.Interface] {
        get throws {
            _ = try maintain(interval: 0)
            let readings = try monitor.read()
            let labelled = monitor.namespaces.scope.labelled
            return monitor.ordered.compactMap { key, device in
                readings[key].map {
                    NICInterval.Interface(name: device.interface.name, ifindex: key.ifindex, tx: .init(queues: $0.tx), rx: .init(queues: $0.rx),
                                          namespace: labelled ? device.namespace : nil)
                }
            }
        }
    }

    func answer(client: APIClientID) throws -> any DaemonReply {
        NICReply(interfaces: try rows.map(InterfaceRecord.init))
    }

    var losses: [String] {
        guard let lost = try? monitor.engine.lostFrames(), lost > 0 else { return [] }
        return ["\(lost) frames not counted by nic (its table of devices was full)"]
    }

    /// Per interface, queue and direction (the labels of its series): frames, bytes, segments.
    func historyCounters() -> [HistorySeries] {
        var result: [HistorySeries] = []
        for interface in (try? rows) ?? [] {
            for (direction, queues) in [("tx", interface.tx.queues), ("rx", interface.rx.queues)] {
                for (queue, c) in queues.enumerated() {
                    let labels = PrometheusText.labels([("interface", interface.name), ("queue", String(queue)), ("direction", direction)]
                                                       + (interface.namespace?.metricLabels ?? []))
                    result += [("frames", c.packets), ("bytes", c.bytes), ("segments", c.segments)].map {
                        HistorySeries(source: "nic", labels: labels, name: $0, value: $1)
                    }
                }
            }
        }
        return result
    }

    /// Per interface, queue and direction: frames, bytes and (segmentation offload) segments.
    func writeMetrics(into out: inout PrometheusText) {
        var samples: [(labels: [(String, String)], counters: QueueCounters)] = []
        for interface in (try? rows) ?? [] {
            for (direction, queues) in [("tx", interface.tx.queues), ("rx", interface.rx.queues)] {
                for (queue, c) in queues.enumerated() {
                    samples.append(([("interface", interface.name), ("queue", String(queue)), ("direction", direction)] + (interface.namespace?.metricLabels ?? []), c))
                }
            }
        }
        for (name, help, value) in [("netacct_nic_frames_total", "frames per interface queue (as the driver sees them: a GSO/GRO frame is one)", \QueueCounters.packets),
                                    ("netacct_nic_bytes_total", "bytes per interface queue", \QueueCounters.bytes),
                                    ("netacct_nic_segments_total", "TCP/UDP segments per interface queue (a GSO/GRO frame counts its segments)", \QueueCounters.segments)] {
            out.family(name, .counter, help: help)
            for sample in samples { out.sample(name, sample.labels, sample.counters[keyPath: value]) }
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
        self.init(name: interface.name, ifindex: interface.ifindex, tx: record(interface.tx), rx: record(interface.rx),
                  netns: interface.namespace.map(NamespaceRecord.init))
    }
}
