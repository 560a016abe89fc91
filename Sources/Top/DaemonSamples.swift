import Accounting
import DaemonProtocol
import Logging
import NetacctKit

/// Where a view of one collector reads: a running daemon that hosts it, else its own engine.
enum CollectorSource<Engine> {
    case daemon(DaemonAPI.Connection)
    case local(Engine)

    /// The daemon at the configured socket when it answers `Reply`'s request; else (no daemon,
    /// or one started without `option`: said) the engine `load` makes.
    init<Reply: DaemonReply>(_ configuration: TopApp.Configuration, reading _: Reply.Type, what: String, option: String, logger: Logger,
                             load: () throws -> Engine) throws {
        if let path = configuration.daemonSocket, let connection = try TopApp.Source.connect(path, logger: logger) {
            do {
                _ = try connection.request(Reply.self)
                logger.info("reading the \(what) of the netacct daemon", metadata: ["socket": "\(path)"])
                self = .daemon(connection)
                return
            } catch let error as NetacctError where error.kind == .unsupported {
                logger.notice("the running daemon does not follow the \(what) (start it with \(option)); loading the programs here")
            }
        }
        self = .local(try load())
    }
}

/// The daemon's records as the accounting tool's samples: cumulative, deltas zero
/// (`DeltaTracker` and `SocketDeltas` make them per interval).
extension DaemonAPI.Connection {
    func processSamples() throws -> (processes: [ProcessTable.ProcessSample], losses: Snapshot.Losses, threadsKept: Bool) {
        let reply = try processes()
        let processes = reply.processes.map { p in
            let id = ProcessID(pid: p.pid, startNanoseconds: p.startNs)
            return ProcessTable.ProcessSample(id: id, comm: p.comm, cgroupID: p.cgroupId, exited: p.exited, total: Traffic(p.counters), delta: .zero,
                                              threads: (p.threads ?? []).map { t in
                ProcessTable.ThreadSample(id: ThreadID(tid: t.tid, startNanoseconds: t.startNs, process: id), comm: t.comm,
                                          exited: t.exited, total: Traffic(t.counters), delta: .zero)
            })
        }
        let l = reply.losses
        return (processes, Snapshot.Losses(uncountedCalls: l.uncountedCalls, droppedExits: l.droppedExits, unregisteredProcesses: l.unregisteredProcesses,
                                           lateThreadExits: l.lateThreadExits, forgottenExits: l.forgottenExits,
                                           uncountedSocketCalls: l.uncountedSocketCalls), reply.threadsKept)
    }

    /// Throws an `.unsupported` error when the daemon does not count per connection.
    func socketSamples() throws -> [SocketSample] {
        try sockets().sockets.map { s in
            SocketSample(id: .init(cookie: s.cookie, process: ProcessID(pid: s.pid, startNanoseconds: s.startNs)),
                         transport: SocketSample.Transport(rawValue: s.protocol) ?? .tcp, family: SocketSample.Family(rawValue: s.family) ?? .ipv4,
                         localAddress: s.laddr, localPort: s.lport, remoteAddress: s.raddr == "*" ? nil : s.raddr, remotePort: s.rport ?? 0,
                         total: SocketTraffic(txPackets: s.txPackets, txBytes: s.txBytes, rxPackets: s.rxPackets, rxBytes: s.rxBytes),
                         closed: s.closed)
        }
    }
}

extension Traffic {
    init(_ c: Counters) {
        self.init(tcpTxPackets: c.tcpTxPackets, tcpTxBytes: c.tcpTxBytes, tcpRxPackets: c.tcpRxPackets, tcpRxBytes: c.tcpRxBytes,
                  udpTxPackets: c.udpTxPackets, udpTxBytes: c.udpTxBytes, udpRxPackets: c.udpRxPackets, udpRxBytes: c.udpRxBytes)
    }
}

extension Counters {
    init(_ t: Traffic) {
        self.init(tcpTxPackets: t.tcpTxPackets, tcpTxBytes: t.tcpTxBytes, tcpRxPackets: t.tcpRxPackets, tcpRxBytes: t.tcpRxBytes,
                  udpTxPackets: t.udpTxPackets, udpTxBytes: t.udpTxBytes, udpRxPackets: t.udpRxPackets, udpRxBytes: t.udpRxBytes)
    }
}
