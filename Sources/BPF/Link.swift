import CLibbpf
import SystemPackage

/// An attachment of a program, whatever made it: one type for every kind, so that an engine
/// keeps one array of them. libbpf makes tracepoint, `tp_btf`, `raw_tp`, iterator and cgroup
/// links (a `bpf_link`); netfilter links come from a raw `BPF_LINK_CREATE` (a link descriptor),
/// since Debian's libbpf 1.1 cannot make them. Dropping the last reference detaches it.
public final class Link {
    private enum Handle {
        case libbpf(OpaquePointer)
        case descriptor(FileDescriptor)
    }

    private let handle: Handle
    /// The program and where it is attached, for messages.
    public let subject: String

    init(libbpf link: OpaquePointer, subject: String) {
        handle = .libbpf(link)
        self.subject = subject
    }

    init(descriptor: FileDescriptor, subject: String) {
        handle = .descriptor(descriptor)
        self.subject = subject
    }

    deinit {
        switch handle {
        case .libbpf(let link): bpf_link__destroy(link)
        case .descriptor(let fd): try? fd.close()
        }
    }

    public var fileDescriptor: FileDescriptor {
        switch handle {
        case .libbpf(let link): FileDescriptor(rawValue: bpf_link__fd(link))
        case .descriptor(let fd): fd
        }
    }

    /// Runs an iterator link once and returns everything it wrote.
    public func readIterator() throws -> [UInt8] {
        let fd = bpf_iter_create(fileDescriptor.rawValue)
        guard fd >= 0 else { throw BPFError("running iterator", subject, code: fd) }
        let iterator = FileDescriptor(rawValue: fd)
        defer { try? iterator.close() }
        var output: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let count: Int
            do {
                count = try chunk.withUnsafeMutableBytes { try iterator.read(into: $0, retryOnInterrupt: true) }
            } catch let error as Errno {
                throw BPFError("reading iterator", subject, errno: error)
            }
            if count == 0 { break }
            output.append(contentsOf: chunk[0..<count])
        }
        return output
    }

    /// Runs an iterator link whose program writes whole `Record`s, and decodes them.
    public func readIterator<Record: BitwiseCopyable>(of _: Record.Type) throws -> [Record] {
        let bytes = try readIterator()
        let size = MemoryLayout<Record>.size
        guard bytes.count % size == 0 else {
            throw BPFError("decoding iterator", subject, errno: .invalidArgument,
                           hint: "\(bytes.count) bytes is not a whole number of \(size)-byte records")
        }
        return bytes.withUnsafeBytes { raw in
            (0..<bytes.count / size).map { raw.loadUnaligned(fromByteOffset: $0 * size, as: Record.self) }
        }
    }
}
