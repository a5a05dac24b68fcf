import Foundation

/// fer's two JSON forms: `document` for files and stdout that people read and diff (pretty, keys sorted),
/// `line` for one record per line and for hashing (compact, keys sorted, so equal values give equal bytes).
public enum JSON {
    public static func document<T: Encodable>(_ value: T) throws -> [UInt8] {
        let enc = JSONEncoder(); enc.outputFormatting = [.prettyPrinted, .sortedKeys]
        return Array(try enc.encode(value))
    }

    public static func line<T: Encodable>(_ value: T) throws -> [UInt8] {
        let enc = JSONEncoder(); enc.outputFormatting = .sortedKeys
        return Array(try enc.encode(value))
    }
}
