import BPF
import CNetacct
import Logging
import NetacctKit
import NetacctPrograms

/// The TCP health programs loaded and attached (tcp_health.bpf.c): retransmissions by cause,
/// RTT samples, resets, failed connects and zero-window stalls per socket, read per process,
/// cgroup and connection. Counts from `init` on, for every TCP socket of the host (every
/// network namespace); `sample()` reads the kernel side.
///
/// Needs Linux >= 6.2 with BTF and a cgroup2 file system: the tcp tracepoints (tp_btf), socket
/// storage, `iter/tcp` and `iter/task_file`, `bpf_rdonly_cast`.
public final class TCPHealthEngine {
    public typealias Names = BPFObjects.TcpHealth

    private let object: BPFObject
    private let closedRecords: RingBuffer<netacct_tcp_record>
    private let liveSockets: Link
    private let unattributedCounters: PerCPUMap<UInt32, netacct_tcp_counters>
    private let stats: PerCPUMap<UInt32, UInt64>
    private var links: [Link]
    private let logger: Logger
    /// Seconds an exited process's counters stay in the samples once its sockets are gone.
    public let retention: Double

    /// The programs on per-segment and per-event paths, for their run-time statistics.
    public static let eventPrograms: [Names.Program] = [
        .watchSegment, .countRetransmitErr, .countRetransmitSent, .countSynackRetransmit,
        .countResetSent, .countResetReceived, .followState, .reportClosed,
    ]

    public struct Options: Sendable {
        /// Seconds an exited process's counters stay in the samples (the daemon's `--retention`).
        public var retention: Double = 900
        /// Room for closed sockets' final records between two samples.
        public var closedRingBytes = UInt32(8 << 20)
        public init(retention: Double = 900, closedRingBytes: UInt32 = UInt32(8 << 20)) {
            (self.retention, self.closedRingBytes) = (retention, closedRingBytes)
        }
    }

    public init(options: Options = .init(), logger: Logger = Logger(label: "netacct.tcp")) throws {
        precondition(RTTHistogram.bucketCount == Int(NETACCT_TCP_RTT_BUCKETS), "RTTHistogram and tcp_health.h disagree on the buckets")
        retention = options.retention
        let btf = try Self.checkKernel()
        let cgroupRoot = try CgroupNames.requireMountPoint(
            for: "TCP health", because: "a socket's owner is recorded as it is made, from the cgroup2 root")
        let object = try BPFObject(image: BPFObjects.tcpHealth)
        try object.setMaxEntries(Names.Map.closed, to: options.closedRingBytes)
        // tcp_retransmit_skb gained its `err` argument in 6.12; before, it fired only for a
        // retransmission that went out.
        let withError = (btf.tracepointArguments("tcp_retransmit_skb") ?? 0) >= 3
        try object.program(Names.Program.countRetransmitErr).autoload = withError
        try object.program(Names.Program.countRetransmitSent).autoload = !withError
        try object.load()
        self.object = object
        closedRecords = try RingBuffer(object, name: Names.Map.closed)
        unattributedCounters = try PerCPUMap(object, name: Names.Map.unattributed)
        stats = try PerCPUMap(object, name: Names.Map.stats)
        // Owners first (new sockets, state changes), then the sockets open now, then the events.
        links = [try object.program(Names.Program.ownCreated).attachCgroup(cgroupRoot),
                 try object.program(Names.Program.followState).attach()]
        liveSockets = try object.program(Names.Program.readSockets).attachIterator()
        self.logger = logger
        try ownExisting()
        for name: Names.Program in [withError ? .countRetransmitErr : .countRetransmitSent, .countSynackRetransmit,
                                    .countResetSent, .countResetReceived, .watchSegment, .reportClosed] {
            links.append(try object.program(name).attach())
        }
        logger.debug("tcp health programs attached", metadata: ["programs": "\(links.map(\.subject))"])
    }

    /// Gives the TCP sockets open now an owner: a process holding each, found in /proc, in
    /// every network namespace where one is.
    private func ownExisting() throws {
        let existing = try Map<UInt64, UInt32>(object, name: Names.Map.existing)
        var scan = SocketOwners()
        scan.rescan()
        for (inode, owner) in scan.known.prefix(Int(NETACCT_TCP_EXISTING_SOCKETS)) {
            try existing.update(inode, UInt32(bitPattern: owner.pid))
        }
        let iterator = try object.program(Names.Program.ownExisting).attachIterator()
        _ = try inEveryNamespace { try iterator.readIterator() }
    }

    /// Each network namespace's result of `body`, run with the calling thread in it (the TCP
    /// iterators see the namespace they are read in). A namespace gone meanwhile is skipped.
    private func inEveryNamespace<T>(_ body: () throws -> T) throws -> [T] {
        let home = NetworkNamespace.inode()
        var results = [try body()]
        _ = namespaces.refresh()
        unreadSaid.formIntersection(namespaces.entries.keys)
        for (netns, entry) in namespaces.entries where netns != home {
            do {
                results.append(try NetworkNamespace.within(entry.path, expecting: netns, body))
            } catch let error as NetacctError {
                // Said once per namespace; tried again each sample.
                if unreadSaid.insert(netns).inserted {
                    logger.warning("cannot read the TCP connections of a network namespace; tried again each sample", metadata: ["netns": "\(netns)", "why": "\(error.message)"])
                } else {
                    logger.debug("skipped a network namespace", metadata: ["netns": "\(netns)", "why": "\(error.message)"])
                }
            }
        }
        return results
    }

