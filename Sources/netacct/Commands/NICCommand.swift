import ArgumentParser
import NIC

struct NICCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nic",
        abstract: "Show each interface's TX and RX queues: frames, bytes and segments per second, every interval.",
        discussion: """
            Frames and bytes are what the device's own statistics count (the link-layer header \
            included, a GSO/GRO super-packet once); segments are the wire segments they stand \
            for. The interfaces are those of the network namespace netacct runs in, of another \
            (--netns), or of every one (-A: each namespace's up interfaces, those of namespaces \
            made later included, each row naming its namespace). \
            Needs BTF and tp_btf (Linux >= 5.5; run on 6.1 and 6.18): before 6.2 each frame's segment count costs a helper call more.
            """
    )

    @Argument(help: "Seconds between outputs.")
    var interval: Double?

    @Argument(help: "Number of outputs (default: until interrupted).")
    var count: Int?

    @Option(name: [.customShort("n"), .long], help: ArgumentHelp("Only this interface (repeatable; default: every interface that is up).", valueName: "name"))
    var name: [String] = []

    @Option(name: [.customShort("i"), .customLong("interval")], parsing: .unconditional, help: ArgumentHelp("Seconds between outputs (as the positional interval).", valueName: "seconds"))
    var intervalOption: Double?

    @Flag(help: "One JSON object per interval, one per line (counts in the interval).")
    var json = false

    @OptionGroup var namespaces: NamespaceOptions

    @OptionGroup var global: GlobalOptions

    var seconds: Double { intervalOption ?? interval ?? 1 }

    func validate() throws {
        if let interval { try Check.seconds(interval, "The interval") }
        if let intervalOption { try Check.seconds(intervalOption, "The interval") }
        try Check.count(count, "The count")
        for name in name { try Check.notEmpty(name, "-n", "an interface's name") }
    }

    func run() throws {
        let logger = global.start("netacct.nic")
        var configuration = NICApp.Configuration()
        configuration.names = name
        configuration.interval = seconds
        configuration.count = count
        configuration.json = json
        try reportingErrors {
            configuration.scope = try namespaces.scope()
            try NICApp(configuration, logger: logger).run()
        }
    }
}
