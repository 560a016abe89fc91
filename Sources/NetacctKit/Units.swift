import FoundationEssentials
import Glibc

/// Numbers as netacct's tables show them: bytes in binary units, counts in decimal units,
/// fixed decimals exactly as printf prints them, columns padded, the time of day.
public enum Units {
    public static func pad(_ text: String, _ width: Int, left: Bool = false) -> String {
        let padding = String(repeating: " ", count: max(0, width - text.count))
        return left ? text + padding : padding + text
    }

    /// Bytes in binary units: 512B, 1.5K, 20M, 3.1G.
    public static func bytes(_ value: UInt64) -> String {
        scaled(value, base: 1024, suffixes: ["B", "K", "M", "G", "T", "P"])
    }

    /// Counts in decimal units: 999, 1.2k, 35M.
    public static func count(_ value: UInt64) -> String {
        scaled(value, base: 1000, suffixes: ["", "k", "M", "G", "T", "P"])
    }

    public static func scaled(_ value: UInt64, base: Double, suffixes: [String]) -> String {
        var amount = Double(value)
        var index = 0
        while amount >= base && index < suffixes.count - 1 {
            amount /= base
            index += 1
        }
        if index == 0 { return "\(value)\(suffixes[0])" }
        let text = fixed(amount, decimals: amount < 10 ? 1 : 0)
        return text + suffixes[index]
    }

    public static func seconds(_ value: Double) -> String { fixed(value, decimals: 2) + "s" }

    /// `value` with `decimals` digits after the point, exactly as printf's %.Nf prints it.
    public static func fixed(_ value: Double, decimals: Int) -> String {
        var buffer = [CChar](repeating: 0, count: 64)
        let written = withVaList([value]) { vsnprintf(&buffer, buffer.count, "%.\(decimals)f", $0) }
        guard written > 0, Int(written) < buffer.count else { return "\(value)" }
        return String(decoding: buffer.prefix(Int(written)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// The local wall-clock time of day, HH:MM:SS (as top's header shows it).
    public static func clock(_ date: Date) -> String {
        var seconds = time_t(date.timeIntervalSince1970.rounded(.down))
        var local = tm()
        guard localtime_r(&seconds, &local) != nil else { return "--:--:--" }
        func twoDigits(_ value: Int32) -> String { value < 10 ? "0\(value)" : "\(value)" }
        return "\(twoDigits(local.tm_hour)):\(twoDigits(local.tm_min)):\(twoDigits(local.tm_sec))"
    }

}
