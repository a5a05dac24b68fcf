import FERCore
import Foundation

// Ingestion: a Kaggle image folder (train/<class>/*, test/<class>/*), the same as a .zip (optionally under
// one top folder), or fer2013.csv. Images are decoded in parallel into one pixel buffer; bad images are
// skipped and listed (fatal with `strict`); structural problems (unknown class folder, bad header) are errors.

/// An input that was skipped, and why.
public struct BadItem: Codable, Sendable, Equatable {
    public let source: String
    public let reason: String
    public init(source: String, reason: String) { self.source = source; self.reason = reason }
}

public struct IngestReport: Codable, Sendable {
    public var path: String
    public var format: String            // "folder", "zip" or "csv"
    public var images: Int
    public var skipped: [BadItem]
    public var fromCache = false
    public var cachePath: String?
    public var cacheNote: String?        // why the cache was rebuilt or not written
    public var seconds = 0.0
    enum CodingKeys: String, CodingKey {
        case path, format, images, skipped, seconds
        case fromCache = "from_cache", cachePath = "cache_path", cacheNote = "cache_note"
    }
}

enum SourceFormat: String { case folder, zip, csv }

func detectFormat(_ path: String) throws -> SourceFormat {
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
        throw FERError(file: path, "no such file or directory")
    }
    if isDir.boolValue { return .folder }
    if ZipArchive.looksLikeZip(path) { return .zip }
    let ext = (path as NSString).pathExtension.lowercased()
    if ext == "zip" { throw FERError(file: path, "not a zip archive (no zip signature at the start)") }
    if ext == "csv" { return .csv }
    throw FERError(file: path, "unrecognised dataset: expected a folder with train/ and test/, a .zip of one, or fer2013.csv")
}

/// Reads and decodes the source at `path` without touching any cache.
public func ingest(path: String, strict: Bool = false) throws -> (Dataset, IngestReport) {
    let format = try detectFormat(path)
    let (data, bad): (Dataset, [BadItem])
    switch format {
    case .folder: (data, bad) = try ingestFolder(path)
    case .zip: (data, bad) = try ingestZip(path)
    case .csv: (data, bad) = try ingestCSV(path)
    }
    if strict, !bad.isEmpty {
        throw FERError("\(bad.count) bad input(s) with --strict; first: \(bad[0].source): \(bad[0].reason)")
    }
    guard data.count > 0 else { throw FERError(file: path, "empty dataset: no usable images found") }
    return (data, IngestReport(path: path, format: format.rawValue, images: data.count, skipped: bad))
}

// MARK: - Image folders and zips

/// One image file found in a folder or zip, classified by its path.
struct ImageRef {
    let key: Int          // index into the caller's listing
    let source: String    // path inside the dataset root, e.g. "train/happy/Training_1.jpg"
    let label: Emotion
    let split: Split
}

private func ingestFolder(_ root: String) throws -> (Dataset, [BadItem]) {
    let files = listFiles(root)
    let (refs, bad) = try classify(files, root: root)
    return decodeImages(refs, bad: bad) { key, buf in try readFile(root + "/" + files[key], into: &buf) }
}

private func ingestZip(_ path: String) throws -> (Dataset, [BadItem]) {
    let zip = try ZipArchive(path: path)
    let files = zip.entries.map { $0.isDirectory ? "" : $0.name }
    let (refs, bad) = try classify(files, root: path)
    return decodeImages(refs, bad: bad) { key, buf in try zip.read(zip.entries[key], into: &buf) }
}

/// Relative paths of all regular files under `root`, via readdir (FileManager is slow for 30k files).
func listFiles(_ root: String) -> [String] {
    var out: [String] = []
    func walk(_ rel: String) {
        guard let d = opendir(rel.isEmpty ? root : root + "/" + rel) else { return }
        defer { closedir(d) }
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name == "." || name == ".." { continue }
            let child = rel.isEmpty ? name : rel + "/" + name
            var type = Int32(e.pointee.d_type)
            if type == Int32(DT_UNKNOWN) || type == Int32(DT_LNK) {
                var st = stat()
                if stat(root + "/" + child, &st) == 0 { type = (st.st_mode & S_IFMT) == S_IFDIR ? Int32(DT_DIR) : Int32(DT_REG) }
            }
            if type == Int32(DT_DIR) { walk(child) } else if type == Int32(DT_REG) { out.append(child) }
        }
    }
    walk("")
    return out
}

private func readFile(_ path: String, into buf: inout [UInt8]) throws -> Int {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw FERError(file: path, "cannot open: \(String(cString: strerror(errno)))") }
    defer { close(fd) }
    var st = stat()
    fstat(fd, &st)
    let size = Int(st.st_size)
    if buf.count < size { buf = [UInt8](repeating: 0, count: size) }
    var off = 0
    while off < size {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress! + off, size - off) }
        if n < 0 && errno == EINTR { continue }
        guard n > 0 else { throw FERError(file: path, "read failed") }
        off += n
    }
    return size
}

