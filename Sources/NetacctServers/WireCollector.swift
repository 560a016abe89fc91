import Accounting
import DaemonProtocol
import History
import NetacctKit

/// The wire counters as a collector (`netacct daemon --wire`): verb `wire`, frames and bytes on
/// the wire since the daemon started, per interface (with what no process owned) and per
/// socket owner, and the families `netacct_wire_*` per process group and cgroup. With
/// `--atop-counts wire` the netatop-bpf server sends atop these counts instead of calls.
final class WireCollector: Collector {
    private let engine: WireEngine
    /// The engine's counters at the last reading (cumulative since start).
    private(set) var current = WireSample()
    private var counts: AttributedCounts<WireLabel>

    init(engine: WireEngine, top: Int, pids: Bool) {
        self.engine = engine
        counts = AttributedCounts(top: top, pids: pids)
    }

    var verb: DaemonAPI.Verb { .wire }

    func maintain(interval: Double) throws -> Bool { try read() }

    /// Adds what was counted since the last reading to the groups' series; returns whether any was.
    @discardableResult
    func read() throws -> Bool {
        let sample = try engine.sample()
        let delta = sample.since(current)
        current = sample
        var batch: [AttributedCounts<WireLabel>.Owner?: Tally<WireLabel>] = [:]
        for (owner, byInterface) in delta.owned {
            let process = sample.processes[owner]
            let key = process.map { AttributedCounts<WireLabel>.Owner(comm: $0.comm, pid: $0.pid, cgroup: $0.cgroupID) }
            batch[key, default: .zero] = batch[key, default: .zero] + Tally(byInterface.values.reduce(WireCounters(), +))
        }
        counts.add(batch)
        return !batch.isEmpty
    }

    /// A process's frames on the wire since the daemon started, as the netatop-bpf protocol
    /// carries counters: UDP sockets' frames in the UDP fields, all others (TCP, ICMP, packet
    /// sockets) in the TCP fields. Zero when it owned no socket with traffic.
    func traffic(of process: ProcessID) -> Traffic {
        let owner = WireOwner(pid: process.pid, start: UInt32(truncatingIfNeeded: process.startNanoseconds))
        return Traffic(wire: current.owned[owner]?.values.reduce(WireCounters(), +) ?? WireCounters())
    }

    /// Owners with traffic that the accounting does not list (no TCP or UDP call counted: ping,
    /// a listener that only accepted): the atop reply adds them.
    func owners(besides listed: Set<ProcessID>) -> [(id: ProcessID, comm: String, traffic: Traffic)] {
        current.owned.compactMap { owner, byInterface in
            guard let process = current.processes[owner], !listed.contains(process.id) else { return nil }
            return (process.id, process.comm, Traffic(wire: byInterface.values.reduce(WireCounters(), +)))
        }
    }

    func answer(client: APIClientID) throws -> any DaemonReply {
        try read()
        let (groups, cgroups) = counts.records(\.wireCounts)
        let sample = current
        return WireReply(
            interfaces: sample.interfaceRows(nil).map {
                WireInterfaceRecord(netns: $0.id.netns, ifindex: $0.id.ifindex, name: $0.name, totals: WireCounts($0.totals),
                                    unattributed: WireCounts(unattributed($0.id, $0.unattributed)))
            },
            processes: sample.rows(on: nil).sorted { $0.owner < $1.owner }.map { row in
                WireProcessRecord(pid: row.owner.pid, startNs: row.process?.startNanoseconds, comm: row.process?.comm,
                                  cgroupId: row.process?.cgroupID, exited: row.process?.exited ?? false, counts: WireCounts(row.total),
                                  interfaces: row.byInterface.map { WireOnInterface(netns: $0.id.netns, ifindex: $0.id.ifindex, counts: WireCounts($0.counters)) })
            },
            processGroups: groups, cgroups: cgroups,
            losses: WireLosses(ownersFull: sample.losses.ownersFull, interfacesFull: sample.losses.interfacesFull,
                               storageFull: sample.losses.storageFull))
    }

    /// Per interface and direction: every frame and byte, and those no process owned.
    func historyCounters() -> [HistorySeries] {
        _ = try? read()
        var result: [HistorySeries] = []
        for row in current.interfaceRows(nil) {
            let unattributed = self.unattributed(row.id, row.unattributed)
            for (direction, c, u) in [("tx", (row.totals.txPackets, row.totals.txBytes), (unattributed.txPackets, unattributed.txBytes)),
                                      ("rx", (row.totals.rxPackets, row.totals.rxBytes), (unattributed.rxPackets, unattributed.rxBytes))] {
                let labels = PrometheusText.labels([("netns", String(row.id.netns)), ("interface", row.name), ("ifindex", String(row.id.ifindex)),
                                                    ("direction", direction)])
                result += [("packets", c.0), ("bytes", c.1), ("unattributed_packets", u.0), ("unattributed_bytes", u.1)].map {
                    HistorySeries(source: "wire", labels: labels, name: $0, value: $1)
                }
            }
        }
        return result
    }

