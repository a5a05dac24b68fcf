// What the tests that run `fer` share: the repository root, the built binary, a runner with a time limit
// (a hung MPI job fails its test instead of hanging the suite) and mpirun's arguments.
import FERCore
import Foundation

/// Repository root: this file is Sources/FERTestSupport/Subprocess.swift.
public let repoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent().path

/// The `fer` binary under test: $FER_BIN, else the one SwiftPM built next to this test bundle (same
/// product folder), else the repository's usual build folders. Missing is an error, not a skip.
public func ferBinary() throws -> String {
    let env = ProcessInfo.processInfo.environment
    if let b = env["FER_BIN"], !b.isEmpty { return b }
    let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe"))
        ?? Bundle.main.executablePath ?? CommandLine.arguments[0]
    var dir = URL(fileURLWithPath: me).deletingLastPathComponent()
    // macOS: the executable sits inside X.xctest/Contents/MacOS; climb out to the product folder.
    while dir.path.contains(".xctest") { dir = dir.deletingLastPathComponent() }
    let candidates = [dir.path + "/fer"] + [".build", ".build-cluster", ".build-dist"].flatMap { b in
        ["release", "debug"].map { "\(repoRoot)/\(b)/\($0)/fer" } }
    if let found = candidates.first(where: { FileManager.default.isExecutableFile(atPath: $0) }) { return found }
    throw FERError("no built fer binary (looked at \(candidates)); run `swift build` or set FER_BIN")
}

public struct RunResult: Sendable {
    public let status: Int32, output: String, timedOut: Bool, seconds: Double
}

/// Runs `argv` (stdout and stderr together) with one OpenMP thread unless `env` says otherwise, the
/// permission variables mpirun needs as root, and none of the caller's MPI or FER_ variables.
public func runCommand(_ argv: [String], timeout: TimeInterval = 180, env extra: [String: String] = [:]) throws -> RunResult {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = argv
    var env = ProcessInfo.processInfo.environment
    // A test started under mpirun must not make its children think they are ranks of that job.
    for k in env.keys where k.hasPrefix("OMPI_COMM_WORLD") || k.hasPrefix("PMIX_") || k.hasPrefix("FER_") { env[k] = nil }
    env["OMPI_ALLOW_RUN_AS_ROOT"] = "1"; env["OMPI_ALLOW_RUN_AS_ROOT_CONFIRM"] = "1"; env["OMP_NUM_THREADS"] = "1"
    p.environment = env.merging(extra) { $1 }
    let log = FileManager.default.temporaryDirectory.appendingPathComponent("fer-test-\(UUID()).log")
    _ = FileManager.default.createFile(atPath: log.path, contents: nil)
    let fh = try FileHandle(forWritingTo: log)
    defer { try? fh.close(); try? FileManager.default.removeItem(at: log) }
    p.standardOutput = fh; p.standardError = fh
    let done = DispatchSemaphore(value: 0)
    p.terminationHandler = { _ in done.signal() }
    let start = Date()
    try p.run()
    var timedOut = false
    if done.wait(timeout: .now() + timeout) == .timedOut {
        timedOut = true
        p.terminate()  // SIGTERM: mpirun forwards it to its ranks and cleans up
        if done.wait(timeout: .now() + 10) == .timedOut { kill(p.processIdentifier, SIGKILL); done.wait() }
    }
    let out = (try? String(contentsOf: log, encoding: .utf8)) ?? ""
    return RunResult(status: p.terminationStatus, output: out, timedOut: timedOut, seconds: Date().timeIntervalSince(start))
}

/// mpirun on this 2-core machine: oversubscribed, unbound, passing `env`'s variables to every rank.
public func mpirun(_ np: Int, env: [String: String] = [:]) -> [String] {
    ["mpirun", "-np", "\(np)", "--oversubscribe", "--bind-to", "none"] + env.keys.sorted().flatMap { ["-x", $0] }
}

/// Waits (up to `timeout` seconds) until process `pid` catches `signal` (Linux: the SigCgt mask of
/// /proc/PID/status), so a test signals a command after it installed its handler, not during start-up.
/// Returns whether it does.
@discardableResult
public func waitForHandler(pid: Int32, signal: Int32, timeout: TimeInterval = 30) -> Bool {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        if let line = status.split(separator: "\n").first(where: { $0.hasPrefix("SigCgt:") }),
           let mask = UInt64(line.dropFirst("SigCgt:".count).trimmingCharacters(in: .whitespaces), radix: 16),
           mask & (1 << UInt64(signal - 1)) != 0 { return true }
        usleep(10_000)
    }
    return false
}
