import ArgumentParser
import BPF
import Glibc
import Logging
import Accounting
import NetacctKit
import Top
import NetacctServers

@main
struct Netacct: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-process network accounting for Linux, counted in the kernel with eBPF.",
        subcommands: [TopCommand.self, DaemonCommand.self],
        defaultSubcommand: TopCommand.self
    )
}

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Log what netacct and libbpf do (libbpf's and the verifier's messages included).")
    var verbose = false

    /// Sets up logging to standard error and returns the command's logger.
    func bootstrap(_ label: String) -> Logger {
        let level: Logger.Level = verbose ? .trace : .notice
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        LibbpfLog.route(to: Logger(label: "libbpf"))
        return Logger(label: label)
    }
}

/// Runs a command body, turning the errors a user can act on into one clear line.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as NetacctError {
        FileDescriptorOutput.standardError("netacct: \(error.message)\n")
        throw ExitCode.failure
    } catch let error as BPFError {
        FileDescriptorOutput.standardError("netacct: \(error)\n")
        throw ExitCode.failure
    }
}

enum FileDescriptorOutput {
    static func standardError(_ text: String) {
        var bytes = Array(text.utf8)
        _ = write(2, &bytes, bytes.count)
    }
}

struct TopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "Show the processes with TCP and UDP traffic, busiest first, every interval.",
        discussion: """
            Counts are socket-level: a packet is one successful send or receive call, bytes are \
            its payload. Processes that exited during the interval are marked with '*' and show \
            their final traffic.
            """
    )

    @Argument(help: "Seconds between outputs.")
    var interval: Double = 1

    @Argument(help: "Number of outputs (default: until interrupted).")
    var count: Int?

    @Option(name: [.customShort("p"), .long], help: "Only this process (repeatable).")
    var pid: [Int32] = []

    @Option(help: ArgumentHelp("Only processes in this cgroup v2 or below it.", valueName: "path"))
    var cgroup: String?

    @Flag(help: "A row for each thread under its process.")
    var threads = false

    @Flag(name: [.customShort("C"), .long], help: "Do not clear the screen between outputs.")
    var noclear = false

    @Flag(name: [.customShort("S"), .long], help: "Skip the summary line.")
    var nosummary = false

    @Option(help: "Sort by received, sent or total bytes (rx, tx, total).")
    var sort: TopInterval.SortKey = .total

    @Flag(help: "One JSON object per interval, one per line.")
    var json = false

    @Option(help: ArgumentHelp("A running daemon's API socket, read instead of loading the programs again.", valueName: "path"))
    var daemonSocket: String = DaemonAPI.defaultSocket

    @Flag(help: "Load the programs in this process even when a daemon runs.")
    var noDaemon = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard interval > 0, interval.isFinite else { throw ValidationError("The interval must be a positive number of seconds, not \(interval).") }
        if let count, count < 1 { throw ValidationError("The count must be at least 1, not \(count).") }
        if let bad = pid.first(where: { $0 <= 0 }) { throw ValidationError("A PID is a positive number, not \(bad).") }
    }

    func run() throws {
        let logger = global.bootstrap("netacct.top")
        signal(SIGPIPE, SIG_IGN)
        var configuration = TopApp.Configuration()
        configuration.interval = interval
        configuration.count = count
        configuration.pids = Set(pid)
        configuration.cgroup = cgroup
        configuration.threads = threads
        configuration.clearScreen = !noclear && !json
        configuration.summary = !nosummary
        configuration.sort = sort
        configuration.json = json
        configuration.daemonSocket = noDaemon ? nil : daemonSocket
        try reportingErrors { try TopApp(configuration, logger: logger).run() }
    }
}

extension TopInterval.SortKey: ExpressibleByArgument {}

struct DaemonCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "daemon",
        abstract: "Count all the time and serve the counters to atop (netatop-bpf protocol) and to netacct top.",
        discussion: """
            Runs in the foreground until SIGTERM or SIGINT. atop >= 2.10 connects to \
            /run/netatop-bpf-socket when started with -K and shows the SNET/RNET columns and the \
            'n' view. The sockets are for root only (mode 0600) unless --group names a group \
            whose members may read them (0660): per-process traffic of other users' processes \
            is private information.
            """
    )

    @Option(help: ArgumentHelp("The netatop-bpf socket atop connects to.", valueName: "path"))
    var socket = "/run/netatop-bpf-socket"

    @Option(help: ArgumentHelp("The local API socket netacct top reads.", valueName: "path"))
    var apiSocket = DaemonAPI.defaultSocket

    @Option(help: ArgumentHelp("Let this group's members connect too (mode 0660 instead of 0600).", valueName: "group"))
    var group: String?

    @Option(help: ArgumentHelp("Seconds an exited process waits for clients that have not had it yet.", valueName: "seconds"))
    var retention: Double = 900

    @Option(help: ArgumentHelp("Most exited processes kept for clients at once (about 120 bytes each); past it the oldest are forgotten, and counted.", valueName: "count"))
    var maxExited = AccountingService.Configuration().maximumExited

    @Option(help: ArgumentHelp("Close a client that sends no request for this long (atop -w asks every 600 s by default).", valueName: "seconds"))
    var idleTimeout = Daemon.Configuration().idleTimeout

    @Option(help: ArgumentHelp("Most clients connected at once, per socket.", valueName: "count"))
    var maxClients = Daemon.Configuration().maximumClients

    @Flag(help: "Keep per-thread rows for netacct top --threads (costs more CPU per sample).")
    var threads = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard retention > 0, retention.isFinite else { throw ValidationError("The retention must be a positive number of seconds.") }
        guard socket != apiSocket else { throw ValidationError("--socket and --api-socket must differ.") }
        guard maxExited >= 0 else { throw ValidationError("--max-exited cannot be negative.") }
        guard idleTimeout > 0, idleTimeout.isFinite else { throw ValidationError("The idle timeout must be a positive number of seconds.") }
        guard maxClients > 0 else { throw ValidationError("--max-clients must be at least 1.") }
    }

    func run() throws {
        let logger = global.bootstrap("netacct.daemon")
        signal(SIGPIPE, SIG_IGN)
        var configuration = Daemon.Configuration()
        configuration.socketPath = socket
        configuration.apiSocketPath = apiSocket
        configuration.group = group
        configuration.service.retention = retention
        configuration.service.keepsThreads = threads
        configuration.service.maximumExited = maxExited
        configuration.idleTimeout = idleTimeout
        configuration.maximumClients = maxClients
        try reportingErrors { try Daemon(configuration, logger: logger).run() }
    }
}
