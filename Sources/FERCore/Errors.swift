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
        } else { reason = ns.localizedDescription }
    }
    return path.map { "\($0): \(reason)" } ?? reason
}
