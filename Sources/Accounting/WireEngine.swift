import BPF
import CNetacct
import Logging
import NetacctKit
import NetacctPrograms

/// The wire programs loaded and attached (wire.bpf.c): frames and bytes on the wire per process
/// and interface, every interface's totals, TCP retransmissions per process. Counts from `init`
/// on, in every network namespace of the host; `sample()` reads the kernel side.
///
/// Needs Linux >= 6.3 with BTF and a cgroup2 file system: `net_dev_start_xmit` and
/// `netif_receive_skb` (tp_btf), `cgroup_skb/ingress` and `cgroup/sock_create` on the cgroup2
/// root, `sock_send_length`/`sock_recv_length` for the owner rule, socket storage,
/// `bpf_cast_to_kern_ctx` and `bpf_rdonly_cast` (6.2).
public final class WireEngine {
    public typealias Names = BPFObjects.Wire

    private let object: BPFObject
    /// The owners' counters (per CPU), their identities (read through a mapping, and written to
    /// retire a cell), the index that finds them and the queue of free ones (wire.bpf.c).
    private let cells: PerCPUMap<UInt32, netacct_wire_counters>
    private let cellOwners: MappedArray<netacct_wire_cell>
    private let cellIdentities: Map<UInt32, netacct_wire_cell>
    private let cellIndex: Map<netacct_wire_key, UInt32>
    private let freeCells: QueueMap<UInt32>
    private let interfaceSlots: PerCPUMap<UInt32, netacct_wire_interface>
    private let moreInterfaces: PerCPUMap<netacct_wire_interface_key, netacct_wire_interface>
    private let processes: Map<netacct_wire_process_key, netacct_wire_process>
    private let stats: PerCPUMap<UInt32, UInt64>
    private let links: [Link]
    /// Who owned what, kept once read: an owner's identity entry may be evicted after its exit.
    private var known: [WireOwner: WireProcess] = [:]

    /// The programs on the per-frame path, for their run-time statistics.
    public static let framePrograms: [Names.Program] = [.countTx, .countRx, .countDelivered]
    /// The programs that record a socket's owner on each call.
    public static let callPrograms: [Names.Program] = [.ownSend, .ownRecv]

    public init(options: Options = .init(), logger: Logger = Logger(label: "netacct.wire")) throws {
        retention = options.retention
        let btf = try Self.checkKernel()
        let cgroupRoot = try CgroupNames.requireMountPoint(
            for: "Counting on the wire", because: "its programs see every socket's packets from the cgroup2 root")
        let object = try BPFObject(image: BPFObjects.wire)
        for map in [Names.Map.cells, Names.Map.cellOwners, Names.Map.cellIndex, Names.Map.freeCells] {
            try object.setMaxEntries(map, to: options.ownerEntries)
        }
        try object.setReadOnlyGlobal(Names.Global.cellCount, to: options.ownerEntries)
        // tcp_retransmit_skb gained its `err` argument in 6.12; before, it fired only for a
        // retransmission that went out.
        let withError = (btf.tracepointArguments("tcp_retransmit_skb") ?? 0) >= 3
        try object.program(Names.Program.countRetransmit).autoload = withError
        try object.program(Names.Program.countRetransmitSent).autoload = !withError
        // tcp_sendmsg_locked (Linux >= 6.16): a TCP send's caller owns the socket as the send
        // starts. Before, from its end (sock_send_length): the first send of a process on a
        // socket handed to it counts for the one before.
        let tcpSendStart = btf.hasTracepoint("tcp_sendmsg_locked")
        try object.program(Names.Program.ownTcpSend).autoload = tcpSendStart
        try object.load()
        self.object = object
        cells = try PerCPUMap(object, name: Names.Map.cells)
        cellOwners = try MappedArray(object, name: Names.Map.cellOwners)
        cellIdentities = try Map(object, name: Names.Map.cellOwners)
        cellIndex = try Map(object, name: Names.Map.cellIndex)
        freeCells = try QueueMap(object, name: Names.Map.freeCells)
        interfaceSlots = try PerCPUMap(object, name: Names.Map.interfaces)
        moreInterfaces = try PerCPUMap(object, name: Names.Map.moreInterfaces)
        processes = try Map(object, name: Names.Map.processes)
        stats = try PerCPUMap(object, name: Names.Map.stats)
        // Owners first (new sockets, listeners, calls), then the frames: no frame of a socket
        // made after `init` goes unowned for want of its program.
        var links: [Link] = []
        links.append(try object.program(Names.Program.ownCreated).attachCgroup(cgroupRoot))
        links.append(try object.program(Names.Program.followListener).attach())
        for name in Self.callPrograms { links.append(try object.program(name).attach()) }
        if tcpSendStart { links.append(try object.program(Names.Program.ownTcpSend).attach()) }
        // A closed socket's held frames (wire.bpf.c, hold) go to its owner.
        links.append(try object.program(Names.Program.releaseSocket).attachCgroup(cgroupRoot))
        // The interfaces' receive totals before the owners' frames in: a frame a socket takes
        // was counted at its device first (no owner with more frames than the totals).
        links.append(try object.program(Names.Program.countRx).attach())
        links.append(try object.program(Names.Program.countDelivered).attachCgroup(cgroupRoot))
        links.append(try object.program(withError ? Names.Program.countRetransmit : Names.Program.countRetransmitSent).attach())
        links.append(try object.program(Names.Program.countSynackRetransmit).attach())
        links.append(try object.program(Names.Program.countTx).attach())
        self.links = links
        logger.debug("wire programs attached", metadata: ["programs": "\(links.map(\.subject))"])
    }

