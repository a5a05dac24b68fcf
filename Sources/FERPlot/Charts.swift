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

/// Integer tick positions covering lo...hi (epochs): steps of 1, 2 or 5 times a power of ten, never
/// below 1, so a three-epoch run is ticked 1 2 3, not 1 1.5 2 2.5 3.
func integerTicks(_ lo: Double, _ hi: Double, count: Int = 8) -> [Double] {
    guard lo.isFinite, hi.isFinite, abs(lo) <= plottable, abs(hi) <= plottable else { return [] }
    let first = lo.rounded(.up), last = hi.rounded(.down)
    guard last > first else { return last == first ? [first] : [] }
    let raw = max(1, (last - first) / Double(count)), mag = pow(10, floor(log10(raw)))
    let step = [1.0, 2, 5, 10].map { $0 * mag }.first { $0 >= raw }!
    return stride(from: (first / step).rounded(.up) * step, through: last, by: step).map { $0 }
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
/// Whether a chart can place `v`: finite and of magnitude at most 1e12.
public func isPlottable(_ v: Double) -> Bool { v.isFinite && abs(v) <= plottable }

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

/// A highlighted point on a line chart (the best epoch): a ring at (x, y), a dashed vertical line
/// through the plot at x, and its label in the legend beside a ring.
public struct ChartMarker: Sendable {
    public var x: Double, y: Double, label: String
    public init(x: Double, y: Double, label: String) { self.x = x; self.y = y; self.label = label }
}

/// Series of at most this many points get a dot on every point, so a short run shows its epochs and a
/// one-point series is a visible dot, not a line of zero length.
let dottedUpTo = 30

/// `integerX`: the x values are counts (epochs), ticked at integers only. `hollow[k]`: the indices of series
/// k's points drawn as open rings, not dots (points that are estimates rather than measurements).
public func lineChart(title t: String, xLabel: String, yLabel: String,
                      series: [(name: String, points: [(x: Double, y: Double)])],
                      integerX: Bool = false, marker: ChartMarker? = nil, hollow: [Set<Int>] = [], path: String) throws {
    for s in series { try checkPlottable(s.points.flatMap { [$0.x, $0.y] }, "'\(s.name)'", path: path) }
    if let marker { try checkPlottable([marker.x, marker.y], "the marker", path: path) }
    try lineChartCanvas(title: t, xLabel: xLabel, yLabel: yLabel, series: series, integerX: integerX, marker: marker,
                        hollow: hollow).canvas.writePNG(path)
}

/// The line chart drawn, and its plot area (for tests that read pixels back).
func lineChartCanvas(title t: String, xLabel: String, yLabel: String,
                     series: [(name: String, points: [(x: Double, y: Double)])],
                     integerX: Bool = false, marker: ChartMarker? = nil, hollow: [Set<Int>] = []) -> (canvas: Canvas, frame: Frame) {
    // The legend's rows end at the plot's right edge and keep clear of the y label on their left; the
    // marker's label is its last entry, so it never lies on a curve.
    let legendLeft = 10 + Canvas.textWidth(yLabel, scale: 2) + 20
    let legend = legendLayout(series.map(\.name) + (marker.map { [$0.label] } ?? []), width: 870 - legendLeft)
    let legendRows = (legend.map(\.row).max() ?? 0) + 1, extra = 24 * (legendRows - 1)
    var c = Canvas(width: 900, height: 528 + extra)
    title(&c, t)
    let all = series.flatMap(\.points)
    let xs = all.map(\.x), ys = all.map(\.y) + (marker.map { [$0.y] } ?? [])
    var xr = (xs.min() ?? 0)...(xs.max() ?? 1), ylo = min(0, ys.min() ?? 0), yhi = ys.max() ?? 1
    // Epochs: half an epoch (or 2% of the run) of margin, so the first and last points' dots clear the
    // plot's edges, and a one-epoch run's point is centred rather than pinned to the y axis.
    if integerX {
        let pad = max(0.5, 0.02 * (xr.upperBound - xr.lowerBound))
        xr = (xr.lowerBound - pad)...(xr.upperBound + pad)
    }
    if xr.upperBound == xr.lowerBound { xr = (xr.lowerBound - 0.5)...(xr.lowerBound + 0.5) }
    if yhi <= ylo { yhi = ylo + 1 }
    yhi += (yhi - ylo) * 0.05
    let f = Frame(x0: 100, y0: 68 + extra, w: 770, h: 380, xr: xr, yr: ylo...yhi)
    f.drawAxes(&c, xTicks: integerX ? integerTicks(xr.lowerBound, xr.upperBound) : ticks(xr.lowerBound, xr.upperBound))
    c.text(f.x0 + (f.w - Canvas.textWidth(xLabel, scale: 2)) / 2, f.y0 + f.h + 34, xLabel, scale: 2)
    c.text(10, f.y0 - 24, yLabel, scale: 2)
    if let marker { drawMarkerLine(&c, f, marker) }
    for (k, s) in series.enumerated() {
        let col = RGB.palette[k % RGB.palette.count]
        for (a, b) in zip(s.points, s.points.dropFirst()) { c.line(f.px(a.x), f.py(a.y), f.px(b.x), f.py(b.y), col, thickness: 2) }
        let open = k < hollow.count ? hollow[k] : []
        for (i, p) in s.points.enumerated() where open.contains(i) {
            c.disc(f.px(p.x), f.py(p.y), radius: 5, .white)
            c.ring(f.px(p.x), f.py(p.y), radius: 6, col)
        }
        if s.points.count <= dottedUpTo {
            for (i, p) in s.points.enumerated() where !open.contains(i) { c.disc(f.px(p.x), f.py(p.y), radius: s.points.count == 1 ? 6 : 4, col) }
        }
    }
    // Legend in rows above the plot's top right, so it never covers a curve.
    for (k, name) in (series.map(\.name) + (marker.map { [$0.label] } ?? [])).enumerated() {
        let ly = f.y0 - 26 - 24 * (legendRows - 1 - legend[k].row), lx = legendLeft + legend[k].x
        if k < series.count {
            c.rect(lx, ly + 5, 24, 4, RGB.palette[k % RGB.palette.count])
        } else {
            c.ring(Double(lx + 12), Double(ly + 6), radius: 8, .black)   // the marker's entry
        }
        c.text(lx + 32, ly, name, scale: 2)
    }
    if let marker { c.ring(f.px(marker.x), f.py(marker.y), radius: 10, .black) }
    return (c, f)
}

/// The marker's dashed line through the plot, drawn under the curves.
private func drawMarkerLine(_ c: inout Canvas, _ f: Frame, _ m: ChartMarker) {
    let x = Int(f.px(m.x).rounded())
    for y in stride(from: f.y0, to: f.y0 + f.h, by: 8) { c.rect(x, y, 1, 4, .axis) }
}

/// Where a heatmap's parts go. Every class name is drawn at one size (scale 2): the cells widen to the
/// longest column label instead of some labels shrinking.
struct HeatmapLayout {
    static let labelScale = 2
    let rows: Int, cols: Int, cell: Int, left: Int, top: Int
    let bar: (x: Int, y: Int, w: Int, h: Int)      // the colour scale, right of the matrix
    let width: Int, height: Int

    init(title: String, rowLabels: [String], colLabels: [String], rows: Int, cols: Int, scaleTicks: [String]) {
        func widest(_ ss: [String]) -> Int { ss.map { Canvas.textWidth($0, scale: Self.labelScale) }.max() ?? 0 }
        self.rows = rows; self.cols = cols
        cell = max(70, widest(Array(colLabels.prefix(cols))) + 12)
        left = 46 + widest(Array(rowLabels.prefix(rows)))           // the vertical row title, then the row labels
        top = 96                                                     // the title, the column title, the column labels
        bar = (left + cols * cell + 30, top, 22, max(1, rows * cell - 1))
        width = max(bar.x + bar.w + 12 + widest(scaleTicks) + 36, Canvas.textWidth(title, scale: 2) + 40)
        height = top + rows * cell + 20
    }
}

/// The cell colour for a in 0...1: white to dark blue (matplotlib's Blues ends).
func shade(_ a: Double) -> RGB {
    let a = max(0, min(1, a))
    return RGB(UInt8(255 - a * 247), UInt8(255 - a * 207), UInt8(255 - a * 148))   // white -> (8, 48, 107)
}

/// Cells shaded white to blue with their numbers, and a colour scale beside the matrix. `rowNormalised`:
/// a cell's shade is its share of its row's total (for a confusion matrix, the share of the true class),
/// the scale running 0 to 1; otherwise its value, the scale running 0 to the largest value.
/// `rowTitle` and `colTitle` name the axes (for a confusion matrix, "true" and "predicted").
public func heatmap(title t: String, rowLabels: [String], colLabels: [String], matrix: [[Double]],
                    rowNormalised: Bool = true, rowTitle: String = "", colTitle: String = "", path: String) throws {
    let cols = matrix.first?.count ?? 0
    try checkPlottable(Array(matrix.joined()), "the matrix", path: path)
    guard matrix.allSatisfy({ $0.count == cols }), rowLabels.count >= matrix.count, colLabels.count >= cols else {
        throw FERError(file: path, "cannot plot a ragged matrix or one with fewer labels than rows and columns")
    }
    try heatmapCanvas(title: t, rowLabels: rowLabels, colLabels: colLabels, matrix: matrix, rowNormalised: rowNormalised,
                      rowTitle: rowTitle, colTitle: colTitle).canvas.writePNG(path)
}

/// The heatmap drawn, and where its parts went (for tests that read pixels back).
func heatmapCanvas(title t: String, rowLabels: [String], colLabels: [String], matrix: [[Double]],
                   rowNormalised: Bool, rowTitle: String, colTitle: String) -> (canvas: Canvas, layout: HeatmapLayout) {
    let rows = matrix.count, cols = matrix.first?.count ?? 0, s2 = HeatmapLayout.labelScale
    let scaleMax = rowNormalised ? 1 : max(matrix.joined().max() ?? 0, 0)
    let scaleTicks = ticks(0, scaleMax > 0 ? scaleMax : 1)
    let l = HeatmapLayout(title: t, rowLabels: rowLabels, colLabels: colLabels, rows: rows, cols: cols, scaleTicks: scaleTicks.map(label))
    let cell = l.cell
    var c = Canvas(width: l.width, height: l.height)
    title(&c, t)
    if !colTitle.isEmpty { c.text(l.left + (cols * cell - Canvas.textWidth(colTitle, scale: s2)) / 2, 44, colTitle, scale: s2) }
    if !rowTitle.isEmpty { c.verticalText(12, l.top + (rows * cell - Canvas.textWidth(rowTitle, scale: s2)) / 2, rowTitle, scale: s2) }
    let integers = matrix.joined().allSatisfy { $0 == $0.rounded() }
    for (j, name) in colLabels.prefix(cols).enumerated() {
        c.text(l.left + j * cell + (cell - Canvas.textWidth(name, scale: s2)) / 2, l.top - 22, name, scale: s2)
    }
    for i in 0..<rows {
        c.text(l.left - 10 - Canvas.textWidth(rowLabels[i], scale: s2), l.top + i * cell + cell / 2 - 7, rowLabels[i], scale: s2)
        let total = matrix[i].reduce(0, +)
        for j in 0..<cols {
            let v = matrix[i][j]
            let a = rowNormalised ? (total > 0 ? v / total : 0) : (scaleMax > 0 ? v / scaleMax : 0)
            c.rect(l.left + j * cell, l.top + i * cell, cell - 1, cell - 1, shade(a))
            let s = integers ? String(Int(v)) : String(format: "%.2f", v)
            c.text(l.left + j * cell + (cell - Canvas.textWidth(s, scale: s2)) / 2, l.top + i * cell + cell / 2 - 7, s,
                   scale: s2, a > 0.5 ? .white : .black)
        }
    }
    drawColourScale(&c, l.bar, max: scaleMax > 0 ? scaleMax : 1, ticks: scaleTicks,
                    caption: rowNormalised ? "share of row" : "value")
    return (c, l)
}

/// A vertical bar shaded 0 (bottom) to `max` (top) as the cells are, ticked with its values, and its caption.
private func drawColourScale(_ c: inout Canvas, _ b: (x: Int, y: Int, w: Int, h: Int), max: Double, ticks: [Double], caption: String) {
    for k in 0..<b.h { c.rect(b.x, b.y + b.h - 1 - k, b.w, 1, shade(Double(k) / Double(Swift.max(1, b.h - 1)))) }
    c.rect(b.x - 1, b.y - 1, b.w + 2, 1, .axis); c.rect(b.x - 1, b.y + b.h, b.w + 2, 1, .axis)
    c.rect(b.x - 1, b.y - 1, 1, b.h + 2, .axis); c.rect(b.x + b.w, b.y - 1, 1, b.h + 2, .axis)
    var right = b.x + b.w
    for t in ticks {
        let y = b.y + b.h - 1 - Int((t / max * Double(b.h - 1)).rounded())
        c.rect(b.x + b.w, y, 5, 1, .axis)
        c.text(b.x + b.w + 9, y - 6, label(t), scale: 2, .axis)
        right = Swift.max(right, b.x + b.w + 9 + Canvas.textWidth(label(t), scale: 2))
    }
    c.verticalText(right + 10, b.y + (b.h - Canvas.textWidth(caption, scale: 2)) / 2, caption, scale: 2, .axis)
}

/// 48x48 (or any square) grayscale images in a grid, scaled up by `scale`, with optional title, row
/// labels and column labels; `markedColumn` is framed and its label coloured (the originals beside
/// their augmentations).
public func imageGrid(images: [[UInt8]], columns: Int, title t: String = "", rowLabels: [String] = [],
                      columnLabels: [String] = [], markedColumn: Int? = nil, scale: Int = 2, path: String) throws {
    guard let first = images.first else { throw FERError(file: path, "no images to plot") }
    let side = Int(Double(first.count).squareRoot())
    guard side * side == first.count, images.allSatisfy({ $0.count == first.count }), columns > 0 else {
        throw FERError(file: path, "cannot plot images that are not all square and of one size, or no columns")
    }
    let cellSide = side * scale + 4, rows = (images.count + columns - 1) / columns
    let left = rowLabels.isEmpty ? 4 : 28 + (rowLabels.map { Canvas.textWidth($0, scale: 2) }.max() ?? 0)
    let top = 4 + (t.isEmpty ? 0 : 36) + (columnLabels.isEmpty ? 0 : 24)
    var c = Canvas(width: max(left + columns * cellSide, Canvas.textWidth(t, scale: 2) + 40), height: top + rows * cellSide)
    if !t.isEmpty { title(&c, t) }
    let mark = RGB.palette[3]
    if let m = markedColumn, m >= 0, m < columns {   // a frame in the gaps around the column
        let x = left + m * cellSide - 3, h = rows * cellSide + 2
        c.rect(x, top - 3, cellSide + 2, 2, mark); c.rect(x, top - 3 + h - 2, cellSide + 2, 2, mark)
        c.rect(x, top - 3, 2, h, mark); c.rect(x + cellSide, top - 3, 2, h, mark)
    }
    for (k, img) in images.enumerated() {
        let ox = left + (k % columns) * cellSide, oy = top + (k / columns) * cellSide
        for y in 0..<(side * scale) { for x in 0..<(side * scale) {
            let v = img[(y / scale) * side + x / scale]
            c.set(ox + x, oy + y, RGB(v, v, v))
        } }
    }
    for (j, l) in columnLabels.prefix(columns).enumerated() {
        c.text(left + j * cellSide + (cellSide - 4 - Canvas.textWidth(l, scale: 2)) / 2, top - 24, l, scale: 2, j == markedColumn ? mark : .black)
    }
    for (r, l) in rowLabels.enumerated() where r < rows {
        c.text(8, top + r * cellSide + cellSide / 2 - 7, l, scale: 2)
    }
    try c.writePNG(path)
}
