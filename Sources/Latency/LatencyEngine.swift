import BPF
import CNetacct
import Glibc
import Logging
import NetacctKit
import NetacctPrograms

/// Which way the segments go, and the names of their stages in path order.
public enum LatencyDirection: String, Sendable, CaseIterable {
    case `in`, out

    public var stages: [String] {
        switch self {
        case .in: ["MAC", "IP", "TCP"]
        case .out: ["TCP", "IP", "QDISC"]
        }
    }
}

/// What `netacct latency` follows. Every filter runs in the kernel, at a segment's first point.
public struct LatencyFilter: Sendable, Equatable {
    /// The packet's source and destination ports (for `in` the source is the peer).
    public var sourcePort: UInt16?
    public var destinationPort: UInt16?
    /// Follow 1 segment in `sample`, chosen at random.
    public var sample: UInt32 = 1
    public var pids: [Int32] = []
    public var family: Family?
    public init() {}
}

/// The latency programs of one direction loaded and attached: they deliver a report per
/// followed segment, or (`histograms`) only count stages in the kernel.
public final class LatencyEngine {
    public let direction: LatencyDirection
    public let histogramsOnly: Bool
    public let wallClockOffset: Int64
    public static let maximumPIDs = Int(NETACCT_LATENCY_PIDS)

    private let object: BPFObject
    private let ring: RingBuffer<netacct_latency_event>?
    private let counters: PerCPUMap<UInt32, UInt64>
    private let histograms: PerCPUMap<UInt32, netacct_latency_histograms>
    /// Every namespace: each one's histograms, by generation.
    private let namespaceHistograms: PerCPUMap<netacct_latency_namespace_key, netacct_latency_histograms>
    private let generation: Map<UInt32, UInt32>
    private let inflight: Inflight
    /// Attached for as long as the engine lives.
    private let links: [Link]
    /// The IP points' netfilter links of each namespace followed (a netfilter hook is a
    /// namespace's; from 6.12 a link holds its namespace, so they go when the namespace has
    /// no process and no name left).
    private var ipLinks: [UInt32: [Link]] = [:]
    private let netfilterPoints: [(program: any BPFProgramName, hook: NetfilterHook, first: Bool)]
    private let families: [NetfilterFamily]
    private let logger: Logger
    /// Namespaces whose IP points could not be attached (entered, or the link made) at least
    /// once: each is tried again until it goes.
    public var namespacesNotFollowed: UInt64 { UInt64(unfollowed.count) }

    /// Where segments wait on their way: received ones by connection until TCP takes them
    /// (then in their socket's storage, which user space cannot list), sent ones by socket until
    /// the driver has them. Both go with their socket.
    enum Inflight {
        case received(Map<netacct_latency_flow, netacct_latency_arriving>)
        case sent(Map<UInt64, netacct_latency_sending>)
    }

    /// One direction's names, from its object's generated enums: the maps and globals both
    /// objects declare alike (latency.bpf.h), the netfilter points and the other programs.
    private struct Names {
        var events, counters, histograms, namespaceHistograms, generation, inflight: any BPFMapName  // `arriving`, `sending`
        var family, sport, dport, sample, sampleBelow, netnsInum, histogramsOnly, gated, pids, pidCount: any BPFGlobalName
        /// The IP point, before every other function at its hook (conntrack, NAT, filters), and
        /// for in LOCAL_IN, after them all, where the socket is known.
        var netfilter: [(program: any BPFProgramName, hook: NetfilterHook, first: Bool)]
        var tracing, programs: [any BPFProgramName]

        init(_ direction: LatencyDirection) {
            switch direction {
            case .in:
                typealias M = BPFObjects.LatencyIn.Map
                typealias G = BPFObjects.LatencyIn.Global
                typealias P = BPFObjects.LatencyIn.Program
                (events, counters, histograms, namespaceHistograms, generation, inflight) = (M.events, M.counters, M.histograms, M.namespaceHistograms, M.generation, M.arriving)
                (family, sport, dport, sample, sampleBelow, netnsInum, histogramsOnly, gated, pids, pidCount) =
                    (G.family, G.sport, G.dport, G.sample, G.sampleBelow, G.netnsInum, G.histogramsOnly, G.gated, G.pids, G.pidCount)
                netfilter = [(P.ipReceived, .preRouting, true), (P.ipDelivered, .localIn, false)]
                (programs, tracing) = (P.allCases, P.allCases.filter { $0 != .ipReceived && $0 != .ipDelivered })
            case .out:
                typealias M = BPFObjects.LatencyOut.Map
                typealias G = BPFObjects.LatencyOut.Global
                typealias P = BPFObjects.LatencyOut.Program
                (events, counters, histograms, namespaceHistograms, generation, inflight) = (M.events, M.counters, M.histograms, M.namespaceHistograms, M.generation, M.sending)
                (family, sport, dport, sample, sampleBelow, netnsInum, histogramsOnly, gated, pids, pidCount) =
                    (G.family, G.sport, G.dport, G.sample, G.sampleBelow, G.netnsInum, G.histogramsOnly, G.gated, G.pids, G.pidCount)
                netfilter = [(P.ipSending, .localOut, true)]
                (programs, tracing) = (P.allCases, P.allCases.filter { $0 != .ipSending })
            }
        }
    }

