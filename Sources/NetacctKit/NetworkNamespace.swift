import Glibc

/// The network namespace this process runs in: tools count only its devices and packets.
public enum NetworkNamespace {
    /// Its inode number (/proc/self/ns/net), which is what the kernel's `net->ns.inum` is.
    public static func inode() -> UInt32 {
        var info = stat()
        guard stat("/proc/self/ns/net", &info) == 0 else { return 0 }
        return UInt32(truncatingIfNeeded: info.st_ino)
    }
}
