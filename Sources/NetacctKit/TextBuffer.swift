import Glibc

/// Output text as bytes, appended without intermediate strings: at tens of thousands of events
/// a second, formatting is most of what a tool does in user space.
public struct TextBuffer {
    public var bytes: [UInt8] = []

    public init(capacity: Int = 1 << 16) { bytes.reserveCapacity(capacity) }

    public mutating func append(_ text: StaticString) {
        text.withUTF8Buffer { bytes.append(contentsOf: $0) }
    }

    public mutating func append(_ text: String) {
        var text = text
        text.withUTF8 { bytes.append(contentsOf: $0) }
    }

    public mutating func append(bytes other: [UInt8]) { bytes.append(contentsOf: other) }

    public mutating func append(_ value: UInt64) {
        var divisor: UInt64 = 1
        while value / divisor >= 10 { divisor *= 10 }
        var rest = value
        while divisor > 0 {
            bytes.append(UInt8(ascii: "0") + UInt8(rest / divisor))
            rest %= divisor
            divisor /= 10
        }
    }

    public mutating func append(_ value: Int32) {
        if value < 0 { bytes.append(UInt8(ascii: "-")) }
        append(UInt64(value.magnitude))
    }

    /// `value` / 10^decimals with exactly `decimals` digits after the point (no floating point).
    public mutating func append(_ value: UInt64, decimals: Int) {
        var scale: UInt64 = 1
        for _ in 0..<decimals { scale *= 10 }
        append(value / scale)
        bytes.append(UInt8(ascii: "."))
        var fraction = value % scale
        for _ in 0..<decimals {
            scale /= 10
            bytes.append(UInt8(ascii: "0") + UInt8(fraction / scale))
            fraction %= scale
        }
    }

    public mutating func spaces(_ count: Int) {
        if count > 0 { bytes.append(contentsOf: repeatElement(UInt8(ascii: " "), count: count)) }
    }

    /// Appends what `body` appends, padded with spaces to `width` (on the left unless `left`).
    public mutating func padded(_ width: Int, left: Bool = false, _ body: (inout TextBuffer) -> Void) {
        let start = bytes.count
        body(&self)
        let written = bytes.count - start
        guard written < width else { return }
        if left {
            spaces(width - written)
        } else {
            bytes.insert(contentsOf: repeatElement(UInt8(ascii: " "), count: width - written), at: start)
        }
    }

    /// A JSON string of raw bytes (a comm: any bytes the task set), valid UTF-8 whatever they are.
    public mutating func jsonString(_ raw: UnsafeRawBufferPointer) {
        bytes.append(UInt8(ascii: "\""))
        if raw.allSatisfy({ $0 < 0x80 }) {
            for byte in raw { escape(byte) }
        } else {
            for byte in String(decoding: raw, as: UTF8.self).utf8 { escape(byte) }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// A JSON string of text.
    public mutating func jsonString(_ text: String) {
        bytes.append(UInt8(ascii: "\""))
        for byte in text.utf8 { escape(byte) }
        bytes.append(UInt8(ascii: "\""))
    }

    private mutating func escape(_ byte: UInt8) {
        switch byte {
        case UInt8(ascii: "\""): append("\\\"")
        case UInt8(ascii: "\\"): append("\\\\")
        case 0x0A: append("\\n")
        case 0x0D: append("\\r")
        case 0x09: append("\\t")
        case 0..<0x20:
            let hex: [UInt8] = Array("0123456789abcdef".utf8)
            append("\\u00")
            bytes.append(hex[Int(byte >> 4)])
            bytes.append(hex[Int(byte & 0xF)])
        default: bytes.append(byte)
        }
    }

    /// Two JSON fields, an address and its port: `,"<addressKey>":"<address>","<portKey>":<port>`
    /// (the address as `address(_:ipv6:)` writes it).
    public mutating func jsonEndpoint<Address>(_ addressKey: StaticString, _ address: Address, _ portKey: StaticString,
                                               _ port: UInt16, ipv6: Bool) {
        append(",\"")
        append(addressKey)
        append("\":\"")
        withUnsafeBytes(of: address) { self.address($0, ipv6: ipv6) }
        append("\",\"")
        append(portKey)
        append("\":")
        append(UInt64(port))
    }

    /// An address as inet_ntop writes it (IPv4 dotted quad, IPv6 RFC 5952).
    public mutating func address(_ raw: UnsafeRawBufferPointer, ipv6: Bool) {
        if !ipv6 {
            for index in 0..<4 {
                if index > 0 { bytes.append(UInt8(ascii: ".")) }
                append(UInt64(raw[index]))
            }
            return
        }
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: Int(INET6_ADDRSTRLEN)) { text in
            guard inet_ntop(AF_INET6, raw.baseAddress, text.baseAddress, socklen_t(INET6_ADDRSTRLEN)) != nil else {
                bytes.append(UInt8(ascii: "?"))
                return
            }
            var index = 0
            while text[index] != 0 {
                bytes.append(UInt8(bitPattern: text[index]))
                index += 1
            }
        }
    }
}
