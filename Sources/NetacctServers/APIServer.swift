import NIOCore
import Accounting
import DaemonProtocol
import NetacctKit

/// One local API connection (DaemonProtocol's `DaemonAPI`): each request line names a
/// collector's verb and gets one JSON reply line, in order.
///
/// A reply is made only once the previous one has been written out, so a client gets replies
/// as fast as it reads them and no faster; it may send a few requests ahead
/// (`maximumQueued`), and one that sends more while it does not read is dropped. An unknown
/// request gets an error reply (`{"error": …}`); a line longer than `maximumRequest` bytes
/// drops the client; so does sending nothing for the idle timeout.
final class APIHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// A request line longer than this is not a request: the client is dropped.
    static let maximumRequest = 4096
    /// Requests a client may have waiting behind the one being answered.
    static let maximumQueued = 4

    private let shared: SharedService
    private var client: APIClientID?
    /// The line being received.
    private var partial: [UInt8] = []
    /// Whole request lines not answered yet, oldest first.
    private var queued: [String] = []
    private var answering = false

    init(shared: SharedService) {
        self.shared = shared
    }

    func channelActive(context: ChannelHandlerContext) {
        client = shared.connectAPIClient()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let client { shared.disconnectAPIClient(client) }
        if shared.budget.forget(ObjectIdentifier(self)) { shared.returnFreedMemory() }
        queued = []
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        let buffer = unwrapInboundIn(data)
        for byte in buffer.readableBytesView {
            guard byte == 0x0A else {
                partial.append(byte)
                if partial.count > Self.maximumRequest {
                    shared.log.log(.notice, "long-request", "dropping an API client whose request line is too long",
                                   metadata: ["limit_bytes": "\(Self.maximumRequest)"])
                    context.close(promise: nil)
                    return
                }
                continue
            }
            if queued.count >= Self.maximumQueued + (answering ? 0 : 1) {
                shared.log.log(.notice, "pipelining", "dropping an API client that sends requests without reading the replies",
                               metadata: ["queued_requests_allowed": "\(Self.maximumQueued)"])
                context.close(promise: nil)
                return
            }
            queued.append(String(decoding: partial, as: UTF8.self))
            partial.removeAll(keepingCapacity: true)
        }
        answerNext(context: context)
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    /// Answers the oldest queued request, unless a reply is still being written.
    private func answerNext(context: ChannelHandlerContext) {
        guard !answering, !queued.isEmpty, context.channel.isActive else { return }
        let request = queued.removeFirst()
        let buffer: ByteBuffer
        do {
            // The text goes as soon as it is copied: only the buffer waits for the client.
            buffer = context.channel.allocator.buffer(bytes: try reply(to: request))
        } catch {
            shared.log.log(.error, "encoding", "encoding an API reply failed: \(error)")
            context.close(promise: nil)
            return
        }
        answering = true
        let channel = context.channel
        let owner = ObjectIdentifier(self)
        let held = buffer.capacity
        shared.hold(held, for: owner) { channel.close(promise: nil) }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(buffer)).whenComplete { result in
            let (handler, context) = bound.value
            handler.shared.budget.release(held, for: owner)
            handler.answering = false
            handler.shared.returnFreedMemory()
            switch result {
            case .success: handler.answerNext(context: context)
            case .failure: context.close(promise: nil)
            }
        }
    }

    /// The JSON line (with its newline) that answers `request`.
    private func reply(to request: String) throws -> [UInt8] {
        let word = DaemonAPI.word(of: request)
        guard let collector = DaemonAPI.Verb(rawValue: word).flatMap(shared.collector(for:)), let client else {
            return try DaemonAPI.errorLine(DaemonAPI.unknownRequest(word, hosted: shared.collectors.map(\.verb)))
        }
        defer { shared.reportLosses() }
        let answer: any DaemonReply
        do {
            answer = try collector.answer(client: client)
        } catch {
            shared.log.log(.error, "answer-\(word)", "\(word): reading the kernel failed: \(error)")
            return try DaemonAPI.errorLine("\(word): the daemon could not read the kernel: \(error)")
        }
        return try DaemonAPI.line(answer)
    }
}
