import FERData
@testable import FERPlot
import XCTest

/// What makes a chart readable, checked on the pixels drawn: whole-number epoch ticks, a one-epoch curve
/// that is a visible dot, the best epoch marked, a confusion matrix with one label size, axis titles and
/// a colour scale.
final class ReadabilityTests: XCTestCase {
    func brightness(_ c: Canvas, _ x: Int, _ y: Int) -> Int {
        let i = (y * c.width + x) * 3
        return Int(c.pixels[i]) + Int(c.pixels[i + 1]) + Int(c.pixels[i + 2])
    }

    func count(_ c: Canvas, _ colour: RGB, x: Range<Int>, y: Range<Int>) -> Int {
        var n = 0
        for yy in y { for xx in x {
            let i = (yy * c.width + xx) * 3
            if c.pixels[i] == colour.r && c.pixels[i + 1] == colour.g && c.pixels[i + 2] == colour.b { n += 1 }
        } }
        return n
    }

    /// Any run length from 1 to 2000 epochs: whole numbers only, inside the range, increasing, a
    /// handful of them. The old round ticks put 1.5 and 2.5 on a three-epoch run.
    func testEpochTicksAreWholeNumbers() {
        for first in [0.0, 1] {
            for last in 1...2000 where Double(last) >= first {
                let t = integerTicks(first, Double(last))
                XCTAssertFalse(t.isEmpty, "\(first)...\(last)")
                XCTAssertTrue(t.allSatisfy { $0 == $0.rounded() && $0 >= first && $0 <= Double(last) }, "\(first)...\(last): \(t)")
                XCTAssertEqual(t, t.sorted()); XCTAssertEqual(Set(t).count, t.count)
                XCTAssertLessThanOrEqual(t.count, 9, "\(first)...\(last): \(t)")
            }
        }
        XCTAssertEqual(integerTicks(1, 3), [1, 2, 3])
        XCTAssertEqual(integerTicks(0.5, 1.5), [1], "a one-epoch run's centred range has one tick, at its epoch")
        XCTAssertEqual(integerTicks(1, .nan), [])
    }

    /// A one-point series is a dot of radius 6 in the middle of the plot (the old chart drew a 5x5 square
    /// on the y axis), and every point of a short series is dotted.
    func testOneEpochIsAVisibleDot() {
        let (c, f) = lineChartCanvas(title: "Accuracy", xLabel: "epoch", yLabel: "accuracy",
                                     series: [("train", [(1, 0.4)]), ("validation", [(1, 0.3)])], integerX: true)
        let plot = f.x0 + 1..<f.x0 + f.w, rows = f.y0..<f.y0 + f.h
        for (k, y) in [0.4, 0.3].enumerated() {
            XCTAssertGreaterThanOrEqual(count(c, RGB.palette[k], x: plot, y: rows), 100, "series \(k) is not a visible dot")
            let cx = Int(f.px(1).rounded()), cy = Int(f.py(y).rounded())
            XCTAssertEqual(cx, f.x0 + f.w / 2, "the point is centred")
            XCTAssertEqual(count(c, RGB.palette[k], x: cx - 5..<cx + 6, y: cy - 1..<cy + 2), 33, "the dot is 11 px across")
        }
        let (short, g) = lineChartCanvas(title: "t", xLabel: "epoch", yLabel: "y", series: [("a", [(1, 0.1), (2, 0.5), (3, 0.2)])])
        let x2 = Int(g.px(2).rounded()), y2 = Int(g.py(0.5).rounded())
        XCTAssertEqual(count(short, RGB.palette[0], x: x2 - 2..<x2 + 3, y: y2 - 2..<y2 + 3), 25, "a dot on the middle point")
    }

    /// A hollow point (an estimate, not a measurement) is a ring of its series' colour with a white centre;
    /// the other points stay filled dots.
    func testHollowPointsAreRings() {
        let points: [(x: Double, y: Double)] = [(1, 0.2), (2, 0.5), (3, 0.3)]
        let (c, f) = lineChartCanvas(title: "t", xLabel: "nodes", yLabel: "minutes", series: [("a", points)], integerX: true, hollow: [[1]])
        let col = RGB.palette[0]
        for (i, p) in points.enumerated() {
            let x = Int(f.px(p.x).rounded()), y = Int(f.py(p.y).rounded())
            let centre = count(c, col, x: x - 1..<x + 2, y: y - 1..<y + 2), rim = count(c, col, x: x - 6..<x + 7, y: y - 6..<y - 4)
            if i == 1 {
                XCTAssertEqual(centre, 0, "a hollow point's centre is white")
                XCTAssertGreaterThan(rim, 6, "its ring")
            } else {
                XCTAssertEqual(centre, 9, "a measured point is a filled dot")
            }
        }
    }

