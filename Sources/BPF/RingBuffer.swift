import CLibbpf
import Glibc
import SystemPackage

/// A `BPF_MAP_TYPE_RINGBUF` map of `Record`s (the layout of the BPF side's struct), in the order
/// the kernel committed them: handed back in batches (`poll`, `drain`), or to a handler.
public final class RingBuffer<Record: BitwiseCopyable> {
    private let handle: OpaquePointer
    private let delivery: Unmanaged<RingBufferDelivery>
    /// Where records wait for `poll` or `drain` to hand them back.
    private let batch = Batch()
    public let subject: String

    final class Batch {
        var records: [Record] = []
    }

    /// Without a handler, `poll` and `drain` hand records back; with one, it takes them all
    /// (from `consume` too) and they hand back none.
    public init(_ object: BPFObject, name: String, handler: ((Record) -> Void)? = nil) throws {
        subject = "ring buffer '\(name)' of object '\(object.name)'"
        let map = try object.mapPointer(name)
        try MapTypes.ringBuffer.check(map, subject)
        let fd = bpf_map__fd(map)
        guard fd >= 0 else { throw BPFError("opening", subject, errno: .badFileDescriptor, hint: "The object is not loaded") }
        let handler = handler ?? { [batch] in batch.records.append($0) }
        let delivery = Unmanaged.passRetained(RingBufferDelivery(recordSize: MemoryLayout<Record>.size) { raw in
            handler(raw.loadUnaligned(as: Record.self))
        })
        guard let ring = ring_buffer__new(fd, deliverRecord, delivery.toOpaque(), nil) else {
            delivery.release()
            throw BPFError("opening", subject, code: -Glibc.errno)
        }
        handle = ring
        self.delivery = delivery
    }

    deinit {
        ring_buffer__free(handle)
        delivery.release()
    }

    /// Records shorter than `Record` that were skipped (a layout mismatch with the BPF side).
    public var malformedRecords: Int { delivery.takeUnretainedValue().malformed }

    /// Waits up to `milliseconds` (-1: forever) for the kernel to wake user space, then hands
    /// back every record ready, those it committed without a wakeup too (BPF_RB_NO_WAKEUP).
    public func poll(milliseconds: Int32) throws -> [Record] {
        let result = ring_buffer__poll(handle, milliseconds)
        if result < 0 && -result != EINTR { throw BPFError("polling", subject, code: result) }
        return try drain()
    }

    /// Every record ready now, without waiting.
    public func drain() throws -> [Record] {
        try consume()
        defer { batch.records.removeAll(keepingCapacity: true) }
        return batch.records
    }

    /// Delivers whatever records are ready, without waiting; returns how many.
    @discardableResult
    public func consume() throws -> Int {
        let result = ring_buffer__consume(handle)
        if result < 0 { throw BPFError("consuming", subject, code: result) }
        return Int(result)
    }

    /// A descriptor that becomes readable when records are ready (for an event loop).
    public var fileDescriptor: FileDescriptor { FileDescriptor(rawValue: ring_buffer__epoll_fd(handle)) }
}

/// What the C callback reaches through libbpf's context pointer: the typed handler, erased.
final class RingBufferDelivery {
    let recordSize: Int
    let handler: (UnsafeRawPointer) -> Void
    var malformed = 0
    init(recordSize: Int, handler: @escaping (UnsafeRawPointer) -> Void) {
        self.recordSize = recordSize
        self.handler = handler
    }
}

private func deliverRecord(_ context: UnsafeMutableRawPointer?, _ data: UnsafeMutableRawPointer?, _ size: Int) -> Int32 {
    let delivery = Unmanaged<RingBufferDelivery>.fromOpaque(context!).takeUnretainedValue()
    guard let data, size >= delivery.recordSize else {
        delivery.malformed += 1
        return 0
    }
    delivery.handler(UnsafeRawPointer(data))
    return 0
}
