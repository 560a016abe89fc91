import CNetacct
import NetacctKit

/// Frames and bytes on the wire, out and in, and TCP segments sent again (with their payload);
/// the `udp…` counters are the share of UDP sockets' frames in the first four.
public struct WireCounters: Sendable, Equatable, Codable {
    public var txPackets: UInt64 = 0
    public var txBytes: UInt64 = 0
    public var rxPackets: UInt64 = 0
    public var rxBytes: UInt64 = 0
    public var retransmittedSegments: UInt64 = 0
    public var retransmittedBytes: UInt64 = 0
    public var udpTxPackets: UInt64 = 0
    public var udpTxBytes: UInt64 = 0
    public var udpRxPackets: UInt64 = 0
    public var udpRxBytes: UInt64 = 0

    public init(txPackets: UInt64 = 0, txBytes: UInt64 = 0, rxPackets: UInt64 = 0, rxBytes: UInt64 = 0,
                retransmittedSegments: UInt64 = 0, retransmittedBytes: UInt64 = 0,
                udpTxPackets: UInt64 = 0, udpTxBytes: UInt64 = 0, udpRxPackets: UInt64 = 0, udpRxBytes: UInt64 = 0) {
        (self.txPackets, self.txBytes, self.rxPackets, self.rxBytes) = (txPackets, txBytes, rxPackets, rxBytes)
        (self.retransmittedSegments, self.retransmittedBytes) = (retransmittedSegments, retransmittedBytes)
        (self.udpTxPackets, self.udpTxBytes, self.udpRxPackets, self.udpRxBytes) = (udpTxPackets, udpTxBytes, udpRxPackets, udpRxBytes)
    }

    init(_ c: netacct_wire_counters) {
        self.init(txPackets: c.tx_packets, txBytes: c.tx_bytes, rxPackets: c.rx_packets, rxBytes: c.rx_bytes,
                  retransmittedSegments: c.retransmitted_segments, retransmittedBytes: c.retransmitted_bytes,
                  udpTxPackets: c.udp_tx_packets, udpTxBytes: c.udp_tx_bytes, udpRxPackets: c.udp_rx_packets, udpRxBytes: c.udp_rx_bytes)
    }

    public var isZero: Bool { self == Self() }
    public var totalBytes: UInt64 { txBytes &+ rxBytes }

    /// Each counter of `a` and `b` combined by `operation`.
    static func combining(_ a: Self, _ b: Self, _ operation: (UInt64, UInt64) -> UInt64) -> Self {
        Self(txPackets: operation(a.txPackets, b.txPackets), txBytes: operation(a.txBytes, b.txBytes),
             rxPackets: operation(a.rxPackets, b.rxPackets), rxBytes: operation(a.rxBytes, b.rxBytes),
             retransmittedSegments: operation(a.retransmittedSegments, b.retransmittedSegments),
             retransmittedBytes: operation(a.retransmittedBytes, b.retransmittedBytes),
             udpTxPackets: operation(a.udpTxPackets, b.udpTxPackets), udpTxBytes: operation(a.udpTxBytes, b.udpTxBytes),
             udpRxPackets: operation(a.udpRxPackets, b.udpRxPackets), udpRxBytes: operation(a.udpRxBytes, b.udpRxBytes))
    }

    public static func + (a: Self, b: Self) -> Self { combining(a, b, &+) }

    public static func += (a: inout Self, b: Self) { a = a + b }

    /// `self - other`, each counter at least 0 (a counter never goes back).
    public func since(_ other: Self) -> Self { Self.combining(self, other) { $0 >= $1 ? $0 - $1 : 0 } }
}

/// Frames and bytes each way that may be negative: an interface's totals less its owners' frames.
public struct WireBalance: Sendable, Equatable {
    public var txPackets: Int64 = 0
    public var txBytes: Int64 = 0
    public var rxPackets: Int64 = 0
    public var rxBytes: Int64 = 0

    public init(txPackets: Int64 = 0, txBytes: Int64 = 0, rxPackets: Int64 = 0, rxBytes: Int64 = 0) {
        (self.txPackets, self.txBytes, self.rxPackets, self.rxBytes) = (txPackets, txBytes, rxPackets, rxBytes)
    }

    /// `total` less `part`, each way.
    public init(_ total: WireCounters, less part: WireCounters) {
        func minus(_ a: UInt64, _ b: UInt64) -> Int64 { Int64(bitPattern: a &- b) }
        self.init(txPackets: minus(total.txPackets, part.txPackets), txBytes: minus(total.txBytes, part.txBytes),
                  rxPackets: minus(total.rxPackets, part.rxPackets), rxBytes: minus(total.rxBytes, part.rxBytes))
    }

