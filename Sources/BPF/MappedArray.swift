import CLibbpf
import Glibc

/// A `BPF_MAP_TYPE_ARRAY` created with `BPF_F_MMAPABLE`, read through the kernel's memory
/// mapping of it: reading an element is a memory load, not a system call, while the BPF
/// programs keep writing. Elements may change while they are read; what a reader sees of one
/// element is only as consistent as the BPF side's write order makes it.
///
/// The array is mapped a window at a time while `forEach` runs, read-only, and unmapped after:
/// a large array costs this process at most one window of memory, and none between reads
/// (a mapping kept open would count the whole array in the process's resident memory).
public final class MappedArray<Value: BitwiseCopyable> {
    public let count: Int
    public let subject: String
    private let fd: Int32
    /// The kernel rounds each value up to 8 bytes.
    private let stride: Int
    /// Elements per window: a whole number of elements that is a whole number of pages.
    private let windowElements: Int

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

    /// - Parameter windowBytes: how much is mapped at once, at least; rounded up to whole
    ///   elements and pages.
    public init(_ object: BPFObject, name: String, windowBytes: Int = 128 << 10) throws {
        let handle = try MapHandle(object: object, name: name, keySize: 4, valueSize: MemoryLayout<Value>.size)
        subject = handle.subject
        guard bpf_map__type(handle.pointer) == BPF_MAP_TYPE_ARRAY,
              bpf_map__map_flags(handle.pointer) & UInt32(BPF_F_MMAPABLE) != 0 else {
            throw BPFError("mapping", subject, errno: .invalidArgument, hint: "Only an array map created with BPF_F_MMAPABLE can be mapped")
        }
        fd = try handle.fileDescriptor()
        count = Int(bpf_map__max_entries(handle.pointer))
        stride = (MemoryLayout<Value>.size + 7) & ~7
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
        // The smallest run of elements that fills whole pages, repeated to fill the window.
        let unit = page / gcd(stride, page)
        windowElements = unit * max(1, min(windowBytes, count * stride) / (unit * stride))
    }

    /// Calls `body` with every element, in index order.
    public func forEach(_ body: (Element) throws -> Void) throws {
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        var first = 0
        while first < count {
            let elements = min(windowElements, count - first)
            let offset = first * stride // whole pages: windows hold whole pages of whole elements
            let length = (elements * stride + page - 1) / page * page
            guard let window = mmap(nil, length, PROT_READ, MAP_SHARED, fd, off_t(offset)), window != MAP_FAILED else {
                throw BPFError("mapping", subject, code: -Glibc.errno)
            }
            defer { munmap(window, length) }
            let base = UnsafeRawPointer(window)
            for index in 0..<elements {
                try body(Element(index: first + index, address: base + index * stride))
            }
            first += elements
        }
    }
}
