import Foundation
import Testing

/// The set-up scripts: `scripts/run` installs what running netacct needs, `scripts/test` what
/// the tests need besides (an emulator, a Prometheus server…). Checked by running
/// `netacct_install_packages` with dpkg and apt-get replaced by shell functions that record
/// what would be installed on a machine that has nothing (apt-get's output goes to /dev/null:
/// they write to descriptor 3).
struct ScriptsTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The packages `netacct_install_packages <argument>` would install on an empty machine.
    static func wouldInstall(_ argument: String) throws -> Set<String> {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.currentDirectoryURL = repository
        process.arguments = ["-c", """
            . scripts/setup.sh
            dpkg-query() { return 1; }
            sudo() { "$@"; }
            apt-get() { if [ "$1" = install ]; then shift; for word in "$@"; do case "$word" in -*) ;; *) echo "$word" >&3;; esac; done; fi; }
            netacct_install_packages \(argument) 3>&1 >/dev/null 2>&1
            """]
        let out = Pipe()
        process.standardOutput = out
        try process.run()
        let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        try #require(process.terminationStatus == 0)
        return Set(text.split(separator: "\n").map(String.init))
    }

    @Test func runInstallsWhatRunningNeedsAndTestWhatTestingNeeds() throws {
        let run = try Self.wouldInstall("run"), test = try Self.wouldInstall("test")
        #expect(run == ["libbpf-dev", "libsqlite3-dev", "pkg-config"])
        #expect(run.isSubset(of: test))
        for package in ["qemu-system-x86", "busybox-static", "cpio", "prometheus", "nftables", "tmux", "curl", "ethtool", "debootstrap", "zstd", "python3-venv"] {
            #expect(test.contains(package), "\(package)")
        }
        // scripts/run asks for the running set; .ci/run runs scripts/test, which asks for the testing set.
        let runScript = try String(contentsOf: Self.repository.appendingPathComponent("scripts/run"), encoding: .utf8)
        let testScript = try String(contentsOf: Self.repository.appendingPathComponent("scripts/test"), encoding: .utf8)
        #expect(runScript.contains("netacct_install_packages\n") || runScript.contains("netacct_install_packages run\n"))
        #expect(testScript.contains("netacct_install_packages test\n"))
    }
}
