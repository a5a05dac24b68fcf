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
    let (files, skipped) = listFiles(root)
    let (refs, bad) = try classify(files, root: root)
    let special = skipped.filter { !$0.source.split(separator: "/").contains(where: isIgnored) }
    return try decodeImages(refs, bad: special + bad) { key, buf in
        try readRegularFile(root + "/" + files[key], limit: maxImageFileBytes, into: &buf)
    }
}

private func ingestZip(_ path: String) throws -> (Dataset, [BadItem]) { try ingestZip(ZipArchive(path: path)) }

/// Ingests a zip held in memory (`path` names it in errors): the fuzzers' way in.
@_spi(Fuzzing) public func ingestZip(bytes: [UInt8], path: String) throws -> (Dataset, [BadItem]) {
    try ingestZip(ZipArchive(bytes: bytes, path: path))
}

private func ingestZip(_ zip: ZipArchive) throws -> (Dataset, [BadItem]) {
    // A name seen twice would be ingested twice: the first entry wins, later ones are reported.
    var seen = Set<String>(), duplicates: [BadItem] = []
    let files = zip.entries.map { e -> String in
        if e.isDirectory { return "" }
        guard seen.insert(e.name).inserted else {
            duplicates.append(BadItem(source: e.name, reason: "duplicate entry name in the zip; only the first is used"))
            return ""
        }
        return e.name
    }
    let (refs, bad) = try classify(files, root: zip.path)
    return try decodeImages(refs, bad: duplicates + bad) { key, buf in try zip.read(zip.entries[key], into: &buf) }
}

