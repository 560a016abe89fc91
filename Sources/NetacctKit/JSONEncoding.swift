/// `Encodable` values through `JSONWriter`, streamed: no tree of values is built, each field is
/// written as its `encode(to:)` gives it. Fields come in that order (a synthesized conformance:
/// the order of the declarations), keys in snake_case (`startNs` → `start_ns`: a capital letter
/// becomes `_` and its lower case), `encodeIfPresent` of nil leaves the field out (as
/// synthesized conformances do for optionals) and `encode` of nil writes `null`. A value that
/// asks for a keyed container twice writes one object: that is how a record flattens another
/// into itself. Nested containers (`nestedContainer(keyedBy:forKey:)`) are not supported: a
/// record nests values instead.
extension JSONWriter {
    /// Writes `value` as the next value (of an array, or after `key`).
    public mutating func encode<T: Encodable>(_ value: T) throws {
        try withEncoder { try $0.value(value) }
    }

    /// Writes the fields of `value` (one that encodes as an object) into the object open here.
    public mutating func fields<T: Encodable>(of value: T) throws {
        try withEncoder { encoder in
            encoder.opened = UInt8(ascii: "{")
            try value.encode(to: encoder)
        }
    }

    /// A value written as it is (a number with its decimals, say) when `JSONWriter` encodes it;
    /// other encoders refuse it.
    public struct Raw: Encodable, Sendable {
        public var json: String
        public init(_ json: String) { self.json = json }
        public func encode(to encoder: any Encoder) throws {
            guard let encoder = encoder as? StreamEncoder else {
                throw EncodingError.invalidValue(json, .init(codingPath: encoder.codingPath, debugDescription: "raw JSON needs JSONWriter"))
            }
            encoder.writer.raw(json)
        }
    }

    /// Lends this writer's text to an encoder (moved, not copied) for `body`.
    private mutating func withEncoder(_ body: (StreamEncoder) throws -> Void) throws {
        let encoder = StreamEncoder()
        swap(&self, &encoder.writer)
        defer { swap(&self, &encoder.writer) }
        try body(encoder)
    }

    /// A key converted to snake_case (composed on the stack, appended at once: keys are most
    /// of a reply's text).
    mutating func key(snakeCase name: String) {
        if needsComma { buffer.bytes.append(UInt8(ascii: ",")) }
        needsComma = false
        var name = name
        name.withUTF8 { utf8 in
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 2 * utf8.count + 3) { out in
                out[0] = UInt8(ascii: "\"")
                var end = 1
                for byte in utf8 {
                    if byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") {
                        out[end] = UInt8(ascii: "_")
                        out[end + 1] = byte + 32
                        end += 2
                    } else if byte >= 0x20 && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\") {
                        out[end] = byte
                        end += 1
                    } else {
                        // Not a Swift name: as it is, escaped.
                        buffer.jsonString(String(decoding: utf8, as: UTF8.self))
                        buffer.bytes.append(UInt8(ascii: ":"))
                        return
                    }
                }
                out[end] = UInt8(ascii: "\"")
                out[end + 1] = UInt8(ascii: ":")
                buffer.bytes.append(contentsOf: UnsafeBufferPointer(rebasing: out[..<(end + 2)]))
            }
        }
    }
}

/// The `Encoder` behind `JSONWriter.encode`: one per call, holding the writer meanwhile.
final class StreamEncoder: Encoder {
    @exclusivity(unchecked) var writer = JSONWriter(capacity: 0)
    /// The bracket the value being encoded opened (0: none yet), closed when it is done.
    var opened: UInt8 = 0

    var codingPath: [any CodingKey] { [] }
    var userInfo: [CodingUserInfoKey: Any] { [:] }

    func value<T: Encodable>(_ value: T) throws {
        let outer = opened
        opened = 0
        try value.encode(to: self)
        if opened == UInt8(ascii: "{") { writer.end("}") } else if opened == UInt8(ascii: "[") { writer.end("]") }
        opened = outer
    }

    func container<Key: CodingKey>(keyedBy type: Key.Type) -> KeyedEncodingContainer<Key> {
        open("{")
        return KeyedEncodingContainer(Keyed(encoder: self))
    }

    func unkeyedContainer() -> any UnkeyedEncodingContainer {
        open("[")
        return Values(encoder: self)
    }

    /// Opens the value's object or array, unless it has one open already (flattening).
    private func open(_ bracket: StaticString) {
        guard opened == 0 else { return }
        writer.begin(bracket)
        opened = bracket.utf8Start.pointee
    }

    func singleValueContainer() -> any SingleValueEncodingContainer { Values(encoder: self) }

