import Glibc
import Latency
import NetacctKit
import Testing

/// `latency -A`'s IP points, attached per namespace: one that cannot be entered is counted and
/// the others go on; one gone is detached.
@Suite(.enabled(if: getuid() == 0, "loads BPF programs: needs root"))
struct LatencyNamespaceTests {
    @Test func aNamespaceThatCannotBeEnteredIsCountedAndTheOthersAreFollowed() throws {
        let engine = try LatencyEngine(direction: .out, filter: LatencyFilter(), histograms: true, namespace: 0)
        #expect(engine.followedNamespaces.isEmpty)
        let own = NamespaceDirectory.Entry(label: NamespaceLabel(inode: NetworkNamespace.inode()), path: "/proc/self/ns/net")
        let gone = NamespaceDirectory.Entry(label: NamespaceLabel(inode: 1), path: "/run/netns/netacct-none-\(getpid())")
        engine.follow(appeared: [own, gone], gone: [])
        #expect(engine.followedNamespaces == [NetworkNamespace.inode()])
        #expect(engine.namespacesNotFollowed == 1)
        engine.follow(appeared: [], gone: [own])
        #expect(engine.followedNamespaces.isEmpty && engine.namespacesNotFollowed == 1)
    }
}
