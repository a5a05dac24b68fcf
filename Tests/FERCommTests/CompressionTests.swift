// bf16 gradient compression's arithmetic: the conversions (oneDNN reorders) against a bit-level reference
// of round-to-nearest-even, the MPI op's widen-add-narrow step, and the compressed sum on 2 real ranks.
@testable import FERComm
@testable import FERCore
@testable import FERNet
import FERTestSupport
import XCTest

/// f32 -> bf16 as oneDNN 2.6 converts: subnormals flushed to zero, then rounded to nearest, ties to
/// even, on the bits (finite values and infinities).
private func referenceBF16(_ x: Float) -> UInt16 {
    let b = (x.isSubnormal ? 0 : x).bitPattern
    return UInt16(truncatingIfNeeded: (b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16)
}

private func widened(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }

/// oneDNN's bf16 conversions flush subnormals (|x| < 2^-126) to zero and may drop the sign of zero;
/// a gradient that small adds nothing to an update. So the zeros compare as one value.
private func canonical(_ h: UInt16) -> UInt16 { h & 0x7F80 == 0 ? 0 : h }

/// Random finite floats of every magnitude and sign (subnormals too), from their bits.
private func randomFloats(_ n: Int, seed: UInt64) -> [Float] {
    var s = seed
    return (0..<n).map { _ in
        s = s &* 6364136223846793005 &+ 1442695040888963407
        let f = Float(bitPattern: UInt32(truncatingIfNeeded: s >> 32))
        return f.isFinite && abs(f) < 1e38 ? f : 1   // sums of two stay finite
    }
}

/// The first few indices where two arrays differ, with both values (XCTAssertEqual would print them whole).
private func mismatches<T: Equatable>(_ a: [T], _ b: [T], _ input: (Int) -> String) -> String? {
    guard a.count == b.count else { return "\(a.count) values, want \(b.count)" }
    let bad = a.indices.filter { a[$0] != b[$0] }
    return bad.isEmpty ? nil : "\(bad.count) of \(a.count) differ: " + bad.prefix(4).map { "[\($0)] \(input($0)): \(a[$0]) want \(b[$0])" }.joined(separator: ", ")
}

private func narrow(_ f: [Float]) -> [UInt16] {
    var h = [UInt16](repeating: 0, count: f.count)
    BF16.narrow(f, to: &h, count: f.count)
    return h
}

final class BF16Tests: XCTestCase {
    func testNarrowRoundsToNearestEven() {
        // 1 + 2^-8 is half-way between bf16 1 and 1 + 2^-7: ties go to the even (1); 1 + 3 * 2^-8 goes up.
        let x: [Float] = [1, -2, 1 + 0x1p-8, 1 + 3 * 0x1p-8, 1 + 0x1p-8 + 0x1p-20, .infinity, .greatestFiniteMagnitude, -0x1p-126]
        XCTAssertEqual(narrow(x), [0x3F80, 0xC000, 0x3F80, 0x3F82, 0x3F81, 0x7F80, 0x7F80, 0x8080])
        XCTAssertEqual(narrow([-0.0, 0x1p-130]).map(canonical), [0, 0])
        XCTAssertTrue(widened(narrow([.nan])[0]).isNaN)
    }

    /// Several of BF16's pieces and a short last one: every value as the reference rounds it, and widening
    /// gives back exactly the bf16 value.
    func testConversionsMatchTheReferenceAcrossPieces() {
        let n = 2 * BF16.piece + 17
        let x = randomFloats(n, seed: 7)
        let h = narrow(x)
        XCTAssertNil(mismatches(h.map(canonical), x.map { canonical(referenceBF16($0)) }) { "\(x[$0]) (0x\(String(x[$0].bitPattern, radix: 16)))" })
        var back = [Float](repeating: 0, count: n)
        BF16.widen(h, to: &back, count: n)
        XCTAssertNil(mismatches(back, h.map(widened)) { "0x\(String(h[$0], radix: 16))" })   // Float ==: 0 == -0
    }

    /// The MPI op's step: the f32 sum of the two bf16 values, rounded once.
    func testAccumulateRoundsTheF32Sum() {
        let n = BF16.piece + 5
        let a = narrow(randomFloats(n, seed: 1)), b = narrow(randomFloats(n, seed: 2))
        var y = b
        BF16.accumulate(a, into: &y, count: n)
        XCTAssertNil(mismatches(y.map(canonical), (0..<n).map { canonical(referenceBF16(widened(a[$0]) + widened(b[$0]))) }) { "\(widened(a[$0])) + \(widened(b[$0]))" })
    }

    /// Two real ranks: `fer selftest mpi` sums known vectors in bf16 and checks every element is within
    /// bf16 rounding of the exact sum (2^-8 of the magnitudes per rounding) and that both ranks hold the
    /// same bits; a failure on either rank fails the job.
    func testTwoRanksSumWithinRoundingAndAgree() throws {
        let r = try runCommand(mpirun(2) + [try ferBinary(), "selftest", "mpi", "--verbose", "--floats", "200003"], timeout: 120)
        XCTAssertFalse(r.timedOut, r.output)
        XCTAssertEqual(r.status, 0, r.output)
        XCTAssertTrue(r.output.contains("bf16 iallreduce: 200003 values"), r.output)
        XCTAssertTrue(r.output.contains("same on every rank"), r.output)
    }

    func testOneRankIsTheIdentity() throws {
        var h: [UInt16] = [0x3F80, 0x4000]
        let r = try h.withUnsafeMutableBufferPointer { try LocalCommunicator().iallreduceSumBF16($0.baseAddress!, count: 2) }
        XCTAssertTrue(r.isComplete)
        XCTAssertEqual(h, [0x3F80, 0x4000])
    }
}
