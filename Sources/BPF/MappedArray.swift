import CLibbpf
import Glibc

/// A `BPF_MAP_TYPE_ARRAY` created with `BPF_F_MMAPABLE`, mapped read-only into this
/// process: reading an element is a memory load, with no system call, while the BPF
/// programs keep writing. Elements may change between two reads; what a reader sees of one
/// element is only as consistent as the BPF side's write order makes it.
public final class MappedArray<Value: BitwiseCopyable> {
    public let count: Int
    public let subject: String
    private let base: UnsafeRawPointer
    private let length: Int
    /// The kernel rounds each value up to 8 bytes.
    private let stride: Int

    public init(_ object: BPFObject, name: String) throws {
        let handle = try MapHandle(object: object, name: name, keySize: 4, valueSize: MemoryLayout<Value>.size)
        subject = handle.subject
        guard bpf_map__type(handle.pointer) == BPF_MAP_TYPE_ARRAY,
              bpf_map__map_flags(handle.pointer) & UInt32(BPF_F_MMAPABLE) != 0 else {
            throw BPFError("mapping", subject, errno: .invalidArgument, hint: "Only an array map created with BPF_F_MMAPABLE can be mapped")
        }
        let fd = try handle.fileDescriptor()
        count = Int(bpf_map__max_entries(handle.pointer))
        stride = (MemoryLayout<Value>.size + 7) & ~7
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        length = (count * stride + page - 1) / page * page
        guard let address = mmap(nil, length, PROT_READ, MAP_SHARED, fd, 0), address != MAP_FAILED else {
            throw BPFError("mapping", subject, code: -Glibc.errno)
        }
        base = UnsafeRawPointer(address)
    }

    deinit {
        munmap(UnsafeMutableRawPointer(mutating: base), length)
    }

    /// The element's current value.
    public subscript(index: Int) -> Value {
        precondition(index >= 0 && index < count, "index \(index) out of \(subject)'s \(count) elements")
        return base.loadUnaligned(fromByteOffset: index * stride, as: Value.self)
    }

    /// Reads one field of an element without copying the whole element (e.g. to skip free ones).
    public func field<Field: BitwiseCopyable>(_ index: Int, at offset: Int, as _: Field.Type) -> Field {
        precondition(index >= 0 && index < count && offset + MemoryLayout<Field>.size <= stride)
        return base.loadUnaligned(fromByteOffset: index * stride + offset, as: Field.self)
    }
}
