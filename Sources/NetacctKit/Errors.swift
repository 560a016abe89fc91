/// A failure the user can act on: what is wrong and what to do, without a stack trace.
public struct NetacctError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

