// A C interface to the parts of OpenCV that `fer predict --faces` needs: decode a picture or a video,
// find frontal faces, draw boxes and labels, write a picture or a video. Swift calls these; OpenCV's
// C++ types and exceptions stay behind this header (every function catches and reports them in `err`).
#ifndef FER_FACES_H
#define FER_FACES_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// A decoded picture or video frame: 8-bit BGR, rows packed (width * 3 bytes each).
typedef struct FacesImage FacesImage;
typedef struct FacesDetector FacesDetector;
typedef struct FacesVideo FacesVideo;
typedef struct FacesVideoWriter FacesVideoWriter;

typedef struct FacesBox { int x, y, width, height; } FacesBox;

/// Functions that can fail return NULL or a negative number and write the reason, NUL-terminated, to
/// err (errLength bytes).

/// 1 if OpenCV encodes pictures with this file extension ("png", "jpg", ...), else 0. Opens nothing.
int faces_can_write_picture(const char *extension);
/// Decodes an encoded picture (JPEG, PNG, BMP, TIFF, WebP, ...; EXIF orientation applied).
FacesImage *faces_image_decode(const void *bytes, size_t count, char *err, size_t errLength);
void faces_image_free(FacesImage *image);
int faces_image_width(const FacesImage *image);
int faces_image_height(const FacesImage *image);
/// The BGR pixels, height rows of width * 3 bytes.
const unsigned char *faces_image_bgr(const FacesImage *image);
/// Encodes the picture, or only `region` of it (inside the picture; NULL: all), in the format of `extension`
/// ("png", "jpg", ...), into memory: *bytes (free with faces_bytes_free) of *count bytes. 0 on success.
/// Nothing is written to disk here: fer writes the bytes itself, atomically, where its checks allow.
int faces_image_encode(const FacesImage *image, const FacesBox *region, const char *extension, unsigned char **bytes,
                       size_t *count, char *err, size_t errLength);
void faces_bytes_free(unsigned char *bytes);
/// Draws a box and, above it (below when there is no room), a label on a filled background.
void faces_image_draw_box(FacesImage *image, FacesBox box, const char *label,
                          unsigned char red, unsigned char green, unsigned char blue);

/// Loads a cascade classifier (OpenCV's XML format, e.g. haarcascade_frontalface_default.xml).
FacesDetector *faces_detector_open(const char *cascadePath, char *err, size_t errLength);
void faces_detector_free(FacesDetector *detector);
/// Finds faces at least minSize pixels wide. Writes up to capacity boxes (largest first) and returns
/// how many were found (which may exceed capacity), or -1 on error.
int faces_detect(FacesDetector *detector, const FacesImage *image, int minSize, double scaleFactor, int minNeighbors,
                 FacesBox *boxes, int capacity, char *err, size_t errLength);

/// Opens a video file (any container and codec OpenCV's FFmpeg backend reads).
FacesVideo *faces_video_open(const char *path, char *err, size_t errLength);
void faces_video_free(FacesVideo *video);
/// The container's frames per second and frame count (either may be 0 when unknown).
double faces_video_fps(const FacesVideo *video);
/// The frame size the container declares (0 when unknown), before any frame is decoded.
void faces_video_size(const FacesVideo *video, int *width, int *height);
long faces_video_frame_count(const FacesVideo *video);
/// Decodes the next frame, or skips it (decode != 0 / == 0). 1: a frame, 0: the end, -1: an error.
/// A decoded frame is returned in *frame (owned by the video, valid until the next call).
int faces_video_next(FacesVideo *video, int decode, const FacesImage **frame, char *err, size_t errLength);

/// Opens an annotated video for writing: .avi as Motion JPEG, .mp4 as MPEG-4 part 2.
FacesVideoWriter *faces_video_writer_open(const char *path, double fps, int width, int height, char *err, size_t errLength);
int faces_video_writer_add(FacesVideoWriter *writer, const FacesImage *frame, char *err, size_t errLength);
void faces_video_writer_free(FacesVideoWriter *writer);

#ifdef __cplusplus
}
#endif

#endif
