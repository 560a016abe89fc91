import BPF
import NetacctKit
import SystemPackage
import Testing

/// Callers tell the kinds of trouble apart without reading messages.
struct ErrorKindTests {
    @Test func bpfErrorsSayWhatKindOfTroubleTheyAre() {
        #expect(BPFError("loading", "program 'p'", errno: .notPermitted).kind == .permission)
        #expect(BPFError("attaching", "program 'p'", errno: .noSuchFileOrDirectory).kind == .unsupported)
        #expect(BPFError("loading", "program 'p'", errno: .permissionDenied).kind == .failure) // the verifier said no
        let errors: [any UserFacingError] = [NetacctError("No cgroup /x"), NetacctError("no BTF", kind: .unsupported)]
        #expect(errors.map(\.kind) == [.badInput, .unsupported])
    }

    @Test func aMissingSocketIsToldApartFromAClosedOne() throws {
        // (The closed one, EACCES, needs another user: DaemonHostileTests runs top as nobody.)
        #expect(throws: UnixSocket.ConnectError.self) { _ = try UnixSocket.connect("/nonexistent/netacct.sock") }
        do {
            _ = try UnixSocket.connect("/nonexistent/netacct.sock")
        } catch let error as UnixSocket.ConnectError {
            #expect(error.isRefusedOrAbsent && error.kind == .failure)
        }
    }
}
