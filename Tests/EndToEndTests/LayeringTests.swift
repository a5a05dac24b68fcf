// The module layering Package.swift's comment states, checked against the manifest and every source
// file's imports: SwiftPM builds a module whose file imports a target it does not declare (the target is
// built anyway for someone else), so an undeclared arrow would otherwise go unnoticed.
import FERTestSupport
import Foundation
import XCTest

final class LayeringTests: XCTestCase {
    /// Each target's declared dependencies on other targets of the package (products of other packages left out).
    func declaredDependencies() throws -> [String: [String]] {
        let manifest = try String(contentsOfFile: repoRoot + "/Package.swift", encoding: .utf8)
        var out: [String: [String]] = [:]
        let target = try NSRegularExpression(pattern: #"\.(?:target|executableTarget|testTarget|systemLibrary)\(name: "([^"]+)"(.*?)\)(?:,\s*$|\s*$)"#,
                                             options: [.dotMatchesLineSeparators, .anchorsMatchLines])
        let text = manifest as NSString
        for m in target.matches(in: manifest, range: NSRange(location: 0, length: text.length)) {
            let name = text.substring(with: m.range(at: 1)), rest = text.substring(with: m.range(at: 2))
            guard let open = rest.range(of: "dependencies: ["), let close = rest.range(of: "]", range: open.upperBound..<rest.endIndex) else {
                out[name] = []; continue
            }
            let list = rest[open.upperBound..<close.lowerBound]
            // Plain "Name" entries; `.product(name: ..., package: ...)` entries are other packages'.
            let names = try NSRegularExpression(pattern: #"(?<!name: )"([A-Za-z][A-Za-z0-9-]*)""#)
            let l = String(list) as NSString
            out[name] = names.matches(in: String(list), range: NSRange(location: 0, length: l.length)).map { l.substring(with: $0.range(at: 1)) }
        }
        return out
    }

    func closure(_ t: String, _ deps: [String: [String]]) -> Set<String> {
        var seen = Set<String>(), stack = deps[t] ?? []
        while let d = stack.popLast() {
            if seen.insert(d).inserted { stack += deps[d] ?? [] }
        }
        return seen
    }

    func testCheckpointsInferenceExportAndFacesNeedNoTrainerAndNoMPI() throws {
        let deps = try declaredDependencies()
        XCTAssertGreaterThan(deps.count, 20, "the manifest's targets were not found")
        for t in ["FERCheckpoint", "FERInference", "FERDeploy", "FERFaces", "FERConfig"] {
            let c = closure(t, deps)
            XCTAssertFalse(c.isEmpty, t)
            for banned in ["FERTrain", "FERComm", "CMPI", "FERTools"] { XCTAssertFalse(c.contains(banned), "\(t) depends on \(banned)") }
        }
        for t in ["FERCore", "FERData", "FERNet", "FERPlot"] {
            XCTAssertTrue(closure(t, deps).isDisjoint(with: ["FERConfig", "FERCheckpoint", "FERInference", "FERComm", "FERTrain", "FERTools"]), t)
        }
        XCTAssertFalse(closure("FERComm", deps).contains("FERTrain"))
        XCTAssertFalse(closure("FERTrain", deps).contains("FERTools"))
    }

    /// Every import of a package module is among the importing module's declared (transitive) dependencies.
    func testEveryImportIsADeclaredDependency() throws {
        let deps = try declaredDependencies()
        let folders = ["fer-fuzz": "FERFuzz"]
        var checked = 0
        for (target, _) in deps {
            let folder = repoRoot + "/Sources/" + (folders[target] ?? target)
            guard let files = try? FileManager.default.contentsOfDirectory(atPath: folder) else { continue }
            let allowed = closure(target, deps)
            for f in files where f.hasSuffix(".swift") {
                let text = try String(contentsOfFile: folder + "/" + f, encoding: .utf8)
                for line in text.split(separator: "\n") where line.hasPrefix("import ") || line.hasPrefix("@testable import ") {
                    let module = String(line.split(separator: " ").last!)
                    guard deps[module] != nil else { continue }   // Foundation, XCTest, other packages' modules
                    XCTAssertTrue(allowed.contains(module), "Sources/\(folders[target] ?? target)/\(f) imports \(module), which \(target) does not declare")
                    checked += 1
                }
            }
        }
        XCTAssertGreaterThan(checked, 100)
    }
}
