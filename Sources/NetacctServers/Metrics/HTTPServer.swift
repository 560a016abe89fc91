import Accounting
import DaemonProtocol
import History
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NetacctKit
import Synchronization

/// The daemon's HTTP server (`--listen`), on its event loop: `/metrics` (Prometheus text
/// format), `/api/v1/processes`, `/api/v1/cgroups` and `/api/v1/<verb>` for every other
/// collector (its reply record, as on the local API without `version` and `verb`),
/// `/api/v1/history` (what `netacct history --json` answers, read off the loop), and
/// `/healthz`. Its connections (places, deadlines, one request each, the size bound) are
/// `HTTPConnections`'. With a token, every path but /healthz needs `Authorization: Bearer
/// <token>` (401 otherwise).
struct HTTPConfiguration: Sendable {
    var host: String
    var port: Int
    var token: String?
    /// Connections open at once. When every place is taken, a new connection pushes out the
    /// oldest one whose request head is not whole (or, if none, the oldest): a client that
    /// trickles its headers, reconnecting at once, cannot keep a scraper out.
    var maximumConnections = 512
    /// A request's bytes, headers included (a body is refused).
    var maximumRequestBytes = 8192
    /// From accept until the request head is whole.
    var headerDeadline = TimeAmount.seconds(2)
    /// From accept until the connection closes, whatever it is doing (replying, say).
    var deadline = TimeAmount.seconds(10)
    /// The kernel's queue of connections not yet accepted (it caps it at net.core.somaxconn,
    /// 4096 by default): with 64, a burst of connects overflowed it and some waited 1 s for a
    /// resent SYN.
    var backlog: Int32 = 4096
}

final class HTTPServer: @unchecked Sendable {
    let configuration: HTTPConfiguration
    let shared: SharedService
    let metrics: MetricsExporter
    let connections: HTTPConnections
    /// The history file the daemon records, and the thread its queries are read on.
    let history: Daemon.HistoryOptions?
    let readers: NIOThreadPool?
    /// The recorder's writer, whose counts /metrics shows (nil: no history recorded).
    let historyWriter: HistoryWriter?

    init(configuration: HTTPConfiguration, shared: SharedService, metrics: MetricsExporter,
         history: Daemon.HistoryOptions? = nil, readers: NIOThreadPool? = nil, historyWriter: HistoryWriter? = nil) {
        self.configuration = configuration
        self.shared = shared
        self.metrics = metrics
        self.history = history
        self.readers = readers
        self.historyWriter = historyWriter
        self.connections = HTTPConnections(configuration: configuration, shared: shared)
    }

