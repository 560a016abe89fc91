/// The name of a program, a map or a read-only global of an object, as the code generated
/// with the embedded object lists them (`BPFObjects.<Object>.Program`, `.Map`, `.Global`):
/// a misspelt name does not compile, instead of failing at load.
public protocol BPFProgramName: RawRepresentable, Sendable where RawValue == String {}
public protocol BPFMapName: RawRepresentable, Sendable where RawValue == String {}
public protocol BPFGlobalName: RawRepresentable, Sendable where RawValue == String {}

extension BPFObject {
    public func program(_ name: some BPFProgramName) throws -> Program { try program(name.rawValue) }

    public func setMaxEntries(_ map: some BPFMapName, to count: UInt32) throws {
        try setMaxEntries(map.rawValue, to: count)
    }

    public func setReadOnlyGlobal<T: BitwiseCopyable>(_ global: some BPFGlobalName, to value: T) throws {
        try setReadOnlyGlobal(global.rawValue, to: value)
    }

    public func setReadOnlyGlobal(_ global: some BPFGlobalName, bytes: UnsafeRawBufferPointer) throws {
        try setReadOnlyGlobal(global.rawValue, bytes: bytes)
    }

    public func setReadOnlyGlobal<Element: BitwiseCopyable>(_ global: some BPFGlobalName, elements: [Element]) throws {
        try setReadOnlyGlobal(global.rawValue, elements: elements)
    }
}

extension Map {
    public init(_ object: BPFObject, name: some BPFMapName) throws { try self.init(object, name: name.rawValue) }
}

extension PerCPUMap {
    public init(_ object: BPFObject, name: some BPFMapName) throws { try self.init(object, name: name.rawValue) }
}

extension QueueMap {
    public init(_ object: BPFObject, name: some BPFMapName) throws { try self.init(object, name: name.rawValue) }
}

extension MappedArray {
    public convenience init(_ object: BPFObject, name: some BPFMapName) throws { try self.init(object, name: name.rawValue) }
}

extension RingBuffer {
    public convenience init(_ object: BPFObject, name: some BPFMapName, handler: ((Record) -> Void)? = nil) throws {
        try self.init(object, name: name.rawValue, handler: handler)
    }
}
