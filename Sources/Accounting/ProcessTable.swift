import NetacctKit
/// Turns the kernel's snapshots into per-process and per-thread cumulative counters that
/// survive thread and process exits, and the traffic of each since the previous snapshot.
///
/// A process's total is the sum of its live threads' counters and the final counters of
/// its exited threads. An exited process is reported once more, in the first sample after
/// its exit in which no exit record of its threads can still be on its way, and then
/// forgotten. Identities are (id, start time), so a reused PID or TID starts from zero.
/// No total ever goes back, and a process is reported exited once and only once it has.
public struct ProcessTable: Sendable {
    public struct ThreadSample: Sendable, Equatable {
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

    public struct ProcessSample: Sendable, Equatable {
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
        /// Last reported total, for deltas.
        var lastTotal: Traffic = .zero
        /// The kernel's record of its exit has been folded in; not reported yet.
        var exitPending = false
        /// In the kernel's registry of counted processes as last read.
        var registered = false
        /// Some of its threads have exited: their counters are in `exitedThreads`.
        var hasExitedThreads = false
    }

    /// A process's thread rows, when the table keeps threads.
    struct ThreadRows: Sendable {
        /// Threads whose exits were folded in since the last sample.
        var exited: [ThreadSample] = []
        /// The live threads of the snapshot being folded in.
        var live: [ThreadSample] = []
    }

    /// Keep per-thread rows (for `top --threads`); without, a sample costs less.
    public let keepsThreads: Bool
    /// The states in an array (iterated and updated in place every sample), found by id.
    private var states: [ProcessState] = []
    /// What the loop over live threads touches, apart from the large states, so that it
    /// stays in cache when threads come in another order than the states (same positions).
    private var scratch: [Scratch] = []
    private var positions: [ProcessID: Int] = [:]
    /// How many states each PID has (changed only when a state comes or goes, not per sample).
    private var statesPerPID: [Int32: Int] = [:]
    /// PIDs with more than one state.
    private var sharedPIDs = 0
    /// Thread rows at the states' positions; empty unless the table keeps threads.
    private var rows: [ThreadRows] = []
    /// The summed final counters of exited threads, for the processes that have any. Most
    /// never lose a thread: kept out of the states, which stay small (memory per process).
    private var exitedThreads: [ProcessID: Traffic] = [:]
    /// For each slot of the kernel's slot array, what the last sample found there.
    private var slotHints: [SlotHint] = []
    /// Threads outside the slot array (the kernel's overflow hash) counted live by this sample.
    private var countedOutsideSlots: Set<ThreadID> = []
    /// Exit records of threads this sample had already counted live: folded in by the next.
    private var deferredExits: [Snapshot.ThreadExit] = []
    /// The processes of those records: none of them is reported exited before they are in.
    private var deferredProcesses: Set<ProcessID> = []
    /// Processes reported exited in the last few samples, with the sample that did it: an exit
    /// record that comes for one of them after all is not taken for a new process.
    private var recentlyExited: [ProcessID: UInt64] = [:]
    /// How many samples a process stays in `recentlyExited`.
    static let exitedMemory: UInt64 = 8
    /// Thread exit records with traffic that came after their process was reported exited
    /// (never with the kernel's ordering of exit records; counted rather than added twice).
    public private(set) var lateExitRecords: UInt64 = 0

    struct SlotHint: Sendable {
        /// The position of the thread's process (checked against the id in `scratch` before
        /// use: positions move when states go).
        var position: Int32 = -1
        /// The sample (generation, truncated) that counted the thread, and the thread's start.
        var generation: UInt32 = 0
        var threadStart: UInt64 = 0
    }

    struct Scratch: Sendable {
        /// The state's id again, so that finding a thread's process touches one array, not two.
        let id: ProcessID
        var generation: UInt64 = 0
        /// The sample that last counted a live thread of the process.
        var threadsGeneration: UInt64 = 0
        var live: Traffic = .zero
    }
    private var lastThreadTotals: [ThreadID: Traffic] = [:]
    /// Threads whose exit records were folded in since the last sample: if their slot is
    /// still seen (read a moment before the exit hook freed it), the exit record wins.
    private var exitedSinceSample: Set<ThreadID> = []
    private var generation: UInt64 = 0
    /// Live threads of this sample whose process was not the one after the previous thread's
    /// in the states: how far the states' order is from the order threads are read in.
    private var jumps = 0
    private var lastTouched = -1
    private var samplesSinceOrdering = 0
    /// How many times the states were put in slot order (for tests).
    private(set) var orderings = 0

