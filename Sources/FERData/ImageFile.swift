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

/// `paths` with each folder replaced by the pictures directly inside it (by extension, sorted by name;
/// hidden files, subfolders and anything but regular files skipped: a folder walk opens no FIFO). Other
/// paths are kept as given, to be read (or refused with the reason) one by one. A folder without
/// pictures is an error naming it.
public func expandingFolders(_ paths: [String]) throws -> [String] {
    try paths.flatMap { path -> [String] in
        var st = stat()
        guard stat(path, &st) == 0, st.st_mode & S_IFMT == S_IFDIR else { return [path] }
        let names = try folderEntries(path)
        let base = path.hasSuffix("/") ? path : path + "/"
        let pictures = names.sorted().filter { name in
            guard !name.hasPrefix("."), pictureExtensions.contains((name as NSString).pathExtension.lowercased()) else { return false }
            var entry = stat()
            return stat(base + name, &entry) == 0 && entry.st_mode & S_IFMT == S_IFREG
        }
        guard !pictures.isEmpty else {
            throw FERError(file: path, "a folder without pictures (.\(pictureExtensions.joined(separator: ", ."))) directly inside it")
        }
        return pictures.map { base + $0 }
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
