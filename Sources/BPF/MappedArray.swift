import CLibbpf
import Glibc

/// A `BPF_MAP_TYPE_ARRAY` created with `BPF_F_MMAPABLE`, read through the kernel's memory
/// mapping of it: reading an element is a memory load, not a system call, while the BPF
/// programs keep writing. Elements may change while they are read; what a reader sees of one
/// element is only as consistent as the BPF side's write order makes it.
///
/// The array is mapped, read-only, only while `forEach` runs: the kernel maps every page of
/// it at `mmap` time, so a mapping kept open would count the whole array in this process's
/// resident memory between reads. One mapping per read: its cost is per page, not per call.
public final class MappedArray<Value: BitwiseCopyable> {
    public let count: Int
    public let subject: String
    private let fd: Int32
    /// The kernel rounds each value up to 8 bytes.
    private let stride: Int
    /// The array's bytes, whole pages.
    private let length: Int

    /// One element, valid only during the `forEach` call that passes it.
    public struct Element {
        public let index: Int
        private let address: UnsafeRawPointer

        init(index: Int, address: UnsafeRawPointer) {
            self.index = index
            self.address = address
        }

        /// The element's current value.
        public var value: Value { address.loadUnaligned(as: Value.self) }

        /// One field, without copying the whole element (e.g. to skip free ones).
        public func field<Field: BitwiseCopyable>(at offset: Int, as _: Field.Type) -> Field {
            precondition(offset >= 0 && offset + MemoryLayout<Field>.size <= MemoryLayout<Value>.size)
            return address.loadUnaligned(fromByteOffset: offset, as: Field.self)
        }
    }

    public init(_ object: BPFObject, name: String) throws {
        let handle = try MapHandle(object: object, name: name, .mapped, keySize: 4, valueSize: MemoryLayout<Value>.size)
        subject = handle.subject
        guard bpf_map__map_flags(handle.pointer) & UInt32(BPF_F_MMAPABLE) != 0 else {
            throw BPFError("typing", subject, errno: .invalidArgument,
                           hint: "The kernel has it as an array map without BPF_F_MMAPABLE, which MappedArray needs (its map_flags)")
        }
        fd = try handle.fileDescriptor()
        count = Int(bpf_map__max_entries(handle.pointer))
        stride = (MemoryLayout<Value>.size + 7) & ~7
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        length = (count * stride + page - 1) / page * page
    }

    /// Calls `body` with every element, in index order.
    public func forEach(_ body: (Element) throws -> Void) throws {
        guard let mapping = mmap(nil, length, PROT_READ, MAP_SHARED, fd, 0), mapping != MAP_FAILED else {
            throw BPFError("mapping", subject, code: -Glibc.errno)
        }
        defer { munmap(mapping, length) }
        let base = UnsafeRawPointer(mapping)
        for index in 0..<count {
            try body(Element(index: index, address: base + index * stride))
        }
    }
}
