import CFaces
import FERCore
import FERData
import Foundation

/// The faces of one sampled video frame: its index (from 0), its time in seconds, and its faces.
public struct FrameFaces: Encodable, Sendable {
    public var frame: Int
    public var time: Double
    public var faces: [Face]
}

/// What a pass over a video did: frames read, frames sampled (classified), the container's frame rate,
/// and the wall-clock seconds it took.
public struct VideoSummary: Sendable {
    public var frames = 0, sampled = 0
    public var fps = 0.0, seconds = 0.0
}

/// A video file opened with OpenCV (any container and codec its FFmpeg backend reads).
final class Video {
    let handle: OpaquePointer
    let path: String
    /// The checked file, held open: FFmpeg reads it through /proc/self/fd, so it reads what was checked.
    private let fd: Int32

    init(path: String) throws {
        // FFmpeg would open a FIFO or a device and block or read forever: only a regular file is opened
        // (without blocking), and FFmpeg gets that very file, so nothing can be swapped in between.
        let fd = try openRegularFile(path).fd
        let source = access("/proc/self/fd", X_OK) == 0 ? "/proc/self/fd/\(fd)" : path
        var why = [CChar](repeating: 0, count: 256)
        guard let v = faces_video_open(source, &why, why.count) else { close(fd); throw FERError(file: path, String(cBuffer: why)) }
        handle = v
        self.fd = fd
        self.path = path
    }
    deinit { faces_video_free(handle); close(fd) }

    /// Refuses frames over fer's picture limits from the size the container declares, before any frame is
    /// decoded (a container that does not say is checked at its first frame).
    func checkDeclaredSize() throws {
        var w: Int32 = 0, h: Int32 = 0
        faces_video_size(handle, &w, &h)
        if w > 0 || h > 0, let why = imageSizeProblem(width: Int(w), height: Int(h)) { throw FERError(file: path, "frames: " + why) }
    }

    var fps: Double { faces_video_fps(handle) }
    var frameCount: Int { Int(faces_video_frame_count(handle)) }

    /// The next frame (decoded only if `decode`; a skipped frame costs no decoding), or nil at the end.
    func next(decode: Bool) throws -> Picture?? {
        var frame: OpaquePointer?
        var why = [CChar](repeating: 0, count: 256)
        switch faces_video_next(handle, decode ? 1 : 0, &frame, &why, why.count) {
        case 0: return .none
        case 1: return .some(frame.map { Picture($0, owned: false) })
        default: throw FERError(file: path, String(cBuffer: why))
        }
    }
}

/// True if the file opens as a video with OpenCV (a regular file in a container its backends read).
public func isVideo(_ path: String) -> Bool { (try? Video(path: path)) != nil }

/// The extensions an annotated video may have: OpenCV picks the container by it.
public let annotatedVideoExtensions = ["avi", "mp4"]

/// An annotated video being written: .avi as Motion JPEG, .mp4 as MPEG-4. It is written beside the
/// target under a temporary name (same extension: OpenCV picks the container by it) and renamed over the
/// target only by `finish`, when complete: a failure mid-way leaves the target as it was.
final class VideoWriter {
    private var handle: OpaquePointer?
    let path: String, temporary: String
    private var finished = false

    init(path: String, fps: Double, width: Int, height: Int) throws {
        let ext = (path as NSString).pathExtension.lowercased()
        guard annotatedVideoExtensions.contains(ext) else { throw FERError(file: path, "an annotated video must be .avi or .mp4") }
        let folder = (path as NSString).deletingLastPathComponent, name = (path as NSString).lastPathComponent
        temporary = (folder.isEmpty ? "." : folder) + "/." + (name as NSString).deletingPathExtension + ".tmp-\(getpid())." + ext
        var why = [CChar](repeating: 0, count: 256)
        guard let w = faces_video_writer_open(temporary, fps, Int32(width), Int32(height), &why, why.count) else {
            unlink(temporary)
            throw FERError(file: path, String(cBuffer: why))
        }
        handle = w
        self.path = path
    }
    deinit {
        if let handle { faces_video_writer_free(handle) }
        if !finished { unlink(temporary) }
    }

