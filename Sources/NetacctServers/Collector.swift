import Accounting
import DaemonProtocol
import History
import NetacctKit

/// A tool the daemon hosts: loaded once when the daemon starts, kept fresh every maintenance
/// interval, and answering the local API's requests of its verb with its reply record
/// (DaemonProtocol), built from the tool's model. A local API client is announced to every
/// collector, which may keep state per client (what it has delivered). The accounting
/// collector comes first; `nic`, `connections`, … follow the same shape.
/// Used on the daemon's event loop only.
protocol Collector: AnyObject {
    /// Its API verb.
    var verb: DaemonAPI.Verb { get }
    func connect(client: APIClientID)
    func disconnect(client: APIClientID)
    /// Every maintenance interval, clients or not. Returns whether it read the kernel (the
    /// daemon then gives the memory that took back).
    func maintain(interval: Double) throws -> Bool
    /// Its reply to a request of `client`'s.
    func answer(client: APIClientID) throws -> any DaemonReply
    /// What it could not count since start, one phrase each (empty: nothing lost).
    var losses: [String] { get }
    /// Its metric families for `/metrics` (`netacct daemon --listen`), whole families only.
    func writeMetrics(into out: inout PrometheusText)
    /// Its counters for the history (`--history`): each since the daemon started; the
    /// recorder keeps what each gained per interval.
    func historyCounters() -> [HistorySeries]
}

extension Collector {
    func writeMetrics(into out: inout PrometheusText) {}
    func historyCounters() -> [HistorySeries] { [] }
    /// Most collectors keep nothing per client: every client reads the same counts.
    func connect(client: APIClientID) {}
    func disconnect(client: APIClientID) {}
}

/// A local API connection, as collectors know it.
typealias APIClientID = Int

/// The accounting tool as a collector: `processes`, every process's cumulative counters,
/// exited processes once per client. (The netatop-bpf server reads the same service.)
final class AccountingCollector: Collector {
    let service: AccountingService
    private var clients: [APIClientID: AccountingService.ClientID] = [:]

    init(service: AccountingService) {
        self.service = service
    }

    var verb: DaemonAPI.Verb { .processes }

    func connect(client: APIClientID) { clients[client] = service.connect() }

    func disconnect(client: APIClientID) {
        if let id = clients.removeValue(forKey: client) { service.disconnect(id) }
    }

    func maintain(interval: Double) throws -> Bool { try service.maintain(interval: interval) }

    func answer(client: APIClientID) throws -> any DaemonReply {
        try service.refresh(reporting: .all)
        let keepsThreads = service.configuration.keepsThreads
        return ProcessesReply(threadsKept: keepsThreads, processes: (clients[client].map { service.processes(for: $0) } ?? []).map {
            ProcessRecord($0, threads: keepsThreads)
        }, losses: Losses(service.losses))
    }

    var losses: [String] { service.losses.phrases }
}

// The accounting tool's model as the protocol's records.

extension ProcessRecord {
    init(_ p: ProcessTable.ProcessSample, threads: Bool) {
        self.init(pid: p.id.pid, startNs: p.id.startNanoseconds, comm: p.comm, cgroupId: p.cgroupID, exited: p.exited, counters: Counters(p.total),
                  threads: threads ? p.threads.map {
                      ThreadRecord(tid: $0.id.tid, startNs: $0.id.startNanoseconds, comm: $0.comm, exited: $0.exited, counters: Counters($0.total))
                  } : nil)
    }
}

extension Losses {
    init(_ l: Snapshot.Losses) {
        self.init(uncountedCalls: l.uncountedCalls, droppedExits: l.droppedExits, unregisteredProcesses: l.unregisteredProcesses,
                  lateThreadExits: l.lateThreadExits, forgottenExits: l.forgottenExits, uncountedSocketCalls: l.uncountedSocketCalls)
    }
}

extension Counters {
    init(_ t: Traffic) {
        self.init(tcpTxPackets: t.tcpTxPackets, tcpTxBytes: t.tcpTxBytes, tcpRxPackets: t.tcpRxPackets, tcpRxBytes: t.tcpRxBytes,
                  udpTxPackets: t.udpTxPackets, udpTxBytes: t.udpTxBytes, udpRxPackets: t.udpRxPackets, udpRxBytes: t.udpRxBytes)
    }
}
