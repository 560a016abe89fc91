import ArgumentParser
import Latency

extension LatencyDirection: ExpressibleByArgument {}

struct LatencyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "latency",
        abstract: "Show where TCP segments spend their time in the kernel, layer by layer.",
        discussion: """
            in: for each received segment with data, the time from the device to IP (MAC), IP to \
            TCP (IP), and TCP until the application's read copies it (TCP). out: for each segment \
            an application sends, from its send to IP (TCP), IP to the device's queue (IP), and \
            the queue to the driver (QDISC). Times in microseconds; a stage the segment did not \
            pass shows -, its time counted in the next, so the stages add up to TOTAL. --hist \
            counts in the kernel and shows, every interval, a histogram per stage with its \
            percentiles. Segments are those of the network namespace netacct runs in. \
            Needs Linux >= 6.12 with BTF (in) or >= 6.16 (out), and netfilter BPF links.
            """
    )

    @Argument(help: ArgumentHelp("Received (in) or sent (out) segments.", valueName: "in|out"))
    var direction: LatencyDirection

    @Argument(help: "With --hist: seconds between outputs (default 1).")
    var interval: Double?

    @Option(name: [.long, .customLong("sp", withSingleDash: true)], parsing: .unconditional, help: ArgumentHelp("Only segments from this source port (for in, the peer's).", valueName: "port"))
    var sport: Int?

    @Option(name: [.long, .customLong("dp", withSingleDash: true)], parsing: .unconditional, help: ArgumentHelp("Only segments to this destination port (for out, the peer's).", valueName: "port"))
    var dport: Int?

    @Option(name: [.customShort("s"), .long], parsing: .unconditional, help: ArgumentHelp("Follow 1 segment in N, chosen at random when it enters the first layer.", valueName: "N"))
    var sample = 1

    @Option(name: [.customShort("p"), .long], parsing: .unconditionalSingleValue, help: ArgumentHelp("Only segments of sockets of this process (repeatable): for in, the one that reads them.", valueName: "pid"))
    var pid: [Int] = []

    @Flag(name: [.customShort("4"), .customLong("ipv4")], help: "Only IPv4.")
    var ipv4 = false

    @Flag(name: [.customShort("6"), .customLong("ipv6")], help: "Only IPv6.")
    var ipv6 = false

    @Flag(help: "A histogram per stage every interval, counted in the kernel, instead of a line per segment.")
    var hist = false

    @Flag(help: "One JSON object per segment (or per interval with --hist), one per line.")
    var json = false

    @Option(parsing: .unconditional, help: ArgumentHelp("Stop after this many segments (or intervals with --hist).", valueName: "n"))
    var count: Int?

    @OptionGroup var namespaces: NamespaceOptions

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        try Check.family(ipv4: ipv4, ipv6: ipv6)
        if let interval {
            guard hist else { throw ValidationError("An interval is for --hist (netacct latency \(direction.rawValue) --hist \(interval)).") }
            try Check.seconds(interval, "The interval")
        }
        try Check.number(sample, "--sample", 1...Int(UInt32.max))
        try Check.port(sport, "--sport")
        try Check.port(dport, "--dport")
        try Check.count(count, "--count")
        try Check.pids(pid)
    }

    func run() throws {
        let logger = global.start("netacct.latency")
        var configuration = LatencyApp.Configuration()
        configuration.direction = direction
        configuration.filter.sourcePort = sport.map(UInt16.init)
        configuration.filter.destinationPort = dport.map(UInt16.init)
        configuration.filter.sample = UInt32(sample)
        configuration.filter.pids = try Check.pids(pid)
        configuration.filter.family = try Check.family(ipv4: ipv4, ipv6: ipv6)
        configuration.histograms = hist ? interval ?? 1 : nil
        configuration.json = json
        configuration.count = count
        try reportingErrors {
            configuration.scope = try namespaces.scope()
            try LatencyApp(configuration, logger: logger).run()
        }
    }
}
