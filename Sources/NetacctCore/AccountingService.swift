/// The accounting engine as a service for several clients at once (atop instances, `netacct
/// top`): cumulative counters per process since it was first seen, and exited processes
/// kept until every client that should see them has.
///
/// An exited process goes, once, to every client that was connected when its exit was
/// noticed. When no client was connected, it goes to every client that asks within the
/// retention time instead (an atop restarting between two samples). Either way it is
/// forgotten after the retention time, so memory stays bounded however many processes come
/// and go, and a client that stops asking cannot hold entries forever.
///
/// Not thread-safe: the owner calls it from one thread (the daemon's event loop).
public final class AccountingService {
    public typealias ClientID = Int

    public struct Configuration: Sendable {
        /// Seconds an exited process is kept for clients that have not received it yet.
        public var retention: Double = 900
        /// Most exited processes kept at once; beyond it the oldest are dropped (and counted).
        public var maximumExited = 50_000
        /// Keep per-thread rows for clients (`netacct top --threads` through the daemon).
        public var keepsThreads = false
        public init(retention: Double = 900, maximumExited: Int = 50_000, keepsThreads: Bool = false) {
            self.retention = retention
            self.maximumExited = maximumExited
            self.keepsThreads = keepsThreads
        }
    }

    struct ExitedProcess {
        var sample: ProcessTable.ProcessSample
        var noticed: Double
        /// Clients connected when the exit was noticed that have not received it yet.
        var pending: Set<ClientID>
        /// Nobody was connected: it goes to whoever asks within the retention time.
        var openToAll: Bool
        var deliveredTo: Set<ClientID> = []
    }

    public let configuration: Configuration
    /// Reads a sample into the table: the processes asked for, and the losses.
    private let read: (inout ProcessTable, ProcessTable.Reporting) throws -> ([ProcessTable.ProcessSample], Snapshot.Losses)
    private let drain: (() throws -> [Snapshot.ThreadExit])?
    private let clock: () -> Double
    private var table: ProcessTable
    /// The live processes of the latest refresh.
    private var live: [ProcessTable.ProcessSample] = []
    private var exited: [ProcessID: ExitedProcess] = [:]
    private var clients: Set<ClientID> = []
    private var nextClient: ClientID = 1
    public private(set) var losses = Snapshot.Losses()
    /// Exited processes dropped before every client had them (maximumExited reached).
    public private(set) var droppedExited = 0

    /// A service over any snapshot source (tests give made-up snapshots).
    public convenience init(configuration: Configuration = .init(), clock: @escaping () -> Double = StopSignals.now,
                source: @escaping () throws -> Snapshot, drain: (() throws -> [Snapshot.ThreadExit])? = nil) {
        self.init(configuration: configuration, clock: clock, drain: drain) { table, reporting in
            let snapshot = try source()
            return (table.ingest(snapshot, reporting: reporting), snapshot.losses)
        }
    }

    /// A service over the kernel's accounting programs: each refresh reads the kernel straight
    /// into the table.
    public convenience init(engine: AccountingEngine, configuration: Configuration = .init()) {
        self.init(configuration: configuration, clock: StopSignals.now, drain: engine.readExits) { table, reporting in
            var source = engine
            return (try table.ingest(from: &source, reporting: reporting), try engine.losses())
        }
    }

    private init(configuration: Configuration, clock: @escaping () -> Double,
                 drain: (() throws -> [Snapshot.ThreadExit])?,
                 read: @escaping (inout ProcessTable, ProcessTable.Reporting) throws -> ([ProcessTable.ProcessSample], Snapshot.Losses)) {
        self.configuration = configuration
        self.table = ProcessTable(keepsThreads: configuration.keepsThreads)
        self.clock = clock
        self.drain = drain
        self.read = read
    }

    public var liveCount: Int { live.count }
    public var exitedCount: Int { exited.count }

    public func connect() -> ClientID {
        defer { nextClient += 1 }
        clients.insert(nextClient)
        return nextClient
    }

    public func disconnect(_ client: ClientID) {
        clients.remove(client)
        for (id, var entry) in exited where entry.pending.contains(client) || entry.deliveredTo.contains(client) {
            entry.pending.remove(client)
            entry.deliveredTo.remove(client)
            if entry.pending.isEmpty && !entry.openToAll { exited[id] = nil } else { exited[id] = entry }
        }
    }

    /// Takes a snapshot and folds it in. Call it regularly (it drains the kernel's exit
    /// ledger) and before answering a client.
    /// With `.exited`, only the exited processes get samples: for `forEachProcess`, which
    /// reads the live ones straight from the table (the atop protocol's path); `processes(for:)`
    /// needs a refresh with `.all`.
    public func refresh(reporting: ProcessTable.Reporting = .all) throws {
        let (samples, losses) = try read(&table, reporting)
        self.losses = losses
        let now = clock()
        for sample in samples where sample.exited {
            exited[sample.id] = ExitedProcess(sample: sample, noticed: now, pending: clients, openToAll: clients.isEmpty)
        }
        if reporting == .all {
            live = samples
            if !exited.isEmpty { live.removeAll(where: \.exited) }
        } else {
            live = []
        }
        expire(now: now)
    }

    /// Takes only the exit records out of the kernel's ledger (cheap: no reading of every
    /// process), so that it never fills while no client asks. They show in the next refresh.
    public func drainExits() throws {
        guard let drain else { return try refresh() }
        table.fold(exits: try drain())
        expire(now: clock())
    }

    private func expire(now: Double) {
        for (id, entry) in exited where now - entry.noticed > configuration.retention {
            exited[id] = nil
        }
        if exited.count > configuration.maximumExited {
            let excess = exited.count - configuration.maximumExited
            for (id, _) in exited.sorted(by: { $0.value.noticed < $1.value.noticed }).prefix(excess) {
                exited[id] = nil
            }
            droppedExited += excess
        }
    }

    /// What `client` gets now: every live process, and the exited processes it has not had,
    /// with cumulative counters. Marks those exited processes as delivered to it.
    /// (Call after `refresh(reporting: .all)`.)
    public func processes(for client: ClientID) -> [ProcessTable.ProcessSample] {
        var result = live
        deliverExited(to: client) { result.append($0) }
        return result
    }

    /// The same as `processes(for:)` without building a sample per live process: the
    /// process, its name and its cumulative total. (Call after `refresh(reporting: .exited)`.)
    public func forEachProcess(for client: ClientID, _ body: (ProcessID, String, Traffic) -> Void) {
        table.forEachLive(body)
        deliverExited(to: client) { body($0.id, $0.comm, $0.total) }
    }

    private func deliverExited(to client: ClientID, _ body: (ProcessTable.ProcessSample) -> Void) {
        for (id, var entry) in exited where entry.pending.contains(client) || (entry.openToAll && !entry.deliveredTo.contains(client)) {
            body(entry.sample)
            entry.pending.remove(client)
            entry.deliveredTo.insert(client)
            if entry.pending.isEmpty && !entry.openToAll { exited[id] = nil } else { exited[id] = entry }
        }
    }
}
