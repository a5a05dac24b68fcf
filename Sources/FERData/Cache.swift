import FERCore
import Foundation

// The dataset as bytes (for the cache file and the MPI broadcast), and the on-disk cache keyed by the
// source's identity, so a second `loadDataset` of an unchanged source skips decoding entirely.
//
// Both in FERCore's Envelope (magic | u32 version | body | u64 checksum of all before), little-endian:
// Dataset bytes, body:  u32 side | u64 count | u64 name bytes | pixels (count*side*side) | labels (count) |
//   splits (count) | per name: u32 length, UTF-8
// Cache file, body:  u64 source key | u64 report length | report JSON | dataset bytes (sealed themselves)

private let datasetEnvelope = Envelope(magic: "FERDSET\0", version: 1, what: "FER dataset bytes")
/// Version 2: one envelope around all of it (version 1 sealed only its header).
private let cacheEnvelope = Envelope(magic: "FERCACHE", version: 2, what: "a FER dataset cache")
private var cacheVersion: UInt32 { cacheEnvelope.version }
/// Bump when ingestion would produce different pixels from the same source (decoder, resize, ordering).
private let ingestVersion: UInt64 = 1

extension Dataset {
    /// Self-describing, checksummed bytes of the dataset; `Dataset(serialized:)` reads them back.
    public func serialize() -> [UInt8] {
        let nameBytes = sources.reduce(0) { $0 + 4 + $1.utf8.count }
        return datasetEnvelope.seal(capacity: 20 + pixels.count + 2 * count + nameBytes) { w in
            w.put(UInt32(imageSide)); w.put(UInt64(count)); w.put(UInt64(nameBytes))
            w.put(bytes: pixels); w.put(bytes: labels); w.put(bytes: splits.map { $0.rawValue })
            for s in sources { w.put(lengthPrefixed: s) }
        }
    }

    public init(serialized bytes: [UInt8]) throws {
        self = try bytes.withUnsafeBytes { try Dataset(serialized: $0) }
    }

    /// Throws on bad magic, a checksum mismatch, an unknown version, a size mismatch or invalid labels.
    public init(serialized buf: UnsafeRawBufferPointer) throws {
        self = try datasetEnvelope.open(buf, source: "dataset bytes") { r in try Dataset(body: &r, total: buf.count) }
    }

    /// The envelope's body (`total`: the sealed size, which the counts must account for exactly).
    private init(body r: inout ByteReader, total: Int) throws {
        guard try r.read(UInt32.self, "image side") == UInt32(imageSide) else { throw FERError("dataset image side is not \(imageSide)") }
        let n = try r.length("count"), nameBytes = try r.length("name bytes")
        // n <= total keeps n * (imagePixels + 2) from overflowing; the sum is compared by subtraction.
        guard n <= total, nameBytes <= total, total - 40 - n * (imagePixels + 2) == nameBytes else {
            throw FERError("dataset size mismatch: header says \(n) images, data has \(total) bytes")
        }
        let px = Array(try r.bytes(n * imagePixels, "pixels"))
        let labels = Array(try r.bytes(n, "labels")), rawSplits = Array(try r.bytes(n, "splits"))
        guard labels.allSatisfy({ $0 < 7 }) else { throw FERError("dataset has a label outside 0-6") }
        let splits = try rawSplits.map { s -> Split in
            guard let v = Split(rawValue: s) else { throw FERError("dataset has an unknown split \(s)") }
            return v
        }
        let sources = try (0..<n).map { _ in try r.lengthPrefixedString("name") }
        guard r.remaining == 0 else { throw FERError("dataset names do not fill their declared \(nameBytes) bytes") }
        self.init(pixels: px, labels: labels, splits: splits, sources: sources)
    }
}

// MARK: - Cache

/// Loads the dataset at `path` (folder, .zip or .csv), from the cache when the source is unchanged.
/// `cacheDir` overrides the cache location (see `cacheDirectory`); `useCache: false` always ingests.
/// A stale or corrupt cache is rebuilt (noted in the report); failing to write the cache is not an error.
public func loadDataset(path: String, strict: Bool = false, cacheDir: String? = nil,
                        useCache: Bool = true) throws -> (Dataset, IngestReport) {
    let start = Date()
    let format = try detectFormat(path)
    guard useCache else {
        var (data, report) = try ingest(path: path, strict: strict)
        report.seconds = Date().timeIntervalSince(start)
        return (data, report)
    }
    let key = try sourceKey(path, format)
    let dir = cacheDir.map(makeWritable) ?? cacheDirectory(forSource: path)
    let file = dir.map { $0 + "/" + cacheFileName(path) }
    var note: String?
    if let file, FileManager.default.fileExists(atPath: file) {
        do {
            if let (data, report0) = try readCache(file, key: key) {
                var report = report0
                if strict, let b = report.skipped.first {
                    throw FERError("\(report.skipped.count) bad input(s) with --strict; first: \(b.source): \(b.reason)")
                }
                report.fromCache = true; report.cachePath = file; report.cacheNote = nil
                report.seconds = Date().timeIntervalSince(start)
                return (data, report)
            }
            note = "cache was stale (source changed); rebuilt"
        } catch let e as FERError where e.message.hasPrefix("cache:") {
            note = "\(e.message); rebuilt"
        }
    }
    var (data, report) = try ingest(path: path, strict: strict)
    if let file {
        do {
            try writeCache(file, key: key, data: data, report: report)
            report.cachePath = file
        } catch {
            note = (note.map { $0 + "; " } ?? "") + "cache not written: \(error)"
        }
    } else {
        note = "no writable cache directory"
    }
    report.cacheNote = note
    report.seconds = Date().timeIntervalSince(start)
    return (data, report)
}

