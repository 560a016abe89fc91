import FoundationEssentials
import NIOCore
import NetacctCore

/// One local API connection (DaemonAPI): each request line gets one JSON reply line.
final class APIHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// A request line longer than this is not a request: the client is dropped.
    static let maximumRequest = 4096

    private let shared: SharedService
    private var client: AccountingService.ClientID?
    private var pending = 0

    init(shared: SharedService) {
        self.shared = shared
    }

    func channelActive(context: ChannelHandlerContext) {
        client = shared.service.connect()
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let client { shared.service.disconnect(client) }
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        while let byte = buffer.readInteger(as: UInt8.self) {
            guard byte == 0x0A else {
                pending += 1
                if pending > Self.maximumRequest {
                    shared.logger.notice("dropping an API client whose request line is too long")
                    context.close(promise: nil)
                    return
                }
                continue
            }
            pending = 0
            reply(context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }

    private func reply(context: ChannelHandlerContext) {
        guard let client else { return }
        shared.refresh(reporting: .all)
        let reply = DaemonAPI.Reply(processes: shared.service.processes(for: client), losses: shared.service.losses,
                                    threads: shared.service.configuration.keepsThreads)
        do {
            var line = try JSONEncoder().encode(reply)
            line.append(0x0A)
            let shared = self.shared
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(bytes: line))).whenComplete { _ in
                shared.answered()
            }
        } catch {
            shared.logger.error("encoding an API reply failed: \(error)")
            context.close(promise: nil)
        }
    }
}