    public var isZero: Bool { self == Self() }

    public static func + (a: Self, b: Self) -> Self {
        Self(txPackets: a.txPackets &+ b.txPackets, txBytes: a.txBytes &+ b.txBytes,
             rxPackets: a.rxPackets &+ b.rxPackets, rxBytes: a.rxBytes &+ b.rxBytes)
    }

    public static func += (a: inout Self, b: Self) { a = a + b }

    /// Never below zero (a cumulative count that must not go back).
    public var atLeastZero: WireCounters {
        WireCounters(txPackets: UInt64(max(0, txPackets)), txBytes: UInt64(max(0, txBytes)),
                     rxPackets: UInt64(max(0, rxPackets)), rxBytes: UInt64(max(0, rxBytes)))
    }
}

/// An interface of one network namespace (ifindex values repeat across namespaces). ifindex 0:
/// no interface known (a retransmission of a socket with no route cached).
public struct InterfaceID: Hashable, Sendable, Comparable, Codable {
    public var netns: UInt32
    public var ifindex: UInt32

    public init(netns: UInt32, ifindex: UInt32) { (self.netns, self.ifindex) = (netns, ifindex) }

    public static func < (a: Self, b: Self) -> Bool { (a.netns, a.ifindex) < (b.netns, b.ifindex) }
}

/// A socket's owner as the kernel side keys it: the TGID and the low 32 bits of its start time.
public struct WireOwner: Hashable, Sendable, Comparable {
    public var pid: Int32
    public var start: UInt32

    public init(pid: Int32, start: UInt32) { (self.pid, self.start) = (pid, start) }

    public static func < (a: Self, b: Self) -> Bool { (a.pid, a.start) < (b.pid, b.start) }
}

/// Who an owner is (recorded when it became a socket's owner).
public struct WireProcess: Sendable, Equatable {
    public var pid: Int32
    public var startNanoseconds: UInt64
    public var cgroupID: UInt64
    public var comm: String
    /// Whether it had exited when the sample was read (its sockets may live on in a child).
    public var exited = false

    public init(pid: Int32, startNanoseconds: UInt64, cgroupID: UInt64, comm: String, exited: Bool = false) {
        (self.pid, self.startNanoseconds, self.cgroupID, self.comm, self.exited) = (pid, startNanoseconds, cgroupID, comm, exited)
    }

    public var id: ProcessID { ProcessID(pid: pid, startNanoseconds: startNanoseconds) }
}

/// One read of the wire counters (cumulative since the engine started), or the difference of
/// two (`since`).
public struct WireSample: Sendable {
    public struct Interface: Sendable, Equatable {
        public var name: String
        /// Every frame of the interface (its transmit and receive counters; no retransmissions).
        public var totals: WireCounters
        public init(name: String, totals: WireCounters) { (self.name, self.totals) = (name, totals) }
    }

    public struct Losses: Sendable, Equatable {
        /// Frames left unattributed because the table of (process, interface) pairs was full.
        public var ownersFull: UInt64 = 0
        /// Frames of interfaces that found no room (in no total).
        public var interfacesFull: UInt64 = 0
        /// Sockets whose owner could not be recorded.
        public var storageFull: UInt64 = 0

        public init(ownersFull: UInt64 = 0, interfacesFull: UInt64 = 0, storageFull: UInt64 = 0) {
            (self.ownersFull, self.interfacesFull, self.storageFull) = (ownersFull, interfacesFull, storageFull)
        }

        public var isZero: Bool { self == Self() }

        public var phrases: [String] {
            var result: [String] = []
            if ownersFull > 0 { result.append("\(ownersFull) frames left unattributed (no room for their process and interface)") }
            if interfacesFull > 0 { result.append("\(interfacesFull) frames of interfaces that found no room (in no total)") }
            if storageFull > 0 { result.append("\(storageFull) sockets whose owner could not be recorded") }
            return result
        }
    }

    public var interfaces: [InterfaceID: Interface] = [:]
    /// Each owner's frames by interface (ifindex 0: retransmissions where no route was known).
    public var owned: [WireOwner: [InterfaceID: WireCounters]] = [:]
    public var processes: [WireOwner: WireProcess] = [:]
    /// Frames of owners whose counters are no longer kept (the retention passed), by interface:
    /// still attributed, so that the unattributed ones stay what they were.
    public var forgotten: [InterfaceID: WireCounters] = [:]
    public var losses = Losses()

    public init() {}