/// Relative paths of all regular files under `root`, via readdir (FileManager is slow for 30k files), and
/// what was skipped: special files (FIFOs, sockets, devices: reading them could block forever) and
/// directories already walked (a symlink loop would otherwise recurse without end or list files twice).
func listFiles(_ root: String) -> (files: [String], skipped: [BadItem]) {
    var out: [String] = [], skipped: [BadItem] = []
    var visited = Set<[UInt64]>()   // (device, inode) of each directory walked
    func walk(_ rel: String) {
        guard let d = opendir(rel.isEmpty ? root : root + "/" + rel) else {
            skipped.append(BadItem(source: rel, reason: "cannot list folder: \(String(cString: strerror(errno)))"))
            return
        }
        defer { closedir(d) }
        var st = stat()
        guard fstat(dirfd(d), &st) == 0, visited.insert([UInt64(st.st_dev), UInt64(st.st_ino)]).inserted else {
            skipped.append(BadItem(source: rel, reason: "folder already listed (a symlink loop or a second link to it); skipped"))
            return
        }
        while let e = readdir(d) {
            let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
            if name == "." || name == ".." { continue }
            let child = rel.isEmpty ? name : rel + "/" + name
            var mode = mode_t(e.pointee.d_type) << 12   // DTTOIF: d_type is the S_IFMT bits shifted down
            if Int(e.pointee.d_type) == Int(DT_UNKNOWN) || Int(e.pointee.d_type) == Int(DT_LNK) {
                var st = stat()
                guard stat(root + "/" + child, &st) == 0 else {
                    skipped.append(BadItem(source: child, reason: "cannot stat: \(String(cString: strerror(errno)))"))
                    continue
                }
                mode = st.st_mode & S_IFMT
            }
            if mode == S_IFDIR { walk(child) } else if mode == S_IFREG { out.append(child) } else {
                skipped.append(BadItem(source: child, reason: "not a regular file (\(fileKind(mode))); skipped"))
            }
        }
    }
    walk("")
    return (out, skipped)
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
/// A signal (SIGINT, SIGTERM, SIGUSR1) ends it within a chunk of images: nothing is cached half-decoded.
func decodeImages(_ refs: [ImageRef], bad: [BadItem],
                  read: @Sendable (Int, inout [UInt8]) throws -> Int) throws -> (Dataset, [BadItem]) {
    let n = refs.count
    var pixels = [UInt8](repeating: 0, count: n * imagePixels)
    let errors = UnsafeMutableBufferPointer<String?>.allocate(capacity: n)
    errors.initialize(repeating: nil)
    defer { errors.deallocate() }
    pixels.withUnsafeMutableBufferPointer { px in
        let (out, errs) = (Disjoint(px), Disjoint(errors))
        parallelChunks(n, chunk: 256) { range in
            var buf = [UInt8](repeating: 0, count: 1 << 16)
            for i in range where Interrupt.received == 0 {
                do {
                    let len = try read(refs[i].key, &buf)
                    errs.pointer[i] = buf.withUnsafeBytes {
                        decodeGray48(UnsafeRawBufferPointer(rebasing: $0[0..<len]), into: out.pointer.baseAddress! + i * imagePixels)
                    }
                } catch let e as FERError {
                    errs.pointer[i] = e.message
                } catch {
                    errs.pointer[i] = "\(error)"
                }
            }
        }
    }
    try Interrupt.check("ingest")
    var data = Dataset.Builder(capacity: n)
    var skipped = bad
    pixels.withUnsafeBufferPointer { px in
        for (i, r) in refs.enumerated() {
            if let why = errors[i] { skipped.append(BadItem(source: r.source, reason: why)); continue }
            data.append(image: UnsafeBufferPointer(rebasing: px[(i * imagePixels)..<((i + 1) * imagePixels)]),
                        label: r.label, split: r.split, source: r.source)
        }
    }
    return (data.dataset, skipped)
}

// MARK: - fer2013.csv

/// Parses `emotion,pixels,Usage` (columns found by header name). Bad rows are skipped with file:line.
/// Rows are decoded a block at a time, so memory follows the good images, not the line count.
private func ingestCSV(_ path: String) throws -> (Dataset, [BadItem]) { try ingestCSV(bytes: readRegularFile(path), path: path) }

/// Ingests CSV bytes (`path` names them in errors).
@_spi(Fuzzing) public func ingestCSV(bytes: [UInt8], path: String) throws -> (Dataset, [BadItem]) {
    let name = (path as NSString).lastPathComponent
    return try bytes.withUnsafeBufferPointer { b in
        // Editors that save "UTF-8 with BOM" prefix EF BB BF; it is not part of the first column's name.
        var s = b.count >= 3 && b[0] == 0xEF && b[1] == 0xBB && b[2] == 0xBF ? 3 : 0
        func nextLine() -> Range<Int>? {
            guard s < b.count else { return nil }
            var e = s
            while e < b.count && b[e] != 0x0A { e += 1 }
            defer { s = e + 1 }
            return s..<e
        }
        guard let head = nextLine() else { throw FERError(file: path, "empty file") }
        let columns = fields(b, head).map { String(decoding: UnsafeBufferPointer(rebasing: b[$0]), as: UTF8.self).lowercased() }
        guard let ce = columns.firstIndex(of: "emotion"), let cp = columns.firstIndex(of: "pixels"),
              let cu = columns.firstIndex(of: "usage") else {
            throw FERError(file: path, line: 1, "expected a header naming the columns emotion, pixels and Usage; found \(columns)")
        }
        var data = Dataset.Builder(), bad: [BadItem] = []
        var lineNumber = 1   // of the last line read
        while true {
            try Interrupt.check("ingest")
            var rows: [Range<Int>] = []
            while rows.count < 8192, let r = nextLine() { rows.append(r) }
            if rows.isEmpty { break }
            decodeCSVRows(b, rows, columns: (ce, cp, cu), count: columns.count) { r, result in
                let source = "\(name):\(lineNumber + 1 + r)"
                switch result {
                case .blank: break
                case .bad(let why): bad.append(BadItem(source: source, reason: why))
                case .image(let px, let label, let split): data.append(image: px, label: label, split: split, source: source)
                }
            }
            lineNumber += rows.count
        }
        return (data.dataset, bad)
    }
}

private enum CSVRow { case blank, bad(String), image(UnsafeBufferPointer<UInt8>, Emotion, Split) }

/// Parses `rows` in parallel, then hands each row's outcome to `body` in order.
private func decodeCSVRows(_ b: UnsafeBufferPointer<UInt8>, _ rows: [Range<Int>], columns: (Int, Int, Int), count: Int,
                           _ body: (Int, CSVRow) -> Void) {
    let n = rows.count
    var pixels = [UInt8](repeating: 0, count: n * imagePixels)
    var labels = [UInt8](repeating: 0, count: n), splits = [Split](repeating: .train, count: n)
    var errors = [String?](repeating: nil, count: n)
    pixels.withUnsafeMutableBufferPointer { px in labels.withUnsafeMutableBufferPointer { lb in
        splits.withUnsafeMutableBufferPointer { sp in errors.withUnsafeMutableBufferPointer { er in
            let (b, px, lb, sp, er) = (Disjoint(b), Disjoint(px), Disjoint(lb), Disjoint(sp), Disjoint(er))
            parallelChunks(n, chunk: 1024) { range in
                for r in range {
                    er.pointer[r] = parseRow(b.pointer, rows[r], columns: columns, count: count,
                                             pixels: px.pointer.baseAddress! + r * imagePixels, label: &lb.pointer[r], split: &sp.pointer[r])
                }
            }
        } }
    } }
    pixels.withUnsafeBufferPointer { px in
        for r in 0..<n {
            if rows[r].isEmpty || (rows[r].count == 1 && b[rows[r].lowerBound] == 0x0D) { body(r, .blank); continue }
            if let why = errors[r] { body(r, .bad(why)); continue }
            body(r, .image(UnsafeBufferPointer(rebasing: px[(r * imagePixels)..<((r + 1) * imagePixels)]),
                           Emotion(rawValue: Int(labels[r]))!, splits[r]))
        }
    }
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
    // One plain digit: Int() would also take "+3" and "-0".
    let e = text(f[columns.0])
    guard e.utf8.count == 1, let l = Int(e), (0..<7).contains(l) else { return "bad label '\(e)' (expected 0-6)" }
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

/// Rank 0 ingests the dataset or loads its cache and broadcasts the bytes; every other rank verifies the
/// checksum and deserialises.
public func loadDatasetOnCoordinator(path: String, strict: Bool, comm: Communicator,
                                     log: (String) -> Void) throws -> Dataset {
    try comm.onCoordinator({
        let (d, report) = try loadDataset(path: path, strict: strict)
        if !report.skipped.isEmpty {
            log("warning: \(report.skipped.count) unreadable image(s) skipped, e.g. \(report.skipped[0].source): \(report.skipped[0].reason)")
        }
        return d
    }, encode: { $0.serialize() }, decode: { try Dataset(serialized: $0) })
}
