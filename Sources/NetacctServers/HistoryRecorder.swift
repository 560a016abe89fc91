import Glibc
import Logging
import Synchronization
import Accounting
import History
import DaemonProtocol
import NetacctKit
import NIOPosix

/// `netacct daemon --history`: every interval, each process's traffic in it (the accounting
/// service's cumulative counters, less what the last interval had; exited processes once)
/// goes to the history file, with what the other collectors' counters gained (nic's queues,
/// the wire's interfaces, TCP health's totals). The event loop only takes the sample; a thread
/// of its own writes it, so that a slow or full disk never delays atop. Intervals the writer is too far behind
/// for (more than `backlog` waiting) are dropped, and failed writes are counted and said: the
/// daemon goes on counting and serving either way.
/// `tick` is called on the daemon's event loop only.
final class HistoryRecorder {
    private let service: AccountingService
    private let client: AccountingService.ClientID
    let writer: HistoryWriter
    let interval: Double
    private var last: [ProcessID: Traffic] = [:]
    private var lastTick: Int64 = 0
    private var cgroups = CgroupNames()

    /// The other collectors, whose counters are recorded too, and their last values.
    private let collectors: [any Collector]
    private var lastSeries: [SeriesKey: UInt64] = [:]
    private struct SeriesKey: Hashable {
        var source: String, labels: String, name: String
    }

    init(service: AccountingService, collectors: [any Collector], store: HistoryStore, interval: Double, retention: HistoryRetention, logger: Logger) throws {
        self.service = service
        self.collectors = collectors
        self.interval = interval
        let client = service.connect()
        self.client = client
        // What each process has counted so far belongs to no interval of the history.
        var baseline: [ProcessID: Traffic] = [:]
        do {
            try service.refresh(reporting: .all)
        } catch {
            service.disconnect(client)
            throw error
        }
        for process in service.processes(for: client) where !process.exited { baseline[process.id] = process.total }
        last = baseline
        // Last: nothing to stop if what comes before fails.
        writer = HistoryWriter(store: store, resolution: Int64(interval.rounded(.up)), retention: retention, logger: logger)
        _ = seriesSinceLast()
        lastTick = HistoryTime.now()
    }

    /// Takes the interval that ends now and hands it to the writer.
    func tick() throws {
        try service.refresh(reporting: .all)
        // The wall clock can step back (NTP): an interval never ends before it starts.
        let now = max(HistoryTime.now(), lastTick)
        var rows: [HistoryInterval.Process] = []
        var seen: [ProcessID: Traffic] = [:]
        var paths: [UInt64: String] = [:]
        for process in service.processes(for: client) {
            let delta = process.total.since(last[process.id] ?? .zero)
            if !process.exited { seen[process.id] = process.total }
            guard delta != .zero else { continue }
            rows.append(HistoryInterval.Process(pid: process.id.pid, startNs: process.id.startNanoseconds, comm: process.comm,
                                                cgroup: process.cgroupID, exited: process.exited, counters: Counters(delta)))
            if paths[process.cgroupID] == nil, let path = cgroups.path(of: process.cgroupID) { paths[process.cgroupID] = path }
        }
        last = seen
        writer.submit(HistoryInterval(start: lastTick, end: now, processes: rows, cgroupPaths: paths, series: seriesSinceLast()))
        lastTick = now
    }

    /// What each other collector's counters gained since the last call (a counter that went
    /// back, a device made again, counts from zero).
    private func seriesSinceLast() -> [HistorySeries] {
        var moved: [HistorySeries] = [], seen: [SeriesKey: UInt64] = [:]
        for collector in collectors {
            for series in collector.historyCounters() {
                let key = SeriesKey(source: series.source, labels: series.labels, name: series.name)
                let before = lastSeries[key] ?? 0
                let gained = series.value >= before ? series.value - before : series.value
                seen[key] = series.value
                if gained > 0 { moved.append(HistorySeries(source: series.source, labels: series.labels, name: series.name, value: gained)) }
            }
        }
        lastSeries = seen
        return moved
    }

}

/// The history file's writer: a thread pool of one thread, so that intervals are written in
/// order and off the event loop; at most `backlog` wait at once.
final class HistoryWriter: Sendable {
    struct Losses: Sendable, Equatable {
        /// Intervals dropped because the writer was `backlog` behind.
        var dropped: UInt64 = 0
        /// Intervals a write failed for (a full disk, a read-only file system, a damaged file).
        var failed: UInt64 = 0
        /// Intervals the file dropped, oldest first, to stay under its size.
        var droppedForSize: UInt64 = 0
    }

    private struct Counts {
        var written: UInt64 = 0
        /// The bytes the file's pages held at the last maintenance.
        var usedBytes: Int64 = 0
    }

    static let backlog = 6
    private struct State {
        var waiting = 0
        var stopping = false
        var losses = Losses()
        var counts = Counts()
        /// The kind of the last failure said, so that it is said again only when it changes.
        var lastFailure: String?
    }
    /// The store, used on the pool's one thread only.
    private final class Store: @unchecked Sendable {
        let store: HistoryStore
        init(_ store: HistoryStore) { self.store = store }
    }

