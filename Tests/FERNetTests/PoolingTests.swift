import CDNNL
import FERCore
import Foundation
import XCTest
@testable import FERNet

/// Max pooling runs the fastest kernel oneDNN offers for each pass, timed (FERNet/Pool.swift). That is
/// safe only because every kernel gives the same bits, ties included; and the choice must be the fastest.
final class PoolingTests: XCTestCase {
    /// 2x2 max pooling of a [n, 32, h, h] batch in `tag`, forward training and backward.
    func descriptors(_ tag: dnnl_format_tag_t, n: Int = 4, h: Int = 12) -> (fwd: dnnl_pooling_desc_t, bwd: dnnl_pooling_desc_t) {
        var src = md([n, 32, h, h], tag), dst = md([n, 32, h / 2, h / 2], tag)
        var strides = dims([2, 2]), kernel = dims([2, 2]), pad = dims([0, 0])
        var f = dnnl_pooling_desc_t(), b = dnnl_pooling_desc_t()
        check(dnnl_pooling_forward_desc_init(&f, dnnl_forward_training, dnnl_pooling_max, &src, &dst, &strides, &kernel, &pad, &pad), "fwd")
        check(dnnl_pooling_backward_desc_init(&b, dnnl_pooling_max, &src, &dst, &strides, &kernel, &pad, &pad), "bwd")
        return (f, b)
    }

    /// Every forward kernel oneDNN offers, with every backward kernel that accepts its workspace, gives the
    /// first pair's output and input gradient bit for bit on an input where most windows hold ties
    /// (values 0, 1, 2), in each layout this CPU's kernels take.
    func testEveryKernelGivesTheSameBitsTiesIncluded() {
        var pairsCompared = 0
        for tag in [dnnl_aBcd8b, dnnl_aBcd16b, dnnl_acdb] {
            let (fd, bd) = descriptors(tag)
            var first: (y: [Float], dx: [Float])?
            for f in implementationsOffered(fd) {
                let x = Memory(f.query(dnnl_query_src_md)), y = Memory(f.query(dnnl_query_dst_md)), ws = Memory(f.workspace)
                for i in 0..<x.count { x.ptr[i] = Float((i * 7 + i / 5) % 3) }
                Primitive(f, [(DNNL_ARG_SRC, x), (DNNL_ARG_DST, y), (DNNL_ARG_WORKSPACE, ws)]).execute()
                for b in implementationsOffered(bd, hint: f) {
                    let dy = Memory(b.query(dnnl_query_diff_dst_md)), dx = Memory(b.query(dnnl_query_diff_src_md))
                    for i in 0..<dy.count { dy.ptr[i] = Float(i % 13) - 6 }
                    Primitive(b, [(DNNL_ARG_DIFF_DST, dy), (DNNL_ARG_WORKSPACE, ws), (DNNL_ARG_DIFF_SRC, dx)]).execute()
                    let got = (Array(UnsafeBufferPointer(start: y.ptr, count: y.count)), Array(UnsafeBufferPointer(start: dx.ptr, count: dx.count)))
                    guard let first else { first = got; continue }
                    XCTAssertEqual(got.0, first.y, "forward \(f.implementation), layout \(tag)")
                    XCTAssertEqual(got.1, first.dx, "forward \(f.implementation), backward \(b.implementation), layout \(tag)")
                    pairsCompared += 1
                }
            }
        }
        // On AVX2 and AVX-512 CPUs oneDNN 2.6 offers its avx2, avx and sse41 kernels for 8-channel blocks.
        XCTAssertGreaterThan(pairsCompared, 0, "oneDNN offered a single pooling kernel: nothing to choose from")
    }

    /// The choice is the kernel that ran fastest, and a shape is timed once a process: the second call
    /// with the same key returns the first answer even when its runs would now say otherwise.
    func testTheFastestKernelIsChosenAndKeptPerShape() throws {
        let offered = implementationsOffered(descriptors(dnnl_aBcd8b).fwd)
        let names = Array(Set(offered.map(\.implementation))).sorted()
        try XCTSkipIf(names.count < 2, "one pooling kernel on this CPU: \(names)")
        // Every candidate runs a primitive; all but `fast` sleep beside it, 5 ms a run.
        func choose(fast: String, key: String) -> String? {
            fastestPooling(offered, key: key) { pd in
                let p = Primitive(pd, [(DNNL_ARG_SRC, Memory(pd.query(dnnl_query_src_md))), (DNNL_ARG_DST, Memory(pd.query(dnnl_query_dst_md))),
                                       (DNNL_ARG_WORKSPACE, Memory(pd.workspace))])
                return pd.implementation == fast ? p.execute : { p.execute(); usleep(5000) }
            }?.implementation
        }
        let key = "test \(UInt64.random(in: 0...UInt64.max))"
        for fast in names { XCTAssertEqual(choose(fast: fast, key: "\(key) \(fast)"), fast) }
        XCTAssertEqual(choose(fast: names[0], key: key), names[0])
        XCTAssertEqual(choose(fast: names[1], key: key), names[0], "the same shape was timed again")
    }

    /// The layer runs the measured choice: building a MaxPool times its shape's kernels (an entry appears
    /// for it) and takes the kernel recorded there, for forward and for backward.
    func testTheLayerRunsTheMeasuredKernels() throws {
        let shape = [3, 32, 10, 10]   // a batch no other test pools
        let (fd, bd) = descriptors(dnnl_aBcd8b, n: 3, h: 10)
        let kernels = { (offered: [PrimitiveDesc]) in Set(offered.map(\.implementation)).count }
        try XCTSkipIf(kernels(implementationsOffered(fd)) < 2, "one pooling kernel on this CPU")
        let pool = MaxPool(name: "pool", src: md(shape, dnnl_aBcd8b), size: 2, stride: 2, same: false, needDiffSrc: true, inference: false)
        let chosen = poolingChoices.withLock { $0 }.filter { $0.key.contains("\(shape)") }
        XCTAssertEqual(chosen.first { $0.key.hasPrefix("training ") }?.value, pool.implementations[0], "\(chosen)")
        if kernels(implementationsOffered(bd, hint: pool.fwdPD)) > 1 {
            XCTAssertEqual(chosen.first { $0.key.hasPrefix("backward ") }?.value, pool.implementations[1], "\(chosen)")
        }
    }
}
