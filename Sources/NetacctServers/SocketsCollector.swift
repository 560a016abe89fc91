import Accounting
import DaemonProtocol
import DequeModule
import NetacctKit

/// Per-socket counting as a collector (`netacct daemon --connections`): verb `sockets`, every
/// socket's cumulative counters as each process used it. A closed socket's final counters go,
/// once, to every client connected when its close was noticed (each maintenance interval reads
/// the kernel, so the kernel's records are given back whether or not anyone asks); at most
/// `maximumClosed` wait at once, past that the oldest are forgotten and counted.
final class SocketsCollector: Collector {
    private let engine: AccountingEngine
    private let table = SocketTable()
    private let maximumClosed: Int
    /// The open sockets of the latest reading.
    private var open: [SocketSample] = []
    /// Closed sockets in the order they were noticed; `first` is the number of the first.
    private var closed = Deque<SocketSample>()
    private var first: UInt64 = 0
    /// Each client's next entry of `closed`.
    private var clients: [APIClientID: UInt64] = [:]
    private var forgotten: UInt64 = 0
    /// Sockets seen closed since start, by protocol and family.
    private var closedCount: [String: UInt64] = [:]

    init(engine: AccountingEngine, maximumClosed: Int = 65_536) {
        precondition(engine.countsPerSocket, "the engine counts per socket")
        self.engine = engine
        self.maximumClosed = maximumClosed
    }

    var verb: DaemonAPI.Verb { .sockets }
    private var end: UInt64 { first + UInt64(closed.count) }

    func connect(client: APIClientID) { clients[client] = end }
    func disconnect(client: APIClientID) {
        clients[client] = nil
        trim()
    }

    func maintain(interval: Double) throws -> Bool {
        open.removeAll(keepingCapacity: true)
        for sample in try table.sample(engine) {
            if !sample.closed {
                open.append(sample)
                continue
            }
            // Once per socket: its owner's record (another process's closes with it).
            if !sample.shared { closedCount["\(sample.transport.rawValue) \(sample.family.rawValue)", default: 0] += 1 }
            if !clients.isEmpty { closed.append(sample) }
        }
        while closed.count > maximumClosed {
            closed.removeFirst()
            first += 1
            forgotten += 1
        }
        trim()
        return true
    }

    /// Forgets the closed sockets every client has had.
    private func trim() {
        let oldest = clients.values.min() ?? end
        while first < oldest, !closed.isEmpty {
            closed.removeFirst()
            first += 1
        }
    }

    func answer(client: APIClientID) throws -> any DaemonReply {
        _ = try maintain(interval: 0)
        let next = max(clients[client] ?? end, first)
        let delivered = closed.dropFirst(Int(next - first))
        defer {
            clients[client] = end
            trim()
        }
        return SocketsReply(sockets: (open + delivered).map(SocketRecord.init))
    }

    /// Open sockets that have talked (counted per socket), and the sockets closed since start.
    func writeMetrics(into out: inout PrometheusText) {
        _ = try? maintain(interval: 0)
        // A socket two processes use has a sample for each: count sockets, by cookie.
        var openSockets: [String: Set<UInt64>] = [:]
        for socket in open { openSockets["\(socket.transport.rawValue) \(socket.family.rawValue)", default: []].insert(socket.id.cookie) }
        let openCount = openSockets.mapValues { UInt64($0.count) }
        let kinds = SocketSample.Transport.allCases.flatMap { t in SocketSample.Family.allCases.map { "\(t.rawValue) \($0.rawValue)" } }
        out.family("netacct_sockets", .gauge, help: "open TCP and UDP sockets that have sent or received (netacct daemon --connections)")
        for kind in kinds {
            let parts = kind.split(separator: " ")
            out.sample("netacct_sockets", [("protocol", String(parts[0])), ("family", String(parts[1]))], openCount[kind] ?? 0)
        }
        out.family("netacct_sockets_closed_total", .counter, help: "TCP and UDP sockets that had talked and were closed, since the daemon started")
        for kind in kinds {
            let parts = kind.split(separator: " ")
            out.sample("netacct_sockets_closed_total", [("protocol", String(parts[0])), ("family", String(parts[1]))], closedCount[kind] ?? 0)
        }
        out.family("netacct_sockets_forgotten_total", .counter, help: "closed sockets forgotten before every local API client had them (backlog full)")
        out.sample("netacct_sockets_forgotten_total", forgotten)
    }

    var losses: [String] {
        forgotten > 0 ? ["\(forgotten) closed sockets forgotten before delivery (backlog full)"] : []
    }
}

extension SocketRecord {
    /// A sample's cumulative counters (`"raddr":"*","rport":null` when not connected).
    init(_ s: SocketSample) {
        self.init(pid: s.id.process.pid, startNs: s.id.process.startNanoseconds, cookie: s.id.cookie, protocol: s.transport.rawValue,
                  family: s.family.rawValue, laddr: s.localAddress, lport: s.localPort, raddr: s.remoteAddress ?? "*",
                  rport: s.remoteAddress == nil ? nil : s.remotePort, txPackets: s.total.txPackets, txBytes: s.total.txBytes,
                  rxPackets: s.total.rxPackets, rxBytes: s.total.rxBytes, closed: s.closed)
    }
}