    public struct Options: Sendable {
        /// Room for (process, interface) pairs (tests shrink it to fill it).
        public var ownerEntries = UInt32(NETACCT_WIRE_OWNER_ENTRIES)
        /// Seconds an exited process's counters stay in the samples (the daemon's `--retention`).
        public var retention: Double = 900
        public init(ownerEntries: UInt32 = UInt32(NETACCT_WIRE_OWNER_ENTRIES), retention: Double = 900) {
            (self.ownerEntries, self.retention) = (ownerEntries, retention)
        }
    }

    /// The kernel's BTF, or why the wire cannot be counted on this kernel.
    static func checkKernel() throws -> KernelBTF {
        try KernelProbe.checkPrivileges()
        let btf = try KernelProbe.requireBTF()
        for name in ["net_dev_start_xmit", "netif_receive_skb", "sock_send_length", "sock_recv_length",
                     "tcp_retransmit_skb", "tcp_retransmit_synack", "inet_sock_set_state"] where !btf.hasTracepoint(name) {
            throw NetacctError("""
                Kernel \(KernelProbe.kernelRelease) has no \(name) tracepoint: counting on the wire needs \
                Linux >= 6.3 (sock_send_length and sock_recv_length came in 6.3).
                """, kind: .unsupported)
        }
        for name in ["bpf_cast_to_kern_ctx", "bpf_rdonly_cast"] where !btf.hasFunction(name) {
            throw NetacctError("Kernel \(KernelProbe.kernelRelease) has no \(name) kfunc: counting on the wire needs Linux >= 6.3.",
                               kind: .unsupported)
        }
        return btf
    }

