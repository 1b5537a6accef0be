// dev/bench.c: the speed benchmark, `make bench` (dev/bench STEPS [gradsink's flags for the
// shape: -L -C -H -K -F -V -t -b]). Like the tests, it includes gradsink.c, so it times the very
// functions that training calls; gradsink itself has no benchmark flag.
#ifndef TESTING
#define TESTING
#endif
#include "../gradsink.c"
#include <sys/resource.h> // getrusage: the benchmark's peak memory

// ----------------------------------------------------------------------------
// benchmark (`make bench`, i.e. dev/bench N [gradsink's shape flags]): how fast one training step runs
// against what this machine can do. In one process:
//   1. the ceiling: a tight single-precision FMA loop on every thread (the physical peak),
//      and the matrix multiplies alone on the model's own shapes;
//   2. the full training step (forward + backward + clip + AdamW) at the configuration given
//      by the flags (the defaults: L4 C128 H4 F352 T128 B16, vocab 2048 unless -V) and at a
//      4x larger one (C and F doubled; same L, H, T, B): median ms over N steps after warm-up.
// FLOPs are counted, not measured: a multiply-add is 2 FLOPs, and only the products are counted.
//   matmuls:   6 x (matmul parameters) x tokens: every weight is used in one multiply-add per
//              token forward (out = inp W^T) and two backward (dinp = dout W, dW = dout^T inp).
//              The embedding is a table lookup and is not counted.
//   attention: per batch row and query head, over the P = T(T+1)/2 causal (t, j) pairs:
//              forward q.k and a v (2 x 2 D P), backward dV, da, dq, dk (4 x 2 D P); the
//              masked half above the diagonal is never computed and is not counted.
// Softmax, norms, SwiGLU, RoPE, cross-entropy and AdamW are not counted (they are in the time).

static double bench_median(double *x, int n) { // sorts x
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && x[j] < x[j - 1]; j--) { double t = x[j]; x[j] = x[j - 1]; x[j - 1] = t; }
    return n % 2 ? x[n / 2] : 0.5 * (x[n / 2 - 1] + x[n / 2]);
}

// the machine ceiling: every thread runs independent chains of a*m + c (one FMA each) on
// BENCH_FMA_CHAINS x 16 floats, enough to cover the FMA latency on both FMA ports
#define BENCH_FMA_CHAINS 12
static double bench_fma_peak(void) {
    long iters = 20000000;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        float sink = 0;
        double t0 = now_seconds();
        int nthreads = 1;
        #pragma omp parallel reduction(+ : sink)
        {
            float acc[BENCH_FMA_CHAINS][16], m = 0.99999f, c = 1e-5f;
            for (int a = 0; a < BENCH_FMA_CHAINS; a++)
                for (int j = 0; j < 16; j++) acc[a][j] = a + j * 0.01f;
            for (long it = 0; it < iters; it++)
                for (int a = 0; a < BENCH_FMA_CHAINS; a++)
                    for (int j = 0; j < 16; j++) acc[a][j] = acc[a][j] * m + c;
            for (int a = 0; a < BENCH_FMA_CHAINS; a++)
                for (int j = 0; j < 16; j++) sink += acc[a][j];
#ifdef _OPENMP
            #pragma omp single
            nthreads = omp_get_num_threads();
#endif
        }
        double dt = now_seconds() - t0, gf = nthreads * (double)iters * BENCH_FMA_CHAINS * 16 * 2 / dt * 1e-9;
        if (sink == 42) printf(" "); // keeps the loop's result alive
        if (gf > best) best = gf;
    }
    return best;
}

