import CLibbpf
import Logging
import Synchronization

/// Routes libbpf's own messages to swift-log, and remembers which program libbpf last said
/// failed to load, so that errors can name it. libbpf has one process-wide print hook, so
/// this is the one place that holds the logger it writes to.
public enum LibbpfLog {
    private struct State {
        var logger: Logger?
        var installed = false
        var failedProgram: String?
        var verifierLastLine: String?
        var inVerifierLog = false
    }
    private static let state = Mutex(State())

    /// Sends libbpf's messages to `logger`: its warnings at `.info`, its info at `.debug` and
    /// its debug output (the verifier's log among them) at `.trace`. Failures reach the user
    /// as `BPFError`s anyway, so libbpf is quiet unless the logger is verbose.
    public static func route(to logger: Logger) {
        state.withLock { $0.logger = logger }
        install()
    }

    static func install() {
        let first = state.withLock { state in
            defer { state.installed = true }
            return !state.installed
        }
        guard first else { return }
        netacct_libbpf_set_log_sink { level, line in
            guard let line else { return }
            LibbpfLog.emit(level: level, text: String(cString: line))
        }
    }

    /// The program libbpf last reported as failing to load, and the verifier's last words.
    static func takeLoadFailure() -> (program: String?, reason: String?) {
        state.withLock { state in
            defer {
                state.failedProgram = nil
                state.verifierLastLine = nil
            }
            return (state.failedProgram, state.verifierLastLine)
        }
    }

    static func emit(level: libbpf_print_level, text: String) {
        let logger = state.withLock { state -> Logger? in
            for line in text.split(separator: "\n") {
                if line.contains("-- BEGIN PROG LOAD LOG --") {
                    state.inVerifierLog = true
                } else if line.contains("-- END PROG LOAD LOG --") {
                    state.inVerifierLog = false
                } else if state.inVerifierLog, !line.hasPrefix("processed "), !line.isEmpty {
                    state.verifierLastLine = String(line)
                }
                // "libbpf: prog 'count_send': failed to load: -13"
                if line.contains("failed to load"), let start = line.firstRange(of: "prog '") {
                    let rest = line[start.upperBound...]
                    if let end = rest.firstIndex(of: "'") { state.failedProgram = String(rest[..<end]) }
                }
            }
            return state.logger
        }
        guard let logger else { return }
        let swiftLevel: Logger.Level
        switch level {
        case LIBBPF_WARN: swiftLevel = .info
        case LIBBPF_INFO: swiftLevel = .debug
        default: swiftLevel = .trace
        }
        logger.log(level: swiftLevel, "\(text)", metadata: ["source": "libbpf"])
    }
}
