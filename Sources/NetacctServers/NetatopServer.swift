import Logging
import NIOCore
import NIOPosix
import Accounting
import NetacctKit

/// One atop connection: for each 96-byte request (its content is ignored), the cumulative
/// counters of every process, one 96-byte record each, then a record with id 0.
///
/// Records are never split between reads: the reply goes out in chunks of whole records,
/// each written only after the previous one left, so each becomes its own socket buffer and
/// atop's 96-byte `recv`s always find whole records. A client that asks again before it has
/// read its reply is dropped; one that stops reading holds at most its one pending reply,
/// and is dropped when the replies waiting for clients pass the daemon's bound
/// (`SharedService.hold`). Nothing a client does blocks the others (the loop never waits on
/// a socket). A client that sends nothing for the idle timeout is closed.
final class NetatopHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    /// 34,560 bytes: below the largest buffer a Unix stream socket makes for one write
    /// (~36 KiB with 4 KiB pages), so that each chunk travels as one buffer.
    static let recordsPerChunk = 360

    private let shared: SharedService
    private var client: AccountingService.ClientID?
    private var requestBytes = 0
    private var replying = false
    /// The reply being written, last chunk first: each is freed as soon as it has left.
    private var pending: [ByteBuffer] = []

    init(shared: SharedService) {
        self.shared = shared
    }

    func channelActive(context: ChannelHandlerContext) {
        client = shared.service.connect()
        shared.logger.debug("atop client connected", metadata: ["client": "\(client!)"])
        context.fireChannelActive()
    }

    func channelInactive(context: ChannelHandlerContext) {
        if let client { shared.service.disconnect(client) }
        if shared.budget.forget(ObjectIdentifier(self)) { shared.returnFreedMemory() }
        pending = []
        shared.logger.debug("atop client disconnected", metadata: ["client": "\(client ?? 0)"])
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        requestBytes += unwrapInboundIn(data).readableBytes
        while requestBytes >= NetatopRecord.size {
            requestBytes -= NetatopRecord.size
            guard !replying else {
                shared.log.log(.notice, "pipelining", "dropping an atop client that asked again before reading its reply")
                context.close(promise: nil)
                return
            }
            reply(context: context)
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        shared.logger.debug("atop client error: \(error)")
        context.close(promise: nil)
    }

    private func reply(context: ChannelHandlerContext) {
        guard let client else { return }
        shared.refresh(reporting: .exited)
        var chunks: [ByteBuffer] = []
        let chunkSize = Self.recordsPerChunk * NetatopRecord.size
        let allocator = context.channel.allocator
        var chunk = allocator.buffer(capacity: chunkSize)
        func add(_ id: ProcessID, _ comm: String, _ traffic: Traffic) {
            // A data record never has id 0 (that ends the reply); no process has PID 0 anyway.
            guard id.pid > 0 else { return }
            NetatopRecord.encode(pid: id.pid, startSeconds: id.startNanoseconds / 1_000_000_000, command: comm,
                                 traffic: traffic, into: &chunk)
            if chunk.readableBytes == chunkSize {
                chunks.append(chunk)
                chunk = allocator.buffer(capacity: chunkSize)
            }
        }
        if let wire = shared.atopWire {
            // The same processes, with their frames on the wire; then the sockets' owners that
            // made no TCP or UDP call (ping, a listener).
            do { try wire.read() } catch {
                shared.log.log(.warning, "wire-read", "cannot read the wire counters (atop gets the last ones read): \(error)")
            }
            var listed = Set<ProcessID>()
            shared.service.forEachProcess(for: client) { id, comm, _ in
                listed.insert(id)
                add(id, comm, wire.traffic(of: id))
            }
            for (id, comm, traffic) in wire.owners(besides: listed) { add(id, comm, traffic) }
        } else {
            shared.service.forEachProcess(for: client) { id, comm, total in add(id, comm, total) }
        }
        NetatopRecord.terminator.encode(into: &chunk)
        chunks.append(chunk)
        replying = true
        pending = chunks.reversed()
        let channel = context.channel
        shared.hold(chunks.reduce(0) { $0 + $1.capacity }, for: ObjectIdentifier(self)) {
            channel.close(promise: nil)
        }
        writeNext(context: context)
    }

    private func writeNext(context: ChannelHandlerContext) {
        guard let chunk = pending.popLast() else {
            replying = false
            shared.returnFreedMemory()
            return
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        let bytes = chunk.capacity
        context.writeAndFlush(wrapOutboundOut(chunk)).whenComplete { result in
            let (handler, context) = bound.value
            handler.shared.budget.release(bytes, for: ObjectIdentifier(handler))
            switch result {
            case .success: handler.writeNext(context: context)
            case .failure:
                handler.pending = []
                context.close(promise: nil)
            }
        }
    }
}