    private let state = Mutex(State())
    private let pool = NIOThreadPool(numberOfThreads: 1)
    private let store: Store
    private let resolution: Int64
    private let retention: HistoryRetention
    /// Seconds between two maintenances (merging, expiring, trimming): a minute, or the finest
    /// tier's resolution if finer.
    private let maintenanceEvery: Int64
    /// Used on the pool's thread only.
    private nonisolated(unsafe) var lastMaintenance: Int64 = 0
    private let logger: Logger

    init(store: HistoryStore, resolution: Int64, retention: HistoryRetention, logger: Logger) {
        self.store = Store(store)
        self.resolution = resolution
        self.retention = retention
        maintenanceEvery = min(60, retention.tiers.first?.resolution ?? 60) * 1_000_000_000
        self.logger = logger
        pool.start()
    }

    /// Queues an interval for the file (on the event loop: never waits). Once stopping, none.
    func submit(_ interval: HistoryInterval) {
        let admitted = state.withLock { state in
            guard !state.stopping else { return false }
            guard state.waiting < Self.backlog else {
                state.losses.dropped += 1
                return false
            }
            state.waiting += 1
            return true
        }
        guard admitted else { return }
        // stop() waits until nothing is waiting, so every item runs on the pool's one thread.
        pool.submit { _ in
            self.write(interval)
            self.state.withLock { $0.waiting -= 1 }
        }
    }

    private func write(_ interval: HistoryInterval) {
        let path = store.store.path
        do {
            try store.store.append(interval, resolution: resolution)
            state.withLock { $0.counts.written += 1 }
            if state.withLock({ state in defer { state.lastFailure = nil }; return state.lastFailure != nil }) {
                logger.notice("history: writing again to \(path)")
            }
        } catch {
            if say(error, failed: true) {
                logger.error("history: cannot write an interval to \(path) (counting and serving go on; said again only if the failure changes): \(error)")
            }
            return
        }
        // A clock stepped back starts the count again.
        guard interval.end - lastMaintenance >= maintenanceEvery || interval.end < lastMaintenance else { return }
        lastMaintenance = interval.end
        do {
            let done = try store.store.maintain(retention, now: interval.end)
            if done.made > 0 || done.expired > 0 {
                logger.debug("history: merged \(done.merged) intervals into \(done.made), expired \(done.expired)")
            }
            let used = try store.store.usedBytes()
            state.withLock { $0.counts.usedBytes = used }
            if done.droppedForSize > 0 {
                state.withLock { $0.losses.droppedForSize += UInt64(done.droppedForSize) }
                logger.warning("history: dropped the \(done.droppedForSize) oldest intervals to keep \(path) under \(retention.maximumBytes) bytes (--history-max-size)")
            }
        } catch {
            // The interval is written; merging, expiring or trimming is tried again next time.
            if say(error, failed: false) {
                logger.error("history: cannot merge, expire or trim \(path) (tried again each minute; said again only if the failure changes): \(error)")
            }
        }
    }

    /// Whether a failure is of another kind than the last one said (a full disk fails at one
    /// statement or another, with one SQLite code); counts a failed interval.
    private func say(_ error: any Error, failed: Bool) -> Bool {
        let kind = (error as? SQLiteError).map { "SQLite \($0.primary)" } ?? "\(error)"
        return state.withLock { state in
            if failed { state.losses.failed += 1 }
            defer { state.lastFailure = kind }
            return state.lastFailure != kind
        }
    }

    /// `netacct_history_*`: the intervals written, dropped and failed, and the file's size.
    func writeMetrics(into out: inout PrometheusText) {
        let (losses, counts) = state.withLock { ($0.losses, $0.counts) }
        out.family("netacct_history_intervals_total", .counter,
                   help: "intervals of the history (--history): written, dropped (the writer was behind), failed (a full disk, a read-only file system), dropped_for_size (the oldest, under --history-max-size)")
        for (outcome, value) in [("written", counts.written), ("dropped", losses.dropped), ("failed", losses.failed), ("dropped_for_size", losses.droppedForSize)] {
            out.sample("netacct_history_intervals_total", [("outcome", outcome)], value)
        }
        out.family("netacct_history_bytes", .gauge, help: "the bytes the history file's pages held at its last maintenance (a minute at most)")
        out.sample("netacct_history_bytes", UInt64(max(0, counts.usedBytes)))
    }

    /// Takes no more intervals, writes those queued (on the pool's thread, one at a time: a
    /// shutting-down pool would run what is queued elsewhere, beside the one under way), then
    /// ends the thread. At most 30 s: a disk that hangs does not keep the daemon.
    func stop() {
        state.withLock { $0.stopping = true }
        var waited = 0
        while state.withLock({ $0.waiting }) > 0 && waited < 30_000 {
            usleep(1000)
            waited += 1
        }
        try? pool.syncShutdownGracefully()
    }
}
