import DaemonProtocol
import Latency
import NetacctKit

/// The latency tool as a collector (`netacct daemon --latency`): verb `latency`, for each
/// direction the histogram of each stage (and the total) since the daemon started, counted in
/// the kernel (the fields of `netacct latency --hist --json`'s stages, plus `sum_us`), for every
/// TCP segment of the daemon's network namespace. Nothing crosses to user space per packet,
/// and nothing waits on the event loop: each answer reads what the kernel counted since the
/// programs were loaded (their histograms are never taken, so they hold it all).
final class LatencyCollector: Collector {
    private let engines: [LatencyEngine]

    init(engines: [LatencyEngine]) {
        self.engines = engines
    }

    var verb: DaemonAPI.Verb { .latency }

    func maintain(interval: Double) throws -> Bool { false }

    func answer(client: APIClientID) throws -> any DaemonReply {
        let totals = try engines.map { try $0.countedSinceLoad() }
        return LatencyReply(directions: zip(engines, totals).map { LatencyReply.Direction($0.direction, $1) })
    }

    /// `netacct_latency_seconds{direction,stage}`: a histogram per stage and the total, with
    /// power-of-two bounds from 1 µs to ~1 s (the kernel's buckets are finer; these bounds are
    /// some of theirs, so the counts are exact).
    func writeMetrics(into out: inout PrometheusText) {
        let totals = engines.map { (try? $0.countedSinceLoad()) ?? [] }
        let name = "netacct_latency_seconds"
        out.family(name, .histogram, help: "time TCP segments spent in each kernel layer, in and out (netacct latency), since the daemon started")
        for (engine, histograms) in zip(engines, totals) {
            let stages = LatencyRenderer(direction: engine.direction, wallClockOffset: 0).stageNames
            for (stage, histogram) in zip(stages, histograms) {
                var cumulative: UInt64 = 0, bucket = 0
                let buckets = (10...30).map { power in
                    let bound = UInt64(1) << UInt64(power)
                    while bucket < histogram.buckets.count && LatencyHistogram.range(of: bucket).upper <= bound {
                        cumulative += histogram.buckets[bucket]
                        bucket += 1
                    }
                    return (le: Double(bound) / 1e9, cumulative: cumulative)
                }
                out.histogram(name, [("direction", engine.direction.rawValue), ("stage", stage.lowercased())], buckets: buckets,
                              count: histogram.count, sum: Double(histogram.sumNanoseconds) / 1e9)
            }
        }
        let unfollowed = "netacct_latency_unfollowed_segments_total"
        out.family(unfollowed, .counter, help: "segments not timed, by why: table_full, socket_full (its socket's queue of segments full), dropped, left_the_path (in: forwarded, no socket)")
        for engine in engines {
            guard let losses = try? engine.losses() else { continue }
            for (reason, value) in [("table_full", losses.tableFull), ("socket_full", losses.socketFull),
                                    ("dropped", losses.dropped), ("left_the_path", losses.leftThePath)] {
                out.sample(unfollowed, [("direction", engine.direction.rawValue), ("reason", reason)], value)
            }
        }
    }

    var losses: [String] {
        engines.compactMap { engine in
            guard let losses = try? engine.losses(), losses.tableFull + losses.socketFull > 0 else { return nil }
            return "\(losses.tableFull + losses.socketFull) segments not followed by latency \(engine.direction.rawValue) (tables full)"
        }
    }
}

extension LatencyReply.Direction {
    /// A direction's histograms, its stages' then the total's.
    init(_ direction: LatencyDirection, _ histograms: [LatencyHistogram]) {
        let names = LatencyRenderer(direction: direction, wallClockOffset: 0).stageNames
        self.init(direction: direction.rawValue, stages: zip(names, histograms).map { name, h in
            let us = { (p: Double) in h.percentile(p).map(Microseconds.init(nanoseconds:)) }
            return .init(stage: name.lowercased(), count: h.count, p50Us: us(0.5), p90Us: us(0.9), p99Us: us(0.99),
                         maxUs: h.count > 0 ? Microseconds(nanoseconds: h.maxNanoseconds) : nil, sumUs: Microseconds(nanoseconds: h.sumNanoseconds),
                         buckets: h.octaves.map { .init(leUs: Microseconds(nanoseconds: $0.upper), count: $0.count) })
        })
    }
}
