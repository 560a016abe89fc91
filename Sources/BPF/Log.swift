import CLibbpf
import Logging
import Synchronization

/// Routes libbpf's own messages to swift-log. libbpf has one process-wide print hook, so
/// this is the one place that holds the logger it writes to.
public enum LibbpfLog {
    private static let logger = Mutex<Logger?>(nil)

    /// Sends libbpf's messages to `logger`: its warnings at `.info`, its info at `.debug` and
    /// its debug output (the verifier's log among them) at `.trace`. Failures reach the user
    /// as `BPFError`s anyway, so libbpf is quiet unless the logger is verbose.
    public static func route(to logger: Logger) {
        self.logger.withLock { $0 = logger }
        netacct_libbpf_set_log_sink { level, line in
            guard let line else { return }
            LibbpfLog.emit(level: level, line: String(cString: line))
        }
    }

    /// Silences libbpf.
    public static func silence() {
        logger.withLock { $0 = nil }
        netacct_libbpf_set_log_sink(nil)
    }

    static func emit(level: libbpf_print_level, line: String) {
        guard let logger = logger.withLock({ $0 }) else { return }
        let swiftLevel: Logger.Level
        switch level {
        case LIBBPF_WARN: swiftLevel = .info
        case LIBBPF_INFO: swiftLevel = .debug
        default: swiftLevel = .trace
        }
        logger.log(level: swiftLevel, "\(line)", metadata: ["source": "libbpf"])
    }
}
