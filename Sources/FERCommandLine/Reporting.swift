import ArgumentParser
import FERCore
import Foundation

/// Runs a command body with clean failure: the message names the file and reason on stderr and the exit
/// is non-zero. `beforeExit` gets the message first (under MPI, fer aborts the job with it).
public func reportingFailures(beforeExit: (String) -> Void = { _ in }, _ body: () throws -> Void) throws {
    do { try body() } catch let e as ValidationError { throw e } catch let e as ExitCode { throw e } catch {
        let message = userMessage(error)
        beforeExit(message)
        FileHandle.standardError.write(Data("error: \(message)\n".utf8))
        throw ExitCode.failure
    }
}

/// Prints `value` as pretty, key-sorted JSON: what `--json` writes to stdout.
public func printJSON<T: Encodable>(_ value: T) throws {
    print(String(decoding: try JSON.document(value), as: UTF8.self))
}

/// One CSV line (RFC 4180): a field with a comma, quote or line break is quoted, its quotes doubled, so
/// any file name round-trips.
public func csvLine(_ fields: [String]) -> String {
    fields.map { f in
        f.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" })
            ? "\"" + f.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : f
    }.joined(separator: ",")
}
