// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "netacct",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "netacct", targets: ["netacct"]),
        .library(name: "BPF", targets: ["BPF"]),
        .library(name: "Accounting", targets: ["Accounting"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.6.0"),
        // Only its GRDBSQLite module: Debian's libsqlite3 as a Swift module.
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
    ],
    targets: [
        // libbpf from Debian (libbpf-dev), plus the few C shims Swift cannot express.
        .target(name: "CLibbpf", linkerSettings: [.linkedLibrary("bpf")]),
        // The Swift wrapper over libbpf: objects, programs, typed maps, links, iterators,
        // ring buffers. It knows nothing of networking.
        .target(
            name: "BPF",
            dependencies: [
                "CLibbpf",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // Compiles bpf/*.bpf.c during `swift build` and embeds each object as Swift source.
        .executableTarget(name: "BPFEmbed"),
        .plugin(name: "BPFCompiler", capability: .buildTool(), dependencies: ["BPFEmbed"]),
        .target(name: "NetacctPrograms", dependencies: ["BPF"], plugins: ["BPFCompiler"]),
        // The structs shared with the BPF programs (bpf/*.h), imported into Swift.
        .target(name: "CNetacct"),
        // What every tool shares: errors, the clock, units, the ordered JSON writer, the Unix
        // socket wrapper, cgroup names, kernel probes.
        .target(
            name: "NetacctKit",
            dependencies: [
                "BPF", "CGlibcExtras",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // The daemon's local API: verbs, reply records (Codable both ways), the client connection.
        .target(name: "DaemonProtocol", dependencies: ["NetacctKit"]),
        // Accounting: loading the programs, samples, the process table, the multi-client service.
        .target(
            name: "Accounting",
            dependencies: [
                "BPF", "CNetacct", "NetacctPrograms", "NetacctKit",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // `netacct top`, the terminal app: a daemon's counters or its own engine, as a table or JSON lines.
        .target(
            name: "Top",
            dependencies: [
                "Accounting", "DaemonProtocol", "NetacctKit", "CGlibcExtras",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // `netacct nic`: frames, bytes and segments per interface and queue.
        .target(
            name: "NIC",
            dependencies: [
                "BPF", "CNetacct", "NetacctPrograms", "NetacctKit",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // `netacct connections`: TCP connections as they are established, fail and close.
        .target(
            name: "Connections",
            dependencies: [
                "BPF", "CNetacct", "NetacctPrograms", "NetacctKit",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // `netacct drops`: every dropped incoming TCP/UDP packet, its reason and its socket's owner.
        .target(
            name: "Drops",
            dependencies: [
                "BPF", "CNetacct", "NetacctPrograms", "NetacctKit",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // `netacct latency in|out`: the time a TCP segment spends in each kernel layer.
        .target(
            name: "Latency",
            dependencies: [
                "BPF", "CNetacct", "NetacctPrograms", "NetacctKit",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "SystemPackage", package: "swift-system"),
            ]
        ),
        // `netacct history` and the daemon's history file: SQLite (Debian's libsqlite3, through
        // GRDB.swift's module map), its schema, what is recorded and how it is read back.
        .target(
            name: "History",
            dependencies: [
                "DaemonProtocol", "NetacctKit",
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ]
        ),
        // The glibc calls the Glibc module leaves out (malloc_trim, strerrorname_np).
        .target(name: "CGlibcExtras"),
        // The servers: the netatop-bpf protocol for atop, the local API for `netacct top`.
        .target(
            name: "NetacctServers",
            dependencies: [
                "Accounting", "NIC", "Latency", "Drops", "Connections", "History", "DaemonProtocol", "NetacctKit", "CGlibcExtras",
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // The command line: parsing and wiring only.
        .executableTarget(
            name: "netacct",
            dependencies: [
                "Accounting", "DaemonProtocol", "NetacctKit", "Top", "NIC", "Connections", "Drops", "Latency", "History", "NetacctServers",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        // Programs and shared headers that exist only to test the BPF module (bpf/tests/).
        .target(name: "BPFTestPrograms", dependencies: ["BPF"], path: "Tests/BPFTestPrograms", plugins: ["BPFCompiler"]),
        .target(name: "CSelftest", path: "Tests/CSelftest"),
        // The per-event cost benchmark (bench/README.md); not a test, not part of the product.
        .executableTarget(
            name: "netacct-bench",
            dependencies: ["BPF", "Accounting", "NIC", "Connections", "Drops", "Latency", "History", "DaemonProtocol", "NetacctKit", "NetacctServers", "ProtocolClients", "BPFTestPrograms", "CTestSupport", "CNetacct", "CGlibcExtras", "NetacctPrograms"],
            path: "bench/netacct-bench"
        ),
        .testTarget(name: "BPFTests", dependencies: ["BPF", "BPFTestPrograms", "CSelftest", "NetacctKit"]),
        .target(name: "CTestSupport", path: "Tests/CTestSupport", linkerSettings: [.linkedLibrary("pthread")]),
        .testTarget(name: "AccountingTests", dependencies: ["Accounting", "NetacctKit", "CTestSupport"]),
        .testTarget(name: "TopTests", dependencies: ["Top", "Accounting", "NetacctKit"]),
        .testTarget(name: "NICTests", dependencies: ["NIC", "NetacctKit"]),
        .testTarget(name: "HistoryTests", dependencies: ["History", "DaemonProtocol", "NetacctKit"]),
        .testTarget(name: "ConnectionsTests", dependencies: ["Connections", "CNetacct", "NetacctKit", "CTestSupport"]),
        .testTarget(name: "LatencyTests", dependencies: ["Latency", "CNetacct", "NetacctKit"]),
        .testTarget(name: "DropsTests", dependencies: ["Drops", "CNetacct", "NetacctKit"]),
        .testTarget(name: "NetacctKitTests", dependencies: ["NetacctKit", "BPF", .product(name: "SystemPackage", package: "swift-system")]),
        // A client of the netatop-bpf protocol that behaves as atop does, for tests and benchmarks.
        .target(name: "ProtocolClients", dependencies: ["NetacctServers", "NetacctKit"], path: "Tests/ProtocolClients"),
        .testTarget(name: "NetacctCLITests", dependencies: ["netacct", "NetacctServers", "ProtocolClients", "Accounting", "DaemonProtocol", "NetacctKit", "CTestSupport"]),
        .testTarget(name: "DaemonProtocolTests", dependencies: ["DaemonProtocol", "NetacctKit"]),
        .testTarget(
            name: "NetacctServersTests",
            dependencies: [
                "NetacctServers", "Accounting", "DaemonProtocol", "NetacctKit", "Drops", "Connections", "CNetacct",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
    ]
)
