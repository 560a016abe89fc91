import Foundation
@testable import NetacctKit
import Testing

/// The text helpers that replace Foundation's formatters in the product (which links only
/// FoundationEssentials): they must print what printf and the mountinfo format say.
struct FormattingTests {
    @Test func fixedPointMatchesPrintf() {
        let values: [Double] = [0, 0.04, 0.05, 0.15, 0.25, 0.349, 1, 1.25, 1.5, 2.5, 9.95, 9.96, 9.999, 10.5, 11.5,
                                999.5, 1023.99, 12345.678, 0.0005, 0.0015, 1.0005, 3.14159]
        for value in values {
            for decimals in 0...3 {
                #expect(Units.fixed(value, decimals: decimals) == String(format: "%.\(decimals)f", value),
                        "\(value) with \(decimals) decimals")
            }
        }
    }

    @Test func unitsAndSeconds() {
        #expect(Units.bytes(512) == "512B")
        #expect(Units.bytes(1536) == "1.5K")
        #expect(Units.bytes(20 << 20) == "20M")
        #expect(Units.count(999) == "999")
        #expect(Units.count(1250) == "1.2k") // 1.25 rounds half to even, as printf does
        #expect(Units.count(35_000_000) == "35M")
        #expect(Units.seconds(1.004) == "1.00s")
    }

    @Test func clockIsLocalTimeOfDay() {
        let date = Date(timeIntervalSince1970: 1_700_000_000.9)
        let formatter = DateFormatter()
        formatter.dateFormat = "HH:mm:ss"
        #expect(Units.clock(date) == formatter.string(from: date))
    }

    @Test func controlCharactersAreEscapedInJSON() {
        var writer = JSONWriter()
        writer.field("comm", string: "a\u{01}b\u{1F}")
        #expect(writer.text == #""comm":"a\u0001b\u001f""#)
    }

    @Test func cgroup2MountIsFoundWithEscapedPaths() {
        let mountInfo = """
            22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
            25 22 0:23 / /sys rw,nosuid shared:7 - sysfs sysfs rw
            36 25 0:30 / /sys/fs/cgroup\\040v2 rw,nosuid shared:9 master:2 - cgroup2 cgroup2 rw,nsdelegate
            """
        #expect(CgroupNames.cgroup2Mount(in: mountInfo) == "/sys/fs/cgroup v2")
        #expect(CgroupNames.cgroup2Mount(in: "25 22 0:23 / /sys rw shared:7 - sysfs sysfs rw") == nil)
    }

    @Test func cgroupTreeIsNamed() throws {
        var names = CgroupNames()
        let root = try #require(names.root, "this machine has a cgroup2 file system")
        var info = stat()
        #expect(stat(root, &info) == 0)
        #expect(names.path(of: UInt64(info.st_ino)) == "/")
        // Our own cgroup, from /proc/self/cgroup ("0::/path").
        let own = try String(contentsOfFile: "/proc/self/cgroup", encoding: .utf8)
            .split(separator: "\n").first { $0.hasPrefix("0::") }.map { String($0.dropFirst(3)) }
        let path = try #require(own)
        #expect(stat(root + path, &info) == 0)
        #expect(names.path(of: UInt64(info.st_ino)) == path)
    }
}