    func bind(group: EventLoopGroup) throws -> Channel {
        let server = self
        return try ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: configuration.backlog)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            // Out of file descriptors, accepting pauses a moment rather than spinning.
            .serverChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture { try channel.pipeline.syncOperations.addHandler(AcceptBackoffHandler()) }
            }
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try server.connections.accept(channel) { server.respond(to: $0) }
                }
            }
            .bind(host: configuration.host, port: configuration.port).wait()
    }

    /// The reply to one request: on the loop, or (the history's) from the readers' thread.
    func respond(to head: HTTPRequestHead) -> EventLoopFuture<HTTPConnections.Reply> {
        let parts = head.uri.split(separator: "?", maxSplits: 1)
        // Refusals (method, token) are respondNow's.
        if parts.first == "/api/v1/history", head.method == .GET || head.method == .HEAD, authorized(head) {
            return history(parts.count > 1 ? String(parts[1]) : "")
        }
        return shared.loop.makeSucceededFuture(respondNow(to: head))
    }

    /// Whether the request carries the token, when there is one.
    func authorized(_ head: HTTPRequestHead) -> Bool {
        configuration.token.map { Self.sameBytes(head.headers.first(name: "authorization") ?? "", "Bearer \($0)") } ?? true
    }

    /// `/api/v1/history?since=|at=|from=[&to=]&by=&pid=&per_interval=1`: what `netacct history
    /// --json` answers, read on a thread of the daemon's readers, not on the loop.
    func history(_ query: String) -> EventLoopFuture<HTTPConnections.Reply> {
        guard let history, let readers else {
            return shared.loop.makeSucceededFuture((.notFound, "text/plain", Array("this daemon records no history (netacct daemon --history)\n".utf8)))
        }
        let parameters = Self.parameters(query)
        var configuration = HistoryApp.Configuration()
        configuration.path = history.path
        do {
            try configuration.range(at: parameters["at"], since: parameters["since"], from: parameters["from"], until: parameters["to"] ?? parameters["until"])
            if let by = parameters["by"] {
                guard let grouping = HistoryQuery.Grouping(rawValue: by) else { throw NetacctError("by is process or cgroup, not \(by).") }
                configuration.grouping = grouping
            }
            if let pid = parameters["pid"] {
                guard let number = Int32(pid), number > 0 else { throw NetacctError("pid is a positive PID, not \(pid).") }
                configuration.pid = number
            }
            configuration.perInterval = parameters["per_interval"].map { $0 == "1" || $0 == "true" } ?? false
        } catch {
            return shared.loop.makeSucceededFuture((.badRequest, "text/plain", Array("\(error)\n".utf8)))
        }
        // A few at once: a client cannot queue reads of 90 days that run long after it left.
        guard historyReads.withLock({ reads in
            guard reads < Self.historyReadsAtOnce else { return false }
            reads += 1
            return true
        }) else {
            return shared.loop.makeSucceededFuture((.serviceUnavailable, "text/plain",
                                                    Array("\(Self.historyReadsAtOnce) history queries are under way; ask again\n".utf8)))
        }
        return readers.runIfActive(eventLoop: shared.loop) { [configuration] in
            defer { self.historyReads.withLock { $0 -= 1 } }
            do {
                return (.ok, "application/json", HistoryApp.json(try HistoryApp.reports(configuration)))
            } catch let error as NetacctError {
                return (.notFound, "text/plain", Array("\(error.message)\n".utf8))
            } catch {
                return (.internalServerError, "text/plain", Array("reading the history failed: \(error)\n".utf8))
            }
        }
    }

    /// History queries read at once, at most `historyReadsAtOnce` (more get 503).
    static let historyReadsAtOnce = 4
    let historyReads = Mutex(0)

    /// A query string's parameters, percent-decoded (`+` is a space).
    static func parameters(_ query: String) -> [String: String] {
        func decode(_ text: Substring) -> String {
            var bytes: [UInt8] = []
            var utf8 = text.utf8.makeIterator()
            while let byte = utf8.next() {
                if byte == UInt8(ascii: "+") { bytes.append(UInt8(ascii: " ")); continue }
                guard byte == UInt8(ascii: "%"), let high = utf8.next(), let low = utf8.next(),
                      let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16) else { bytes.append(byte); continue }
                bytes.append(value)
            }
            return String(decoding: bytes, as: UTF8.self)
        }
        var result: [String: String] = [:]
        for pair in query.split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            result[decode(parts[0])] = parts.count > 1 ? decode(parts[1]) : ""
        }
        return result
    }

    /// The replies made on the loop.
    func respondNow(to head: HTTPRequestHead) -> HTTPConnections.Reply {
        shared.loop.preconditionInEventLoop()
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        guard head.method == .GET || head.method == .HEAD else { return (.methodNotAllowed, "text/plain", Array("GET only\n".utf8)) }
        if path == "/healthz" { return (.ok, "text/plain", Array("ok\n".utf8)) }
        if !authorized(head) {
            return (.unauthorized, "text/plain", Array("a bearer token is needed (Authorization: Bearer <token>)\n".utf8))
        }
        switch path {
        case "/metrics":
            // A scrape of a failed read would show every live process gone: none rather.
            do {
                try shared.service.refresh(reporting: .all)
            } catch {
                shared.log.log(.error, "scrape", "reading the kernel's counters for a scrape failed: \(error)")
                return (.serviceUnavailable, "text/plain", Array("the daemon could not read the kernel: \(error)\n".utf8))
            }
            var body = metrics.scrape(collectors: shared.collectors)
            if let historyWriter {
                var out = PrometheusText(capacity: 1024)
                historyWriter.writeMetrics(into: &out)
                body += out.bytes
            }
            return (.ok, "text/plain; version=0.0.4; charset=utf-8", body)
        case "/api/v1/processes", "/api/v1/cgroups":
            shared.refresh(reporting: .all)
            let live = shared.service.processes(for: -1) // no client: the live processes only
            return path.hasSuffix("processes") ? Self.json(metrics.processes(live)) : Self.json(metrics.cgroups(live))
        default:
            let verb = DaemonAPI.Verb(rawValue: String(path.dropFirst("/api/v1/".count)))
            guard path.hasPrefix("/api/v1/"), let verb, verb != .processes, let collector = shared.collector(for: verb) else {
                let known = ["/metrics", "/healthz", "/api/v1/processes", "/api/v1/cgroups"] + (history == nil ? [] : ["/api/v1/history"])
                    + shared.collectors.map(\.verb).filter { $0 != .processes }.map { "/api/v1/\($0)" }
                return (.notFound, "text/plain", Array("no such path; paths: \(known.joined(separator: " "))\n".utf8))
            }
            let client = shared.connectAPIClient()
            defer { shared.disconnectAPIClient(client) }
            do {
                return Self.json(try collector.answer(client: client))
            } catch {
                return (.internalServerError, "text/plain", Array("\(verb): the daemon could not read the kernel: \(error)\n".utf8))
            }
        }
    }

    /// A 200 whose body is `record`, one JSON line.
    static func json(_ record: some Encodable) -> HTTPConnections.Reply {
        var out = JSONWriter()
        do {
            try out.encode(record)
        } catch {
            return (.internalServerError, "text/plain", Array("encoding the reply failed: \(error)\n".utf8))
        }
        out.newline()
        return (.ok, "application/json", out.bytes)
    }
}

extension HTTPServer {
    /// Compares in time that does not depend on where the first difference is.
    static func sameBytes(_ a: String, _ b: String) -> Bool {
        let x = Array(a.utf8), y = Array(b.utf8)
        var difference = UInt8(x.count == y.count ? 0 : 1)
        for index in 0..<max(x.count, y.count) {
            difference |= (index < x.count ? x[index] : 0) ^ (index < y.count ? y[index] : 0)
        }
        return difference == 0
    }
}
