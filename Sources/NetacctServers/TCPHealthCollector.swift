import Accounting
import DaemonProtocol
import History
import NetacctKit

/// TCP health as a collector (`netacct daemon --tcp`): verb `tcp`, every socket owner's counters
/// since the daemon started (exited owners for the retention) and the live connections, and the
/// families `netacct_tcp_*` in all, per process group and per cgroup, bounded as the others.
final class TCPHealthCollector: Collector {
    private let engine: TCPHealthEngine
    /// The engine's counters at the last reading (cumulative since start).
    private(set) var current = TCPHealthSample()
    private var counts: AttributedCounts<TCPLabel>
    /// Events of sockets no process owned, since start.
    private var unattributed = TCPHealthCounters()

    init(engine: TCPHealthEngine, top: Int, pids: Bool) {
        self.engine = engine
        counts = AttributedCounts(top: top, pids: pids)
    }

    var verb: DaemonAPI.Verb { .tcp }

    func maintain(interval: Double) throws -> Bool { try read() }

    /// Adds what was counted since the last reading to the groups' series; returns whether any was.
    @discardableResult
    func read() throws -> Bool {
        let sample = try engine.sample()
        var batch: [AttributedCounts<TCPLabel>.Owner?: Tally<TCPLabel>] = [:]
        for (id, counters) in sample.processes {
            let delta = counters.since(current.processes[id] ?? TCPHealthCounters())
            guard !delta.isZero else { continue }
            let owner = sample.owners[id].map { AttributedCounts<TCPLabel>.Owner(comm: $0.comm, pid: id.pid, cgroup: $0.cgroupID) }
            batch[owner, default: .zero] = batch[owner, default: .zero] + Tally(delta)
        }
        unattributed = sample.unattributed
        current = sample
        counts.add(batch)
        return !batch.isEmpty
    }

    func answer(client: APIClientID) throws -> any DaemonReply {
        try read()
        let sample = current
        return TCPHealthReply(
            processes: sample.processes.sorted { $0.key < $1.key }.map { id, counters in
                let owner = sample.owners[id]
                return TCPHealthProcessRecord(pid: id.pid, startNs: id.startNanoseconds, comm: owner?.comm ?? "?", cgroupId: owner?.cgroupID ?? 0,
                                              exited: owner?.exited ?? false, counts: counters)
            },
            connections: sample.connections.map { c in
                TCPConnectionRecord(cookie: c.cookie, pid: c.owner.pid, startNs: c.owner.startNanoseconds, family: c.family.rawValue, state: c.state,
                                    localAddress: c.localAddress, localPort: c.localPort, remoteAddress: c.remoteAddress, remotePort: c.remotePort,
                                    srttUs: c.srttMicroseconds, rttvarUs: c.rttvarMicroseconds, kernelTotalRetrans: c.kernelRetransmits,
                                    closed: c.closed, counts: c.counters)
            },
            unattributed: sample.unattributed,
            losses: TCPHealthLosses(storageFull: sample.losses.storageFull, closedLost: sample.losses.closedLost))
    }

    /// The totals of every process: segments sent again by cause, resets and zero windows by
    /// direction, failed connects, timeouts, window probes (not the RTT histogram).
    func historyCounters() -> [HistorySeries] {
        _ = try? read()
        return counts.total.counts.compactMap { label, value in
            guard !label.what.hasPrefix("rtt") else { return nil }
            let name = label.what.hasPrefix("retransmitted") ? "cause" : label.value.isEmpty ? nil : "direction"
            return HistorySeries(source: "tcp", labels: name.map { PrometheusText.labels([($0, label.value)]) } ?? "", name: label.what, value: value)
        }
    }

