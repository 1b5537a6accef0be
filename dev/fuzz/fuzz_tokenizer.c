// libFuzzer harness for the tokenizer-file reader (tokenizer_load). See README.md here.
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static FILE *sink = NULL;
    if (!sink) sink = fopen("/dev/null", "w");
    Tokenizer tk;
    char err[1024];
    if (tokenizer_load(&tk, as_file(data, size), err, sizeof(err)) != 0) {
        if (tk.entry || tk.file || strchr(err, '\n')) abort();
        return 0;
    }
    if (tk.eot < 0 || tk.eot >= tk.vocab_size) abort();
    for (int i = 0; i < tk.vocab_size; i++) // each entry: its length and bytes inside the file
        if (tk.entry[i] + 2 > size || tk.entry[i] + 2 + (tk.file[tk.entry[i]] | (size_t)tk.file[tk.entry[i] + 1] << 8) > size) abort();
    for (int i = -1; i <= tk.vocab_size; i++) tokenizer_write(&tk, i, sink); // ids outside the vocab included
    tokenizer_free(&tk);
    return 0;
}
