import Glibc

/// Wall-clock times as the table (local HH:MM:SS, and the local date) and JSON (UTC, RFC 3339
/// with microseconds) show them; the date part is formatted once per second.
public struct Timestamps {
    private var second: Int64 = -1
    private var local: [UInt8] = []
    private var localDay: [UInt8] = []
    private var utcPrefix: [UInt8] = []

    private mutating func update(_ nanoseconds: Int64) {
        let seconds = nanoseconds / 1_000_000_000
        guard seconds != second else { return }
        second = seconds
        var time = time_t(seconds)
        var parts = tm()
        func two(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        localtime_r(&time, &parts)
        local = Array("\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec))".utf8)
        localDay = Array("\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))".utf8)
        gmtime_r(&time, &parts)
        utcPrefix = Array("\(parts.tm_year + 1900)-\(two(parts.tm_mon + 1))-\(two(parts.tm_mday))T\(two(parts.tm_hour)):\(two(parts.tm_min)):\(two(parts.tm_sec)).".utf8)
    }

    public init() {}

    public mutating func localTime(_ nanoseconds: Int64) -> [UInt8] {
        update(nanoseconds)
        return local
    }

    /// The local date, YYYY-MM-DD.
    public mutating func localDate(_ nanoseconds: Int64) -> [UInt8] {
        update(nanoseconds)
        return localDay
    }

    public mutating func utc(_ nanoseconds: Int64, into out: inout TextBuffer) {
        update(nanoseconds)
        out.append(bytes: utcPrefix)
        var micro = UInt64((nanoseconds % 1_000_000_000) / 1000)
        var divisor: UInt64 = 100_000
        while divisor > 0 {
            out.bytes.append(UInt8(ascii: "0") + UInt8(micro / divisor))
            micro %= divisor
            divisor /= 10
        }
        out.append("Z")
    }

    /// CLOCK_REALTIME minus CLOCK_MONOTONIC now, in nanoseconds: added to a time the kernel took
    /// with bpf_ktime_get_ns, it gives nanoseconds since the Unix epoch.
    public static func wallClockOffset() -> Int64 {
        func read(_ clock: clockid_t) -> Int64 {
            var now = timespec()
            clock_gettime(clock, &now)
            return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
        }
        return read(CLOCK_REALTIME) - read(CLOCK_MONOTONIC)
    }
}