    /// The tracepoints each direction needs, with the kernel that added the newest of them.
    static func requirements(_ direction: LatencyDirection) -> (tracepoints: [String], kernel: String) {
        switch direction {
        case .in: (["netif_receive_skb", "tcp_probe", "skb_copy_datagram_iovec", "kfree_skb"], "6.12 (kfree_skb's rx_sk)")
        case .out: (["tcp_sendmsg_locked", "net_dev_queue", "net_dev_start_xmit"], "6.16 (tcp:tcp_sendmsg_locked)")
        }
    }

    /// Follows the segments of the namespace whose inode is `namespace` (default: this
    /// process's; another's opened at `namespacePath`), or with 0 those of every namespace
    /// whose IP points `follow(_:)` attaches.
    /// `ringBytes`: the reports' ring buffer (a power of two, at least a page), room for what
    /// arrives between two polls.
    public init(direction: LatencyDirection, filter: LatencyFilter, histograms histogramsOnly: Bool,
                namespace: UInt32 = NetworkNamespace.inode(), namespacePath: String? = nil,
                ringBytes: UInt32 = LatencyEngine.defaultRingBytes,
                logger: Logger = Logger(label: "netacct.latency")) throws {
        try KernelProbe.checkPrivileges()
        let btf = try KernelProbe.requireBTF()
        let (tracepoints, kernel) = Self.requirements(direction)
        for name in tracepoints where !btf.hasTracepoint(name) {
            throw NetacctError("Kernel \(KernelProbe.kernelRelease) has no \(name) tracepoint, which netacct latency \(direction.rawValue) needs (Linux >= \(kernel)).", kind: .unsupported)
        }
        guard btf.hasFunction("bpf_rdonly_cast") else {
            throw NetacctError("Kernel \(KernelProbe.kernelRelease) lacks the bpf_rdonly_cast kfunc: netacct latency needs Linux >= 6.4.", kind: .unsupported)
        }
        guard filter.pids.count <= Self.maximumPIDs else {
            throw NetacctError("netacct latency follows at most \(Self.maximumPIDs) processes (-p) at once, not \(filter.pids.count).", kind: .badInput)
        }
        self.direction = direction
        self.histogramsOnly = histogramsOnly
        let names = Names(direction)
        let object = try BPFObject(image: direction == .in ? BPFObjects.latencyIn : BPFObjects.latencyOut)
        try object.setReadOnlyGlobal(names.family, to: filter.family.addressFamily)
        try object.setReadOnlyGlobal(names.sport, to: filter.sourcePort ?? 0)
        try object.setReadOnlyGlobal(names.dport, to: filter.destinationPort ?? 0)
        try object.setReadOnlyGlobal(names.sample, to: max(1, filter.sample))
        try object.setReadOnlyGlobal(names.sampleBelow, to: UInt32((UInt64(1) << 32) / UInt64(max(1, filter.sample)) - (filter.sample <= 1 ? 1 : 0)))
        try object.setReadOnlyGlobal(names.netnsInum, to: namespace)
        try object.setReadOnlyGlobal(names.histogramsOnly, to: histogramsOnly)
        // Most segments not followed: the later points check a count before they look.
        let gated = filter.sample > 1 || filter.sourcePort != nil || filter.destinationPort != nil || filter.family != nil || !filter.pids.isEmpty
        try object.setReadOnlyGlobal(names.gated, to: gated)
        try object.setReadOnlyGlobal(names.pids, elements: filter.pids.map { UInt32(bitPattern: $0) })
        try object.setReadOnlyGlobal(names.pidCount, to: UInt32(filter.pids.count))
        // Counting only, the ring buffer is never written: its smallest size.
        try object.setMaxEntries(names.events, to: histogramsOnly ? UInt32(sysconf(Int32(_SC_PAGESIZE))) : ringBytes)
        for point in names.netfilter { try object.program(point.program).makeNetfilterProgram() }
        try object.load()
        self.object = object
        ring = histogramsOnly ? nil : try RingBuffer(object, name: names.events)
        counters = try PerCPUMap(object, name: names.counters)
        histograms = try PerCPUMap(object, name: names.histograms)
        namespaceHistograms = try PerCPUMap(object, name: names.namespaceHistograms)
        generation = try Map(object, name: names.generation)
        inflight = direction == .in ? .received(try Map(object, name: names.inflight)) : .sent(try Map(object, name: names.inflight))
        wallClockOffset = Timestamps.wallClockOffset()
        var families: [NetfilterFamily] = []
        if filter.family != .ipv6 { families.append(.ipv4) }
        if filter.family != .ipv4 { families.append(.ipv6) }
        self.families = families
        self.netfilterPoints = names.netfilter
        self.logger = logger
        links = try names.tracing.map { try object.program($0).attach() }
        // The IP points are a namespace's own: attached in each followed.
        if namespace != 0 {
            let path = namespace == NetworkNamespace.inode() ? nil : namespacePath
            try attachIPPoints(namespace: namespace, path: path)
        }
        logger.debug("latency programs attached", metadata: ["direction": "\(direction.rawValue)", "sample": "\(filter.sample)", "histograms": "\(histogramsOnly)"])
    }