private func isIgnored(_ component: Substring) -> Bool { component.hasPrefix(".") || component == "__MACOSX" }

/// Maps paths (empty = skip) to labelled images. The dataset root is where train/ and test/ are: the
/// listing's top level, or a single top folder (zips made by zipping the folder itself).
func classify(_ paths: [String], root: String) throws -> ([ImageRef], [BadItem]) {
    let splitNames = ["train", "test"]
    let parts = paths.map { p -> [Substring] in
        let c = p.split(separator: "/")
        return c.contains(where: isIgnored) ? [] : c
    }
    if parts.allSatisfy(\.isEmpty) { return ([], []) }   // no files at all: reported as an empty dataset
    let tops = Set(parts.compactMap { $0.count > 1 ? $0[0].lowercased() : nil })
    var depth = 0
    if tops.isDisjoint(with: splitNames) {
        let seconds = Set(parts.compactMap { $0.count > 2 ? $0[1].lowercased() : nil })
        guard tops.count == 1, !seconds.isDisjoint(with: splitNames) else {
            throw FERError(file: root, "no train/ or test/ folder found (expected train/<class>/<image> and test/<class>/<image>)")
        }
        depth = 1
    }
    var refs: [ImageRef] = [], bad: [BadItem] = []
    for (key, c0) in parts.enumerated() where c0.count > depth + 1 {   // files at the root (README...) are ignored
        let c = c0[depth...]
        let source = c.joined(separator: "/")
        let top = c.first!.lowercased()
        guard splitNames.contains(top) else {
            throw FERError(file: "\(root)/\(c0[..<(depth + 1)].joined(separator: "/"))",
                           "unknown folder '\(c.first!)'; expected train/ and test/")
        }
        guard c.count >= 3 else { bad.append(BadItem(source: source, reason: "image is not inside a class folder")); continue }
        let folder = String(c[c.startIndex + 1])
        guard let label = Emotion(folderName: folder) else {
            throw FERError(file: "\(root)/\(c0[...(depth + 1)].joined(separator: "/"))",
                           "unknown class folder '\(folder)'; valid classes: \(Emotion.names.joined(separator: ", "))")
        }
        let file = c.last!.lowercased()
        let split: Split = top == "train" ? .train
            : file.hasPrefix("publictest") ? .publicTest : file.hasPrefix("privatetest") ? .privateTest : .test
        refs.append(ImageRef(key: key, source: source, label: label, split: split))
    }
    refs.sort { $0.source < $1.source }   // a folder and its zip give the same dataset
    return (refs, bad)
}

/// Decodes every ref in parallel over the cores; failures become bad items. Output order = refs order.
func decodeImages(_ refs: [ImageRef], bad: [BadItem],
                  read: (Int, inout [UInt8]) throws -> Int) -> (Dataset, [BadItem]) {
    let n = refs.count
    var pixels = [UInt8](repeating: 0, count: n * imagePixels)
    let errors = UnsafeMutableBufferPointer<String?>.allocate(capacity: n)
    errors.initialize(repeating: nil)
    defer { errors.deallocate() }
    let chunk = 256
    pixels.withUnsafeMutableBufferPointer { px in
        let out = px.baseAddress!
        DispatchQueue.concurrentPerform(iterations: (n + chunk - 1) / chunk) { c in
            var buf = [UInt8](repeating: 0, count: 1 << 16)
            for i in (c * chunk)..<min(n, (c + 1) * chunk) {
                do {
                    let len = try read(refs[i].key, &buf)
                    errors[i] = buf.withUnsafeBytes { decodeGray48(UnsafeRawBufferPointer(rebasing: $0[0..<len]), into: out + i * imagePixels) }
                } catch let e as FERError {
                    errors[i] = e.message
                } catch {
                    errors[i] = "\(error)"
                }
            }
        }
    }
    var data = Dataset()
    data.pixels.reserveCapacity(n * imagePixels)
    var skipped = bad
    pixels.withUnsafeBufferPointer { px in
        for (i, r) in refs.enumerated() {
            if let why = errors[i] { skipped.append(BadItem(source: r.source, reason: why)); continue }
            data.append(image: UnsafeBufferPointer(rebasing: px[(i * imagePixels)..<((i + 1) * imagePixels)]),
                        label: r.label, split: r.split, source: r.source)
        }
    }
    return (data, skipped)
}

// MARK: - fer2013.csv