    /// The host's network namespaces, followed from one sample to the next.
    private lazy var namespaces = NamespaceDirectory(scope: .all)
    /// The namespaces that could not be read, already said.
    private var unreadSaid: Set<UInt32> = []

    /// The kernel's BTF, or why TCP health cannot be followed on this kernel.
    static func checkKernel() throws -> KernelBTF {
        try KernelProbe.checkPrivileges()
        let btf = try KernelProbe.requireBTF()
        for name in ["tcp_retransmit_skb", "tcp_retransmit_synack", "tcp_send_reset", "tcp_receive_reset", "tcp_probe",
                     "tcp_destroy_sock", "inet_sock_set_state"] where !btf.hasTracepoint(name) {
            throw NetacctError("""
                Kernel \(KernelProbe.kernelRelease) has no \(name) tracepoint: TCP health needs Linux >= 6.2 \
                (tcp_receive_reset, tcp_destroy_sock and tcp_probe with BTF).
                """, kind: .unsupported)
        }
        if !btf.hasFunction("bpf_rdonly_cast") {
            throw NetacctError("Kernel \(KernelProbe.kernelRelease) has no bpf_rdonly_cast kfunc: TCP health needs Linux >= 6.2.",
                               kind: .unsupported)
        }
        return btf
    }

    /// What each socket had counted when last read, and for whom.
    private var lastRead: [UInt64: (owner: ProcessID, counters: TCPHealthCounters, sample: Int)] = [:]
    /// Sockets whose final record came in, by the sample it came in: an iteration running as one
    /// closed may still show it; it is not counted twice.
    private var closedAt: [UInt64: Int] = [:]
    private var totals: [ProcessID: TCPHealthCounters] = [:]
    private var owners: [ProcessID: TCPOwner] = [:]
    private var lastMoved: [ProcessID: Double] = [:]
    private var samples = 0
    static let forgetAfterSamples = 100

    /// The counters since `init`: each owner's (exited ones for the retention), the live
    /// sockets, the unattributed events and what could not be counted.
    ///
    /// A socket's counters live in its storage: each sample adds what every socket counted
    /// since the last to its owner then, from its final record once it is closed (read first,
    /// so that a socket closing meanwhile is counted at the next sample, never twice).
    public func sample(now: Double = StopSignals.now()) throws -> TCPHealthSample {
        samples += 1
        var sample = TCPHealthSample()
        var moved = Set<ProcessID>()
        func count(_ record: netacct_tcp_record, _ connection: TCPConnection) {
            let earlier = lastRead[record.cookie]?.counters ?? TCPHealthCounters()
            let delta = TCPHealthCounters.socketDelta(connection.counters, earlier)
            let owner = connection.owner
            if !delta.isZero || totals[owner] == nil {
                totals[owner, default: TCPHealthCounters()] += delta
                moved.insert(owner)
            }
            owners[owner] = TCPOwner(id: owner, comm: string(fromCString: record.comm), cgroupID: record.cgroup_id)
        }
        for record in try closedRecords.drain() {
            let connection = TCPConnection(record)
            count(record, connection)
            lastRead[record.cookie] = nil
            closedAt[record.cookie] = samples
            sample.connections.append(connection)
        }
        var liveOwners = Set<ProcessID>()
        let live = try inEveryNamespace { try liveSockets.readIterator(of: netacct_tcp_record.self) }.joined()
        for record in live where closedAt[record.cookie] == nil {
            let connection = TCPConnection(record)
            count(record, connection)
            lastRead[record.cookie] = (connection.owner, connection.counters, samples)
            liveOwners.insert(connection.owner)
            sample.connections.append(connection)
        }
        // A socket gone without a final record (the ring buffer was full: counted) is forgotten
        // after a while; not at once: a socket can be out of sight for a sample (its namespace
        // entered by no process for a moment) and its next counts are then still a difference.
        lastRead = lastRead.filter { samples - $0.value.sample < Self.forgetAfterSamples }
        closedAt = closedAt.filter { samples - $0.value < 3 }
        for owner in moved { lastMoved[owner] = now }
        for (id, var owner) in owners {
            if moved.contains(id) || samples % 10 == 1 { owner.exited = !ProcessLiveness.isRunning(id) }
            owners[id] = owner
            // An exited owner with no socket left is kept for the retention after it last counted.
            if owner.exited && !liveOwners.contains(id) && now - (lastMoved[id] ?? now) > retention {
                (owners[id], totals[id], lastMoved[id]) = (nil, nil, nil)
            }
        }
        sample.processes = totals
        sample.owners = owners
        sample.unattributed = try unattributedCounters.entries().reduce(TCPHealthCounters()) { sum, entry in
            entry.values.reduce(sum) { $0 + TCPHealthCounters($1) }
        }
        let lost = try stats.entries().reduce(into: [UInt32: UInt64]()) { $0[$1.key] = $1.values.reduce(0, +) }
        sample.losses = TCPHealthSample.Losses(
            storageFull: lost[UInt32(NETACCT_TCP_STAT_STORAGE_FULL.rawValue)] ?? 0,
            closedLost: lost[UInt32(NETACCT_TCP_STAT_CLOSED_LOST.rawValue)] ?? 0)
        return sample
    }

    /// Kernel run-time statistics of the event programs (needs kernel.bpf_stats_enabled=1).
    public func programStatistics() throws -> [Names.Program: ProgramStatistics] {
        var result: [Names.Program: ProgramStatistics] = [:]
        for name in Self.eventPrograms where try object.program(name).autoload {
            result[name] = try object.program(name).statistics()
        }
        return result
    }
}