    /// The counters since `init`: every interface's totals, each owner's share of them, and what
    /// could not be counted.
    ///
    /// The kernel's cells of (owner, interface) counters would fill with the processes that come
    /// and go: an owner that has exited and whose counters have not moved since the last sample
    /// has its cells retired (no frame finds or counts in them any more), read a last time at
    /// the next sample and freed; their counts are kept here, in the samples, for `retention`
    /// seconds. A socket it left to a child that counts again makes a new cell, added to them.
    public func sample(now: Double = StopSignals.now()) throws -> WireSample {
        var sample = WireSample()
        // The cells in use (an identity), and their counters up to the last one in use or retiring.
        var live: [Int: (owner: WireOwner, interface: InterfaceID)] = [:]
        try cellOwners.forEach { cell in
            guard cell.field(at: 0, as: UInt64.self) != 0 else { return }
            let identity = cell.value
            live[cell.index] = (WireOwner(pid: Int32(bitPattern: UInt32(identity.word >> 32)), start: UInt32(truncatingIfNeeded: identity.word)),
                                InterfaceID(netns: identity.netns, ifindex: identity.ifindex))
        }
        let last = max(live.keys.max() ?? -1, retiring.keys.max() ?? -1)
        var counted: [Int: WireCounters] = [:]
        for (index, values) in try cells.entries(limit: last + 1) where live[Int(index)] != nil || retiring[Int(index)] != nil {
            counted[Int(index)] = values.reduce(WireCounters()) { $0 + WireCounters($1) }
        }
        var inKernel: [WireOwner: [InterfaceID: WireCounters]] = [:]
        for (index, cell) in live {
            inKernel[cell.owner, default: [:]][cell.interface, default: WireCounters()] += counted[index] ?? WireCounters()
        }
        // Owners first, then the interfaces: a frame counts in its interface's totals before its
        // owner's, so every attributed frame read is in the totals read after (no interface has
        // fewer frames than its owners).
        for (_, values) in try interfaceSlots.entries() {
            for value in values where value.ifindex != 0 { sample.add(interface: value) }
        }
        // An entry of the hash is made by one CPU, whose copy names the interface; the other
        // CPUs' copies start zeroed (no netns, no ifindex, no name) and count all the same when
        // those CPUs find the entry: the key says whose they are.
        for (key, values) in try moreInterfaces.entries() {
            var value = values.first { $0.ifindex != 0 } ?? netacct_wire_interface()
            value.netns = key.netns
            value.ifindex = key.ifindex
            value.tx_packets = values.reduce(0) { $0 &+ $1.tx_packets }
            value.tx_bytes = values.reduce(0) { $0 &+ $1.tx_bytes }
            value.rx_packets = values.reduce(0) { $0 &+ $1.rx_packets }
            value.rx_bytes = values.reduce(0) { $0 &+ $1.rx_bytes }
            sample.add(interface: value)
        }
        sample.owned = inKernel
        // The cells retired a second ago or more: no frame has counted in them since (their
        // identity was cleared, and a program runs for microseconds): final, kept here, freed.
        for (index, cell) in retiring {
            // Still counted as the owner's until a second has passed since its identity was cleared.
            guard now - cell.cleared >= Self.quietSeconds else {
                sample.owned[cell.owner, default: [:]][cell.interface, default: WireCounters()] += counted[index] ?? WireCounters()
                continue
            }
            // The retention runs from the owner's last retirement.
            var kept = retired[cell.owner] ?? Retired(since: cell.cleared)
            kept.since = max(kept.since, cell.cleared)
            kept.counters[cell.interface, default: WireCounters()] += counted[index] ?? WireCounters()
            retired[cell.owner] = kept
            try cells.update(UInt32(index), perCPU: Array(repeating: netacct_wire_counters(), count: cells.cpuCount))
            try freeCells.push(UInt32(index))
            retiring[index] = nil
        }
        // Gone from the samples after the retention, unless the owner counts again (a socket it
        // left in a child): its counts never go back while it does.
        for (owner, kept) in retired where now - kept.since > retention && inKernel[owner] == nil && !retiring.values.contains(where: { $0.owner == owner }) {
            retired[owner] = nil
            for (interface, counters) in kept.counters { forgotten[interface, default: WireCounters()] += counters }
            if inKernel[owner] == nil { known[owner] = nil }
        }
        sample.forgotten = forgotten
        for (owner, kept) in retired {
            for (interface, counters) in kept.counters { sample.owned[owner, default: [:]][interface, default: WireCounters()] += counters }
        }
        let totals = sample.owned.mapValues { $0.values.reduce(WireCounters(), +) }
        var retiredNow = Set<WireOwner>()
        samples += 1
        for (owner, total) in totals {
            if known[owner] == nil {
                let key = netacct_wire_process_key(tgid: UInt32(bitPattern: owner.pid), start: owner.start)
                if let who = try processes.lookup(key) {
                    known[owner] = WireProcess(pid: owner.pid, startNanoseconds: who.start_ns, cgroupID: who.cgroup_id,
                                               comm: string(fromCString: who.comm))
                }
            }
            let moved = previousTotals[owner] != total
            if moved || lastMoved[owner] == nil { lastMoved[owner] = now }
            let quiet = now - (lastMoved[owner] ?? now) >= Self.quietSeconds
            // Whether it still runs: for the owners shown (their counters moved), and every tenth
            // sample for the others, which may then leave the kernel's table. An owner whose
            // identity the kernel no longer keeps (its LRU table) is gone once its PID is.
            var exited: Bool
            if var process = known[owner] {
                if moved || samples % 10 == 0 { process.exited = !ProcessLiveness.isRunning(process.id) }
                known[owner] = process
                sample.processes[owner] = process
                exited = process.exited
            } else {
                exited = samples % 10 == 0 && ProcessStart.ticks(owner.pid) == nil
            }
            if exited && quiet && inKernel[owner] != nil {
                for (index, cell) in live where cell.owner == owner { try retire(cell: index, of: owner, on: cell.interface, now: now) }
                retiredNow.insert(owner)
            }
        }
        previousTotals = totals
        for owner in lastMoved.keys where totals[owner] == nil { lastMoved[owner] = nil }
        ownersInKernel = Set(inKernel.keys).subtracting(retiredNow)
        let lost = try stats.entries().reduce(into: [UInt32: UInt64]()) { $0[$1.key] = $1.values.reduce(0, +) }
        sample.losses = WireSample.Losses(
            ownersFull: lost[UInt32(NETACCT_WIRE_STAT_OWNERS_FULL.rawValue)] ?? 0,
            interfacesFull: lost[UInt32(NETACCT_WIRE_STAT_INTERFACES_FULL.rawValue)] ?? 0,
            storageFull: lost[UInt32(NETACCT_WIRE_STAT_STORAGE_FULL.rawValue)] ?? 0)
        return sample
    }

