import BPF
import CLibbpf
import NetacctKit

extension AccountingEngine {
    /// Where the accounting programs count. Both give the same counters, per thread, process
    /// and cgroup, under the same rules; they differ in what they see.
    public enum Kind: String, CaseIterable, Sendable {
        /// `sock:sock_send_length` and `sock:sock_recv_length` (Linux >= 6.3): every send and
        /// receive of the socket layer, whatever made it (system calls, io_uring, the kernel).
        case sock
        /// The exits of the system calls that move data through a TCP or UDP socket
        /// (Linux >= 5.15): what processes ask for themselves.
        case syscalls

        /// The oldest kernel each engine runs on.
        public var minimumKernel: (major: Int, minor: Int) {
            switch self {
            case .sock: (6, 3)
            case .syscalls: (5, 15)
            }
        }

        /// What the syscall engine does not see (README, "Older kernels"): io_uring and sendfile
        /// are checked against the sock engine by the accuracy tests; the rest follow from its
        /// hooks (no system call, or one without a tracepoint).
        public static let syscallsBlindSpots = """
            io_uring, the kernel's own sockets (NFS, SMB, iSCSI), 32-bit programs, splice out of a \
            socket, preadv2/pwritev2; sendfile and splice count one call per system call
            """
    }
}

/// Checks, before loading anything, that this process and this kernel can run the
/// accounting programs, so that the user reads why not instead of a verifier error, and
/// chooses the engine.
public enum KernelRequirements {
    /// The oldest kernel the accounting runs on at all (with the syscall engine).
    public static let minimumKernel = AccountingEngine.Kind.syscalls.minimumKernel
    static let sockTracepoints = ["sock_send_length", "sock_recv_length"]
    /// The system calls whose exits the syscall engine counts (x86_64 and arm64 names).
    static let syscalls = ["write", "writev", "sendto", "sendmsg", "sendmmsg", "sendfile64", "splice",
                           "read", "readv", "recvfrom", "recvmsg", "recvmmsg"]

    /// The engine to run: `requested`, or the sock engine where the kernel has its
    /// tracepoints and the syscall engine elsewhere. Throws, saying what the running kernel
    /// lacks, when the engine cannot run.
    @discardableResult
    public static func check(_ requested: AccountingEngine.Kind? = nil) throws -> AccountingEngine.Kind {
        try KernelProbe.checkPrivileges()
        let btf = try KernelProbe.requireBTF()
        let kernel = KernelProbe.kernelRelease
        for name in ["sched_process_exit", "sched_process_exec"] where !btf.hasTracepoint(name) {
            throw NetacctError("Kernel \(kernel) has no sched:\(name) tracepoint in its BTF: netacct needs Linux >= \(version(minimumKernel)).", kind: .unsupported)
        }
        let missingSock = sockTracepoints.filter { !btf.hasTracepoint($0) }
        switch requested {
        case .sock?:
            if let name = missingSock.first {
                throw NetacctError("""
                    Kernel \(kernel) has no sock:\(name) tracepoint, which the sock engine needs \
                    (Linux >= \(version(AccountingEngine.Kind.sock.minimumKernel))): use --engine syscalls or auto.
                    """, kind: .unsupported)
            }
            return .sock
        case .syscalls?:
            try checkSyscallEngine(kernel)
            return .syscalls
        case nil:
            if missingSock.isEmpty { return .sock }
            do {
                try checkSyscallEngine(kernel)
            } catch let error as NetacctError {
                throw NetacctError("""
                    Kernel \(kernel) has no sock:sock_send_length tracepoint (Linux >= \
                    \(version(AccountingEngine.Kind.sock.minimumKernel))), and the syscall engine cannot run either: \(error.message)
                    """, kind: .unsupported)
            }
            return .syscalls
        }
    }

    /// The syscall engine's needs: its syscall tracepoints and bpf_task_pt_regs.
    static func checkSyscallEngine(_ kernel: String) throws {
        let minimum = version(AccountingEngine.Kind.syscalls.minimumKernel)
        let tracefs = try KernelProbe.requireTracefs().path
        let missing = syscalls.filter { access("\(tracefs)/events/syscalls/sys_exit_\($0)", F_OK) != 0 }
        if missing.count == syscalls.count {
            throw NetacctError("""
                Kernel \(kernel) has no syscall tracepoints (\(tracefs)/events/syscalls): the syscall \
                engine needs a kernel built with CONFIG_FTRACE_SYSCALLS=y.
                """, kind: .unsupported)
        }
        if let name = missing.first {
            throw NetacctError("Kernel \(kernel) has no syscalls:sys_exit_\(name) tracepoint, which the syscall engine needs.", kind: .unsupported)
        }
        if !FeatureProbe.hasHelper(BPF_FUNC_task_pt_regs, in: BPF_PROG_TYPE_TRACEPOINT) {
            throw NetacctError("""
                Kernel \(kernel) does not let tracepoint programs call bpf_task_pt_regs, which the \
                syscall engine needs to read a system call's arguments at its exit (Linux >= \(minimum)).
                """, kind: .unsupported)
        }
    }

    static func version(_ v: (major: Int, minor: Int)) -> String { "\(v.major).\(v.minor)" }
}
