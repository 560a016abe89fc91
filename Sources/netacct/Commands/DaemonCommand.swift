import Accounting
import ArgumentParser
import History
import NetacctKit
import DaemonProtocol
import Glibc
import NetacctServers

struct DaemonCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Count all the time and serve the counters to atop (netatop-bpf protocol) and to netacct top.",
        discussion: """
            Runs in the foreground until SIGTERM or SIGINT. atop >= 2.10 connects to \
            /run/netatop-bpf-socket when started with -K and shows the SNET/RNET columns and the \
            'n' view. The sockets are for root only (mode 0600) unless --group names a group \
            whose members may read them (0660): per-process traffic of other users' processes \
            is private information. \
            Needs Linux >= 5.15 with BTF (the syscall engine below 6.3, see --engine).
            """
    )

    @Option(help: ArgumentHelp("The netatop-bpf socket atop connects to.", valueName: "path"))
    var socket = "/run/netatop-bpf-socket"

    @Option(help: ArgumentHelp("The local API socket netacct top reads.", valueName: "path"))
    var apiSocket = DaemonAPI.defaultSocket

    @Option(help: ArgumentHelp("Let this group's members connect too (mode 0660 instead of 0600).", valueName: "group"))
    var group: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Seconds an exited process waits for clients that have not had it yet.", valueName: "seconds"))
    var retention: Double = 900

    @Option(parsing: .unconditional, help: ArgumentHelp("Most exited processes kept for clients at once (about 120 bytes each); past it the oldest are forgotten, and counted.", valueName: "count"))
    var maxExited = AccountingService.Configuration().maximumExited

    @Option(parsing: .unconditional, help: ArgumentHelp("Close a client that sends no request for this long (atop -w asks every 600 s by default).", valueName: "seconds"))
    var idleTimeout = Daemon.Configuration().idleTimeout

    @Option(parsing: .unconditional, help: ArgumentHelp("Most clients connected at once, per socket.", valueName: "count"))
    var maxClients = Daemon.Configuration().maximumClients

    @Flag(help: "Keep per-thread rows for netacct top --threads (costs more CPU per sample).")
    var threads = false

    @Flag(help: "Also count each interface's TX/RX queues (API verb nic), for the interfaces up at start.")
    var nic = false

    @Flag(name: [.customShort("A"), .customLong("all-namespaces")], help: "The nic, latency and drops collectors cover every network namespace of the host (containers, pods, ip netns; those made later too), their series labelled netns and container, pod or unit; default: the daemon's own.")
    var allNamespaces = false

    @Flag(help: "Also time TCP segments through the kernel's layers, in and out (API verb latency): per-stage histograms counted in the kernel.")
    var latency = false

    @Flag(help: "Also count per connection (API verb sockets), for netacct top --connections: other programs on the same hooks, which cost more per call.")
    var connections = false

    @Flag(help: "Also count the incoming packets the kernel drops in the daemon's network namespace, per reason, protocol and the socket owner's process group and cgroup, in the kernel as netacct drops --summary does (API verb drops). Linux >= 6.12.")
    var drops = false

    @Flag(help: "Also count TCP connections opened, failed (by errno) and closed, and the connects' handshake time, per process group and cgroup, from netacct connections' events (API verb connection_events). Linux >= 6.2.")
    var connectionEvents = false

    @Flag(help: "Also count frames and bytes on the wire per process, cgroup and interface, with what no process owned per interface (API verb wire, netacct_wire_* metrics), as netacct top --wire does. Linux >= 6.3.")
    var wire = false

    @Flag(help: "Also follow TCP health per process, cgroup and connection: segments sent again by cause, RTT, resets, failed connects, zero-window stalls (API verb tcp, netacct_tcp_* metrics), as netacct top --tcp does. Linux >= 6.2.")
    var tcp = false

    @Option(help: ArgumentHelp("""
        What atop's per-process packets and bytes are: calls (successful send and receive calls and \
        their payload, netatop-bpf's meaning) or wire (frames with all their headers, ACKs and \
        retransmissions, the netatop kernel module's meaning: they add up to atop's interface \
        lines; implies --wire). Per thread, atop has no counters either way.
        """, valueName: "calls|wire"))
    var atopCounts = AtopCounts.calls

    @Option(help: ArgumentHelp("Serve Prometheus metrics (/metrics), the HTTP API (/api/v1/…) and /healthz here; off by default. The usual address is 127.0.0.1:19478 (outside the 9100-9999 range Prometheus's exporters have taken).", valueName: "addr:port"))
    var listen: String?

    @Option(parsing: .unconditional, help: ArgumentHelp("Series of their own per process group and per cgroup in /metrics; the rest in one 'other' series.", valueName: "N"))
    var metricsTop = 50

    @Flag(help: "Process groups by command name and PID in /metrics (still at most --metrics-top of them).")
    var metricsPids = false

    @Option(help: ArgumentHelp("HTTP clients must send 'Authorization: Bearer <the token in this file>'; the file must not be readable by others.", valueName: "path"))
    var metricsTokenFile: String?

    @Flag(help: "Record every interval's traffic per process and cgroup in the history file (netacct history reads it).")
    var history = false

    @Option(help: ArgumentHelp("The history file (an SQLite database, 0600, in a 0700 directory made if missing).", valueName: "path"))
    var historyFile = HistoryStore.defaultPath

    @Option(parsing: .unconditional, help: ArgumentHelp("Seconds between two history records.", valueName: "seconds"))
    var historyInterval: Double = 10

    @Option(help: ArgumentHelp("How long each resolution is kept: the recording interval's for FULL, then each RESOLUTION until its age; older intervals go. Merging sums the fine intervals, so totals stay exact.", valueName: "FULL[,RESOLUTION:UNTIL...]"))
    var historyRetention = "1d,60s:7d,600s:90d"

    @Option(help: ArgumentHelp("Largest the history may grow (K, M, G); past it the oldest intervals go first, counted and said.", valueName: "size"))
    var historyMaxSize = "256M"

    @OptionGroup var engine: EngineOption

    @OptionGroup var global: GlobalOptions

    /// `host:port`, `[v6]:port` → (host, port).
    static func parseListen(_ text: String) throws -> (host: String, port: Int) {
        var host: Substring, port: Substring
        if text.hasPrefix("["), let close = text.firstIndex(of: "]") {
            host = text[text.index(after: text.startIndex)..<close]
            port = text[text.index(after: close)...].drop { $0 == ":" }
        } else if let colon = text.lastIndex(of: ":") {
            host = text[..<colon]
            port = text[text.index(after: colon)...]
        } else {
            throw ValidationError("--listen needs an address and a port, such as 127.0.0.1:19478, not \(text).")
        }
        guard !host.isEmpty, let number = Int(port), (1...65535).contains(number) else {
            throw ValidationError("--listen needs an address and a port (1-65535), such as 127.0.0.1:19478, not \(text).")
        }
        return (String(host), number)
    }

    /// The token in `path`, refused when others may read the file (anyone could use the
    /// token) or write it (anyone could replace it).
    static func readToken(_ path: String) throws -> String {
        var info = stat()
        guard stat(path, &info) == 0 else { throw ValidationError("Cannot read the token file \(path) (--metrics-token-file): \(String(cString: strerror(errno))).") }
        let readable = info.st_mode & 0o004 != 0, writable = info.st_mode & 0o002 != 0
        guard !readable && !writable else {
            let what = readable && writable ? "readable and writable" : readable ? "readable" : "writable"
            throw ValidationError("The token file \(path) is \(what) by every user: make it private (chmod o-rw \(path)) before using it.")
        }
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else { throw ValidationError("Cannot read the token file \(path).") }
        let words = text.split(whereSeparator: \.isWhitespace)
        guard words.count == 1 else { throw ValidationError("The token file \(path) must hold one token, without spaces.") }
        return String(words[0])
    }

    /// Most --metrics-top: each group is series of its own, and Prometheus is not made for
    /// millions of them.
    static let largestMetricsTop = 100_000

    /// The history's options, checked: the retention, the size (at least 1 MiB).
    func historyOptions() throws -> Daemon.HistoryOptions {
        do {
            let size = try HistoryRetention.size(historyMaxSize)
            guard size >= 1 << 20 else { throw ValidationError("--history-max-size must be at least 1M, not \(historyMaxSize).") }
            return .init(path: historyFile, interval: historyInterval,
                         retention: try HistoryRetention.parse(historyRetention, interval: historyInterval, maximumBytes: size))
        } catch let error as NetacctError {
            throw ValidationError(error.message)
        }
    }

    func validate() throws {
        for (path, option) in [(socket, "--socket"), (apiSocket, "--api-socket")] {
            do { try SocketPath.check(path, option: option) } catch { throw ValidationError("\(error)") }
        }
        guard socket != apiSocket else { throw ValidationError("--socket and --api-socket must differ.") }
        try Check.notEmpty(group, "--group", "a group's name")
        try Check.notEmpty(metricsTokenFile, "--metrics-token-file")
        try Check.seconds(retention, "--retention")
        try Check.number(maxExited, "--max-exited", 1...Int.max)
        try Check.seconds(idleTimeout, "--idle-timeout")
        try Check.number(maxClients, "--max-clients", 1...Int.max)
        try Check.number(metricsTop, "--metrics-top", 0...Self.largestMetricsTop)
        if let listen { _ = try Self.parseListen(listen) }
        if metricsTokenFile != nil && listen == nil { throw ValidationError("--metrics-token-file goes with --listen.") }
        if let metricsTokenFile { _ = try Self.readToken(metricsTokenFile) }
        try Check.seconds(historyInterval, "--history-interval")
        try Check.notEmpty(historyFile, "--history-file")
        _ = try historyOptions()
    }

    func run() throws {
        let logger = global.start("netacct.daemon")
        var configuration = Daemon.Configuration()
        configuration.socketPath = socket
        configuration.apiSocketPath = apiSocket
        configuration.group = group
        configuration.service.retention = retention
        configuration.service.keepsThreads = threads
        configuration.service.maximumExited = maxExited
        configuration.idleTimeout = idleTimeout
        configuration.maximumClients = maxClients
        configuration.nic = nic
        configuration.allNamespaces = allNamespaces
        configuration.latency = latency
        configuration.connections = connections
        configuration.drops = drops
        configuration.connectionEvents = connectionEvents
        configuration.wire = wire || atopCounts == .wire
        configuration.tcp = tcp
        configuration.atopCounts = atopCounts
        configuration.engine = engine.kind
        configuration.listen = try listen.map(Self.parseListen)
        configuration.metricsToken = try metricsTokenFile.map(Self.readToken)
        configuration.metricsTop = metricsTop
        configuration.metricsPIDs = metricsPids
        if history { configuration.history = try historyOptions() }
        try reportingErrors { try Daemon(configuration, logger: logger).run() }
    }
}

extension AtopCounts: ExpressibleByArgument {}
