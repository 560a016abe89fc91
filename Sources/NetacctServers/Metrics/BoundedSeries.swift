import Accounting
import NetacctKit

/// Counts per key (a process group, a cgroup) as a bounded set of Prometheus series: the
/// `limit` busiest keys (by their counts since the daemon started, `weight`) are series of their
/// own, and one `other` series holds the rest, so that the series always add up to the total.
///
/// Every exported value is monotonic. A key that stops being a series hands everything it had
/// to `other` (its series disappears: Prometheus marks it stale); if it becomes a series again,
/// its series starts from zero, a new series in effect, and its earlier counts stay in
/// `other`. A key seen for the first time and chosen at once keeps all its counts. Keys with
/// nothing live that are not series are forgotten (their counts stay in `other`) once more than
/// `limit × 4` of them are remembered.
struct BoundedSeries<Key: Hashable, Value: SeriesValue> {
    struct Entry {
        /// The key's counts since start: what its exited processes ended with (or every count,
        /// for a key with nothing live), plus its live ones'.
        var finished = Value.zero
        var live = Value.zero
        /// The part of its counts counted in `other` (while it was not a series).
        var absent = Value.zero
        var lastTotal = Value.zero
        var isSeries = false
        var seen = false
        var total: Value { finished + live }
        /// Its series' value.
        var value: Value { total.since(absent) }
    }

    let limit: Int
    private(set) var entries: [Key: Entry] = [:]
    /// `other`'s share of the keys forgotten.
    private var forgottenOther = Value.zero

    init(limit: Int) { self.limit = max(0, limit) }

    /// A process of `key` exited with `total`: it moves from live to finished (the next
    /// `update` gets live totals without it).
    mutating func finish(_ key: Key, _ total: Value) {
        entries[key, default: Entry()].finished = entries[key, default: Entry()].finished + total
    }

    /// The live processes' totals per key, now (keys absent have none live); then chooses the
    /// series: the `limit` keys with the most bytes since start. On a tie a series stays one
    /// (else keys of equal weight would swap places, each swap starting a series from zero).
    mutating func update(live: [Key: Value] = [:]) {
        for key in Array(entries.keys) { entries[key]!.live = .zero }
        for (key, total) in live { entries[key, default: Entry()].live = total }
        let ranked = entries.sorted { a, b in
            let (x, y) = (a.value.total.weight, b.value.total.weight)
            return x != y ? x > y : a.value.isSeries && !b.value.isSeries
        }
        let chosen = Set(ranked.prefix(limit).map(\.key))
        for (key, var entry) in entries {
            let chosenNow = chosen.contains(key)
            if !entry.seen {
                // First seen: chosen at once, it keeps all its traffic; else all is other's.
                entry.absent = chosenNow ? .zero : entry.total
            } else if !entry.isSeries {
                entry.absent = entry.absent + entry.total.since(entry.lastTotal)
            } else if !chosenNow {
                entry.absent = entry.total
            }
            entry.seen = true
            entry.lastTotal = entry.total
            entry.isSeries = chosenNow
            entries[key] = entry
        }
        forgetIdle()
    }

    private mutating func forgetIdle() {
        let idle = entries.filter { !$0.value.isSeries && $0.value.live.isZero }
        guard idle.count > limit * 4 else { return }
        for (key, entry) in idle.prefix(idle.count - limit * 4) {
            forgottenOther = forgottenOther + entry.absent
            entries[key] = nil
        }
    }

    /// The series, busiest first.
    var series: [(key: Key, value: Value)] {
        entries.filter(\.value.isSeries).map { ($0.key, $0.value.value) }.sorted { $0.value.weight > $1.value.weight }
    }

    /// Everything not in a series.
    var other: Value { entries.values.reduce(forgottenOther) { $0 + $1.absent } }
}

/// What a bounded series counts: counters that add up and never go back.
protocol SeriesValue {
    static var zero: Self { get }
    static func + (a: Self, b: Self) -> Self
    /// The counts since `earlier` (a counter below its earlier value gives 0).
    func since(_ earlier: Self) -> Self
    var isZero: Bool { get }
    /// What ranks a key among the others: the heaviest keep series of their own.
    var weight: UInt64 { get }
}

/// Traffic ranks by its bytes, both ways.
extension Traffic: SeriesValue {
    var weight: UInt64 { rxBytes &+ txBytes }
}

