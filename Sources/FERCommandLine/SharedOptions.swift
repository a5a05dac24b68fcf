import ArgumentParser
import FERConfig
import FERCore
import FERInference
import FERNet

// The option groups both executables parse (fer, and fer-faces that `fer predict --faces` hands over to),
// declared once: a flag reads and behaves the same wherever it appears.

/// `--precision fp32|bf16|auto`: what the convolutions compute in (bf16: mixed precision, where oneDNN has bf16
/// kernels, refused with the reason elsewhere; auto: each convolution in the precision measured faster).
/// For train and bench it sets train.precision.
public struct PrecisionOption: ParsableArguments {
    @Option(help: "Convolutions in fp32, bf16 (mixed precision: bf16 convolutions and the activations between them, fp32 weights, head and loss; needs AVX512_BF16), or auto (each convolution in whichever measures faster here; train's default).")
    public var precision: Precision?
    public init() {}
    /// As a config override, for the commands that read a config.
    public var overrides: [String] { precision.map { ["train.precision=\($0)"] } ?? [] }
}

extension Precision: ExpressibleByArgument {}

/// `--json`: print one JSON object (or array) instead of the text report.
public struct JSONOutput: ParsableArguments {
    @Flag(help: "Print JSON instead of the text report.")
    public var json = false
    public init() {}
}

/// `--tta [N]`: average N test-time-augmentation variants (variant 0 is the image itself); `--tta` alone
/// takes the count from the checkpoint's run config (eval.tta: 10 in the seed's configs). Which views
/// they are (affine variants or ten crops) is the checkpoint's eval.tta_mode.
public struct TTAOptions: ParsableArguments {
    // `.next`: the value, if any, follows at once; anything else after it (another option, an image
    // name that is not a number) leaves --tta bare.
    @Option(defaultAsFlag: TTA.configured, parsing: .next,
            help: ArgumentHelp("Average this many test-time augmentation variants, 1...\(maxTTA) (ten_crop: 10); alone, as many as the checkpoint's run config says.",
                               valueName: "n"))
    public var tta: TTA?
    public init() {}

    public func validate() throws {
        if case .variants(let n) = tta { try validateTTA(n, flag: "--tta") }
    }
}

extension TTA: ExpressibleByArgument {
    public init?(argument: String) {
        guard let n = Int(argument) else { return nil }
        self = .variants(n)
    }
}

/// `fer predict --faces` and the flags that go with it. fer parses them too (so a mistake is reported
/// before anything is handed over); fer-faces acts on them.
public struct FacesOptions: ParsableArguments {
    @Flag(help: "Find the faces in real photos (or one video) with OpenCV and classify each, instead of taking each image as one face (runs fer-faces).")
    public var faces = false
    @Option(help: ArgumentHelp("""
        With --faces: write the picture or the video (.avi or .mp4) with labelled boxes. For pictures, a path with a picture \
        extension (.png, .jpg) is one file (one picture only); any other path is a folder, made when missing, that gets \
        <name>-faces.png per picture (two pictures with one name, a/team.jpg and b/team.png, get team-1 and team-2).
        """, valueName: "out"))
    public var annotate: String?
    @Option(help: ArgumentHelp("With --faces: write each face's classified region to this folder (made when missing) as <name>-face<N>.png (<name> as for --annotate).", valueName: "folder"))
    public var crops: String?
    @Option(help: "With --faces on a video: classify every n-th frame (0, n, 2n, ...).")
    public var every = 1
    @Option(help: "With --faces: grow each detected box by this fraction of its size on every side before classifying.")
    public var margin = FaceSettings().margin
    @Option(help: "With --faces: the smallest face to look for, in pixels.")
    public var minFace = FaceSettings().minSize
    @Option(help: "With --faces: the OpenCV cascade (XML) that finds faces.")
    public var cascade = FaceSettings.debianCascade
    public init() {}

    public func validate() throws {
        if !faces {
            for (flag, set) in [("--annotate", annotate != nil), ("--crops", crops != nil)] where set {
                throw ValidationError("\(flag) needs --faces")
            }
        }
        guard (1...1_000_000).contains(every) else { throw ValidationError("--every: \(every) must be in 1...1000000") }
        do { try settings.validate() } catch let e as FERError { throw ValidationError(e.message) }
    }

    public var settings: FaceSettings {
        var s = FaceSettings()
        s.cascade = cascade; s.margin = margin; s.minSize = minFace
        return s
    }
}
