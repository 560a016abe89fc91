import BPF
import Logging

/// Logging for a netacct command: swift-log to standard error, and libbpf's own messages
/// through it (quiet unless verbose; its errors reach the user as `BPFError`s anyway).
public enum NetacctLogging {
    /// Bootstraps the logging system once per process and returns a logger for `label`.
    public static func bootstrap(_ label: String, verbose: Bool) -> Logger {
        let level: Logger.Level = verbose ? .trace : .notice
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        LibbpfLog.route(to: Logger(label: "libbpf"))
        return Logger(label: label)
    }
}