    /// Takes an exited owner's cell out of use: no frame finds it any more (its index entry is
    /// deleted) or counts in it (its identity is cleared, which every frame checks); the next
    /// sample reads its final counters and frees it.
    private func retire(cell index: Int, of owner: WireOwner, on interface: InterfaceID, now: Double) throws {
        let key = netacct_wire_key(tgid: UInt32(bitPattern: owner.pid), start: owner.start, netns: interface.netns, ifindex: interface.ifindex)
        try cellIndex.delete(key)
        try cellIdentities.update(UInt32(index), netacct_wire_cell())
        retiring[index] = (owner, interface, now)
    }

    /// Cells retired at the last sample, to be read a last time and freed at the next.
    private var retiring: [Int: (owner: WireOwner, interface: InterfaceID, cleared: Double)] = [:]

    /// Owners taken out of the kernel's table: their counters, and since when.
    private struct Retired {
        var since: Double
        var counters: [InterfaceID: WireCounters] = [:]
    }

    private var retired: [WireOwner: Retired] = [:]
    /// The frames of the owners dropped from `retired`, by interface (WireSample.forgotten).
    private var forgotten: [InterfaceID: WireCounters] = [:]
    /// The owners with entries in the kernel's table after the last sample.
    public private(set) var ownersInKernel = Set<WireOwner>()
    private var previousTotals: [WireOwner: WireCounters] = [:]
    /// When each owner's counters last moved: an exited owner is retired after a quiet second,
    /// and a retired cell freed a second after its identity was cleared, however often the
    /// samples come (the daemon reads at each request).
    private var lastMoved: [WireOwner: Double] = [:]
    static let quietSeconds = 1.0
    private var samples = 0
    /// Seconds an exited owner's counters stay in the samples once out of the kernel's table.
    public let retention: Double

    /// Kernel run-time statistics of the programs on the per-frame path (needs kernel.bpf_stats_enabled=1).
    public func programStatistics() throws -> [Names.Program: ProgramStatistics] {
        var result: [Names.Program: ProgramStatistics] = [:]
        for name in Self.framePrograms + Self.callPrograms + [.ownTcpSend] where try object.program(name).autoload {
            result[name] = try object.program(name).statistics()
        }
        return result
    }
}
