import Foundation

// Files from users are untrusted and files we write must survive crashes: reading refuses anything but a
// regular file of bounded size (a FIFO would hang, /dev/zero would never end); writing is atomic; output
// paths are what the user meant.

/// Writes `bytes` to `path` so that a crash leaves either the old file or the new one, never a torn one:
/// write a temporary file in the same folder, fsync it, rename over the target, fsync the folder.
public func writeAtomically(_ bytes: UnsafeRawBufferPointer, to path: String) throws {
    let name = (path as NSString).lastPathComponent
    guard !name.isEmpty, name != ".", name != "..", !path.hasSuffix("/") else { throw FERError(file: path, "names a folder, not a file to write") }
    // Only a regular file is ever replaced: a folder, FIFO, device or socket there is refused, not renamed over.
    try requireRegular(path, flag: "output", given: path)
    let dir = (path as NSString).deletingLastPathComponent
    let folder = dir.isEmpty ? "." : dir
    let tmp = folder + "/." + name + ".tmp-\(getpid())"
    let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o644)
    guard fd >= 0 else { throw FERError(file: path, "cannot create a file in \(folder): \(String(cString: strerror(errno)))") }
    do { try writeAll(fd, bytes, path: tmp) } catch { close(fd); unlink(tmp); throw error }
    guard fsync(fd) == 0 else { close(fd); unlink(tmp); throw FERError(file: tmp, "fsync failed") }
    close(fd)
    guard rename(tmp, path) == 0 else {
        let why = String(cString: strerror(errno)); unlink(tmp)
        throw FERError(file: path, "cannot replace: \(why)")
    }
    let dfd = open(folder, O_RDONLY)
    if dfd >= 0 { fsync(dfd); close(dfd) }
}

/// Writes every byte to `fd`, retrying writes a signal interrupted; a full disk is an error naming `path`.
public func writeAll(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, path: String) throws {
    var off = 0
    while off < bytes.count {
        let n = write(fd, bytes.baseAddress! + off, bytes.count - off)
        if n < 0, errno == EINTR { continue }
        guard n > 0 else { throw FERError(file: path, "write failed: \(String(cString: strerror(errno)))") }
        off += n
    }
}

public func writeAtomically(_ bytes: [UInt8], to path: String) throws {
    try bytes.withUnsafeBytes { try writeAtomically($0, to: path) }
}

/// An output path as the user meant it, made absolute against the working directory. Empty paths and the
/// filesystem root are refused: an empty argument must not scatter a run's files over `/`.
public func outputPath(_ given: String, flag: String) throws -> String {
    let trimmed = given.trimmingCharacters(in: .whitespaces)
    guard !trimmed.isEmpty else { throw FERError("\(flag): empty path") }
    let path = absolutePath(trimmed)
    guard path != "/" else { throw FERError("\(flag) \(given): refusing to write into the filesystem root") }
    return path
}

/// `path` made absolute against the working directory, cleaned lexically ("a//b/./c/.." -> "/a/b"); the
/// user's spelling of symlinked folders is kept. What a run records (teachers, caches) is stored so, and
/// a resume from another working directory finds the same files.
public func absolutePath(_ path: String) -> String {
    let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
    var parts: [Substring] = []
    for c in absolute.split(separator: "/") where c != "." {
        if c == ".." { _ = parts.popLast() } else { parts.append(c) }
    }
    return "/" + parts.joined(separator: "/")
}

/// Opens `path` for reading only if it is a regular file. O_NONBLOCK keeps opening a FIFO from blocking;
/// the fstat check then refuses it (and sockets, devices) before anything reads from it.
public func openRegularFile(_ path: String) throws -> (fd: Int32, size: Int) {
    let fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC)
    guard fd >= 0 else { throw FERError(file: path, "cannot open: \(String(cString: strerror(errno)))") }
    var st = stat()
    guard fstat(fd, &st) == 0 else { close(fd); throw FERError(file: path, "cannot stat: \(String(cString: strerror(errno)))") }
    guard st.st_mode & S_IFMT == S_IFREG else { close(fd); throw FERError(file: path, "not a regular file (\(fileKind(st.st_mode)))") }
    return (fd, Int(st.st_size))
}

public func fileKind(_ mode: mode_t) -> String {
    switch mode & S_IFMT {
    case S_IFDIR: return "a directory"
    case S_IFIFO: return "a FIFO"
    case S_IFSOCK: return "a socket"
    case S_IFCHR, S_IFBLK: return "a device"
    case S_IFREG: return "a regular file"
    default: return "not a regular file"
    }
}

/// Reads the whole regular file at `path` (at most `limit` bytes) into `buf`, growing it if needed, and
/// returns its length. A file that shrinks while being read is an error.
public func readRegularFile(_ path: String, limit: Int = .max, into buf: inout [UInt8]) throws -> Int {
    let (fd, size) = try openRegularFile(path)
    defer { close(fd) }
    guard size <= limit else { throw FERError(file: path, "file too large (\(size) bytes; the limit is \(limit))") }
    if buf.count < size { buf = [UInt8](repeating: 0, count: size) }
    var off = 0
    while off < size {
        let n = buf.withUnsafeMutableBytes { read(fd, $0.baseAddress! + off, size - off) }
        if n < 0 && errno == EINTR { continue }
        guard n >= 0 else { throw FERError(file: path, "read failed: \(String(cString: strerror(errno)))") }
        guard n > 0 else { throw FERError(file: path, "file shrank while being read (\(off) of \(size) bytes)") }
        off += n
    }
    return size
}

/// The whole regular file at `path`.
public func readRegularFile(_ path: String, limit: Int = .max) throws -> [UInt8] {
    var buf: [UInt8] = []
    let n = try readRegularFile(path, limit: limit, into: &buf)
    return n == buf.count ? buf : Array(buf[0..<n])
}
