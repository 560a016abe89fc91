import Glibc
import Logging
import NIOCore
import NIOPosix
import Accounting
import Connections
import DaemonProtocol
import Drops
import History
import NetacctKit
import Latency
import NIC
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
        /// Seconds between two readings of the kernel when no client asks (exits noticed,
        /// the exit ledger kept drained, the retention time applied).
        public var maintenanceInterval: Double = 1
        /// Most clients connected at once, per socket.
        public var maximumClients = 64
        /// A client that sends no request for this long is closed, so that idle connections
        /// cannot keep others out. atop asks once per interval: its logging service
        /// (`atop -w`) every 600 s by default, an interactive atop every few seconds, so the
        /// default, 1200 s, is twice the longest interval in common use.
        public var idleTimeout: Double = 1200
        /// Most reply bytes held at once for clients that have not read them (all clients of
        /// both sockets together); past it, the clients that left replies unread longest are
        /// dropped. One atop reply is 96 bytes per process.
        public var replyBudget = 16 << 20
        /// Also host the nic collector (API verb `nic`) for the interfaces up at start.
        public var nic = false
        /// The nic, latency and drops collectors cover every network namespace (their series
        /// labelled with each one's), not only the daemon's.
        public var allNamespaces = false
        /// Also host the latency collector (API verb `latency`): per-stage histograms in and out.
        public var latency = false
        /// Also count per socket (API verb `sockets`, for `netacct top --connections`).
        public var connections = false
        /// Also host the drops collector (API verb `drops`): drops per reason, protocol and owner.
        public var drops = false
        /// Also host the connection-events collector (API verb `connection_events`).
        public var connectionEvents = false
        /// Also host the wire collector (API verb `wire`): frames and bytes on the wire per
        /// process, cgroup and interface.
        public var wire = false
        /// Also host the TCP health collector (API verb `tcp`): retransmissions by cause, RTT,
        /// resets, failed connects and zero-window stalls per process, cgroup and connection.
        public var tcp = false
        /// What atop's per-process counters are: socket calls (netatop-bpf's meaning) or frames
        /// on the wire (the netatop kernel module's; needs `wire`).
        public var atopCounts = AtopCounts.calls
        /// The accounting engine (nil: chosen by the kernel).
        public var engine: AccountingEngine.Kind?
        /// Serve HTTP (`/metrics`, `/api/v1/…`, `/healthz`) on this address and port.
        public var listen: (host: String, port: Int)?
        /// The bearer token HTTP clients must send (nil: none).
        public var metricsToken: String?
        /// Series of their own per process group and per cgroup; the rest in `other`.
        public var metricsTop = 50
        /// Process groups by command name and PID.
        public var metricsPIDs = false
        /// Record each interval's traffic in a history file (nil: none).
        public var history: HistoryOptions?
        public init() {}
    }

    public struct HistoryOptions: Sendable {
        public var path: String
        /// Seconds per interval.
        public var interval: Double
        public var retention: HistoryRetention
        public init(path: String, interval: Double, retention: HistoryRetention = .standard) {
            (self.path, self.interval, self.retention) = (path, interval, retention)
        }
    }

    public let configuration: Configuration
    let logger: Logger

    public init(_ configuration: Configuration, logger: Logger = Logger(label: "netacct.daemon")) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Serves until SIGINT or SIGTERM, then closes the sockets, removes their files (if they
    /// are still the sockets it made) and detaches the programs. `ready` is called once the
    /// sockets accept connections.
    public func run(ready: () -> Void = {}) throws {
        let signals = StopSignals() // before any thread starts, so that all of them block these
        if let group = configuration.group, getgrnam(group) == nil {
            throw NetacctError("No group named \(group) (--group).")
        }
        // Each path with the option that sets it, which the messages about it name.
        var paths = [(configuration.socketPath, "--socket")]
        if let api = configuration.apiSocketPath { paths.append((api, "--api-socket")) }
        for (path, option) in paths { try SocketPath.check(path, option: option) }
        let engine = try AccountingEngine(options: .init(perSocket: configuration.connections, kind: configuration.engine), logger: logger)
        var leases: [SocketPath.Lease] = []
        defer { for lease in leases { lease.release() } }
        for (path, option) in paths {
            let lease = try SocketPath.claim(path, option: option)
            leases.append(lease)
            if lease.claim == .reclaimedStale {
                logger.notice("removed a stale socket left by an earlier daemon", metadata: ["path": "\(path)"])
            }
        }

        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let loop = group.next()
        var others: [any Collector] = []
        if configuration.connections { others.append(SocketsCollector(engine: engine)) }
        if configuration.nic, let nic = try Self.optional("nic", logger: logger, {
            NICCollector(monitor: try NICMonitor(scope: configuration.allNamespaces ? .all : .current, names: [], logger: logger))
        }) {
            others.append(nic)
        }
        if configuration.latency, let latency = try Self.optional("latency", logger: logger, {
            let every = configuration.allNamespaces
            return try LatencyCollector(engines: try LatencyDirection.allCases.map {
                try LatencyEngine(direction: $0, filter: LatencyFilter(), histograms: true, namespace: every ? 0 : NetworkNamespace.inode(), logger: logger)
            }, allNamespaces: every)
        }) {
            others.append(latency)
        }
        let (top, pids) = (configuration.metricsTop, configuration.metricsPIDs)
        if configuration.drops, let drops = try Self.optional("drops", logger: logger, {
            DropsCollector(engine: try DropsEngine(filter: DropFilter(), summary: true, namespace: configuration.allNamespaces ? 0 : NetworkNamespace.inode(), logger: logger),
                           top: top, pids: pids)
        }) {
            others.append(drops)
        }
        if configuration.connectionEvents, let events = try Self.optional("connection events", logger: logger, {
            var filter = ConnectionFilter()
            (filter.failed, filter.closes) = (true, true)
            return ConnectionEventsCollector(engine: try ConnectionsEngine(filter: filter, logger: logger), top: top, pids: pids)
        }) {
            others.append(events)
        }
        if configuration.wire {
            // atop's counts depend on it when asked: then a kernel that cannot count the wire stops the daemon.
            let retention = configuration.service.retention
            let load = { WireCollector(engine: try WireEngine(options: .init(retention: retention), logger: self.logger), top: top, pids: pids) as any Collector }
            if configuration.atopCounts == .wire {
                others.append(try load())
            } else if let wire = try Self.optional("wire", logger: logger, load) {
                others.append(wire)
            }
        }
        if configuration.tcp {
            let retention = configuration.service.retention
            if let tcp = try Self.optional("TCP health", logger: logger, {
                TCPHealthCollector(engine: try TCPHealthEngine(options: .init(retention: retention), logger: self.logger), top: top, pids: pids)
            }) {
                others.append(tcp)
            }
        }
        let shared = SharedService(service: AccountingService(engine: engine, configuration: configuration.service),
                                   others: others, loop: loop, logger: logger, replyBudget: configuration.replyBudget)
        shared.atopCounts = configuration.atopCounts
        var channels: [Channel] = []
        // The HTTP API's history queries are read on a thread of their own.
        let historyReaders = configuration.history == nil || configuration.listen == nil ? nil : NIOThreadPool(numberOfThreads: 1)
        historyReaders?.start()
        defer {
            for channel in channels { try? channel.close().wait() }
            try? historyReaders?.syncShutdownGracefully()
            try? group.syncShutdownGracefully()
            withExtendedLifetime(engine) {}
        }
        // The recorder lives on the loop (the service is the loop's); its writer is its own thread.
        let (history, historyLogger) = (configuration.history, logger)
        let recorder = try loop.submit { NIOLoopBoundBox(Self.startHistory(history, shared, logger: historyLogger), eventLoop: loop) }.wait()
        let writer = try loop.submit { recorder.value?.writer }.wait()
        defer { writer?.stop() }
        let ticks = history.map { history in
            let every = TimeAmount.nanoseconds(Int64(history.interval * 1e9))
            return loop.scheduleRepeatedTask(initialDelay: every, delay: every) { _ in
                do { try recorder.value?.tick() } catch { shared.log.log(.warning, "history", "history: cannot take an interval: \(error)") }
            }
        }
        if let listen = configuration.listen {
            let metrics = MetricsExporter(service: shared.service, engine: engine,
                                          options: .init(top: configuration.metricsTop, pids: configuration.metricsPIDs))
            shared.metrics = metrics
            let server = HTTPServer(configuration: HTTPConfiguration(host: listen.host, port: listen.port, token: configuration.metricsToken),
                                    shared: shared, metrics: metrics, history: configuration.history, readers: historyReaders, historyWriter: writer)
            do {
                channels.append(try server.bind(group: group))
            } catch {
                let address = listen.host.contains(":") ? "[\(listen.host)]:\(listen.port)" : "\(listen.host):\(listen.port)"
                throw NetacctError("Cannot listen on \(address) (--listen): \(Self.reason(error)).")
            }
            if !Self.isLoopback(listen.host) {
                logger.warning("serving metrics and the HTTP API beyond this machine (\(listen.host)): anyone who can reach the port sees every process's traffic\(configuration.metricsToken == nil ? "; consider --metrics-token-file" : "")")
            }
        }
        channels.append(try bind(leases[0], group: group, shared: shared) { NetatopHandler(shared: shared) })
        if leases.count > 1 {
            channels.append(try bind(leases[1], group: group, shared: shared) { APIHandler(shared: shared) })
        }
        let interval = configuration.maintenanceInterval
        let milliseconds = Int64(interval * 1000)
        loop.scheduleRepeatedTask(initialDelay: .milliseconds(milliseconds), delay: .milliseconds(milliseconds)) { _ in
            shared.maintain(interval: interval)
        }
        logger.notice("serving", metadata: ["atop": "\(configuration.socketPath)",
                                            "api": "\(configuration.apiSocketPath ?? "-")",
                                            "idle_timeout_s": "\(configuration.idleTimeout)"])
        ready()
        while signals.wait(until: .infinity) == nil {}
        logger.notice("stopping")
        // The interval under way is recorded too, after the last scheduled one.
        try? loop.submit {
            ticks?.cancel()
            try recorder.value?.tick()
        }.wait()
    }

    /// Opens the history file and starts recording (on the event loop, which owns the service).
    /// A file that cannot be used is said, and the daemon goes on counting and serving without.
    private static func startHistory(_ history: HistoryOptions?, _ shared: SharedService, logger: Logger) -> HistoryRecorder? {
        guard let history else { return nil }
        do {
            let store = try HistoryStore(path: history.path, mode: .readWrite)
            let recorder = try HistoryRecorder(service: shared.service, collectors: shared.collectors, store: store, interval: history.interval,
                                               retention: history.retention, logger: logger)
            logger.notice("recording history", metadata: ["path": "\(history.path)", "interval_s": "\(history.interval)"])
            return recorder
        } catch {
            logger.error("not recording history (counting and serving go on): \(error)")
            return nil
        }
    }

    /// Why a socket could not be bound, in words a user can act on: the system's message for
    /// the error number (not the library call that failed), or why a host name did not resolve.
    static func reason(_ error: any Error) -> String {
        switch error {
        case let error as IOError: String(cString: strerror(error.errnoCode))
        case let error as SocketAddressError.UnknownHost: "cannot resolve \(error.host): \(error.errorDescription)"
        case let error as NetacctError: error.message
        default: "\(error)"
        }
    }

    /// Whether an address to listen on is a loopback one (127.0.0.0/8, ::1, localhost).
    static func isLoopback(_ host: String) -> Bool {
        host == "localhost" || host == "::1" || host.hasPrefix("127.")
    }

    /// Loads an optional collector: one the running kernel cannot support is reported and
    /// skipped, and the others go on serving; any other failure stops the daemon.
    static func optional(_ name: String, logger: Logger, _ load: () throws -> any Collector) throws -> (any Collector)? {
        do {
            return try load()
        } catch let error as any UserFacingError where error.kind == .unsupported {
            logger.warning("not serving \(name): \(error)")
            return nil
        }
    }

    /// The user of the process at the other end of a Unix socket (SO_PEERCRED); an unknown
    /// peer counts as a user other than root.
    static func peerUser(of channel: Channel) -> EventLoopFuture<UInt32> {
        guard let provider = channel as? SocketOptionProvider else { return channel.eventLoop.makeSucceededFuture(.max) }
        let credentials: EventLoopFuture<PeerCredentials> = provider.unsafeGetSocketOption(
            level: SocketOptionLevel(SOL_SOCKET), name: SocketOptionName(SO_PEERCRED))
        return credentials.map { $0.uid }.recover { _ in UInt32.max }
    }

    /// Linux's `struct ucred`, which Swift's Glibc module leaves out (a GNU extension).
    struct PeerCredentials: Sendable {
        var pid: Int32 = 0
        var uid: UInt32 = 0
        var gid: UInt32 = 0
    }

    private func bind(_ lease: SocketPath.Lease, group: EventLoopGroup, shared: SharedService,
                      handler: @escaping @Sendable () -> any ChannelInboundHandler) throws -> Channel {
        let path = lease.path, option = lease.option
        let limit = configuration.maximumClients
        let idle = TimeAmount.milliseconds(Int64(configuration.idleTimeout * 1000))
        let connections = ConnectionCount()
        let users = UserConnections()
        let perUser = max(1, limit / 4)
        let previous = umask(0o177) // the socket file is created 0600, then widened if asked
        defer { umask(previous) }
        // Bound here rather than by NIO, which would delete whatever socket is at the path when
        // it closes the channel: only the lease removes the file, and only if it is this one.
        let socket: Int32
        do {
            socket = try UnixSocket.listening(at: path, backlog: 16)
        } catch let error as NetacctError {
            // Its message names the path; this one names the option that set it too.
            let prefix = "Cannot listen on \(path): "
            let reason = error.message.hasPrefix(prefix) ? String(error.message.dropFirst(prefix.count)) : error.message
            throw NetacctError("Cannot listen on \(path) (\(option)): \(reason)", kind: error.kind)
        }
        let channel: Channel
        do {
            channel = try ServerBootstrap(group: group)
                .childChannelInitializer { channel in
                    guard connections.increment() <= limit else {
                        connections.decrement()
                        shared.log.log(.warning, "refused-\(path)", "refusing a client: \(limit) are connected already",
                                       metadata: ["path": "\(path)"])
                        return channel.close()
                    }
                    channel.closeFuture.whenComplete { _ in connections.decrement() }
                    return Self.peerUser(of: channel).flatMap { user in
                        // Root's clients (atop) may take every place; another user at most a
                        // quarter, so that one user's clients can never keep root's out.
                        guard user == 0 || users.admit(user, limit: perUser) else {
                            shared.log.log(.warning, "refused-user-\(path)",
                                           "refusing a client: its user has \(perUser) connected already",
                                           metadata: ["path": "\(path)", "uid": "\(user)"])
                            return channel.close()
                        }
                        if user != 0 { channel.closeFuture.whenComplete { _ in users.release(user) } }
                        return channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandlers(IdleStateHandler(readTimeout: idle),
                                                                           ClosingIdleClients(log: shared.log), handler())
                        }
                    }
                }
                .withBoundSocket(socket)
                .wait()
        } catch {
            close(socket)
            unlink(path)
            throw NetacctError("Cannot listen on \(path) (\(option)): \(Self.reason(error)).")
        }
        do {
            try SocketPath.restrict(path, option: option, group: configuration.group)
            try lease.bound()
        } catch {
            try? channel.close().wait()
            lease.release()
            throw error
        }
        return channel
    }
}

