import DequeModule
import NetacctKit

/// The accounting engine as a service for several clients at once (atop instances, `netacct
/// top`): cumulative counters per process since it was first seen, and exited processes
/// kept until every client that should see them has.
///
/// An exited process goes, once, to every client that was connected when its exit was
/// noticed. When no client was connected, it goes to every client that asks within the
/// retention time instead (an atop restarting between two samples, `atop -w` started by a
/// timer). Either way it is forgotten after the retention time, so memory stays bounded
/// however many processes come and go. Exits are noticed whether or not anyone is connected
/// (the owner calls `maintain` every second), and at most `maximumExited` wait at once: past
/// that the oldest are forgotten, and counted in `losses.forgottenExits`.
///
/// Not thread-safe: the owner calls it from one thread (the daemon's event loop).
public final class AccountingService {
    public typealias ClientID = Int

    public struct Configuration: Sendable {
        /// Seconds an exited process is kept for clients that have not received it yet.
        public var retention: Double = 900
        /// Most exited processes kept at once (about 120 bytes each); beyond it the oldest are
        /// forgotten, and counted.
        public var maximumExited = 100_000
        /// Keep per-thread rows for clients (`netacct top --threads` through the daemon).
        public var keepsThreads = false
        public init(retention: Double = 900, maximumExited: Int = 100_000, keepsThreads: Bool = false) {
            self.retention = retention
            self.maximumExited = maximumExited
            self.keepsThreads = keepsThreads
        }
    }

    /// An exited process waiting for clients: a fixed-size value, so that a long backlog is
    /// one array of them.
    struct ExitedProcess {
        var id: ProcessID
        var noticed: Double
        var cgroupID: UInt64
        var comm: TaskComm
        var total: Traffic
    }

    /// Exits in the order they were noticed, numbered: a client's place in it is one number.
    struct ExitLog {
        var entries = Deque<ExitedProcess>()
        /// The number of `entries.first`.
        var first: UInt64 = 0
        /// Thread rows of the entries that have any (only when the service keeps threads).
        var threads: [UInt64: [ProcessTable.ThreadSample]] = [:]

        var end: UInt64 { first + UInt64(entries.count) }

        mutating func append(_ entry: ExitedProcess, threads rows: [ProcessTable.ThreadSample]) {
            if !rows.isEmpty { threads[end] = rows }
            entries.append(entry)
        }

        subscript(number: UInt64) -> ExitedProcess? {
            number >= first && number < end ? entries[Int(number - first)] : nil
        }

        /// Forgets the oldest entry.
        mutating func removeFirst() {
            entries.removeFirst()
            if !threads.isEmpty { threads[first] = nil }
            first += 1
        }
    }

    /// A client's place in the two logs.
    struct Client {
        /// The next entry of `whileConnected` it has not had.
        var next: UInt64
        /// The next entry of `whileNobody` it has not had.
        var nextOpen: UInt64
        /// Entries it passed over because their PID was in the same reply already (the
        /// netatop-bpf protocol cannot carry one PID twice): they go first next time.
        var heldBack: [UInt64] = []
        var heldBackOpen: [UInt64] = []
        /// A client that is always there (the daemon's metrics exporter): it gets every exit,
        /// but does not count as "someone connected", so exits still wait the retention time
        /// for clients that come later (an atop restarting between two samples).
        var passive = false
    }

    public let configuration: Configuration
    /// Reads a sample into the table: the processes asked for, and the losses.
    private let read: (inout ProcessTable, ProcessTable.Reporting) throws -> ([ProcessTable.ProcessSample], Snapshot.Losses)
    private let clock: () -> Double
    private var table: ProcessTable
    /// The live processes of the latest refresh.
    private var live: [ProcessTable.ProcessSample] = []
    /// Exits noticed while some client was connected: for those clients.
    private var whileConnected = ExitLog()
    /// Exits noticed while no client was connected: for any client within the retention time.
    private var whileNobody = ExitLog()
    private var clients: [ClientID: Client] = [:]
    private var nextClient: ClientID = 1
    private var lastRefresh = -Double.infinity
    private var kernelLosses = Snapshot.Losses()
    private var forgotten: UInt64 = 0

