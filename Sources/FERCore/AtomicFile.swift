import Foundation

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one, never a torn one:
/// write a temporary file in the same folder, fsync it, rename over the target, fsync the folder.
public func writeAtomically(_ bytes: UnsafeRawBufferPointer, to path: String) throws {
    let dir = (path as NSString).deletingLastPathComponent
    let folder = dir.isEmpty ? "." : dir
    let tmp = folder + "/." + (path as NSString).lastPathComponent + ".tmp-\(getpid())"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard fd >= 0 else { throw FERError(file: tmp, "cannot create: \(String(cString: strerror(errno)))") }
    var off = 0
    while off < bytes.count {
        let n = write(fd, bytes.baseAddress! + off, bytes.count - off)
        if n < 0 {
            if errno == EINTR { continue }
            let why = String(cString: strerror(errno)); close(fd); unlink(tmp)
            throw FERError(file: tmp, "write failed: \(why)")
        }
        off += n
    }
    guard fsync(fd) == 0 else { close(fd); unlink(tmp); throw FERError(file: tmp, "fsync failed") }
    close(fd)
    guard rename(tmp, path) == 0 else {
        let why = String(cString: strerror(errno)); unlink(tmp)
        throw FERError(file: path, "rename failed: \(why)")
    }
    let dfd = open(folder, O_RDONLY)
    if dfd >= 0 { fsync(dfd); close(dfd) }
}

public func writeAtomically(_ bytes: [UInt8], to path: String) throws {
    try bytes.withUnsafeBytes { try writeAtomically($0, to: path) }
}

/// An output path as the user meant it, made absolute against the working directory. Empty paths and the
/// filesystem root are refused: an empty argument must not scatter a run's files over `/`.
public func outputPath(_ given: String, flag: String) throws -> String {
    let trimmed = given.trimmingCharacters(in: .whitespaces)
    guard !trimmed.isEmpty else { throw FERError("\(flag): empty path") }
    let absolute = trimmed.hasPrefix("/") ? trimmed : FileManager.default.currentDirectoryPath + "/" + trimmed
    // Lexical clean-up only ("a//b/./c/.." -> "/a/b"): the user's spelling of symlinked folders is kept.
    var parts: [Substring] = []
    for c in absolute.split(separator: "/") where c != "." {
        if c == ".." { _ = parts.popLast() } else { parts.append(c) }
    }
    let path = "/" + parts.joined(separator: "/")
    guard path != "/" else { throw FERError("\(flag) \(given): refusing to write into the filesystem root") }
    return path
}
