import NetacctKit
import Testing

/// Cgroup paths as systemd, docker, containerd, CRI-O, podman and the kubelet make them.
struct WorkloadTests {
    static let id = "3f4e1a0b2c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7"
    static let uid = "6b1b7a8e-2f4c-4d3e-9a5b-0c1d2e3f4a5b"

    @Test(arguments: [
        ("/system.slice/nginx.service", Workload(kind: .unit, name: "nginx.service")),
        ("/user.slice/user-1000.slice/session-3.scope", Workload(kind: .unit, name: "session-3.scope")),
        ("/user.slice/user-1000.slice", Workload(kind: .unit, name: "user-1000.slice")),
        ("/system.slice/docker-\(id).scope", Workload(kind: .container, name: String(id.prefix(12)))),
        ("/docker/\(id)", Workload(kind: .container, name: String(id.prefix(12)))),
        ("/machine.slice/libpod-\(id).scope", Workload(kind: .container, name: String(id.prefix(12)))),
        ("/machine.slice/libpod-\(id).scope/container", Workload(kind: .other, name: "container")),
        ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(uid.replacingDashes).slice/cri-containerd-\(id).scope",
         Workload(kind: .container, name: String(id.prefix(12)))),
        ("/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod\(uid.replacingDashes).slice/crio-\(id).scope",
         Workload(kind: .container, name: String(id.prefix(12)))),
        ("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod\(uid.replacingDashes).slice", Workload(kind: .pod, name: uid)),
        ("/kubepods.slice/kubepods-pod\(uid.replacingDashes).slice", Workload(kind: .pod, name: uid)),
        ("/kubepods/burstable/pod\(uid)", Workload(kind: .pod, name: uid)),
        ("/kubepods/burstable/pod\(uid)/\(id)", Workload(kind: .container, name: String(id.prefix(12)))),
        ("/kubepods.slice/kubepods-burstable.slice", Workload(kind: .unit, name: "kubepods-burstable.slice")),
        ("/", Workload(kind: .other, name: "/")),
        ("/batch/job-7", Workload(kind: .other, name: "job-7")),
        ("/not-docker/\(id)", Workload(kind: .other, name: id)),
        ("/system.slice/docker-123.scope", Workload(kind: .unit, name: "docker-123.scope")),
    ])
    func aCgroupIsNamedAsPeopleKnowIt(path: String, expected: Workload) {
        #expect(Workload(path: path) == expected)
    }
}

extension String {
    var replacingDashes: String { String(map { $0 == "-" ? "_" : $0 }) }
}
