// zlib (Debian's zlib1g-dev): inflate for the zip reader, crc32 for its entry checks, deflate for fixtures.
#include <zlib.h>
