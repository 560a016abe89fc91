import Accounting
import Glibc
import ArgumentParser
import DaemonProtocol
import Top

struct TopCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "top",
        abstract: "Show the processes with TCP and UDP traffic, busiest first, every interval.",
        discussion: """
            Counts are socket-level: a packet is one successful send or receive call, bytes are \
            its payload (with --wire: frames on the wire, per process and interface, which add up \
            to the interfaces' own counters; with --tcp: retransmissions, RTT, resets and stalls). Processes that exited during the interval are marked with '*' and show \
            their final traffic. With --connections, tcptop's view follows: a table per address \
            family, a row per TCP or UDP socket with traffic, under its process; a socket closed \
            during the interval is marked ('tcp*') and shows its final traffic. \
            Needs Linux >= 5.15 with BTF (the syscall engine below 6.3, see --engine; --connections needs 6.3).
            """
    )

    @Argument(help: "Seconds between outputs.")
    var interval: Double = 1

    @Argument(help: "Number of outputs (default: until interrupted).")
    var count: Int?

    @Option(name: [.customShort("p"), .long], parsing: .unconditionalSingleValue, help: "Only this process (repeatable).")
    var pid: [Int] = []

    @Option(help: ArgumentHelp("Only processes in this cgroup v2 or below it.", valueName: "path"))
    var cgroup: String?

    @Flag(help: "A row for each thread under its process.")
    var threads = false

    @Flag(help: "A row for each connection (TCP and UDP socket) under its process: local and remote address and port, calls and bytes each way. Loads per-socket counting (or reads a daemon started with --connections).")
    var connections = false

    @Flag(help: ArgumentHelp("""
        Frames and bytes on the wire instead of calls: every segment with all its headers, link \
        layer included, pure ACKs and retransmissions counted, attributed to the process that owns \
        the socket (even when the kernel sends in softirq), by interface; what no process owned is \
        the unattributed row, and the interfaces' totals are on the header lines. Per process and \
        cgroup only: a frame sent in softirq has no thread. Needs Linux >= 6.3.
        """))
    var wire = false

    @Flag(help: ArgumentHelp("""
        TCP health instead of traffic: segments sent again by cause (RTO, fast retransmit, \
        tail-loss probe, SYN, SYN-ACK), the smoothed RTT's distribution (sampled once per round \
        trip), resets sent and received, failed connects and zero-window stalls, per process or \
        cgroup, for the socket's owner even when the kernel acts in softirq; with --connections a \
        row per connection with its RTT. On a terminal, keys x, l, e, w sort by retransmissions, \
        RTT, errors or zero windows; c toggles the connections. Needs Linux >= 6.2.
        """))
    var tcp = false

    @Option(name: [.customShort("i"), .long], help: ArgumentHelp("With --wire: only this interface, by name (repeatable).", valueName: "name"))
    var interface: [String] = []

    @Flag(name: .customShort("4"), help: "Only IPv4 connections.")
    var ipv4 = false

    @Flag(name: .customShort("6"), help: "Only IPv6 connections.")
    var ipv6 = false

    @Flag(name: [.customShort("C"), .long], help: "Do not clear the screen between outputs.")
    var noclear = false

    @Flag(name: [.customShort("S"), .long], help: "Skip the summary line.")
    var nosummary = false

    @Option(help: "Sort by received, sent or total bytes (rx, tx, total).")
    var sort: TopInterval.SortKey = .total

    @Option(help: ArgumentHelp("A row per process or per cgroup (named as a systemd unit, a container or a pod).", valueName: "process|cgroup"))
    var by: TopInterval.Grouping = .process

    @Flag(help: "One JSON object per interval, one per line.")
    var json = false

    @Option(help: ArgumentHelp("A running daemon's API socket, read instead of loading the programs again.", valueName: "path"))
    var daemonSocket: String = DaemonAPI.defaultSocket

    @Flag(help: "Load the programs in this process even when a daemon runs.")
    var noDaemon = false

    @OptionGroup var engine: EngineOption

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        try Check.seconds(interval, "The interval")
        try Check.count(count, "The count")
        try Check.pids(pid)
        try Check.notEmpty(cgroup, "--cgroup")
        try Check.notEmpty(daemonSocket, "--daemon-socket")
        try Check.family(ipv4: ipv4, ipv6: ipv6)
        if (ipv4 || ipv6) && !connections && (noclear || json || isatty(STDOUT_FILENO) != 1) {
            throw ValidationError("-4 and -6 choose the connections shown: use them with --connections.")
        }
        if by == .cgroup && threads { throw ValidationError("--threads shows threads under their process: it does not go with --by cgroup.") }
        if !interface.isEmpty && !wire { throw ValidationError("--interface chooses the interfaces of --wire: use them together.") }
        if wire && (threads || connections || ipv4 || ipv6 || engine.kind != nil) {
            throw ValidationError("--wire counts frames per process and cgroup: it goes with neither --threads, --connections, -4, -6 nor --engine.")
        }
        if tcp && (wire || threads || ipv4 || ipv6 || engine.kind != nil) {
            throw ValidationError("--tcp counts per process, cgroup and connection: it goes with neither --wire, --threads, -4, -6 nor --engine.")
        }
        for name in interface { try Check.notEmpty(name, "--interface") }
    }

    func run() throws {
        let logger = global.start("netacct.top")
        var configuration = TopApp.Configuration()
        configuration.interval = interval
        configuration.count = count
        configuration.pids = Set(try Check.pids(pid))
        configuration.cgroup = cgroup
        configuration.threads = threads
        configuration.connections = connections
        configuration.engine = engine.kind
        if ipv4 || ipv6 { configuration.families = [ipv4 ? .ipv4 : .ipv6] }
        configuration.clearScreen = !noclear && !json
        // Interactive on a terminal, unless -C or --json asks for lines.
        configuration.interactive = !noclear && !json && isatty(STDOUT_FILENO) == 1 && isatty(STDIN_FILENO) == 1
        configuration.summary = !nosummary
        configuration.sort = sort
        configuration.grouping = by
        configuration.json = json
        configuration.wire = wire
        configuration.tcp = tcp
        configuration.interfaces = interface.isEmpty ? nil : Set(interface)
        // An engine asked for by name is loaded here, whatever a daemon runs.
        configuration.daemonSocket = noDaemon || engine.kind != nil ? nil : daemonSocket
        try reportingErrors { try TopApp(configuration, logger: logger).run() }
    }
}

extension TopInterval.SortKey: ExpressibleByArgument {}
extension TopInterval.Grouping: ExpressibleByArgument {}
