import Foundation
import Glibc
@testable import NetacctKit
import Testing

/// How a network namespace is named by what runs in it, how --netns is read, and the
/// interfaces rtnetlink lists.
struct NamespaceTests {
    @Test func aNamespaceIsNamedByTheWorkloadItsProcessesAgreeOn() {
        let id = String(repeating: "ab", count: 32), other = String(repeating: "cd", count: 32)
        let uid = "4f1c2a9e-0b7d-4c3e-9a51-000000000003"
        let pod = "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod\(uid.replacingOccurrences(of: "-", with: "_")).slice"
        let (pause, app) = ("\(pod)/cri-containerd-\(id).scope", "\(pod)/cri-containerd-\(other).scope")
        let (docker, otherDocker) = ("/system.slice/docker-\(id).scope", "/system.slice/docker-\(other).scope")
        let shell = "/user.slice/user-0.slice/session-3.scope"
        func named(_ paths: Set<String>, oldest: String) -> Workload? { NamespaceDirectory.workload(of: paths, oldest: oldest) }
        // A pod: its pause container (the oldest) and its app container share the namespace; with
        // cgroupfs's paths too.
        #expect(named([pause, app], oldest: pause) == Workload(kind: .pod, name: uid))
        let cgroupfs = "/kubepods/besteffort/pod\(uid)/\(id)"
        #expect(named([cgroupfs, "/kubepods/besteffort/pod\(uid)/\(other)"], oldest: cgroupfs) == Workload(kind: .pod, name: uid))
        #expect(named([docker], oldest: docker) == Workload(kind: .container, name: String(id.prefix(12))))
        #expect(named(["/docker/\(id)"], oldest: "/docker/\(id)") == Workload(kind: .container, name: String(id.prefix(12))))
        #expect(named(["/system.slice/nginx.service"], oldest: "/system.slice/nginx.service") == Workload(kind: .unit, name: "nginx.service"))
        // A host's process visiting later (`ip netns exec`, `nsenter -n` from a shell or a service) is a guest.
        #expect(named([pause, shell, "/system.slice/ssh.service"], oldest: pause) == Workload(kind: .pod, name: uid))
        #expect(named([docker, shell], oldest: docker) == Workload(kind: .container, name: String(id.prefix(12))))
        // A container joining a namespace something else made (`--network host` on a machine, a
        // VPN namespace a unit made and `--network ns:PATH`) does not name it.
        #expect(named(["/init.scope", docker], oldest: "/init.scope") == nil)
        #expect(named(["/system.slice/vpn.service", docker], oldest: "/system.slice/vpn.service") == nil)
        #expect(named(["/system.slice/vpn.service", pause], oldest: "/system.slice/vpn.service") == nil)
        // Two pods, a pod and a container outside it, two containers, two units, a unit and a
        // plain cgroup: none.
        #expect(named([pause, "/kubepods.slice/kubepods-pod11111111_2222_3333_4444_555555555555.slice/cri-containerd-\(other).scope"], oldest: pause) == nil)
        #expect(named([pause, otherDocker], oldest: pause) == nil)
        #expect(named([docker, otherDocker], oldest: docker) == nil)
        #expect(named(["/system.slice/nginx.service", shell], oldest: "/system.slice/nginx.service") == nil)
        #expect(named(["/system.slice/nginx.service", "/init"], oldest: "/init") == nil)
    }

    @Test func aProcessStartIsReadFromProcStat() throws {
        let own = try #require(ProcessStart.ticks(getpid()))
        #expect(own > 0)
        #expect(try #require(ProcessStart.ticks(1)) <= own)
        #expect(ProcessStart.ticks(Int32.max) == nil)
    }

    @Test func aLabelShowsItsNameElseItsWorkloadElseHostElseItsInode() {
        let container = Workload(kind: .container, name: "3f2a1b0c9d8e")
        #expect(NamespaceLabel(inode: 7, name: "blue", workload: container).display == "blue")
        #expect(NamespaceLabel(inode: 7, workload: container).display == "3f2a1b0c9d8e")
        #expect(NamespaceLabel(inode: 7, isHost: true).display == "host")
        #expect(NamespaceLabel(inode: 7).display == "7")
        var out = JSONWriter()
        out.begin("{")
        NamespaceLabel(inode: 7, workload: container).write(into: &out)
        out.end("}")
        #expect(out.text == #"{"netns":{"inode":7,"name":null,"container":"3f2a1b0c9d8e","pod":null,"unit":null,"host":false}}"#)
        #expect(NamespaceLabel(inode: 7, name: "blue", workload: container).metricLabels.map { "\($0.0)=\($0.1)" } == ["netns=blue", "container=3f2a1b0c9d8e"])
        #expect(NamespaceLabel(inode: 7, workload: container).metricLabels.map { "\($0.0)=\($0.1)" } == ["netns=7", "container=3f2a1b0c9d8e"])
    }

    @Test func netnsIsANameAPIDOrAPathAndNothingElse() throws {
        let own = try NamespaceScope.named(String(getpid()))
        #expect(own == .one(path: "/proc/\(getpid())/ns/net", inode: NetworkNamespace.inode()))
        #expect(try NamespaceScope.named("/proc/self/ns/net") == .one(path: "/proc/self/ns/net", inode: NetworkNamespace.inode()))
        #expect(throws: NetacctError.self) { try NamespaceScope.named("no-such-namespace-\(getpid())") }
        #expect(throws: NetacctError.self) { try NamespaceScope.named("/proc/self/ns/uts") }
        #expect(NamespaceScope.all.filterInode == 0 && !NamespaceScope.current.labelled && NamespaceScope.all.labelled)
    }

    @Test(.enabled(if: getuid() == 0, "enters namespaces: needs root"))
    func rtnetlinkListsWhatSysfsShows() throws {
        // This thread's own namespace, by both sources: the same interfaces.
        let sysfs = NetworkInterface.all()
        let netlink = try RouteNetlink.links().sorted { $0.name < $1.name }
        #expect(netlink.map(\.name) == sysfs.map(\.name))
        #expect(netlink.map(\.ifindex) == sysfs.map(\.ifindex))
        #expect(netlink.map(\.isUp) == sysfs.map(\.isUp))
    }
}
