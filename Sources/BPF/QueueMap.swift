import CLibbpf
import Glibc

/// A `BPF_MAP_TYPE_QUEUE` or `_STACK` (Linux >= 4.20): values without keys, first in, first
/// out (a stack: last in, first out). Programs pop with `bpf_map_pop_elem` and push with
/// `bpf_map_push_elem`; user space pushes with an update and pops with a lookup-and-delete.
public struct QueueMap<Value: BitwiseCopyable> {
    let handle: MapHandle

    public init(_ object: BPFObject, name: String) throws {
        handle = try MapHandle(object: object, name: name, .queue, keySize: 0, valueSize: MemoryLayout<Value>.size)
    }

    public var name: String { handle.name }

    /// Adds `value` at the tail; throws (E2BIG) when the queue is full.
    public func push(_ value: Value) throws {
        var value = value
        let result = bpf_map_update_elem(try handle.fileDescriptor(), nil, &value, 0)
        guard result == 0 else { throw BPFError("pushing onto", handle.subject, code: result) }
    }

    /// Takes the value at the head; nil when the queue is empty.
    public func pop() throws -> Value? {
        try withUnsafeTemporaryAllocation(of: Value.self, capacity: 1) { value in
            let result = bpf_map_lookup_and_delete_elem(try handle.fileDescriptor(), nil, value.baseAddress!)
            if result == 0 { return value[0] }
            if -result == ENOENT { return nil }
            throw BPFError("popping from", handle.subject, code: result)
        }
    }
}
