// dev/ab_step.c: times the training step of two versions of gradsink.c side by side, in one
// process, alternating step by step, so that the machine's drifts (this shared VM's speed
// varies by 2x over minutes) hit both alike. Built by dev/ab_step.sh, which compiles each
// version with -DAB_SIDE=a or b and hides everything but its two entry points.
#ifdef AB_SIDE
#define TESTING
#include AB_FILE
#define AB_CAT2(x, y) x##y
#define AB_CAT(x, y) AB_CAT2(x, y)
static Model ab_model;
void AB_CAT(AB_SIDE, _setup)(int L, int C, int H, int F, int V, int B, int T) {
    Config cfg = {.vocab_size = V, .d_model = C, .n_layer = L, .n_head = H, .n_kv_head = H, .ffn_hidden = F,
                  .max_seq_len = T, .vscale = VSCALE_OFF};
#ifdef ROPE_THETA_DEFAULT // versions whose checkpoints store RoPE's base, RMSNorm's eps and the eot id
    cfg.eot = V - 1; cfg.rope_theta = ROPE_THETA_DEFAULT; cfg.rms_norm_eps = RMSNORM_EPS_DEFAULT;
#endif
    model_build(&ab_model, &cfg);
    model_alloc_acts(&ab_model, B, T);
    model_init(&ab_model, 1);
    Rng rng;
    rng_seed(&rng, 7);
    for (int i = 0; i < B * T; i++) {
        ab_model.inputs[i] = (int)(rng_u64(&rng) % V);
        ab_model.targets[i] = (int)(rng_u64(&rng) % V);
    }
}
double AB_CAT(AB_SIDE, _step)(void) { // one training step as the bench times it
    AdamW opt = {.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1}; // the fields every version has
    double t0 = now_seconds();
    bench_step(&ab_model, &opt);
    return now_seconds() - t0;
}
#else
#include <stdio.h>
#include <stdlib.h>
void a_setup(int, int, int, int, int, int, int);
void b_setup(int, int, int, int, int, int, int);
double a_step(void);
double b_step(void);
static int cmp_double(const void *x, const void *y) {
    double u = *(const double *)x, v = *(const double *)y;
    return u < v ? -1 : u > v;
}
int main(int argc, char **argv) {
    if (argc != 9) {
        fprintf(stderr, "usage: ab_step L C H F V B T STEPS\n");
        return 1;
    }
    int L = atoi(argv[1]), C = atoi(argv[2]), H = atoi(argv[3]), F = atoi(argv[4]), V = atoi(argv[5]);
    int B = atoi(argv[6]), T = atoi(argv[7]), R = atoi(argv[8]);
    if (R < 4 || R > 1000) { fprintf(stderr, "ab_step: STEPS must be 4..1000\n"); return 1; }
    a_setup(L, C, H, F, V, B, T);
    b_setup(L, C, H, F, V, B, T);
    for (int i = 0; i < 3; i++) { a_step(); b_step(); } // warm-up
    double *ta = malloc(R * sizeof(double)), *tb = malloc(R * sizeof(double)), *ratio = malloc(R * sizeof(double));
    for (int r = 0; r < R; r++) { // which goes first alternates too
        if (r % 2) { tb[r] = b_step(); ta[r] = a_step(); }
        else { ta[r] = a_step(); tb[r] = b_step(); }
        ratio[r] = tb[r] / ta[r];
    }
    qsort(ta, R, sizeof(double), cmp_double);
    qsort(tb, R, sizeof(double), cmp_double);
    qsort(ratio, R, sizeof(double), cmp_double);
    printf("L%d C%d H%d F%d V%d B%d T%d, %d step pairs: a %.2f ms, b %.2f ms (medians); b/a per pair: median %.3f "
           "(quartiles %.3f, %.3f)\n", L, C, H, F, V, B, T, R, ta[R / 2] * 1e3, tb[R / 2] * 1e3, ratio[R / 2],
           ratio[R / 4], ratio[3 * R / 4]);
    free(ta); free(tb); free(ratio);
    return 0;
}
#endif
