// OpenCV's compile and link flags (pkg-config opencv4) for CFaces, which includes its C++ headers itself;
// Swift never imports OpenCV directly, only CFaces's C interface.
