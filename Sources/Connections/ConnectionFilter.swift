import NetacctKit

/// What `netacct connections` shows: the kinds of events, and the connections they are of. Every
/// filter runs in the kernel (read-only globals of connections.bpf.c).
public struct ConnectionFilter: Sendable, Equatable {
    public enum Direction: String, Sendable, CaseIterable {
        case connect, accept
    }

    /// Processes (TGIDs) that made the connection; empty: any.
    public var pids: [Int32] = []
    /// Ports, local or remote; empty: any.
    public var ports: [UInt16] = []
    public var direction: Direction?
    public var family: Family?
    /// A cgroup (relative to the cgroup2 mount, or absolute): only connections made by its
    /// processes or its descendants'.
    public var cgroup: String?
    /// Also connects that failed.
    public var failed = false
    /// Also closes, with duration and bytes.
    public var closes = false

    public init() {}

    /// Whether any filter on who made a connection is set (a connection of nobody known fails it).
    public var filtersCallers: Bool { !pids.isEmpty || cgroup != nil }
}
