/// Writes the Prometheus text exposition format (version 0.0.4): a metric family's `# HELP`
/// and `# TYPE` lines, then its samples, escaped as the format says (label values: backslash,
/// double quote, newline; help: backslash, newline). Families must be written whole, one after
/// the other; a counter's name ends in `_total`, which the caller writes.
struct PrometheusText {
    enum Kind: String { case counter, gauge, histogram }
    private(set) var bytes: [UInt8] = []

    init(capacity: Int = 1 << 16) { bytes.reserveCapacity(capacity) }

    mutating func family(_ name: String, _ kind: Kind, help: String) {
        append("# HELP \(name) ")
        escape(help, quote: false)
        append("\n# TYPE \(name) \(kind.rawValue)\n")
    }

    mutating func sample(_ name: String, _ value: UInt64) { sample(name, [], value) }
    mutating func sample(_ name: String, _ value: Double) { sample(name, [], value) }

    mutating func sample(_ name: String, _ labels: [(String, String)], _ value: UInt64) {
        sampleHead(name, labels)
        append(String(value))
        bytes.append(0x0A)
    }

    mutating func sample(_ name: String, _ labels: [(String, String)], _ value: Double) {
        sampleHead(name, labels)
        append(value.isFinite ? "\(value)" : (value.isNaN ? "NaN" : (value > 0 ? "+Inf" : "-Inf")))
        bytes.append(0x0A)
    }

    /// A histogram's samples: a `_bucket` per bound (`le` in the family's unit, the count up to
    /// it), `+Inf` (every count), `_sum` and `_count`.
    mutating func histogram(_ name: String, _ labels: [(String, String)], buckets: [(le: Double, cumulative: UInt64)], count: UInt64, sum: Double) {
        for bucket in buckets { sample(name + "_bucket", labels + [("le", "\(bucket.le)")], bucket.cumulative) }
        sample(name + "_bucket", labels + [("le", "+Inf")], count)
        sample(name + "_sum", labels, sum)
        sample(name + "_count", labels, count)
    }

    private mutating func sampleHead(_ name: String, _ labels: [(String, String)]) {
        append(name)
        if !labels.isEmpty {
            bytes.append(UInt8(ascii: "{"))
            write(labels)
            bytes.append(UInt8(ascii: "}"))
        }
        bytes.append(UInt8(ascii: " "))
    }

    /// `key="value",…`, escaped, as between a sample's braces.
    private mutating func write(_ labels: [(String, String)]) {
        for (index, (key, value)) in labels.enumerated() {
            if index > 0 { bytes.append(UInt8(ascii: ",")) }
            append(key)
            append("=\"")
            escape(value, quote: true)
            bytes.append(UInt8(ascii: "\""))
        }
    }

    /// A series' labels as one text, as between its sample's braces (the history's `labels`).
    static func labels(_ labels: [(String, String)]) -> String {
        var text = PrometheusText(capacity: 128)
        text.write(labels)
        return String(decoding: text.bytes, as: UTF8.self)
    }

    /// Backslash and newline as `\\` and `\n`, and with `quote` the double quote as `\"`.
    private mutating func escape(_ text: String, quote: Bool) {
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\\"): append("\\\\")
            case UInt8(ascii: "\"") where quote: append("\\\"")
            case 0x0A: append("\\n")
            default: bytes.append(byte)
            }
        }
    }

    private mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }
}
