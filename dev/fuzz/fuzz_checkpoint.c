// libFuzzer harness for the checkpoint readers (checkpoint_load, optstate_load).
// See README.md here. An input whose first int is the optimizer-state magic
// is read as the optimizer state of a fixed tiny model; anything else as a model file, and
// when its header passes, a model is built from the header and the payload parsed into it.
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char err[1024];
    int32_t magic = 0;
    memcpy(&magic, data, size < 4 ? size : 4);
    if (magic == OPT_MAGIC) {
        static Model tiny;
        static int built = 0;
        if (!built) {
            Config c = {5, 4, 1, 2, 1, 3, 4, VSCALE_LEARNED, 4, ROPE_THETA_DEFAULT, RMSNORM_EPS_DEFAULT};
            model_build(&tiny, &c);
            built = 1;
        }
        tiny.adam_t = 7;
        if (optstate_load(&tiny, as_file(data, size), 3, NULL, err, sizeof(err)) != 0) {
            if (tiny.adam_t != 7 || strchr(err, '\n')) abort(); // refused: the model is untouched
            return 0;
        }
        for (size_t i = 0; i < tiny.num_parameters; i++)
            if (!isfinite(tiny.m_memory[i]) || !(tiny.v_memory[i] >= 0) || !isfinite(tiny.v_memory[i])) abort();
        return 0;
    }
    Config c;
    int step;
    if (checkpoint_load(NULL, as_file(data, size), &c, &step, err, sizeof(err)) != 0) {
        if (strchr(err, '\n')) abort();
        return 0;
    }
    if (config_check(&c) || step < 0) abort();
    Model m;
    model_build(&m, &c);
    if (HEADER_INTS * 4 + m.num_parameters * 4 != size) abort(); // the header's size check is exact
    int s2;
    if (checkpoint_load(&m, as_file(data, size), &c, &s2, err, sizeof(err)) == 0) {
        if (s2 != step || first_nonfinite(m.params_memory, m.num_parameters) != m.num_parameters) abort();
    }
    model_free(&m);
    return 0;
}
