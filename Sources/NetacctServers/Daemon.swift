import Glibc
import Logging
import NIOCore
import NIOPosix
import NetacctCore
import Synchronization

/// `netacct daemon`: loads the accounting programs once, counts all the time, and serves
/// the netatop-bpf protocol to atop and the local API to `netacct top`.
public final class Daemon {
    public struct Configuration: Sendable {
        /// atop hard-codes this path.
        public var socketPath = "/run/netatop-bpf-socket"
        public var apiSocketPath: String? = DaemonAPI.defaultSocket
        /// A group whose members may connect too (mode 0660); nil: root only (0600).
        public var group: String?
        public var service = AccountingService.Configuration()
        /// Seconds between drains of the kernel's exit ledger.
        public var drainInterval: Double = 1
        /// Most clients connected at once, per socket.
        public var maximumClients = 64
        public init() {}
    }

    public let configuration: Configuration
    let logger: Logger

    public init(_ configuration: Configuration, logger: Logger = Logger(label: "netacct.daemon")) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Serves until SIGINT or SIGTERM, then closes the sockets, removes their files and
    /// detaches the programs. `ready` is called once the sockets accept connections.
    public func run(ready: () -> Void = {}) throws {
        let signals = StopSignals() // before any thread starts, so that all of them block these
        if let group = configuration.group, getgrnam(group) == nil {
            throw NetacctError("No group named \(group) (--group).")
        }
        let engine = try AccountingEngine(logger: logger)
        var paths = [configuration.socketPath]
        if let api = configuration.apiSocketPath { paths.append(api) }
        for path in paths where try SocketPath.claim(path) == .reclaimedStale {
            logger.notice("removed a stale socket left by an earlier daemon", metadata: ["path": "\(path)"])
        }

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        let shared = SharedService(service: AccountingService(engine: engine, configuration: configuration.service),
                                   loop: loop, logger: logger)
        var channels: [Channel] = []
        var bound: [String] = []
        defer {
            for channel in channels { try? channel.close().wait() }
            try? group.syncShutdownGracefully()
            for path in bound { unlink(path) }
            withExtendedLifetime(engine) {}
        }
        do {
            channels.append(try bind(configuration.socketPath, group: group) { NetatopHandler(shared: shared) })
            bound.append(configuration.socketPath)
            if let api = configuration.apiSocketPath {
                channels.append(try bind(api, group: group) { APIHandler(shared: shared) })
                bound.append(api)
            }
        }
        let interval = Int64(configuration.drainInterval * 1000)
        loop.scheduleRepeatedTask(initialDelay: .milliseconds(interval), delay: .milliseconds(interval)) { _ in
            shared.drainExits()
        }
        logger.notice("serving", metadata: ["atop": "\(configuration.socketPath)",
                                            "api": "\(configuration.apiSocketPath ?? "-")"])
        ready()
        while signals.wait(until: .infinity) == nil {}
        logger.notice("stopping")
    }

    private func bind(_ path: String, group: EventLoopGroup,
                      handler: @escaping @Sendable () -> any ChannelInboundHandler) throws -> Channel {
        let limit = configuration.maximumClients
        let logger = self.logger
        let connections = ConnectionCount()
        let previous = umask(0o177) // the socket file is created 0600, then widened if asked
        defer { umask(previous) }
        let channel: Channel
        do {
            channel = try ServerBootstrap(group: group)
                .serverChannelOption(.backlog, value: 16)
                .childChannelInitializer { channel in
                    guard connections.increment() <= limit else {
                        logger.warning("refusing a client: \(limit) are connected already", metadata: ["path": "\(path)"])
                        connections.decrement()
                        return channel.close()
                    }
                    channel.closeFuture.whenComplete { _ in connections.decrement() }
                    return channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(handler())
                    }
                }
                .bind(unixDomainSocketPath: path)
                .wait()
        } catch {
            throw NetacctError("Cannot listen on \(path): \(error).")
        }
        do {
            try SocketPath.restrict(path, group: configuration.group)
        } catch {
            try? channel.close().wait()
            unlink(path)
            throw error
        }
        return channel
    }
}

/// A connection count shared by the event loop's accept path and close callbacks.
final class ConnectionCount: Sendable {
    private let value = Mutex(0)

    @discardableResult
    func increment() -> Int { value.withLock { $0 += 1; return $0 } }
    func decrement() { value.withLock { $0 -= 1 } }
}