// the register tiles alone: every thread runs one tile over and over on operands that stay in
// L1 (K = 64: A 64 x 12, a B panel 64 x 64), so the figure is the kernels' own ceiling, apart
// from memory and everything around them. Called through a volatile pointer so that the
// compiler cannot see that the operands repeat.
typedef void (*BenchTileFn)(real *c, const real *a, const real *b, int K);
static void bench_tile_rows(real *c, const real *a, const real *b, int K) {
    mm_tile(c, MM_RN, MM_RR, MM_RN, 1, a, K, b, MM_RN, K, MM_RR, MM_RN);
}
static void bench_tile_packed(real *c, const real *a, const real *b, int K) {
    mm_tile_packed(c, MM_NR, MM_MR, MM_NR, 1, a, b, MM_NR, K);
}
static double bench_tile_ceiling(BenchTileFn fn, int tile_outputs) {
    BenchTileFn volatile call = fn;
    int K = 64, nmax = max_threads();
    // each thread's A (K x MM_MR), B (K x MM_RN) and C, allocated and filled before the timing
    size_t na = (size_t)K * MM_MR, nb = (size_t)K * MM_RN, per = na + nb + MM_TILE_MAX;
    real *buf = xcalloc(per * nmax, sizeof(real));
    for (int t = 0; t < nmax; t++) {
        real *a = buf + per * t, *b = a + na;
        for (size_t i = 0; i < na; i++) a[i] = (real)(1e-3 * (i % 7));
        for (size_t i = 0; i < nb; i++) b[i] = (real)(1e-3 * (i % 5));
    }
    long iters = 200000;
    double best = 0;
    for (int rep = 0; rep < 3; rep++) {
        int nthreads = 1;
        double t0 = now_seconds();
        #pragma omp parallel
        {
            int tid = thread_id();
#ifdef _OPENMP
            #pragma omp single nowait
            nthreads = omp_get_num_threads();
#endif
            real *a = buf + per * tid, *b = a + na, *c = b + nb;
            for (long it = 0; it < iters; it++) call(c, a, b, K);
        }
        double dt = now_seconds() - t0, gf = nthreads * (double)iters * 2 * tile_outputs * K / dt * 1e-9;
        if (gf > best) best = gf;
    }
    free(buf);
    return best;
}

// the matmuls of one training step, on the model's shapes: (IC, OC, how many per step)
typedef struct { int IC, OC, count; } MatmulShape;
static int bench_matmul_shapes(MatmulShape *s, const Config *c) {
    int C = c->d_model, KV = c->n_kv_head * (C / c->n_head), F = c->ffn_hidden, L = c->n_layer;
    MatmulShape t[5] = {{C, C, 2 * L}, {C, KV, 2 * L}, {C, F, 2 * L}, {F, C, L}, {C, c->vocab_size, 1}};
    memcpy(s, t, sizeof(t));
    return 5;
}
static double bench_matmul_params(const Config *c) {
    MatmulShape s[5];
    int n = bench_matmul_shapes(s, c);
    double p = 0;
    for (int i = 0; i < n; i++) p += (double)s[i].IC * s[i].OC * s[i].count;
    return p;
}
static double bench_attention_flops(const Config *c, int B, int T) {
    double D = c->d_model / c->n_head, P = (double)T * (T + 1) / 2;
    return 12.0 * D * P * B * c->n_head;
}

// one training step, as main runs it
static void bench_step(Model *m, const AdamW *opt) {
    double loss, norm;
    size_t bad;
    train_step(m, opt, 1e-4, 1.0, &loss, &norm, &bad);
}

typedef struct {
    double step_ms, tok_s, gflops, mm_gflops, probe_ms, maxrss_mb;
} BenchResult;

// times fn-like blocks: median over reps of the wall time of `body`, in seconds
#define BENCH_TIME(out, reps, body)                                                  \
    do {                                                                             \
        double ts_[64];                                                              \
        for (int r_ = 0; r_ < (reps); r_++) { double t0_ = now_seconds(); body;     \
                                              ts_[r_] = now_seconds() - t0_; }       \
        out = bench_median(ts_, (reps));                                             \
    } while (0)

