import Foundation
import Glibc
import Testing

/// dist/kubernetes: each manifest against the Kubernetes schemas (kubernetes-validate, from
/// PyPI: scripts/test installs it into .build/test-python), the parts that must agree with one
/// another and with the .deb, and the DaemonSet's command run here as the cluster would run it:
/// as root with only the capabilities it adds, every other one gone from the bounding set.
@Suite(.serialized)
struct KubernetesManifestTests {
    static let directory = BuiltPackage.repository.appendingPathComponent("dist/kubernetes")
    static let tools = BuiltPackage.repository.appendingPathComponent(".build/test-python/bin")
    static let manifests = ["namespace.yaml", "daemonset.yaml", "service.yaml"]
    static let port = 23500 + Int(getpid() % 300)

    static var validator: String? {
        let path = tools.appendingPathComponent("kubernetes-validate").path
        return FileManager.default.isExecutableFile(atPath: path) ? path : nil
    }

    /// A manifest's documents, as JSON objects (read with the validator's own PyYAML).
    static func documents(_ name: String) throws -> [[String: Any]] {
        let python = tools.appendingPathComponent("python")
        let read = try Binary.run(python, ["-c", "import json, sys, yaml; print(json.dumps(list(yaml.safe_load_all(open(sys.argv[1])))))",
                                           directory.appendingPathComponent(name).path])
        try #require(read.status == 0, "\(name): \(read.err)")
        return try #require(try JSONSerialization.jsonObject(with: Data(read.out.utf8)) as? [[String: Any]])
    }

    @Test(.enabled(if: validator != nil || ProcessInfo.processInfo.environment["CI"] == "true",
                   "no .build/test-python/bin/kubernetes-validate: scripts/test installs it"))
    func everyManifestValidatesAgainstTheKubernetesSchemas() throws {
        let validator = try #require(Self.validator)
        let present = try FileManager.default.contentsOfDirectory(atPath: Self.directory.path).filter { $0.hasSuffix(".yaml") }
        #expect(Set(present) == Set(Self.manifests), "every manifest is validated")
        // The oldest Kubernetes the DaemonSet's fields need (appArmorProfile), and the newest known.
        for version in ["1.30.0", "1.37.0"] {
            let result = try Binary.run(URL(fileURLWithPath: validator),
                                        ["--strict", "-k", version] + Self.manifests.map { Self.directory.appendingPathComponent($0).path })
            #expect(result.status == 0, "Kubernetes \(version): \(result.out)\(result.err)")
            #expect(!result.out.contains("ERROR") && !result.out.contains("WARN") && !result.err.contains("WARN"), "\(result.out)\(result.err)")
            for manifest in Self.manifests {
                #expect(result.out.contains("INFO \(Self.directory.appendingPathComponent(manifest).path) passed"), "\(manifest), \(version): \(result.out)")
            }
        }
    }

    /// The DaemonSet's container, its capabilities and the port it serves, and the Service and
    /// Containerfile that go with it.
    struct DaemonSet {
        var arguments: [String]
        var capabilities: [String]
        var port: Int
    }

    static func daemonSet() throws -> DaemonSet {
        let daemonSet = try #require(try documents("daemonset.yaml").first)
        let template = try #require((daemonSet["spec"] as? [String: Any])?["template"] as? [String: Any])
        let pod = try #require(template["spec"] as? [String: Any])
        #expect(pod["hostPID"] as? Bool == true && pod["hostNetwork"] as? Bool == true)
        let container = try #require((pod["containers"] as? [[String: Any]])?.first)
        let arguments = try #require(container["args"] as? [String])
        let security = try #require(container["securityContext"] as? [String: Any])
        #expect(security["privileged"] as? Bool == false)
        let capabilities = try #require(security["capabilities"] as? [String: [String]])
        #expect(capabilities["drop"] == ["ALL"], "every capability it does not add is dropped")
        let added = try #require(capabilities["add"])
        let ports = try #require(container["ports"] as? [[String: Any]])
        let metrics = try #require(ports.first { $0["name"] as? String == "metrics" }?["containerPort"] as? Int)
        // The port it listens on is the one it declares, its annotations name, and its probes ask.
        let listen = try #require(arguments.firstIndex(of: "--listen").map { arguments[$0 + 1] })
        #expect(listen == "$(NODE_IP):\(metrics)")
        let environment = try #require(container["env"] as? [[String: Any]])
        let nodeIP = (environment.first { $0["name"] as? String == "NODE_IP" }?["valueFrom"] as? [String: Any])?["fieldRef"] as? [String: Any]
        #expect(nodeIP?["fieldPath"] as? String == "status.hostIP")
        let annotations = (template["metadata"] as? [String: Any])?["annotations"] as? [String: String]
        #expect(annotations?["prometheus.io/port"] == "\(metrics)" && annotations?["prometheus.io/path"] == "/metrics")
        for probe in ["livenessProbe", "readinessProbe"] {
            let get = (container[probe] as? [String: Any])?["httpGet"] as? [String: Any]
            #expect(get?["path"] as? String == "/healthz" && get?["port"] as? String == "metrics", "\(probe)")
        }
        let mounts = Set((container["volumeMounts"] as? [[String: Any]] ?? []).compactMap { $0["mountPath"] as? String })
        #expect(mounts == ["/run", "/sys/kernel/tracing", "/sys/fs/cgroup"])

        let service = try #require(try documents("service.yaml").first)
        let servicePort = ((service["spec"] as? [String: Any])?["ports"] as? [[String: Any]])?.first
        #expect(servicePort?["port"] as? Int == metrics && servicePort?["targetPort"] as? String == "metrics")
        #expect((service["metadata"] as? [String: Any]).flatMap { $0["annotations"] as? [String: String] }?["prometheus.io/port"] == "\(metrics)")
        // The image runs what the .deb installs, on the Debian the install test installs it on.
        let containerfile = try String(contentsOf: directory.appendingPathComponent("Containerfile"), encoding: .utf8)
        #expect(containerfile.contains("FROM docker.io/library/debian:12-slim") && containerfile.contains(#"ENTRYPOINT ["/usr/sbin/netacct"]"#))
        return DaemonSet(arguments: arguments, capabilities: added, port: metrics)
    }

