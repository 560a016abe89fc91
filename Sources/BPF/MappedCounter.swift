import CLibbpf
import Glibc

/// A `UInt64` that BPF programs and user space both change with atomic adds: element 0 of a
/// one-element `BPF_MAP_TYPE_ARRAY` created with `BPF_F_MMAPABLE`, mapped read-write for the
/// counter's life (one page). A program counts with `__sync_fetch_and_add` on the value it
/// looks up; user space adds here, through the same memory, and neither loses the other's.
public final class MappedCounter {
    public let subject: String
    private let mapping: UnsafeMutableRawPointer
    private let length: Int

    public init(_ object: BPFObject, name: String) throws {
        let handle = try MapHandle(object: object, name: name, keySize: 4, valueSize: 8)
        subject = handle.subject
        guard bpf_map__type(handle.pointer) == BPF_MAP_TYPE_ARRAY,
              bpf_map__map_flags(handle.pointer) & UInt32(BPF_F_MMAPABLE) != 0 else {
            throw BPFError("mapping", subject, errno: .invalidArgument, hint: "Only an array map created with BPF_F_MMAPABLE can be mapped")
        }
        let fd = try handle.fileDescriptor()
        length = Int(sysconf(Int32(_SC_PAGESIZE)))
        guard let mapping = mmap(nil, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), mapping != MAP_FAILED else {
            throw BPFError("mapping", subject, code: -Glibc.errno)
        }
        self.mapping = mapping
    }

    deinit { munmap(mapping, length) }

    public var value: UInt64 { netacct_atomic_load_u64(mapping) }

    /// Adds `delta` (negative to subtract), atomically with the programs' own adds.
    public func add(_ delta: Int64) {
        netacct_atomic_add_u64(mapping, UInt64(bitPattern: delta))
    }
}
