import Accounting

/// Counters per key (a process group, a cgroup) as a bounded set of Prometheus series: the
/// `limit` busiest keys (by their traffic since the daemon started) are series of their own,
/// and one `other` series holds the rest, so that the series always add up to the total.
///
/// Every exported value is monotonic. A key that stops being a series hands everything it had
/// to `other` (its series disappears: Prometheus marks it stale); if it becomes a series again,
/// its series starts from zero, a new series in effect, and its earlier traffic stays in
/// `other`. A key seen for the first time and chosen at once keeps all its traffic. Keys whose
/// processes have all gone and that are not series are forgotten (their traffic stays in
/// `other`) once more than `limit × 4` of them are remembered.
struct BoundedSeries<Key: Hashable> {
    struct Entry {
        /// The key's traffic since start: what its exited processes ended with, plus its live ones'.
        var finished = Traffic.zero
        var live = Traffic.zero
        /// The part of its traffic counted in `other` (while it was not a series).
        var absent = Traffic.zero
        var lastTotal = Traffic.zero
        var isSeries = false
        var seen = false
        var total: Traffic { finished + live }
        /// Its series' value.
        var value: Traffic { total.since(absent) }
    }

    let limit: Int
    private(set) var entries: [Key: Entry] = [:]
    /// `other`'s share of the keys forgotten.
    private var forgottenOther = Traffic.zero

    init(limit: Int) { self.limit = max(0, limit) }

    /// A process of `key` exited with `total`: it moves from live to finished (the next
    /// `update` gets live totals without it).
    mutating func finish(_ key: Key, _ total: Traffic) {
        entries[key, default: Entry()].finished = entries[key, default: Entry()].finished + total
    }

    /// The live processes' totals per key, now (keys absent have none live); then chooses the
    /// series: the `limit` keys with the most bytes since start.
    mutating func update(live: [Key: Traffic]) {
        for key in Array(entries.keys) { entries[key]!.live = .zero }
        for (key, total) in live { entries[key, default: Entry()].live = total }
        let ranked = entries.sorted { ($0.value.total.rxBytes &+ $0.value.total.txBytes) > ($1.value.total.rxBytes &+ $1.value.total.txBytes) }
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
    var series: [(key: Key, value: Traffic)] {
        entries.filter(\.value.isSeries).map { ($0.key, $0.value.value) }
            .sorted { ($0.value.rxBytes &+ $0.value.txBytes) > ($1.value.rxBytes &+ $1.value.txBytes) }
    }

    /// Everything not in a series.
    var other: Traffic { entries.values.reduce(forgottenOther) { $0 + $1.absent } }
}
