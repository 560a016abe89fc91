import Accounting
import Logging
import NIOCore
import NIOHTTP1
import NIOPosix
import NetacctKit

/// The daemon's HTTP server (`--listen`), on its event loop: `/metrics` (Prometheus text
/// format), `/api/v1/processes`, `/api/v1/cgroups` and `/api/v1/<verb>` for every other
/// collector (the local API's fields), and `/healthz`. Bounded: at most `maximumConnections`
/// at once (more are closed at once), one request per connection (the connection closes after
/// the reply: no pipelined requests piling up replies that are not read), requests of at most
/// `maximumRequestBytes` (headers included; a body is refused), and a connection closes
/// `deadline` seconds after it opened, whatever it is doing. With a token, every path but
/// /healthz needs `Authorization: Bearer <token>` (401 otherwise).
struct HTTPConfiguration: Sendable {
    var host: String
    var port: Int
    var token: String?
    var maximumConnections = 16
    var maximumRequestBytes = 8192
    var deadline: Int64 = 10
}

final class HTTPServer: @unchecked Sendable {
    let configuration: HTTPConfiguration
    let shared: SharedService
    let metrics: MetricsExporter
    /// Connections open now; changed on the event loop only.
    private var open = 0

    init(configuration: HTTPConfiguration, shared: SharedService, metrics: MetricsExporter) {
        self.configuration = configuration
        self.shared = shared
        self.metrics = metrics
    }

    func bind(group: EventLoopGroup) throws -> Channel {
        let server = self
        return try ServerBootstrap(group: group)
            .serverChannelOption(ChannelOptions.backlog, value: 64)
            .serverChannelOption(ChannelOptions.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    guard server.open < server.configuration.maximumConnections else {
                        server.shared.log.log(.warning, "http-full", "HTTP: too many connections at once, closing new ones",
                                              metadata: ["max": "\(server.configuration.maximumConnections)"])
                        channel.close(promise: nil)
                        return
                    }
                    server.open += 1
                    let deadline = channel.eventLoop.scheduleTask(in: .seconds(server.configuration.deadline)) { channel.close(promise: nil) }
                    channel.closeFuture.whenComplete { _ in
                        server.open -= 1
                        deadline.cancel()
                    }
                    let limiter = RequestSizeLimiter(limit: server.configuration.maximumRequestBytes)
                    try channel.pipeline.syncOperations.addHandler(limiter)
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(HTTPHandler(server: server, limiter: limiter))
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
            var json = JSONWriter()
            json.begin("{")
            if path.hasSuffix("processes") { metrics.writeProcesses(live, into: &json) } else { metrics.writeCgroups(live, into: &json) }
            json.end("}")
            return (.ok, "application/json", Array((json.text + "\n").utf8))
        default:
            let verb = String(path.dropFirst("/api/v1/".count))
            guard path.hasPrefix("/api/v1/"), let collector = shared.collector(for: verb), verb != DaemonAPI.processesVerb else {
                let known = ["/metrics", "/healthz", "/api/v1/processes", "/api/v1/cgroups"]
                    + shared.collectors.map(\.verb).filter { $0 != DaemonAPI.processesVerb }.map { "/api/v1/\($0)" }
                return (.notFound, "text/plain", Array("no such path; paths: \(known.joined(separator: " "))\n".utf8))
            }
            let client = shared.connectAPIClient()
            defer { shared.disconnectAPIClient(client) }
            var json = JSONWriter()
            json.begin("{")
            do {
                try collector.answer(client: client, into: &json)
            } catch {
                return (.internalServerError, "text/plain", Array("\(verb): the daemon could not read the kernel: \(error)\n".utf8))
            }
            json.end("}")
            return (.ok, "application/json", Array((json.text + "\n").utf8))
        }
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

/// Closes a connection that sends more than `limit` bytes for one request (`reset` after each).
final class RequestSizeLimiter: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    let limit: Int
    private var received = 0
    init(limit: Int) { self.limit = limit }

    func reset() { received = 0 }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        received += unwrapInboundIn(data).readableBytes
        guard received <= limit else {
            context.close(promise: nil)
            return
        }
        context.fireChannelRead(data)
    }

}

final class HTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let server: HTTPServer
    let limiter: RequestSizeLimiter
    private var head: HTTPRequestHead?
    private var hasBody = false

    init(server: HTTPServer, limiter: RequestSizeLimiter) {
        self.server = server
        self.limiter = limiter
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            hasBody = false
        case .body:
            hasBody = true
        case .end:
            guard let head else { return }
            self.head = nil
            limiter.reset()
            let (status, type, body) = hasBody ? (.payloadTooLarge, "text/plain", Array("no body expected\n".utf8)) : server.respond(to: head)
            var headers = HTTPHeaders([("Content-Type", type), ("Content-Length", String(body.count))])
            if status == .unauthorized { headers.add(name: "WWW-Authenticate", value: "Bearer") }
            // One request per connection: a client cannot pile up replies it does not read.
            headers.add(name: "Connection", value: "close")
            context.write(wrapOutboundOut(.head(HTTPResponseHead(version: head.version, status: status, headers: headers))), promise: nil)
            if head.method != .HEAD {
                context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
            }
            let done = context.eventLoop.makePromise(of: Void.self)
            context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: done)
            done.futureResult.whenComplete { _ in context.close(promise: nil) }
            server.shared.returnFreedMemory()
        }
    }
}
