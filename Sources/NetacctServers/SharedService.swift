import CGlibcExtras
import DaemonProtocol
import Logging
import NIOCore
import Accounting
import NetacctKit

/// What the servers share, reachable from channel handlers: the collectors (the accounting
/// service first, which the netatop-bpf server reads too), the bound on unsent replies and the
/// rate-limited log. Every use happens on `loop`, the daemon's single event loop, which is
/// what makes the unchecked Sendable true.
final class SharedService: @unchecked Sendable {
    let service: AccountingService
    /// The collectors by API verb, and in the order they were loaded.
    let collectors: [any Collector]
    let loop: EventLoop
    let logger: Logger
    let log: RateLimitedLog
    let budget: ReplyBudget
    private var reportedLosses: [DaemonAPI.Verb: [String]] = [:]
    /// What atop's counters are (the daemon's `--atop-counts`).
    var atopCounts = AtopCounts.calls
    /// The wire collector, when atop is sent its counts.
    var atopWire: WireCollector? { atopCounts == .wire ? collector(for: .wire) as? WireCollector : nil }
    private var nextAPIClient: APIClientID = 1

    init(service: AccountingService, others: [any Collector] = [], loop: EventLoop, logger: Logger, replyBudget: Int) {
        self.service = service
        self.collectors = [AccountingCollector(service: service)] + others
        self.loop = loop
        self.logger = logger
        self.log = RateLimitedLog(logger: logger, clock: StopSignals.now)
        self.budget = ReplyBudget(limit: replyBudget, clock: StopSignals.now)
    }

    func collector(for verb: DaemonAPI.Verb) -> (any Collector)? { collectors.first { $0.verb == verb } }

    /// A new local API client, announced to every collector.
    func connectAPIClient() -> APIClientID {
        defer { nextAPIClient += 1 }
        for collector in collectors { collector.connect(client: nextAPIClient) }
        return nextAPIClient
    }

    func disconnectAPIClient(_ client: APIClientID) {
        for collector in collectors { collector.disconnect(client: client) }
    }

    /// Every second, clients or not: each collector keeps itself fresh (accounting notices
    /// exits and forgets what waited long enough).
    func maintain(interval: Double) {
        loop.preconditionInEventLoop()
        var read = false
        for collector in collectors {
            do {
                if try collector.maintain(interval: interval) { read = true }
            } catch {
                log.log(.error, "maintain-\(collector.verb)", "\(collector.verb): reading the kernel failed: \(error)")
            }
        }
        metrics?.maintain()
        if read { returnFreedMemory() }
        reportLosses()
    }

    /// The Prometheus exporter, when the daemon serves HTTP (set once, before serving).
    var metrics: MetricsExporter?

    /// After an answer has left, or a client holding one has gone: gives the memory that
    /// building it took back to the system. glibc keeps freed memory for reuse otherwise, and
    /// the daemon would stay as large as its largest answers ever instead of its tables
    /// (BENCHMARKS.md, memory).
    func returnFreedMemory() {
        // Once the callbacks that wrote the answer have returned and let go of it.
        loop.execute { malloc_trim(0) }
    }

    /// Every answer reads the kernel anew: reusing a refresh even a few milliseconds old could
    /// miss an exit that atop has already seen in /proc, and atop would never get that process.
    func refresh(reporting: ProcessTable.Reporting) {
        loop.preconditionInEventLoop()
        do {
            try service.refresh(reporting: reporting)
            reportLosses()
        } catch {
            log.log(.error, "refresh", "reading the kernel's counters failed: \(error)")
        }
    }

    /// Makes room in the reply budget for `bytes` of `owner`'s, dropping the clients that left
    /// their replies unread longest if needed.
    func hold(_ bytes: Int, for owner: ReplyBudget.Owner, drop: @escaping () -> Void) {
        let dropped = budget.hold(bytes, for: owner, drop: drop)
        if dropped > 0 {
            returnFreedMemory()
            log.log(.notice, "budget", "dropped clients that do not read their replies, to keep the daemon's memory bounded",
                    metadata: ["dropped": "\(dropped)", "dropped_since_start": "\(budget.dropped)",
                               "reply_budget_bytes": "\(budget.limit)"])
        }
    }

    /// Logs what a collector could not count, when that grew (rate-limited per collector).
    func reportLosses() {
        for collector in collectors {
            let losses = collector.losses
            guard losses != reportedLosses[collector.verb, default: []] else { continue }
            reportedLosses[collector.verb] = losses
            log.log(.warning, "losses-\(collector.verb)",
                    "\(collector.verb): not everything could be counted: \(losses.joined(separator: "; "))")
        }
    }
}
