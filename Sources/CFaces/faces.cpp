// OpenCV behind faces.h. Every entry point catches what OpenCV throws and reports it in `err`: a C++
// exception must not cross into Swift.
#include "faces.h"

#include <opencv2/core.hpp>
#include <opencv2/core/utils/logger.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect.hpp>
#include <opencv2/videoio.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <unistd.h>

struct FacesImage { cv::Mat bgr; };
struct FacesDetector { cv::CascadeClassifier cascade; };
struct FacesVideo { cv::VideoCapture capture; FacesImage frame; };
struct FacesVideoWriter { cv::VideoWriter writer; };

static void report(char *err, size_t n, const std::string &why) {
    if (err && n > 0) std::snprintf(err, n, "%s", why.c_str());
}

// Runs body, turning an exception into a message and the given failure value.
template <typename T, typename F> static T guarded(char *err, size_t n, T failure, F body) {
    try {
        return body();
    } catch (const cv::Exception &e) {
        report(err, n, e.err.empty() ? e.what() : e.err);
    } catch (const std::exception &e) {
        report(err, n, e.what());
    } catch (...) {
        report(err, n, "unknown OpenCV error");
    }
    return failure;
}

// What the codec libraries print on their own (libpng's "iCCP: known incorrect sRGB profile" on many
// web pictures, ...) goes straight to file descriptor 2, past OpenCV's logger. While a picture decodes,
// descriptor 2 points at a temporary file instead: a picture that decodes makes the chatter moot (its
// colour profile is ignored anyway), and one that fails gets it appended to its reason. Decoding runs on
// one thread at a time, and nothing else writes to stderr meanwhile.
class StderrCapture {
    int saved_ = -1;
    FILE *file_ = nullptr;
public:
    StderrCapture() {
        std::fflush(stderr);
        if ((file_ = std::tmpfile()) && (saved_ = dup(2)) >= 0) dup2(fileno(file_), 2);
    }
    // The text captured so far (at most 1 KiB of it); stderr is restored.
    std::string finish() {
        std::string text;
        if (saved_ >= 0) {
            std::fflush(stderr);
            dup2(saved_, 2);
            close(saved_);
            saved_ = -1;
            char buf[1024];
            std::rewind(file_);
            size_t got = std::fread(buf, 1, sizeof buf, file_);
            text.assign(buf, got);
            while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) text.pop_back();
        }
        if (file_) { std::fclose(file_); file_ = nullptr; }
        return text;
    }
    ~StderrCapture() { finish(); }
};

// A continuous 8-bit BGR copy of any decoded image (gray, BGRA and 16-bit pictures included).
static cv::Mat toBGR(const cv::Mat &m) {
    cv::Mat out = m;
    if (m.depth() != CV_8U) m.convertTo(out, CV_8U, m.depth() == CV_16U ? 1.0 / 257 : 1.0);
    if (out.channels() == 1) cv::cvtColor(out, out, cv::COLOR_GRAY2BGR);
    else if (out.channels() == 4) cv::cvtColor(out, out, cv::COLOR_BGRA2BGR);
    return out.isContinuous() ? out : out.clone();
}

