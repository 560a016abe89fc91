import ArgumentParser
import Glibc

@main
struct Netacct: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-process network accounting for Linux, counted in the kernel with eBPF.",
        subcommands: [TopCommand.self, NICCommand.self, ConnectionsCommand.self, DropsCommand.self, LatencyCommand.self, DaemonCommand.self],
        defaultSubcommand: TopCommand.self
    )

    /// As ArgumentParser's, except that bad usage (an unknown option, a value out of range, a
    /// failed validation) exits with status 2, as getopt-style tools do, rather than 64.
    static func main() {
        do {
            var command = try parseAsRoot()
            try command.run()
        } catch {
            guard exitCode(for: error) == .validationFailure else { exit(withError: error) }
            var message = Array((fullMessage(for: error) + "\n").utf8)
            _ = write(2, &message, message.count)
            Glibc.exit(2)
        }
    }
}
