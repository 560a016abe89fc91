import BPF
import CNetacct
import Glibc
import Logging
import NetacctKit
import NetacctPrograms

/// The connections programs loaded and attached with a filter: events from `init` on, through
/// a ring buffer (Linux >= 6.2: tp_btf on sock:inet_sock_set_state, bpf_get_current_task_btf in
/// syscall tracepoints, ring buffers, the bpf_rdonly_cast kfunc that reads sockets without a
/// helper call).
public final class ConnectionsEngine {
    public typealias Names = BPFObjects.Connections
    public static let maximumPIDs = Int(NETACCT_CONNECTIONS_PIDS)
    public static let maximumPorts = Int(NETACCT_CONNECTIONS_PORTS)

    public let filter: ConnectionFilter
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, in nanoseconds: turns the kernel's times into wall-clock times.
    public let wallClockOffset: Int64
    private let object: BPFObject
    private let ring: RingBuffer<netacct_connection_event>
    private let counters: PerCPUMap<UInt32, UInt64>
    /// Attached for as long as the engine lives.
    private let links: [Link]

    /// The ring buffer's size by default: at 144 bytes an event, 58,000 events (more than a
    /// second of a 10,000 connections/s storm with every kind of event).
    public static let defaultRingBufferBytes: UInt32 = 8 << 20

    /// `ringBufferBytes`: a power of two, at least a page.
    public init(filter: ConnectionFilter, ringBufferBytes: UInt32 = defaultRingBufferBytes,
                logger: Logger = Logger(label: "netacct.connections")) throws {
        try Self.checkKernel(logger: logger)
        guard filter.pids.count <= Self.maximumPIDs else {
            throw NetacctError("netacct connections follows at most \(Self.maximumPIDs) processes (-p) at once, not \(filter.pids.count).", kind: .badInput)
        }
        guard filter.ports.count <= Self.maximumPorts else {
            throw NetacctError("netacct connections matches at most \(Self.maximumPorts) ports (-P) at once, not \(filter.ports.count).", kind: .badInput)
        }
        // Resolved before anything loads, so a wrong path is the error the user reads.
        let cgroupDirectory = try filter.cgroup.map { try CgroupNames().directory(of: $0) }
        self.filter = filter
        let object = try BPFObject(image: BPFObjects.connections)
        var kinds: UInt32 = 1 << NETACCT_CONNECTION_CONNECT.rawValue | 1 << NETACCT_CONNECTION_ACCEPT.rawValue
        if filter.failed { kinds |= 1 << NETACCT_CONNECTION_FAILED.rawValue }
        if filter.closes { kinds |= 1 << NETACCT_CONNECTION_CLOSE.rawValue }
        let directions: UInt32 = switch filter.direction {
        case .connect: 1 << NETACCT_CONNECTION_OUTBOUND.rawValue
        case .accept: 1 << NETACCT_CONNECTION_INBOUND.rawValue
        case nil: 1 << NETACCT_CONNECTION_OUTBOUND.rawValue | 1 << NETACCT_CONNECTION_INBOUND.rawValue
        }
        try object.setReadOnlyGlobal(Names.Global.kinds, to: kinds)
        try object.setReadOnlyGlobal(Names.Global.directions, to: directions)
        try object.setReadOnlyGlobal(Names.Global.family, to: filter.family.addressFamily)
        try object.setReadOnlyGlobal(Names.Global.pids, elements: filter.pids.map { UInt32(bitPattern: $0) })
        try object.setReadOnlyGlobal(Names.Global.pidCount, to: UInt32(filter.pids.count))
        try object.setReadOnlyGlobal(Names.Global.ports, elements: filter.ports)
        try object.setReadOnlyGlobal(Names.Global.portCount, to: UInt32(filter.ports.count))
        try object.setReadOnlyGlobal(Names.Global.inCgroup, to: cgroupDirectory != nil)
        try object.setMaxEntries(Names.Map.events, to: ringBufferBytes)
        try object.load()
        self.object = object
        if let cgroupDirectory {
            // The map keeps its own reference to the cgroup: the descriptor is needed only here.
            let fd = open(cgroupDirectory, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
            guard fd >= 0 else {
                throw NetacctError("Cannot open the cgroup \(cgroupDirectory): \(String(cString: strerror(errno))).")
            }
            defer { close(fd) }
            try Map<UInt32, UInt32>(object, name: Names.Map.cgroupFilter).update(0, UInt32(fd))
        }
        ring = try RingBuffer(object, name: Names.Map.events)
        counters = try PerCPUMap(object, name: Names.Map.counters)
        wallClockOffset = Timestamps.wallClockOffset()
        links = try Names.Program.allCases.map { try object.program($0).attach() }
        logger.debug("connections programs attached", metadata: ["filter": "\(filter)"])
    }

    static func checkKernel(logger: Logger) throws {
        try KernelProbe.checkPrivileges()
        let btf = try KernelProbe.requireBTF()
        guard btf.hasTracepoint("inet_sock_set_state") else {
            throw NetacctError("Kernel \(KernelProbe.kernelRelease) has no sock:inet_sock_set_state tracepoint, which netacct connections needs (Linux >= 4.16).",
                               kind: .unsupported)
        }
        guard btf.hasFunction("bpf_rdonly_cast") else {
            throw NetacctError("Kernel \(KernelProbe.kernelRelease) has no bpf_rdonly_cast kfunc: netacct connections needs Linux >= 6.2.",
                               kind: .unsupported)
        }
        if try KernelProbe.requireTracefs().mounted {
            logger.notice("tracefs was not mounted: mounted it at /sys/kernel/tracing (the accept tracepoints need it)")
        }
        for name in ["sys_exit_accept4", "sys_exit_accept", "sys_enter_connect", "sys_exit_connect"] {
            try KernelProbe.requireTracepoint("syscalls", name, for: "netacct connections")
        }
    }


    /// Waits up to `milliseconds` for events and returns those that came, in the kernel's order.
    /// The kernel wakes user space only once a batch is waiting (connections.bpf.c): what came
    /// in the meantime is taken when the wait ends.
    public func poll(milliseconds: Int32) throws -> [ConnectionEvent] {
        try ring.poll(milliseconds: milliseconds).map { ConnectionEvent($0, wallClockOffset: wallClockOffset) }
    }

    /// The events ready now, without waiting.
    public func drain() throws -> [ConnectionEvent] {
        try ring.drain().map { ConnectionEvent($0, wallClockOffset: wallClockOffset) }
    }

    /// Events the kernel could not deliver since `init` (the ring buffer was full: user space fell behind).
    public func lostEvents() throws -> UInt64 {
        try counters.lookupSummed(UInt32(NETACCT_CONNECTIONS_LOST.rawValue)) ?? 0
    }

    /// Connections the kernel could not follow since `init` (its table was full): their
    /// accept or close shows no process, or, under -p or --cgroup, is not shown.
    public func untrackedConnections() throws -> UInt64 {
        try counters.lookupSummed(UInt32(NETACCT_CONNECTIONS_UNTRACKED.rawValue)) ?? 0
    }

    /// Kernel run-time statistics of the programs (needs kernel.bpf_stats_enabled=1).
    public func programStatistics() throws -> [Names.Program: ProgramStatistics] {
        var result: [Names.Program: ProgramStatistics] = [:]
        for name in Names.Program.allCases { result[name] = try object.program(name).statistics() }
        return result
    }
}