    /// A service over any snapshot source (tests give made-up snapshots).
    public convenience init(configuration: Configuration = .init(), clock: @escaping () -> Double = StopSignals.now,
                            source: @escaping () throws -> Snapshot) {
        self.init(configuration: configuration, clock: clock) { table, reporting in
            let snapshot = try source()
            return (table.ingest(snapshot, reporting: reporting), snapshot.losses)
        }
    }

    /// A service over the kernel's accounting programs: each refresh reads the kernel straight
    /// into the table.
    public convenience init(engine: AccountingEngine, configuration: Configuration = .init()) {
        self.init(configuration: configuration, clock: StopSignals.now) { table, reporting in
            var source = engine
            return (try table.ingest(from: &source, reporting: reporting), try engine.losses())
        }
    }

    private init(configuration: Configuration, clock: @escaping () -> Double,
                 read: @escaping (inout ProcessTable, ProcessTable.Reporting) throws -> ([ProcessTable.ProcessSample], Snapshot.Losses)) {
        self.configuration = configuration
        self.table = ProcessTable(keepsThreads: configuration.keepsThreads)
        self.clock = clock
        self.read = read
    }

    /// Exited processes waiting for clients.
    public var exitedCount: Int { whileConnected.entries.count + whileNobody.entries.count }

    /// What could not be counted or delivered, since start: the kernel side's, the table's and
    /// the service's own.
    public var losses: Snapshot.Losses {
        var losses = kernelLosses
        losses.lateThreadExits = table.lateExitRecords
        losses.forgottenExits = forgotten
        return losses
    }

    public func connect(passive: Bool = false) -> ClientID {
        defer { nextClient += 1 }
        clients[nextClient] = Client(next: whileConnected.end, nextOpen: passive ? whileNobody.end : whileNobody.first, passive: passive)
        return nextClient
    }

    public func disconnect(_ client: ClientID) {
        clients[client] = nil
        trim()
    }

    /// Takes a sample and folds it in. Call it before answering a client.
    /// With `.exited`, only the exited processes get samples: for `forEachProcess`, which
    /// reads the live ones straight from the table (the atop protocol's path); `processes(for:)`
    /// needs a refresh with `.all`.
    public func refresh(reporting: ProcessTable.Reporting = .all) throws {
        let (samples, losses) = try read(&table, reporting)
        kernelLosses = losses
        let now = clock()
        lastRefresh = now
        for sample in samples where sample.exited {
            let entry = ExitedProcess(id: sample.id, noticed: now, cgroupID: sample.cgroupID, comm: TaskComm(sample.comm),
                                      total: sample.total)
            if !clients.values.contains(where: { !$0.passive }) {
                whileNobody.append(entry, threads: sample.threads)
            } else {
                whileConnected.append(entry, threads: sample.threads)
            }
        }
        if reporting == .all {
            live = samples
            if samples.contains(where: \.exited) { live.removeAll(where: \.exited) }
        } else {
            live = []
        }
        expire(now: now)
    }

    /// Call every `interval` seconds, whether or not clients ask: notices the exits since the
    /// last refresh (unless a client's request just did), so that the kernel's exit ledger
    /// never fills and the retention time runs from the exit, and forgets what has waited
    /// long enough. Returns whether it read the kernel.
    @discardableResult
    public func maintain(interval: Double) throws -> Bool {
        guard clock() - lastRefresh >= interval * 0.9 else {
            expire(now: clock())
            return false
        }
        try refresh(reporting: .exited)
        return true
    }

    private func expire(now: Double) {
        let oldest = now - configuration.retention
        while let entry = whileNobody.entries.first, entry.noticed < oldest { whileNobody.removeFirst() }
        while let entry = whileConnected.entries.first, entry.noticed < oldest { whileConnected.removeFirst() }
        while exitedCount > configuration.maximumExited {
            let nobody = whileNobody.entries.first?.noticed ?? .infinity
            let connected = whileConnected.entries.first?.noticed ?? .infinity
            forgotten += 1
            if nobody <= connected { whileNobody.removeFirst() } else { whileConnected.removeFirst() }
        }
        trim()
    }

