import Foundation

/// Compiles one BPF program and writes a Swift file that embeds the object:
///
///     BPFEmbed <clang> <llvm-objcopy> <name> <output.swift> <clang arguments…>
///
/// runs `clang <clang arguments…> -o <name>.bpf.o` and `llvm-objcopy --strip-debug` (BTF is
/// kept) next to the output, then declares `BPFObjects.<name>`. One build command from source
/// to Swift: the object files are intermediates, not outputs, so SwiftPM never mistakes them
/// for resources (a resource bundle would make every importer load all of Foundation).
let arguments = CommandLine.arguments
guard arguments.count > 5 else {
    FileHandle.standardError.write(Data("usage: BPFEmbed <clang> <llvm-objcopy> <name> <output.swift> <clang arguments…>\n".utf8))
    exit(2)
}
let (clang, objcopy, name, output) = (arguments[1], arguments[2], arguments[3], arguments[4])
let work = URL(fileURLWithPath: output).deletingLastPathComponent()
let object = work.appendingPathComponent("\(name).bpf.o").path
let stripped = work.appendingPathComponent("\(name).stripped.o").path

func run(_ tool: String, _ toolArguments: [String]) {
    let process = Process()
    process.executableURL = URL(fileURLWithPath: tool)
    process.arguments = toolArguments
    do {
        try process.run()
    } catch {
        FileHandle.standardError.write(Data("BPFEmbed: cannot run \(tool): \(error)\n".utf8))
        exit(1)
    }
    process.waitUntilExit()
    if process.terminationStatus != 0 { exit(1) } // the tool has said why on stderr
}

run(clang, Array(arguments.dropFirst(5)) + ["-o", object])
run(objcopy, ["--strip-debug", object, stripped])
/// The names an object's symbol table gives its programs (global functions in a section of
/// their own, `SEC("tp_btf/…")`), its maps (objects in `.maps`) and its read-only globals
/// (`const volatile`, in `.rodata`): what the generated enums list.
struct ObjectNames {
    var programs: [String] = []
    var maps: [String] = []
    var globals: [String] = []

    /// Reads an ELF64 little-endian relocatable object (what clang -target bpf writes).
    init(elf bytes: [UInt8]) throws {
        struct Malformed: Error {}
        func integer<T: FixedWidthInteger>(_ offset: Int, _: T.Type) throws -> T {
            guard offset >= 0, offset + MemoryLayout<T>.size <= bytes.count else { throw Malformed() }
            return bytes.withUnsafeBytes { T(littleEndian: $0.loadUnaligned(fromByteOffset: offset, as: T.self)) }
        }
        func string(_ offset: Int) -> String {
            guard offset < bytes.count else { return "" }
            return String(decoding: bytes[offset...].prefix { $0 != 0 }, as: UTF8.self)
        }
        guard bytes.count > 64, bytes[0..<4] == [0x7F, 0x45, 0x4C, 0x46], bytes[4] == 2, bytes[5] == 1 else { throw Malformed() }
        let sectionTable = Int(try integer(0x28, UInt64.self))
        let entrySize = Int(try integer(0x3A, UInt16.self)), count = Int(try integer(0x3C, UInt16.self))
        let namesIndex = Int(try integer(0x3E, UInt16.self))
        struct Section { var name: Int; var type: UInt32; var flags: UInt64; var offset: Int; var size: Int; var link: Int }
        let sections = try (0..<count).map { index -> Section in
            let at = sectionTable + index * entrySize
            return Section(name: Int(try integer(at, UInt32.self)), type: try integer(at + 4, UInt32.self),
                           flags: try integer(at + 8, UInt64.self), offset: Int(try integer(at + 24, UInt64.self)),
                           size: Int(try integer(at + 32, UInt64.self)), link: Int(try integer(at + 40, UInt32.self)))
        }
        guard namesIndex < sections.count else { throw Malformed() }
        let sectionName = { (index: Int) -> String in
            index < sections.count ? string(sections[namesIndex].offset + sections[index].name) : ""
        }
        for table in sections where table.type == 2 /* SHT_SYMTAB */ {
            guard table.link < sections.count else { throw Malformed() }
            let strings = sections[table.link].offset
            for at in stride(from: table.offset, to: table.offset + table.size, by: 24) {
                let info = bytes[at + 4], section = Int(try integer(at + 6, UInt16.self))
                let (type, binding) = (info & 0xF, info >> 4)
                let symbol = string(strings + Int(try integer(at, UInt32.self)))
                guard !symbol.isEmpty, binding == 1 /* GLOBAL */, section < sections.count else { continue }
                let inSection = sectionName(section)
                if type == 2 /* FUNC */, sections[section].flags & 0x4 != 0 /* EXECINSTR */, inSection != ".text" {
                    programs.append(symbol)
                } else if type == 1 /* OBJECT */, inSection == ".maps" {
                    maps.append(symbol)
                } else if type == 1, inSection == ".rodata" {
                    globals.append(symbol)
                }
            }
        }
    }
}

