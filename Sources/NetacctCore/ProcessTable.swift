/// Turns the kernel's snapshots into per-process and per-thread cumulative counters that
/// survive thread and process exits, and the traffic of each since the previous snapshot.
///
/// A process's total is the sum of its live threads' counters and the final counters of
/// its exited threads. An exited process is reported once more, in the first sample after
/// its exit, and then forgotten. Identities are (id, start time), so a reused PID or TID
/// starts from zero.
public struct ProcessTable: Sendable {
    public struct ThreadSample: Sendable, Equatable, Codable {
        public var id: ThreadID
        public var comm: String
        public var exited: Bool
        /// Cumulative since the thread was first seen.
        public var total: Traffic
        /// Since the previous sample.
        public var delta: Traffic

        public init(id: ThreadID, comm: String, exited: Bool, total: Traffic, delta: Traffic) {
            self.id = id
            self.comm = comm
            self.exited = exited
            self.total = total
            self.delta = delta
        }
    }

    public struct ProcessSample: Sendable, Equatable, Codable {
        public var id: ProcessID
        public var comm: String
        public var cgroupID: UInt64
        public var exited: Bool
        /// Cumulative since the process was first seen, exited threads included.
        public var total: Traffic
        /// Since the previous sample.
        public var delta: Traffic
        /// Threads with traffic: live ones, and those that exited since the previous sample
        /// (empty unless the table keeps threads).
        public var threads: [ThreadSample]

        public init(id: ProcessID, comm: String, cgroupID: UInt64, exited: Bool, total: Traffic, delta: Traffic,
                    threads: [ThreadSample]) {
            self.id = id
            self.comm = comm
            self.cgroupID = cgroupID
            self.exited = exited
            self.total = total
            self.delta = delta
            self.threads = threads
        }
    }

    struct ProcessState: Sendable {
        let id: ProcessID
        var comm: String
        var cgroupID: UInt64
        /// Sum of the final counters of exited threads.
        var exitedThreads: Traffic = .zero
        /// Last reported total, for deltas.
        var lastTotal: Traffic = .zero
        /// Its last thread's exit record has been folded in; not reported yet.
        var exitPending = false
        /// In the kernel's registry of counted processes as last read.
        var registered = false
        /// Rows of threads whose exits were folded in since the last sample.
        var exitedRows: [ThreadSample] = []
        // Scratch for the snapshot being folded in (the hot part is in `scratch`).
        var threads: [ThreadSample] = []
    }

    /// Keep per-thread rows (for `top --threads`); without, a sample costs less.
    public let keepsThreads: Bool
    /// The states in an array (iterated and updated in place every sample), found by id.
    private var states: [ProcessState] = []
    /// What the loop over live threads touches, apart from the large states, so that it
    /// stays in cache when threads come in another order than the states (same positions).
    private var scratch: [Scratch] = []
    private var positions: [ProcessID: Int] = [:]
    /// For each slot of the kernel's slot array, the position of its thread's process as last
    /// seen (checked against the state's id before use: positions move when states go).
    private var slotPositions: [Int] = []

    struct Scratch: Sendable {
        var generation: UInt64 = 0
        var live: Traffic = .zero
    }
    private var lastThreadTotals: [ThreadID: Traffic] = [:]
    /// Threads whose exit records were folded in since the last sample: if their slot is
    /// still seen (read a moment before the exit hook freed it), the exit record wins.
    private var exitedSinceSample: Set<ThreadID> = []
    private var generation: UInt64 = 0

    public init(keepsThreads: Bool = true) {
        self.keepsThreads = keepsThreads
    }

    /// Number of processes currently remembered (live, or exited and not yet reported).
    public var count: Int { states.count }

    /// Every live process as of the last `ingest`, with its cumulative total, in no order.
    public func forEachLive(_ body: (ProcessID, String, Traffic) -> Void) {
        for state in states where !state.exitPending {
            body(state.id, state.comm, state.lastTotal)
        }
    }

    /// The position of `id`'s state, created (named `comm`) if new.
    private mutating func position(_ id: ProcessID, comm: String, cgroupID: UInt64) -> Int {
        if let found = positions[id] { return found }
        states.append(ProcessState(id: id, comm: comm, cgroupID: cgroupID))
        scratch.append(Scratch())
        positions[id] = states.count - 1
        return states.count - 1
    }

    /// The position of `id`'s state, reset for this generation, created if new.
    private mutating func touch(_ id: ProcessID, comm: String, cgroupID: UInt64) -> Int {
        touch(at: position(id, comm: comm, cgroupID: cgroupID))
    }

    /// The position of a live thread's process, through the thread's slot when it is known.
    private mutating func touch(_ thread: Snapshot.LiveThread) -> Int {
        let id = thread.id.process
        guard thread.slot >= 0 else { return touch(id, comm: thread.comm, cgroupID: thread.cgroupID) }
        let slot = Int(thread.slot)
        if slot >= slotPositions.count { slotPositions.append(contentsOf: repeatElement(-1, count: slot + 1 - slotPositions.count)) }
        let cached = slotPositions[slot]
        if cached >= 0 && cached < states.count && states[cached].id == id { return touch(at: cached) }
        let found = position(id, comm: thread.comm, cgroupID: thread.cgroupID)
        slotPositions[slot] = found
        return touch(at: found)
    }

