import CNetacct
import NetacctKit

/// What the kernel side holds at one moment: the counted processes, the live threads with
/// their cumulative counters, and the exit records taken out of the ledger since the
/// previous snapshot.
public struct Snapshot: Sendable {
    public struct Process: Sendable, Equatable {
        public var id: ProcessID
        public var cgroupID: UInt64
        public var comm: String

        public init(id: ProcessID, cgroupID: UInt64, comm: String) {
            self.id = id
            self.cgroupID = cgroupID
            self.comm = comm
        }
    }

    public struct LiveThread: Sendable, Equatable {
        public var id: ThreadID
        public var traffic: Traffic
        public var cgroupID: UInt64
        /// The thread's name as the kernel has it; decoded when `comm` is read.
        var rawComm: TaskComm
        public var comm: String { rawComm.string }
        /// The slot the thread owns in the kernel's slot array (-1: the overflow hash). A hint
        /// that spares ProcessTable a hash lookup per thread; identities still decide.
        public var slot: Int32

        public init(id: ThreadID, traffic: Traffic, cgroupID: UInt64, comm: String, slot: Int32 = -1) {
            self.id = id
            self.traffic = traffic
            self.cgroupID = cgroupID
            self.rawComm = TaskComm(comm)
            self.slot = slot
        }
    }

    public struct ThreadExit: Sendable, Equatable {
        public var id: ThreadID
        /// The thread's final counters.
        public var traffic: Traffic
        public var cgroupID: UInt64
        /// This was the last thread: the process has exited.
        public var processExited: Bool
        public var comm: String
        public var processComm: String
        /// The slot the thread would own in the kernel's slot array (its TID modulo the
        /// array's size; -1: unknown), for ProcessTable to tell whether it counted it live.
        public var slot: Int32

        public init(id: ThreadID, traffic: Traffic, cgroupID: UInt64, processExited: Bool,
                    comm: String, processComm: String, slot: Int32 = -1) {
            self.id = id
            self.traffic = traffic
            self.cgroupID = cgroupID
            self.processExited = processExited
            self.comm = comm
            self.processComm = processComm
            self.slot = slot
        }
    }

    /// Events the kernel side could not count, summed over CPUs since load. Never silent.
    public struct Losses: Sendable, Equatable {
        /// Calls not counted: a thread had no slot and the overflow hash was full.
        public var uncountedCalls: UInt64 = 0
        /// Exited threads whose final counters did not fit in the exit ledger.
        public var droppedExits: UInt64 = 0
        /// Processes that could not be registered (the registry was full): still counted, but
        /// their exits are found through /proc, and their threads' records may come late.
        public var unregisteredProcesses: UInt64 = 0
        /// Thread exit records that came after their process had been reported exited: their
        /// final counters were not added (the process's total had been delivered).
        public var lateThreadExits: UInt64 = 0
        /// Exited processes forgotten before every client that should have had them did (the
        /// daemon keeps at most a set number; `netacct daemon --max-exited`).
        public var forgottenExits: UInt64 = 0
        /// Calls counted for their thread but not per socket (no free socket record;
        /// `--connections` only).
        public var uncountedSocketCalls: UInt64 = 0
        public var isZero: Bool { self == Losses() }
        public init(uncountedCalls: UInt64 = 0, droppedExits: UInt64 = 0, unregisteredProcesses: UInt64 = 0,
                    lateThreadExits: UInt64 = 0, forgottenExits: UInt64 = 0, uncountedSocketCalls: UInt64 = 0) {
            self.uncountedCalls = uncountedCalls
            self.droppedExits = droppedExits
            self.unregisteredProcesses = unregisteredProcesses
            self.lateThreadExits = lateThreadExits
            self.forgottenExits = forgottenExits
            self.uncountedSocketCalls = uncountedSocketCalls
        }

        enum CodingKeys: String, CodingKey {
            case uncountedCalls, droppedExits, unregisteredProcesses, lateThreadExits, forgottenExits, uncountedSocketCalls
        }

        /// A counter a daemon of an earlier version does not send is 0.
        public init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            func count(_ key: CodingKeys) throws -> UInt64 { try container.decodeIfPresent(UInt64.self, forKey: key) ?? 0 }
            self.init(uncountedCalls: try count(.uncountedCalls), droppedExits: try count(.droppedExits),
                      unregisteredProcesses: try count(.unregisteredProcesses),
                      lateThreadExits: try count(.lateThreadExits), forgottenExits: try count(.forgottenExits),
                      uncountedSocketCalls: try count(.uncountedSocketCalls))
        }

        /// What the logs and `top` say about it, one phrase per kind of loss.
        public var phrases: [String] {
            var result: [String] = []
            if uncountedCalls > 0 { result.append("\(uncountedCalls) calls not counted (no room for thread counters)") }
            if droppedExits > 0 { result.append("\(droppedExits) thread exits lost (exit ledger full)") }
            if unregisteredProcesses > 0 { result.append("\(unregisteredProcesses) processes unregistered (registry full; their exits found through /proc)") }
            if lateThreadExits > 0 { result.append("\(lateThreadExits) thread exits after their process's") }
            if uncountedSocketCalls > 0 { result.append("\(uncountedSocketCalls) calls not counted per connection (no room for socket records)") }
            if forgottenExits > 0 { result.append("\(forgottenExits) exited processes forgotten before delivery (exit backlog full)") }
            return result
        }
    }

    /// The kernel's registry of counted processes, when `processesChanged`.
    public var processes: [Process]
    /// False when the registry has not changed since the previous snapshot: the engine does
    /// not reread it (nor keep a copy), `processes` is empty, and the table keeps what it had.
    public var processesChanged: Bool
    public var threads: [LiveThread]
    public var exits: [ThreadExit]
    public var losses: Losses
    /// Processes known to run although neither registered nor with live threads (tests of
    /// full maps); any other such process has gone.
    public var running: Set<ProcessID>

    public init(processes: [Process] = [], processesChanged: Bool = true, threads: [LiveThread], exits: [ThreadExit],
                losses: Losses = .init(), running: Set<ProcessID> = []) {
        self.processes = processes
        self.processesChanged = processesChanged
        self.threads = threads
        self.exits = exits
        self.losses = losses
        self.running = running
    }
}

extension Snapshot.Process {
    init(_ tgid: UInt32, _ p: netacct_process) {
        self.init(id: ProcessID(pid: Int32(bitPattern: tgid), startNanoseconds: p.start_ns), cgroupID: p.cgroup_id,
                  comm: string(fromCString: p.comm))
    }
}

extension Snapshot.LiveThread {
    init(_ s: netacct_slot, slot: Int32 = -1) {
        id = ThreadID(tid: Int32(bitPattern: s.tid), startNanoseconds: s.thread_start_ns,
                      process: ProcessID(pid: Int32(bitPattern: s.tgid), startNanoseconds: s.process_start_ns))
        traffic = Traffic(s.counters)
        cgroupID = s.cgroup_id
        rawComm = TaskComm(cString: s.comm)
        self.slot = slot
    }
}

extension Snapshot.ThreadExit {
    init(_ id: netacct_task_id, _ r: netacct_exit_record, slotMask: UInt32) {
        self.init(id: ThreadID(id), traffic: Traffic(r.counters), cgroupID: r.cgroup_id,
                  processExited: r.process_exited != 0,
                  comm: string(fromCString: r.comm), processComm: string(fromCString: r.process_comm),
                  // tid 0: the record of the process's exit, which has no slot.
                  slot: id.tid == 0 ? -1 : Int32(bitPattern: id.tid & slotMask))
    }
}