// the probe (the measurement pass) as main runs it, minus reading the batch: median ms
static double bench_probe_ms(Model *m) {
    Probe pr;
    probe_alloc(&pr, &m->cfg, m->T);
    double t;
    BENCH_TIME(t, 7, {
        model_forward_backward(m, m->B, m->T);
        probe_measure(&pr, m, m->B, m->T);
    });
    probe_free(&pr);
    return t * 1e3;
}

static BenchResult bench_config(const Config *cfg, int B, int T, int steps) {
    BenchResult r = {0};
    Model m;
    model_build(&m, cfg);
    model_alloc_acts(&m, B, T);
    model_init(&m, 1);
    Rng rng;
    rng_seed(&rng, 7);
    for (int i = 0; i < B * T; i++) {
        m.inputs[i] = (int)(rng_u64(&rng) % cfg->vocab_size);
        m.targets[i] = (int)(rng_u64(&rng) % cfg->vocab_size);
    }
    AdamW opt = {.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1, .mlp_weight_decay = 0.1,
                 .embed_weight_decay = 0.1, .fixed_row = -1};
    if (steps > 64) steps = 64;
    for (int s = 0; s < 3; s++) bench_step(&m, &opt); // warm-up
    double t[64], N = (double)B * T, total = 0;
    for (int s = 0; s < steps; s++) { double t0 = now_seconds(); bench_step(&m, &opt); t[s] = now_seconds() - t0; total += t[s]; }
    double step = bench_median(t, steps);
    double flops = 6 * bench_matmul_params(cfg) * N + bench_attention_flops(cfg, B, T);
    r.step_ms = step * 1e3;
    r.tok_s = N / step;
    r.gflops = flops / step * 1e-9;

    // the matmuls alone, on buffers as large as the largest activation
    MatmulShape sh[5];
    int nsh = bench_matmul_shapes(sh, cfg);
    size_t big = 0;
    for (int i = 0; i < nsh; i++) {
        if ((size_t)sh[i].IC > big) big = sh[i].IC;
        if ((size_t)sh[i].OC > big) big = sh[i].OC;
    }
    real *x = xcalloc((size_t)N * big, sizeof(real)), *y = xcalloc((size_t)N * big, sizeof(real));
    real *dx = xcalloc((size_t)N * big, sizeof(real)), *w = xcalloc(big * big, sizeof(real));
    real *dw = xcalloc(big * big, sizeof(real));
    for (size_t i = 0; i < (size_t)N * big; i++) x[i] = y[i] = (real)(0.01 * rng_normal(&rng));
    for (size_t i = 0; i < big * big; i++) w[i] = (real)(0.02 * rng_normal(&rng));
    double mm_fwd = 0, mm_bwd = 0;
    for (int i = 0; i < nsh; i++) {
        double tf, tb;
        BENCH_TIME(tf, 7, matmul_forward(y, x, w, (int)N, sh[i].IC, sh[i].OC));
        BENCH_TIME(tb, 7, matmul_backward(dx, dw, y, x, w, (int)N, sh[i].IC, sh[i].OC));
        mm_fwd += tf * sh[i].count;
        mm_bwd += tb * sh[i].count;
    }
    r.mm_gflops = 6 * bench_matmul_params(cfg) * N / (mm_fwd + mm_bwd) * 1e-9;
    free(x); free(y); free(dx); free(w); free(dw);
    r.probe_ms = bench_probe_ms(&m);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    r.maxrss_mb = ru.ru_maxrss / 1024.0; // Linux reports KiB
    model_free(&m);
    return r;
}

static void bench_print(const char *name, const Config *c, int B, int T, const BenchResult *r, double peak) {
    char probe[32];
    if (r->probe_ms < 0) snprintf(probe, sizeof(probe), "n/a");
    else snprintf(probe, sizeof(probe), "%.1f ms = %.2f steps", r->probe_ms, r->probe_ms / r->step_ms);
    printf("%-8s L%d C%d H%d Hkv%d F%d V%d T%d B%d\n", name, c->n_layer, c->d_model, c->n_head, c->n_kv_head,
           c->ffn_hidden, c->vocab_size, T, B);
    printf("  step %8.1f ms | %7.0f tok/s | %6.1f GFLOP/s = %4.1f%% of peak | matmuls alone %6.1f GFLOP/s = %4.1f%%\n",
           r->step_ms, r->tok_s, r->gflops, 100 * r->gflops / peak, r->mm_gflops, 100 * r->mm_gflops / peak);
    printf("  probe %s | peak memory (max RSS so far) %.0f MB\n", probe, r->maxrss_mb);
}