    func float<F: BinaryFloatingPoint & LosslessStringConvertible>(_ value: F) throws {
        guard value.isFinite else { throw EncodingError.invalidValue(value, .init(codingPath: [], debugDescription: "JSON has no \(value)")) }
        writer.raw(value.description)
    }

    /// An object's fields: the key, then the value.
    struct Keyed<Key: CodingKey>: KeyedEncodingContainerProtocol {
        let encoder: StreamEncoder
        var codingPath: [any CodingKey] { [] }
        func at(_ key: Key) -> Values {
            encoder.writer.key(snakeCase: key.stringValue)
            return Values(encoder: encoder)
        }
        mutating func encodeNil(forKey key: Key) throws { try at(key).encodeNil() }
        mutating func encode(_ value: Bool, forKey key: Key) throws { try at(key).encode(value) }
        mutating func encode(_ value: String, forKey key: Key) throws { try at(key).encode(value) }
        mutating func encode(_ value: Double, forKey key: Key) throws { try at(key).encode(value) }
        mutating func encode(_ value: Float, forKey key: Key) throws { try at(key).encode(value) }
        mutating func encode(_ value: Int, forKey key: Key) throws { try at(key).encode(value) }
        mutating func encode(_ value: Int8, forKey key: Key) throws { try at(key).encode(value) }
        mutating func encode(_ value: Int16, forKey key: Key) throws { try at(key).encode(value) }
        mutating func encode(_ value: Int32, forKey key: Key) throws { try at(key).encode(value) }
        mutating func encode(_ value: Int64, forKey key: Key) throws { try at(key).encode(value) }
        mutating func encode(_ value: UInt, forKey key: Key) throws { try at(key).encode(value) }
        mutating func encode(_ value: UInt8, forKey key: Key) throws { try at(key).encode(value) }
        mutating func encode(_ value: UInt16, forKey key: Key) throws { try at(key).encode(value) }
        mutating func encode(_ value: UInt32, forKey key: Key) throws { try at(key).encode(value) }
        mutating func encode(_ value: UInt64, forKey key: Key) throws { try at(key).encode(value) }
        mutating func encode<T: Encodable>(_ value: T, forKey key: Key) throws { try at(key).encode(value) }
        mutating func nestedContainer<K: CodingKey>(keyedBy: K.Type, forKey: Key) -> KeyedEncodingContainer<K> { preconditionFailure(streams) }
        mutating func nestedUnkeyedContainer(forKey key: Key) -> any UnkeyedEncodingContainer { preconditionFailure(streams) }
        mutating func superEncoder() -> any Encoder { preconditionFailure(streams) }
        mutating func superEncoder(forKey key: Key) -> any Encoder { preconditionFailure(streams) }
    }

    /// An array's elements, or a single value (the writer places the commas).
    struct Values: UnkeyedEncodingContainer, SingleValueEncodingContainer {
        let encoder: StreamEncoder
        var codingPath: [any CodingKey] { [] }
        var count: Int { 0 }
        func encodeNil() throws { encoder.writer.null() }
        func encode(_ value: Bool) throws { encoder.writer.bool(value) }
        func encode(_ value: String) throws { encoder.writer.string(value) }
        func encode(_ value: Double) throws { try encoder.float(value) }
        func encode(_ value: Float) throws { try encoder.float(value) }
        func encode(_ value: Int) throws { encoder.writer.number(value) }
        func encode(_ value: Int8) throws { encoder.writer.number(value) }
        func encode(_ value: Int16) throws { encoder.writer.number(value) }
        func encode(_ value: Int32) throws { encoder.writer.number(value) }
        func encode(_ value: Int64) throws { encoder.writer.number(value) }
        func encode(_ value: UInt) throws { encoder.writer.number(value) }
        func encode(_ value: UInt8) throws { encoder.writer.number(value) }
        func encode(_ value: UInt16) throws { encoder.writer.number(value) }
        func encode(_ value: UInt32) throws { encoder.writer.number(value) }
        func encode(_ value: UInt64) throws { encoder.writer.number(value) }
        func encode<T: Encodable>(_ value: T) throws { try encoder.value(value) }
        func nestedContainer<K: CodingKey>(keyedBy: K.Type) -> KeyedEncodingContainer<K> { preconditionFailure(streams) }
        func nestedUnkeyedContainer() -> any UnkeyedEncodingContainer { preconditionFailure(streams) }
        func superEncoder() -> any Encoder { preconditionFailure(streams) }
    }
}

private let streams = "JSONWriter streams its values: a record nests values, not containers or super encoders"
