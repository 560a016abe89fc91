import CLibbpf
import Glibc
import SystemPackage

/// How `update` treats an existing or missing key.
public enum MapUpdate: UInt64, Sendable {
    case any = 0 // BPF_ANY
    case onlyNew = 1 // BPF_NOEXIST
    case onlyExisting = 2 // BPF_EXIST
}

/// The kernel map types a wrapper reads and writes correctly, checked when the wrapper is made
/// (as aya and cilium/ebpf do): a map of another type fails there, naming both, instead of
/// misreading values later (a per-CPU value read as one, a ring buffer looked up).
struct MapTypes {
    let wrapper: String
    let types: [bpf_map_type]

    /// One value per key, looked up, updated and read in batches (storage maps: the key is the
    /// socket's, task's or inode's descriptor; a cgroup array's value, written, a cgroup's).
    static let map = MapTypes(wrapper: "Map", types: [
        BPF_MAP_TYPE_HASH, BPF_MAP_TYPE_LRU_HASH, BPF_MAP_TYPE_ARRAY, BPF_MAP_TYPE_LPM_TRIE, BPF_MAP_TYPE_SK_STORAGE,
        BPF_MAP_TYPE_TASK_STORAGE, BPF_MAP_TYPE_INODE_STORAGE, BPF_MAP_TYPE_CGROUP_ARRAY,
    ])
    static let perCPU = MapTypes(wrapper: "PerCPUMap", types: [BPF_MAP_TYPE_PERCPU_HASH, BPF_MAP_TYPE_LRU_PERCPU_HASH, BPF_MAP_TYPE_PERCPU_ARRAY])
    /// With BPF_F_MMAPABLE besides, which `MappedArray` checks.
    static let mapped = MapTypes(wrapper: "MappedArray", types: [BPF_MAP_TYPE_ARRAY])
    static let queue = MapTypes(wrapper: "QueueMap", types: [BPF_MAP_TYPE_QUEUE, BPF_MAP_TYPE_STACK])
    static let ringBuffer = MapTypes(wrapper: "RingBuffer", types: [BPF_MAP_TYPE_RINGBUF])

    /// libbpf's name of a map type (`percpu_array`), as bpftool shows it.
    static func name(_ type: bpf_map_type) -> String {
        libbpf_bpf_map_type_str(type).map { String(cString: $0) } ?? "type \(type.rawValue)"
    }

    /// Throws unless the map `pointer` is of one of `types`; the hint names the wrapper that fits.
    func check(_ pointer: OpaquePointer, _ subject: String) throws {
        let type = bpf_map__type(pointer)
        guard !types.contains(type) else { return }
        let fitting = [Self.map, .perCPU, .queue, .ringBuffer].first { $0.types.contains(type) }
        throw BPFError("typing", subject, errno: .invalidArgument,
                       hint: "The kernel has it as a \(Self.name(type)) map; \(wrapper) takes "
                           + types.map(Self.name).joined(separator: ", ") + " maps"
                           + (fitting.map { " (open it as a \($0.wrapper))" } ?? ""))
    }
}

/// What every map wrapper shares: the object it belongs to, its name, its descriptor, and the
/// map's type and key and value sizes, checked against the wrapper and the Swift types.
struct MapHandle {
    let pointer: OpaquePointer
    let object: BPFObject
    let name: String
    let keySize: Int
    let valueSize: Int

    var subject: String { "map '\(name)' of object '\(object.name)'" }

    init(object: BPFObject, name: String, _ types: MapTypes, keySize: Int, valueSize: Int) throws {
        self.pointer = try object.mapPointer(name)
        self.object = object
        self.name = name
        self.keySize = keySize
        self.valueSize = valueSize
        let subject = "map '\(name)' of object '\(object.name)'"
        try types.check(pointer, subject)
        let kernelKey = Int(bpf_map__key_size(pointer))
        let kernelValue = Int(bpf_map__value_size(pointer))
        guard kernelKey == keySize, kernelValue == valueSize else {
            throw BPFError("typing", subject, errno: .invalidArgument,
                           hint: "It has \(kernelKey)-byte keys and \(kernelValue)-byte values, the Swift types \(keySize) and \(valueSize): the shared header and the Swift code disagree")
        }
    }

    func fileDescriptor() throws -> Int32 {
        let fd = bpf_map__fd(pointer)
        guard fd >= 0 else {
            throw BPFError("using", subject, errno: .badFileDescriptor, hint: "The object is not loaded")
        }
        return fd
    }

