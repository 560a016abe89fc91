import CMalloc
import Logging
import NIOCore
import NIOPosix
import NetacctCore

/// The accounting service, reachable from channel handlers. Every use happens on `loop`,
/// the daemon's single event loop, which is what makes the unchecked Sendable true.
final class SharedService: @unchecked Sendable {
    let service: AccountingService
    let loop: EventLoop
    let logger: Logger
    private var reportedLosses = Snapshot.Losses()

    init(service: AccountingService, loop: EventLoop, logger: Logger) {
        self.service = service
        self.loop = loop
        self.logger = logger
    }

    /// Between requests: keep the kernel's exit ledger drained.
    func drainExits() {
        loop.preconditionInEventLoop()
        do {
            try service.drainExits()
        } catch {
            logger.error("reading the kernel's exit records failed: \(error)")
        }
    }

    /// After an answer has left: gives the memory that building it took back to the system.
    /// glibc keeps freed memory for reuse otherwise, and the daemon would stay as large as its
    /// largest answer ever instead of its tables (BENCHMARKS.md, memory).
    func answered() {
        // Once the callbacks that wrote the answer have returned and let go of it.
        loop.execute { malloc_trim(0) }
    }

    /// Every answer reads the kernel anew: reusing a refresh even a few milliseconds old could
    /// miss an exit that atop has already seen in /proc, and atop would never get that process.
    func refresh(reporting: ProcessTable.Reporting) {
        loop.preconditionInEventLoop()
        do {
            try service.refresh(reporting: reporting)
            if service.losses != reportedLosses {
                reportedLosses = service.losses
                logger.warning("some traffic could not be counted (a kernel map is full)", metadata: [
                    "uncounted_calls": "\(reportedLosses.uncountedCalls)",
                    "dropped_thread_exits": "\(reportedLosses.droppedExits)",
                    "unregistered_processes": "\(reportedLosses.unregisteredProcesses)",
                ])
            }
        } catch {
            logger.error("reading the kernel's counters failed: \(error)")
        }
    }
}

/// One atop connection: for each 96-byte request (its content is ignored), the cumulative
/// counters of every process, one 96-byte record each, then a record with id 0.
///
/// Records are never split between reads: the reply goes out in chunks of whole records,
/// each written only after the previous one left, so each becomes its own socket buffer and
/// atop's 96-byte `recv`s always find whole records. A client that asks again before it has
/// read its reply is dropped; one that stops reading holds at most its one pending reply.
/// Nothing a client does blocks the others (the loop never waits on a socket).
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
        shared.logger.debug("atop client disconnected", metadata: ["client": "\(client ?? 0)"])
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        requestBytes += unwrapInboundIn(data).readableBytes
        while requestBytes >= NetatopRecord.size {
            requestBytes -= NetatopRecord.size
            guard !replying else {
                shared.logger.notice("dropping an atop client that asked again before reading its reply")
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
        shared.service.forEachProcess(for: client) { id, comm, total in
            // A data record never has id 0 (that ends the reply); no process has PID 0 anyway.
            guard id.pid > 0 else { return }
            NetatopRecord.encode(pid: id.pid, startSeconds: id.startNanoseconds / 1_000_000_000, command: comm,
                                 traffic: total, into: &chunk)
            if chunk.readableBytes == chunkSize {
                chunks.append(chunk)
                chunk = allocator.buffer(capacity: chunkSize)
            }
        }
        NetatopRecord.terminator.encode(into: &chunk)
        chunks.append(chunk)
        replying = true
        pending = chunks.reversed()
        writeNext(context: context)
    }

    private func writeNext(context: ChannelHandlerContext) {
        guard let chunk = pending.popLast() else {
            replying = false
            shared.answered()
            return
        }
        let bound = NIOLoopBound((self, context), eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(chunk)).whenComplete { result in
            let (handler, context) = bound.value
            switch result {
            case .success: handler.writeNext(context: context)
            case .failure:
                handler.pending = []
                context.close(promise: nil)
            }
        }
    }
}
