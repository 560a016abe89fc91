import CLibbpf
import Glibc
import SystemPackage

/// A BPF ELF object: open it from an embedded image, adjust it (read-only globals, which
/// programs load), load it into the kernel, then attach its programs and use its maps.
/// Closing (deinit) unloads whatever no link or pin still holds.
public final class BPFObject {
    public let name: String
    let handle: OpaquePointer
    public private(set) var isLoaded = false

    public init(image: BPFObjectImage) throws {
        self.name = image.name
        LibbpfLog.install()
        let opened = image.bytes.withUnsafeBytes { buffer in
            netacct_object_open_mem(buffer.baseAddress, buffer.count, image.name)
        }
        guard let opened else {
            throw BPFError("opening", "object '\(image.name)'", code: -Glibc.errno)
        }
        self.handle = opened
    }

    deinit {
        bpf_object__close(handle)
    }

    /// Programs of the object, by their function name.
    public func program(_ name: String) throws -> Program {
        guard let pointer = bpf_object__find_program_by_name(handle, name) else {
            throw BPFError("finding", "program '\(name)' in object '\(self.name)'", errno: .noSuchFileOrDirectory)
        }
        return Program(pointer: pointer, object: self)
    }

    func mapPointer(_ name: String) throws -> OpaquePointer {
        guard let pointer = bpf_object__find_map_by_name(handle, name) else {
            throw BPFError("finding", "map '\(name)' in object '\(self.name)'", errno: .noSuchFileOrDirectory)
        }
        return pointer
    }

    /// Sets a `const volatile` global (in `.rodata`) before load. The verifier then treats
    /// it as a constant and drops the code it makes dead.
    public func setReadOnlyGlobal<Value: BitwiseCopyable>(_ variable: String, to value: Value) throws {
        try withUnsafeBytes(of: value) { try setReadOnlyGlobal(variable, bytes: $0) }
    }

    /// Sets a `const volatile` array global to `elements` and the rest of it to zero, before
    /// load (a filter's first N slots, with N in another global): an error when they do not fit.
    public func setReadOnlyGlobal<Element: BitwiseCopyable>(_ variable: String, elements: [Element]) throws {
        let (_, size) = try rodataVariable(variable)
        guard elements.count * MemoryLayout<Element>.stride <= size else {
            throw BPFError("setting", "global '\(variable)' of object '\(name)'", errno: .invalidArgument,
                           hint: "It has \(size) bytes, \(elements.count) elements take \(elements.count * MemoryLayout<Element>.stride)")
        }
        var bytes = [UInt8](repeating: 0, count: size)
        bytes.withUnsafeMutableBytes { destination in
            elements.withUnsafeBytes { destination.copyMemory(from: $0) }
        }
        try bytes.withUnsafeBytes { try setReadOnlyGlobal(variable, bytes: $0) }
    }

    /// Sets a `const volatile` global (an array, say) to exactly `bytes`, before load.
    public func setReadOnlyGlobal(_ variable: String, bytes: UnsafeRawBufferPointer) throws {
        let subject = "global '\(variable)' of object '\(name)'"
        guard !isLoaded else {
            throw BPFError("setting", subject, errno: .alreadyInProcess, hint: "Read-only globals are fixed at load")
        }
        let (offset, size) = try rodataVariable(variable)
        guard size == bytes.count else {
            throw BPFError("setting", subject, errno: .invalidArgument,
                           hint: "It has \(size) bytes, the value \(bytes.count)")
        }
        let rodata = try mapPointer(".rodata")
        var rodataSize = 0
        guard let initial = bpf_map__initial_value(rodata, &rodataSize), offset + size <= rodataSize else {
            throw BPFError("setting", subject, errno: .noSuchFileOrDirectory)
        }
        // libbpf 1.1 returns the map's initial value as const; it is the copy libbpf will load.
        UnsafeMutableRawPointer(mutating: initial).advanced(by: offset).copyMemory(from: bytes.baseAddress!, byteCount: size)
    }

    /// Sets a map's capacity before load.
    public func setMaxEntries(_ map: String, to entries: UInt32) throws {
        let subject = "map '\(map)' of object '\(name)'"
        guard !isLoaded else {
            throw BPFError("resizing", subject, errno: .alreadyInProcess, hint: "Map sizes are fixed at load")
        }
        let result = bpf_map__set_max_entries(try mapPointer(map), entries)
        guard result == 0 else { throw BPFError("resizing", subject, code: result) }
    }

    /// Finds a variable's offset and size in the object's `.rodata` section (its BTF DATASEC),
    /// as a generated skeleton would.
    private func rodataVariable(_ variable: String) throws -> (offset: Int, size: Int) {
        let subject = "global '\(variable)' of object '\(name)'"
        guard let btf = bpf_object__btf(handle) else {
            throw BPFError("finding", subject, errno: .noSuchFileOrDirectory, hint: "The object has no BTF")
        }
        let section = btf__find_by_name_kind(btf, ".rodata", UInt32(BTF_KIND_DATASEC as Int))
        guard section > 0, let type = btf__type_by_id(btf, UInt32(section)) else {
            throw BPFError("finding", subject, errno: .noSuchFileOrDirectory, hint: "The object has no .rodata")
        }
        let count = Int(type.pointee.info & 0xffff)
        // struct btf_var_secinfo entries follow struct btf_type.
        let entries = UnsafeRawPointer(type).advanced(by: MemoryLayout<btf_type>.size)
            .assumingMemoryBound(to: btf_var_secinfo.self)
        for index in 0..<count {
            let entry = entries[index]
            guard let varType = btf__type_by_id(btf, entry.type),
                  let varName = btf__name_by_offset(btf, varType.pointee.name_off),
                  String(cString: varName) == variable
            else { continue }
            return (Int(entry.offset), Int(entry.size))
        }
        throw BPFError("finding", subject, errno: .noSuchFileOrDirectory)
    }