    /// Forgets the exits every connected client has had (all of them when none is connected).
    private func trim() {
        var needed = whileConnected.end
        for client in clients.values {
            needed = min(needed, client.next)
            if let held = client.heldBack.min() { needed = min(needed, held) }
        }
        while whileConnected.first < needed { whileConnected.removeFirst() }
    }

    /// What `client` gets now: every live process, and the exited processes it has not had,
    /// with cumulative counters. Marks those exited processes as delivered to it.
    /// (Call after `refresh(reporting: .all)`.)
    public func processes(for client: ClientID) -> [ProcessTable.ProcessSample] {
        var result = live
        deliverExited(to: client, uniquePIDs: false) { entry, threads in
            result.append(ProcessTable.ProcessSample(id: entry.id, comm: entry.comm.string, cgroupID: entry.cgroupID, exited: true,
                                                     total: entry.total, delta: .zero, threads: threads))
        }
        return result
    }

    /// The exited processes `client` has not had, marked delivered to it (no refresh needed:
    /// the maintenance interval notices exits).
    public func exitedProcesses(for client: ClientID) -> [ProcessTable.ProcessSample] {
        var result: [ProcessTable.ProcessSample] = []
        deliverExited(to: client, uniquePIDs: false) { entry, _ in
            result.append(ProcessTable.ProcessSample(id: entry.id, comm: entry.comm.string, cgroupID: entry.cgroupID, exited: true,
                                                     total: entry.total, delta: .zero, threads: []))
        }
        return result
    }

    /// What the netatop-bpf protocol carries: the process, its name and its cumulative total,
    /// for the exited processes `client` has not had and every live process, never two with
    /// one PID (an exited process goes first; a live process whose PID it has waits for the next
    /// reply, which has its counters since it started). (Call after `refresh(reporting: .exited)`.)
    public func forEachProcess(for client: ClientID, _ body: (ProcessID, String, Traffic) -> Void) {
        var pids = Set<Int32>()
        deliverExited(to: client, uniquePIDs: true) { entry, _ in
            pids.insert(entry.id.pid)
            body(entry.id, entry.comm.string, entry.total)
        }
        if table.hasSharedPIDs {
            table.forEachLive { id, comm, total in
                if pids.insert(id.pid).inserted { body(id, comm, total) }
            }
        } else if !pids.isEmpty {
            table.forEachLive { id, comm, total in
                if !pids.contains(id.pid) { body(id, comm, total) }
            }
        } else {
            table.forEachLive(body) // the common case: nothing to tell apart
        }
    }

    private func deliverExited(to id: ClientID, uniquePIDs: Bool,
                               _ body: (ExitedProcess, [ProcessTable.ThreadSample]) -> Void) {
        guard var client = clients[id] else { return }
        var pids = Set<Int32>()
        func take(_ log: ExitLog, _ number: UInt64, holdingBackIn heldBack: inout [UInt64]) {
            guard let entry = log[number] else { return }
            if uniquePIDs && !pids.insert(entry.id.pid).inserted {
                heldBack.append(number)
                return
            }
            body(entry, log.threads[number] ?? [])
        }
        var heldBack: [UInt64] = []
        for number in client.heldBack { take(whileConnected, number, holdingBackIn: &heldBack) }
        for number in max(client.next, whileConnected.first)..<whileConnected.end {
            take(whileConnected, number, holdingBackIn: &heldBack)
        }
        client.heldBack = heldBack
        client.next = whileConnected.end
        heldBack = []
        for number in client.heldBackOpen { take(whileNobody, number, holdingBackIn: &heldBack) }
        for number in max(client.nextOpen, whileNobody.first)..<whileNobody.end {
            take(whileNobody, number, holdingBackIn: &heldBack)
        }
        client.heldBackOpen = heldBack
        client.nextOpen = whileNobody.end
        clients[id] = client
        trim()
    }
}