    func lookup(key: UnsafeRawPointer, value: UnsafeMutableRawPointer) throws -> Bool {
        let result = bpf_map_lookup_elem(try fileDescriptor(), key, value)
        if result == 0 { return true }
        if -result == ENOENT { return false }
        throw BPFError("looking up in", subject, code: result)
    }

    /// Deletes the key at `key`; false when it was not there.
    func delete(key: UnsafeRawPointer) throws -> Bool {
        let result = bpf_map_delete_elem(try fileDescriptor(), key)
        if result == 0 { return true }
        if -result == ENOENT { return false }
        throw BPFError("deleting from", subject, code: result)
    }

    /// Reads (and optionally deletes) every entry with BPF_MAP_LOOKUP(_AND_DELETE)_BATCH,
    /// `chunk` at a time into small buffers, reused and never cleared (the kernel fills them),
    /// so that reading a map costs no memory to speak of. `valueStride` is the bytes one key's
    /// value takes in the output (per-CPU values are larger).
    func batch(deleting: Bool, valueStride: Int, chunk initialChunk: Int = 256, limit: Int = .max,
               _ body: (UnsafeRawPointer, UnsafeRawPointer) -> Void) throws {
        var read = 0
        let fd = try fileDescriptor()
        var chunk = initialChunk
        var keys = UnsafeMutableRawBufferPointer.allocate(byteCount: keySize * chunk, alignment: 8)
        var values = UnsafeMutableRawBufferPointer.allocate(byteCount: valueStride * chunk, alignment: 8)
        defer {
            keys.deallocate()
            values.deallocate()
        }
        // The batch cursor is opaque to user space; it needs at least a key's room.
        let cursorSize = max(keySize, 8)
        var inCursor = [UInt8](repeating: 0, count: cursorSize)
        var outCursor = [UInt8](repeating: 0, count: cursorSize)
        var first = true
        while read < limit {
            var count = UInt32(min(chunk, limit - read))
            let result = inCursor.withUnsafeMutableBytes { inBuffer in
                outCursor.withUnsafeMutableBytes { outBuffer in
                    netacct_map_lookup_batch(fd, first ? nil : inBuffer.baseAddress, outBuffer.baseAddress,
                                             keys.baseAddress, values.baseAddress, &count, deleting)
                }
            }
            if result != 0 && -result == ENOSPC && count == 0 {
                // A hash bucket holds more entries than the chunk: grow it and retry.
                chunk *= 4
                keys.deallocate()
                values.deallocate()
                keys = .allocate(byteCount: keySize * chunk, alignment: 8)
                values = .allocate(byteCount: valueStride * chunk, alignment: 8)
                continue
            }
            if result != 0 && -result != ENOENT {
                throw BPFError(deleting ? "reading and deleting" : "reading", subject, code: result)
            }
            for index in 0..<Int(count) {
                body(UnsafeRawPointer(keys.baseAddress! + index * keySize), UnsafeRawPointer(values.baseAddress! + index * valueStride))
            }
            read += Int(count)
            if result != 0 { return } // ENOENT: the walk is complete
            swap(&inCursor, &outCursor)
            first = false
        }
    }
}

/// A map with one `Value` per `Key`: hash, LRU hash, array, LPM trie, socket / task / inode
/// storage, cgroup array (any other type is refused when it is made). Both must have exactly
/// the layout of the BPF side's types (import them from the shared header).
public struct Map<Key: BitwiseCopyable, Value: BitwiseCopyable> {
    let handle: MapHandle

    public init(_ object: BPFObject, name: String) throws {
        handle = try MapHandle(object: object, name: name, .map,
                               keySize: MemoryLayout<Key>.size, valueSize: MemoryLayout<Value>.size)
    }

    public var name: String { handle.name }

    public func lookup(_ key: Key) throws -> Value? {
        var key = key
        return try withUnsafeTemporaryAllocation(of: Value.self, capacity: 1) { value in
            try handle.lookup(key: &key, value: value.baseAddress!) ? value[0] : nil
        }
    }

    public func update(_ key: Key, _ value: Value, _ mode: MapUpdate = .any) throws {
        var key = key, value = value
        let result = bpf_map_update_elem(try handle.fileDescriptor(), &key, &value, mode.rawValue)
        guard result == 0 else { throw BPFError("updating", handle.subject, code: result) }
    }

