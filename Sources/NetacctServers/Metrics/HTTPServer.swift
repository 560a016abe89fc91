import Accounting
import DaemonProtocol
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NetacctKit

/// The daemon's HTTP server (`--listen`), on its event loop: `/metrics` (Prometheus text
/// format), `/api/v1/processes`, `/api/v1/cgroups` and `/api/v1/<verb>` for every other
/// collector (its reply record, as on the local API without `version` and `verb`), and
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

    init(configuration: HTTPConfiguration, shared: SharedService, metrics: MetricsExporter) {
        self.configuration = configuration
        self.shared = shared
        self.metrics = metrics
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

    /// The reply to one request: status, content type, body.
    func respond(to head: HTTPRequestHead) -> (HTTPResponseStatus, String, [UInt8]) {
        shared.loop.preconditionInEventLoop()
        let path = head.uri.split(separator: "?", maxSplits: 1).first.map(String.init) ?? head.uri
        guard head.method == .GET || head.method == .HEAD else { return (.methodNotAllowed, "text/plain", Array("GET only\n".utf8)) }
        if path == "/healthz" { return (.ok, "text/plain", Array("ok\n".utf8)) }
        if let token = configuration.token, !Self.sameBytes(head.headers.first(name: "authorization") ?? "", "Bearer \(token)") {
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
            return (.ok, "text/plain; version=0.0.4; charset=utf-8", metrics.scrape(collectors: shared.collectors))
        case "/api/v1/processes", "/api/v1/cgroups":
            shared.refresh(reporting: .all)
            let live = shared.service.processes(for: -1) // no client: the live processes only
            return path.hasSuffix("processes") ? Self.json(metrics.processes(live)) : Self.json(metrics.cgroups(live))
        default:
            let verb = DaemonAPI.Verb(rawValue: String(path.dropFirst("/api/v1/".count)))
            guard path.hasPrefix("/api/v1/"), let verb, verb != .processes, let collector = shared.collector(for: verb) else {
                let known = ["/metrics", "/healthz", "/api/v1/processes", "/api/v1/cgroups"]
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
    static func json(_ record: some Encodable) -> (HTTPResponseStatus, String, [UInt8]) {
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
