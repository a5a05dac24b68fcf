import CSTB
import FERData
@testable import FERPlot
import FERTestSupport
import Foundation
import XCTest

/// Writes every chart kind and checks each file decodes as a PNG of plausible size with ink on it.
final class PlotTests: XCTestCase {
    func checkPNG(_ path: String, file: StaticString = #filePath, line: UInt = #line) {
        var w: Int32 = 0, h: Int32 = 0, n: Int32 = 0
        guard let p = stbi_load(path, &w, &h, &n, 3) else { return XCTFail("\(path) is not a PNG", file: file, line: line) }
        defer { stbi_image_free(p) }
        let px = UnsafeBufferPointer(start: p, count: Int(w * h * 3))
        XCTAssertGreaterThan(w, 100, file: file, line: line)
        XCTAssertGreaterThan(px.filter { $0 < 128 }.count, 1000, "mostly blank", file: file, line: line)
    }

    func testAllChartKinds() throws {
        let dir = ProcessInfo.processInfo.environment["FER_PLOT_DIR"] ?? tempDir()
        try barChart(title: "Train images per class", labels: Emotion.names, values: [3995, 436, 4097, 7215, 4830, 3171, 4965],
                     path: dir + "/bar.png")
        let epochs = (0..<30).map(Double.init)
        let loss: [(x: Double, y: Double)] = epochs.map { e in (e, 1.8 * exp(-e / 10) + 0.3) }
        let acc: [(x: Double, y: Double)] = epochs.map { e in (e, 0.7 * (1 - exp(-e / 8))) }
        try lineChart(title: "Training", xLabel: "epoch", yLabel: "loss / accuracy",
                      series: [("train loss", loss), ("val accuracy", acc)], path: dir + "/line.png")
        var m = [[Double]](repeating: [Double](repeating: 0, count: 7), count: 7)
        for i in 0..<7 { for j in 0..<7 { m[i][j] = i == j ? Double(300 + 40 * i) : Double((i * 7 + j) % 23) } }
        try heatmap(title: "Confusion matrix", rowLabels: Emotion.names, colLabels: Emotion.names.map { String($0.prefix(3)) },
                    matrix: m, path: dir + "/heat.png")
        try imageGrid(images: (0..<14).map { patternImage($0) }, columns: 7, rowLabels: ["a", "b"], scale: 2, path: dir + "/grid.png")
        for f in ["bar", "line", "heat", "grid"] { checkPNG(dir + "/\(f).png") }
        XCTAssertThrowsError(try imageGrid(images: [], columns: 3, path: dir + "/none.png"))
    }

    /// Legend entries are as wide as their names: short ones share a row, long run names wrap to more
    /// rows, and no two entries of a row overlap or leave the legend's width.
    /// A value no chart can draw (NaN, infinity, beyond 1e12) is an error naming the file and series, not
    /// a trap in the pixel arithmetic; a FIFO or folder in the PNG's place is refused, never written through.
    func testChartsRefuseWhatTheyCannotDraw() throws {
        let dir = tempDir("plot-refuse")
        for bad in [Double.nan, .infinity, -.infinity, 1e300] {
            XCTAssertThrowsError(try lineChart(title: "t", xLabel: "x", yLabel: "y", series: [(name: "run", points: [(0, 0.5), (1, bad)])],
                                               path: dir + "/l.png")) { XCTAssertTrue("\($0)".contains("l.png") && "\($0)".contains("'run'"), "\($0)") }
            XCTAssertThrowsError(try barChart(title: "t", labels: ["a"], values: [bad], path: dir + "/b.png"))
            XCTAssertThrowsError(try heatmap(title: "t", rowLabels: ["a"], colLabels: ["b"], matrix: [[bad]], path: dir + "/h.png"))
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir + "/l.png"))
        XCTAssertEqual(ticks(0, .infinity), [0])
        mkfifo(dir + "/p.png", 0o644)
        XCTAssertThrowsError(try barChart(title: "t", labels: ["a"], values: [1], path: dir + "/p.png")) { XCTAssertTrue("\($0)".contains("a FIFO"), "\($0)") }
        XCTAssertThrowsError(try barChart(title: "t", labels: ["a"], values: [1], path: dir)) { XCTAssertTrue("\($0)".contains("a directory"), "\($0)") }
    }

    func testLegendEntriesNeverOverlap() throws {
        let short = legendLayout(["train loss", "val accuracy"], width: 700)
        XCTAssertEqual(short.map(\.row), [0, 0])
        XCTAssertLessThan(short[0].x, short[1].x)
        let names = ["runs/best-crop44-3h", "runs/paper-seed-recipe", "runs/best-seed2-distilled", "b"]
        let long = legendLayout(names, width: 700)
        XCTAssertGreaterThan(long.map(\.row).max()!, 0, "four long names do not fit one 700 px row")
        for (i, a) in long.enumerated() {
            let end = a.x + 32 + Canvas.textWidth(names[i], scale: 2)
            XCTAssertGreaterThanOrEqual(a.x, 0); XCTAssertLessThanOrEqual(end, 700, names[i])
            for (j, b) in long.enumerated() where j > i && b.row == a.row {
                XCTAssertLessThan(end, b.x, "\(names[i]) runs into \(names[j])")
            }
        }
        let dir = ProcessInfo.processInfo.environment["FER_PLOT_DIR"] ?? tempDir()
        let curve: [(x: Double, y: Double)] = (0..<10).map { (Double($0), Double($0) / 10) }
        try lineChart(title: "Legend", xLabel: "hours", yLabel: "val accuracy",
                      series: names.map { ($0, curve) }, path: dir + "/legend.png")
        checkPNG(dir + "/legend.png")
    }
}
