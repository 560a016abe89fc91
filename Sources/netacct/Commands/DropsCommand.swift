import ArgumentParser
import Drops

struct DropsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "drops",
        abstract: "Show each incoming TCP or UDP packet the kernel drops, with its reason and the process whose socket it was for.",
        discussion: """
            Reasons are the running kernel's (enum skb_drop_reason, read from its BTF); PID and \
            COMM are the owner of the socket the packet was for, or - when there is none. \
            --summary counts in the kernel and shows, every interval, the drops per reason, \
            protocol and owner. Packets are those that came in on an interface of the network \
            namespace netacct runs in, of another (--netns), or of any (-A: each drop names its \
            namespace, those made later included). \
            Needs Linux >= 6.12 with BTF.
            """
    )

    @Option(name: [.customShort("p"), .long], parsing: .unconditionalSingleValue, help: ArgumentHelp("Only drops for sockets of this process (repeatable).", valueName: "pid"))
    var pid: [Int] = []

    @Flag(name: [.customShort("4"), .customLong("ipv4")], help: "Only IPv4.")
    var ipv4 = false

    @Flag(name: [.customShort("6"), .customLong("ipv6")], help: "Only IPv6.")
    var ipv6 = false

    @Flag(help: "Only TCP.")
    var tcp = false

    @Flag(help: "Only UDP.")
    var udp = false

    @Option(help: ArgumentHelp("Only this drop reason, by the kernel's name (repeatable): NO_SOCKET, TCP_CSUM…", valueName: "name"))
    var reason: [String] = []

    @Flag(help: "Every reason, NOT_SPECIFIED included (left out by default).")
    var allReasons = false

    @Flag(help: "Counts per reason, protocol and owner every interval, instead of a line per drop.")
    var summary = false

    @Argument(help: "With --summary: seconds between outputs (default 1).")
    var interval: Double?

    @Flag(help: "One JSON object per drop (or per interval with --summary), one per line.")
    var json = false

    @Option(parsing: .unconditional, help: ArgumentHelp("Stop after this many drops (or intervals with --summary).", valueName: "n"))
    var count: Int?

    @OptionGroup var namespaces: NamespaceOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        try Check.family(ipv4: ipv4, ipv6: ipv6)
        if tcp && udp { throw ValidationError("--tcp and --udp exclude each other: give one of them, or neither for both.") }
        if let interval {
            guard summary else { throw ValidationError("An interval is for --summary (netacct drops --summary \(interval)).") }
            try Check.seconds(interval, "The interval")
        }
        try Check.count(count, "--count")
        try Check.pids(pid)
        if allReasons && !reason.isEmpty { throw ValidationError("--all-reasons and --reason exclude each other.") }
    }

    func run() throws {
        let logger = global.start("netacct.drops")
        var configuration = DropsApp.Configuration()
        configuration.filter.pids = try Check.pids(pid)
        configuration.filter.family = try Check.family(ipv4: ipv4, ipv6: ipv6)
        configuration.filter.proto = tcp ? .tcp : udp ? .udp : nil
        configuration.filter.reasons = reason
        configuration.filter.allReasons = allReasons
        configuration.summary = summary ? interval ?? 1 : nil
        configuration.json = json
        configuration.count = count
        try reportingErrors {
            configuration.scope = try namespaces.scope()
            try DropsApp(configuration, logger: logger).run()
        }
    }
}
