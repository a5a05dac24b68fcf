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
