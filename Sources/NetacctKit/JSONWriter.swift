/// Writes JSON text, as bytes, in the order it is told (the documented key order of `--json`
/// and of the daemon's replies). `encode(_:)` and `fields(of:)` write `Encodable` values the
/// same way (JSONEncoding.swift).
public struct JSONWriter {
    public init(capacity: Int = 1 << 12) { buffer = TextBuffer(capacity: capacity) }

    /// A writer for more fields of an object whose first ones are already written elsewhere
    /// (its text begins with a comma).
    public init(continuing: Bool) {
        self.init(capacity: 256)
        needsComma = continuing
    }

    var buffer: TextBuffer
    var needsComma = false

    public var bytes: [UInt8] { buffer.bytes }
    public var text: String { String(decoding: buffer.bytes, as: UTF8.self) }

    /// Opens an object ("{") or an array ("["), as a value of its container.
    public mutating func begin(_ bracket: StaticString) {
        if needsComma { buffer.bytes.append(UInt8(ascii: ",")) }
        buffer.append(bracket)
        needsComma = false
    }

    public mutating func end(_ bracket: StaticString) {
        buffer.append(bracket)
        needsComma = true
    }

    public mutating func key(_ name: String) {
        if needsComma { buffer.bytes.append(UInt8(ascii: ",")) }
        buffer.jsonString(name)
        buffer.bytes.append(UInt8(ascii: ":"))
        needsComma = false
    }

    /// A value already written as JSON text (a number with its decimals, say), as it is.
    public mutating func raw(_ json: String) { value { $0.append(json) } }
    public mutating func string(_ text: String) { value { $0.jsonString(text) } }
    public mutating func bool(_ flag: Bool) { value { $0.append(flag ? "true" as StaticString : "false") } }
    public mutating func null() { value { $0.append("null") } }
    public mutating func number(_ integer: some BinaryInteger) {
        value {
            if integer < 0 { $0.bytes.append(UInt8(ascii: "-")) }
            $0.append(UInt64(integer.magnitude))
        }
    }

    /// A field whose value is already JSON text (`raw`).
    public mutating func field(_ name: String, number: String) {
        key(name)
        raw(number)
    }

    public mutating func field(_ name: String, number: some BinaryInteger) {
        key(name)
        self.number(number)
    }

    /// A string field; nil is written `null`.
    public mutating func field(_ name: String, string: String?) {
        key(name)
        if let string { self.string(string) } else { null() }
    }

    public mutating func field(_ name: String, bool: Bool) {
        key(name)
        self.bool(bool)
    }

    /// Ends the text with a newline: a JSON line.
    public mutating func newline() { buffer.bytes.append(UInt8(ascii: "\n")) }

    private mutating func value(_ write: (inout TextBuffer) -> Void) {
        if needsComma { buffer.bytes.append(UInt8(ascii: ",")) }
        write(&buffer)
        needsComma = true
    }
}
