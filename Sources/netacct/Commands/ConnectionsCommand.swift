import ArgumentParser
import Connections

extension ConnectionFilter.Direction: ExpressibleByArgument {}

struct ConnectionsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "connections",
        abstract: "Show each TCP connection as it is established (and, if asked, fails or closes), with the process that made it.",
        discussion: """
            A connect is the process and thread that called connect(); an accept, the one that \
            called accept(). LAT is the handshake: SYN sent (connect) or SYN-ACK sent (accept) \
            to established. Every filter runs in the kernel. Events the kernel could not \
            deliver are counted and said on standard error. \
            Needs Linux >= 6.2 with BTF.
            """
    )

    @Option(name: [.customShort("p"), .long], parsing: .unconditionalSingleValue, help: ArgumentHelp("Only connections made by this process (repeatable).", valueName: "pid"))
    var pid: [Int] = []

    @Option(name: [.customShort("P"), .long], help: ArgumentHelp("Only connections with this local or remote port (repeatable, or comma-separated).", valueName: "port[,port…]"))
    var port: [String] = []

    @Option(name: [.customShort("r"), .long], help: ArgumentHelp("Only connections opened this way.", valueName: "connect|accept"))
    var direction: ConnectionFilter.Direction?

    @Flag(name: [.customShort("4"), .customLong("ipv4")], help: "Only IPv4 connections.")
    var ipv4 = false

    @Flag(name: [.customShort("6"), .customLong("ipv6")], help: "Only IPv6 connections.")
    var ipv6 = false

    @Option(help: ArgumentHelp("Only connections made by processes of this cgroup or below it (a cgroup v2 path).", valueName: "path"))
    var cgroup: String?

    @Flag(help: "Also connects that failed, with the reason (refused, timed out, unreachable…).")
    var failed = false

    @Flag(help: "Also closes, with the connection's duration and payload bytes each way.")
    var close = false

    @Flag(name: [.customShort("a"), .long], help: "Every event: established, failed and closed (--failed --close).")
    var all = false

    @Flag(help: "One JSON object per event, one per line (README.md documents the keys).")
    var json = false

    @Option(parsing: .unconditional, help: ArgumentHelp("Stop after this many events.", valueName: "n"))
    var count: Int?

    @OptionGroup var global: GlobalOptions

    /// -P's values: each a port in 1-65535, commas allowed.
    func ports() throws -> [UInt16] {
        try port.flatMap { $0.split(separator: ",", omittingEmptySubsequences: false) }.map { text in
            guard let value = Int(text.filter { $0 != " " }), (1...65535).contains(value) else {
                throw ValidationError("A port must be a number from 1 to 65535, not \"\(text)\".")
            }
            return UInt16(value)
        }
    }

    func validate() throws {
        try Check.family(ipv4: ipv4, ipv6: ipv6)
        try Check.count(count, "--count")
        try Check.pids(pid)
        try Check.notEmpty(cgroup, "--cgroup")
        let ports = try ports()
        if ports.count > ConnectionsEngine.maximumPorts {
            throw ValidationError("At most \(ConnectionsEngine.maximumPorts) ports can be given, not \(ports.count).")
        }
        if pid.count > ConnectionsEngine.maximumPIDs {
            throw ValidationError("At most \(ConnectionsEngine.maximumPIDs) processes can be given, not \(pid.count).")
        }
    }

    func run() throws {
        let logger = global.start("netacct.connections")
        var configuration = ConnectionsApp.Configuration()
        configuration.filter.pids = try Check.pids(pid)
        configuration.filter.ports = try ports()
        configuration.filter.direction = direction
        configuration.filter.family = try Check.family(ipv4: ipv4, ipv6: ipv6)
        configuration.filter.cgroup = cgroup
        configuration.filter.failed = failed || all
        configuration.filter.closes = close || all
        configuration.json = json
        configuration.count = count
        try reportingErrors { try ConnectionsApp(configuration, logger: logger).run() }
    }
}
