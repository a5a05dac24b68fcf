import FERCore
import Foundation

// The few chart kinds the project needs: bar chart (class distribution), line chart (training curves),
// heatmap with numbers (confusion matrix) and image grid (samples, augmentations). Each writes a PNG.

/// Round tick positions covering lo...hi: steps of 1, 2 or 5 times a power of ten.
func ticks(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
    guard lo.isFinite, hi.isFinite, (hi - lo).isFinite, hi > lo else { return lo.isFinite ? [lo] : [] }
    let raw = (hi - lo) / Double(count), mag = pow(10, floor(log10(raw)))
    let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw }!
    return stride(from: (lo / step).rounded(.up) * step, through: hi + step * 1e-9, by: step).map { $0 }
}

func label(_ v: Double) -> String {
    if v == v.rounded() && abs(v) < 1e9 { return String(Int(v)) }
    let s = String(format: abs(v) < 0.01 ? "%.2e" : "%.3f", v)
    return s.contains("e") ? s : String(s.reversed().drop { $0 == "0" }.reversed())
}

/// Plot area inside a canvas, with data-to-pixel mapping and axes.
struct Frame {
    let x0: Int, y0: Int, w: Int, h: Int        // pixel box of the plot area
    let xr: ClosedRange<Double>, yr: ClosedRange<Double>
    func px(_ x: Double) -> Double { Double(x0) + (x - xr.lowerBound) / max(1e-12, xr.upperBound - xr.lowerBound) * Double(w) }
    func py(_ y: Double) -> Double { Double(y0 + h) - (y - yr.lowerBound) / max(1e-12, yr.upperBound - yr.lowerBound) * Double(h) }

    func drawAxes(_ c: inout Canvas, xTicks: [Double]?) {
        for t in ticks(yr.lowerBound, yr.upperBound) {
            let y = Int(py(t).rounded())
            c.rect(x0, y, w, 1, .grid)
            let s = label(t)
            c.text(x0 - 8 - Canvas.textWidth(s, scale: 2), y - 6, s, scale: 2, .axis)
        }
        for t in xTicks ?? [] {
            let x = Int(px(t).rounded())
            c.rect(x, y0 + h, 1, 5, .axis)
            let s = label(t)
            c.text(x - Canvas.textWidth(s, scale: 2) / 2, y0 + h + 9, s, scale: 2, .axis)
        }
        c.rect(x0, y0, 1, h + 1, .axis); c.rect(x0, y0 + h, w, 1, .axis)
    }
}

private func title(_ c: inout Canvas, _ s: String) {
    c.text((c.width - Canvas.textWidth(s, scale: 2)) / 2, 12, s, scale: 2)
}

/// The largest magnitude a chart plots: beyond it pixel arithmetic would overflow, and no value this
/// project plots (accuracies, losses, hours, counts, efficiencies) comes near it.
let plottable = 1e12

/// Refuses a value no chart can draw (NaN, infinity, beyond `plottable`), naming the chart's file and the series.
func checkPlottable(_ values: [Double], _ what: String, path: String) throws {
    if let v = values.first(where: { !($0.isFinite && abs($0) <= plottable) }) {
        throw FERError(file: path, "cannot plot \(what): the value \(v) is not a finite number of magnitude at most 1e12")
    }
}

public func barChart(title t: String, labels: [String], values: [Double], path: String) throws {
    try checkPlottable(values, "the bars", path: path)
    var c = Canvas(width: 900, height: 480)
    title(&c, t)
    let top = max(1, (values.max() ?? 1) * 1.12)
    let f = Frame(x0: 90, y0: 50, w: 790, h: 360, xr: 0...Double(max(1, values.count)), yr: 0...top)
    f.drawAxes(&c, xTicks: nil)
    for (i, v) in values.enumerated() {
        let l = f.px(Double(i) + 0.15), r = f.px(Double(i) + 0.85), y = f.py(v)
        c.rect(Int(l), Int(y), Int(r - l), f.y0 + f.h - Int(y), RGB.palette[0])
        let s = label(v), cx = Int((l + r) / 2)
        c.text(cx - Canvas.textWidth(s, scale: 2) / 2, Int(y) - 18, s, scale: 2)
        if i < labels.count { c.text(cx - Canvas.textWidth(labels[i], scale: 2) / 2, f.y0 + f.h + 10, labels[i], scale: 2) }
    }
    try c.writePNG(path)
}

