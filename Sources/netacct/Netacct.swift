import ArgumentParser

@main
struct Netacct: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Per-process network accounting for Linux, counted in the kernel with eBPF.",
        subcommands: [TopCommand.self, NICCommand.self, DaemonCommand.self],
        defaultSubcommand: TopCommand.self
    )
}