/// FER_CACHE_DIR; else `<folder of source>/.fer-cache` if writable; else $XDG_CACHE_HOME/fer or ~/.cache/fer.
public func cacheDirectory(forSource path: String) -> String? {
    let env = ProcessInfo.processInfo.environment
    if let d = env["FER_CACHE_DIR"], !d.isEmpty { return makeWritable(d) }
    let parent = ((path as NSString).standardizingPath as NSString).deletingLastPathComponent
    // A folder marked read-only (like a shared data folder) stays untouched, even for root, whom
    // access(2) would let write anyway.
    if ownerWritable(parent.isEmpty ? "." : parent), let d = makeWritable((parent.isEmpty ? "." : parent) + "/.fer-cache") { return d }
    let base = env["XDG_CACHE_HOME"].flatMap { $0.isEmpty ? nil : $0 } ?? (NSHomeDirectory() + "/.cache")
    return makeWritable(base + "/fer")
}

private func ownerWritable(_ dir: String) -> Bool {
    var st = stat()
    return stat(dir, &st) == 0 && st.st_mode & S_IWUSR != 0
}

private func makeWritable(_ dir: String) -> String? {
    try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
    return access(dir, W_OK) == 0 ? dir : nil
}

/// One cache file per source path: `<name>-<hash of absolute path>.fercache`.
private func cacheFileName(_ path: String) -> String {
    let abs = URL(fileURLWithPath: path).standardizedFileURL.path
    return (abs as NSString).lastPathComponent + "-" + String(hex64(Checksum.of(Array(abs.utf8))).prefix(12)) + ".fercache"
}

/// Identity of the source content: size and mtime, plus a hash of its listing (zip: the central directory
/// with names, sizes and CRCs; folder: every file's path, size and mtime; CSV: its first and last MiB).
func sourceKey(_ path: String, _ format: SourceFormat) throws -> UInt64 {
    var c = Checksum()
    c.update(ingestVersion); c.update(UInt64(cacheVersion))
    func addStat(_ p: String) {
        var st = stat()
        if stat(p, &st) == 0 {
            c.update(UInt64(st.st_size)); c.update(UInt64(st.st_mtim.tv_sec)); c.update(UInt64(st.st_mtim.tv_nsec))
        }
    }
    switch format {
    case .zip:
        addStat(path)
        c.update(try ZipArchive(path: path).directoryHash)
    case .folder:
        for f in listFiles(path).files.sorted() { c.update(f); addStat(path + "/" + f) }
    case .csv:
        addStat(path)
        let (fd, size) = try openRegularFile(path), mib = 1 << 20
        defer { close(fd) }
        for offset in [0, max(0, size - mib)] {
            var chunk = [UInt8](repeating: 0, count: min(mib, size))
            let n = pread(fd, &chunk, chunk.count, off_t(offset))
            c.update(Array(chunk[0..<max(0, n)]))
        }
    }
    return c.value
}

/// The cached dataset and report, nil if the key differs; throws "cache: ..." if the file is damaged.
private func readCache(_ file: String, key: UInt64) throws -> (Dataset, IngestReport)? {
    let bytes: [UInt8]
    do { bytes = try readRegularFile(file) } catch { throw FERError("cache: \(error)") }
    return try bytes.withUnsafeBytes { try readCache($0, file: file, key: key) }
}

private func readCache(_ buf: UnsafeRawBufferPointer, file: String, key: UInt64) throws -> (Dataset, IngestReport)? {
    do {
        return try cacheEnvelope.open(buf, source: "header") { r -> (Dataset, IngestReport)? in   // the catch below names the file
            guard try r.read(UInt64.self, "key") == key else { return nil }
            let reportBytes = try r.bytes(try r.length("report length"), "report")
            let report = try JSONDecoder().decode(IngestReport.self, from: Data(reportBytes))
            let data = try Dataset(serialized: try r.bytes(r.remaining, "dataset"))
            return (data, report)
        }
    } catch {
        throw FERError("cache: \(file) is unreadable (\(error))")
    }
}

private func writeCache(_ file: String, key: UInt64, data: Dataset, report: IngestReport) throws {
    let json = try JSONEncoder().encode(report), payload = data.serialize()
    let bytes = cacheEnvelope.seal(capacity: 16 + json.count + payload.count) { w in
        w.put(key); w.put(UInt64(json.count)); w.put(bytes: json); w.put(bytes: payload)
    }
    try writeAtomically(bytes, to: file)
}