/// A C name that is a Swift keyword (`protocol`, `default`…) becomes an identifier in backticks.
func identifier(_ name: String) -> String {
    let keywords: Set<String> = ["associatedtype", "class", "deinit", "enum", "extension", "func", "import", "init", "inout",
                                 "let", "operator", "protocol", "static", "struct", "subscript", "typealias", "var",
                                 "break", "case", "continue", "default", "defer", "do", "else", "fallthrough", "for",
                                 "guard", "if", "in", "repeat", "return", "switch", "where", "while", "as", "is", "try",
                                 "throw", "self", "super", "true", "false", "nil", "internal", "private", "public"]
    return keywords.contains(name) ? "`\(name)`" : name
}

/// `count_send` → `countSend`.
func camelCase(_ name: String) -> String {
    let parts = name.split(separator: "_")
    return (parts.first.map(String.init) ?? "") + parts.dropFirst().map { $0.prefix(1).uppercased() + $0.dropFirst() }.joined()
}

/// An enum of the names (none when the object has no such thing).
func enumeration(_ name: String, _ conformance: String, _ cases: [String], doc: String) -> String {
    guard !cases.isEmpty else { return "" }
    let body = cases.sorted().map { "            case \(identifier(camelCase($0))) = \"\($0)\"" }.joined(separator: "\n") + "\n"
    return """
            /// \(doc)
            public enum \(name): String, \(conformance), CaseIterable {
    \(body)        }

    """
}

do {
    let bytes = try Data(contentsOf: URL(fileURLWithPath: stripped))
    let identifier = String(name.map { $0.isLetter || $0.isNumber ? $0 : "_" })
    let names = try ObjectNames(elf: [UInt8](bytes))
    let typeName = camelCase(identifier).prefix(1).uppercased() + camelCase(identifier).dropFirst()
    let source = """
        // Generated by BPFEmbed from \(name).bpf.c during the build. Do not edit.
        import BPF

        extension BPFObjects {
            /// The compiled `bpf/\(name).bpf.c` (\(bytes.count) bytes, CO-RE, BTF kept).
            public static let \(camelCase(identifier)) = BPFObjectImage(
                name: "\(name)",
                base64: "\(bytes.base64EncodedString())"
            )

            /// The programs, maps and read-only globals of `bpf/\(name).bpf.c`, by name (from its
            /// symbol table): what the code asks the object for, checked when it is built.
            public enum \(typeName) {
        \(enumeration("Program", "BPFProgramName", names.programs, doc: "Its programs."))\
        \(enumeration("Map", "BPFMapName", names.maps, doc: "Its maps."))\
        \(enumeration("Global", "BPFGlobalName", names.globals, doc: "Its `const volatile` globals, set before load."))\
            }
        }

        """
    try Data(source.utf8).write(to: URL(fileURLWithPath: output), options: .atomic)
} catch {
    FileHandle.standardError.write(Data("BPFEmbed: \(stripped): \(error)\n".utf8))
    exit(1)
}
