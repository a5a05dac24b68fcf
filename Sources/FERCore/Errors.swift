import Foundation

// One error type for user-facing failures: what went wrong, and where (file, row or entry).
// The CLI prints `description` and exits non-zero.

public struct FERError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    /// "path: reason" or "path:line: reason".
    public init(file: String, line: Int? = nil, _ reason: String) {
        if let line { message = "\(file):\(line): \(reason)" } else { message = "\(file): \(reason)" }
    }
    public var description: String { message }
}

/// An error as a user should read it: FERError's message; Foundation's file errors (which print as
/// "Error Domain=NSCocoaErrorDomain Code=512 ...") as the path and the reason in words.
public func userMessage(_ error: Error) -> String {
    if let e = error as? FERError { return e.message }
    let ns = error as NSError
    guard ns.domain == NSCocoaErrorDomain || ns.domain == NSPOSIXErrorDomain else { return "\(error)" }
    let path = (ns.userInfo[NSFilePathErrorKey] as? String) ?? (ns.userInfo[NSURLErrorKey] as? URL)?.path
    var reason: String
    switch ns.code {
    case CocoaError.fileNoSuchFile.rawValue, CocoaError.fileReadNoSuchFile.rawValue: reason = "no such file or folder"
    case CocoaError.fileWriteFileExists.rawValue: reason = "already exists (as a file where a folder is needed, or the reverse)"
    case CocoaError.fileReadNoPermission.rawValue, CocoaError.fileWriteNoPermission.rawValue: reason = "permission denied"
    case CocoaError.fileWriteOutOfSpace.rawValue: reason = "no space left on the device"
    case CocoaError.fileWriteVolumeReadOnly.rawValue: reason = "the file system is read-only"
    default:
        if let posix = ns.userInfo[NSUnderlyingErrorKey] as? NSError, posix.domain == NSPOSIXErrorDomain {
            reason = String(cString: strerror(Int32(posix.code)))
        } else {
            reason = ns.code >= 512 ? "cannot be written" : "cannot be read"
        }
    }
    // The usual cause of a failed write: something that is not a folder where the path needs one.
    if let path, let (above, kind) = nonFolderAbove(path) { reason = "\(above) is \(kind), not a folder" }
    return path.map { "\($0): \(reason)" } ?? reason
}

/// The nearest existing path above `path` that is not a folder, and what it is.
private func nonFolderAbove(_ path: String) -> (String, String)? {
    var dir = (path as NSString).deletingLastPathComponent
    while !dir.isEmpty && dir != "/" {
        var st = stat()
        if stat(dir, &st) == 0 { return st.st_mode & S_IFMT == S_IFDIR ? nil : (dir, fileKind(st.st_mode)) }
        dir = (dir as NSString).deletingLastPathComponent
    }
    return nil
}

/// A decoding error as "key.path: what is wrong" (the path users find in their file).
public func describeDecoding(_ error: Error) -> String {
    switch error {
    case DecodingError.typeMismatch(_, let c), DecodingError.valueNotFound(_, let c), DecodingError.dataCorrupted(let c):
        return "\(c.codingPath.map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")): \(c.debugDescription)"
    case DecodingError.keyNotFound(let k, let c):
        return "\((c.codingPath + [k]).map { $0.intValue.map(String.init) ?? $0.stringValue }.joined(separator: ".")): missing"
    default: return userMessage(error)
    }
}

extension String {
    /// The NUL-terminated text a C function wrote into `buffer` (an error message, a host name), read
    /// only up to the buffer's end even if the terminator is missing.
    public init(cBuffer buffer: [CChar]) {
        self = String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