    /// Attaches the IP points in namespace `namespace` (entered at `path`; nil: this thread's own).
    private func attachIPPoints(namespace: UInt32, path: String?) throws {
        let attach = {
            try self.netfilterPoints.flatMap { point in
                try self.families.map { try Self.attach(try self.object.program(point.program), $0, point.hook, first: point.first) }
            }
        }
        do {
            ipLinks[namespace] = try path.map { try NetworkNamespace.within($0, expecting: namespace, attach) } ?? attach()
        } catch let error as NetacctError {
            throw error
        } catch {
            throw NetacctError("Cannot attach the IP point of netacct latency (a netfilter BPF link, Linux >= 6.4 with CONFIG_NETFILTER_BPF_LINK=y) on kernel \(KernelProbe.kernelRelease): \(error)", kind: .unsupported)
        }
    }

    /// Every namespace: attaches the IP points in each namespace `present` that has none yet,
    /// and detaches those of the namespaces no longer there. One that cannot be followed is
    /// counted and said once, and tried again at each call (a PID's path gone between two
    /// reads, say, is found again by another).
    public func follow(present: [NamespaceDirectory.Entry]) {
        let inodes = Set(present.map(\.label.inode))
        for inode in ipLinks.keys where !inodes.contains(inode) { ipLinks[inode] = nil }
        for entry in present where ipLinks[entry.label.inode] == nil {
            do {
                try attachIPPoints(namespace: entry.label.inode, path: entry.label.inode == NetworkNamespace.inode() ? nil : entry.path)
                logger.debug("latency follows network namespace \(entry.label.display)", metadata: ["inode": "\(entry.label.inode)"])
            } catch {
                if unfollowed.insert(entry.label.inode).inserted {
                    logger.warning("latency cannot follow network namespace \(entry.label.display) (inode \(entry.label.inode)): \(error); trying again every second")
                }
            }
        }
    }

    /// Namespaces whose IP points could not be attached at least once.
    private var unfollowed: Set<UInt32> = []

    /// The namespaces whose IP points are attached.
    public var followedNamespaces: Set<UInt32> { Set(ipLinks.keys) }

    /// Attaches at the `first` (else the last) priority free: two BPF programs may not share a
    /// priority at a hook (EBUSY), and another netacct latency may run already.
    static func attach(_ program: Program, _ family: NetfilterFamily, _ hook: NetfilterHook, first: Bool) throws -> Link {
        let start = first ? Int32.min + 1 : Int32.max - 1
        var priority = start
        while true {
            do {
                return try program.attachNetfilter(family, hook, priority: priority)
            } catch let error as BPFError where error.errno == .resourceBusy && priority.magnitude.distance(to: start.magnitude).magnitude < 64 {
                priority += first ? 1 : -1
            }
        }
    }

    /// The reports' ring buffer unless asked otherwise: 8 MiB, 52,000 reports.
    public static let defaultRingBytes: UInt32 = 8 << 20

    /// Waits up to `milliseconds` and returns the segments reported meanwhile.
    public func poll(milliseconds: Int32) throws -> [netacct_latency_event] {
        try ring?.poll(milliseconds: milliseconds) ?? []
    }

    /// The histograms counted since the last call (or since `init`): the programs are switched
    /// to the other half of the map first, so nothing counted is lost or counted twice. It
    /// sleeps a millisecond (for a program that read the old generation just before the
    /// switch): never on an event loop, where `countedSinceLoad()` reads instead.
    public func takeHistograms() throws -> [LatencyHistogram] {
        let slot = try switchGeneration()
        var result = Self.emptyHistograms
        if let perCPU = try histograms.lookup(slot) { Self.add(perCPU, to: &result) }
        try histograms.update(slot, perCPU: [netacct_latency_histograms](repeating: netacct_latency_histograms(), count: histograms.cpuCount))
        return result
    }

