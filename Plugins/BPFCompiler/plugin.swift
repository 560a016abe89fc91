import Foundation
import PackagePlugin

/// Compiles every `bpf/*.bpf.c` of the package with the toolchain's clang (CO-RE, BTF
/// kept, debug info stripped) and turns each object into a Swift source file that embeds
/// it, so the `netacct` binary is self-contained and no compiled object is ever committed.
/// A target whose name ends in `TestPrograms` gets `bpf/tests/*.bpf.c` instead: programs
/// that exist only to test the BPF module stay out of the product.
@main
struct BPFCompiler: BuildToolPlugin {
    func createBuildCommands(context: PluginContext, target: Target) async throws -> [Command] {
        let bpfRoot = context.package.directoryURL.appending(path: "bpf")
        let bpfDir = target.name.hasSuffix("TestPrograms") ? bpfRoot.appending(path: "tests") : bpfRoot
        let files = try FileManager.default.contentsOfDirectory(at: bpfDir, includingPropertiesForKeys: nil)
        // A test program may include a tool's program whole (`#include "../wire.bpf.c"`, to time
        // its parts): the tools' sources and headers are its inputs too.
        let testing = bpfDir != bpfRoot
        let headerDirs = [bpfDir, bpfRoot.appending(path: "include")] + (testing ? [bpfRoot] : [])
        let headers = try headerDirs.flatMap { dir in
            try FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)
                .filter { $0.pathExtension == "h" || (testing && dir == bpfRoot && $0.lastPathComponent.hasSuffix(".bpf.c")) }
        }
        let sources = files.filter { $0.lastPathComponent.hasSuffix(".bpf.c") }
            .sorted { $0.lastPathComponent < $1.lastPathComponent }

        let clang = try context.tool(named: "clang").url
        let objcopy = try context.tool(named: "llvm-objcopy").url
        let embed = try context.tool(named: "BPFEmbed").url
        #if arch(arm64)
        let targetArch = "arm64"
        #else
        let targetArch = "x86"
        #endif

        var commands: [Command] = []
        for source in sources {
            let name = String(source.lastPathComponent.dropLast(".bpf.c".count))
            let swift = context.pluginWorkDirectoryURL.appending(path: "\(name).bpf.swift")
            // One command from source to Swift (see BPFEmbed): only the Swift file is an output.
            commands.append(.buildCommand(
                displayName: "Compiling BPF \(source.lastPathComponent)",
                executable: embed,
                arguments: [
                    clang.path, objcopy.path, name, swift.path,
                    "-O2", "-g", "-target", "bpf", "-D__TARGET_ARCH_\(targetArch)",
                    "-Wall", "-Werror",
                    // Every automatic variable starts at zero: the verifier lets a privileged
                    // program read stack it never wrote, and no result may depend on what
                    // the stack held before (BENCHMARKS.md: what it costs).
                    "-ftrivial-auto-var-init=zero",
                    "-I", bpfRoot.appending(path: "include").path, "-I", bpfDir.path,
                    "-c", source.path,
                ],
                inputFiles: [source] + headers,
                outputFiles: [swift]
            ))
        }
        return commands
    }
}