// The FMA peak is measured four times, spread over the run (this shared machine is sometimes
// slowed for a second or two, and a peak measured in such a second would inflate every
// fraction), and every fraction is of the highest of the four. The table is printed at the end.
#define BENCH_PEAKS 4
void bench_run(const Options *o, int steps) {
    Config c = options_config(o, o->vocab_size ? o->vocab_size : 2048, VSCALE_OFF);
    const char *why = config_check(&c);
    if (why) die("%s", why);
    Config big = c;
    big.d_model *= 2;
    big.ffn_hidden *= 2;
    int threads = max_threads();
    double load[1] = {0};
    if (getloadavg(load, 1) < 1) load[0] = -1;
    printf("gradsink bench: %d thread%s, %s; median of %d steps after 3 warm-up steps\n", threads,
           threads > 1 ? "s" : "", sizeof(real) == 4 ? "float32" : "float64", steps);
    fflush(stdout);
    double peaks[BENCH_PEAKS];
    peaks[0] = bench_fma_peak();
    double tr = bench_tile_ceiling(bench_tile_rows, MM_RR * MM_RN), tp = bench_tile_ceiling(bench_tile_packed, MM_MR * MM_NR);
    peaks[1] = bench_fma_peak();
    BenchResult r1 = bench_config(&c, o->B, o->T, steps);
    peaks[2] = bench_fma_peak();
    BenchResult r2 = bench_config(&big, o->B, o->T, steps);
    peaks[3] = bench_fma_peak();
    double peak = 0;
    for (int i = 0; i < BENCH_PEAKS; i++) peak = peaks[i] > peak ? peaks[i] : peak;
    printf("FMA peak (all threads, measured): %.1f GFLOP/s, the highest of %.0f, %.0f, %.0f, %.0f (at the start, after "
           "the tiles, after each model) | load average %.2f on %ld cores before the run (other processes on the cores "
           "lower every figure here)\n", peak, peaks[0], peaks[1], peaks[2], peaks[3], load[0], sysconf(_SC_NPROCESSORS_ONLN));
    printf("register tiles alone, operands in L1 (all threads): 6x64 %.1f GFLOP/s = %.0f%% | 12x32 packed %.1f GFLOP/s = "
           "%.0f%% of peak\n", tr, 100 * tr / peak, tp, 100 * tp / peak);
    bench_print("default", &c, o->B, o->T, &r1, peak);
    bench_print("4x", &big, o->B, o->T, &r2, peak);
    printf("headline: default step %.1f ms, %.1f GFLOP/s = %.0f%% of the %.0f GFLOP/s FMA peak (matmuls alone %.0f%%)\n",
           r1.step_ms, r1.gflops, 100 * r1.gflops / peak, peak, 100 * r1.mm_gflops / peak);
}

#ifndef AB_SIDE // dev/ab_step.c includes this file for bench_step
int main(int argc, char **argv) {
    if (argc < 2) die("usage: dev/bench STEPS [gradsink's shape flags: -L -C -H -K -F -V -t -b]");
    char *end;
    long steps = strtol(argv[1], &end, 10);
    if (*argv[1] == '\0' || *end != '\0' || steps < 1 || steps > 64) die("bench: STEPS must be 1 to 64 (got %s)", argv[1]);
    static Options o;
    static Flag flags[NUM_FLAGS];
    parse_args(argc - 1, argv + 1, &o, flags);
    options_check(&o);
    bench_run(&o, (int)steps);
    return 0;
}
#endif
