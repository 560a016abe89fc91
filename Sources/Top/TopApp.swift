import FoundationEssentials
import Logging
import SystemPackage
import Accounting
import DaemonProtocol
import NetacctKit

/// `netacct top`: every interval, the processes with traffic in it, busiest first.
public struct TopApp {
    public struct Configuration: Sendable {
        public var interval: Double = 1
        /// Number of intervals to print; nil: until interrupted.
        public var count: Int?
        public var pids: Set<Int32> = []
        public var cgroup: String?
        public var threads = false
        /// A row per connection under its process (tcptop's view); counted by programs loaded
        /// only for it (or by a daemon started with --connections).
        public var connections = false
        /// The accounting engine, when this process loads the programs (nil: chosen by the kernel).
        public var engine: AccountingEngine.Kind?
        /// The address families of the connections shown (`-4`, `-6`).
        public var families: Set<SocketSample.Family> = Set(SocketSample.Family.allCases)
        public var clearScreen = true
        public var sort: TopInterval.SortKey = .total
        /// A row per process (its threads under it with `threads`), or per cgroup.
        public var grouping: TopInterval.Grouping = .process
        /// The interactive screen (keys, the terminal's size), when standard input and output
        /// are a terminal; else the plain table.
        public var interactive = false
        public var json = false
        public var summary = true
        /// Where a running daemon's local API is; nil: never use a daemon.
        public var daemonSocket: String? = DaemonAPI.defaultSocket
        /// Frames on the wire instead of calls (WireTop), per process or cgroup.
        public var wire = false
        /// With `wire`: only these interfaces (by name, in any network namespace); nil: all.
        public var interfaces: Set<String>?
        /// TCP health instead of traffic (TCPTop), per process, cgroup and connection.
        public var tcp = false
        /// With `tcp`: what the rows are sorted by.
        public var tcpSort: TCPSortKey = .retransmissions
        public init() {}
    }

    public let configuration: Configuration
    let logger: Logger

    public init(_ configuration: Configuration, logger: Logger = Logger(label: "netacct.top")) {
        self.configuration = configuration
        self.logger = logger
    }

    /// Runs until `count` intervals are printed or SIGINT/SIGTERM arrives. Each interval is
    /// written to `output` in one piece as soon as it ends.
    public func run(output: FileDescriptor = .standardOutput) throws {
        if configuration.wire {
            // Frames on the wire per process or cgroup, with the interfaces' totals and what no process owned.
            let source = try WireSource(configuration, logger: logger)
            var renderer = WireRenderer(configuration: configuration, cgroups: CgroupNames())
            return try showIntervals(configuration, output: output, renderer: &renderer,
                                     sample: { WireRenderer.Sample(counted: try source.sample(), devices: DeviceCounters.read()) },
                                     losses: { $0.counted.losses.phrases })
        }
        if configuration.tcp {
            // TCP health per process, cgroup or connection.
            let source = try TCPHealthSource(configuration, logger: logger)
            var renderer = TCPRenderer(configuration: configuration, cgroups: CgroupNames())
            return try showIntervals(configuration, output: output, renderer: &renderer, sample: source.sample, losses: { $0.losses.phrases })
        }
        let signals = StopSignals()
        var cgroups = CgroupNames()
        var filter = TopInterval.Filter(pids: configuration.pids)
        if let path = configuration.cgroup { filter.cgroups = try cgroups.subtree(path) }
        if configuration.interactive, let terminal = Terminal() {
            // Threads and connections are counted from the start, so that `h` and `c` can show
            // them; connections where they can be (without --connections, a daemon or a kernel
            // that does not count them leaves `c` without them, not top without a screen).
            var counting = configuration
            counting.threads = true
            counting.connections = true
            var source = try Source(counting, logger: logger, connectionsRequired: configuration.connections)
            try interact(terminal, source: &source, filter: filter, cgroups: cgroups, signals: signals)
            return
        }
        var source = try Source(configuration, logger: logger)
        var renderer = TopRenderer(threads: configuration.threads, summary: configuration.summary, cgroups: cgroups)
        var reportedLosses = Snapshot.Losses()

        var start = StopSignals.now()
        var printed = 0
        while configuration.count.map({ printed < $0 }) ?? true {
            let stopped = signals.wait(until: start + configuration.interval) != nil
            let end = StopSignals.now()
            let (samples, sockets, losses) = try source.sample()
            if losses != reportedLosses {
                logger.warning("not everything could be counted: \(losses.phrases.joined(separator: "; "))")
                reportedLosses = losses
            }
            if let cgroupPath = configuration.cgroup {
                // New cgroups may have appeared below the one being watched.
                filter.cgroups = (try? cgroups.subtree(cgroupPath)) ?? filter.cgroups
            }
            let interval = TopInterval(time: Date(), seconds: end - start, samples: samples, filter: filter, sort: configuration.sort,
                                       sockets: configuration.connections ? sockets : nil, families: configuration.families)
            var text: String
            switch (configuration.grouping, configuration.json) {
            case (.process, true): text = try renderer.json(interval) + "\n"
            case (.cgroup, true): text = try renderer.cgroupJSON(interval, sort: configuration.sort) + "\n"
            case (.process, false): text = renderer.table(interval, loadAverage: Self.loadAverage(), losses: losses)
            case (.cgroup, false): text = renderer.cgroupTable(interval, sort: configuration.sort, loadAverage: Self.loadAverage(), losses: losses)
            }
            if !configuration.json {
                if configuration.clearScreen { text = "\u{1B}[H\u{1B}[2J" + text } else { text += "\n" }
            }
            // The reader went away (`| head`), or a stop signal came while it did not read: done.
            guard try signals.write(Array(text.utf8), to: output.rawValue) == .written else { return }
            printed += 1
            start = end
            if stopped { break }
        }
    }

