// CPNG: libpng's simplified API (png_image), which reports errors in the struct instead of
// through setjmp/longjmp.
#include <png.h>
