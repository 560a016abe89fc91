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
        engine.follow(present: [own, gone])
        #expect(engine.followedNamespaces == [NetworkNamespace.inode()])
        #expect(engine.namespacesNotFollowed == 1)
        // Tried again, counted once.
        engine.follow(present: [own, gone])
        #expect(engine.followedNamespaces == [NetworkNamespace.inode()] && engine.namespacesNotFollowed == 1)
        // A path that opens another namespace than the one named is not followed as it.
        let wrong = NamespaceDirectory.Entry(label: NamespaceLabel(inode: 2), path: "/proc/self/ns/net")
        engine.follow(present: [own, wrong])
        #expect(engine.followedNamespaces == [NetworkNamespace.inode()] && engine.namespacesNotFollowed == 2)
        engine.follow(present: [])
        #expect(engine.followedNamespaces.isEmpty && engine.namespacesNotFollowed == 2)
    }
}
