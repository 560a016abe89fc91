import Accounting
import NetacctKit

/// A tool the daemon hosts: loaded once when the daemon starts, kept fresh every maintenance
/// interval, and answering the local API's requests of its verb with the fields of one JSON
/// object (`{"version":1,"verb":…,` + its fields + `}`). A local API client is announced to
/// every collector, which may keep state per client (what it has delivered). The accounting
/// collector comes first; `nic`, `connections`, … follow the same shape.
/// Used on the daemon's event loop only.
protocol Collector: AnyObject {
    /// Its API verb, e.g. "processes".
    var verb: String { get }
    func connect(client: APIClientID)
    func disconnect(client: APIClientID)
    /// Every maintenance interval, clients or not. Returns whether it read the kernel (the
    /// daemon then gives the memory that took back).
    func maintain(interval: Double) throws -> Bool
    /// Writes the fields of its reply to a request of `client`'s.
    func answer(client: APIClientID, into json: inout JSONWriter) throws
    /// What it could not count since start, one phrase each (empty: nothing lost).
    var losses: [String] { get }
    /// Its metric families for `/metrics` (`netacct daemon --listen`), whole families only.
    func writeMetrics(into out: inout PrometheusText)
}

extension Collector {
    func writeMetrics(into out: inout PrometheusText) {}
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

    var verb: String { DaemonAPI.processesVerb }

    func connect(client: APIClientID) { clients[client] = service.connect() }

    func disconnect(client: APIClientID) {
        if let id = clients.removeValue(forKey: client) { service.disconnect(id) }
    }

    func maintain(interval: Double) throws -> Bool { try service.maintain(interval: interval) }

    func answer(client: APIClientID, into json: inout JSONWriter) throws {
        try service.refresh(reporting: .all)
        let processes = clients[client].map { service.processes(for: $0) } ?? []
        DaemonAPI.writeProcesses(processes, losses: service.losses, threadsKept: service.configuration.keepsThreads, into: &json)
    }

    var losses: [String] { service.losses.phrases }
}
