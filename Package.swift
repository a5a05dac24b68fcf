// swift-tools-version:6.0
import Foundation
import PackageDescription

// Dependencies point one way: fer -> FERTrain -> {FERNet, FERData, FERCluster, FERPlot}.
// FERNet knows nothing of MPI or files; FERData knows nothing of networks.
// Numeric loops: no bounds or overflow traps. FER_CHECKED=1 builds with them, to measure what they cost.
let hot: [SwiftSetting] = ProcessInfo.processInfo.environment["FER_CHECKED"] == nil ? [.unsafeFlags(["-Ounchecked", "-wmo"])] : []

let package = Package(
    name: "fer-cluster",
    platforms: [.macOS(.v13)],
    products: [.executable(name: "fer", targets: ["fer"])],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
        .package(url: "https://github.com/weichsel/ZIPFoundation", from: "0.9.19"),
    ],
    targets: [
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL", providers: [.apt(["libdnnl-dev"])]),
        .systemLibrary(name: "CSTB", path: "Sources/CSTB", pkgConfig: "stb", providers: [.apt(["libstb-dev"])]),

        .target(name: "FERCore", swiftSettings: hot),
        .target(name: "FERData", dependencies: ["FERCore", "CSTB", "ZIPFoundation"], swiftSettings: hot),
        .target(name: "FERPlot", dependencies: ["CSTB"], swiftSettings: hot),
        .target(name: "FERNet", dependencies: ["FERCore", "CDNNL", "Yams"], swiftSettings: hot),
        .target(name: "FERCluster", dependencies: ["FERCore", "CMPI"]),
        .target(name: "FERTrain", dependencies: ["FERData", "FERNet", "FERCluster", "FERPlot", "Yams"], swiftSettings: hot),
        .executableTarget(name: "fer", dependencies: [
            "FERTrain", "FERCluster", "FERData", "FERNet", "FERCore",
            .product(name: "ArgumentParser", package: "swift-argument-parser")]),

        .testTarget(name: "FERDataTests", dependencies: ["FERCore", "FERData", "FERPlot", "CSTB", "ZIPFoundation"]),
        .testTarget(name: "FERNetTests", dependencies: ["FERCore", "FERNet"]),
        .testTarget(name: "FERClusterTests", dependencies: ["FERCluster", "CMPI", "FERTestSupport"]),
        .testTarget(name: "FERTrainTests", dependencies: ["FERCore", "FERData", "FERNet", "FERCluster", "FERTrain", "FERTestSupport"]),
        .target(name: "FERTestSupport", dependencies: ["FERCore"], path: "Tests/FERTestSupport"),
        .testTarget(name: "EndToEndTests", dependencies: ["FERCore", "FERData", "FERTestSupport"]),
    ],
    swiftLanguageModes: [.v5]
)
