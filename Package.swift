// swift-tools-version: 6.0
// Osprey: a Swift inference engine for open-weight LLMs on Linux (NVIDIA GPUs and the CPU).
// The module map and what each target owns are in DESIGN.md (kept in ../shared and summarised in README.md).
import PackageDescription

let package = Package(
    name: "Osprey",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "osprey", targets: ["osprey"]),
        .library(name: "Osprey", targets: ["OspreyCore", "OspreyCPU", "OspreyCUDA", "OspreyIO", "OspreyQuant", "OspreyModels", "OspreyTokenizers", "OspreyJinja", "OspreyGeneration"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
    ],
    targets: [
        .target(name: "OspreyCore", dependencies: [.product(name: "Logging", package: "swift-log")]),
        .target(name: "OspreyCPU", dependencies: ["OspreyCore"]),
        .target(name: "OspreyCUDA", dependencies: ["OspreyCore"], resources: [.copy("Kernels")]),
        .target(name: "OspreyIO", dependencies: ["OspreyCore"]),
        .target(name: "OspreyQuant", dependencies: ["OspreyCore", "OspreyIO"]),
        .target(name: "OspreyModels", dependencies: ["OspreyCore", "OspreyCPU", "OspreyIO", "OspreyQuant"]),
        .target(name: "OspreyTokenizers"),
        .target(name: "OspreyJinja"),
        .target(name: "OspreyGeneration", dependencies: ["OspreyCore", "OspreyCPU", "OspreyCUDA", "OspreyModels", "OspreyTokenizers", "OspreyJinja"]),
        .target(name: "OspreyServer", dependencies: [
            "OspreyCore", "OspreyModels", "OspreyTokenizers", "OspreyGeneration",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            .product(name: "Logging", package: "swift-log"),
            .product(name: "Prometheus", package: "swift-prometheus"),
        ]),
        .executableTarget(name: "osprey", dependencies: [
            "OspreyCore", "OspreyCPU", "OspreyCUDA", "OspreyIO", "OspreyQuant", "OspreyModels", "OspreyTokenizers", "OspreyJinja", "OspreyGeneration", "OspreyServer",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
        .executableTarget(name: "tokenizer-throughput", dependencies: ["OspreyTokenizers"],
                          path: "benchmarks/tokenizer_throughput", exclude: ["compare.py"]),
        .testTarget(name: "OspreyCoreTests", dependencies: ["OspreyCore"]),
        .testTarget(name: "OspreyCUDATests", dependencies: ["OspreyCore", "OspreyCPU", "OspreyCUDA"]),
        .testTarget(name: "OspreyCPUTests", dependencies: ["OspreyCore", "OspreyCPU"]),
        .testTarget(name: "OspreyIOTests", dependencies: ["OspreyCore", "OspreyIO"]),
        .testTarget(name: "OspreyQuantTests", dependencies: ["OspreyCore", "OspreyIO", "OspreyQuant"]),
        .testTarget(name: "OspreyModelsTests", dependencies: ["OspreyCore", "OspreyCPU", "OspreyIO", "OspreyQuant", "OspreyModels"],
                    exclude: ["Fixtures"]),
        .testTarget(name: "OspreyTokenizersTests", dependencies: ["OspreyTokenizers"]),
        .testTarget(name: "OspreyJinjaTests", dependencies: ["OspreyJinja"]),
        .testTarget(name: "OspreyCLITests", dependencies: ["OspreyCPU", "OspreyIO", "OspreyQuant", "OspreyModels", "OspreyGeneration", "OspreyTokenizers"]),
        .testTarget(name: "OspreyServerTests", dependencies: [
            "OspreyCore", "OspreyModels", "OspreyTokenizers", "OspreyGeneration", "OspreyServer",
            .product(name: "Hummingbird", package: "hummingbird"),
            .product(name: "HummingbirdTesting", package: "hummingbird"),
        ]),
        .testTarget(name: "OspreyGenerationTests", dependencies: ["OspreyCore", "OspreyCPU", "OspreyModels", "OspreyTokenizers", "OspreyJinja", "OspreyGeneration"]),
    ],
    swiftLanguageModes: [.v6]
)
