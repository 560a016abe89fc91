import FoundationEssentials // Data's base64 decoding only

/// The bytes of a compiled BPF ELF object, as embedded into the binary at build time.
public struct BPFObjectImage: Sendable {
    public let name: String
    public let bytes: [UInt8]

    public init(name: String, bytes: [UInt8]) {
        self.name = name
        self.bytes = bytes
    }

    /// For generated code: the object as base64 text (an array literal is slow to type-check).
    public init(name: String, base64: String) {
        guard let data = Data(base64Encoded: base64) else {
            preconditionFailure("embedded BPF object '\(name)' is not valid base64: the build is broken")
        }
        self.init(name: name, bytes: [UInt8](data))
    }
}
