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

/// An interface of a namespace: ifindex 1 is in every one.
public struct DeviceKey: Hashable, Sendable, Comparable {
    public var netns: UInt32
    public var ifindex: UInt32
    public init(netns: UInt32, ifindex: UInt32) { (self.netns, self.ifindex) = (netns, ifindex) }
    public static func < (a: Self, b: Self) -> Bool { (a.netns, a.ifindex) < (b.netns, b.ifindex) }
}

/// The cumulative counters of an interface's queues, per direction (index: queue).
public struct DeviceReading: Sendable, Equatable {
    public var tx: [QueueCounters] = []
    public var rx: [QueueCounters] = []
    public init(tx: [QueueCounters] = [], rx: [QueueCounters] = []) { (self.tx, self.rx) = (tx, rx) }
}

/// The nic programs loaded and attached (Linux >= 5.5, `tp_btf`; from 6.2 the
/// `bpf_rdonly_cast` kfunc reads a frame's segment count without a helper call, and older
/// kernels load programs that read it with one), for a set of interfaces of one network
/// namespace, or for every device of every namespace (`everyNamespace`). Counts from `init` on.
public final class NICEngine {
    public typealias Names = BPFObjects.Nic
    public static let maximumInterfaces = Int(NETACCT_NIC_INTERFACES)
    public static let maximumQueues = Int(NETACCT_NIC_QUEUES)
    /// Every namespace: queues of devices counted at once.
    public static let maximumDevices = Int(NETACCT_NIC_DEVICE_ENTRIES)

    /// The interfaces counted, by slot (none with `everyNamespace`: every device is).
    public let interfaces: [NetworkInterface]
    /// The namespace of `interfaces`, or 0: every namespace's devices.
    public let namespace: UInt32
    private let object: BPFObject
    private let counters: PerCPUMap<UInt32, netacct_nic_counters>
    /// Every namespace: each device queue's slot, the free slots, the slots' counters, and the
    /// epoch the CPUs' caches of slots are good for.
    private let slots: Map<netacct_nic_device_key, UInt32>
    private let freeSlots: QueueMap<UInt32>
    private let deviceCounters: PerCPUMap<UInt32, netacct_nic_counters>
    private let epoch: Map<UInt32, UInt32>
    private let lost: PerCPUMap<UInt32, UInt64>
    /// Slots of devices gone, given back at the next `forget` (the epoch moved on when they
    /// were taken, and again then).
    private var quarantined: [UInt32] = []
    /// Attached for as long as the engine lives.
    private let links: [Link]
    /// The programs loaded: with typed reads, or reading with a helper call (no bpf_rdonly_cast).
    public let programs: [Names.Program]

    /// Counts `interfaces` of the network namespace whose inode is `namespace` (default: this
    /// process's own; 0: every device of every namespace, `interfaces` empty). `typedReads`
    /// false loads the older kernels' programs on any kernel (the benchmark compares them); nil,
    /// as the kernel allows.
    public init(interfaces: [NetworkInterface], namespace: UInt32 = NetworkNamespace.inode(),
                typedReads: Bool? = nil, logger: Logger = Logger(label: "netacct.nic")) throws {
        let typed = try Self.checkKernel() && typedReads != false
        if !typed && typedReads == nil {
            logger.notice("kernel \(KernelProbe.kernelRelease) has no bpf_rdonly_cast (Linux >= 6.2): reading each frame's segment count with bpf_probe_read_kernel, about 17 ns more per frame")
        }
        guard interfaces.count <= Self.maximumInterfaces else {
            throw NetacctError("netacct nic counts at most \(Self.maximumInterfaces) interfaces at once, not \(interfaces.count).")
        }
        self.interfaces = interfaces
        self.namespace = namespace
        let object = try BPFObject(image: BPFObjects.nic)
        try object.setReadOnlyGlobal(Names.Global.ifindexes, elements: interfaces.map(\.ifindex))
        try object.setReadOnlyGlobal(Names.Global.interfaceCount, to: UInt32(interfaces.count))
        try object.setReadOnlyGlobal(Names.Global.netnsInum, to: namespace)
        programs = typed ? [.countTx, .countRx] : [.countTxRead, .countRxRead]
        for name in Names.Program.allCases { try object.program(name).autoload = programs.contains(name) }
        try object.load()
        self.object = object
        counters = try PerCPUMap(object, name: Names.Map.counters)
        slots = try Map(object, name: Names.Map.slots)
        freeSlots = try QueueMap(object, name: Names.Map.freeSlots)
        deviceCounters = try PerCPUMap(object, name: Names.Map.deviceCounters)
        epoch = try Map(object, name: Names.Map.epoch)
        lost = try PerCPUMap(object, name: Names.Map.lost)
        if namespace == 0 {
            for slot in 0..<UInt32(Self.maximumDevices) { try freeSlots.push(slot) }
        }
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

    /// Every namespace: the cumulative counters of each device that has counted a frame, by
    /// namespace and ifindex (each direction's queues up to the highest that counted).
    public func readDevices() throws -> [DeviceKey: DeviceReading] {
        var result: [DeviceKey: DeviceReading] = [:]
        for (key, slot) in try slots.entries() {
            let device = DeviceKey(netns: key.netns, ifindex: key.ifindex)
            let queue = Int(key.queue)
            let counters = (try deviceCounters.lookup(slot) ?? []).reduce(QueueCounters()) {
                $0 + QueueCounters(packets: $1.packets, bytes: $1.bytes, segments: $1.segments)
            }
            func put(_ queues: inout [QueueCounters]) {
                if queues.count <= queue { queues += Array(repeating: QueueCounters(), count: queue + 1 - queues.count) }
                queues[queue] = counters
            }
            if key.direction == UInt16(Direction.tx.rawValue) { put(&result[device, default: DeviceReading()].tx) } else { put(&result[device, default: DeviceReading()].rx) }
        }
        return result
    }

    /// Every namespace: takes the slots of device queues whose devices no longer exist (their
    /// namespace gone, or themselves) out of the kernel's table, which would fill up
    /// otherwise; returns how many. `exists` says whether a device exists (one of a namespace
    /// that could not be read is taken to). Their slots go back to the free ones at the next
    /// call, zeroed; the epoch moves on now and then, so that no CPU's cache keeps them (a
    /// program that read a slot before the first move has long finished by the second).
    @discardableResult
    public func forget(keeping exists: (DeviceKey) -> Bool) throws -> Int {
        if !quarantined.isEmpty {
            try nextEpoch()
            for slot in quarantined {
                try deviceCounters.update(slot, perCPU: Array(repeating: netacct_nic_counters(), count: deviceCounters.cpuCount))
                try freeSlots.push(slot)
            }
            quarantined = []
        }
        for (key, slot) in try slots.entries() where !exists(DeviceKey(netns: key.netns, ifindex: key.ifindex)) {
            try slots.delete(key)
            quarantined.append(slot)
        }
        if !quarantined.isEmpty { try nextEpoch() }
        return quarantined.count
    }

    private func nextEpoch() throws {
        try epoch.update(0, (try epoch.lookup(0) ?? 0) &+ 1)
    }

    /// Every namespace: frames not counted, the table of devices being full.
    public func lostFrames() throws -> UInt64 {
        try lost.lookupSummed(0) ?? 0
    }

    /// Kernel run-time statistics of the two programs (needs kernel.bpf_stats_enabled=1).
    public func programStatistics() throws -> [Names.Program: ProgramStatistics] {
        var result: [Names.Program: ProgramStatistics] = [:]
        for name in programs { result[name] = try object.program(name).statistics() }
        return result
    }
}
