import NIOCore
import NIOHTTP1

/// The HTTP server's connections, on the event loop: at most `maximumConnections` places, one
/// request per connection (it closes once the reply is sent: no pipelined requests piling up
/// replies that are not read), requests of at most `maximumRequestBytes`, a request head whole
/// within `headerDeadline` of the accept and the connection closed `deadline` after it,
/// whatever it is doing. When every place is taken, a new connection pushes out the oldest
/// whose request head is not whole (the oldest of all if none): clients that trickle their
/// headers and reconnect at once cost an accept and a close each, and a scraper, whose head
/// comes whole at once, always gets in. Unsent replies count in the daemon's reply budget.
final class HTTPConnections: @unchecked Sendable {
    /// A reply: status, content type, body; now, or later from another thread (never blocking
    /// the event loop), completed on the connection's loop.
    typealias Reply = (status: HTTPResponseStatus, type: String, body: [UInt8])
    typealias Respond = (HTTPRequestHead) -> EventLoopFuture<Reply>

    let configuration: HTTPConfiguration
    let shared: SharedService
    /// The connections holding a place, oldest first; changed on the event loop only.
    private var open: [HTTPConnection] = []
    /// Connections pushed out to make room, since start.
    private(set) var pushedOut = 0

    var count: Int { open.count }

    init(configuration: HTTPConfiguration, shared: SharedService) {
        self.configuration = configuration
        self.shared = shared
    }

    /// A connection just accepted (not yet watched by the event loop): its place, its deadlines
    /// and its handlers, which answer its request with `respond`.
    func accept(_ channel: Channel, respond: @escaping Respond) throws {
        shared.loop.preconditionInEventLoop()
        if open.count >= configuration.maximumConnections, !open.isEmpty {
            let victim = open[open.firstIndex { !$0.headed } ?? 0]
            pushedOut += 1
            shared.log.log(.warning, "http-full", "HTTP: every connection place is taken; closing the oldest connection (one still sending its request first)",
                           metadata: ["max": "\(configuration.maximumConnections)"])
            leave(victim)
            victim.channel.close(promise: nil)
        }
        let connection = HTTPConnection(channel: channel)
        open.append(connection)
        connection.headerDeadline = channel.eventLoop.scheduleTask(in: configuration.headerDeadline) { channel.close(promise: nil) }
        connection.deadline = channel.eventLoop.scheduleTask(in: configuration.deadline) { channel.close(promise: nil) }
        channel.closeFuture.whenComplete { [self] _ in leave(connection) }
        let limiter = RequestSizeLimiter(limit: configuration.maximumRequestBytes)
        try channel.pipeline.syncOperations.addHandler(limiter)
        try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: false)
        try channel.pipeline.syncOperations.addHandler(HTTPHandler(connections: self, connection: connection, limiter: limiter, respond: respond))
    }

    /// Its request head is whole: only `deadline` is left, and it is pushed out last.
    func headReceived(_ connection: HTTPConnection) {
        connection.headed = true
        connection.headerDeadline?.cancel()
    }

    /// Gives up its place (closed or pushed out), once.
    private func leave(_ connection: HTTPConnection) {
        guard let index = open.lastIndex(where: { $0 === connection }) else { return }
        open.remove(at: index)
        connection.headerDeadline?.cancel()
        connection.deadline?.cancel()
    }
}

/// One HTTP connection's place. Used on the event loop only.
final class HTTPConnection: @unchecked Sendable {
    let channel: Channel
    /// Its request head is whole.
    var headed = false
    var headerDeadline: Scheduled<Void>?
    var deadline: Scheduled<Void>?
    init(channel: Channel) { self.channel = channel }
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

/// Answers a connection's one request, or a malformed one with 400; either way the connection
/// closes as soon as the reply has been sent.
final class HTTPHandler: ChannelInboundHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart
    let connections: HTTPConnections
    let connection: HTTPConnection
    let limiter: RequestSizeLimiter
    let respond: HTTPConnections.Respond
    private var head: HTTPRequestHead?
    private var hasBody = false
    private var replied = false

    init(connections: HTTPConnections, connection: HTTPConnection, limiter: RequestSizeLimiter, respond: @escaping HTTPConnections.Respond) {
        self.connections = connections
        self.connection = connection
        self.limiter = limiter
        self.respond = respond
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head):
            self.head = head
            hasBody = false
            connections.headReceived(connection)
        case .body:
            hasBody = true
        case .end:
            guard let head, !replied else { return }
            self.head = nil
            limiter.reset()
            let answer = hasBody ? context.eventLoop.makeSucceededFuture((.payloadTooLarge, "text/plain", Array("no body expected\n".utf8))) : respond(head)
            let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
            answer.hop(to: context.eventLoop).whenComplete { result in
                let (handler, context) = bound.value
                guard !handler.replied, context.channel.isActive else { return }
                // A reply that could not be made (its thread gone at shutdown): 500, not silence.
                let (status, type, body) = (try? result.get()) ?? (.internalServerError, "text/plain", Array("the reply could not be made\n".utf8))
                handler.reply(context: context, version: head.version, status: status, type: type, body: head.method == .HEAD ? nil : body, length: body.count)
            }
        }
    }

    /// NIO's parser found a malformed request: 400. Any other error closes the connection.
    func errorCaught(context: ChannelHandlerContext, error: Error) {
        guard !replied else { return } // closes once the reply is sent
        guard error is HTTPParserError else {
            context.close(promise: nil)
            return
        }
        let body = Array("a malformed HTTP request\n".utf8)
        reply(context: context, version: .http1_1, status: .badRequest, type: "text/plain", body: body, length: body.count)
    }

    func channelInactive(context: ChannelHandlerContext) {
        if connections.shared.budget.forget(ObjectIdentifier(self)) { connections.shared.returnFreedMemory() }
        context.fireChannelInactive()
    }

    /// The one reply (`body` nil: HEAD's), then the close once it has been sent.
    private func reply(context: ChannelHandlerContext, version: HTTPVersion, status: HTTPResponseStatus,
                       type: String, body: [UInt8]?, length: Int) {
        replied = true
        var headers = HTTPHeaders([("Content-Type", type), ("Content-Length", String(length))])
        if status == .unauthorized { headers.add(name: "WWW-Authenticate", value: "Bearer") }
        // One request per connection: a client cannot pile up replies it does not read.
        headers.add(name: "Connection", value: "close")
        let shared = connections.shared, channel = context.channel, owner = ObjectIdentifier(self)
        let held = body?.count ?? 0
        shared.hold(held, for: owner) { channel.close(promise: nil) }
        context.write(wrapOutboundOut(.head(HTTPResponseHead(version: version, status: status, headers: headers))), promise: nil)
        if let body {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let done = context.eventLoop.makePromise(of: Void.self)
        context.writeAndFlush(wrapOutboundOut(.end(nil)), promise: done)
        done.futureResult.whenComplete { _ in
            shared.budget.release(held, for: owner)
            channel.close(promise: nil)
        }
        shared.returnFreedMemory()
    }
}
