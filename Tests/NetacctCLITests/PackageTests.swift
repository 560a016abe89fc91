import Foundation
import Glibc
import Testing

/// The .deb `scripts/package` builds (`scripts/test` builds it first, into .build/package, so
/// that the suite never runs a build inside its own): what it holds and declares, lintian's
/// verdict, its man pages and completions, and the binary it installs, unpacked.
enum BuiltPackage {
    static let directory = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../../.build/package").standardized
    /// The .deb scripts/test made, if any (with CI=true its absence fails the tests).
    static var deb: String? {
        (try? FileManager.default.contentsOfDirectory(atPath: directory.path))?.filter { $0.hasPrefix("netacct_") && $0.hasSuffix(".deb") }
            .sorted().last.map { directory.appendingPathComponent($0).path }
    }
}

@Suite(.serialized, .enabled(if: BuiltPackage.deb != nil || ProcessInfo.processInfo.environment["CI"] == "true",
                             "no .build/package/netacct_*.deb: scripts/test builds it (scripts/package)"))
struct PackageTests {
    static var deb: String? { BuiltPackage.deb }

    static func run(_ command: String, _ arguments: [String]) throws -> (status: Int32, out: String, err: String) {
        try Binary.run(URL(fileURLWithPath: command), arguments)
    }

    @Test func theDebHoldsTheBinaryTheUnitTheDefaultsTheManPagesAndTheCompletions() throws {
        let deb = try #require(Self.deb)
        let version = try Binary.run(["--version"])
        #expect(version.status == 0)
        let name = "netacct_\(version.out.trimmingCharacters(in: .whitespacesAndNewlines))_"
        #expect((deb as NSString).lastPathComponent.hasPrefix(name), "the .deb is named by netacct --version")
        let contents = try Self.run("/usr/bin/dpkg-deb", ["--contents", deb])
        #expect(contents.status == 0)
        let paths = Set(contents.out.split(separator: "\n").compactMap { $0.split(separator: " ").last.map { String($0.drop { $0 == "." }) } })
        for path in ["/usr/sbin/netacct", "/lib/systemd/system/netacct.service", "/etc/default/netacct",
                     "/usr/share/man/man1/netacct.1.gz", "/usr/share/man/man1/netacct.daemon.1.gz", "/usr/share/man/man1/netacct.nic.1.gz",
                     "/usr/share/bash-completion/completions/netacct", "/usr/share/zsh/vendor-completions/_netacct",
                     "/usr/share/fish/vendor_completions.d/netacct.fish", "/usr/share/netacct/prometheus/netacct.yml",
                     "/usr/share/netacct/grafana/netacct.json", "/usr/share/doc/netacct/copyright"] {
            #expect(paths.contains(path), "\(path) in the package")
        }
        let depends = try Self.run("/usr/bin/dpkg-deb", ["--field", deb, "Depends"])
        #expect(depends.out.contains("libbpf1") && depends.out.contains("libc6") && !depends.out.contains("swift"))
        let conffiles = try Self.run("/usr/bin/dpkg-deb", ["--info", deb, "conffiles"])
        #expect(conffiles.status == 0 && conffiles.out.contains("/etc/default/netacct"), "the defaults are a conffile")

        // Unpacked: the binary runs from its installed path; the unit names it and reads the defaults.
        let root = NSTemporaryDirectory() + "netacct-deb-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: root) }
        #expect(try Self.run("/usr/bin/dpkg-deb", ["-x", deb, root]).status == 0)
        let installed = try Self.run(root + "/usr/sbin/netacct", ["--version"])
        #expect(installed.status == 0 && installed.out == version.out)
        let help = try Self.run(root + "/usr/sbin/netacct", ["nic", "--help"])
        #expect(help.status == 0 && help.out.contains("--all-namespaces"))
        let unit = try String(contentsOfFile: root + "/lib/systemd/system/netacct.service", encoding: .utf8)
        #expect(unit.contains("ExecStart=/usr/sbin/netacct daemon $NETACCT_OPTIONS") && unit.contains("EnvironmentFile=-/etc/default/netacct"))
        // Each man page opens; the bash completions load and complete the commands.
        for page in ["netacct", "netacct.daemon", "netacct.nic"] {
            let man = try Self.run("/usr/bin/man", ["-l", "-P", "cat", root + "/usr/share/man/man1/\(page).1.gz"])
            #expect(man.status == 0 && man.out.contains("SYNOPSIS"), "man -l \(page)")
        }
        let completion = try Self.run("/bin/bash", ["-c", "source \(root)/usr/share/bash-completion/completions/netacct && complete -p netacct"])
        #expect(completion.status == 0 && completion.out.contains("netacct"), "\(completion.err)")
    }

    @Test(.enabled(if: FileManager.default.isExecutableFile(atPath: "/usr/bin/lintian"), "lintian is not installed"))
    func lintianFindsNoErrors() throws {
        let deb = try #require(Self.deb)
        let lintian = try Self.run("/usr/bin/lintian", ["--fail-on", "error", deb])
        #expect(lintian.status == 0, "\(lintian.out)\(lintian.err)")
        #expect(!lintian.out.contains("E: "))
    }
}
