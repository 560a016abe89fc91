import Glibc
import NetacctKit
import Testing

/// A listening socket's file appears only once it listens: whoever finds it can connect.
struct UnixSocketTests {
    @Test func theFileIsTheListeningSocketAndNothingElseIsLeft() throws {
        var template = Array("/tmp/netacct-socket-XXXXXX".utf8CString)
        let directory = try #require(template.withUnsafeMutableBufferPointer { mkdtemp($0.baseAddress!) }.map { String(cString: $0) })
        defer { rmdir(directory) }
        let path = directory + "/test.sock"
        let fd = try UnixSocket.listening(at: path, backlog: 4)
        defer { close(fd); unlink(path) }
        var info = stat()
        #expect(lstat(path, &info) == 0 && info.st_mode & S_IFMT == S_IFSOCK)
        _ = try UnixSocket.connect(path)
        #expect(access("\(path).\(getpid())", F_OK) != 0, "no staging name left behind")
        // A path in a directory that does not exist: refused, naming the path asked for.
        #expect { _ = try UnixSocket.listening(at: directory + "/missing/x.sock", backlog: 4) } throws: { error in
            "\(error)".contains("\(directory)/missing/x.sock:")
        }
    }
}