/// Where each legend entry (a 24 px swatch, then its name) goes: packed right-aligned into rows of at
/// most `width` pixels, in order, a new row when the next name would not fit. Widths come from the
/// names, so a long run name never runs into its neighbour.
func legendLayout(_ names: [String], width: Int, scale: Int = 2) -> [(x: Int, row: Int)] {
    let widths = names.map { 32 + Canvas.textWidth($0, scale: scale) + 24 }   // swatch + gap, name, spacing
    var rows: [[Int]] = [[]], used = 0
    for (k, w) in widths.enumerated() {
        if used + w > width && !rows[rows.count - 1].isEmpty { rows.append([]); used = 0 }
        rows[rows.count - 1].append(k); used += w
    }
    var out = [(x: Int, row: Int)](repeating: (0, 0), count: names.count)
    for (r, members) in rows.enumerated() {
        var x = width - members.reduce(0) { $0 + widths[$1] } + 24   // the last entry needs no spacing
        for k in members { out[k] = (x, r); x += widths[k] }
    }
    return out
}

public func lineChart(title t: String, xLabel: String, yLabel: String,
                      series: [(name: String, points: [(x: Double, y: Double)])], path: String) throws {
    for s in series { try checkPlottable(s.points.flatMap { [$0.x, $0.y] }, "'\(s.name)'", path: path) }
    // The legend's rows end at the plot's right edge and keep clear of the y label on their left.
    let legendLeft = 10 + Canvas.textWidth(yLabel, scale: 2) + 20
    let legend = legendLayout(series.map(\.name), width: 870 - legendLeft)
    let legendRows = (legend.map(\.row).max() ?? 0) + 1, extra = 24 * (legendRows - 1)
    var c = Canvas(width: 900, height: 520 + extra)
    title(&c, t)
    let all = series.flatMap(\.points)
    let xs = all.map(\.x), ys = all.map(\.y)
    var xr = (xs.min() ?? 0)...(xs.max() ?? 1), ylo = min(0, ys.min() ?? 0), yhi = ys.max() ?? 1
    if xr.upperBound == xr.lowerBound { xr = xr.lowerBound...(xr.lowerBound + 1) }
    if yhi <= ylo { yhi = ylo + 1 }
    yhi += (yhi - ylo) * 0.05
    let f = Frame(x0: 100, y0: 60 + extra, w: 770, h: 380, xr: xr, yr: ylo...yhi)
    f.drawAxes(&c, xTicks: ticks(xr.lowerBound, xr.upperBound))
    c.text(f.x0 + (f.w - Canvas.textWidth(xLabel, scale: 2)) / 2, f.y0 + f.h + 34, xLabel, scale: 2)
    c.text(10, f.y0 - 24, yLabel, scale: 2)
    for (k, s) in series.enumerated() {
        let col = RGB.palette[k % RGB.palette.count]
        for (a, b) in zip(s.points, s.points.dropFirst()) { c.line(f.px(a.x), f.py(a.y), f.px(b.x), f.py(b.y), col, thickness: 2) }
        if s.points.count == 1 { c.rect(Int(f.px(s.points[0].x)) - 2, Int(f.py(s.points[0].y)) - 2, 5, 5, col) }
        // Legend in rows above the plot's top right, so it never covers a curve.
        let ly = f.y0 - 26 - 24 * (legendRows - 1 - legend[k].row), lx = legendLeft + legend[k].x
        c.rect(lx, ly + 5, 24, 4, col)
        c.text(lx + 32, ly, s.name, scale: 2)
    }
    try c.writePNG(path)
}

