import Foundation

// The one output policy every command follows: nothing a command reads is replaced by what it writes,
// only regular files are replaced, and folders are made when missing. A command lists its inputs once
// (`CommandInputs`), then asks it for each output path before opening anything; the bytes themselves go
// through `writeAtomically`, which refuses to replace anything but a regular file.

/// A file or folder on disk, as the kernel knows it: two paths name the same thing (through symlinks,
/// hard links, `..` or another spelling) exactly when their device and inode agree.
public struct FileIdentity: Hashable, Sendable {
    public let device: UInt64, inode: UInt64
    public let isDirectory: Bool

    /// The identity of what `path` names, following symlinks; nil if nothing is there.
    public init?(_ path: String) {
        var st = stat()
        guard stat(path, &st) == 0 else { return nil }
        device = UInt64(st.st_dev); inode = UInt64(st.st_ino)
        isDirectory = st.st_mode & S_IFMT == S_IFDIR
    }

    public static func == (a: Self, b: Self) -> Bool { a.device == b.device && a.inode == b.inode }
    public func hash(into h: inout Hasher) { h.combine(device); h.combine(inode) }
}

/// What a command reads (checkpoints, data, configs, teachers, photos, videos, metrics), so that no output
/// of the same command can be one of them or lie inside an input folder.
public struct CommandInputs: Sendable {
    private var entries: [(identity: FileIdentity, name: String, path: String, enclosed: Bool)] = []

    public init() {}

    /// `name` says which input it is in errors ("--checkpoint a.ckpt", "the data ../d.zip"). Paths that do
    /// not exist yet are ignored: they cannot be overwritten. `enclosed`: no output folder may hold it
    /// either (the data: `--overwrite` or a later run must never move or mix it).
    public mutating func add(_ path: String, as name: String, enclosed: Bool = false) {
        if let id = FileIdentity(path) { entries.append((id, name, path, enclosed)) }
    }

    public mutating func add(_ paths: [String], as name: (String) -> String) {
        for p in paths { add(p, as: name(p)) }
    }

    /// Checks `given` as an output file and returns it absolute: refused if it is an input, is not a
    /// regular file (a folder, FIFO, device or socket), or lies inside an input folder. Its folder is made
    /// when missing. Nothing is opened.
    public func outputFile(_ given: String, flag: String) throws -> String {
        let path = try outputPath(given, flag: flag)
        if let id = FileIdentity(path) {
            if let input = input(id) { throw FERError("\(flag) \(given): is \(input), an input of this command: refusing to replace it") }
            try requireRegular(path, flag: flag, given: given)
        }
        let folder = (path as NSString).deletingLastPathComponent
        try checkNotInsideInput(folder, flag: flag, given: given)
        try makeFolder(folder, flag: flag, given: given)
        return path
    }

    /// Checks `given` as an output folder and returns it absolute: refused if it is not a folder, is an
    /// input, or lies inside an input folder; with `holdsNoInput` (a run folder), also if an input added
    /// as `enclosed` (the data) lies inside it. Made when missing (with `create`).
    public func outputFolder(_ given: String, flag: String, holdsNoInput: Bool = false, create: Bool = true) throws -> String {
        let path = try outputPath(given, flag: flag)
        try checkNotInsideInput(path, flag: flag, given: given)
        if holdsNoInput, let id = FileIdentity(path) {
            for e in entries where e.enclosed && e.identity != id && ancestors(of: e.path).contains(id) {
                throw FERError("\(flag) \(given): holds \(e.name), an input of this command: choose a folder apart from it")
            }
        }
        if create { try makeFolder(path, flag: flag, given: given) }
        return path
    }

    /// Refuses outputs that a command writes by fixed names (a run folder's files and folders): none may
    /// be an input or, for a folder, hold one (a teacher inside the student's own checkpoints/).
    public func checkNoInput(in outputs: [String], flag: String) throws {
        for out in outputs {
            guard let id = FileIdentity(out) else { continue }
            if let input = input(id) { throw FERError("\(flag): \(out) is \(input), which this command would replace: choose another folder") }
            guard id.isDirectory else { continue }
            if let e = entries.first(where: { ancestors(of: $0.path).contains(id) }) {
                throw FERError("\(flag): \(e.name) lies in \(out), which this command writes: choose another folder")
            }
        }
    }

    /// The name of the input `id` is, if any.
    private func input(_ id: FileIdentity) -> String? { entries.first { $0.identity == id }?.name }

    /// Refuses `folder` if it, or any folder above it, is an input (the data folder).
    private func checkNotInsideInput(_ folder: String, flag: String, given: String) throws {
        var dir = folder
        while true {
            if let id = FileIdentity(dir), let e = entries.first(where: { $0.identity.isDirectory && $0.identity == id }) {
                throw FERError("\(flag) \(given): lies inside \(e.name), an input of this command: choose a path outside it")
            }
            let up = (dir as NSString).deletingLastPathComponent
            if up == dir || up.isEmpty { return }
            dir = up
        }
    }

    /// The folders above `path`, by identity (through symlinks: above its real path).
    private func ancestors(of path: String) -> [FileIdentity] {
        guard let real = realpath(path, nil) else { return [] }
        defer { free(real) }
        var out: [FileIdentity] = [], dir = String(cString: real)
        while dir != "/" && !dir.isEmpty {
            dir = (dir as NSString).deletingLastPathComponent
            if let up = FileIdentity(dir) { out.append(up) }
        }
        return out
    }
}

/// Refuses `path` unless it is a regular file (or a symlink to one), naming what it is instead.
public func requireRegular(_ path: String, flag: String, given: String) throws {
    var st = stat()
    guard stat(path, &st) == 0 else { return }
    guard st.st_mode & S_IFMT == S_IFREG else {
        throw FERError("\(flag) \(given): is \(fileKind(st.st_mode)), not a regular file: refusing to write to it")
    }
}

/// Makes `folder` (and the folders above it) unless it exists; refuses a path that exists as anything
/// but a folder. Errors name the path and the reason in words, never Foundation's codes.
public func makeFolder(_ folder: String, flag: String, given: String) throws {
    var st = stat()
    if stat(folder, &st) == 0 {
        guard st.st_mode & S_IFMT == S_IFDIR else {
            throw FERError("\(flag) \(given): \(folder) is \(fileKind(st.st_mode)), not a folder")
        }
        return
    }
    let up = (folder as NSString).deletingLastPathComponent
    if !up.isEmpty, up != folder { try makeFolder(up, flag: flag, given: given) }
    guard mkdir(folder, 0o755) == 0 || errno == EEXIST else {
        throw FERError("\(flag) \(given): cannot make the folder \(folder): \(String(cString: strerror(errno)))")
    }
}
