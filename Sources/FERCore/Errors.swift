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
