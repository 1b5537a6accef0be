// libFuzzer harness for the tokenizer-file reader (tokenizer_parse). See README.md here.
#define TESTING
#include "../../gradsink.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static FILE *sink = NULL;
    if (!sink) sink = fopen("/dev/null", "w");
    Tokenizer tk;
    char err[1024];
    if (tokenizer_parse(&tk, "fuzz.tk", data, size, err, sizeof(err)) != 0) {
        if (tk.offset || tk.bytes || strchr(err, '\n')) abort();
        return 0;
    }
    if (tk.eot < 0 || tk.eot >= tk.vocab_size || tk.offset[0] != 0) abort();
    for (int i = 0; i < tk.vocab_size; i++) if (tk.offset[i + 1] < tk.offset[i] || tk.offset[i + 1] > size) abort();
    for (int i = -1; i <= tk.vocab_size; i++) tokenizer_write(&tk, i, sink); // ids outside the vocab included
    tokenizer_free(&tk);
    return 0;
}
