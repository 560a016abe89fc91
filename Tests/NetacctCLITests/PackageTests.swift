import Foundation
import Glibc
import Testing

/// The .deb `scripts/package` builds (`scripts/test` builds it first, into .build/package, so
/// that the suite never runs a build inside its own): what it holds and declares, lintian's
/// verdict, its man pages and completions, and the binary it installs, unpacked; then installed
/// with apt into a fresh Debian 12 root (`scripts/debian-root`) and purged from it.
enum BuiltPackage {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../..").standardized
    static let directory = repository.appendingPathComponent(".build/package")
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

    /// Installed into a fresh Debian 12 root (debootstrap's minbase, with systemd, man-db and
    /// bash-completion, and the .debs of the Depends downloaded but not installed) by apt, as a
    /// user installs it: its dependencies come with it, each file is where dpkg says, the
    /// binary runs from /usr/sbin, `man` finds every page, bash loads the completions on
    /// demand, the unit passes `systemd-analyze verify` and is enabled (not started: no
    /// systemd runs in a chroot); `dpkg --purge` then leaves nothing but the dependencies.
    @Test(.enabled(if: isRoot || ProcessInfo.processInfo.environment["CI"] == "true", "debootstrap and chroot need root"))
    func installedIntoAFreshDebianRootAndPurgedLeavingNothing() throws {
        let deb = try #require(Self.deb)
        let depends = try Self.run("/usr/bin/dpkg-deb", ["--field", deb, "Depends"]).out.trimmingCharacters(in: .whitespacesAndNewlines)
        let dependencies = depends.split(separator: ",").compactMap { $0.split(separator: " ").first.map(String.init) }
        #expect(dependencies.contains("libbpf1"))
        let root = NSTemporaryDirectory() + "netacct-root-\(getpid())"
        let made = try Self.run(BuiltPackage.repository.appendingPathComponent("scripts/debian-root").path, [root] + dependencies)
        defer {
            _ = try? Self.run("/bin/umount", ["-l", root + "/proc"])
            try? FileManager.default.removeItem(atPath: root)
        }
        try #require(made.status == 0, "scripts/debian-root: \(made.err)")
        try #require(try Self.run("/bin/mount", ["-t", "proc", "proc", root + "/proc"]).status == 0)
        func chroot(_ arguments: String...) throws -> (status: Int32, out: String, err: String) {
            try Self.run("/usr/sbin/chroot", [root, "/usr/bin/env", "-i", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", "LANG=C.UTF-8",
                                              "DEBIAN_FRONTEND=noninteractive", "MANWIDTH=80"] + arguments)
        }
        /// Every path in the root (its own file system: not /proc), and the packages installed.
        func snapshot() throws -> (paths: Set<String>, packages: Set<String>) {
            let found = try Self.run("/usr/bin/find", [root, "-xdev"])
            #expect(found.status == 0)
            let paths = Set(found.out.split(separator: "\n").map { String($0.dropFirst(root.count)) })
            let packages = try chroot("dpkg-query", "-W", "-f", "${Package}\\n").out.split(separator: "\n").map(String.init)
            return (paths, Set(packages))
        }
        let before = try snapshot()
        #expect(!before.packages.contains("libbpf1"), "the root starts without the dependencies")

        try FileManager.default.copyItem(atPath: deb, toPath: root + "/tmp/netacct.deb")
        let install = try chroot("apt-get", "install", "-y", "-q", "--no-install-recommends", "/tmp/netacct.deb")
        try #require(install.status == 0, "apt-get install: \(install.out)\(install.err)")
        try FileManager.default.removeItem(atPath: root + "/tmp/netacct.deb")

        let listed = try chroot("dpkg", "-L", "netacct")
        #expect(listed.status == 0)
        let files = listed.out.split(separator: "\n").map(String.init).filter { $0 != "/." }
        for file in files { #expect(FileManager.default.fileExists(atPath: root + file), "\(file), which dpkg -L lists, is in the root") }
        #expect(files.contains("/usr/sbin/netacct") && files.contains("/lib/systemd/system/netacct.service") && files.contains("/etc/default/netacct"))

        let version = try Binary.run(["--version"])
        let installed = try chroot("/usr/sbin/netacct", "--version")
        #expect(installed.status == 0 && installed.out == version.out, "the installed binary runs: \(installed.err)")
        let help = try chroot("/usr/sbin/netacct", "daemon", "--help")
        #expect(help.status == 0 && help.out.contains("--all-namespaces"), "\(help.err)")

        // man finds each page by its name (the index man-db's trigger made) and shows it.
        let pages = files.filter { $0.hasPrefix("/usr/share/man/man1/") }.map { ($0 as NSString).lastPathComponent.replacingOccurrences(of: ".1.gz", with: "") }
        #expect(Set(pages).isSuperset(of: ["netacct", "netacct.daemon", "netacct.top", "netacct.nic", "netacct.latency"]), "\(pages)")
        for page in pages {
            let man = try chroot("man", "-P", "cat", page)
            #expect(man.status == 0 && man.out.contains("SYNOPSIS"), "man \(page): \(man.err)")
        }
        // bash-completion loads netacct's on demand, from where the package put it.
        let complete = """
            . /usr/share/bash-completion/bash_completion
            _completion_loader netacct
            function=$(complete -p netacct | sed -n 's/.* -F \\([^ ]*\\) .*/\\1/p')
            COMPREPLY=(); COMP_WORDS=(netacct da); COMP_CWORD=1; COMP_LINE="netacct da"; COMP_POINT=${#COMP_LINE}
            "$function" netacct da netacct; echo "commands: ${COMPREPLY[*]}"
            COMPREPLY=(); COMP_WORDS=(netacct nic --all-n); COMP_CWORD=2; COMP_LINE="netacct nic --all-n"; COMP_POINT=${#COMP_LINE}
            "$function" netacct --all-n nic; echo "options: ${COMPREPLY[*]}"
            """
        let completion = try chroot("bash", "-c", complete)
        #expect(completion.status == 0 && completion.out.contains("commands: daemon\n") && completion.out.contains("options: --all-namespaces\n"),
                "\(completion.out)\(completion.err)")
        // The unit: verified by the root's own systemd (man pages were opened above), and
        // enabled as Debian enables units where systemd is installed.
        let verify = try chroot("systemd-analyze", "verify", "--man=no", "netacct.service")
        #expect(verify.status == 0 && verify.err.isEmpty, "systemd-analyze verify: \(verify.out)\(verify.err)")
        let wanted = try? FileManager.default.destinationOfSymbolicLink(atPath: root + "/etc/systemd/system/multi-user.target.wants/netacct.service")
        #expect(wanted == "/lib/systemd/system/netacct.service", "enabled")

        let purge = try chroot("dpkg", "--purge", "netacct")
        #expect(purge.status == 0, "dpkg --purge: \(purge.out)\(purge.err)")
        let after = try snapshot()
        let added = after.packages.subtracting(before.packages)
        #expect(after.packages.isSuperset(of: before.packages) && !after.packages.contains("netacct") && added.contains("libbpf1"),
                "netacct is gone, its dependencies stay: \(added.sorted())")
        // What the dependencies brought, and the package system's own records, are not netacct's.
        var theirs = Set<String>()
        for package in added {
            theirs.formUnion(try chroot("dpkg", "-L", package).out.split(separator: "\n").map(String.init))
        }
        let records = ["/var/lib/dpkg/", "/var/lib/apt/", "/var/cache/apt/", "/var/cache/man/", "/var/cache/debconf/", "/var/log/", "/run/"]
        let left = after.paths.subtracting(before.paths).subtracting(theirs).filter { path in !records.contains { path.hasPrefix($0) } }
        #expect(left.isEmpty, "dpkg --purge left \(left.sorted())")
        let went = before.paths.subtracting(after.paths).filter { path in !records.contains { path.hasPrefix($0) } }
        #expect(went.isEmpty, "nothing of the root's own went: \(went.sorted())")
        // (man-db's cache of the pages shown above is its own, and it cleans it.)
        let named = after.paths.filter { path in path.contains("netacct") && !records.contains { path.hasPrefix($0) } }
        #expect(named.isEmpty, "\(named.sorted())")
        let state = try Self.run("/bin/grep", ["-rl", "netacct", root + "/etc", root + "/var/lib/systemd"])
        #expect(state.status == 1, "nothing names netacct any more: \(state.out)")
    }
}