    func add(_ frame: Picture) throws {
        var why = [CChar](repeating: 0, count: 256)
        guard faces_video_writer_add(handle, frame.image, &why, why.count) == 0 else { throw FERError(file: path, String(cBuffer: why)) }
    }

    /// Closes the video (OpenCV writes the container's index then) and renames it over the target, which
    /// must still be a regular file or nothing.
    func finish() throws {
        faces_video_writer_free(handle)
        handle = nil
        // On disk before it replaces the target, as writeAtomically does for pictures.
        let fd = open(temporary, O_RDONLY)
        guard fd >= 0, fsync(fd) == 0 else { if fd >= 0 { close(fd) }; throw FERError(file: temporary, "fsync failed") }
        close(fd)
        try requireRegular(path, flag: "--annotate", given: path)
        guard rename(temporary, path) == 0 else { throw FERError(file: path, "cannot replace: \(String(cString: strerror(errno)))") }
        finished = true
        let dir = open((path as NSString).deletingLastPathComponent, O_RDONLY)
        if dir >= 0 { fsync(dir); close(dir) }
    }
}

extension FaceFinder {
    /// Finds and classifies the faces of every `every`-th frame of the video at `path` (frames 0, N, 2N,
    /// ...), handing each sampled frame to `sample` as it is done. With `annotate` (a path that passed the
    /// command's output checks), writes the whole video there, complete or not at all; each frame shows
    /// the faces of the latest sampled frame (so the video keeps its length and speed).
    /// `progress(frame, frameCount)` is called after each frame (frameCount 0 when unknown).
    public func faces(inVideo path: String, every: Int, annotate: String? = nil,
                      progress: (Int, Int) -> Void = { _, _ in }, sample: (FrameFaces) throws -> Void) throws -> VideoSummary {
        guard every >= 1 else { throw FERError("--every: \(every) must be at least 1") }
        let video = try Video(path: path)
        try video.checkDeclaredSize()
        let start = Date()
        // Some containers do not record a frame rate; 25 is the common default, for times and the writer.
        var summary = VideoSummary(fps: video.fps.isFinite && video.fps > 0 ? video.fps : 25)
        let total = max(0, video.frameCount)
        var writer: VideoWriter?
        var latest: [Face] = []
        var size: (Int, Int)?
        while let got = try video.next(decode: annotate != nil || summary.frames % every == 0) {
            let index = summary.frames
            summary.frames += 1
            guard let frame = got else { progress(summary.frames, total); continue }
            if size == nil {
                guard frame.width <= Int(maxImageSide), frame.height <= Int(maxImageSide), frame.width * frame.height <= maxImageArea else {
                    throw FERError(file: path, "frames too large (\(frame.width)x\(frame.height) pixels; the limit is \(maxImageSide) per side and \(maxImageArea >> 20) megapixels)")
                }
                size = (frame.width, frame.height)
            }
            // The annotated video has one frame size; a stream that changes size mid-way is refused, not garbled.
            guard size! == (frame.width, frame.height) else {
                throw FERError(file: path, "frame \(index) is \(frame.width)x\(frame.height), the first was \(size!.0)x\(size!.1)")
            }
            if index % every == 0 {
                latest = try faces(in: frame)
                summary.sampled += 1
                try sample(FrameFaces(frame: index, time: Double(index) / summary.fps, faces: latest))
            }
            if let annotate {
                if writer == nil { writer = try VideoWriter(path: annotate, fps: summary.fps, width: frame.width, height: frame.height) }
                FaceFinder.annotate(frame, latest)
                try writer!.add(frame)
            }
            progress(summary.frames, total)
        }
        guard summary.frames > 0 else { throw FERError(file: path, "no frames (not a video OpenCV reads, or empty)") }
        // A container that declares N frames and ends sooner is cut short or damaged: an error, and the
        // annotated copy is not kept. One frame of slack: containers that record no count get FFmpeg's
        // estimate from the duration, which can be one frame off.
        if total > 0, summary.frames < total - 1 {
            throw FERError(file: path, "the video ended after \(summary.frames) of its \(total) declared frames (cut short or damaged)")
        }
        try writer?.finish()
        summary.seconds = Date().timeIntervalSince(start)
        return summary
    }
}
