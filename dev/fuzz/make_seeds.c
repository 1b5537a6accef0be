// Writes a few valid inputs for the fuzz harnesses (seed corpora) into corpus_*/ here.
// Build and run:  cc -O1 -o make_seeds make_seeds.c -lm && ./make_seeds
#define TESTING
#include "../../gradsink.c"

static void put(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0) die("cannot write %s", path);
}

int main(void) {
    mkdir("corpus_tokens", 0755); mkdir("corpus_tokenizer", 0755); mkdir("corpus_checkpoint", 0755);
    // token file: 40 tokens, header ints [3..5] picking B 2, T 4, V 13
    unsigned char tok[HEADER_INTS * 4 + 80] = {0};
    int32_t h[HEADER_INTS] = {DATA_MAGIC, 1, 40, 1, 3, 11};
    memcpy(tok, h, sizeof(h));
    for (int i = 0; i < 40; i++) { uint16_t t = (uint16_t)(i * 7 % 13); memcpy(tok + sizeof(h) + 2 * i, &t, 2); }
    put("corpus_tokens/good.bin", tok, sizeof(tok));
    // tokenizer: "a", "b", "ab", "<|endoftext|>", one merge (0, 1)
    unsigned char tk[2048];
    int32_t th[HEADER_INTS] = {TOKENIZER_MAGIC, 1, 4, 3, 1};
    size_t n = sizeof(th);
    memcpy(tk, th, sizeof(th));
    const char *toks[4] = {"a", "b", "ab", "<|endoftext|>"};
    for (int i = 0; i < 4; i++) {
        uint16_t len = (uint16_t)strlen(toks[i]);
        memcpy(tk + n, &len, 2); memcpy(tk + n + 2, toks[i], len); n += 2 + len;
    }
    int32_t merge[2] = {0, 1};
    memcpy(tk + n, merge, 8); n += 8;
    put("corpus_tokenizer/good.tk", tk, n);
    // checkpoint of a tiny model, and the optimizer state of the harness's fixed tiny model
    char err[256];
    Model m;
    Config c = {5, 4, 1, 2, 1, 3, 4, VSCALE_LEARNED, 4, ROPE_THETA_DEFAULT, RMSNORM_EPS_DEFAULT};
    model_build(&m, &c);
    model_init(&m, 1);
    m.adam_t = 3;
    for (size_t i = 0; i < m.num_parameters; i++) { m.m_memory[i] = 0.01f * (real)i; m.v_memory[i] = 0.001f * (real)i; }
    if (checkpoint_save(&m, "corpus_checkpoint/model.bin", 3, err, sizeof(err))) die("%s", err); // and model.bin.opt
    Config c2 = {7, 8, 2, 4, 2, 6, 9, VSCALE_OFF, 6, ROPE_THETA_DEFAULT, RMSNORM_EPS_DEFAULT};
    Model m2;
    model_build(&m2, &c2);
    model_init(&m2, 2);
    if (checkpoint_save(&m2, "corpus_checkpoint/model2.bin", 0, err, sizeof(err))) die("%s", err);
    remove("corpus_checkpoint/model2.bin.opt");
    printf("wrote seed corpora\n");
    return 0;
}