/// What the netatop-bpf server sends atop as a process's packets and bytes.
public enum AtopCounts: String, Sendable, CaseIterable {
    /// Successful send and receive calls and their payload (netatop-bpf's meaning).
    case calls
    /// Frames on the wire with all their headers, ACKs and retransmissions included (the netatop
    /// kernel module's meaning): per process, they add up to the interfaces' counters.
    case wire
}

/// Closes a client that sent nothing for the idle timeout (IdleStateHandler's read event).
final class ClosingIdleClients: ChannelInboundHandler, Sendable {
    typealias InboundIn = ByteBuffer
    // The log is used on the event loop only, like everything a handler does.
    nonisolated(unsafe) let log: RateLimitedLog

    init(log: RateLimitedLog) { self.log = log }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let idle = event as? IdleStateHandler.IdleStateEvent, idle == .read else {
            return context.fireUserInboundEventTriggered(event)
        }
        log.log(.notice, "idle", "closing a client that sent no request for the idle timeout")
        context.close(promise: nil)
    }
}

/// Connections per user (other than root), shared like `ConnectionCount`.
final class UserConnections: Sendable {
    private let counts = Mutex<[UInt32: Int]>([:])

    /// Counts one more connection of `user` if it has fewer than `limit`.
    func admit(_ user: UInt32, limit: Int) -> Bool {
        counts.withLock { counts in
            guard counts[user, default: 0] < limit else { return false }
            counts[user, default: 0] += 1
            return true
        }
    }

    func release(_ user: UInt32) {
        counts.withLock { counts in
            let left = counts[user, default: 1] - 1
            counts[user] = left > 0 ? left : nil
        }
    }
}

/// A connection count shared by the event loop's accept path and close callbacks.
final class ConnectionCount: Sendable {
    private let value = Mutex(0)

    @discardableResult
    func increment() -> Int { value.withLock { $0 += 1; return $0 } }
    func decrement() { value.withLock { $0 -= 1 } }
}
