import DaemonProtocol
import Drops
import NetacctKit

/// The drops tool as a collector (`netacct daemon --drops`): verb `drops`, the incoming TCP and
/// UDP packets of the daemon's network namespace that the kernel dropped since the daemon
/// started, by reason and protocol, in all and per process group and cgroup of the socket's
/// owner. Counted in the kernel as `netacct drops --summary` counts them (per socket, reason and
/// protocol, and per reason and protocol whatever the socket: nothing is lost), read every
/// maintenance interval and before each answer (`DropsSummary`'s arithmetic). A drop with no
/// owner known (no socket: nothing listens; an owner the kernel forgot; a count the per-socket
/// table had no room for) is in the `-` rows. A socket whose count has not moved for
/// `idleSeconds` is taken out of the kernel's per-socket table, which would fill up otherwise.
final class DropsCollector: Collector {
    static let idleSeconds = 10.0
    private let engine: DropsEngine
    private var summary: DropsSummary
    private var counts: AttributedCounts<DropLabel>
    /// When each socket's count last moved.
    private var lastChange: [DropKey: Double] = [:]
    /// Every namespace (`--all-namespaces`): their names, read again at most once a second.
    private var namespaces: NamespaceDirectory?
    private var named = -Double.infinity

    init(engine: DropsEngine, top: Int, pids: Bool) {
        precondition(engine.summary, "the engine counts in the kernel")
        self.engine = engine
        namespaces = engine.namespace == 0 ? NamespaceDirectory(scope: .all) : nil
        summary = DropsSummary(reasons: engine.reasons, pids: [], counted: [:], totals: [:])
        counts = AttributedCounts(top: top, pids: pids)
    }

    var verb: DaemonAPI.Verb { .drops }

    func maintain(interval: Double) throws -> Bool { try read() }

    /// A namespace's label as last seen (its series keep their labels after it has gone).
    private var namespaceLabel: (UInt32) -> NamespaceLabel {
        let known = labels
        return { known[$0] ?? NamespaceLabel(inode: $0) }
    }
    /// Every label seen, by inode: kept while the daemon runs, as the counts they name are.
    private var labels: [UInt32: NamespaceLabel] = [:]

    /// Adds the drops counted since the last reading; returns whether there were any.
    private func read(now: Double = StopSignals.now()) throws -> Bool {
        let current = try engine.counted(), before = summary.counted
        if namespaces != nil, now - named >= 1 {
            _ = namespaces?.refresh()
            for (inode, entry) in namespaces?.entries ?? [:] { labels[inode] = entry.label }
            named = now
        }
        let label = namespaces.map { directory in { directory.label($0) } }
        let rows = summary.interval(counted: current, totals: try engine.totalsByReason(), namespace: label) { engine.owner(of: $0, rescanning: false) }
        counts.add(Self.tally(rows))
        for (key, value) in current where before[key] != value { lastChange[key] = now }
        let idle = current.keys.filter { now - (lastChange[$0] ?? now) >= Self.idleSeconds }
        if !idle.isEmpty {
            try engine.forget(idle)
            summary.forget(idle)
            for key in idle { lastChange[key] = nil }
        }
        return !rows.isEmpty
    }

    /// An interval's rows by owner (nil: not known).
    static func tally(_ rows: [DropsRenderer.Interval.Row]) -> [AttributedCounts<DropLabel>.Owner?: Tally<DropLabel>] {
        var batch: [AttributedCounts<DropLabel>.Owner?: Tally<DropLabel>] = [:]
        for row in rows {
            batch[row.owner.map { .init(comm: $0.comm, pid: $0.pid, cgroup: $0.cgroup) }, default: .zero][DropLabel(reason: row.reason, proto: row.proto, netns: row.namespace?.inode)] += row.count
        }
        return batch
    }

    func answer(client: APIClientID) throws -> any DaemonReply {
        _ = try read()
        let label = namespaceLabel
        let (groups, cgroups) = counts.records { $0.dropCounts(label) }
        return DropsReply(total: counts.total.dropCounts(label), processGroups: groups, cgroups: cgroups, unkeyedDrops: try engine.unkeyedDrops())
    }

    func writeMetrics(into out: inout PrometheusText) {
        _ = try? read()
        Self.write(counts, namespace: namespaceLabel, into: &out)
        out.family("netacct_drops_unkeyed_total", .counter, help: "drops counted without their socket (the kernel's per-socket table was full): their owner is unknown")
        out.sample("netacct_drops_unkeyed_total", (try? engine.unkeyedDrops()) ?? 0)
    }

    /// By reason and protocol: in all, per group, per cgroup.
    static func write(_ counts: AttributedCounts<DropLabel>, namespace: (UInt32) -> NamespaceLabel = { NamespaceLabel(inode: $0) },
                      into out: inout PrometheusText) {
        counts.write(&out, "drops_total", .counter, help: "incoming TCP and UDP packets the kernel dropped, by reason (the kernel's name) and protocol (netacct drops)") { out, name, labels, tally in
            for (label, count) in tally.counts.sorted(by: { ($0.key.reason, $0.key.proto, $0.key.netns ?? 0) < ($1.key.reason, $1.key.proto, $1.key.netns ?? 0) }) {
                out.sample(name, labels + [("reason", label.reason), ("protocol", label.proto)] + (label.netns.map { namespace($0).metricLabels } ?? []), count)
            }
        }
    }

    var losses: [String] {
        let unkeyed = (try? engine.unkeyedDrops()) ?? 0
        return unkeyed > 0 ? ["\(unkeyed) drops counted without their socket's owner (the kernel's per-socket table was full)"] : []
    }
}

/// What a drop is counted by: the kernel's name of its reason, and its protocol.
struct DropLabel: TallyLabel {
    var reason: String
    var proto: String
    /// Its network namespace's inode (a daemon that follows every one: `--all-namespaces`),
    /// named when written, by what the namespace is then.
    var netns: UInt32? = nil
}

extension Tally<DropLabel> {
    /// By reason and protocol.
    var dropCounts: [DropCount] { dropCounts { NamespaceLabel(inode: $0) } }

    /// By reason and protocol (and namespace, named by `label`).
    func dropCounts(_ label: (UInt32) -> NamespaceLabel) -> [DropCount] {
        counts.map { DropCount(reason: $0.key.reason, protocol: $0.key.proto, count: $0.value, netns: $0.key.netns.map { NamespaceRecord(label($0)) }) }
            .sorted { ($0.reason, $0.protocol, $0.netns?.inode ?? 0) < ($1.reason, $1.protocol, $1.netns?.inode ?? 0) }
    }
}
