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

/// `-A`/`--all-namespaces` and `--netns`, for the tools that count a network namespace's
/// packets (nic, drops, latency): without either, the namespace netacct runs in.
struct NamespaceOptions: ParsableArguments {
    @Flag(name: [.customShort("A"), .customLong("all-namespaces")], help: ArgumentHelp("""
        Every network namespace of the host (containers, pods, ip netns), those made while         netacct runs included; each row names its namespace. Default: the namespace netacct runs in.
        """))
    var allNamespaces = false

    @Option(help: ArgumentHelp("""
        One network namespace, without ip netns exec: a name in /run/netns, a PID (its         /proc/PID/ns/net) or a path to a namespace file.
        """, valueName: "name|pid|path"))
    var netns: String?

    func validate() throws {
        if allNamespaces && netns != nil { throw ValidationError("-A/--all-namespaces and --netns choose the namespaces two ways: give one of them.") }
        if let netns { try Check.notEmpty(netns, "--netns", "a namespace's name, PID or path") }
    }

    /// What they choose (a --netns that opens no namespace is an error that says so).
    func scope() throws -> NamespaceScope {
        if allNamespaces { return .all }
        if let netns { return try NamespaceScope.named(netns) }
        return .current
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

/// The ranges the commands' numbers and paths must be in, for every command's `validate()`:
/// a value out of range is refused before anything loads, as bad usage (one line, exit status
/// 2), rather than trapping in a conversion later, or meaning something nobody asked for.
enum Check {
    /// Seconds, for every interval and timeout: from a millisecond (the finest any of them is
    /// kept to) to a year. Past that nothing is useful, and the conversions to milliseconds and
    /// nanoseconds further on would overflow.
    static let seconds: ClosedRange<Double> = 0.001...(365 * 86_400)

    /// The largest process id Linux gives (PID_MAX_LIMIT on 64-bit).
    static let largestPID = 4_194_304

    /// `value`, named `what` ("The interval", "--idle-timeout"), is a number of seconds in
    /// `seconds` (not NaN, not infinite).
    static func seconds(_ value: Double, _ what: String) throws {
        guard value > 0 else {
            throw ValidationError("\(what) must be a positive number of seconds, not \(value).")
        }
        guard value >= seconds.lowerBound else {
            throw ValidationError("\(what) must be at least \(seconds.lowerBound) seconds (a millisecond), not \(value).")
        }
        guard value <= seconds.upperBound else {
            throw ValidationError("\(what) must be at most \(Int(seconds.upperBound)) seconds (365 days), not \(value).")
        }
    }

    /// `value`, named `what` ("The count", "--max-clients"), is a whole number in `range`.
    static func number(_ value: Int, _ what: String, _ range: ClosedRange<Int>) throws {
        guard value >= range.lowerBound else {
            throw ValidationError("\(what) must be at least \(range.lowerBound), not \(value).")
        }
        guard value <= range.upperBound else {
            throw ValidationError("\(what) must be at most \(range.upperBound), not \(value).")
        }
    }

    /// A count of outputs or events, when given: at least 1.
    static func count(_ value: Int?, _ what: String) throws {
        if let value { try number(value, what, 1...Int.max) }
    }

    /// A port, when given: 1 to 65535.
    static func port(_ value: Int?, _ what: String) throws {
        guard let value else { return }
        guard (1...65535).contains(value) else {
            throw ValidationError("\(what) must be a port from 1 to 65535, not \(value).")
        }
    }

    /// -4 and -6: one family, or neither for both. The filter as the engines take it.
    @discardableResult
    static func family(ipv4: Bool, ipv6: Bool) throws -> Family? {
        if ipv4 && ipv6 { throw ValidationError("-4 and -6 exclude each other: give one of them, or neither for both.") }
        return ipv4 ? .ipv4 : ipv6 ? .ipv6 : nil
    }

    /// `-p`'s process ids: each from 1 to the largest Linux gives. The values as the engines
    /// take them.
    @discardableResult
    static func pids(_ values: [Int]) throws -> [Int32] {
        try values.map { pid in
            guard pid > 0 else { throw ValidationError("A process id must be positive, not \(pid).") }
            guard pid <= largestPID else {
                throw ValidationError("A process id must be at most \(largestPID) (the largest Linux gives), not \(pid).")
            }
            return Int32(pid)
        }
    }

    /// A path (or a name) given to `option`, when given: not empty, which would otherwise
    /// mean the current directory, the root cgroup or nothing at all.
    static func notEmpty(_ value: String?, _ option: String, _ what: String = "a path") throws {
        if value?.isEmpty == true { throw ValidationError("\(option) needs \(what), not an empty string.") }
    }
}
