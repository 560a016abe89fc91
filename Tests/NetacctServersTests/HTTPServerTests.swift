import NIOCore
import NIOEmbedded
import NIOHTTP1
@testable import NetacctServers
import Testing

/// The HTTP server's connections on swift-nio's EmbeddedChannel, one loop for all, its clock
/// moved by hand (the issue "a slow HTTP client that reconnects at once starves /metrics").
struct HTTPServerTests {
    let loop = EmbeddedEventLoop()
    let connections: HTTPConnections

    init(maximumConnections: Int) {
        var configuration = HTTPConfiguration(host: "127.0.0.1", port: 0)
        configuration.maximumConnections = maximumConnections
        connections = HTTPConnections(configuration: configuration, shared: HandlerTests.shared(processes: 1, loop: loop))
    }

    init() { self.init(maximumConnections: 512) }

    /// A connection accepted on the shared loop, answering every request 200 "ok".
    func connect() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel(loop: loop)
        try connections.accept(channel) { [loop] _ in loop.makeSucceededFuture((.ok, "text/plain", Array("ok\n".utf8))) }
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/test")).wait()
        return channel
    }

    func send(_ channel: EmbeddedChannel, _ text: String) throws {
        try channel.writeInbound(channel.allocator.buffer(string: text))
        loop.run()
    }

    /// Everything written to the client, as text.
    func reply(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while let data = try channel.readOutbound(as: IOData.self) {
            if case .byteBuffer(let buffer) = data { text += String(buffer: buffer) }
        }
        return text
    }

    @Test func aRequestHeadMustBeWholeTwoSecondsAfterTheAccept() throws {
        // A byte every 200 ms keeps no connection open past 2 s (the deadline is from the
        // accept, not from the last byte); before the fix it stayed for 10 s.
        let trickle = try connect()
        for byte in "GET /metr" { // 9 bytes: 1.8 s
            try send(trickle, String(byte))
            loop.advanceTime(by: .milliseconds(200))
        }
        loop.advanceTime(by: .milliseconds(199))
        #expect(trickle.isActive)
        loop.advanceTime(by: .milliseconds(1))
        #expect(!trickle.isActive)
        // A head that comes whole in pieces within the 2 s is answered.
        let slow = try connect()
        try send(slow, "GET /healthz HTTP/1.1\r\nHo")
        loop.advanceTime(by: .milliseconds(1500))
        try send(slow, "st: x\r\n\r\n")
        #expect(try reply(slow).hasPrefix("HTTP/1.1 200 OK\r\n"))
        #expect(!slow.isActive, "one request per connection")
        // Once its head is whole, a connection has the full 10 s (here, for a body it will not get).
        let posting = try connect()
        try send(posting, "POST /metrics HTTP/1.1\r\nContent-Length: 100\r\n\r\n")
        loop.advanceTime(by: .milliseconds(9999))
        #expect(posting.isActive)
        loop.advanceTime(by: .milliseconds(1))
        #expect(!posting.isActive)
        #expect(connections.count == 0)
    }

    /// A reply made elsewhere (the history's, read off the loop) is written when it comes, the
    /// loop free meanwhile; one for a connection the deadline closed first is dropped.
    @Test func aReplyThatComesLaterIsWrittenWhenItComes() throws {
        let later = loop.makePromise(of: HTTPConnections.Reply.self), late = loop.makePromise(of: HTTPConnections.Reply.self)
        var promises = [later, late]
        func connectAnswering() throws -> EmbeddedChannel {
            let channel = EmbeddedChannel(loop: loop)
            let promise = promises.removeFirst()
            try connections.accept(channel) { _ in promise.futureResult }
            try channel.connect(to: SocketAddress(unixDomainSocketPath: "/test")).wait()
            return channel
        }
        let waiting = try connectAnswering(), closing = try connectAnswering()
        try send(waiting, "GET /api/v1/history HTTP/1.1\r\nHost: x\r\n\r\n")
        try send(closing, "GET /api/v1/history HTTP/1.1\r\nHost: x\r\n\r\n")
        #expect(try reply(waiting).isEmpty && waiting.isActive)
        later.succeed((.ok, "application/json", Array("{}\n".utf8)))
        loop.run()
        let text = try reply(waiting)
        #expect(text.hasPrefix("HTTP/1.1 200 OK\r\n") && text.hasSuffix("\r\n\r\n{}\n") && !waiting.isActive, "\(text)")
        loop.advanceTime(by: .seconds(10))
        #expect(!closing.isActive)
        late.succeed((.ok, "application/json", Array("{}\n".utf8)))
        loop.run()
        #expect(try reply(closing).isEmpty)
        #expect(connections.count == 0)
    }

    /// A reply that could not be made (its thread gone, at shutdown): a 500, not a client left
    /// waiting for the deadline.
    @Test func aReplyThatFailsIsA500() throws {
        let failing = loop.makePromise(of: HTTPConnections.Reply.self)
        let channel = EmbeddedChannel(loop: loop)
        try connections.accept(channel) { _ in failing.futureResult }
        try channel.connect(to: SocketAddress(unixDomainSocketPath: "/test")).wait()
        try send(channel, "GET /api/v1/history HTTP/1.1\r\nHost: x\r\n\r\n")
        failing.fail(ChannelError.ioOnClosedChannel)
        loop.run()
        #expect(try reply(channel).hasPrefix("HTTP/1.1 500 Internal Server Error\r\n") && !channel.isActive)
    }

    @Test(arguments: ["NOT HTTP\r\n\r\n", "GET /metrics HTTP/1.1\r\nHost x\r\n\r\n"])
    func aMalformedRequestGets400AndTheConnectionClosesOnceItIsSent(_ request: String) throws {
        let channel = try connect()
        try send(channel, request)
        let reply = try reply(channel)
        #expect(reply.hasPrefix("HTTP/1.1 400 Bad Request\r\n") && reply.contains("Connection: close\r\n"), "\(reply)")
        // Closed now, not when the 10 s deadline comes.
        #expect(!channel.isActive)
        #expect(connections.count == 0)
    }

    @Test func whenEveryPlaceIsTakenTheOldestConnectionWithoutAWholeHeadGoes() throws {
        let connections = HTTPServerTests(maximumConnections: 3)
        // a has a whole head (a body still to come); b and c are still sending theirs.
        let a = try connections.connect(), b = try connections.connect(), c = try connections.connect()
        try connections.send(a, "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n")
        try connections.send(b, "GET /me")
        try connections.send(c, "GET /me")
        // A scraper comes: b goes, not the scraper (before the fix: the scraper was refused).
        let scraper = try connections.connect()
        #expect(!b.isActive && a.isActive && c.isActive && scraper.isActive)
        try connections.send(scraper, "GET /metrics HTTP/1.1\r\n\r\n")
        #expect(try connections.reply(scraper).hasPrefix("HTTP/1.1 200 OK\r\n"))
        // Its place is free again: d takes it; then e pushes c out, and f pushes d (no head
        // yet either) rather than a, whose head is whole.
        let d = try connections.connect()
        #expect(c.isActive && d.isActive)
        let e = try connections.connect()
        #expect(!c.isActive && d.isActive && e.isActive)
        let f = try connections.connect()
        #expect(a.isActive && e.isActive && f.isActive && !d.isActive)
        #expect(connections.connections.count == 3)
        // Only when every place holds a whole head does the oldest of those go.
        try connections.send(e, "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n")
        try connections.send(f, "POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n")
        let g = try connections.connect()
        #expect(!a.isActive && e.isActive && f.isActive && g.isActive)
        #expect(connections.connections.count == 3 && connections.connections.pushedOut == 4)
    }

    @Test func anAnsweredConnectionGivesItsPlaceBack() throws {
        let connections = HTTPServerTests(maximumConnections: 2)
        for _ in 0..<10 {
            let channel = try connections.connect()
            try connections.send(channel, "GET /healthz HTTP/1.1\r\n\r\n")
            #expect(try connections.reply(channel).hasPrefix("HTTP/1.1 200 OK\r\n") && !channel.isActive)
        }
        #expect(connections.connections.count == 0 && connections.connections.pushedOut == 0)
    }
}
