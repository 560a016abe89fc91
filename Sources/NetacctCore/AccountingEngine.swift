import BPF
import CNetacct
import Logging
import NetacctPrograms

/// The accounting programs loaded and attached: counts from the moment `init` returns
/// until the engine is released. `snapshot()` reads the kernel side.
public final class AccountingEngine {
    public struct Options: Sendable {
        /// Count only this process (checked in the kernel; 0 or nil counts every process).
        public var onlyPID: Int32?
        /// Fast-path slots (a power of two): threads whose TIDs collide modulo this count
        /// take the slower task-storage path. Tests shrink it to exercise that path.
        public var slots: UInt32 = UInt32(NETACCT_SLOTS)
        public init(onlyPID: Int32? = nil, slots: UInt32 = UInt32(NETACCT_SLOTS)) {
            self.onlyPID = onlyPID
            self.slots = slots
        }
    }

    private let object: BPFObject
    private let slots: MappedArray<netacct_slot>
    private let overflow: Map<UInt32, netacct_slot>
    private let processes: Map<UInt32, netacct_process>
    private let ledger: Map<netacct_task_id, netacct_exit_record>
    private let stats: PerCPUMap<UInt32, UInt64>
    /// The registry as last read, and the change count it was read at.
    private var registry: (changes: UInt64, processes: [Snapshot.Process])?
    /// Attached tracing programs, kept alive for as long as the engine.
    private let links: [Link]
    private let logger: Logger

    /// The programs that run on the traffic path, for their run-time statistics.
    public static let hotPrograms = ["count_send", "count_recv"]

    public init(options: Options = .init(), logger: Logger = Logger(label: "netacct.accounting")) throws {
        self.logger = logger
        try KernelRequirements.check()
        let object = try BPFObject(image: BPFObjects.accounting)
        if let pid = options.onlyPID, pid > 0 {
            try object.setReadOnlyGlobal("only_tgid", to: UInt32(pid))
        }
        guard options.slots > 0, options.slots & (options.slots - 1) == 0 else {
            throw NetacctError("The number of slots must be a power of two, not \(options.slots).")
        }
        try object.setMaxEntries("slots", to: options.slots)
        try object.setReadOnlyGlobal("slot_mask", to: options.slots - 1)
        try object.load()
        self.object = object
        slots = try MappedArray(object, name: "slots")
        overflow = try Map(object, name: "overflow")
        processes = try Map(object, name: "processes")
        ledger = try Map(object, name: "ledger")
        stats = try PerCPUMap(object, name: "stats")
        // The exit hook goes first, so that no counted thread can exit unseen.
        var links = [try object.program("record_exit").attach()]
        for name in Self.hotPrograms {
            links.append(try object.program(name).attach())
        }
        self.links = links
        logger.debug("accounting programs attached", metadata: ["programs": "\(links.map(\.subject))"])
    }

    /// Counted processes, live threads, exits since the previous call (taken out of the
    /// ledger), and losses. No walk over the kernel's tasks: the slot array is mapped into
    /// this process, the hashes are read in batches, the registry only when it changed.
    public func snapshot() throws -> Snapshot {
        // The change count before the registry: a change in between makes the next call reread.
        let changes = try stat(NETACCT_STAT_REGISTRY_CHANGES)
        let changed = registry?.changes != changes
        if changed {
            registry = (changes, try processes.entries().map { Snapshot.Process($0.key, $0.value) })
        }
        // Threads before the ledger: a thread that exits in between is in both, and
        // ProcessTable lets the exit record win; the other order could miss it for a sample.
        var threads: [Snapshot.LiveThread] = []
        threads.reserveCapacity(registry!.processes.count)
        let tidOffset = MemoryLayout<netacct_slot>.offset(of: \.tid)!
        let readyOffset = MemoryLayout<netacct_slot>.offset(of: \.thread_start_ns)!
        for index in 0..<slots.count
        where slots.field(index, at: tidOffset, as: UInt32.self) != 0
            && slots.field(index, at: readyOffset, as: UInt64.self) != 0 {
            let slot = slots[index]
            // Skip a slot caught while being claimed or freed.
            if slot.tid != 0 && slot.thread_start_ns != 0 { threads.append(Snapshot.LiveThread(slot, slot: Int32(index))) }
        }
        for entry in try overflow.entries() where entry.value.thread_start_ns != 0 {
            threads.append(Snapshot.LiveThread(entry.value))
        }
        return Snapshot(processes: registry!.processes, processesChanged: changed, threads: threads, exits: try exits(),
                        losses: try losses())
    }

    /// Only the exit records since the previous call (cheap: keeps the ledger drained).
    public func exits() throws -> [Snapshot.ThreadExit] {
        try ledger.entries(deleting: true).map { Snapshot.ThreadExit($0.key, $0.value) }
    }

    public func losses() throws -> Snapshot.Losses {
        Snapshot.Losses(uncountedCalls: try stat(NETACCT_STAT_OVERFLOW_FULL),
                        droppedExits: try stat(NETACCT_STAT_LEDGER_FULL),
                        unregisteredProcesses: try stat(NETACCT_STAT_REGISTRY_FULL))
    }

    private func stat(_ which: netacct_stat) throws -> UInt64 {
        try stats.lookupSummed(UInt32(which.rawValue)) ?? 0
    }

    /// Kernel run-time statistics of the traffic-path programs (needs kernel.bpf_stats_enabled=1).
    public func programStatistics() throws -> [String: ProgramStatistics] {
        var result: [String: ProgramStatistics] = [:]
        for name in Self.hotPrograms + ["record_exit"] {
            result[name] = try object.program(name).statistics()
        }
        return result
    }
}