    /// The marker draws a ring around its point and a dashed line through the plot at its x; without a
    /// marker neither is there.
    func testBestEpochMarker() {
        let points: [(x: Double, y: Double)] = [(1, 0.3), (2, 0.5), (3, 0.45), (4, 0.4)]
        func draw(_ m: ChartMarker?) -> (Canvas, Frame) {
            lineChartCanvas(title: "Accuracy", xLabel: "epoch", yLabel: "accuracy", series: [("validation", points)], integerX: true, marker: m)
        }
        let (marked, f) = draw(ChartMarker(x: 2, y: 0.5, label: "best: epoch 2"))
        let (plain, _) = draw(nil)
        let x = Int(f.px(2).rounded()), y = Int(f.py(0.5).rounded())
        let column = x..<x + 1, lower = Int(f.py(0.5)) + 12..<f.y0 + f.h   // the line below the point, clear of curve and dot
        XCTAssertGreaterThan(count(marked, .axis, x: column, y: lower), (lower.count) / 3, "a dashed line at the best epoch")
        XCTAssertEqual(count(plain, .axis, x: column, y: lower), 0)
        XCTAssertGreaterThan(count(marked, .black, x: x - 10..<x + 11, y: y - 10..<y + 11), 60, "a ring around the best point")
        XCTAssertLessThan(count(plain, .black, x: x - 10..<x + 11, y: y - 10..<y + 11), 5)
    }

    /// Every class name fits its column at the one label size; the colour scale beside the matrix runs
    /// monotonically from white (0, bottom) to dark blue (top); the axis titles are drawn where the layout
    /// puts them (left of the row labels, above the column labels).
    func testConfusionMatrixLabelsScaleAndTitles() {
        var m = [[Double]](repeating: [Double](repeating: 0, count: 7), count: 7)
        for i in 0..<7 { for j in 0..<7 { m[i][j] = i == j ? Double(300 + 40 * i) : Double((i * 7 + j) % 23) } }
        func draw(_ rowTitle: String, _ colTitle: String) -> (canvas: Canvas, layout: HeatmapLayout) {
            heatmapCanvas(title: "Confusion matrix", rowLabels: Emotion.names, colLabels: Emotion.names, matrix: m,
                          rowNormalised: true, rowTitle: rowTitle, colTitle: colTitle)
        }
        let (c, l) = draw("true", "predicted")
        for name in Emotion.names {
            XCTAssertLessThanOrEqual(Canvas.textWidth(name, scale: HeatmapLayout.labelScale), l.cell - 6, "\(name) overflows its column")
        }
        let mid = l.bar.x + l.bar.w / 2
        let column = (0..<l.bar.h).map { brightness(c, mid, l.bar.y + l.bar.h - 1 - $0) }   // bottom to top
        XCTAssertTrue(zip(column, column.dropFirst()).allSatisfy { $0 >= $1 }, "the scale is not monotonic")
        XCTAssertGreaterThanOrEqual(column.first!, 760, "0 is white"); XCTAssertLessThanOrEqual(column.last!, 200, "the top is dark")
        XCTAssertGreaterThan(Set(column).count, 50, "a gradient, not a few bands")
        XCTAssertGreaterThan(count(c, .axis, x: l.bar.x + l.bar.w + 9..<c.width, y: l.bar.y - 8..<l.bar.y + l.bar.h + 8), 100,
                             "the scale's numbers")
        let (bare, _) = draw("", "")
        let rowTitleBox = (x: 0..<30, y: l.top..<l.top + 7 * l.cell), colTitleBox = (x: l.left..<l.left + 7 * l.cell, y: 40..<62)
        XCTAssertGreaterThan(count(c, .black, x: rowTitleBox.x, y: rowTitleBox.y), 40)
        XCTAssertEqual(count(bare, .black, x: rowTitleBox.x, y: rowTitleBox.y), 0)
        XCTAssertGreaterThan(count(c, .black, x: colTitleBox.x, y: colTitleBox.y), 80)
        XCTAssertEqual(count(bare, .black, x: colTitleBox.x, y: colTitleBox.y), 0)
    }

    /// Vertical text is the horizontal text turned a quarter left: as tall as the text is wide, about
    /// 7*scale wide, and the same number of ink pixels.
    func testVerticalTextIsTurned() {
        var h = Canvas(width: 200, height: 200), v = Canvas(width: 200, height: 200)
        h.text(10, 10, "predicted", scale: 2); v.verticalText(10, 10, "predicted", scale: 2)
        func box(_ c: Canvas) -> (w: Int, h: Int, ink: Int) {
            var xs: [Int] = [], ys: [Int] = []
            for y in 0..<c.height { for x in 0..<c.width where c.pixels[(y * c.width + x) * 3] == 0 { xs.append(x); ys.append(y) } }
            return (xs.max()! - xs.min()! + 1, ys.max()! - ys.min()! + 1, xs.count)
        }
        let a = box(h), b = box(v)
        XCTAssertEqual(a.w, b.h); XCTAssertEqual(a.h, b.w); XCTAssertEqual(a.ink, b.ink)
        XCTAssertGreaterThan(b.h, 3 * b.w)
    }
}