    /// The interactive screen: the same intervals, drawn to fit the terminal, with keys that
    /// sort, filter, pause, show threads and switch the grouping (InteractiveState); until `q`,
    /// a stop signal or `count` intervals.
    func interact(_ terminal: Terminal, source: inout Source, filter: TopInterval.Filter, cgroups: CgroupNames,
                  signals: StopSignals) throws {
        var state = InteractiveState(sort: configuration.sort, grouping: configuration.grouping, threads: configuration.threads,
                                     connections: configuration.connections && source.countsConnections,
                                     connectionsCounted: source.countsConnections)
        var renderer = TopRenderer(threads: false, summary: configuration.summary, cgroups: cgroups)
        var last: (samples: [ProcessTable.ProcessSample], sockets: [SocketSample], time: Date, seconds: Double, losses: Snapshot.Losses)?
        func draw() {
            guard let last else {
                terminal.show(state.fit(["netacct top: counting the first \(Units.seconds(configuration.interval))…"], headerLines: 1, rows: terminal.size.rows))
                return
            }
            let samples = last.samples.filter { state.admits(pid: $0.id.pid, comm: $0.comm, cgroup: renderer.cgroups.path(of: $0.cgroupID)) }
            let interval = TopInterval(time: last.time, seconds: last.seconds, samples: samples, filter: filter, sort: state.sort,
                                       sockets: state.connections ? last.sockets : nil, families: configuration.families)
            renderer.threads = state.threads
            let text = state.grouping == .process
                ? renderer.table(interval, loadAverage: Self.loadAverage(), losses: last.losses)
                : renderer.cgroupTable(interval, sort: state.sort, loadAverage: Self.loadAverage(), losses: last.losses)
            let lines = text.split(separator: "\n", omittingEmptySubsequences: false).dropLast().map(String.init)
            let header = state.grouping == .process ? TopRenderer.header : TopRenderer.cgroupHeader
            terminal.show(state.fit(lines, headerLines: (lines.firstIndex(of: header) ?? 0) + 1, rows: terminal.size.rows))
        }
        try terminal.run(every: configuration.interval, count: configuration.count, signals: signals, key: { key in
            switch state.handle(key) {
            case .quit: .quit
            case .redraw: .redraw
            case .nothing: .nothing
            }
        }, draw: draw, interval: { seconds in
            let (samples, sockets, losses) = try source.sample()
            guard !state.paused else { return false }
            last = (samples, sockets, Date(), seconds, losses)
            draw()
            return true
        })
    }

    /// Where the counters come from: a running daemon (no second copy of the programs), or
    /// the programs loaded by this process when no daemon runs or the daemon does not keep
    /// what is asked for (threads, connections).
    enum Source {
        case daemon(DaemonAPI.Connection, DeltaTracker, SocketDeltas?)
        case local(AccountingEngine, ProcessTable, SocketTable, SocketDeltas)

        /// Whether this source counts per socket.
        var countsConnections: Bool {
            switch self {
            case .daemon(_, _, let sockets): sockets != nil
            case .local(let engine, _, _, _): engine.countsPerSocket
            }
        }