    /// Loads the programs whose autoload is on, and creates the maps, in the kernel.
    public func load() throws {
        _ = LibbpfLog.takeLoadFailure()
        let result = bpf_object__load(handle)
        guard result == 0 else {
            // libbpf names the failing program, and the verifier its reason, in the log.
            let failure = LibbpfLog.takeLoadFailure()
            let subject = failure.program.map { "program '\($0)' of object '\(name)'" } ?? "object '\(name)'"
            var error = BPFError("loading", subject, code: result)
            if error.errno == .notPermitted, let program = failure.program, let pointer = bpf_object__find_program_by_name(handle, program),
               BPFError.isNetworking(bpf_program__type(pointer)) {
                error.hint = BPFError.networkingHint
            }
            if let reason = failure.reason {
                error.hint = "The verifier said: \(reason)" + (error.hint.map { ". \($0)" } ?? "")
            }
            throw error
        }
        isLoaded = true
    }
}

/// A program of a `BPFObject`. It stays valid as long as its object.
public struct Program {
    let pointer: OpaquePointer
    public let object: BPFObject

    init(pointer: OpaquePointer, object: BPFObject) {
        self.pointer = pointer
        self.object = object
    }

    public var name: String { String(cString: bpf_program__name(pointer)) }
    /// The ELF section, e.g. `tp_btf/sock_send_length`.
    public var section: String { String(cString: bpf_program__section_name(pointer)) }
    var subject: String { "program '\(name)' of object '\(object.name)'" }

    /// Whether `BPFObject.load()` loads this program (default: yes). Set before load.
    public var autoload: Bool {
        get { bpf_program__autoload(pointer) }
        nonmutating set { bpf_program__set_autoload(pointer, newValue) }
    }

    public var fileDescriptor: FileDescriptor? {
        let fd = bpf_program__fd(pointer)
        return fd >= 0 ? FileDescriptor(rawValue: fd) : nil
    }

    /// Attaches the program where its section says (tracepoint, tp_btf, raw_tp, …).
    /// The attachment lasts as long as the returned link.
    public func attach() throws -> Link {
        guard let link = bpf_program__attach(pointer) else {
            throw BPFError("attaching", subject, code: -Glibc.errno)
        }
        return Link(libbpf: link, subject: subject)
    }

    /// Attaches an `iter/…` program; each `Link.readIterator()` then runs it once.
    public func attachIterator() throws -> Link {
        guard let link = bpf_program__attach_iter(pointer, nil) else {
            throw BPFError("attaching", subject, code: -Glibc.errno)
        }
        return Link(libbpf: link, subject: subject)
    }

    /// Attaches a `cgroup/…` program (`cgroup/sock_release`, …) to the cgroup v2 directory at
    /// `path`: it runs for the sockets of that cgroup and those below it (the cgroup2 mount's root:
    /// every socket). The attachment lasts as long as the returned link.
    public func attachCgroup(_ path: String) throws -> Link {
        let subject = "\(self.subject) to cgroup \(path)"
        let fd = open(path, O_RDONLY | O_DIRECTORY)
        guard fd >= 0 else { throw BPFError("opening", "cgroup \(path)", code: -Glibc.errno) }
        defer { close(fd) }
        guard let link = bpf_program__attach_cgroup(pointer, fd) else {
            throw BPFError("attaching", subject, code: -Glibc.errno)
        }
        return Link(libbpf: link, subject: subject)
    }

    /// Run-time statistics kept by the kernel while `kernel.bpf_stats_enabled` is 1.
    public func statistics() throws -> ProgramStatistics {
        guard let fd = fileDescriptor else {
            throw BPFError("reading statistics of", subject, errno: .badFileDescriptor, hint: "It is not loaded")
        }
        var info = bpf_prog_info()
        var length = UInt32(MemoryLayout<bpf_prog_info>.size)
        let result = bpf_obj_get_info_by_fd(fd.rawValue, &info, &length)
        guard result == 0 else { throw BPFError("reading statistics of", subject, code: result) }
        return ProgramStatistics(runTimeNanoseconds: info.run_time_ns, runCount: info.run_cnt)
    }
}

public struct ProgramStatistics: Sendable, Equatable {
    public var runTimeNanoseconds: UInt64
    public var runCount: UInt64
    public var nanosecondsPerRun: Double? {
        runCount == 0 ? nil : Double(runTimeNanoseconds) / Double(runCount)
    }
}

/// Keeps the kernel's per-program run-time statistics on (BPF_ENABLE_STATS) while it lives,
/// without touching the `kernel.bpf_stats_enabled` sysctl.
public final class StatisticsSession {
    private let fd: FileDescriptor

    public init() throws {
        let fd = bpf_enable_stats(BPF_STATS_RUN_TIME)
        guard fd >= 0 else { throw BPFError("enabling", "BPF run-time statistics", code: fd) }
        self.fd = FileDescriptor(rawValue: fd)
    }

    deinit { try? fd.close() }
}
