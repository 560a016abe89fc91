/// Writes JSON text in the order it is told (the documented key order of `--json`).
public struct JSONWriter {
    public init() {}

    public private(set) var text = ""
    private var needsComma = false

    /// Opens an object ("{") or an array ("["), as a value of its container.
    public mutating func begin(_ bracket: String) {
        if needsComma { text += "," }
        text += bracket
        needsComma = false
    }

    public mutating func end(_ bracket: String) {
        text += bracket
        needsComma = true
    }

    public mutating func key(_ name: String) {
        if needsComma { text += "," }
        text += "\"\(name)\":"
        needsComma = false
    }

    /// A field whose value is already JSON (a number, true, false or null).
    public mutating func field(_ name: String, number: String) {
        key(name)
        text += number
        needsComma = true
    }

    public mutating func field(_ name: String, string: String) {
        key(name)
        text += "\""
        for scalar in string.unicodeScalars {
            switch scalar {
            case "\"": text += "\\\""
            case "\\": text += "\\\\"
            case "\n": text += "\\n"
            case "\r": text += "\\r"
            case "\t": text += "\\t"
            case _ where scalar.value < 0x20:
                let hex = String(scalar.value, radix: 16)
                text += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: text.unicodeScalars.append(scalar)
            }
        }
        text += "\""
        needsComma = true
    }
}