    public init(keepsThreads: Bool = true) {
        self.keepsThreads = keepsThreads
    }

    /// Number of processes currently remembered (live, or exited and not yet reported).
    public var count: Int { states.count }

    /// Whether two of the processes remembered have one PID (a process whose exit is not
    /// reported yet, and a new one with its PID): rare, and what a reply to atop must not show.
    public var hasSharedPIDs: Bool { sharedPIDs > 0 }

    private mutating func countPID(_ pid: Int32, by change: Int) {
        let before = statesPerPID[pid, default: 0]
        let after = before + change
        statesPerPID[pid] = after > 0 ? after : nil
        if before < 2 && after >= 2 { sharedPIDs += 1 } else if before >= 2 && after < 2 { sharedPIDs -= 1 }
    }

    /// Every live process as of the last `ingest`, with its cumulative total, in no order.
    /// (A process whose exit is known but not reported yet is still live: `ingest` reports it
    /// exited once the last of its records is in.)
    public func forEachLive(_ body: (ProcessID, String, Traffic) -> Void) {
        for state in states {
            body(state.id, state.comm, state.lastTotal)
        }
    }

    /// The position of `id`'s state, created (named `comm`) if new.
    private mutating func position(_ id: ProcessID, comm: @autoclosure () -> String, cgroupID: UInt64) -> Int {
        if let found = positions[id] { return found }
        states.append(ProcessState(id: id, comm: comm(), cgroupID: cgroupID))
        countPID(id.pid, by: 1)
        scratch.append(Scratch(id: id))
        if keepsThreads { rows.append(ThreadRows()) }
        positions[id] = states.count - 1
        return states.count - 1
    }

    /// The position of `id`'s state, reset for this generation, created if new.
    private mutating func touch(_ id: ProcessID, comm: @autoclosure () -> String, cgroupID: UInt64) -> Int {
        touch(at: position(id, comm: comm(), cgroupID: cgroupID))
    }

    /// The position of a live thread's process, through the thread's slot when it is known.
    private mutating func touch(_ thread: Snapshot.LiveThread) -> Int {
        let id = thread.id.process
        guard thread.slot >= 0 else { return touch(id, comm: thread.comm, cgroupID: thread.cgroupID) }
        let slot = Int(thread.slot)
        if slot >= slotHints.count { slotHints.append(contentsOf: repeatElement(SlotHint(), count: slot + 1 - slotHints.count)) }
        slotHints[slot].generation = UInt32(truncatingIfNeeded: generation)
        slotHints[slot].threadStart = thread.id.startNanoseconds
        let cached = Int(slotHints[slot].position)
        var found = cached
        if !(cached >= 0 && cached < scratch.count && scratch[cached].id == id) {
            found = position(id, comm: thread.comm, cgroupID: thread.cgroupID)
            slotHints[slot].position = Int32(found)
        }
        if found != lastTouched && found != lastTouched + 1 { jumps += 1 }
        lastTouched = found
        return touch(at: found)
    }

    /// Whether this sample counted the exited thread live (its slot, or outside the slots).
    private func countedLive(_ exit: Snapshot.ThreadExit) -> Bool {
        let slot = Int(exit.slot)
        if slot >= 0 && slot < slotHints.count && slotHints[slot].generation == UInt32(truncatingIfNeeded: generation)
            && slotHints[slot].threadStart == exit.id.startNanoseconds {
            return true
        }
        return !countedOutsideSlots.isEmpty && countedOutsideSlots.contains(exit.id)
    }

    private mutating func touch(at found: Int) -> Int {
        if scratch[found].generation != generation {
            scratch[found].generation = generation
            scratch[found].live = .zero
            if keepsThreads { rows[found].live.removeAll(keepingCapacity: true) }
        }
        return found
    }

    private mutating func foldDeferredExits() {
        guard !deferredExits.isEmpty else { return }
        let exits = deferredExits
        deferredExits = []
        deferredProcesses = []
        foldNow(exits)
    }

