// CZlib: zlib, for reading .gz datasets (gzopen/gzread) and CRC-32 checksums.
#include <zlib.h>
