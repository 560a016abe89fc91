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
        /// Threads with traffic: live ones, and those that exited since the previous sample.
        public var threads: [ThreadSample]
    }

    struct ProcessState: Sendable {
        var comm: String
        var cgroupID: UInt64
        /// Sum of the final counters of exited threads.
        var exitedThreads: Traffic = .zero
        /// Last reported total, for deltas.
        var lastTotal: Traffic = .zero
        var lastThreadTotals: [ThreadID: Traffic] = [:]
    }

    private var processes: [ProcessID: ProcessState] = [:]

    public init() {}

    /// Number of processes currently remembered (live, or exited and not yet reported).
    public var count: Int { processes.count }

    /// Folds a snapshot in and returns every process with its totals and deltas.
    public mutating func ingest(_ snapshot: Snapshot) -> [ProcessSample] {
        var threadsByProcess: [ProcessID: [ThreadSample]] = [:]
        var liveTraffic: [ProcessID: Traffic] = [:]
        var seen: Set<ProcessID> = []
        var exitedProcesses: Set<ProcessID> = []
        var exitedThreads: Set<ThreadID> = []

        // Exit records first: a thread that exited between the iterator and the ledger read
        // appears in both, and its final counters win.
        for exit in snapshot.exits {
            let pid = exit.id.process
            var state = processes[pid] ?? ProcessState(comm: exit.processComm, cgroupID: exit.cgroupID)
            state.exitedThreads += exit.traffic
            if !exit.processComm.isEmpty { state.comm = exit.processComm }
            processes[pid] = state
            seen.insert(pid)
            exitedThreads.insert(exit.id)
            if exit.processExited { exitedProcesses.insert(pid) }
            if !exit.traffic.isZero || state.lastThreadTotals[exit.id] != nil {
                threadsByProcess[pid, default: []].append(
                    ThreadSample(id: exit.id, comm: exit.comm, exited: true, total: exit.traffic, delta: .zero))
            }
        }
        for thread in snapshot.threads {
            let pid = thread.id.process
            seen.insert(pid)
            if processes[pid] == nil {
                processes[pid] = ProcessState(comm: thread.processComm, cgroupID: thread.cgroupID)
            }
            // An exited thread's counters are in the ledger (now or in an earlier snapshot).
            if thread.exited || exitedThreads.contains(thread.id) { continue }
            liveTraffic[pid, default: .zero] += thread.traffic
            if thread.id.tid == pid.pid {
                processes[pid]!.cgroupID = thread.cgroupID
                processes[pid]!.comm = thread.processComm
            }
            threadsByProcess[pid, default: []].append(
                ThreadSample(id: thread.id, comm: thread.comm, exited: false, total: thread.traffic, delta: .zero))
        }

        var samples: [ProcessSample] = []
        samples.reserveCapacity(processes.count)
        for (pid, state) in processes {
            // A process neither live nor in the ledger has gone without a record (ledger
            // full): report its last totals as exited rather than keep it forever.
            let vanished = !seen.contains(pid)
            let exited = exitedProcesses.contains(pid) || vanished
            let total = vanished ? state.lastTotal : state.exitedThreads + (liveTraffic[pid] ?? .zero)
            var threads = threadsByProcess[pid] ?? []
            var threadTotals: [ThreadID: Traffic] = [:]
            for index in threads.indices {
                let id = threads[index].id
                threads[index].delta = threads[index].total.since(state.lastThreadTotals[id] ?? .zero)
                if !threads[index].exited { threadTotals[id] = threads[index].total }
            }
            threads.sort { $0.id.tid < $1.id.tid }
            samples.append(ProcessSample(id: pid, comm: state.comm, cgroupID: state.cgroupID, exited: exited,
                                         total: total, delta: total.since(state.lastTotal), threads: threads))
            if exited {
                processes[pid] = nil
            } else {
                processes[pid]!.lastTotal = total
                processes[pid]!.lastThreadTotals = threadTotals
            }
        }
        samples.sort { $0.id < $1.id }
        return samples
    }
}
