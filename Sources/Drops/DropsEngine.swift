import BPF
import CNetacct
import Glibc
import Logging
import NetacctKit
import NetacctPrograms

/// What `netacct drops` shows. Every filter runs in the kernel.
public struct DropFilter: Sendable, Equatable {
    public enum Proto: String, Sendable { case tcp, udp }

    public var pids: [Int32] = []
    public var family: Family?
    public var proto: Proto?
    /// Kernel names (NO_SOCKET); empty: every reason but NOT_SPECIFIED.
    public var reasons: [String] = []
    /// NOT_SPECIFIED (and every other reason) too.
    public var allReasons = false
    public init() {}
}

/// The drops program loaded and attached (Linux >= 6.12: kfree_skb's rx_sk; bpf_rdonly_cast),
/// for the drops of one network namespace (`namespace`, default this process's) or of every
/// one (0). In line mode it delivers events; in summary mode the kernel only counts.
public final class DropsEngine {
    public typealias Names = BPFObjects.Drops
    public let reasons: DropReasons
    public let summary: Bool
    public let wallClockOffset: Int64
    /// The namespace whose drops are counted (its inode), or 0: every namespace's.
    public let namespace: UInt32
    private let object: BPFObject
    private let ring: RingBuffer<netacct_drop_event>?
    private let counters: PerCPUMap<UInt32, UInt64>
    private let counts: PerCPUMap<netacct_drop_key, UInt64>
    private let totals: PerCPUMap<UInt32, UInt64>
    private let owners: Map<UInt64, netacct_drop_owner>
    /// For sockets the kernel side has no owner for.
    private var proc = SocketOwners()
    /// Attached for as long as the engine lives.
    private let links: [Link]
    public static let maximumPIDs = Int(NETACCT_DROPS_PIDS)

    public init(filter: DropFilter, summary: Bool, namespace: UInt32 = NetworkNamespace.inode(),
                logger: Logger = Logger(label: "netacct.drops")) throws {
        try KernelProbe.checkPrivileges()
        let btf = try KernelProbe.requireBTF()
        let reasons = try DropReasons(btf: btf)
        self.reasons = reasons
        guard btf.hasTracepoint("kfree_skb") else {
            throw NetacctError("Kernel \(KernelProbe.kernelRelease) has no skb:kfree_skb tracepoint, which netacct drops needs.", kind: .unsupported)
        }
        guard btf.hasFunction("bpf_rdonly_cast"), btf.hasTracepoint("sock_send_length") else {
            throw NetacctError("Kernel \(KernelProbe.kernelRelease) lacks the bpf_rdonly_cast kfunc or the sock:sock_send_length tracepoint: netacct drops needs Linux >= 6.12.", kind: .unsupported)
        }
        guard filter.pids.count <= Self.maximumPIDs else {
            throw NetacctError("netacct drops follows at most \(Self.maximumPIDs) processes (-p) at once, not \(filter.pids.count).", kind: .badInput)
        }
        if try KernelProbe.requireTracefs().mounted {
            logger.notice("tracefs was not mounted: mounted it at /sys/kernel/tracing (the syscall tracepoints need it)")
        }
        for name in ["sys_enter_bind", "sys_enter_listen", "sys_enter_connect", "sys_exit_accept4", "sys_exit_accept"] {
            try KernelProbe.requireTracepoint("syscalls", name, for: "netacct drops")
        }
        // A bit per reason shown.
        var words = [UInt64](repeating: 0, count: Int(NETACCT_DROPS_REASON_WORDS))
        let wanted: [UInt32] = try filter.reasons.isEmpty
            ? reasons.names.keys.filter { filter.allReasons || reasons.names[$0] != DropReasons.notSpecified }
            : filter.reasons.map { try reasons.number(of: $0) }
        for reason in wanted where reason < UInt32(NETACCT_DROPS_REASONS) {
            words[Int(reason / 64)] |= 1 << UInt64(reason % 64)
        }
        self.summary = summary
        self.namespace = namespace
        let object = try BPFObject(image: BPFObjects.drops)
        try object.setReadOnlyGlobal(Names.Global.reasons, elements: words)
        try object.setReadOnlyGlobal(Names.Global.everyReason, to: filter.allReasons && filter.reasons.isEmpty)
        try object.setReadOnlyGlobal(Names.Global.family, to: filter.family.addressFamily)
        let proto: UInt8 = switch filter.proto {
        case .tcp: UInt8(IPPROTO_TCP)
        case .udp: UInt8(IPPROTO_UDP)
        case nil: 0
        }
        try object.setReadOnlyGlobal(Names.Global.protocol, to: proto)
        try object.setReadOnlyGlobal(Names.Global.netnsInum, to: namespace)
        try object.setReadOnlyGlobal(Names.Global.summary, to: summary)
        try object.setReadOnlyGlobal(Names.Global.pids, elements: filter.pids.map { UInt32(bitPattern: $0) })
        try object.setReadOnlyGlobal(Names.Global.pidCount, to: UInt32(filter.pids.count))
        try object.load()
        self.object = object
        ring = summary ? nil : try RingBuffer(object, name: Names.Map.events)
        counters = try PerCPUMap(object, name: Names.Map.counters)
        counts = try PerCPUMap(object, name: Names.Map.counts)
        totals = try PerCPUMap(object, name: Names.Map.totals)
        owners = try Map(object, name: Names.Map.owners)
        wallClockOffset = Timestamps.wallClockOffset()
        links = try Names.Program.allCases.map { try object.program($0).attach() }
        // The sockets that exist: their owners from /proc. Attached first, the programs record
        // what changes meanwhile, which stays (no overwrite).
        var scan = SocketOwners()
        scan.rescan()
        for (inode, owner) in scan.known {
            var record = netacct_drop_owner()
            record.pid = UInt32(bitPattern: owner.pid)
            record.cgroup = owner.cgroup
            withUnsafeMutableBytes(of: &record.comm) { $0.copyBytes(from: owner.comm.utf8.prefix(Int(NETACCT_DROPS_COMM_LEN) - 1)) }
            try? owners.update(inode, record, .onlyNew)
        }
        logger.debug("drops program attached", metadata: ["reasons": "\(wanted.count)", "summary": "\(summary)", "sockets": "\(scan.known.count)"])
    }

