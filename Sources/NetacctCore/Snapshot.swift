import CNetacct

/// What the kernel side holds at one moment: live threads with their cumulative counters,
/// and the exit records taken out of the ledger since the previous snapshot.
public struct Snapshot: Sendable {
    public struct LiveThread: Sendable, Equatable {
        public var id: ThreadID
        public var traffic: Traffic
        public var cgroupID: UInt64
        /// The thread has exited; its final counters are (or were) in an exit record.
        public var exited: Bool
        public var comm: String
        public var processComm: String

        public init(id: ThreadID, traffic: Traffic, cgroupID: UInt64, exited: Bool = false,
                    comm: String, processComm: String) {
            self.id = id
            self.traffic = traffic
            self.cgroupID = cgroupID
            self.exited = exited
            self.comm = comm
            self.processComm = processComm
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

        public init(id: ThreadID, traffic: Traffic, cgroupID: UInt64, processExited: Bool,
                    comm: String, processComm: String) {
            self.id = id
            self.traffic = traffic
            self.cgroupID = cgroupID
            self.processExited = processExited
            self.comm = comm
            self.processComm = processComm
        }
    }

    /// Events the kernel side could not count, summed over CPUs since load. Never silent.
    public struct Losses: Sendable, Equatable, Codable {
        /// Calls not counted because a thread's state could not be allocated.
        public var uncountedCalls: UInt64 = 0
        /// Exited threads whose final counters did not fit in the exit ledger.
        public var droppedExits: UInt64 = 0
        public var isZero: Bool { uncountedCalls == 0 && droppedExits == 0 }
        public init(uncountedCalls: UInt64 = 0, droppedExits: UInt64 = 0) {
            self.uncountedCalls = uncountedCalls
            self.droppedExits = droppedExits
        }
    }

    public var threads: [LiveThread]
    public var exits: [ThreadExit]
    public var losses: Losses

    public init(threads: [LiveThread], exits: [ThreadExit], losses: Losses = .init()) {
        self.threads = threads
        self.exits = exits
        self.losses = losses
    }
}

extension Snapshot.LiveThread {
    init(_ r: netacct_thread_record) {
        self.init(id: ThreadID(r.id), traffic: Traffic(r.counters), cgroupID: r.cgroup_id, exited: r.exited != 0,
                  comm: string(fromCString: r.comm), processComm: string(fromCString: r.process_comm))
    }
}

extension Snapshot.ThreadExit {
    init(_ id: netacct_task_id, _ r: netacct_exit_record) {
        self.init(id: ThreadID(id), traffic: Traffic(r.counters), cgroupID: r.cgroup_id,
                  processExited: r.process_exited != 0,
                  comm: string(fromCString: r.comm), processComm: string(fromCString: r.process_comm))
    }
}