    /// The DaemonSet's arguments, on this machine: its own address and a port of this suite,
    /// sockets of its own.
    static func runHere(_ daemonSet: DaemonSet, capabilities: [String], port: Int) throws -> DaemonProcess {
        #expect(daemonSet.arguments.first == "daemon")
        let arguments = daemonSet.arguments.dropFirst().map { $0 == "$(NODE_IP):\(daemonSet.port)" ? "127.0.0.1:\(port)" : $0 }
        let bounding = "--bounding-set=-all" + capabilities.map { ",+" + $0.lowercased() }.joined()
        return try DaemonProcess(extra: Array(arguments), prefix: ["setpriv", bounding])
    }

    static func scrape(_ port: Int) throws -> String {
        var scrape = (status: 0, body: "")
        for _ in 0..<100 where scrape.status != 200 {
            scrape = try Curl.get("http://127.0.0.1:\(port)/metrics")
            if scrape.status != 200 { usleep(100_000) }
        }
        try #require(scrape.status == 200, "/metrics answered \(scrape.status)")
        return scrape.body
    }

    /// With only its capabilities, the DaemonSet's daemon loads every program its arguments ask
    /// for, answers its probes, and names a container's network namespace (entering it needs
    /// CAP_SYS_ADMIN, reading its processes' namespaces CAP_SYS_PTRACE). Without CAP_SYS_ADMIN
    /// it says what it cannot do and why, and serves the rest.
    @Test(.enabled(if: isRoot, "runs the daemon with the DaemonSet's capabilities: needs root"))
    func theDaemonSetsCommandRunsWithOnlyTheCapabilitiesItAdds() throws {
        let daemonSet = try Self.daemonSet()
        #expect(Set(daemonSet.capabilities) == ["BPF", "PERFMON", "NET_ADMIN", "SYS_ADMIN", "SYS_PTRACE"], "\(daemonSet.capabilities)")
        let host = try ContainerHost(spokes: 1)
        let spoke = try #require(host.spokes[1])
        let labels = "netns=\"\(spoke.namespace)\",\(spoke.workload.kind.rawValue)=\"\(spoke.workload.name)\""

        let before = try AllNamespacesTests.kernel(host, 1)
        let daemon = try Self.runHere(daemonSet, capabilities: daemonSet.capabilities, port: Self.port)
        _ = try Self.scrape(Self.port)
        try host.sendTCP(to: 1, 5)
        usleep(300_000)
        let metrics = try Self.scrape(Self.port)
        let delta = try AllNamespacesTests.kernel(host, 1) - before
        let frames = metrics.split(separator: "\n").first { $0.hasPrefix("netacct_nic_frames_total{interface=\"eth0\",queue=\"0\",direction=\"rx\",\(labels)}") }
        #expect(frames.flatMap { UInt64($0.split(separator: " ").last ?? "") } == delta.rxPackets,
                "the container's interface, named by its namespace and container, counted as its kernel counts it")
        #expect(metrics.contains("netacct_process_group_bytes_total{group="), "the accounting programs loaded")
        let healthz = try Curl.get("http://127.0.0.1:\(Self.port)/healthz")
        #expect(healthz.status == 200)
        let log = daemon.stopExpectingSuccess()
        #expect(!log.contains("cannot read") && !log.contains("Operation not permitted"), "\(log.suffix(3000))")

        // Without CAP_SYS_ADMIN: said once per namespace, with what it needs; the rest is served.
        let without = try Self.runHere(daemonSet, capabilities: daemonSet.capabilities.filter { $0 != "SYS_ADMIN" }, port: Self.port + 1)
        let served = try Self.scrape(Self.port + 1)
        #expect(served.contains("netacct_nic_frames_total{interface=\"lo\""))
        #expect(!served.contains(labels))
        try without.awaitLog("cannot read the interfaces of network namespace \(spoke.namespace)")
        let said = without.stopExpectingSuccess()
        let warning = said.split(separator: "\n").filter { $0.contains("network namespace \(spoke.namespace)") && $0.contains("cannot read") }
        #expect(warning.count == 1 && warning.first?.contains("needs CAP_SYS_ADMIN") == true, "\(said.suffix(3000))")
    }
}
