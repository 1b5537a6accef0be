// libFuzzer harness for the token-file reader (dataloader_open). See README.md here.
// The header's unused ints [3], [4], [5] choose B, T and the vocab size, so the fuzzer also
// explores batch shapes and the token-id check.
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    int32_t h[6] = {0};
    memcpy(h, data, size < sizeof(h) ? size : sizeof(h));
    int B = 1 + (h[3] & 3), T = 1 + (h[4] & 15), V = 2 + (h[5] & 0xffff);
    DataLoader dl;
    char err[1024];
    if (dataloader_open(&dl, as_file(data, size), B, T, V, err, sizeof(err)) != 0) {
        if (dl.tokens) abort();              // a failed read owns nothing
        if (strchr(err, '\n')) abort();      // and explains itself in one line
        return 0;
    }
    int in[64], tg[64];
    for (size_t k = 0; k < 3; k++) {
        dataloader_batch(&dl, k, in, tg, k == 2 ? FIRST_EOT : FIRST_ANY, V - 1);
        for (int i = 0; i < B * T; i++)
            if (in[i] < 0 || in[i] >= V || tg[i] < 0 || tg[i] >= V) abort();
    }
    dataloader_free(&dl);
    return 0;
}