extern "C" {

int faces_can_write_picture(const char *extension) {
    return guarded<int>(nullptr, 0, 0, [&] { return cv::haveImageWriter(std::string("x.") + extension) ? 1 : 0; });
}

FacesImage *faces_image_decode(const void *bytes, size_t count, char *err, size_t n) {
    return guarded<FacesImage *>(err, n, nullptr, [&]() -> FacesImage * {
        cv::Mat raw(1, (int)count, CV_8U, const_cast<void *>(bytes));
        StderrCapture chatter;
        cv::Mat m = cv::imdecode(raw, cv::IMREAD_COLOR);
        std::string said = chatter.finish();
        if (m.empty()) {
            std::string why = "cannot decode image (not a picture format OpenCV reads, or damaged)";
            for (char &c : said) if (c == '\n') c = ';';
            report(err, n, said.empty() ? why : why + ": " + said);
            return nullptr;
        }
        return new FacesImage{toBGR(m)};
    });
}

void faces_image_free(FacesImage *image) { delete image; }
int faces_image_width(const FacesImage *image) { return image->bgr.cols; }
int faces_image_height(const FacesImage *image) { return image->bgr.rows; }
const unsigned char *faces_image_bgr(const FacesImage *image) { return image->bgr.data; }

int faces_image_encode(const FacesImage *image, const FacesBox *r, const char *extension, unsigned char **bytes,
                       size_t *count, char *err, size_t n) {
    return guarded<int>(err, n, -1, [&] {
        cv::Mat m = image->bgr;
        if (r) {
            cv::Rect rect(r->x, r->y, r->width, r->height);
            if (rect.empty() || (rect & cv::Rect(0, 0, m.cols, m.rows)) != rect) { report(err, n, "region outside the picture"); return -1; }
            m = m(rect);
        }
        std::vector<unsigned char> out;
        if (!cv::imencode(std::string(".") + extension, m, out) || out.empty()) {
            report(err, n, std::string("cannot encode a .") + extension + " picture");
            return -1;
        }
        *bytes = static_cast<unsigned char *>(std::malloc(out.size()));
        if (!*bytes) { report(err, n, "out of memory"); return -1; }
        std::memcpy(*bytes, out.data(), out.size());
        *count = out.size();
        return 0;
    });
}

void faces_bytes_free(unsigned char *bytes) { std::free(bytes); }

void faces_image_draw_box(FacesImage *image, FacesBox b, const char *label, unsigned char red, unsigned char green,
                          unsigned char blue) {
    guarded<int>(nullptr, 0, 0, [&] {
        cv::Mat &m = image->bgr;
        cv::Scalar colour(blue, green, red);
        // Line and text scale with the picture, so labels stay legible on large photos and small frames.
        int thick = std::max(2, std::min(m.cols, m.rows) / 300);
        double scale = std::max(0.4, std::min(m.cols, m.rows) / 900.0);
        cv::rectangle(m, cv::Rect(b.x, b.y, b.width, b.height), colour, thick);
        int base = 0, stroke = std::max(1, thick / 2);
        cv::Size t = cv::getTextSize(label, cv::FONT_HERSHEY_SIMPLEX, scale, stroke, &base);
        int top = b.y - t.height - base - 2 * thick >= 0 ? b.y - t.height - base - 2 * thick : b.y + b.height;
        cv::rectangle(m, cv::Rect(b.x, top, t.width + 2 * thick, t.height + base + 2 * thick), colour, cv::FILLED);
        double luma = 0.299 * red + 0.587 * green + 0.114 * blue;
        cv::putText(m, label, cv::Point(b.x + thick, top + t.height + thick), cv::FONT_HERSHEY_SIMPLEX, scale,
                    luma > 128 ? cv::Scalar(0, 0, 0) : cv::Scalar(255, 255, 255), stroke, cv::LINE_AA);
        return 0;
    });
}

FacesDetector *faces_detector_open(const char *path, char *err, size_t n) {
    return guarded<FacesDetector *>(err, n, nullptr, [&]() -> FacesDetector * {
        // fer reports every failure itself, with the file's name; OpenCV's own warnings would only repeat it.
        cv::utils::logging::setLogLevel(cv::utils::logging::LOG_LEVEL_ERROR);
        auto *d = new FacesDetector;
        if (!d->cascade.load(path) || d->cascade.empty()) {
            delete d;
            report(err, n, "cannot load the face detector (not an OpenCV cascade XML file)");
            return nullptr;
        }
        return d;
    });
}

void faces_detector_free(FacesDetector *detector) { delete detector; }

int faces_detect(FacesDetector *d, const FacesImage *image, int minSize, double scaleFactor, int minNeighbors,
                 FacesBox *boxes, int capacity, char *err, size_t n) {
    return guarded<int>(err, n, -1, [&] {
        // The detector's usual preparation: grayscale, histogram equalised.
        cv::Mat gray;
        cv::cvtColor(image->bgr, gray, cv::COLOR_BGR2GRAY);
        cv::equalizeHist(gray, gray);
        std::vector<cv::Rect> found;
        d->cascade.detectMultiScale(gray, found, scaleFactor, minNeighbors, 0, cv::Size(minSize, minSize));
        // Largest first, then top-to-bottom, left-to-right: the order is the same on every run.
        std::sort(found.begin(), found.end(), [](const cv::Rect &a, const cv::Rect &b) {
            if (a.area() != b.area()) return a.area() > b.area();
            return a.y != b.y ? a.y < b.y : a.x < b.x;
        });
        for (int i = 0; i < (int)found.size() && i < capacity; i++)
            boxes[i] = FacesBox{found[i].x, found[i].y, found[i].width, found[i].height};
        return (int)found.size();
    });
}

FacesVideo *faces_video_open(const char *path, char *err, size_t n) {
    return guarded<FacesVideo *>(err, n, nullptr, [&]() -> FacesVideo * {
        auto *v = new FacesVideo;
        // FFmpeg alone: it reads nearly every container and codec, and it fails quietly on what it cannot read,
        // where GStreamer (OpenCV's other backend here) prints pages of warnings on any non-video file.
        if (!v->capture.open(path, cv::CAP_FFMPEG) || !v->capture.isOpened()) {
            delete v;
            report(err, n, "cannot open video (not a container or codec OpenCV reads, or damaged)");
            return nullptr;
        }
        return v;
    });
}

void faces_video_free(FacesVideo *video) { delete video; }
double faces_video_fps(const FacesVideo *v) { return const_cast<FacesVideo *>(v)->capture.get(cv::CAP_PROP_FPS); }
void faces_video_size(const FacesVideo *v, int *width, int *height) {
    auto &c = const_cast<FacesVideo *>(v)->capture;
    *width = (int)c.get(cv::CAP_PROP_FRAME_WIDTH);
    *height = (int)c.get(cv::CAP_PROP_FRAME_HEIGHT);
}
long faces_video_frame_count(const FacesVideo *v) {
    return (long)const_cast<FacesVideo *>(v)->capture.get(cv::CAP_PROP_FRAME_COUNT);
}

int faces_video_next(FacesVideo *v, int decode, const FacesImage **frame, char *err, size_t n) {
    return guarded<int>(err, n, -1, [&] {
        *frame = nullptr;
        if (!v->capture.grab()) return 0;
        if (!decode) return 1;
        cv::Mat m;
        if (!v->capture.retrieve(m) || m.empty()) { report(err, n, "cannot decode a frame"); return -1; }
        v->frame.bgr = toBGR(m);
        *frame = &v->frame;
        return 1;
    });
}

FacesVideoWriter *faces_video_writer_open(const char *path, double fps, int width, int height, char *err, size_t n) {
    return guarded<FacesVideoWriter *>(err, n, nullptr, [&]() -> FacesVideoWriter * {
        std::string p(path);
        std::string ext = p.size() >= 4 ? p.substr(p.size() - 4) : "";
        std::transform(ext.begin(), ext.end(), ext.begin(), ::tolower);
        int fourcc = ext == ".mp4" ? cv::VideoWriter::fourcc('m', 'p', '4', 'v') : cv::VideoWriter::fourcc('M', 'J', 'P', 'G');
        auto *w = new FacesVideoWriter;
        if (!w->writer.open(p, cv::CAP_FFMPEG, fourcc, fps, cv::Size(width, height)) || !w->writer.isOpened()) {
            delete w;
            report(err, n, "cannot write video (unwritable folder, or no encoder for this container)");
            return nullptr;
        }
        return w;
    });
}

int faces_video_writer_add(FacesVideoWriter *w, const FacesImage *frame, char *err, size_t n) {
    return guarded<int>(err, n, -1, [&] {
        w->writer.write(frame->bgr);
        return 0;
    });
}

void faces_video_writer_free(FacesVideoWriter *writer) { delete writer; }

}
