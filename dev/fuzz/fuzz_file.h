// The fuzz harnesses' shared part: gradsink.c (with TESTING) and the fuzzer's bytes as a file,
// since gradsink's readers read files.
#define TESTING
#include "../../gradsink.c"

static const char *as_file(const uint8_t *data, size_t size) {
    static char path[64];
    if (!*path) snprintf(path, sizeof(path), "/tmp/gradsink_fuzz_%d", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) abort();
    return path;
}
