import CSTB
import FERData
import Foundation
import XCTest

// Small datasets written by the tests: image folders of odd sizes and colours, zips, CSVs, broken files.

public func mkdirs(_ path: String) { try! FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true) }

/// Writes a PNG (or JPEG, by extension) of w x h with `channels`, creating folders.
public func writeImage(_ path: String, w: Int, h: Int, channels: Int, pixels: [UInt8]) {
    precondition(pixels.count == w * h * channels)
    mkdirs((path as NSString).deletingLastPathComponent)
    let ok = path.hasSuffix(".jpg") ? stbi_write_jpg(path, Int32(w), Int32(h), Int32(channels), pixels, 95)
                                     : stbi_write_png(path, Int32(w), Int32(h), Int32(channels), pixels, Int32(w * channels))
    precondition(ok != 0, "cannot write \(path)")
}

/// A deterministic 48x48 gray gradient with a bright square: asymmetric, so flips and shifts show.
public func patternImage(_ seed: Int = 0) -> [UInt8] {
    (0..<imagePixels).map { i in
        let x = i % imageSide, y = i / imageSide
        return (x > 30 && y < 12) ? 250 : UInt8((x * 3 + y * 2 + seed * 7) % 200)
    }
}

/// train/ and test/ with 6 images of several sizes, colours and formats, plus files that must be ignored.
/// Returns the exact 48x48 gray pixels expected for the lossless, unresized ones.
@discardableResult
public func makeImageFolder(_ root: String) -> [String: [UInt8]] {
    let gray = patternImage(1)
    writeImage(root + "/train/Happy/Training_1.png", w: 48, h: 48, channels: 1, pixels: gray)
    // Solid RGB (200, 100, 50) at 60x50: stb's luma (77r+150g+29b)>>8 = 124 everywhere, before and after resize.
    writeImage(root + "/train/angry/Training_2.png", w: 60, h: 50, channels: 3,
               pixels: (0..<(60 * 50)).flatMap { _ in [200, 100, 50] as [UInt8] })
    writeImage(root + "/train/SAD/Training_3.jpg", w: 48, h: 48, channels: 1, pixels: patternImage(2))
    writeImage(root + "/train/neutral/Training_4.png", w: 30, h: 31, channels: 4,
               pixels: (0..<(30 * 31)).flatMap { i in [UInt8(i % 256), 0, 0, 255] })
    writeImage(root + "/test/fear/PublicTest_5.png", w: 48, h: 48, channels: 1, pixels: patternImage(3))
    writeImage(root + "/test/surprise/PrivateTest_6.png", w: 96, h: 96, channels: 1, pixels: [UInt8](repeating: 77, count: 96 * 96))
    writeImage(root + "/test/disgust/img_7.png", w: 48, h: 48, channels: 1, pixels: patternImage(4))
    try! "not data".write(toFile: root + "/README.txt", atomically: true, encoding: .utf8)
    try! "junk".write(toFile: root + "/train/Happy/.DS_Store", atomically: true, encoding: .utf8)
    return ["train/Happy/Training_1.png": gray]
}

/// Zips `folder` (as `top/...` when top is given), deflating PNGs and storing JPEGs.
public func makeZip(of folder: String, at zipPath: String, top: String? = nil) throws {
    var entries: [RawZip.Entry] = []
    for rel in FileManager.default.subpaths(atPath: folder)!.sorted() {
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: folder + "/" + rel, isDirectory: &isDir)
        if isDir.boolValue { continue }
        let name = top.map { $0 + "/" + rel } ?? rel
        let data = [UInt8](try Data(contentsOf: URL(fileURLWithPath: folder + "/" + rel)))
        entries.append(rel.hasSuffix(".jpg") ? RawZip.Entry(name: name, data: data) : RawZip.Entry(name: name, deflating: data))
    }
    try Data(RawZip(entries: entries).bytes()).write(to: URL(fileURLWithPath: zipPath))
}

/// Writes raw bytes, creating folders.
public func writeBytes(_ path: String, _ bytes: Data) throws {
    mkdirs((path as NSString).deletingLastPathComponent)
    try bytes.write(to: URL(fileURLWithPath: path))
}

public func csvRow(_ label: String, _ pixels: [UInt8], _ usage: String) -> String {
    "\(label),\(pixels.map(String.init).joined(separator: " ")),\(usage)"
}

public func assertThrows(_ expr: @autoclosure () throws -> Any, contains parts: [String],
                  file: StaticString = #filePath, line: UInt = #line) {
    do {
        _ = try expr()
        XCTFail("expected an error containing \(parts)", file: file, line: line)
    } catch {
        let text = "\(error)"
        for p in parts { XCTAssertTrue(text.contains(p), "'\(text)' lacks '\(p)'", file: file, line: line) }
    }
}
