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
        /// Counts per socket too (`top --connections`): other programs on the same hooks, plus
        /// one at socket release on the cgroup2 root (Linux >= 5.9).
        public var perSocket = false
        /// Room for socket records (tests shrink it to fill it).
        public var socketRecords: UInt32 = UInt32(NETACCT_SOCKET_RECORDS)
        /// The engine to run (nil: the sock engine where the kernel has its tracepoints, the
        /// syscall engine elsewhere).
        public var kind: Kind?
        public init(onlyPID: Int32? = nil, slots: UInt32 = UInt32(NETACCT_SLOTS),
                    registryEntries: UInt32 = UInt32(NETACCT_PROCESS_ENTRIES), perSocket: Bool = false,
                    socketRecords: UInt32 = UInt32(NETACCT_SOCKET_RECORDS), kind: Kind? = nil) {
            self.onlyPID = onlyPID
            self.slots = slots
            self.registryEntries = registryEntries
            self.perSocket = perSocket
            self.socketRecords = socketRecords
            self.kind = kind
        }
    }

    private let object: BPFObject
    private let slots: MappedArray<netacct_slot>
    private let overflow: Map<UInt32, netacct_slot>
    private let processes: Map<UInt32, netacct_process>
    private let ledger: Map<netacct_task_id, netacct_exit_record>
    private let stats: PerCPUMap<UInt32, UInt64>
    /// Per-socket counting's records, their free list and the records of shared sockets
    /// (nil: not counting per socket).
    private let sockets: (records: MappedArray<netacct_socket>, zeroing: Map<UInt32, netacct_socket>,
                          counters: PerCPUMap<UInt32, netacct_socket_counters>,
                          free: QueueMap<UInt32>, shared: Map<netacct_socket_user, UInt32>)?
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
    /// The same, counting per socket too.
    public static let perSocketPrograms: [Names.Program] = [.countSendSockets, .countRecvSockets]
    /// The syscall engine's programs, one per system call (KernelRequirements.syscalls).
    public static let syscallPrograms: [Names.Program] = [
        .countWrite, .countWritev, .countSendto, .countSendmsg, .countSendmmsg, .countSendfile, .countSplice,
        .countRead, .countReadv, .countRecvfrom, .countRecvmsg, .countRecvmmsg,
    ]
    /// The traffic-path programs this engine runs.
    public let trafficPrograms: [Names.Program]
    /// The engine running.
    public let kind: Kind

    /// The accounting object's programs, maps and globals, by name (generated from its symbols).
    public typealias Names = BPFObjects.Accounting

    public init(options: Options = .init(), logger: Logger = Logger(label: "netacct.accounting")) throws {
        self.logger = logger
        kind = try KernelRequirements.check(options.kind)
        if kind == .syscalls && options.perSocket {
            throw NetacctError("""
                Counting per connection needs the sock engine (Linux >= \(KernelRequirements.version(Kind.sock.minimumKernel)), \
                kernel \(KernelProbe.kernelRelease) runs the syscall engine): run without --connections.
                """, kind: .unsupported)
        }
        if kind == .syscalls {
            let why = options.kind == .syscalls ? "as asked" : "kernel \(KernelProbe.kernelRelease) has no sock:sock_send_length tracepoint, Linux >= 6.3"
            logger.notice("counting with the syscall engine (\(why)); not seen: \(Kind.syscallsBlindSpots)")
        }
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
        trafficPrograms = kind == .syscalls ? Self.syscallPrograms : options.perSocket ? Self.perSocketPrograms : Self.hotPrograms
        for name in Self.hotPrograms + Self.perSocketPrograms + Self.syscallPrograms {
            try object.program(name).autoload = trafficPrograms.contains(name)
        }
        try object.program(Names.Program.releaseSocket).autoload = options.perSocket
        // Unused, the socket maps take no room.
        let socketRecords = options.perSocket ? max(1, options.socketRecords) : 1
        for map in [Names.Map.sockets, Names.Map.socketCounters, Names.Map.freeSockets] { try object.setMaxEntries(map, to: socketRecords) }
        if !options.perSocket { try object.setMaxEntries(Names.Map.sharedSockets, to: 1) }
        try object.setReadOnlyGlobal(Names.Global.socketRecords, to: socketRecords)
        let cgroupRoot = options.perSocket
            ? try CgroupNames.requireMountPoint(for: "Counting per connection",
                                                because: "its program runs at every socket's release, on the cgroup2 root",
                                                otherwise: "run without --connections")
            : nil
        try object.load()
        self.object = object
        slots = try MappedArray(object, name: Names.Map.slots)
        overflow = try Map(object, name: Names.Map.overflow)
        processes = try Map(object, name: Names.Map.processes)
        ledger = try Map(object, name: Names.Map.ledger)
        stats = try PerCPUMap(object, name: Names.Map.stats)
        sockets = options.perSocket
            ? (try MappedArray(object, name: Names.Map.sockets), try Map(object, name: Names.Map.sockets),
               try PerCPUMap(object, name: Names.Map.socketCounters),
               try QueueMap(object, name: Names.Map.freeSockets), try Map(object, name: Names.Map.sharedSockets))
            : nil
        // The exit and exec hooks go first, so that no counted thread can exit (or take its
        // leader's TID) unseen; the release hook before the counting, so that no counted
        // socket closes unseen.
        var links = [try object.program(Names.Program.recordExit).attach(), try object.program(Names.Program.recordExec).attach()]
        if let cgroupRoot { links.append(try object.program(Names.Program.releaseSocket).attachCgroup(cgroupRoot)) }
        for name in trafficPrograms {
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
                        unregisteredProcesses: try stat(NETACCT_STAT_REGISTRY_FULL),
                        uncountedSocketCalls: try stat(NETACCT_STAT_SOCKETS_FULL))
    }

    /// Whether this engine counts per socket (`Options.perSocket`).
    public var countsPerSocket: Bool { sockets != nil }

    /// A socket record in use: its identity and its counters summed over the CPUs.
    public struct SocketRecord {
        public var index: UInt32
        public var identity: netacct_socket
        public var counters: netacct_socket_counters
    }

    /// The socket records in use (empty when not counting per socket): identities through the
    /// memory mapping, then their counters (one lookup each, or one batched read of the whole
    /// per-CPU array when many are in use).
    public func readSockets() throws -> [SocketRecord] {
        guard let sockets else { return [] }
        var identities: [(index: UInt32, value: netacct_socket)] = []
        let cookieOffset = MemoryLayout<netacct_socket>.offset(of: \.cookie)!
        try sockets.records.forEach { element in
            guard element.field(at: cookieOffset, as: UInt64.self) != 0 else { return }
            let value = element.value
            // Skip a record caught while being claimed.
            if value.cookie != 0 { identities.append((UInt32(element.index), value)) }
        }
        func sum(_ values: [netacct_socket_counters]) -> netacct_socket_counters {
            values.reduce(into: netacct_socket_counters()) {
                $0.tx_packets &+= $1.tx_packets
                $0.tx_bytes &+= $1.tx_bytes
                $0.rx_packets &+= $1.rx_packets
                $0.rx_bytes &+= $1.rx_bytes
            }
        }
        if identities.count > 256 {
            var all: [UInt32: netacct_socket_counters] = [:]
            for entry in try sockets.counters.entries() { all[entry.key] = sum(entry.values) }
            return identities.map { SocketRecord(index: $0.index, identity: $0.value, counters: all[$0.index] ?? .init()) }
        }
        return try identities.map {
            SocketRecord(index: $0.index, identity: $0.value, counters: sum(try sockets.counters.lookup($0.index) ?? []))
        }
    }

    /// Gives the records of closed sockets back for reuse: zeroed (free), off the shared
    /// sockets' hash, onto the free queue.
    public func freeSockets(_ records: [(index: UInt32, record: netacct_socket)]) throws {
        guard let sockets else { return }
        let zero = [netacct_socket_counters](repeating: .init(), count: sockets.counters.cpuCount)
        for (index, record) in records {
            try sockets.counters.update(index, perCPU: zero)
            try sockets.zeroing.update(index, netacct_socket())
            if record.shared != 0 {
                try sockets.shared.delete(netacct_socket_user(cookie: record.cookie, tgid: record.tgid, _pad: 0))
            }
            try sockets.free.push(index)
        }
    }

    private func stat(_ which: netacct_stat) throws -> UInt64 {
        try stats.lookupSummed(UInt32(which.rawValue)) ?? 0
    }

    /// Kernel run-time statistics of the traffic-path programs (needs kernel.bpf_stats_enabled=1).
    public func programStatistics() throws -> [Names.Program: ProgramStatistics] {
        var result: [Names.Program: ProgramStatistics] = [:]
        for name in [Names.Program.recordExit, Names.Program.recordExec] + trafficPrograms {
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
