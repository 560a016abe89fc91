import BPF
import CNetacct
import Logging
import NetacctKit
import NetacctPrograms

/// Frames, bytes and segments of one queue (or a direction's total), cumulative or per interval.
public struct QueueCounters: Sendable, Equatable {
    public var packets: UInt64 = 0
    public var bytes: UInt64 = 0
    public var segments: UInt64 = 0

    public init(packets: UInt64 = 0, bytes: UInt64 = 0, segments: UInt64 = 0) {
        self.packets = packets
        self.bytes = bytes
        self.segments = segments
    }

    public static func + (a: Self, b: Self) -> Self {
        Self(packets: a.packets &+ b.packets, bytes: a.bytes &+ b.bytes, segments: a.segments &+ b.segments)
    }

    /// Since `earlier` (a counter never goes back; one that did, say after a reload, gives 0).
    public func since(_ earlier: Self) -> Self {
        func minus(_ a: UInt64, _ b: UInt64) -> UInt64 { a >= b ? a - b : 0 }
        return Self(packets: minus(packets, earlier.packets), bytes: minus(bytes, earlier.bytes),
                    segments: minus(segments, earlier.segments))
    }
}

/// The nic programs loaded and attached for a set of interfaces of this network namespace
/// (Linux >= 5.5, `tp_btf`; from 6.2 the `bpf_rdonly_cast` kfunc reads a frame's segment count
/// without a helper call, and older kernels load programs that read it with one). Counts from
/// `init` on.
public final class NICEngine {
    public typealias Names = BPFObjects.Nic
    public static let maximumInterfaces = Int(NETACCT_NIC_INTERFACES)
    public static let maximumQueues = Int(NETACCT_NIC_QUEUES)

    public let interfaces: [NetworkInterface]
    private let object: BPFObject
    private let counters: PerCPUMap<UInt32, netacct_nic_counters>
    /// Attached for as long as the engine lives.
    private let links: [Link]
    /// The programs loaded: with typed reads, or reading with a helper call (no bpf_rdonly_cast).
    public let programs: [Names.Program]

    /// Counts `interfaces` of the network namespace whose inode is `namespace` (default: this
    /// process's own). `typedReads` false loads the older kernels' programs on any kernel (the
    /// benchmark compares them); nil, as the kernel allows.
    public init(interfaces: [NetworkInterface], namespace: UInt32 = NetworkInterface.namespaceInode(),
                typedReads: Bool? = nil, logger: Logger = Logger(label: "netacct.nic")) throws {
        let typed = try Self.checkKernel() && typedReads != false
        if !typed && typedReads == nil {
            logger.notice("kernel \(KernelProbe.kernelRelease) has no bpf_rdonly_cast (Linux >= 6.2): reading each frame's segment count with bpf_probe_read_kernel, about 17 ns more per frame")
        }
        guard interfaces.count <= Self.maximumInterfaces else {
            throw NetacctError("netacct nic counts at most \(Self.maximumInterfaces) interfaces at once, not \(interfaces.count).")
        }
        self.interfaces = interfaces
        let object = try BPFObject(image: BPFObjects.nic)
        try object.setReadOnlyGlobal(Names.Global.ifindexes, elements: interfaces.map(\.ifindex))
        try object.setReadOnlyGlobal(Names.Global.interfaceCount, to: UInt32(interfaces.count))
        try object.setReadOnlyGlobal(Names.Global.netnsInum, to: namespace)
        programs = typed ? [.countTx, .countRx] : [.countTxRead, .countRxRead]
        for name in Names.Program.allCases { try object.program(name).autoload = programs.contains(name) }
        try object.load()
        self.object = object
        counters = try PerCPUMap(object, name: Names.Map.counters)
        links = try programs.map { try object.program($0).attach() }
        logger.debug("nic programs attached", metadata: ["interfaces": "\(interfaces.map(\.name))"])
    }

    /// Whether the kernel has typed reads (bpf_rdonly_cast); throws when nic cannot run at all.
    static func checkKernel() throws -> Bool {
        try KernelProbe.checkPrivileges()
        let btf = try KernelProbe.requireBTF()
        for name in ["net_dev_start_xmit", "netif_receive_skb"] where !btf.hasTracepoint(name) {
            throw NetacctError("Kernel \(KernelProbe.kernelRelease) has no \(name) tracepoint, which netacct nic needs.",
                               kind: .unsupported)
        }
        return btf.hasFunction("bpf_rdonly_cast")
    }

    public enum Direction: UInt32, Sendable, CaseIterable {
        case tx = 0
        case rx = 1
    }

    /// The cumulative counters of the first `queues` queues of one direction of the interface
    /// in `slot` (summed over CPUs).
    public func read(slot: Int, _ direction: Direction, queues: Int) throws -> [QueueCounters] {
        try (0..<min(queues, Self.maximumQueues)).map { queue in
            let key = (UInt32(slot) * 2 + direction.rawValue) * UInt32(Self.maximumQueues) + UInt32(queue)
            return (try counters.lookup(key) ?? []).reduce(QueueCounters()) {
                $0 + QueueCounters(packets: $1.packets, bytes: $1.bytes, segments: $1.segments)
            }
        }
    }

    /// Kernel run-time statistics of the two programs (needs kernel.bpf_stats_enabled=1).
    public func programStatistics() throws -> [Names.Program: ProgramStatistics] {
        var result: [Names.Program: ProgramStatistics] = [:]
        for name in programs { result[name] = try object.program(name).statistics() }
        return result
    }
}
