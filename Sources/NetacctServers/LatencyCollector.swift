import DaemonProtocol
import Latency
import NetacctKit

/// The latency tool as a collector (`netacct daemon --latency`): verb `latency`, for each
/// direction the histogram of each stage (and the total) since the daemon started, counted in
/// the kernel (the fields of `netacct latency --hist --json`'s stages, plus `sum_us`), for every
/// TCP segment of the daemon's network namespace, or with `--all-namespaces` of every namespace,
/// each with its own histograms (the IP points attached in each as namespaces come, detached
/// and their histograms dropped as they go). Nothing crosses to user space per packet, and
/// nothing waits on the event loop: each answer reads what the kernel counted since the
/// programs were loaded (their histograms are never taken, so they hold it all).
final class LatencyCollector: Collector {
    private let engines: [LatencyEngine]
    /// Every namespace: the namespaces followed.
    private var namespaces: NamespaceDirectory?
    /// Namespaces with histograms that the last reading did not find.
    private var absent: Set<UInt32> = []

    init(engines: [LatencyEngine], allNamespaces: Bool) {
        self.engines = engines
        if allNamespaces {
            let directory = NamespaceDirectory(scope: .all)
            for engine in engines { engine.follow(present: Array(directory.entries.values)) }
            namespaces = directory
        }
    }

    var verb: DaemonAPI.Verb { .latency }

    /// Every namespace: attaches in those that came, detaches from those gone (once a second,
    /// the maintenance interval).
    func maintain(interval: Double) throws -> Bool {
        guard namespaces != nil else { return false }
        _ = namespaces!.refresh()
        let present = namespaces!.entries
        for engine in engines {
            engine.follow(present: Array(present.values))
            // Histograms of namespaces gone (or of segments that ended after they went): out,
            // once absent from two readings in a row (one made meanwhile is not yet known).
            let counted = Set(((try? engine.countedSinceLoadByNamespace()) ?? [:]).keys)
            for inode in counted where present[inode] == nil && absent.contains(inode) { try? engine.forgetHistograms(of: inode) }
        }
        let counted = Set(engines.flatMap { ((try? $0.countedSinceLoadByNamespace()) ?? [:]).keys })
        absent = Set(counted.filter { present[$0] == nil })
        return false
    }

    /// Each direction's histograms: one set, or one per namespace (by name, then inode).
    private func histograms() throws -> [(engine: LatencyEngine, namespace: NamespaceLabel?, stages: [LatencyHistogram])] {
        try engines.flatMap { engine -> [(engine: LatencyEngine, namespace: NamespaceLabel?, stages: [LatencyHistogram])] in
            guard let namespaces else { return [(engine, nil, try engine.countedSinceLoad())] }
            return try engine.countedSinceLoadByNamespace().map { (engine, namespaces.label($0.key), $0.value) }
                .sorted { ($0.namespace!.display, $0.namespace!.inode) < ($1.namespace!.display, $1.namespace!.inode) }
        }
    }

    func answer(client: APIClientID) throws -> any DaemonReply {
        LatencyReply(directions: try histograms().map { LatencyReply.Direction($0.engine.direction, $0.stages, netns: $0.namespace) })
    }

    /// `netacct_latency_seconds{direction,stage}` (and `netns`, `container`… with
    /// `--all-namespaces`): a histogram per stage and the total, with power-of-two bounds from
    /// 1 µs to ~1 s (the kernel's buckets are finer; these bounds are some of theirs, so the
    /// counts are exact).
    func writeMetrics(into out: inout PrometheusText) {
        let name = "netacct_latency_seconds"
        out.family(name, .histogram, help: "time TCP segments spent in each kernel layer, in and out (netacct latency), since the daemon started")
        for (engine, namespace, histograms) in (try? histograms()) ?? [] {
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
                out.histogram(name, [("direction", engine.direction.rawValue), ("stage", stage.lowercased())] + (namespace?.metricLabels ?? []),
                              buckets: buckets, count: histogram.count, sum: Double(histogram.sumNanoseconds) / 1e9)
            }
        }
        let unfollowed = "netacct_latency_unfollowed_segments_total"
        out.family(unfollowed, .counter, help: "segments not timed, by why: table_full, socket_full (its socket's queue of segments full), dropped, left_the_path (in: forwarded, no socket), and with --all-namespaces namespaces_full (no histograms left for their namespace)")
        for engine in engines {
            guard let losses = try? engine.losses() else { continue }
            var reasons = [("table_full", losses.tableFull), ("socket_full", losses.socketFull),
                           ("dropped", losses.dropped), ("left_the_path", losses.leftThePath)]
            if namespaces != nil { reasons.append(("namespaces_full", losses.namespacesFull)) }
            for (reason, value) in reasons {
                out.sample(unfollowed, [("direction", engine.direction.rawValue), ("reason", reason)], value)
            }
        }
        if namespaces != nil {
            let name = "netacct_latency_unfollowed_namespaces_total"
            out.family(name, .counter, help: "network namespaces whose IP points could not be attached (entered, or the link made)")
            for engine in engines { out.sample(name, [("direction", engine.direction.rawValue)], engine.namespacesNotFollowed) }
        }
    }

    var losses: [String] {
        engines.compactMap { engine in
            guard let losses = try? engine.losses(), losses.tableFull + losses.socketFull + losses.namespacesFull > 0 else { return nil }
            return "\(losses.tableFull + losses.socketFull + losses.namespacesFull) segments not followed by latency \(engine.direction.rawValue) (tables full)"
        } + engines.compactMap { engine in
            engine.namespacesNotFollowed > 0 ? "\(engine.namespacesNotFollowed) network namespaces not followed by latency \(engine.direction.rawValue)" : nil
        }
    }
}

extension LatencyReply.Direction {
    /// A direction's histograms, its stages' then the total's.
    init(_ direction: LatencyDirection, _ histograms: [LatencyHistogram], netns: NamespaceLabel? = nil) {
        let names = LatencyRenderer(direction: direction, wallClockOffset: 0).stageNames
        self.init(direction: direction.rawValue, stages: zip(names, histograms).map { name, h in
            let us = { (p: Double) in h.percentile(p).map(Microseconds.init(nanoseconds:)) }
            return .init(stage: name.lowercased(), count: h.count, p50Us: us(0.5), p90Us: us(0.9), p99Us: us(0.99),
                         maxUs: h.count > 0 ? Microseconds(nanoseconds: h.maxNanoseconds) : nil, sumUs: Microseconds(nanoseconds: h.sumNanoseconds),
                         buckets: h.octaves.map { .init(leUs: Microseconds(nanoseconds: $0.upper), count: $0.count) })
        }, netns: netns.map(NamespaceRecord.init))
    }
}
