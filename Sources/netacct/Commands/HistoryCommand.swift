import ArgumentParser
import History
import NetacctKit

struct HistoryCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "Show what netacct daemon --history recorded: each process's or cgroup's traffic at a time or over a range.",
        discussion: """
            Reads the history file (the daemon need not run). Times are local: HH:MM[:SS] is \
            today, or give YYYY-MM-DD [HH:MM[:SS]], or @SECONDS[.FRACTION] since the epoch. Durations: \
            90s, 10m, 1h30m, 2d. With none of --at, --since and --from: the last hour. Each \
            answer says the span and the resolution (seconds per interval) it was read at. \
            Counts are socket calls and their payload, as netacct top counts them; \
            a process marked * exited in the range. GET /api/v1/history on the daemon's --listen \
            answers the same JSON.
            """
    )

    @Option(help: ArgumentHelp("The interval recorded at this time.", valueName: "time"))
    var at: String?

    @Option(help: ArgumentHelp("From this long ago until now.", valueName: "duration"))
    var since: String?

    @Option(help: ArgumentHelp("From this time (with --until, or until now).", valueName: "time"))
    var from: String?

    @Option(help: ArgumentHelp("Until this time (with --from).", valueName: "time"))
    var until: String?

    @Option(help: ArgumentHelp("A row per process, per cgroup, per interface queue and direction (--nic's), or per counter of the other collectors (--wire's, --tcp's).",
                               valueName: "process|cgroup|interface|series"))
    var by: HistoryQuery.Grouping = .process

    @Option(name: [.customShort("p"), .long], help: ArgumentHelp("Only this process.", valueName: "pid"))
    var pid: Int32?

    @Flag(help: "A table per interval instead of one for the whole range.")
    var perInterval = false

    @Flag(help: "One JSON object per answer (per interval with --per-interval), one per line.")
    var json = false

    @Option(help: ArgumentHelp("The history file.", valueName: "path"))
    var file = HistoryStore.defaultPath

    @OptionGroup var global: GlobalOptions

    func validate() throws {
        if let pid, pid <= 0 { throw ValidationError("-p needs a positive PID, not \(pid).") }
        try Check.notEmpty(file, "--file")
        var check = HistoryApp.Configuration()
        do { try check.range(at: at, since: since, from: from, until: until, prefix: "--") } catch let error as NetacctError {
            throw ValidationError(error.message)
        }
    }

    func run() throws {
        _ = global.start("netacct.history")
        var configuration = HistoryApp.Configuration()
        configuration.path = file
        configuration.grouping = by
        configuration.pid = pid
        configuration.json = json
        configuration.perInterval = perInterval
        try reportingErrors {
            try configuration.range(at: at, since: since, from: from, until: until, prefix: "--")
            try HistoryApp(configuration).run()
        }
    }
}

extension HistoryQuery.Grouping: ExpressibleByArgument {}