        init(_ configuration: Configuration, logger: Logger, connectionsRequired: Bool = true) throws {
            if let path = configuration.daemonSocket, let connection = try Self.connect(path, logger: logger) {
                // The first reply sets the baseline: traffic before top started is not shown.
                var tracker = DeltaTracker()
                let first = try connection.processSamples()
                var sockets: SocketDeltas?
                if configuration.connections {
                    do {
                        var deltas = SocketDeltas(baseline: true)
                        _ = deltas.deltas(try connection.socketSamples())
                        sockets = deltas
                    } catch let error as NetacctError where error.kind == .unsupported {
                        logger.debug("\(error)")
                    }
                }
                if configuration.threads && !first.threadsKept {
                    logger.notice("the running daemon keeps no per-thread counters (start it with --threads); loading the programs here for --threads")
                } else if configuration.connections && sockets == nil && connectionsRequired {
                    logger.notice("the running daemon does not count per connection (start it with --connections); loading the programs here for --connections")
                } else {
                    logger.info("reading the counters of the netacct daemon", metadata: ["socket": "\(path)"])
                    _ = tracker.deltas(first.processes)
                    self = .daemon(connection, tracker, sockets)
                    return
                }
            }
            let onlyPID = configuration.pids.count == 1 ? configuration.pids.first : nil
            // Thread rows cost a sample more: kept only when shown.
            let engine: AccountingEngine
            do {
                engine = try AccountingEngine(options: .init(onlyPID: onlyPID, perSocket: configuration.connections, kind: configuration.engine), logger: logger)
            } catch let error as NetacctError where error.kind == .unsupported && configuration.connections && !connectionsRequired {
                logger.notice("not counting per connection (c shows none): \(error)")
                engine = try AccountingEngine(options: .init(onlyPID: onlyPID, kind: configuration.engine), logger: logger)
            }
            self = .local(engine, ProcessTable(keepsThreads: configuration.threads), SocketTable(), SocketDeltas(baseline: false))
        }

        /// The daemon's API, if one serves `path`. When its socket is closed to this user and
        /// this user cannot load the programs either, says which and what to do.
        static func connect(_ path: String, logger: Logger) throws -> DaemonAPI.Connection? {
            do {
                return try DaemonAPI.Connection(path: path)
            } catch let error as UnixSocket.ConnectError where error.isPermissionDenied {
                do {
                    try KernelProbe.checkPrivileges()
                } catch {
                    throw NetacctError("""
                        A netacct daemon serves \(path), but its socket is not open to you (permission \
                        denied), and loading netacct's own programs needs root or CAP_BPF and CAP_PERFMON. \
                        Ask for the daemon to be run with --group GROUP and join that group, or run netacct as root.
                        """, kind: .permission)
                }
                logger.info("the daemon's socket is not open to this user: loading the programs here", metadata: ["socket": "\(path)"])
                return nil
            } catch let error as UnixSocket.ConnectError {
                logger.debug("no daemon: \(error)")
                return nil
            }
        }

        /// The interval's processes and (when counted) sockets, with their deltas, and the losses.
        /// The sockets are read first: a call counts in its thread before its socket, so every
        /// socket call read is in the processes read after, and the process of every socket
        /// with traffic is among the samples (a call made between the two reads is in the
        /// process's delta of this interval and the socket's of the next; TopInterval shows a
        /// process whose sockets moved even when its own counters did not).
        mutating func sample() throws -> ([ProcessTable.ProcessSample], [SocketSample], Snapshot.Losses) {
            switch self {
            case .daemon(let connection, var tracker, var sockets):
                var socketSamples: [SocketSample] = []
                if var deltas = sockets {
                    socketSamples = deltas.deltas(try connection.socketSamples())
                    sockets = deltas
                }
                let reply = try connection.processSamples()
                let samples = tracker.deltas(reply.processes)
                self = .daemon(connection, tracker, sockets)
                return (samples, socketSamples, reply.losses)
            case .local(let engine, var table, let socketTable, var deltas):
                var source = engine
                let sockets = engine.countsPerSocket ? deltas.deltas(try socketTable.sample(engine)) : []
                let samples = try table.ingest(from: &source, reporting: .all)
                self = .local(engine, table, socketTable, deltas)
                return (samples, sockets, try engine.losses())
            }
        }
    }

    static func loadAverage() -> String? {
        guard let text = try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8) else { return nil }
        return text.split(separator: " ").prefix(3).joined(separator: " ")
    }
}
