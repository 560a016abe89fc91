import Logging

/// Log lines that clients can cause over and over (refused connections, dropped clients,
/// losses that keep growing): each kind at most once per interval, the next one saying how
/// many were held back, so that a flood of clients cannot flood the log.
/// Used on the daemon's event loop only.
final class RateLimitedLog {
    private struct Kind {
        var lastLogged: Double
        var suppressed: Int
    }

    let logger: Logger
    let interval: Double
    private let clock: () -> Double
    private var kinds: [String: Kind] = [:]

    init(logger: Logger, interval: Double = 10, clock: @escaping () -> Double) {
        self.logger = logger
        self.interval = interval
        self.clock = clock
    }

    /// Logs `message` at `level` unless a line of the same `kind` was logged less than
    /// `interval` seconds ago (then only counts it).
    func log(_ level: Logger.Level, _ kind: String, _ message: @autoclosure () -> String,
             metadata: @autoclosure () -> Logger.Metadata = [:]) {
        let now = clock()
        if var entry = kinds[kind], now - entry.lastLogged < interval {
            entry.suppressed += 1
            kinds[kind] = entry
            return
        }
        let suppressed = kinds[kind]?.suppressed ?? 0
        kinds[kind] = Kind(lastLogged: now, suppressed: 0)
        var metadata = metadata()
        if suppressed > 0 { metadata["similar_since_last_line"] = "\(suppressed)" }
        logger.log(level: level, "\(message())", metadata: metadata)
    }
}