    /// Waits up to `milliseconds` and returns the drops that came (line mode).
    public func poll(milliseconds: Int32) throws -> [netacct_drop_event] {
        try ring?.poll(milliseconds: milliseconds) ?? []
    }

    /// The owner the kernel side knows for a socket (kept after its process exits, until the
    /// table needs the room), or else, `rescanning`, the one /proc shows (rescanned at most every
    /// 0.2 s: a walk of every process's descriptors, which the daemon does not make).
    public func owner(of inode: UInt64, rescanning: Bool = true) -> SocketOwners.Owner? {
        guard inode != 0, let record = try? owners.lookup(inode) else {
            return rescanning ? proc.owner(of: inode, now: StopSignals.now()) : nil
        }
        let comm = withUnsafeBytes(of: record.comm) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
        return SocketOwners.Owner(pid: Int32(bitPattern: record.pid), comm: comm, cgroup: record.cgroup)
    }

    public func lostEvents() throws -> UInt64 {
        try counters.lookupSummed(UInt32(NETACCT_DROPS_LOST.rawValue)) ?? 0
    }

    /// Summary mode: the cumulative count of each (socket, reason, protocol) since `init`.
    public func counted() throws -> [DropKey: UInt64] {
        var result: [DropKey: UInt64] = [:]
        for (key, value) in try counts.entriesSummed() {
            result[DropKey(inode: key.socket_inode, reason: key.reason, proto: key.protocol, netns: key.netns)] = value
        }
        return result
    }

    /// Summary mode: takes these sockets' counts out of the kernel's table (16,384 at once),
    /// to make room; a drop counted in the moment between their last reading and this is left
    /// to the unattributed rest (the totals keep it).
    public func forget(_ keys: some Sequence<DropKey>) throws {
        for key in keys {
            try counts.delete(netacct_drop_key(socket_inode: key.inode, reason: key.reason, netns: key.netns, protocol: key.proto, padding: (0, 0, 0, 0, 0, 0, 0)))
        }
    }

    /// Summary mode: drops counted in `totals` only, the per-socket table being full (their
    /// owner is unknown).
    public func unkeyedDrops() throws -> UInt64 {
        try counters.lookupSummed(UInt32(NETACCT_DROPS_UNKEYED.rawValue)) ?? 0
    }

    /// Summary mode: the cumulative count of each (reason, protocol), whatever the socket
    /// (these never miss a drop, even when the per-socket table is full).
    public func totalsByReason() throws -> [DropKey: UInt64] {
        var result: [DropKey: UInt64] = [:]
        for index in 0..<UInt32(NETACCT_DROPS_TOTALS) {
            guard let value = try totals.lookupSummed(index), value > 0 else { continue }
            result[DropKey(inode: 0, reason: index / 2, proto: index % 2 == 1 ? UInt8(IPPROTO_UDP) : UInt8(IPPROTO_TCP))] = value
        }
        return result
    }

    /// Kernel run-time statistics of the drop program (needs kernel.bpf_stats_enabled=1).
    public func programStatistics() throws -> ProgramStatistics {
        try object.program(Names.Program.dropped).statistics()
    }

    /// Those of the programs that record owners (bind, listen, connect, accept, first send).
    public func ownerProgramStatistics() throws -> [Names.Program: ProgramStatistics] {
        var result: [Names.Program: ProgramStatistics] = [:]
        for name in Names.Program.allCases where name != .dropped { result[name] = try object.program(name).statistics() }
        return result
    }
}

public struct DropKey: Hashable, Sendable {
    public var inode: UInt64
    public var reason: UInt32
    public var proto: UInt8
    /// The network namespace's inode (0 in the totals, which are not by namespace).
    public var netns: UInt32 = 0
}

