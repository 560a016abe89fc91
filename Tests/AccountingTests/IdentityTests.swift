@testable import Accounting
import Testing

/// Task names as the kernel keeps them (16 bytes, NUL-padded), decoded only when read.
struct IdentityTests {
    @Test func taskNamesKeepTheKernelsFifteenBytes() {
        #expect(TaskComm("sender").string == "sender")
        #expect(TaskComm("a-name-longer-than-fifteen").string == "a-name-longer-t")
        #expect(TaskComm("").string == "")
        let kernel: (CChar, CChar, CChar, CChar, CChar, CChar, CChar, CChar,
                     CChar, CChar, CChar, CChar, CChar, CChar, CChar, CChar) = (0x6e, 0x67, 0x69, 0x6e, 0x78, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        #expect(TaskComm(cString: kernel).string == "nginx")
        #expect(TaskComm(cString: kernel) == TaskComm("nginx"))
    }
}