    private mutating func foldNow(_ exits: [Snapshot.ThreadExit]) {
        // The threads' records before the processes' (a batch from the kernel's hash has no
        // order), so that a process's exit finds the state its threads' records made.
        for exit in exits.lazy.filter({ !$0.processExited }) + exits.lazy.filter(\.processExited) {
            if positions[exit.id.process] == nil {
                // Already reported exited: a record that comes after that is not a new process.
                if recentlyExited[exit.id.process] != nil {
                    if !exit.traffic.isZero { lateExitRecords += 1 }
                    continue
                }
                // The exit of a process never counted (the kernel reports every exit once its
                // registry was full): nothing to report.
                if exit.processExited && exit.traffic.isZero { continue }
            }
            // Not touched: "seen" by the next ingest only if it is in that snapshot.
            let index = position(exit.id.process, comm: exit.processComm, cgroupID: exit.cgroupID)
            exitedThreads[exit.id.process, default: .zero] += exit.traffic
            states[index].hasExitedThreads = true
            if !exit.processComm.isEmpty { states[index].comm = exit.processComm }
            if exit.processExited { states[index].exitPending = true }
            exitedSinceSample.insert(exit.id)
            if keepsThreads && (!exit.traffic.isZero || lastThreadTotals[exit.id] != nil) {
                rows[index].exited.append(
                    ThreadSample(id: exit.id, comm: exit.comm, exited: true, total: exit.traffic, delta: .zero))
            }
        }
    }

    /// Folds a snapshot in and returns every process with its totals and deltas (unordered).
    public mutating func ingest(_ snapshot: Snapshot, reporting: Reporting = .all) -> [ProcessSample] {
        var source = snapshot
        return ingest(from: &source, reporting: reporting)
    }

    /// Which processes `ingest` returns samples for.
    public enum Reporting: Sendable {
        case all
        /// Only the exited ones (their last report); the live ones stay readable through
        /// `forEachLive` without building a sample each.
        case exited
    }

