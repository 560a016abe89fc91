import BPF

/// A failure the user can act on: what is wrong and what to do, without a stack trace.
public struct NetacctError: UserFacingError {
    public var message: String
    public var kind: ErrorKind
    public init(_ message: String, kind: ErrorKind = .badInput) {
        self.message = message
        self.kind = kind
    }
    public var description: String { message }
}