    private mutating func touch(at found: Int) -> Int {
        if scratch[found].generation != generation {
            scratch[found] = Scratch(generation: generation, live: .zero)
            if keepsThreads { states[found].threads.removeAll(keepingCapacity: true) }
        }
        return found
    }

    /// Folds in exit records alone (the kernel's ledger drained between two samples). Their
    /// processes are reported as exited in the next `ingest`.
    public mutating func fold(exits: [Snapshot.ThreadExit]) {
        for exit in exits {
            // Not touched: "seen" by the next ingest only if it is in that snapshot.
            let index = position(exit.id.process, comm: exit.processComm, cgroupID: exit.cgroupID)
            states[index].exitedThreads += exit.traffic
            if !exit.processComm.isEmpty { states[index].comm = exit.processComm }
            if exit.processExited { states[index].exitPending = true }
            exitedSinceSample.insert(exit.id)
            if keepsThreads && (!exit.traffic.isZero || lastThreadTotals[exit.id] != nil) {
                states[index].exitedRows.append(
                    ThreadSample(id: exit.id, comm: exit.comm, exited: true, total: exit.traffic, delta: .zero))
            }
        }
    }

    /// Folds a snapshot in and returns every process with its totals and deltas (unordered).
    public mutating func ingest(_ snapshot: Snapshot) -> [ProcessSample] {
        ingest(snapshot, reporting: .all)
    }

    /// Which processes `ingest` returns samples for.
    public enum Reporting: Sendable {
        case all
        /// Only the exited ones (their last report); the live ones stay readable through
        /// `forEachLive` without building a sample each.
        case exited
    }

    /// Folds a snapshot in and returns the processes `reporting` asks for (unordered).
    public mutating func ingest(_ snapshot: Snapshot, reporting: Reporting) -> [ProcessSample] {
        generation &+= 1
        if snapshot.processesChanged {
            for index in states.indices { states[index].registered = false }
            for process in snapshot.processes {
                let index = touch(process.id, comm: process.comm, cgroupID: process.cgroupID)
                states[index].comm = process.comm
                states[index].cgroupID = process.cgroupID
                states[index].registered = true
            }
        }
        // Exit records first: a thread that exited between reading the live threads and the
        // ledger appears in both, and its final counters win.
        fold(exits: snapshot.exits)
        for exit in snapshot.exits { _ = touch(exit.id.process, comm: exit.processComm, cgroupID: exit.cgroupID) }
        let exited = exitedSinceSample
        exitedSinceSample = []
        for thread in snapshot.threads where exited.isEmpty || !exited.contains(thread.id) {
            let index = touch(thread)
            scratch[index].live += thread.traffic
            if keepsThreads {
                states[index].threads.append(
                    ThreadSample(id: thread.id, comm: thread.comm, exited: false, total: thread.traffic, delta: .zero))
            }
        }

        var samples: [ProcessSample] = []
        if reporting == .all { samples.reserveCapacity(states.count) }
        var gone: [Int] = []
        var threadTotals: [ThreadID: Traffic] = [:]
        for index in states.indices {
            let current = scratch[index].generation == generation
            let exitPending = states[index].exitPending
            // A process neither registered, nor with live threads, nor in the ledger has gone
            // without a record (the ledger was full): report its last totals as exited.
            let vanished = !current && !states[index].registered && !exitPending
            let exited = exitPending || vanished
            let lastTotal = states[index].lastTotal
            let total = vanished ? lastTotal : states[index].exitedThreads + (current ? scratch[index].live : .zero)
            var threads: [ThreadSample] = []
            if keepsThreads {
                threads = states[index].exitedRows + (current ? states[index].threads : [])
                for t in threads.indices {
                    threads[t].delta = threads[t].total.since(lastThreadTotals[threads[t].id] ?? .zero)
                    if !threads[t].exited && !exited { threadTotals[threads[t].id] = threads[t].total }
                }
                threads.sort { $0.id.tid < $1.id.tid }
                if !states[index].exitedRows.isEmpty { states[index].exitedRows.removeAll() }
            }
            if reporting == .all || exited {
                samples.append(ProcessSample(id: states[index].id, comm: states[index].comm, cgroupID: states[index].cgroupID,
                                             exited: exited, total: total, delta: total.since(lastTotal), threads: threads))
            }
            if exited {
                gone.append(index)
            } else {
                states[index].lastTotal = total
            }
        }
        // Forget the exited: swap each with the last state, from the highest position down.
        for index in gone.reversed() {
            positions[states[index].id] = nil
            let last = states.count - 1
            if index != last {
                states.swapAt(index, last)
                scratch.swapAt(index, last)
                positions[states[index].id] = index
            }
            states.removeLast()
            scratch.removeLast()
        }
        lastThreadTotals = threadTotals
        return samples
    }
}
