import BPF
import CNetacct
import Logging
import NetacctPrograms
import NetacctKit

/// The accounting programs loaded and attached: counts from the moment `init` returns
/// until the engine is released. `snapshot()` reads the kernel side.
public final class AccountingEngine {
    public struct Options: Sendable {
        /// Count only this process (checked in the kernel; 0 or nil counts every process).
        public var onlyPID: Int32?
        /// Fast-path slots (a power of two): threads whose TIDs collide modulo this count
        /// count in the overflow hash instead. Tests shrink it to exercise that path.
        public var slots: UInt32 = UInt32(NETACCT_SLOTS)
        /// Room in the registry of counted processes (tests shrink it to fill it).
        public var registryEntries: UInt32 = UInt32(NETACCT_PROCESS_ENTRIES)
        public init(onlyPID: Int32? = nil, slots: UInt32 = UInt32(NETACCT_SLOTS),
                    registryEntries: UInt32 = UInt32(NETACCT_PROCESS_ENTRIES)) {
            self.onlyPID = onlyPID
            self.slots = slots
            self.registryEntries = registryEntries
        }
    }

    private let object: BPFObject
    private let slots: MappedArray<netacct_slot>
    private let overflow: Map<UInt32, netacct_slot>
    private let processes: Map<UInt32, netacct_process>
    private let ledger: Map<netacct_task_id, netacct_exit_record>
    private let stats: PerCPUMap<UInt32, UInt64>
    /// The registry's change count when it was last read (nil: never read).
    private var registryChanges: UInt64?
    /// The registry's size when last read, to size the next snapshot's arrays.
    private var registrySize = 0
    /// Attached tracing programs, kept alive for as long as the engine.
    private let links: [Link]
    private let logger: Logger
    /// Slot count - 1: a thread's slot is its TID masked with it.
    private let slotMask: UInt32

    /// The programs that run on the traffic path, for their run-time statistics.
    public static let hotPrograms: [Names.Program] = [.countSend, .countRecv]

    /// The accounting object's programs, maps and globals, by name (generated from its symbols).
    public typealias Names = BPFObjects.Accounting

    public init(options: Options = .init(), logger: Logger = Logger(label: "netacct.accounting")) throws {
        self.logger = logger
        try KernelRequirements.check()
        let object = try BPFObject(image: BPFObjects.accounting)
        if let pid = options.onlyPID, pid > 0 {
            try object.setReadOnlyGlobal(Names.Global.onlyTgid, to: UInt32(pid))
        }
        guard options.slots > 0, options.slots & (options.slots - 1) == 0 else {
            throw NetacctError("The number of slots must be a power of two, not \(options.slots).")
        }
        try object.setMaxEntries(Names.Map.slots, to: options.slots)
        try object.setMaxEntries(Names.Map.processes, to: options.registryEntries)
        try object.setReadOnlyGlobal(Names.Global.slotMask, to: options.slots - 1)
        slotMask = options.slots - 1
        try object.load()
        self.object = object
        slots = try MappedArray(object, name: Names.Map.slots)
        overflow = try Map(object, name: Names.Map.overflow)
        processes = try Map(object, name: Names.Map.processes)
        ledger = try Map(object, name: Names.Map.ledger)
        stats = try PerCPUMap(object, name: Names.Map.stats)
        // The exit hook goes first, so that no counted thread can exit unseen.
        var links = [try object.program(Names.Program.recordExit).attach()]
        for name in Self.hotPrograms {
            links.append(try object.program(name).attach())
        }
        self.links = links
        logger.debug("accounting programs attached", metadata: ["programs": "\(links.map(\.subject))"])
    }

    /// Counted processes, live threads, exits since the previous call (taken out of the
    /// ledger), and losses, as values (for tools and tests; `ProcessTable.ingest(from:)` reads
    /// the engine directly, without a list of every thread).
    public func snapshot() throws -> Snapshot {
        let registry = try readRegistry()
        var threads: [Snapshot.LiveThread] = []
        threads.reserveCapacity(registrySize)
        try readLiveThreads { threads.append($0) }
        return Snapshot(processes: registry ?? [], processesChanged: registry != nil, threads: threads,
                        exits: try readExits(), losses: try losses())
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
    public func programStatistics() throws -> [Names.Program: ProgramStatistics] {
        var result: [Names.Program: ProgramStatistics] = [:]
        for name in Names.Program.allCases {
            result[name] = try object.program(name).statistics()
        }
        return result
    }
}

/// The engine reads the kernel as `ProcessTable.ingest` asks: no walk over the kernel's tasks,
/// the slot array through a memory mapping, the hashes in batches, the registry only when its
/// change count moved.
extension AccountingEngine: SampleSource {
    public typealias Failure = any Error

    public func readRegistry() throws -> [Snapshot.Process]? {
        // The change count before the registry: a change in between makes the next call reread.
        let changes = try stat(NETACCT_STAT_REGISTRY_CHANGES)
        guard registryChanges != changes else { return nil }
        let registered = try processes.entries().map { Snapshot.Process($0.key, $0.value) }
        registryChanges = changes
        registrySize = registered.count
        return registered
    }

    public func readLiveThreads(_ body: (Snapshot.LiveThread) -> Void) throws {
        let tidOffset = MemoryLayout<netacct_slot>.offset(of: \.tid)!
        let readyOffset = MemoryLayout<netacct_slot>.offset(of: \.thread_start_ns)!
        try slots.forEach { element in
            guard element.field(at: tidOffset, as: UInt32.self) != 0,
                  element.field(at: readyOffset, as: UInt64.self) != 0 else { return }
            let slot = element.value
            // Skip a slot caught while being claimed or freed.
            if slot.tid != 0 && slot.thread_start_ns != 0 { body(Snapshot.LiveThread(slot, slot: Int32(element.index))) }
        }
        for entry in try overflow.entries() where entry.value.thread_start_ns != 0 {
            body(Snapshot.LiveThread(entry.value))
        }
    }

    /// The exit records since the previous call, taken out of the ledger.
    public func readExits() throws -> [Snapshot.ThreadExit] {
        try ledger.entries(deleting: true).map { Snapshot.ThreadExit($0.key, $0.value, slotMask: slotMask) }
    }

    public func isRunning(_ process: ProcessID) -> Bool {
        ProcessLiveness.isRunning(process)
    }
}
