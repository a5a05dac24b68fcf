import FERCore
import Foundation

/// Reads one image file of any size or colour as 48x48 grayscale (what `fer predict` feeds the model).
public func loadImageFile(_ path: String) throws -> [UInt8] {
    let bytes = try readRegularFile(path, limit: maxImageFileBytes)
    var out = [UInt8](repeating: 0, count: imagePixels)
    let why = bytes.withUnsafeBytes { raw in out.withUnsafeMutableBufferPointer { decodeGray48(raw, into: $0.baseAddress!) } }
    if let why { throw FERError(file: path, why) }
    return out
}

/// The picture extensions a folder given to `fer predict` is expanded into (case-insensitive).
public let pictureExtensions = ["bmp", "gif", "jpeg", "jpg", "pgm", "png", "ppm"]

/// Pictures a folder walk takes at most: a mistyped `/` must not list a whole disk into memory.
public let maxFolderPictures = 1_000_000

/// `paths` with each folder replaced by the pictures in it and in its subfolders, at any depth (by
/// extension; in name order, folder by folder). Hidden files and folders, symbolic links to folders (no loops) and anything
/// but regular files are skipped: a folder walk opens no FIFO. Other paths are kept as given, to be read
/// (or refused with the reason) one by one. A folder without pictures is an error naming it.
public func expandingFolders(_ paths: [String]) throws -> [String] {
    try paths.flatMap { path -> [String] in
        var st = stat()
        guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else { return [path] }
        var pictures: [String] = []
        try walk(path.hasSuffix("/") ? String(path.dropLast()) : path, root: path, into: &pictures)
        guard !pictures.isEmpty else {
            throw FERError(file: path, "a folder without pictures (.\(pictureExtensions.joined(separator: ", ."))) in it or its subfolders")
        }
        return pictures
    }
}

/// Appends the pictures under `folder`, a subfolder's where its name sorts among the files' names.
private func walk(_ folder: String, root: String, into pictures: inout [String]) throws {
    for name in try folderEntries(folder).sorted() where !name.hasPrefix(".") {
        let path = folder + "/" + name
        var entry = stat()
        guard lstat(path, &entry) == 0 else { continue }
        let kind = entry.st_mode & S_IFMT
        if kind == S_IFDIR {
            try walk(path, root: root, into: &pictures)
        } else if pictureExtensions.contains((name as NSString).pathExtension.lowercased()),
                  kind == S_IFREG || (kind == S_IFLNK && stat(path, &entry) == 0 && entry.st_mode & S_IFMT == S_IFREG) {
            pictures.append(path)
            guard pictures.count <= maxFolderPictures else {
                throw FERError(file: root, "more than \(maxFolderPictures) pictures in the folder and its subfolders: give fewer at a time")
            }
        }
    }
}

/// The names in a folder (without "." and ".."); errors in words, never Foundation's codes.
private func folderEntries(_ path: String) throws -> [String] {
    guard let dir = opendir(path) else { throw FERError(file: path, "cannot list the folder: \(String(cString: strerror(errno)))") }
    defer { closedir(dir) }
    var names: [String] = []
    while let e = readdir(dir) {
        let name = withUnsafeBytes(of: e.pointee.d_name) { String(cString: $0.bindMemory(to: CChar.self).baseAddress!) }
        if name != "." && name != ".." { names.append(name) }
    }
    return names
}