    func writeMetrics(into out: inout PrometheusText) {
        _ = try? read()
        for (name, what, help) in [("wire_packets_total", WireLabel.What.packets, "frames on the wire (a GSO/GRO packet counts its segments), by direction"),
                                   ("wire_bytes_total", .bytes, "bytes on the wire, every header included, by direction"),
                                   ("wire_retransmitted_segments_total", .retransmittedSegments, "TCP segments sent again"),
                                   ("wire_retransmitted_bytes_total", .retransmittedBytes, "payload bytes of the TCP segments sent again")] {
            counts.write(&out, name, .counter, help: help) { out, name, labels, tally in
                for (label, value) in tally.counts.sorted(by: { $0.key.direction < $1.key.direction }) where label.what == what {
                    out.sample(name, labels + (label.direction.isEmpty ? [] : [("direction", label.direction)]), value)
                }
            }
        }
        let rows = current.interfaceRows(nil)
        for (name, help, unattributed, bytes) in [
            ("netacct_wire_interface_packets_total", "every frame of an interface (its own counters' meaning, GSO/GRO packets as their segments), by network namespace, interface (name and ifindex) and direction", false, false),
            ("netacct_wire_interface_bytes_total", "every byte of an interface's frames, by network namespace and direction", false, true),
            ("netacct_wire_unattributed_packets_total", "frames no local process's socket owned (forwarded, the kernel's RSTs and ICMP, TIME_WAIT, other protocols)", true, false),
            ("netacct_wire_unattributed_bytes_total", "bytes of the frames no local process's socket owned", true, true),
        ] {
            out.family(name, .counter, help: help)
            for row in rows {
                let c = unattributed ? self.unattributed(row.id, row.unattributed) : row.totals
                // The ifindex too: a device made again under the same name is another series.
                let labels = [("netns", String(row.id.netns)), ("interface", row.name), ("ifindex", String(row.id.ifindex))]
                out.sample(name, labels + [("direction", "tx")], bytes ? c.txBytes : c.txPackets)
                out.sample(name, labels + [("direction", "rx")], bytes ? c.rxBytes : c.rxPackets)
            }
        }
    }

    var losses: [String] { current.losses.phrases }

    /// The most unattributed frames each interface has had: the cumulative count, which a frame
    /// between its device and its socket as it is read makes larger for a moment (it is in the
    /// interface's totals, not yet its owner's), kept from going back, as a counter must.
    private var unattributedSeen: [InterfaceID: WireCounters] = [:]

    private func unattributed(_ id: InterfaceID, _ balance: WireBalance) -> WireCounters {
        let now = balance.atLeastZero, seen = unattributedSeen[id] ?? WireCounters()
        let kept = WireCounters(txPackets: max(now.txPackets, seen.txPackets), txBytes: max(now.txBytes, seen.txBytes),
                                rxPackets: max(now.rxPackets, seen.rxPackets), rxBytes: max(now.rxBytes, seen.rxBytes))
        unattributedSeen[id] = kept
        return kept
    }
}

/// What a wire count is of: frames, bytes, resent segments or their bytes; and which way.
struct WireLabel: TallyLabel {
    enum What: Hashable { case packets, bytes, retransmittedSegments, retransmittedBytes }
    var what: What
    /// "tx", "rx"; "" for retransmissions (always sent).
    var direction: String
    /// Groups rank by bytes on the wire.
    var ranks: Bool { what == .bytes }
}

extension Tally<WireLabel> {
    init(_ c: WireCounters) {
        self.init()
        self[WireLabel(what: .packets, direction: "tx")] = c.txPackets
        self[WireLabel(what: .packets, direction: "rx")] = c.rxPackets
        self[WireLabel(what: .bytes, direction: "tx")] = c.txBytes
        self[WireLabel(what: .bytes, direction: "rx")] = c.rxBytes
        self[WireLabel(what: .retransmittedSegments, direction: "")] = c.retransmittedSegments
        self[WireLabel(what: .retransmittedBytes, direction: "")] = c.retransmittedBytes
    }

    var wireCounts: WireCounts {
        WireCounts(txPackets: self[WireLabel(what: .packets, direction: "tx")], txBytes: self[WireLabel(what: .bytes, direction: "tx")],
                   rxPackets: self[WireLabel(what: .packets, direction: "rx")], rxBytes: self[WireLabel(what: .bytes, direction: "rx")],
                   retransmittedSegments: self[WireLabel(what: .retransmittedSegments, direction: "")],
                   retransmittedBytes: self[WireLabel(what: .retransmittedBytes, direction: "")])
    }
}

extension WireCounts {
    init(_ c: WireCounters) {
        self.init(txPackets: c.txPackets, txBytes: c.txBytes, rxPackets: c.rxPackets, rxBytes: c.rxBytes,
                  retransmittedSegments: c.retransmittedSegments, retransmittedBytes: c.retransmittedBytes,
                  udpTxPackets: c.udpTxPackets, udpTxBytes: c.udpTxBytes, udpRxPackets: c.udpRxPackets, udpRxBytes: c.udpRxBytes)
    }
}

extension Traffic {
    /// Wire counters in the netatop-bpf record's fields: UDP's share as UDP, the rest as TCP.
    init(wire c: WireCounters) {
        self.init(tcpTxPackets: c.txPackets - min(c.txPackets, c.udpTxPackets), tcpTxBytes: c.txBytes - min(c.txBytes, c.udpTxBytes),
                  tcpRxPackets: c.rxPackets - min(c.rxPackets, c.udpRxPackets), tcpRxBytes: c.rxBytes - min(c.rxBytes, c.udpRxBytes),
                  udpTxPackets: c.udpTxPackets, udpTxBytes: c.udpTxBytes, udpRxPackets: c.udpRxPackets, udpRxBytes: c.udpRxBytes)
    }
}
