import Accounting
import ArgumentParser
import Glibc
import Logging
import NetacctKit

/// Options every command takes.
struct GlobalOptions: ParsableArguments {
    @Flag(name: .shortAndLong, help: "Log what netacct and libbpf do (libbpf's and the verifier's messages included).")
    var verbose = false

    /// What every command does first: logging to standard error (libbpf's log included, quiet
    /// unless --verbose), and a write to a closed pipe as an error rather than a signal.
    /// Returns the command's logger.
    func start(_ label: String) -> Logger {
        signal(SIGPIPE, SIG_IGN)
        return NetacctLogging.bootstrap(label, verbose: verbose)
    }
}

/// `--engine`, for the commands that count traffic per process.
struct EngineOption: ParsableArguments {
    enum Choice: String, CaseIterable, ExpressibleByArgument {
        case auto, sock, syscalls
    }

    @Option(help: ArgumentHelp("""
        Where to count: sock (the socket layer's tracepoints, Linux >= 6.3), syscalls (the data \
        system calls' exits, Linux >= 5.15; io_uring and the kernel's own sockets are not seen) or \
        auto (sock where the kernel has it).
        """, valueName: "auto|sock|syscalls"))
    var engine: Choice = .auto

    var kind: AccountingEngine.Kind? {
        switch engine {
        case .auto: nil
        case .sock: .sock
        case .syscalls: .syscalls
        }
    }
}

/// Runs a command body, turning the errors a user can act on into one clear line on standard
/// error and exit status 1.
func reportingErrors(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let error as any UserFacingError {
        var line = Array("netacct: \(error)\n".utf8)
        _ = write(2, &line, line.count)
        throw ExitCode.failure
    }
}