    /// Reads a sample from `source` and folds it in, in the order that keeps every total
    /// exact and never lets one go back: the registry, the live threads, then the exit records.
    /// Returns the processes `reporting` asks for (unordered).
    public mutating func ingest<Source: SampleSource>(from source: inout Source, reporting: Reporting) throws(Source.Failure)
        -> [ProcessSample] {
        generation &+= 1
        foldDeferredExits()
        if let registry = try source.readRegistry() {
            for index in states.indices { states[index].registered = false }
            for process in registry {
                let index = touch(process.id, comm: process.comm, cgroupID: process.cgroupID)
                states[index].comm = process.comm
                states[index].cgroupID = process.cgroupID
                states[index].registered = true
            }
        }
        // Live threads, as the source reads them (the engine: straight from the kernel's slot
        // array, without a list of them). A thread whose exit record is already folded in may
        // still show in its slot for a moment: its record wins.
        let exited = exitedSinceSample
        exitedSinceSample = []
        countedOutsideSlots.removeAll(keepingCapacity: true)
        jumps = 0
        lastTouched = -1
        try source.readLiveThreads { thread in
            if !exited.isEmpty && exited.contains(thread.id) { return }
            let index = touch(thread)
            if thread.slot < 0 { countedOutsideSlots.insert(thread.id) }
            scratch[index].live += thread.traffic
            scratch[index].threadsGeneration = generation
            if keepsThreads {
                rows[index].live.append(
                    ThreadSample(id: thread.id, comm: thread.comm, exited: false, total: thread.traffic, delta: .zero))
            }
        }
        // Exit records, read after the live threads. A thread that exited after it was counted
        // live keeps that count in this sample and gets its final counters in the next one
        // (folding them now would count it twice); every other record is folded in now.
        var exits: [Snapshot.ThreadExit] = []
        for exit in try source.readExits() {
            if countedLive(exit) {
                deferredExits.append(exit)
                deferredProcesses.insert(exit.id.process)
            } else {
                exits.append(exit)
            }
        }
        foldNow(exits)
        for exit in exits where positions[exit.id.process] != nil {
            _ = touch(exit.id.process, comm: exit.processComm, cgroupID: exit.cgroupID)
        }

        var samples: [ProcessSample] = []
        if reporting == .all { samples.reserveCapacity(states.count) }
        var gone: [Int] = []
        var threadTotals: [ThreadID: Traffic] = [:]
        for index in states.indices {
            let current = scratch[index].generation == generation
            let id = states[index].id
            // Its exit is known, but a thread of it was counted live in this sample, or has its
            // record held back to the next: that record is still to come. Until then it is live.
            let exitReady = states[index].exitPending && scratch[index].threadsGeneration != generation
                && (deferredProcesses.isEmpty || !deferredProcesses.contains(id))
            // Neither registered, nor with live threads, nor in the ledger: either its exit
            // record was lost (the ledger was full), or it was never registered (the registry
            // was full) and its counted threads are gone. Only the process itself can tell.
            let vanished = !current && !states[index].registered && !states[index].exitPending
                && !source.isRunning(id)
            let exited = exitReady || vanished
            let lastTotal = states[index].lastTotal
            let exitedSum = states[index].hasExitedThreads ? exitedThreads[id] ?? .zero : .zero
            // Never below what was reported (a record lost to a full ledger cannot undo it).
            let total = (exitedSum + (current ? scratch[index].live : .zero)).atLeast(lastTotal)
            var threads: [ThreadSample] = []
            if keepsThreads {
                threads = rows[index].exited + (current ? rows[index].live : [])
                for t in threads.indices {
                    threads[t].delta = threads[t].total.since(lastThreadTotals[threads[t].id] ?? .zero)
                    if !threads[t].exited && !exited { threadTotals[threads[t].id] = threads[t].total }
                }
                threads.sort { $0.id.tid < $1.id.tid }
                if !rows[index].exited.isEmpty { rows[index].exited.removeAll() }
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
        if !recentlyExited.isEmpty {
            recentlyExited = recentlyExited.filter { generation &- $0.value < Self.exitedMemory }
        }
        for index in gone.reversed() {
            recentlyExited[states[index].id] = generation
            positions[states[index].id] = nil
            countPID(states[index].id.pid, by: -1)
            if states[index].hasExitedThreads { exitedThreads[states[index].id] = nil }
            let last = states.count - 1
            if index != last {
                states.swapAt(index, last)
                scratch.swapAt(index, last)
                if keepsThreads { rows.swapAt(index, last) }
                positions[states[index].id] = index
            }
            states.removeLast()
            scratch.removeLast()
            if keepsThreads { rows.removeLast() }
        }
        lastThreadTotals = threadTotals
        samplesSinceOrdering += 1
        if jumps > states.count / 4 && samplesSinceOrdering >= 16 { orderBySlots() }
        return samples
    }

    /// Puts the states in the order the kernel's slot array lists their threads, so that the
    /// next samples walk them front to back instead of at random (a cache miss per thread
    /// otherwise: the walk was a fifth of a sample's time with 10,000 processes). Done when
    /// most threads were found out of order, at most every 16 samples.
    private mutating func orderBySlots() {
        samplesSinceOrdering = 0
        orderings += 1
        var order: [Int] = []
        order.reserveCapacity(states.count)
        var placed = [Bool](repeating: false, count: states.count)
        let current = UInt32(truncatingIfNeeded: generation)
        for hint in slotHints where hint.generation == current {
            let position = Int(hint.position)
            if position >= 0 && position < states.count && !placed[position] {
                placed[position] = true
                order.append(position)
            }
        }
        for position in states.indices where !placed[position] { order.append(position) }
        var newPosition = [Int32](repeating: -1, count: states.count)
        for (new, old) in order.enumerated() { newPosition[old] = Int32(new) }
        for slot in slotHints.indices {
            let old = Int(slotHints[slot].position)
            if old >= 0 && old < newPosition.count { slotHints[slot].position = newPosition[old] }
        }
        // Permute in place, a swap per state that moves (no second copy of the tables).
        var target = newPosition
        for index in states.indices {
            while Int(target[index]) != index {
                let other = Int(target[index])
                states.swapAt(index, other)
                scratch.swapAt(index, other)
                if keepsThreads { rows.swapAt(index, other) }
                target.swapAt(index, other)
            }
        }
        for index in states.indices { positions[states[index].id] = index }
    }
}

/// Where `ProcessTable.ingest` reads a sample from, in the order it asks: the registry, the
/// live threads, the exit records. The engine reads the kernel as it is asked; a `Snapshot`
/// hands out values read before (tools, tests).
public protocol SampleSource {
    associatedtype Failure: Error
    /// Whether the process still runs (asked only of a process the kernel side no longer
    /// lists and has no exit record of: rare, see `ProcessTable.ingest`).
    mutating func isRunning(_ process: ProcessID) -> Bool
    /// The kernel's registry of counted processes if it changed since the previous read; nil if not.
    mutating func readRegistry() throws(Failure) -> [Snapshot.Process]?
    /// Calls `body` with every live thread.
    mutating func readLiveThreads(_ body: (Snapshot.LiveThread) -> Void) throws(Failure)
    /// The exit records since the previous read.
    mutating func readExits() throws(Failure) -> [Snapshot.ThreadExit]
}

extension Snapshot: SampleSource {
    public typealias Failure = Never
    public func readRegistry() -> [Process]? { processesChanged ? processes : nil }
    public func readLiveThreads(_ body: (LiveThread) -> Void) { threads.forEach(body) }
    public func readExits() -> [ThreadExit] { exits }
    public func isRunning(_ process: ProcessID) -> Bool { running.contains(process) }
}