/// Cells shaded white to blue by value relative to the maximum (per row when `rowNormalised`), with numbers.
public func heatmap(title t: String, rowLabels: [String], colLabels: [String], matrix: [[Double]],
                    rowNormalised: Bool = true, path: String) throws {
    let rows = matrix.count, cols = matrix.first?.count ?? 0
    try checkPlottable(Array(matrix.joined()), "the matrix", path: path)
    guard matrix.allSatisfy({ $0.count == cols }), rowLabels.count >= rows, colLabels.count >= cols else {
        throw FERError(file: path, "cannot plot a ragged matrix or one with fewer labels than rows and columns")
    }
    let cell = 70, left = 20 + (rowLabels.map { Canvas.textWidth($0, scale: 2) }.max() ?? 0), top = 80
    var c = Canvas(width: max(left + cols * cell + 20, Canvas.textWidth(t, scale: 2) + 40), height: top + rows * cell + 20)
    title(&c, t)
    let integers = matrix.joined().allSatisfy { $0 == $0.rounded() }
    let globalMax = matrix.joined().max() ?? 1
    for (j, l) in colLabels.enumerated() {
        let scale = Canvas.textWidth(l, scale: 2) > cell - 6 ? 1 : 2   // long labels would run into their neighbours
        c.text(left + j * cell + (cell - Canvas.textWidth(l, scale: scale)) / 2, top - 22, l, scale: scale)
    }
    for i in 0..<rows {
        c.text(left - 10 - Canvas.textWidth(rowLabels[i], scale: 2), top + i * cell + cell / 2 - 7, rowLabels[i], scale: 2)
        let m = rowNormalised ? (matrix[i].max() ?? 1) : globalMax
        for j in 0..<cols {
            let v = matrix[i][j], a = m > 0 ? max(0, min(1, v / m)) : 0
            let col = RGB(UInt8(255 - a * 247), UInt8(255 - a * 207), UInt8(255 - a * 148))   // white -> (8, 48, 107)
            c.rect(left + j * cell, top + i * cell, cell - 1, cell - 1, col)
            let s = integers ? String(Int(v)) : String(format: "%.2f", v)
            c.text(left + j * cell + (cell - Canvas.textWidth(s, scale: 2)) / 2, top + i * cell + cell / 2 - 7, s,
                   scale: 2, a > 0.5 ? .white : .black)
        }
    }
    try c.writePNG(path)
}

/// 48x48 (or any square) grayscale images in a grid, scaled up by `scale`, with optional row labels.
public func imageGrid(images: [[UInt8]], columns: Int, rowLabels: [String] = [], scale: Int = 2, path: String) throws {
    guard let first = images.first else { throw FERError(file: path, "no images to plot") }
    let side = Int(Double(first.count).squareRoot()), cellSide = side * scale + 4
    let rows = (images.count + columns - 1) / columns
    let left = rowLabels.isEmpty ? 4 : 28 + (rowLabels.map { Canvas.textWidth($0, scale: 2) }.max() ?? 0)
    var c = Canvas(width: left + columns * cellSide, height: rows * cellSide + 4)
    for (k, img) in images.enumerated() {
        let ox = left + (k % columns) * cellSide, oy = 4 + (k / columns) * cellSide
        for y in 0..<(side * scale) { for x in 0..<(side * scale) {
            let v = img[(y / scale) * side + x / scale]
            c.set(ox + x, oy + y, RGB(v, v, v))
        } }
    }
    for (r, l) in rowLabels.enumerated() where r < rows {
        c.text(8, 4 + r * cellSide + cellSide / 2 - 7, l, scale: 2)
    }
    try c.writePNG(path)
}
