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
    private let ledger: Map<netacct_task_id, netacct_exit_record>
    private let stats: PerCPUMap<UInt32, UInt64>
    private let iterator: Link
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
        ledger = try Map(object, name: "ledger")
        stats = try PerCPUMap(object, name: "stats")
        // The exit hook goes first, so that no counted thread can exit unseen.
        var links = [try object.program("record_exit").attach()]
        for name in Self.hotPrograms {
            links.append(try object.program(name).attach())
        }
        self.links = links
        iterator = try object.program("dump_threads").attachIterator()
        logger.debug("accounting programs attached", metadata: ["programs": "\(links.map(\.subject))"])
    }

    /// Live threads, exits since the previous call (taken out of the ledger), and losses.
    public func snapshot() throws -> Snapshot {
        // Threads first, then the ledger: a thread that exits in between is in both, and
        // ProcessTable lets the exit record win; the other order could miss it for a sample.
        let threads = try iterator.readIterator(of: netacct_thread_record.self).map(Snapshot.LiveThread.init)
        let exits = try ledger.entries(deleting: true).map { Snapshot.ThreadExit($0.key, $0.value) }
        let losses = Snapshot.Losses(
            uncountedCalls: try stats.lookupSummed(UInt32(NETACCT_STAT_STORAGE_FAILED.rawValue)) ?? 0,
            droppedExits: try stats.lookupSummed(UInt32(NETACCT_STAT_LEDGER_FULL.rawValue)) ?? 0)
        return Snapshot(threads: threads, exits: exits, losses: losses)
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
