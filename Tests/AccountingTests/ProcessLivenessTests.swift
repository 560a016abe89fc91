@testable import Accounting
import Glibc
import Testing

/// Whether a process still runs, as /proc says: only a process /proc says is gone is not running.
struct ProcessLivenessTests {
    @Test func aReapedChildIsGoneAndThisProcessIsNot() throws {
        #expect(!ProcessLiveness.isGone(getpid()))
        var child: pid_t = 0
        let argv: [UnsafeMutablePointer<CChar>?] = [strdup("/bin/true"), nil]
        defer { free(argv[0]) }
        #expect(posix_spawn(&child, "/bin/true", nil, nil, argv, environ) == 0)
        var status: Int32 = 0
        #expect(waitpid(child, &status, 0) == child && status == 0)
        #expect(ProcessLiveness.isGone(child))
        #expect(!ProcessLiveness.isRunning(ProcessID(pid: child, startNanoseconds: 1)))
    }
}