    /// Every namespace (`namespace` 0): each namespace's histograms counted since the last
    /// call, taken as `takeHistograms()` takes them (its half of the map emptied).
    public func takeHistogramsByNamespace() throws -> [UInt32: [LatencyHistogram]] {
        let slot = try switchGeneration()
        var result: [UInt32: [LatencyHistogram]] = [:]
        for (key, perCPU) in try namespaceHistograms.entries() where key.generation == slot {
            Self.add(perCPU, to: &result[key.netns, default: Self.emptyHistograms])
            try namespaceHistograms.delete(key)
        }
        return result
    }

    /// Switches the programs to the other half of the histograms and waits for those that read
    /// the old one just before (they run with preemption off: microseconds); returns the old.
    private func switchGeneration() throws -> UInt32 {
        let current = try generation.lookup(0) ?? 0
        try generation.update(0, current ^ 1)
        usleep(1000)
        return current & 1
    }

    static var emptyHistograms: [LatencyHistogram] { [LatencyHistogram](repeating: LatencyHistogram(), count: Int(NETACCT_LATENCY_POINTS)) }

    /// Everything counted since the programs were loaded, for an engine whose histograms are
    /// never taken (the daemon's): both halves of the map summed, read without a switch, a
    /// wait or a write, so it may run on an event loop. Each bucket only grows.
    public func countedSinceLoad() throws -> [LatencyHistogram] {
        var result = Self.emptyHistograms
        for slot: UInt32 in 0...1 {
            if let perCPU = try histograms.lookup(slot) { Self.add(perCPU, to: &result) }
        }
        return result
    }

    /// Every namespace: `countedSinceLoad()` per namespace (since it was first counted, or
    /// forgotten last).
    public func countedSinceLoadByNamespace() throws -> [UInt32: [LatencyHistogram]] {
        var result: [UInt32: [LatencyHistogram]] = [:]
        for (key, perCPU) in try namespaceHistograms.entries() { Self.add(perCPU, to: &result[key.netns, default: Self.emptyHistograms]) }
        return result
    }

    /// Every namespace: the histograms of a namespace gone, out of the kernel's table.
    public func forgetHistograms(of netns: UInt32) throws {
        for generation: UInt32 in 0...1 { try namespaceHistograms.delete(netacct_latency_namespace_key(generation: generation, netns: netns)) }
    }

    private static func add(_ perCPU: [netacct_latency_histograms], to result: inout [LatencyHistogram]) {
        for cpu in perCPU {
            withUnsafeBytes(of: cpu.stage) { raw in
                for index in result.indices {
                    let record = raw.load(fromByteOffset: index * MemoryLayout<netacct_latency_histogram>.stride,
                                          as: netacct_latency_histogram.self)
                    result[index].merge(LatencyHistogram(record))
                }
            }
        }
    }

    /// Segments on their way now: received ones not yet taken by TCP, sent ones not yet at the
    /// driver.
    public func inflightCount() throws -> Int {
        switch inflight {
        case .received(let map): try map.entries().reduce(0) { $0 + Int($1.value.tail &- $1.value.head) }
        case .sent(let map): try map.entries().reduce(0) { $0 + Int($1.value.tail &- $1.value.head) }
        }
    }

    /// What the kernel side lost or gave up on.
    public struct Losses: Sendable, Equatable {
        public var lostReports: UInt64 = 0
        public var tableFull: UInt64 = 0
        public var socketFull: UInt64 = 0
        public var dropped: UInt64 = 0
        /// in: segments that left the path before a socket took them (forwarded, no socket).
        public var leftThePath: UInt64 = 0
        /// --hist, every namespace: segments of namespaces past the histograms' table.
        public var namespacesFull: UInt64 = 0
    }

    public func losses() throws -> Losses {
        func counter(_ index: netacct_latency_counter) throws -> UInt64 {
            try counters.lookupSummed(UInt32(index.rawValue)) ?? 0
        }
        return Losses(lostReports: try counter(NETACCT_LATENCY_LOST), tableFull: try counter(NETACCT_LATENCY_TABLE_FULL),
                      socketFull: try counter(NETACCT_LATENCY_SOCKET_FULL), dropped: try counter(NETACCT_LATENCY_DROPPED),
                      leftThePath: try counter(NETACCT_LATENCY_LEFT), namespacesFull: try counter(NETACCT_LATENCY_NAMESPACES_FULL))
    }

    /// Kernel run-time statistics of each program (needs kernel.bpf_stats_enabled=1).
    public func programStatistics() throws -> [String: ProgramStatistics] {
        var result: [String: ProgramStatistics] = [:]
        for name in Names(direction).programs { result[name.rawValue] = try object.program(name).statistics() }
        return result
    }
}
