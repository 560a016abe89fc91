import Accounting
import ArgumentParser
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

    @Flag(help: "Also count each interface's TX/RX queues (API verb nic), for the interfaces up at start.")
    var nic = false

    @Flag(help: "Also time TCP segments through the kernel's layers, in and out (API verb latency): per-stage histograms counted in the kernel.")
    var latency = false

    @Flag(help: "Also count per connection (API verb sockets), for netacct top --connections: other programs on the same hooks, which cost more per call.")
    var connections = false

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        guard retention > 0, retention.isFinite else { throw ValidationError("The retention must be a positive number of seconds.") }
        guard socket != apiSocket else { throw ValidationError("--socket and --api-socket must differ.") }
        guard maxExited >= 0 else { throw ValidationError("--max-exited cannot be negative.") }
        guard idleTimeout > 0, idleTimeout.isFinite else { throw ValidationError("The idle timeout must be a positive number of seconds.") }
        guard maxClients > 0 else { throw ValidationError("--max-clients must be at least 1.") }
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
        configuration.latency = latency
        configuration.connections = connections
        try reportingErrors { try Daemon(configuration, logger: logger).run() }
    }
}
