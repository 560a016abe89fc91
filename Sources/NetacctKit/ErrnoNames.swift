import CGlibcExtras

/// The symbolic names of error numbers, as the kernel's sources and `errno(1)` spell them.
public enum ErrnoNames {
    /// "ECONNREFUSED" for ECONNREFUSED; "E<number>" for a number glibc has no name for.
    public static func name(_ number: Int32) -> String {
        netacct_errno_name(number).map { String(cString: $0) } ?? "E\(number)"
    }
}