    /// Deletes `key`; returns false when it was not there.
    @discardableResult
    public func delete(_ key: Key) throws -> Bool {
        try withUnsafeBytes(of: key) { try handle.delete(key: $0.baseAddress!) }
    }

    /// Every entry, read in batches. With `deleting`, each entry returned is also removed
    /// in the same system call, so entries added meanwhile are never lost between the two.
    public func entries(deleting: Bool = false) throws -> [(key: Key, value: Value)] {
        var result: [(key: Key, value: Value)] = []
        try handle.batch(deleting: deleting, valueStride: MemoryLayout<Value>.size) { key, value in
            result.append((key.loadUnaligned(as: Key.self), value.loadUnaligned(as: Value.self)))
        }
        return result
    }
}

/// A per-CPU map (hash, LRU hash, array): each key has one `Value` per possible CPU.
public struct PerCPUMap<Key: BitwiseCopyable, Value: BitwiseCopyable> {
    let handle: MapHandle
    public let cpuCount: Int
    /// The kernel rounds each CPU's value up to 8 bytes.
    let stride: Int

    public init(_ object: BPFObject, name: String) throws {
        handle = try MapHandle(object: object, name: name, .perCPU,
                               keySize: MemoryLayout<Key>.size, valueSize: MemoryLayout<Value>.size)
        let cpus = libbpf_num_possible_cpus()
        guard cpus > 0 else { throw BPFError("counting CPUs for", handle.subject, code: cpus) }
        cpuCount = Int(cpus)
        stride = (MemoryLayout<Value>.size + 7) & ~7
    }

    public var name: String { handle.name }

    /// The value on each possible CPU, or nil when the key is absent.
    public func lookup(_ key: Key) throws -> [Value]? {
        var key = key
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: stride * cpuCount, alignment: 8)
        defer { buffer.deallocate() }
        guard try handle.lookup(key: &key, value: buffer.baseAddress!) else { return nil }
        return decode(UnsafeRawPointer(buffer.baseAddress!))
    }

    /// Deletes `key` (every CPU's value); returns false when it was not there.
    @discardableResult
    public func delete(_ key: Key) throws -> Bool {
        try withUnsafeBytes(of: key) { try handle.delete(key: $0.baseAddress!) }
    }

    /// Every entry with its per-CPU values, read in batches; `limit`: at most that many (the
    /// first ones of an array, in index order).
    public func entries(deleting: Bool = false, limit: Int = .max) throws -> [(key: Key, values: [Value])] {
        var result: [(key: Key, values: [Value])] = []
        try handle.batch(deleting: deleting, valueStride: stride * cpuCount, limit: limit) { key, values in
            result.append((key.loadUnaligned(as: Key.self), decode(values)))
        }
        return result
    }

    /// Sets `key`'s value on every possible CPU (one value each, `cpuCount` of them).
    public func update(_ key: Key, perCPU values: [Value], _ mode: MapUpdate = .any) throws {
        guard values.count == cpuCount else {
            throw BPFError("updating", handle.subject, errno: .invalidArgument,
                           hint: "It needs a value for each of \(cpuCount) CPUs, not \(values.count)")
        }
        var key = key
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: stride * cpuCount, alignment: 8)
        defer { buffer.deallocate() }
        buffer.initializeMemory(as: UInt8.self, repeating: 0)
        for (cpu, value) in values.enumerated() { buffer.storeBytes(of: value, toByteOffset: cpu * stride, as: Value.self) }
        let result = bpf_map_update_elem(try handle.fileDescriptor(), &key, buffer.baseAddress, mode.rawValue)
        guard result == 0 else { throw BPFError("updating", handle.subject, code: result) }
    }

    private func decode(_ values: UnsafeRawPointer) -> [Value] {
        (0..<cpuCount).map { values.loadUnaligned(fromByteOffset: $0 * stride, as: Value.self) }
    }
}

extension PerCPUMap where Value: AdditiveArithmetic {
    /// The sum over all CPUs, or nil when the key is absent.
    public func lookupSummed(_ key: Key) throws -> Value? {
        try lookup(key).map { $0.reduce(.zero, +) }
    }

    /// Every entry with its values summed over all CPUs.
    public func entriesSummed() throws -> [(key: Key, value: Value)] {
        try entries().map { ($0.key, $0.values.reduce(.zero, +)) }
    }
}