    func writeMetrics(into out: inout PrometheusText) {
        _ = try? read()
        // Counters with a label each way or by cause.
        for (name, help, labelName, labels) in [
            ("tcp_retransmitted_segments_total", "TCP segments sent again, by cause (timeout: RTO; fast: fast retransmit; probe: tail-loss probe; syn; synack)",
             "cause", RetransmitCause.allCases.map { ("retransmitted_segments", $0.rawValue) }),
            ("tcp_retransmitted_bytes_total", "payload bytes of the TCP segments sent again, by cause", "cause",
             RetransmitCause.allCases.map { ("retransmitted_bytes", $0.rawValue) }),
            ("tcp_resets_total", "TCP resets sent and received, by direction", "direction", [("resets", "sent"), ("resets", "received")]),
            ("tcp_zero_windows_total", "TCP receive windows at zero: the peer's (received) and this side's (sent)", "direction",
             [("zero_windows", "received"), ("zero_windows", "sent")]),
            ("tcp_failed_connects_total", "TCP connects that failed (refused, reset or timed out)", "", [("failed_connects", "")]),
            ("tcp_timeouts_total", "TCP connections given up after retransmission timeouts", "", [("timeouts", "")]),
            ("tcp_window_probes_total", "TCP segments that arrived into a zero receive window (the peer's window probes)", "", [("window_probes", "")]),
        ] as [(String, String, String, [(String, String)])] {
            counts.write(&out, name, .counter, help: help) { out, name, rowLabels, tally in
                for (what, value) in labels {
                    out.sample(name, rowLabels + (labelName.isEmpty ? [] : [(labelName, value)]), tally[TCPLabel(what: what, value: value)])
                }
            }
        }
        counts.write(&out, "tcp_rtt_seconds", .histogram,
                     help: "the smoothed RTT of TCP connections, sampled once per round trip (log2 buckets)") { out, name, rowLabels, tally in
            var cumulative: UInt64 = 0
            var buckets: [(le: Double, cumulative: UInt64)] = []
            for index in 0..<(RTTHistogram.bucketCount - 1) {
                cumulative += tally[TCPLabel(what: "rtt", value: String(index))]
                buckets.append((RTTHistogram.upperBound(ofBucket: index) ?? .infinity, cumulative))
            }
            cumulative += tally[TCPLabel(what: "rtt", value: String(RTTHistogram.bucketCount - 1))]
            out.histogram(name, rowLabels, buckets: buckets, count: cumulative, sum: Double(tally[TCPLabel(what: "rtt_sum_us", value: "")]) / 1e6)
        }
        for (name, help, values) in [
            ("netacct_tcp_unattributed_resets_total", "TCP resets of no process's socket (answers to segments for no socket), by direction",
             [("sent", unattributed.resetsSent), ("received", unattributed.resetsReceived)]),
            ("netacct_tcp_unattributed_retransmitted_segments_total", "TCP segments sent again by no process's socket", [("", unattributed.retransmitted)]),
        ] as [(String, String, [(String, UInt64)])] {
            out.family(name, .counter, help: help)
            for (direction, value) in values { out.sample(name, direction.isEmpty ? [] : [("direction", direction)], value) }
        }
    }

    var losses: [String] { current.losses.phrases }
}

/// One TCP health count of a tally: what (`retransmitted_segments`, `resets`, `rtt`, …) and
/// its label's value (a cause, a direction, an RTT bucket's index; "" for none).
struct TCPLabel: TallyLabel {
    var what: String
    var value: String
    /// Groups rank by segments sent again.
    var ranks: Bool { what == "retransmitted_segments" }
}

extension Tally<TCPLabel> {
    init(_ c: TCPHealthCounters) {
        self.init()
        for cause in RetransmitCause.allCases {
            self[TCPLabel(what: "retransmitted_segments", value: cause.rawValue)] = c.retransmittedSegments[cause]
            self[TCPLabel(what: "retransmitted_bytes", value: cause.rawValue)] = c.retransmittedBytes[cause]
        }
        self[TCPLabel(what: "resets", value: "sent")] = c.resetsSent
        self[TCPLabel(what: "resets", value: "received")] = c.resetsReceived
        self[TCPLabel(what: "zero_windows", value: "received")] = c.zeroWindowsReceived
        self[TCPLabel(what: "zero_windows", value: "sent")] = c.zeroWindowsSent
        self[TCPLabel(what: "failed_connects", value: "")] = c.failedConnects
        self[TCPLabel(what: "timeouts", value: "")] = c.timeouts
        self[TCPLabel(what: "window_probes", value: "")] = c.windowProbes
        for (index, n) in c.rtt.buckets.enumerated() { self[TCPLabel(what: "rtt", value: String(index))] = n }
        self[TCPLabel(what: "rtt_sum_us", value: "")] = c.rtt.sumMicroseconds
    }
}