/// Parses `emotion,pixels,Usage` (columns found by header name). Bad rows are skipped with file:line.
private func ingestCSV(_ path: String) throws -> (Dataset, [BadItem]) {
    let file = try MappedFile(path)
    let name = (path as NSString).lastPathComponent
    let b = file.bytes.bindMemory(to: UInt8.self)
    var lines: [Range<Int>] = []
    var s = 0
    for i in 0..<b.count where b[i] == 0x0A { lines.append(s..<i); s = i + 1 }
    if s < b.count { lines.append(s..<b.count) }
    guard let head = lines.first else { throw FERError(file: path, "empty file") }
    let columns = fields(b, head).map { String(decoding: UnsafeBufferPointer(rebasing: b[$0]), as: UTF8.self).lowercased() }
    guard let ce = columns.firstIndex(of: "emotion"), let cp = columns.firstIndex(of: "pixels"),
          let cu = columns.firstIndex(of: "usage") else {
        throw FERError(file: path, line: 1, "expected a header naming the columns emotion, pixels and Usage; found \(columns)")
    }
    let rows = Array(lines.dropFirst())
    let n = rows.count
    var pixels = [UInt8](repeating: 0, count: n * imagePixels)
    var labels = [UInt8](repeating: 0, count: n), splits = [Split](repeating: .train, count: n)
    let errors = UnsafeMutableBufferPointer<String?>.allocate(capacity: n)
    errors.initialize(repeating: nil)
    defer { errors.deallocate() }
    pixels.withUnsafeMutableBufferPointer { px in labels.withUnsafeMutableBufferPointer { lb in splits.withUnsafeMutableBufferPointer { sp in
        let (px, lb, sp) = (px, lb, sp)
        DispatchQueue.concurrentPerform(iterations: (n + 1023) / 1024) { c in
            for r in (c * 1024)..<min(n, (c + 1) * 1024) {
                errors[r] = parseRow(b, rows[r], columns: (ce, cp, cu), count: columns.count,
                                     pixels: px.baseAddress! + r * imagePixels, label: &lb[r], split: &sp[r])
            }
        }
    } } }
    var data = Dataset(), bad: [BadItem] = []
    data.pixels.reserveCapacity(n * imagePixels)
    for r in 0..<n {
        let source = "\(name):\(r + 2)"
        if rows[r].isEmpty || (rows[r].count == 1 && b[rows[r].lowerBound] == 0x0D) { continue }   // blank line
        if let why = errors[r] { bad.append(BadItem(source: source, reason: why)); continue }
        pixels.withUnsafeBufferPointer { data.append(image: UnsafeBufferPointer(rebasing: $0[(r * imagePixels)..<((r + 1) * imagePixels)]),
                                                     label: Emotion(rawValue: Int(labels[r]))!, split: splits[r], source: source) }
    }
    return (data, bad)
}

/// Comma-separated field ranges of a line, without surrounding quotes and trailing CR.
private func fields(_ b: UnsafeBufferPointer<UInt8>, _ line: Range<Int>) -> [Range<Int>] {
    var end = line.upperBound
    if end > line.lowerBound && b[end - 1] == 0x0D { end -= 1 }
    var out: [Range<Int>] = [], s = line.lowerBound
    for i in line.lowerBound...end where i == end || b[i] == 0x2C {
        var lo = s, hi = i
        while lo < hi && b[lo] == 0x20 { lo += 1 }
        while hi > lo && b[hi - 1] == 0x20 { hi -= 1 }
        if hi - lo >= 2 && b[lo] == 0x22 && b[hi - 1] == 0x22 { lo += 1; hi -= 1 }
        out.append(lo..<hi); s = i + 1
    }
    return out
}

private func parseRow(_ b: UnsafeBufferPointer<UInt8>, _ line: Range<Int>, columns: (Int, Int, Int), count: Int,
                      pixels: UnsafeMutablePointer<UInt8>, label: inout UInt8, split: inout Split) -> String? {
    let f = fields(b, line)
    func text(_ r: Range<Int>) -> String { String(decoding: UnsafeBufferPointer(rebasing: b[r]), as: UTF8.self) }
    guard f.count == count else { return "expected \(count) fields, found \(f.count)" }
    let e = text(f[columns.0])
    guard let l = Int(e), (0..<7).contains(l) else { return "bad label '\(e)' (expected 0-6)" }
    switch text(f[columns.2]) {
    case "Training": split = .train
    case "PublicTest": split = .publicTest
    case "PrivateTest": split = .privateTest
    case let u: return "unknown Usage '\(u)' (expected Training, PublicTest or PrivateTest)"
    }
    label = UInt8(l)
    var n = 0, v = -1
    for i in f[columns.1] {
        let c = b[i]
        if c >= 0x30 && c <= 0x39 {
            v = (v < 0 ? 0 : v) * 10 + Int(c - 0x30)
            if v > 255 { return "pixel value out of range 0-255" }
        } else if c == 0x20 {
            if v >= 0 { if n < imagePixels { pixels[n] = UInt8(v) }; n += 1; v = -1 }
        } else {
            return "bad character in pixels"
        }
    }
    if v >= 0 { if n < imagePixels { pixels[n] = UInt8(v) }; n += 1 }
    return n == imagePixels ? nil : "wrong pixel count \(n) (expected \(imagePixels))"
}