/// Counts by label (a drop's reason and protocol, a connection event's kind), sparse: a label
/// never counted has no entry.
struct Tally<Label: TallyLabel>: SeriesValue, Equatable {
    private(set) var counts: [Label: UInt64] = [:]

    static var zero: Tally { Tally() }
    subscript(label: Label) -> UInt64 {
        get { counts[label] ?? 0 }
        set { counts[label] = newValue == 0 ? nil : newValue }
    }
    static func + (a: Tally, b: Tally) -> Tally {
        var sum = a
        for (label, count) in b.counts { sum[label] &+= count }
        return sum
    }
    func since(_ earlier: Tally) -> Tally {
        var result = Tally()
        for (label, count) in counts { result[label] = count - min(count, earlier[label]) }
        return result
    }
    var isZero: Bool { counts.isEmpty }
    var weight: UInt64 { counts.reduce(0) { $1.key.ranks ? $0 &+ $1.value : $0 } }
}

protocol TallyLabel: Hashable {
    /// Whether its counts rank their key (a histogram's buckets and sum do not: its count does).
    var ranks: Bool { get }
}

extension TallyLabel {
    var ranks: Bool { true }
}

/// Per process group and per cgroup, each a `BoundedSeries` (`--metrics-top`), with the labels
/// of their families: `group` (with `--metrics-pids`, `pid`) and `cgroup`, `name`, `kind`. A
/// process group is a command name (a process's, its group leader's); a cgroup its path under
/// the cgroup2 mount (`#id` once gone). Counts no process is known for are the group and the
/// cgroup `-` (kind `none`); a process named `other` or `-` is `other (process name)`, `- (process
/// name)` (no task name is 20 bytes long).
struct GroupedSeries<Value: SeriesValue> {
    struct Group: Hashable {
        /// nil: no process known.
        var comm: String?
        var pid: Int32?
    }

    /// The cgroup of counts no process is known for.
    static var unknownCgroup: String { "-" }
    let pids: Bool
    private(set) var groups: BoundedSeries<Group, Value>
    private(set) var cgroups: BoundedSeries<String, Value>

    init(top: Int, pids: Bool) {
        self.pids = pids
        groups = BoundedSeries(limit: top)
        cgroups = BoundedSeries(limit: top)
    }

    func group(comm: String?, pid: Int32?) -> Group { Group(comm: comm, pid: pids && comm != nil ? pid : nil) }

    /// A cgroup's key: its path, `#id` once it is gone, `-` when unknown.
    static func cgroup(_ id: UInt64?, _ names: inout CgroupNames) -> String {
        guard let id, id != 0 else { return unknownCgroup }
        return names.path(of: id) ?? "#\(id)"
    }

    /// Counts that will not change any more (an exited process's; every new count of a key
    /// with nothing live): they stay in the key's series.
    mutating func finish(_ group: Group, _ cgroup: String, _ value: Value) {
        groups.finish(group, value)
        cgroups.finish(cgroup, value)
    }

    /// The live processes' counts now, per group and per cgroup; chooses the series.
    mutating func update(groups live: [Group: Value] = [:], cgroups liveCgroups: [String: Value] = [:]) {
        groups.update(live: live)
        cgroups.update(live: liveCgroups)
    }

    /// Each series' labels and value, busiest first, then other's.
    var groupRows: [(labels: [(String, String)], value: Value)] {
        groups.series.map { key, value in
            var labels = [("group", key.comm.map { ["other", "-"].contains($0) ? "\($0) (process name)" : $0 } ?? "-")]
            if pids { labels.append(("pid", key.pid.map(String.init) ?? "")) }
            return (labels, value)
        } + [(pids ? [("group", "other"), ("pid", "")] : [("group", "other")], groups.other)]
    }

    var cgroupRows: [(labels: [(String, String)], value: Value)] {
        cgroups.series.map { path, value in
            let workload = path.hasPrefix("/") ? Workload(path: path) : Workload(kind: .other, name: path)
            return ([("cgroup", path), ("name", workload.name), ("kind", path == Self.unknownCgroup ? "none" : workload.kind.rawValue)], value)
        } + [([("cgroup", "other"), ("name", "other"), ("kind", "other")], cgroups.other)]
    }
}
