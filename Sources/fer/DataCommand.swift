import ArgumentParser
import FERCommandLine
import FERCore
import FERData
import FERTools
import Foundation

/// `fer data`: ingest (or load the cache), print the EDA report, optionally write its plots.
struct DataCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "data", abstract: "Ingest FER-2013 (folder, .zip or fer2013.csv) and report counts, class weights, pixel statistics and blank images.",
        discussion: """
        The first run ingests the source and writes a binary cache ($FER_CACHE_DIR, else beside the \
        source); later runs load the cache while the source is unchanged. Bad images and CSV rows are \
        listed and skipped (fatal with --strict); near-blank images are flagged.

        Examples:
          fer data --data ../shared/data/fer2013.zip --out runs/data
          fer data --data fer2013.csv --json
        """)

    @OptionGroup var data: DataOptions
    @OptionGroup var output: JSONOutput
    @Option(help: "Also write class_distribution.png, samples.png and augmented.png here.")
    var out: String?
    @Flag(help: "Fail on any bad image or CSV row instead of skipping it.")
    var strict = false

    struct Output: Encodable {
        let summary: DataSummary
        let ingest: IngestReport
        func encode(to e: Encoder) throws {
            try summary.encode(to: e)
            var c = e.container(keyedBy: Key.self)
            try c.encode(ingest, forKey: .ingest)
        }
        enum Key: String, CodingKey { case ingest }
    }

    func run() throws {
        try runReporting {
            var inputs = CommandInputs()
            inputs.add(data.path, as: "the data \(data.path)", enclosed: true)
            // Every plot's path is checked before the data is read: none may be an input.
            let plots = try out.map { o in
                let dir = try inputs.outputFolder(o, flag: "--out")
                return try DataReport.Plots { try inputs.outputFile(dir + "/" + $0, flag: "--out") }
            }
            let (dataset, report) = try loadDataset(path: data.path, strict: strict)
            let summary = summarize(dataset)
            if output.json { try printJSON(Output(summary: summary, ingest: report)) } else { print(DataReport.text(summary, report), terminator: "") }
            if let plots { try DataReport.writePlots(dataset, summary, to: plots) }
        }
    }
}
