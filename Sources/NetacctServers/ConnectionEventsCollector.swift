import Connections
import DaemonProtocol
import NetacctKit

/// The connections tool as a collector (`netacct daemon --connection-events`): verb
/// `connection_events`, the TCP connections established (by connect or accept), the connects
/// that failed (by errno name), the established connections closed, and the handshake of the
/// connects established, since the daemon started, in all and per process group and cgroup of
/// the process that connected or accepted. The connections tool's events, with every kind
/// asked for, taken from its ring buffer without waiting every maintenance interval and before
/// each answer; what the kernel could not deliver is counted (`losses`). A close of a connection
/// older than the daemon has no process: it is in the `-` rows.
final class ConnectionEventsCollector: Collector {
    private let engine: ConnectionsEngine
    private var counts: AttributedCounts<ConnectionLabel>

    init(engine: ConnectionsEngine, top: Int, pids: Bool) {
        precondition(engine.filter.failed && engine.filter.closes && !engine.filter.filtersCallers, "every event")
        self.engine = engine
        counts = AttributedCounts(top: top, pids: pids)
    }

    var verb: DaemonAPI.Verb { .connectionEvents }

    func maintain(interval: Double) throws -> Bool { try read() }

    /// Adds the events waiting in the ring buffer; returns whether there were any.
    private func read() throws -> Bool {
        let events = try engine.drain()
        counts.add(Self.tally(events))
        return !events.isEmpty
    }

    /// Events' counts by the process that made each connection (nil: not known).
    static func tally(_ events: [ConnectionEvent]) -> [AttributedCounts<ConnectionLabel>.Owner?: Tally<ConnectionLabel>] {
        var batch: [AttributedCounts<ConnectionLabel>.Owner?: Tally<ConnectionLabel>] = [:]
        for event in events {
            let owner = event.pid.map { AttributedCounts<ConnectionLabel>.Owner(comm: event.processComm ?? "", pid: $0, cgroup: event.cgroupID ?? 0) }
            switch event.kind {
            case .connect:
                batch[owner, default: .zero][.connect] += 1
                if let latency = event.latencyMicroseconds.map(UInt64.init) {
                    batch[owner, default: .zero][.latency(ConnectionLabel.bounds.firstIndex { latency <= $0 } ?? ConnectionLabel.bounds.count)] += 1
                    batch[owner, default: .zero][.latencySum] += latency
                }
            case .accept: batch[owner, default: .zero][.accept] += 1
            case .failed: batch[owner, default: .zero][.failure(ConnectionEvent.errorName(event.error ?? 0))] += 1
            case .close: batch[owner, default: .zero][.close] += 1
            }
        }
        return batch
    }

    func answer(client: APIClientID) throws -> any DaemonReply {
        _ = try read()
        let (groups, cgroups) = counts.records(ConnectionCounts.init)
        return ConnectionEventsReply(total: ConnectionCounts(counts.total), processGroups: groups, cgroups: cgroups,
                                     lostEvents: try engine.lostEvents(), unfollowedConnections: try engine.untrackedConnections())
    }

    func writeMetrics(into out: inout PrometheusText) {
        _ = try? read()
        Self.write(counts, into: &out)
        out.family("netacct_connection_events_lost_total", .counter, help: "connection events the kernel could not deliver (its ring buffer was full): not counted")
        out.sample("netacct_connection_events_lost_total", (try? engine.lostEvents()) ?? 0)
        out.family("netacct_connections_unfollowed_total", .counter, help: "TCP connections the kernel could not follow (its table was full): their close has no process")
        out.sample("netacct_connections_unfollowed_total", (try? engine.untrackedConnections()) ?? 0)
    }

    /// Opened, failed, closed, and the handshakes' histogram: in all, per group, per cgroup.
    static func write(_ counts: AttributedCounts<ConnectionLabel>, into out: inout PrometheusText) {
        counts.write(&out, "connections_opened_total", .counter, help: "TCP connections established, by direction: connect or accept (netacct connections)") { out, name, labels, tally in
            out.sample(name, labels + [("direction", "connect")], tally[.connect])
            out.sample(name, labels + [("direction", "accept")], tally[.accept])
        }
        counts.write(&out, "connection_failures_total", .counter, help: "TCP connects that failed, by errno name (ECONNREFUSED, ETIMEDOUT…)") { out, name, labels, tally in
            for failure in tally.failures { out.sample(name, labels + [("errno", failure.error)], failure.count) }
        }
        counts.write(&out, "connections_closed_total", .counter, help: "established TCP connections closed") { out, name, labels, tally in
            out.sample(name, labels, tally[.close])
        }
        // (20 series a row: only for the rows with connects, and in all.)
        counts.write(&out, "connect_duration_seconds", .histogram, help: "the handshake of TCP connects established: SYN sent to SYN-ACK received") { out, name, labels, tally in
            guard tally[.connect] > 0 || labels.isEmpty else { return }
            var cumulative: UInt64 = 0
            let buckets = ConnectionLabel.bounds.indices.map { index in
                cumulative += tally[.latency(index)]
                return (le: Double(ConnectionLabel.bounds[index]) / 1e6, cumulative: cumulative)
            }
            out.histogram(name, labels, buckets: buckets, count: cumulative + tally[.latency(ConnectionLabel.bounds.count)], sum: Double(tally[.latencySum]) / 1e6)
        }
    }

    var losses: [String] {
        let lost = (try? engine.lostEvents()) ?? 0, unfollowed = (try? engine.untrackedConnections()) ?? 0
        return (lost > 0 ? ["\(lost) connection events lost (the ring buffer was full)"] : [])
            + (unfollowed > 0 ? ["\(unfollowed) connections not followed (the kernel's table was full)"] : [])
    }
}

/// What a connection event is counted by.
enum ConnectionLabel: TallyLabel {
    case connect, accept, close
    /// A failed connect, by errno name.
    case failure(String)
    /// An established connect's handshake: its bucket (`bounds`' index, `bounds.count` beyond),
    /// and the sum in µs.
    case latency(Int), latencySum

    /// The handshake histogram's bounds in µs, inclusive: 50 µs (loopback) to 10 s (SYNs sent again).
    static let bounds: [UInt64] = [50, 100, 250, 500, 1000, 2500, 5000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
                                   1_000_000, 2_500_000, 5_000_000, 10_000_000]

    var ranks: Bool {
        switch self {
        case .latency, .latencySum: false
        default: true
        }
    }
}

extension Tally<ConnectionLabel> {
    /// By errno name.
    var failures: [ConnectionCounts.Failure] {
        counts.compactMap { label, count in
            guard case .failure(let error) = label else { return nil }
            return ConnectionCounts.Failure(error: error, count: count)
        }.sorted { $0.error < $1.error }
    }
}

extension ConnectionCounts {
    init(_ tally: Tally<ConnectionLabel>) {
        let buckets = (0...ConnectionLabel.bounds.count).compactMap { index -> Bucket? in
            let count = tally[.latency(index)]
            return count == 0 ? nil : Bucket(leUs: index < ConnectionLabel.bounds.count ? ConnectionLabel.bounds[index] : nil, count: count)
        }
        self.init(connects: tally[.connect], accepts: tally[.accept], failures: tally.failures, closes: tally[.close],
                  connectLatency: Histogram(count: buckets.reduce(0) { $0 + $1.count }, sumUs: tally[.latencySum], buckets: buckets))
    }
}
