// Debian's libstb builds the implementations into libstb.so; these are declarations only.
#include <stb_image.h>
#include <stb_image_write.h>
#include <stb_image_resize.h>
// Header-only (static functions): a tiny vector font for plot text, rendered as quads.
#include <stb_easy_font.h>