    mutating func add(interface value: netacct_wire_interface) {
        let id = InterfaceID(netns: value.netns, ifindex: value.ifindex)
        let counted = WireCounters(txPackets: value.tx_packets, txBytes: value.tx_bytes,
                                   rxPackets: value.rx_packets, rxBytes: value.rx_bytes)
        if interfaces[id] == nil {
            interfaces[id] = Interface(name: string(fromCString: value.name), totals: counted)
        } else {
            interfaces[id]!.totals += counted
        }
    }

    /// What no process owned on `interface`: its totals less every owner's frames there (and
    /// those of owners forgotten since, `forgotten`). From the engine's start it is never
    /// negative (owners are read before totals, and a frame counts in its interface's totals
    /// before its owner's); over an interval (`since`) it can be, by the frames a device had
    /// received as the interval began that reached their socket in it. The sum over intervals
    /// is the total.
    public func unattributed(_ interface: InterfaceID) -> WireBalance {
        unattributed(interface, attributed: attributedByInterface())
    }

    private func unattributed(_ interface: InterfaceID, attributed: [InterfaceID: WireCounters]) -> WireBalance {
        WireBalance(interfaces[interface]?.totals ?? WireCounters(),
                    less: (forgotten[interface] ?? WireCounters()) + (attributed[interface] ?? WireCounters()))
    }

    /// Every owner's frames summed by interface, in one pass over the owners.
    private func attributedByInterface() -> [InterfaceID: WireCounters] {
        var sums: [InterfaceID: WireCounters] = [:]
        for (_, byInterface) in owned {
            for (interface, counters) in byInterface { sums[interface, default: WireCounters()] += counters }
        }
        return sums
    }

    /// The difference from an earlier sample of the same engine: what happened in between.
    public func since(_ earlier: WireSample) -> WireSample {
        var result = WireSample()
        result.processes = processes
        for (id, interface) in interfaces {
            var delta = interface
            delta.totals = interface.totals.since(earlier.interfaces[id]?.totals ?? WireCounters())
            result.interfaces[id] = delta
        }
        for (owner, byInterface) in owned {
            for (id, counters) in byInterface {
                let delta = counters.since(earlier.owned[owner]?[id] ?? WireCounters())
                if !delta.isZero { result.owned[owner, default: [:]][id] = delta }
            }
        }
        // An owner forgotten in between: its frames since the earlier sample are still attributed.
        for (id, counters) in forgotten {
            var delta = counters.since(earlier.forgotten[id] ?? WireCounters())
            for (owner, byInterface) in earlier.owned where owned[owner] == nil {
                if let before = byInterface[id] { delta = delta.since(before) }
            }
            if !delta.isZero { result.forgotten[id] = delta }
        }
        result.losses = Losses(ownersFull: losses.ownersFull - min(losses.ownersFull, earlier.losses.ownersFull),
                               interfacesFull: losses.interfacesFull - min(losses.interfacesFull, earlier.losses.interfacesFull),
                               storageFull: losses.storageFull - min(losses.storageFull, earlier.losses.storageFull))
        return result
    }
}

extension WireSample {
    /// One owner's frames on a set of interfaces: in all, and by interface.
    public struct Row: Sendable {
        public var owner: WireOwner
        public var process: WireProcess?
        public var total: WireCounters
        public var byInterface: [(id: InterfaceID, counters: WireCounters)]
    }

    /// The interfaces named `names` (any namespace), or every interface when nil.
    public func interfaces(named names: Set<String>?) -> Set<InterfaceID> {
        Set(interfaces.filter { names?.contains($0.value.name) ?? true }.keys)
    }

    /// Each owner's frames on `interfaces` (nil: everywhere, retransmissions with no interface
    /// known included), owners with nothing there left out.
    public func rows(on interfaces: Set<InterfaceID>?) -> [Row] {
        owned.compactMap { owner, byInterface in
            let kept = byInterface.filter { interfaces?.contains($0.key) ?? true }.sorted { $0.key < $1.key }
            let total = kept.reduce(WireCounters()) { $0 + $1.value }
            guard !total.isZero else { return nil }
            return Row(owner: owner, process: processes[owner], total: total, byInterface: kept.map { ($0.key, $0.value) })
        }
    }

    /// Every interface's unattributed frames and its totals, in namespace and ifindex order.
    public func interfaceRows(_ selected: Set<InterfaceID>?) -> [(id: InterfaceID, name: String, totals: WireCounters, unattributed: WireBalance)] {
        let attributed = attributedByInterface()
        return interfaces.filter { selected?.contains($0.key) ?? true }.sorted { $0.key < $1.key }.map {
            ($0.key, $0.value.name, $0.value.totals, unattributed($0.key, attributed: attributed))
        }
    }
}
