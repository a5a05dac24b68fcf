// swift-tools-version:6.0
import Foundation
import PackageDescription

// Dependencies point one way: fer -> FERTrain -> {FERNet, FERData, FERCluster, FERPlot}.
// FERNet knows nothing of MPI or files; FERData knows nothing of networks.
// Numeric loops: no bounds or overflow traps. FER_CHECKED=1 builds with them, to measure what they cost.
// Only FERNet's kernels run unchecked: the modules that parse files (FERData, FERTrain) keep their traps,
// so a value a hostile file slips past validation stops the program instead of corrupting memory.
let hot: [SwiftSetting] = ProcessInfo.processInfo.environment["FER_CHECKED"] == nil ? [.unsafeFlags(["-Ounchecked", "-wmo"])] : []

let package = Package(
    name: "fer-cluster",
    platforms: [.macOS(.v15)],
    products: [.executable(name: "fer", targets: ["fer"])],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "5.0.1"),
    ],
    targets: [
        .systemLibrary(name: "CMPI", path: "Sources/CMPI", pkgConfig: "ompi-c",
                       providers: [.apt(["libopenmpi-dev", "openmpi-bin"])]),
        .systemLibrary(name: "CDNNL", path: "Sources/CDNNL", providers: [.apt(["libdnnl-dev"])]),
        .systemLibrary(name: "CSTB", path: "Sources/CSTB", pkgConfig: "stb", providers: [.apt(["libstb-dev"])]),
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "COpenCV", path: "Sources/COpenCV", pkgConfig: "opencv4", providers: [.apt(["libopencv-dev", "opencv-data"])]),

        .target(name: "FERCore"),
        .target(name: "FERData", dependencies: ["FERCore", "CSTB", "CZlib"]),
        .target(name: "FERPlot", dependencies: ["FERCore", "CSTB"]),
        .target(name: "FERNet", dependencies: ["FERCore", "CDNNL"], swiftSettings: hot),
        .target(name: "FERCluster", dependencies: ["FERCore", "CMPI"]),
        .target(name: "FERTrain", dependencies: ["FERData", "FERNet", "FERCluster", "FERPlot", "Yams"]),
        // Faces in real pictures and videos: OpenCV (C++) behind a C interface, classified with a checkpoint.
        .target(name: "CFaces", dependencies: ["COpenCV"]),
        .target(name: "FERFaces", dependencies: ["CFaces", "FERTrain", "FERData", "FERCore"]),
        .executableTarget(name: "fer", dependencies: [
            "FERTrain", "FERCluster", "FERData", "FERNet", "FERCore", "FERFaces",
            .product(name: "ArgumentParser", package: "swift-argument-parser")]),
        // libFuzzer targets for the file parsers (scripts/fuzz builds it with -sanitize=fuzzer,address
        // -DFUZZING); a plain build makes a replayer of saved inputs instead.
        .executableTarget(name: "fer-fuzz", dependencies: ["FERCore", "FERData", "FERNet", "FERTrain", "CSTB", "FERTestSupport"],
                          path: "Sources/FERFuzz"),

        .testTarget(name: "FERDataTests", dependencies: ["FERCore", "FERData", "FERPlot", "CSTB", "FERTestSupport"]),
        .testTarget(name: "FERNetTests", dependencies: ["FERCore", "FERNet"]),
        .testTarget(name: "FERClusterTests", dependencies: ["FERCluster", "CMPI", "FERTestSupport"]),
        .testTarget(name: "FERTrainTests", dependencies: ["FERCore", "FERData", "FERNet", "FERCluster", "FERTrain", "FERTestSupport"]),
        // Shared by the tests and fer-fuzz's seed corpus: runners of `fer`, zip fixtures (zlib deflates them).
        .target(name: "FERTestSupport", dependencies: ["FERCore", "FERData", "CZlib"], path: "Tests/FERTestSupport"),
        .testTarget(name: "EndToEndTests", dependencies: ["FERCore", "FERData", "FERTestSupport"]),
        .testTarget(name: "FERFacesTests", dependencies: ["FERCore", "FERData", "FERFaces", "FERTestSupport"]),
    ],
    swiftLanguageModes: [.v6]
)
