import ArgumentParser
import Glibc

@main
struct Netacct: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-process network accounting for Linux, counted in the kernel with eBPF.",
        version: NetacctVersion.string,
        subcommands: [TopCommand.self, NICCommand.self, ConnectionsCommand.self, DropsCommand.self, LatencyCommand.self, DaemonCommand.self, HistoryCommand.self],
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
            var message = Array((Self.explained(fullMessage(for: error), message(for: error)) + "\n").utf8)
            _ = write(2, &message, message.count)
            Glibc.exit(2)
        }
    }

    /// ArgumentParser's message, with what it leaves unsaid about numbers: a negative number
    /// where a value goes (`top -1`, `nic 1 -5`), which it takes for an unknown option, is said
    /// to be a number out of range; a number where a whole one goes (`top 1 1e19`, `-p 1.5`),
    /// which it calls invalid, is said to need to be whole, or to be too large. `full` is the
    /// whole message, usage included; `error`, its first line.
    static func explained(_ full: String, _ error: String) -> String {
        let unknown = "Unknown option '", invalid = "The value '"
        guard full.hasPrefix("Error: " + error) else { return full }
        let rest = full.dropFirst(("Error: " + error).count)
        if error.hasPrefix(unknown) {
            let option = error.dropFirst(unknown.count).prefix { $0 != "'" }
            guard option.hasPrefix("-"), Double(option) != nil else { return full }
            return "Error: \(option) is not an option, and intervals and counts must be positive." + rest
        }
        if error.hasPrefix(invalid), error.hasSuffix("'") {
            let value = error.dropFirst(invalid.count).prefix { $0 != "'" }
            guard let number = Double(value) else { return full }
            let why = number.magnitude < 0x1p63 ? "a whole number is needed, in digits" : "the number is too large"
            return "Error: \(error): \(why)." + rest
        }
        return full
    }
}
