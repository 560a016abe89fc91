import Glibc
import NetacctKit

/// The times `netacct history` takes, in local time as atop's -b and -e do: `03:12`,
/// `03:12:30` (today), `2026-12-07 03:12`, `2026-12-07T03:12:30`, `2026-12-07` (its start), or
/// `@SECONDS[.FRACTION]` since the epoch; and durations: `90`, `90s`, `10m`, `1h30m`, `2d`.
public enum HistoryTime {
    public static func now() -> Int64 {
        var time = timespec()
        clock_gettime(CLOCK_REALTIME, &time)
        return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
    }

    /// Nanoseconds since the epoch of a moment written as above (`now` gives today's date).
    public static func moment(_ text: String, now: Int64 = now()) throws -> Int64 {
        if text.hasPrefix("@") {
            // @SECONDS[.FRACTION], exact to the nanosecond.
            let parts = text.dropFirst().split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
            if let seconds = Int64(parts[0]), seconds >= 0, seconds < 1 << 33,
               parts.count == 1 || (1...9).contains(parts[1].count) && parts[1].allSatisfy(\.isWholeNumber) {
                let fraction = parts.count == 2 ? Int64(parts[1] + String(repeating: "0", count: 9 - parts[1].count))! : 0
                return seconds * 1_000_000_000 + fraction
            }
        }
        let bad = NetacctError("'\(text)' is not a time: give HH:MM[:SS] (today), YYYY-MM-DD [HH:MM[:SS]] or @SECONDS[.FRACTION].")
        var parts = text.split(whereSeparator: { $0 == " " || $0 == "T" }).map(String.init)
        var day = tm()
        var seconds = time_t(now / 1_000_000_000)
        localtime_r(&seconds, &day)
        (day.tm_hour, day.tm_min, day.tm_sec) = (0, 0, 0)
        if let first = parts.first, first.contains("-") {
            let date = first.split(separator: "-").map { Int32($0) }
            guard date.count == 3, let year = date[0], let month = date[1], let dayOfMonth = date[2],
                  (1...12).contains(month), (1...31).contains(dayOfMonth) else { throw bad }
            (day.tm_year, day.tm_mon, day.tm_mday) = (year - 1900, month - 1, dayOfMonth)
            parts.removeFirst()
        }
        if let clock = parts.first {
            let fields = clock.split(separator: ":", omittingEmptySubsequences: false).map { Int32($0) }
            guard parts.count == 1, (2...3).contains(fields.count), !fields.contains(nil),
                  (0...23).contains(fields[0]!), (0...59).contains(fields[1]!), (0...60).contains(fields.count == 3 ? fields[2]! : 0) else { throw bad }
            (day.tm_hour, day.tm_min, day.tm_sec) = (fields[0]!, fields[1]!, fields.count == 3 ? fields[2]! : 0)
        } else if text.isEmpty {
            throw bad
        }
        day.tm_isdst = -1 // whichever is in force on that day
        let asked = (day.tm_year, day.tm_mon, day.tm_mday)
        let result = mktime(&day)
        // mktime moves 02-31 to March: a date that is not one is refused. Nanoseconds since
        // the epoch fit in 64 bits from 1678 to 2262.
        guard result != -1, (day.tm_year, day.tm_mon, day.tm_mday) == asked,
              (-9_223_372_035...9_223_372_035).contains(Int64(result)) else { throw bad }
        return Int64(result) * 1_000_000_000
    }

    /// Nanoseconds in a duration written as above.
    public static func duration(_ text: String) throws -> Int64 {
        let bad = NetacctError("'\(text)' is not a duration: give seconds, or a number with s, m, h or d (90s, 10m, 1h30m, 2d).")
        var total: Int64 = 0, number: Int64? = nil
        for character in text {
            if let digit = character.wholeNumberValue {
                let (scaled, overflow) = (number ?? 0).multipliedReportingOverflow(by: 10)
                guard !overflow else { throw bad }
                number = scaled + Int64(digit)
                continue
            }
            let unit: Int64 = switch character {
            case "s": 1
            case "m": 60
            case "h": 3600
            case "d": 86_400
            default: throw bad
            }
            guard let value = number else { throw bad }
            let (scaled, overflow) = value.multipliedReportingOverflow(by: unit)
            let (sum, overflowed) = total.addingReportingOverflow(scaled)
            guard !overflow, !overflowed else { throw bad }
            total = sum
            number = nil
        }
        if let number {
            guard total == 0 else { throw bad } // 1h30: minutes or seconds?
            total = number
        }
        guard total > 0, total < 100 * 365 * 86_400 else { throw bad }
        return total * 1_000_000_000
    }

    /// `HH:MM:SS` of a moment in local time; with `withDate`, after its date (YYYY-MM-DD).
    public static func describe(_ nanoseconds: Int64, withDate: Bool) -> String {
        var stamps = Timestamps()
        let clock = String(decoding: stamps.localTime(nanoseconds), as: UTF8.self)
        return withDate ? String(decoding: stamps.localDate(nanoseconds), as: UTF8.self) + " " + clock : clock
    }

    /// Whether two moments fall on one local day.
    static func sameDay(_ a: Int64, _ b: Int64) -> Bool {
        var stamps = Timestamps()
        return stamps.localDate(a) == stamps.localDate(b)
    }
}
