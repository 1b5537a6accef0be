/*
test_gradsink.c — the checks of gradsink.c, built twice by `make test` (-DGRADSINK_DOUBLE: tight finite
differences; and float). Each check prints OK or FAIL and what it measured; the last line is "N passed, M
failed". GRADSINK_TEST_ONLY="word|other words" keeps only the checks whose description holds one (any case).
The checklist, in the order of this file and of main:
  Part 1, the maths: each layer's backward against finite differences, from gradient buffers pre-filled with
    random numbers (a backward ADDS; one that stored would fail; the two that write their gradient over an
    activation are checked to overwrite garbage and to agree in place), fast kernels == naive ones; the whole
    model's gradient, AdamW, clipping, the schedule, the paper's measurements, identities and Jacobians,
    the interventions (--vscale-path, --sink-grad); the probe; training end to end
  Part 2, files: round trips, older versions, the data loader, the tokenizer, ONE table of files every
    reader must refuse, the limits on shapes, saving the checkpoint pair, append_line
  Part 3 (--cli ./gradsink): ONE table {label, shell line, expected text, exit code}, then kill -9 and resume
*/
#define TESTING
#include "gradsink.c"
#include <signal.h>
#include <strings.h>
#include <sys/wait.h>

// --- the harness
static int n_passed = 0, n_failed = 0;
// whether GRADSINK_TEST_ONLY (unset: everything) selects a check's description
static int check_selected(const char *msg) {
    const char *w = getenv("GRADSINK_TEST_ONLY");
    if (!w || !*w) return 1;
    while (*w) {
        size_t n = strcspn(w, "|");
        for (const char *m = msg; n && *m; m++)
            if (!strncasecmp(m, w, n)) return 1;
        w += n + (w[n] == '|');
    }
    return 0;
}
static void check(int ok, const char *fmt, ...) {
    char msg[1024]; va_list ap;
    va_start(ap, fmt); vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!check_selected(msg)) return;
    printf("%s %s\n", ok ? "OK  " : "FAIL", msg); fflush(stdout);
    if (ok) n_passed++; else n_failed++;
}
// OpenMP's thread count for what follows; returns the one before (without OpenMP: a no-op)
static int set_threads(int n) {
    int before = max_threads();
#ifdef _OPENMP
    omp_set_num_threads(n);
#endif
    return (void)n, before;
}
#define DBL (sizeof(real) == 8) // the double build (-DGRADSINK_DOUBLE); else float
#define FD_EPS (DBL ? 1e-3 : 1e-2)      // step of the five-point central difference, relative to the tensor's rms
                                        // (smaller steps are worse: the error is rounding, growing as 1/step)
#define FD_TOL (DBL ? 1e-6 : 3e-2)      // max relative error of a backward against finite differences
#define FD_FLOOR (DBL ? 1e-3 : 1e-2)    // entries below this fraction of the largest are judged at that scale
#define FD_TOL_MODEL (DBL ? 1e-6 : 5e-2) // whole model in float: the loss itself carries ~1e-7 relative rounding
#define EXACT (DBL ? 1e-12 : 1e-5) // two orders of the same sums, relative
static Rng trng; // the tests' own random numbers (seeded in main)
static const AdamW ADAMW = {.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1, .mlp_weight_decay = 0.1, .embed_weight_decay = 0.1, .fixed_row = -1};
static char tmpdir[256];
// every buffer a test makes goes into one pool, freed by release() when the test ends
static void *pool[1024];
static int npool;
static void *keep(void *p) { if (npool == 1024) die("test pool full"); return pool[npool++] = p; }
static void release(void) { while (npool) free(pool[--npool]); }
#define RUN(test) (test, release()) // main runs each test so; RUN_ALL a list of tests without arguments
#define RUN_ALL(...) do { void (*tests[])(void) = {__VA_ARGS__}; for (size_t i = 0; i < sizeof(tests) / sizeof(*tests); i++) RUN(tests[i]()); } while (0)
static real *fill_normal(real *x, size_t n, double std) { for (size_t i = 0; i < n; i++) x[i] = (real)(std * rng_normal(&trng)); return x; }
// n random numbers of that std (0: zeros, no draws), or a copy of x
static real *buf(size_t n, double std) { real *x = keep(xcalloc(n + 1, sizeof(real))); return std ? fill_normal(x, n, std) : x; }
static real *copy_of(const real *x, size_t n) { return memcpy(buf(n, 0), x, n * sizeof(real)); }
static double dot(const real *a, const real *b, size_t n) { double s = 0; for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i]; return s; }
// max |a - b|; *scale grows to max |b|
static double maxdiff(const real *a, const real *b, size_t n, double *scale) {
    double d = 0;
    for (size_t i = 0; i < n; i++) { d = fmax(d, fabs(a[i] - b[i])); *scale = fmax(*scale, fabs(b[i])); }
    return d;
}
// files: tmpdir/name, kept in the pool; a file's bytes, kept in the pool (NULL if unreadable)
static char *path_in(const char *name) {
    char *p = keep(xcalloc(strlen(tmpdir) + strlen(name) + 32, 1));
    sprintf(p, "%s%s%s", tmpdir, *name ? "/" : "", name); return p;
}
static void *slurp(const char *path, size_t *n) { char err[256]; size_t got; return keep(read_part(path, 0, n, &got, err, sizeof(err))); }
static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f); fclose(f);
}
// an llm.c token file with a given header and tokens
static void write_tokens(const char *path, int magic, int version, int count, const uint16_t *tok, int ntok) {
    int32_t h[HEADER_INTS] = {magic, version, count}; FILE *f = fopen(path, "wb");
    fwrite(h, sizeof(int32_t), HEADER_INTS, f); fwrite(tok, sizeof(uint16_t), ntok, f);
    fclose(f);
}
// a tokenizer file: n tokens (each a uint16 length, below 256 here, and its bytes), the eot id, nmerge pairs of ids
static void write_tokenizer(const char *path, int n, const char **toks, int eot, int nmerge, const int32_t *merges) {
    int32_t h[HEADER_INTS] = {TOKENIZER_MAGIC, 1, n, eot, nmerge}; FILE *f = fopen(path, "wb");
    fwrite(h, sizeof(int32_t), HEADER_INTS, f);
    for (int i = 0; i < n; i++) fprintf(f, "%c%c%s", (int)strlen(toks[i]), 0, toks[i]);
    fwrite(merges, sizeof(int32_t), 2 * nmerge, f); fclose(f);
}
// a small model's configuration (eot V-1, RoPE base and eps the defaults)
static Config config(int V, int C, int L, int H, int Hkv, int F, int T, int vscale) {
    return (Config){.vocab_size = V, .d_model = C, .n_layer = L, .n_head = H, .n_kv_head = Hkv, .ffn_hidden = F, .max_seq_len = T,
                    .vscale = vscale, .eot = V - 1, .rope_theta = ROPE_THETA_DEFAULT, .rms_norm_eps = RMSNORM_EPS_DEFAULT};
}

// --- finite differences. loss(ctx) evaluates a scalar at the current value of the buffer perturbed.
typedef double (*LossFn)(void *ctx);
static const double STEPS[4] = {2, 1, -1, -2}; // the five-point stencil: f[k] at x + STEPS[k] h gives the derivative
static double stencil(const double *f, double h) { return (8 * (f[1] - f[2]) - (f[0] - f[3])) / (12 * h); }
// Max over sampled entries of |analytic - numeric| / max(|analytic|, |numeric|, floor), where
// floor = FD_FLOOR * the largest |numeric| sampled: tiny entries are judged at the tensor's scale.
// The step is FD_EPS times the tensor's rms, so it is small relative to the values perturbed.
static double fd_rel_err(real *x, const real *analytic, size_t n, LossFn loss, void *ctx, int samples) {
    int count = n < (size_t)samples ? (int)n : samples;
    double h = sqrt(dot(x, x, n) / (n ? n : 1)), scale = 0, worst = 0, f[4], *num = keep(xcalloc(count, sizeof(double)));
    size_t *idx = keep(xcalloc(count, sizeof(size_t))); h = FD_EPS * (h > 0 ? h : 1.0);
    for (int s = 0; s < count; s++) {
        idx[s] = n <= (size_t)samples ? (size_t)s : (size_t)(rng_uniform(&trng) * n); real old = x[idx[s]];
        for (int k = 0; k < 4; k++) { x[idx[s]] = old + (real)(STEPS[k] * h); f[k] = loss(ctx); }
        x[idx[s]] = old; num[s] = stencil(f, h);
        scale = fmax(scale, fabs(num[s]));
    }
    for (int s = 0; s < count; s++) {
        double a = analytic[idx[s]], den = fmax(fmax(fabs(a), fabs(num[s])), FD_FLOOR * scale + 1e-300); worst = fmax(worst, fabs(a - num[s]) / den);
    }
    return worst;
}
// Directional version, for the float build's whole-model check where single entries drown in
// rounding: compares <analytic, u> with the derivative of loss along u, for u = the analytic
// gradient itself and for a random direction. Returns the worse relative error.
static double fd_dir_err(real *x, const real *analytic, size_t n, LossFn loss, void *ctx) {
    real *x0 = copy_of(x, n); double *u = keep(xcalloc(n, sizeof(double))), worst = 0, gnorm = sqrt(dot(analytic, analytic, n));
    for (int dir = 0; dir < 2; dir++) {
        double un = 0, want = 0, h = FD_EPS * sqrt(dot(x0, x0, n)), f[4];
        for (size_t i = 0; i < n; i++) { u[i] = dir == 0 ? analytic[i] / (gnorm + 1e-300) : rng_normal(&trng); un += u[i] * u[i]; }
        for (size_t i = 0; i < n; i++) { u[i] /= sqrt(un); want += analytic[i] * u[i]; }
        h = h > 0 ? h : FD_EPS;
        for (int k = 0; k < 4; k++) {
            for (size_t i = 0; i < n; i++) x[i] = x0[i] + (real)(STEPS[k] * h * u[i]);
            f[k] = loss(ctx);
        }
        memcpy(x, x0, n * sizeof(real)); double got = stencil(f, h);
        // judged against the gradient's norm: a random direction sees only a small part of it
        worst = fmax(worst, fabs(got - want) / fmax(fabs(want), FD_FLOOR * 10 * gnorm + 1e-300));
    }
    return worst;
}

// --- Part 1. Layers: loss = sum(out * R) for a fixed random R, so dout = R. The inputs x[i] (n[i]
// reals each) are differentiated; fd_layer pre-fills their gradients with random numbers, runs
// the backward, and compares what it ADDED with finite differences.
typedef struct Ctx {
    int B, T, C, V, IC, OC, NH, NKV, D, mode, d_model; double eps;
    real *x[3], *out, *aux, *R, *cosb, *sinb; // aux: what the forward keeps for the backward
    size_t n[3], nout;
    int *tok; void (*fwd)(struct Ctx *c);
    double e[3]; real *d[3]; // fd_layer's results
} Ctx;
static void input(Ctx *c, int i, size_t n, double std) { c->x[i] = buf(n, std); c->n[i] = n; }
static void output(Ctx *c, size_t n) { c->out = buf(n, 0); c->R = buf(n, 1); c->nout = n; }
static double loss_layer(void *p) { Ctx *c = p; c->fwd(c); return dot(c->out, c->R, c->nout); }
// c->e[i]: the FD error of what bwd added to the pre-filled gradient of x[i]; c->d[i]: that amount
static void fd_layer(Ctx *c, void (*fwd)(Ctx *), void (*bwd)(Ctx *, real **), int nin, int samples) {
    real *g[3];
    for (int i = 0; i < nin; i++) { g[i] = buf(c->n[i], 1); c->d[i] = copy_of(g[i], c->n[i]); }
    c->fwd = fwd;
    fwd(c); bwd(c, g); // the forward first: the backward reads what it saved
    for (int i = 0; i < nin; i++) {
        for (size_t j = 0; j < c->n[i]; j++) c->d[i][j] = g[i][j] - c->d[i][j];
        c->e[i] = fd_rel_err(c->x[i], c->d[i], c->n[i], loss_layer, c, samples);
    }
}
#define FD_OK(e, n) ((n) < 2 ? e[0] <= FD_TOL : (n) < 3 ? fmax(e[0], e[1]) <= FD_TOL : fmax(e[0], fmax(e[1], e[2])) <= FD_TOL)
static void fwd_encoder(Ctx *c) { encoder_forward(c->out, c->tok, c->x[0], c->B, c->T, c->C); }
static void bwd_encoder(Ctx *c, real **d) { encoder_backward(d[0], c->R, c->tok, c->B, c->T, c->C); }
static void test_encoder(void) {
    Ctx c = {.B = 2, .T = 5, .C = 6, .V = 7}; c.tok = keep(xcalloc(c.B * c.T, sizeof(int)));
    for (int i = 0; i < c.B * c.T; i++) c.tok[i] = (i * 3) % c.V; // tokens repeat: their rows must sum
    input(&c, 0, (size_t)c.V * c.C, 1); output(&c, (size_t)c.B * c.T * c.C);
    fd_layer(&c, fwd_encoder, bwd_encoder, 1, 1000);
    check(FD_OK(c.e, 1), "encoder backward (added to a pre-filled dwte) vs finite differences: dwte rel err %.2e", c.e[0]);
}
static void fwd_rmsnorm(Ctx *c) { rmsnorm_forward(c->out, c->aux, c->x[0], c->x[1], c->B, c->C, c->eps); }
static void bwd_rmsnorm(Ctx *c, real **d) { rmsnorm_backward(d[0], d[1], c->R, c->x[0], c->x[1], c->aux, c->B, c->C); }
static void test_rmsnorm(double eps) {
    Ctx c = {.B = 5, .C = 9, .eps = eps}; input(&c, 0, (size_t)c.B * c.C, 1.5); input(&c, 1, c.C, 1); output(&c, (size_t)c.B * c.C); c.aux = buf(c.B, 0);
    fd_layer(&c, fwd_rmsnorm, bwd_rmsnorm, 2, 1000);
    check(FD_OK(c.e, 2), "rmsnorm backward (eps %g, added to pre-filled buffers) vs finite differences: dx %.2e, dgain %.2e", eps, c.e[0], c.e[1]);
}
static void fwd_matmul(Ctx *c) { matmul_forward(c->out, c->x[0], c->x[1], c->B, c->IC, c->OC); }
static void bwd_matmul(Ctx *c, real **d) { matmul_backward(d[0], d[1], c->R, c->x[0], c->x[1], c->B, c->IC, c->OC); }
static void test_matmul(int N, int IC, int OC) {
    Ctx c = {.B = N, .IC = IC, .OC = OC}; size_t ni = (size_t)N * IC, nw = (size_t)OC * IC;
    input(&c, 0, ni, 1); input(&c, 1, nw, 1); output(&c, (size_t)N * OC);
    real *ref = buf(c.nout, 0), *dx = buf(ni, 1), *dw = buf(nw, 1), *dx0 = copy_of(dx, ni), *dw0 = copy_of(dw, nw);
    matmul_forward_naive(ref, c.x[0], c.x[1], N, IC, OC); fwd_matmul(&c);
    matmul_backward(dx, dw, c.R, c.x[0], c.x[1], N, IC, OC); matmul_backward_naive(dx0, dw0, c.R, c.x[0], c.x[1], N, IC, OC);
    double sf = 0, sb = 0, df = maxdiff(c.out, ref, c.nout, &sf), db = fmax(maxdiff(dx, dx0, ni, &sb), maxdiff(dw, dw0, nw, &sb));
    check(df <= EXACT * (sf + 1) && db <= EXACT * (sb + 1), "matmul %dx%dx%d: fast == naive (forward %.1e, backward %.1e)", N, IC, OC, df, db);
    fd_layer(&c, fwd_matmul, bwd_matmul, 2, 300);
    check(FD_OK(c.e, 2), "matmul %dx%dx%d backward (added to pre-filled buffers) vs finite differences: dinp %.2e, dweight %.2e", N, IC, OC, c.e[0], c.e[1]);
}
static void fwd_rope(Ctx *c) { rope_forward(c->out, c->x[0], c->cosb, c->sinb, c->B, c->T, c->NH, c->D); }
static void bwd_rope(Ctx *c, real **d) { rope_backward(d[0], c->R, c->cosb, c->sinb, c->B, c->T, c->NH, c->D); }
static void test_rope(void) {
    Ctx c = {.B = 2, .T = 7, .NH = 3, .D = 8}; size_t n = (size_t)c.B * c.T * c.NH * c.D;
    c.cosb = buf((size_t)c.T * c.D / 2, 0); c.sinb = buf((size_t)c.T * c.D / 2, 0); input(&c, 0, n, 1); output(&c, n);
    rope_tables(c.cosb, c.sinb, c.T, c.D, ROPE_THETA_DEFAULT); fd_layer(&c, fwd_rope, bwd_rope, 1, 1000);
    check(FD_OK(c.e, 1), "rope backward (added to a pre-filled buffer) vs finite differences: %.2e", c.e[0]);
    real y[16], x[16] = {[8] = 1}; // HF rotate-half pairing: position 1, pair (0, D/2) rotates by angle 1 (frequency base^0)
    rope_forward(y, x, c.cosb, c.sinb, 1, 2, 1, 8);
    check(fabs(y[8] - cos(1.0)) < 1e-6 && fabs(y[12] - sin(1.0)) < 1e-6 && fabs(y[9]) < 1e-12,
          "rope pairs dimension i with i + D/2 (HF rotate-half), angle t * base^(-2i/D)");
}
static void fwd_attention(Ctx *c) { attention_forward(c->out, c->aux, c->x[0], c->x[1], c->x[2], c->B, c->T, c->NH, c->NKV, c->D); }
static void bwd_attention(Ctx *c, real **d) {
    attention_backward(d[0], d[1], d[2], c->R, c->x[0], c->x[1], c->x[2], c->aux, c->B, c->T, c->NH, c->NKV, c->D);
}
static void test_attention(int NH, int NKV) {
    Ctx c = {.B = 2, .T = 7, .NH = NH, .NKV = NKV, .D = 4}; size_t nq = (size_t)c.B * c.T * NH * c.D, nk = (size_t)c.B * c.T * NKV * c.D;
    input(&c, 0, nq, 1); input(&c, 1, nk, 1); input(&c, 2, nk, 1); output(&c, nq); c.aux = buf((size_t)c.B * NH * c.T * c.T, 0);
    double worst = 0; fd_layer(&c, fwd_attention, bwd_attention, 3, 1000);
    check(FD_OK(c.e, 3), "attention (H %d, Hkv %d) backward (added to pre-filled buffers) vs finite differences: dq %.2e, dk %.2e, dv %.2e",
          NH, NKV, c.e[0], c.e[1], c.e[2]);
    for (int r = 0; r < c.B * NH * c.T; r++) { // causal: weights above the diagonal exactly 0, rows sum to 1
        double s = 0;
        for (int j = 0; j < c.T; j++) {
            s += c.aux[(size_t)r * c.T + j];
            if (j > r % c.T) worst = fmax(worst, fabs(c.aux[(size_t)r * c.T + j]));
        }
        worst = fmax(worst, fabs(s - 1));
    }
    check(worst < 1e-5, "attention weights are causal and each row sums to 1 (worst %.1e)", worst);
}
// the tiled attention against the naive one, on shapes that are not multiples of the tiles
// (T = 1, odd T and D, grouped heads); both overwrite garbage outputs and add into the same gradients
static void test_attention_fast(int B, int T, int NH, int NKV, int D) {
    size_t nq = (size_t)B * T * NH * D, nk = (size_t)B * T * NKV * D, na = (size_t)B * NH * T * T, ng[3] = {nq, nk, nk};
    real *q = buf(nq, 1), *k = buf(nk, 1), *v = buf(nk, 1), *dy = buf(nq, 1), *y[2], *att[2], *g[2][3]; // g[f]: dq, dk, dv
    for (int f = 0; f < 2; f++) { y[f] = buf(nq, 1); att[f] = buf(na, 1); }
    for (int i = 0; i < 3; i++) { g[0][i] = buf(ng[i], 1); g[1][i] = copy_of(g[0][i], ng[i]); } // the same pre-filled gradients for both
    attention_forward_naive(y[0], att[0], q, k, v, B, T, NH, NKV, D); attention_forward(y[1], att[1], q, k, v, B, T, NH, NKV, D);
    attention_backward_naive(g[0][0], g[0][1], g[0][2], dy, q, k, v, att[0], B, T, NH, NKV, D);
    attention_backward(g[1][0], g[1][1], g[1][2], dy, q, k, v, att[1], B, T, NH, NKV, D);
    double sf = 0, sb = 0, db = 0, df = fmax(maxdiff(y[1], y[0], nq, &sf), maxdiff(att[1], att[0], na, &sf)), tol = DBL ? 1e-12 : 2e-5;
    for (int i = 0; i < 3; i++) db = fmax(db, maxdiff(g[1][i], g[0][i], ng[i], &sb));
    check(df <= tol * sf && db <= tol * sb, "attention B%d T%d H%d Hkv%d D%d: fast == naive (forward %.1e, backward %.1e)",
          B, T, NH, NKV, D, df / sf, db / sb);
}
static void fwd_vscale(Ctx *c) { vscale_forward(c->out, c->aux, c->x[0], c->x[1], c->mode, VSCALE_PATH_BOTH, c->d_model, c->B, c->NKV, c->D); }
static void bwd_vscale(Ctx *c, real **d) {
    vscale_backward(d[0], d[1], c->R, c->x[0], c->x[1], c->mode, VSCALE_PATH_BOTH, c->d_model, c->B, c->NKV, c->D);
}
static void test_vscale(int mode) {
    Ctx c = {.B = 6, .NKV = 3, .D = 4, .mode = mode, .d_model = 12}; size_t n = (size_t)c.B * c.NKV * c.D;
    // value norms spread around c = 12*4*0.0004 = 0.0192, where the Jacobian is most curved
    input(&c, 0, n, 0.07); input(&c, 1, c.NKV, 0.5);
    output(&c, n); c.aux = buf((size_t)c.B * c.NKV, 0);
    fd_layer(&c, fwd_vscale, bwd_vscale, 2, 1000);
    if (mode != VSCALE_LEARNED) // theta is a parameter only when learned: otherwise its gradient is left as it was
        for (int h = c.e[1] = 0; h < c.NKV; h++) c.e[1] += c.d[1][h] != 0;
    check(FD_OK(c.e, 2), "vscale %s backward (added to pre-filled buffers) vs finite differences: dv %.2e, dtheta %.2e", VSCALE_NAMES[mode], c.e[0], c.e[1]);
}
static void fwd_swiglu(Ctx *c) { swiglu_forward(c->out, c->x[0], c->x[1], c->nout); }
// swiglu_backward and crossentropy_softmax_backward WRITE their gradient (model_backward calls
// them in place, over the activation): into buffers of garbage here, then added for fd_layer
static void bwd_swiglu(Ctx *c, real **d) {
    real *g = buf(c->nout, 1), *u = buf(c->nout, 1); swiglu_backward(g, u, c->R, c->x[0], c->x[1], c->nout);
    for (size_t i = 0; i < c->nout; i++) { d[0][i] += g[i]; d[1][i] += u[i]; }
}
static void test_swiglu(void) {
    Ctx c = {0}; input(&c, 0, 40, 2); input(&c, 1, 40, 1); output(&c, 40);
    fd_layer(&c, fwd_swiglu, bwd_swiglu, 2, 100);
    real *g = buf(40, 1), *u = buf(40, 1), *gi = copy_of(c.x[0], 40), *ui = copy_of(c.x[1], 40);
    swiglu_backward(g, u, c.R, c.x[0], c.x[1], 40); swiglu_backward(gi, ui, c.R, gi, ui, 40);
    int same = !memcmp(g, gi, 40 * sizeof(real)) && !memcmp(u, ui, 40 * sizeof(real));
    check(FD_OK(c.e, 2) && same, "swiglu backward (written over garbage) vs finite differences: dgate %.2e, dup %.2e; "
                                 "in place over gate, up: the same bits", c.e[0], c.e[1]);
}
// the mean loss: out = the losses (B), R = 1/(positions scored); aux = the probabilities
static void fwd_xent(Ctx *c) {
    memcpy(c->aux, c->x[0], c->n[0] * sizeof(real)); // the forward turns logits into probabilities in place
    crossentropy_forward(c->out, c->aux, c->tok, c->B, c->V);
}
static void bwd_xent(Ctx *c, real **d) {
    real *s = buf(c->n[0], 1); crossentropy_softmax_backward(s, c->aux, c->tok, c->R[0], c->B, c->V);
    for (size_t i = 0; i < c->n[0]; i++) d[0][i] += s[i];
}
static void test_crossentropy(void) {
    Ctx c = {.B = 6, .V = 11}; input(&c, 0, (size_t)c.B * c.V, 2); output(&c, c.B); c.aux = buf(c.n[0], 0); c.tok = keep(xcalloc(c.B, sizeof(int)));
    for (int i = 0; i < c.B; i++) { c.tok[i] = (i * 5 + 1) % c.V; c.R[i] = (real)(1.0 / (c.B - 1)); }
    c.tok[2] = IGNORE; // a position out of the loss: loss 0, gradient 0, not counted in the mean
    fd_layer(&c, fwd_xent, bwd_xent, 1, 1000); int ignored = count_scored(c.tok, c.B) == c.B - 1 && c.out[2] == 0;
    for (int i = 0; i < c.V; i++) ignored &= c.d[0][2 * c.V + i] == 0;
    real *w = buf(c.n[0], 1), *inplace = copy_of(c.aux, c.n[0]);
    crossentropy_softmax_backward(w, c.aux, c.tok, c.R[0], c.B, c.V); crossentropy_softmax_backward(inplace, inplace, c.tok, c.R[0], c.B, c.V);
    check(FD_OK(c.e, 1) && ignored && !memcmp(w, inplace, c.n[0] * sizeof(real)),
          "cross-entropy backward (written over garbage; an ignored target: loss 0, gradient 0, out of the mean) vs "
          "finite differences: %.2e; in place over the probabilities: the same bits", c.e[0]);
}
// the softmax row helper of the fast attention backward, against finite differences of
// loss = sum_j R_j softmax(scale * z)_j, whose gradient in z is the row's dlogit for da = R
static void test_softmax_row(void) {
    int n = 9; real z[9], a[9], R[9], dl[9], inplace[9], scale = (real)0.5; fill_normal(z, n, 1); fill_normal(R, n, 1); fill_normal(dl, n, 1);
    double zmax = -INFINITY, sum = 0, worst = 0, h = DBL ? 1e-6 : 1e-2;
    for (int j = 0; j < n; j++) zmax = fmax(zmax, z[j]);
    for (int j = 0; j < n; j++) sum += exp(scale * (z[j] - zmax));
    for (int j = 0; j < n; j++) a[j] = (real)(exp(scale * (z[j] - zmax)) / sum);
    memcpy(inplace, R, sizeof(R)); dsoftmax_row(dl, a, R, n, scale); dsoftmax_row(inplace, a, inplace, n, scale);
    for (int j = 0; j < n; j++) { // central difference of the loss in z_j
        double f[2];
        for (int k = 0; k < 2; k++) {
            double s2 = 0, l = 0, zj = z[j] + (k ? -h : h);
            for (int i = 0; i < n; i++) s2 += exp(scale * ((i == j ? zj : z[i]) - zmax));
            for (int i = 0; i < n; i++) l += R[i] * exp(scale * ((i == j ? zj : z[i]) - zmax)) / s2;
            f[k] = l;
        }
        worst = fmax(worst, fabs(dl[j] - (f[0] - f[1]) / (2 * h)));
    }
    check(worst <= (DBL ? 1e-8 : 1e-3) && !memcmp(dl, inplace, sizeof(dl)),
          "softmax row backward (stores: over a pre-filled row, and in place over da, the same bits) vs finite differences: %.1e", worst);
}

// --- the whole model
static double loss_model(void *p) { Model *m = p; return model_forward(m, m->B, m->T, 1); } // on the batch it was allocated for
// a model built for batches of B x T, initialised from seed
static void new_model(Model *m, Config cfg, int B, int T, uint64_t seed) {
    model_build(m, &cfg); model_alloc_acts(m, B, T);
    model_init(m, seed);
}
// a tiny model with odd sizes; weights larger than the paper's 0.02 so every nonlinearity is exercised
static void tiny_model_with(Model *m, int n_kv_head, int vscale, int B, int T, double rope_theta, double eps) {
    Config cfg = config(37, 16, 2, 4, n_kv_head, 24, T, vscale); cfg.rope_theta = rope_theta;
    cfg.rms_norm_eps = eps; new_model(m, cfg, B, T, 7);
    Rng r; rng_seed(&r, 8);
    Slot t[NUM_PARAM_TENSORS]; model_params(m, t);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++)
        for (real *p = *t[i].at; p < *t[i].at + t[i].size; p++) {
            if (!strcmp(t[i].name, "vscale_theta")) *p = (real)(0.5 * rng_normal(&r));
            else if (strstr(t[i].name, "norm")) *p += (real)(0.2 * rng_normal(&r)); // the gains
            else *p *= 15;                                                            // matrices: std 0.3
        }
    for (int i = 0; i < B * T; i++) { m->inputs[i] = (i * 7 + 3) % 37; m->targets[i] = (i * 11 + 5) % 37; }
}
static void tiny_model(Model *m, int n_kv_head, int vscale, int B, int T) {
    tiny_model_with(m, n_kv_head, vscale, B, T, ROPE_THETA_DEFAULT, RMSNORM_EPS_DEFAULT);
}
static void test_model_gradients(int n_kv_head, int vscale, double rope_theta, double eps) {
    Model m; int B = 3, T = 9;
    Rng outer = trng; rng_seed(&trng, 9); // its own random samples and directions, whatever ran before
    tiny_model_with(&m, n_kv_head, vscale, B, T, rope_theta, eps);
    m.targets[T] = IGNORE; // row 1's first target out of the loss, as -f eot-masked leaves it
    char extra[64] = "";
    if (rope_theta != ROPE_THETA_DEFAULT || eps != RMSNORM_EPS_DEFAULT) snprintf(extra, sizeof(extra), ", rope_theta %g, eps %g", rope_theta, eps);
    size_t np = m.num_parameters; model_forward_backward(&m, B, T); real *grads = copy_of(m.grads_memory, np);
    // entry by entry (sampled) in the double build; along directions in the float build, where a
    // single entry's change of the loss is below float rounding
    double worst = 0; const char *worst_name = ""; Slot t[NUM_PARAM_TENSORS]; model_params(&m, t);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        if (!strcmp(t[i].name, "vscale_theta") && vscale != VSCALE_LEARNED) continue; // not a parameter then
        real *x = *t[i].at, *g = grads + (x - m.params_memory);
        double e = DBL ? fd_rel_err(x, g, t[i].size, loss_model, &m, 24) : fd_dir_err(x, g, t[i].size, loss_model, &m);
        if (e > worst) { worst = e; worst_name = t[i].name; }
    }
    check(worst <= FD_TOL_MODEL, "model (H 4, Hkv %d, vscale %s%s, one target ignored) gradient vs finite differences (%s) on every tensor: worst %.2e (%s)",
          n_kv_head, VSCALE_NAMES[vscale], extra, DBL ? "entries" : "directions", worst, worst_name);
    // model_zero_grad zeroes the activation gradients, whatever they held; model_backward then adds into the parameter ones
    real *pre = buf(np, 1); model_forward(&m, B, T, 1); fill_normal(m.grads_acts_memory, m.num_grad_acts, 1); model_zero_grad(&m); int zeroed = 1;
    for (size_t i = 0; i < m.num_grad_acts; i++) zeroed &= m.grads_acts_memory[i] == 0;
    memcpy(m.grads_memory, pre, np * sizeof(real)); model_backward(&m, B, T); double dmax = 0, gmax = 0;
    for (size_t i = 0; i < np; i++) { dmax = fmax(dmax, fabs((m.grads_memory[i] - pre[i]) - grads[i])); gmax = fmax(gmax, fabs(grads[i])); }
    check(zeroed && dmax <= (DBL ? 1e-14 : 1e-6) * (gmax + 1),
          "whole-model backward (H 4, Hkv %d, vscale %s%s) adds into pre-filled parameter gradients (error %.1e)", n_kv_head,
          VSCALE_NAMES[vscale], extra, dmax);
    trng = outer; model_free(&m);
}

// --- the optimizer
static void test_adamw(void) {
    real p[3] = {0.5, -1.0, 2.0}, mm[3] = {0}, vv[3] = {0}, g1[3] = {0.1, -0.2, 0.3}, g2[3] = {-0.05, 0.4, 0.0};
    double e1[3] = {0.489500001000, -0.989000000500, 1.988000000333}, e2[3] = {0.486326806860, -0.991644739890, 1.979225523189};
    double d1 = 0, d2 = 0, tol = DBL ? 1e-11 : 1e-6; adamw_update(p, g1, mm, vv, 3, 0.01, 0.9, 0.95, 1e-8, 0.1, 1);
    for (int i = 0; i < 3; i++) d1 = fmax(d1, fabs(p[i] - e1[i]));
    adamw_update(p, g2, mm, vv, 3, 0.01, 0.9, 0.95, 1e-8, 0.1, 2);
    for (int i = 0; i < 3; i++) d2 = fmax(d2, fabs(p[i] - e2[i]));
    check(d1 < tol && d2 < tol, "AdamW two steps match hand-computed values (errors %.1e, %.1e)", d1, d2);
    real g[2] = {3, 4}, g3[2] = {0.3, 0.4}; double n = clip_grads(g, 2, 1.0);
    check(fabs(n - 5) < 1e-12 && fabs(g[0] - 3 / (5 + 1e-6)) < 1e-6 && fabs(g[1] - 4 / (5 + 1e-6)) < 1e-6,
          "grad clipping: norm 5 -> grads scaled by 1/(5+1e-6)");
    clip_grads(g3, 2, 1.0); check(g3[0] == (real)0.3 && g3[1] == (real)0.4, "grad clipping leaves a norm below 1 alone");
    // the grad norm sums in blocks and lanes: lengths that leave blocks empty, partial or uneven
    size_t lens[8] = {0, 1, 7, 63, 64, 65, 1001, 100003}; real *x = buf(100003, 0); double worst = 0; int same = 1;
    for (size_t i = 0; i < 100003; i++) x[i] = (real)(((i * 2654435761u) % 1000) / 500.0 - 1.0);
    for (int li = 0; li < 8; li++) {
        long double ref = 0;
        for (size_t i = 0; i < lens[li]; i++) ref += (long double)x[i] * x[i];
        double want = sqrt((double)ref), got[3];
        for (int th = 1; th <= 3; th++) {
            int saved = set_threads(th); got[th - 1] = grad_norm(x, lens[li]); set_threads(saved);
        }
        same &= got[0] == got[1] && got[1] == got[2]; worst = fmax(worst, fabs(got[0] - want) / (want > 0 ? want : 1));
    }
    check(worst < 1e-13 && same, "grad norm: lengths 0..100003 within %.1e of a long-double sum, same bits for 1-3 threads", worst);
    double l[5], want[5] = {1e-4, 1e-3, 1e-3, 5.5e-4, 0.000100274127841407}, lr_err = 0; int at[5] = {0, 9, 10, 55, 99};
    for (int i = 0; i < 5; i++) { l[i] = lr_at(at[i], 100, 10, 1e-3, 1e-4); lr_err = fmax(lr_err, fabs(l[i] - want[i])); }
    check(lr_err < 1e-15, "lr schedule: warmup (s+1)/warmup, then cosine to min (%.3g %.3g %.3g %.3g %.6g)", l[0], l[1], l[2], l[3], l[4]);
}
static void test_adamw_model(void) {
    for (int mode = VSCALE_OFF; mode <= VSCALE_LEARNED; mode += 2) {
        Model m; tiny_model(&m, 2, mode, 1, 4); real *before = copy_of(m.params_memory, m.num_parameters); model_zero_grad(&m);
        m.grads.vscale_theta[0] = 1; // all grads zero but one theta's: elsewhere only decay acts
        AdamW o = ADAMW; o.mlp_weight_decay = 0.03; o.embed_weight_decay = 0.05;
        model_update(&m, &o, 0.01); int ok = 1; Slot t[NUM_PARAM_TENSORS]; model_params(&m, t);
        for (int i = 0; i < NUM_PARAM_TENSORS; i++)
            for (size_t j = 0, off = *t[i].at - m.params_memory; j < t[i].size; j++) {
                real b = before[off + j], a = m.params_memory[off + j]; const char *s = t[i].name;
                double wd = !strcmp(s, "w_gate") || !strcmp(s, "w_up") || !strcmp(s, "w_down") ? 0.03 : !strcmp(s, "wte") ? 0.05 : 0.1;
                if (!strcmp(s, "vscale_theta")) ok &= mode == VSCALE_LEARNED && j == 0 ? fabs(a - (b - 0.01)) < 1e-6 : a == b; // Adam's first step: lr
                else if (strstr(s, "norm")) ok &= a == b;
                else ok &= a == b - (real)(0.01 * wd) * b;
            }
        check(ok, "AdamW (vscale %s): decay on matrices only (w_gate, w_up, w_down at --mlp-decay's rate, wte at --embed-decay's), "
                  "gains untouched, theta trained only when learned", VSCALE_NAMES[mode]);
        model_free(&m);
    }
    for (int fixed = 0; fixed <= 1; fixed++) {
        Model m; tiny_model(&m, 2, VSCALE_LEARNED, 1, 4); int V = m.cfg.vocab_size, C = m.cfg.d_model, eot = m.cfg.eot;
        fill_normal(m.grads_memory, m.num_parameters, 1.0); // a gradient on every row, the fixed one too
        real *before = copy_of(m.params.wte, (size_t)V * C), *w = m.params.wte, *e0 = before + (size_t)eot * C, *e1 = w + (size_t)eot * C;
        AdamW o = ADAMW; o.fixed_row = fixed ? eot : -1; model_update(&m, &o, 0.01);
        double mean = 0, cosine = dot(e0, e1, C) / sqrt(dot(e0, e0, C) * dot(e1, e1, C)), moved = 0, own = sqrt(dot(e1, e1, C));
        for (int v = 0; v < V; v++) if (v != eot) mean += sqrt(dot(w + (size_t)v * C, w + (size_t)v * C, C)) / (V - 1);
        for (size_t i = 0; i < (size_t)V * C; i++) if (i / C != (size_t)eot) moved = fmax(moved, fabs(w[i] - before[i]));
        if (fixed)
            check(fabs(cosine - 1) < 1e-6 && fabs(own / mean - 1) < 1e-5 && fabs(own - sqrt(dot(e0, e0, C))) > 1e-3 && moved > 1e-3,
                  "--eot-row fixed: the end-of-text row keeps its direction (cos %.7f) at the other rows' mean norm (%.6f vs %.6f); the others step",
                  cosine, own, mean);
        else check(cosine < 1 - 1e-6 && moved > 1e-3, "--eot-row learned: the end-of-text row steps like the others (cos %.7f)", cosine);
        model_free(&m);
    }
}

// --- the paper's measurements, each on a hand-built case
static void test_sink_metrics(void) {
    // 8 heads, T 4: heads 1, 4, 6 put 0.5 on token 0 at every query, the others 0.1
    int H = 8, T = 4; real *att = buf((size_t)H * T * T, 0), *late = buf(100 * 100, 0);
    for (int h = 0; h < H; h++)
        for (int t = 0; t < T; t++) att[((size_t)h * T + t) * T] = (h == 1 || h == 4 || h == 6) ? 0.5 : 0.1;
    double alpha[8], M0, S0;
    for (int h = 0; h < H; h++) alpha[h] = sink_score(att, 1, H, T, h);
    double rate = sink_rate(alpha, H); column_moments(&M0, &S0, att, 1, H, T);
    check(fabs(rate - 0.375) < 1e-12 && fabs(alpha[1] - 0.5) < 1e-7 && fabs(alpha[0] - 0.1) < 1e-7, "sink rate: 3 of 8 heads with alpha 0.5 -> %.3f", rate);
    check(fabs(M0 - 1.0) < 1e-6 && fabs(S0 - 0.4) < 1e-6, "column mass M0 = %.4f (want 1.0), S0 = %.4f (want 0.4)", M0, S0);
    // T_eps = min(64, T): weight on token 0 only after query 64 does not count
    for (int t = 64; t < 100; t++) late[(size_t)t * 100] = 1;
    double a_late = sink_score(late, 1, 1, 100, 0);
    for (int t = 0; t < 100; t++) late[(size_t)t * 100] = t < 64;
    double a_early = sink_score(late, 1, 1, 100, 0);
    check(a_late == 0 && fabs(a_early - 1) < 1e-12, "sink score averages the first min(64, T) queries (%.2f, %.2f)", a_late, a_early);
}
static void test_gradient_metrics(void) {
    // batch-aggregated: rows are summed before the norm. B 2, T 32, C 3.
    int B = 2, T = 32, C = 3; real *g = buf((size_t)B * T * C, 0);
    for (int t = 0; t < T; t++) { // |G_0| = 10, |G_t| = 2: R_gs = 5
        g[(size_t)t * C + 1] = (real)(0.25 * (t == 0 ? 10 : 2));
        g[((size_t)T + t) * C + 1] = (real)(0.75 * (t == 0 ? 10 : 2));
    }
    g[(size_t)5 * C + 2] = 7; // rows that cancel: no aggregated gradient at t = 5, axis 2
    g[((size_t)T + 5) * C + 2] = -7;
    double G[32], x[32]; aggregated_norms(G, g, NULL, B, T, 1, C, 32);
    double r = tok0_ratio(G, 32); // R_gs over the paper's 32 positions
    check(fabs(G[0] - 10) < 1e-6 && fabs(G[5] - 2) < 1e-6 && fabs(r - 5) < 1e-6,
          "R_gs from batch-aggregated norms: |G_0| 10, |G_t| 2 -> %.4f (opposite rows cancel: |G_5| = %.3f)", r, G[5]);
    for (int t = 0; t < 32; t++) x[t] = t == 0 ? 12 : t < 16 ? 3 : 6;
    int uncapped = fabs(tok0_ratio(x, 32) - 12 / (141.0 / 31)) < 1e-12;
    check(fabs(tok0_ratio(x, 16) - 4) < 1e-12 && uncapped && isnan(tok0_ratio(x, 1)) && fabs(median((double[]){3, 1, 2, 9}, 4) - 2.5) < 1e-12,
          "token-0/rest ratio x[0]/mean(x[1..n-1]) (12 vs 3 -> 4; NaN for n 1) and median of layers");
    // Bloat, Compress, Change on a layer whose gradients are set by hand (B 1, T 2, C 2)
    Model m; Config cfg = config(5, 2, 1, 1, 1, 2, 2, VSCALE_OFF);
    model_build(&m, &cfg); model_alloc_acts(&m, 1, 2);
    ActTensors *ga = &m.grads_acts; // at both positions: dh_out (res[1], layer 0's h_out), dh_in, dh_half, dx~ of both branches
    real *to[5] = {ga->res + 4, ga->res, ga->h_half, ga->x_attn, ga->x_mlp}, set[5][2] = {{1, 0}, {3, 4}, {3, 0}, {0, 2}, {0, 6}};
    for (int i = 0; i < 5; i++)
        for (int t = 0; t < 2; t++) memcpy(to[i] + 2 * t, set[i], sizeof(set[i]));
    Probe pr; probe_alloc(&pr, &cfg, 2);
    probe_measure(&pr, &m, 1, 2); double **q = pr.pq;
    check(fabs(q[PQ_ATTN_BLOAT][0] - 2.0 / 3) < 1e-9 && fabs(q[PQ_ATTN_COMPRESS][0] - 2) < 1e-9 && fabs(q[PQ_ATTN_CHANGE][0] - 5.0 / 3) < 1e-9,
          "attention branch: Bloat |dx~|/|dr| = %.4f (2/3), Compress |dh-dh_half|/|dx~| = %.4f (2), Change |dh|/|dh_half| = %.4f (5/3)",
          q[PQ_ATTN_BLOAT][0], q[PQ_ATTN_COMPRESS][0], q[PQ_ATTN_CHANGE][0]);
    check(fabs(q[PQ_MLP_BLOAT][1] - 6) < 1e-9 && fabs(q[PQ_MLP_COMPRESS][1] - 1.0 / 3) < 1e-9 && fabs(q[PQ_MLP_CHANGE][1] - 3) < 1e-9,
          "MLP branch: Bloat %.4f (6), Compress %.4f (1/3), Change %.4f (3)", q[PQ_MLP_BLOAT][1], q[PQ_MLP_COMPRESS][1], q[PQ_MLP_CHANGE][1]);
    check(pr.rgs_n == 2 && fabs(pr.R_gs[0] - 1) < 1e-9, "T < 32: R_gs uses positions 1..T-1 (here %d position)", pr.rgs_n - 1);
    probe_free(&pr); model_free(&m);
}

// --- the paper's identities, from the code's own activations and gradients
static void test_identities(int n_kv_head, int vscale) {
    Model m; int B = 2, T = 9; tiny_model(&m, n_kv_head, vscale, B, T); const Config *c = &m.cfg;
    int C = c->d_model, H = c->n_head, Hkv = c->n_kv_head, D = C / H, KV = Hkv * D, group = H / Hkv, V = c->vocab_size, N = B * T;
    model_forward(&m, B, T, 1); real *dl = buf((size_t)N * V, 0), row[16];
    crossentropy_softmax_backward(dl, m.acts.logits, m.targets, (real)(1.0 / count_scored(m.targets, N)), N, V);
    double xrow = 0, scale = 1.0 / sqrt((double)D), err_v = 0, err_k = 0, mag_v = 0, mag_k = 0, dq_0 = 0, rowsum = 0;
    for (int n = 0; n < N; n++) {
        double sum = 0, mag = 0;
        for (int i = 0; i < V; i++) { sum += dl[(size_t)n * V + i]; mag += fabs(dl[(size_t)n * V + i]); }
        xrow = fmax(xrow, fabs(sum) / (mag + 1e-300));
    }
    model_forward_backward(&m, B, T);
    for (int l = 0; l < c->n_layer; l++) {
        LayerActs s = layer_acts(&m.acts, &m, l), g = layer_acts(&m.grads_acts, &m, l);
        for (int b = 0; b < B; b++)
            for (int hk = 0; hk < Hkv; hk++)
                for (int j = 0; j < T; j++)
                    for (int i = 0; i < D; i++) {
                        // value path dV = A^T dY (summed over the query heads that read this kv head)
                        // key path dk_s = sum_t a_ts <g_t, v_s - y_t> q_t / sqrt(D)
                        double want_v = 0, want_k = 0;
                        for (int h = hk * group; h < (hk + 1) * group; h++)
                            for (int t = j; t < T; t++) {
                                double a = s.att[(((size_t)b * H + h) * T + t) * T + j], beta = 0;
                                const real *gt = g.atty + ((size_t)b * T + t) * C + h * D, *yt = s.atty + ((size_t)b * T + t) * C + h * D;
                                const real *vs = s.vhat + ((size_t)b * T + j) * KV + hk * D;
                                for (int e = 0; e < D; e++) beta += gt[e] * (vs[e] - yt[e]);
                                want_v += a * gt[i]; want_k += a * beta * s.q[((size_t)b * T + t) * C + h * D + i] * scale;
                            }
                        size_t at = ((size_t)b * T + j) * KV + hk * D + i; err_v = fmax(err_v, fabs(g.vhat[at] - want_v)); mag_v = fmax(mag_v, fabs(want_v));
                        err_k = fmax(err_k, fabs(g.k[at] - want_k)); mag_k = fmax(mag_k, fabs(want_k));
                    }
        for (int b = 0; b < B; b++)
            for (int i = 0; i < C; i++) dq_0 = fmax(dq_0, fabs(g.q[(size_t)b * T * C + i])); // t = 0
        // each row of the attention logit gradient sums to 0: on this model's da = dy_t . v_j,
        // through the softmax row backward in place, as attention_backward calls it in training
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int t = 0; t < T; t++) {
                    double sum = 0, mag = 0;
                    for (int j = 0; j <= t; j++) row[j] = (real)dot(g.atty + ((size_t)b * T + t) * C + h * D, s.vhat + ((size_t)b * T + j) * KV + (h / group) * D, D);
                    dsoftmax_row(row, s.att + (((size_t)b * H + h) * T + t) * T, row, t + 1, (real)scale);
                    for (int j = 0; j <= t; j++) { sum += row[j]; mag += fabs(row[j]); }
                    rowsum = fmax(rowsum, fabs(sum) / (mag + 1e-300));
                }
    }
    check(err_v <= EXACT * mag_v, "dV = A^T dY for every head (H %d, Hkv %d, vscale %s): max error %.1e of %.1e", H, Hkv, VSCALE_NAMES[vscale], err_v, mag_v);
    check(err_k <= EXACT * mag_k * 10, "key gradient dk_s = sum_t a_ts <g_t, v_s - y_t> q_t / sqrt(D): max error %.1e of %.1e", err_k, mag_k);
    check(dq_0 == 0, "query path: dq_0 = 0 exactly (max |dq_0| = %g)", dq_0);
    check(rowsum < EXACT, "each row of the attention logit gradient sums to 0 (worst |sum|/sum|.| = %.1e)", rowsum);
    check(xrow < EXACT, "each row of the output logit gradient (p - onehot)/(B T) sums to 0 (worst |sum|/sum|.| = %.1e)", xrow); model_free(&m);
}
static void test_rmsnorm_jacobian(void) {
    // ||J^T u|| <= max|g| / rms(x) ||u|| for random upstream u, on rows of very different norms
    int N = 50, C = 12;
    real *x = buf((size_t)N * C, 1), *g = buf(C, 1), *y = buf((size_t)N * C, 0), *rs = buf(N, 0), *u = buf(C, 0), *dx = buf(C, 0), *dx0 = buf(C, 0), dg[12];
    for (int n = 0; n < N; n++)
        for (int i = 0; i < C; i++) x[(size_t)n * C + i] *= (real)pow(10.0, (n % 5) - 2); // rms from 0.01 to 100
    rmsnorm_forward(y, rs, x, g, N, C, RMSNORM_EPS_DEFAULT);
    double gmax = 0, worst = 0;
    for (int i = 0; i < C; i++) gmax = fmax(gmax, fabs(g[i]));
    fill_normal(dg, C, 1);
    for (int n = 0; n < N; n++)
        for (int trial = 0; trial < 20; trial++) { // J^T u is what rmsnorm_backward adds to a gradient already there
            double rms = sqrt(dot(x + (size_t)n * C, x + (size_t)n * C, C) / C);
            fill_normal(u, C, 1);
            fill_normal(dx, C, 1 / rms); // of the size of J^T u, so float rounding stays below the bound's margin
            memcpy(dx0, dx, C * sizeof(real));
            rmsnorm_backward(dx, dg, u, x + (size_t)n * C, g, rs + n, 1, C);
            for (int i = 0; i < C; i++) dx0[i] = dx[i] - dx0[i];
            worst = fmax(worst, sqrt(dot(dx0, dx0, C)) / sqrt(dot(u, u, C)) / (gmax / rms));
        }
    check(worst <= 1 + 1e-6, "RMSNorm Jacobian norm <= max|g|/rms(x), J^T u added to a non-zero gradient (worst ratio to the bound %.4f)", worst);
}
static void test_vscale_jacobian(void) {
    // J = phi I + 2c/(r+c)^2 v v^T: eigenvalue r/(r+c) orthogonal to v, (r^2+3cr)/(r+c)^2 along v,
    // whose maximum over r is 9/8 at r = 3c. J is applied through vscale_backward (J symmetric).
    int D = 4, d_model = 8; real theta = 0, c = vscale_c(d_model, D, theta, VSCALE_FIXED); double worst = 0, best_lambda = 0, best_r = 0;
    for (int k = -20; k <= 20; k++) {
        double r = 3 * c * pow(2.0, k / 4.0);
        real v[4] = {1, 2, -1, 0.5}, u[4] = {2, -1, 0, 0}, Jv[4] = {0}, Ju[4] = {0}, dth = 0; // u . v = 0
        double vn = sqrt(dot(v, v, 4));
        for (int i = 0; i < 4; i++) v[i] = (real)(v[i] / vn * sqrt(r));
        vscale_backward(Jv, &dth, v, v, &theta, VSCALE_FIXED, VSCALE_PATH_BOTH, d_model, 1, 1, D);
        vscale_backward(Ju, &dth, u, v, &theta, VSCALE_FIXED, VSCALE_PATH_BOTH, d_model, 1, 1, D);
        double lam_par = (r * r + 3 * c * r) / ((r + c) * (r + c)), lam_perp = r / (r + c), measured = dot(Jv, v, 4) / dot(v, v, 4);
        for (int i = 0; i < 4; i++) worst = fmax(worst, fmax(fabs(Jv[i] - lam_par * v[i]) / sqrt(r), fabs(Ju[i] - lam_perp * u[i])));
        if (measured > best_lambda) { best_lambda = measured; best_r = r; }
    }
    real c1 = vscale_c(128, 32, 0, VSCALE_FIXED), c2 = vscale_c(128, 32, (real)log(2.0), VSCALE_FIXED);
    check(fabs(c1 / (128 * 32 * 0.0004) - 1) < EXACT && fabs(c2 / c1 - 2) < EXACT,
          "V-scale c = d_model * d_head * 0.02^2 * lambda, lambda = exp(theta): c = %.4f, and x2 at theta = log 2", c1);
    check(worst < EXACT, "V-scale Jacobian: eigenvalues r/(r+c) orthogonal to v and (r^2+3cr)/(r+c)^2 along v (error %.1e)", worst);
    check(fabs(best_lambda - 9.0 / 8) < EXACT && fabs(best_r / (3 * c) - 1) < 1e-9,
          "V-scale Jacobian's largest eigenvalue is 9/8 = %.6f, at r = 3c (found at r/c = %.3f)", best_lambda, best_r / c);
}

// --- the causal experiment's interventions are not gradients of the loss, so finite differences
// cannot check them: each is pinned to its formula, and its forward pass to the run it must equal
static void test_vscale_paths(void) {
    int B = 5, NKV = 2, D = 4, d_model = 8; size_t n = (size_t)B * NKV * D;
    real *v = buf(n, 0.06), *theta = buf(NKV, 0.5), *dvhat = buf(n, 1), *y[3], *phi[3], *dv[3], *dth[3]; real *dv0 = buf(n, 1), *dth0 = buf(NKV, 1);
    for (int path = 0; path < 3; path++) {
        y[path] = buf(n, 1); phi[path] = buf((size_t)B * NKV, 1); // garbage in: overwritten
        vscale_forward(y[path], phi[path], v, theta, VSCALE_LEARNED, path, d_model, B, NKV, D);
        dv[path] = copy_of(dv0, n); dth[path] = copy_of(dth0, NKV); // pre-filled: added to
        vscale_backward(dv[path], dth[path], dvhat, v, theta, VSCALE_LEARNED, path, d_model, B, NKV, D);
    }
    int fwd_same = !memcmp(y[VSCALE_PATH_FORWARD], y[VSCALE_PATH_BOTH], n * sizeof(real)) &&
                   !memcmp(phi[VSCALE_PATH_FORWARD], phi[VSCALE_PATH_BOTH], B * NKV * sizeof(real));
    int bwd_plain = !memcmp(y[VSCALE_PATH_BACKWARD], v, n * sizeof(real)), ident = 1, theta_both = 1, jac_same = 1, theta_none = 1;
    for (int i = 0; i < B * NKV; i++) bwd_plain &= phi[VSCALE_PATH_BACKWARD][i] == 1;
    check(fwd_same && bwd_plain, "--vscale-path: forward's v_hat is V-scale's (bit-identical), backward's is v itself (phi 1)");
    for (size_t i = 0; i < n; i++) {
        ident &= dv[VSCALE_PATH_FORWARD][i] == dv0[i] + dvhat[i]; jac_same &= dv[VSCALE_PATH_BACKWARD][i] == dv[VSCALE_PATH_BOTH][i];
    }
    for (int h = 0; h < NKV; h++) {
        theta_both &= dth[VSCALE_PATH_FORWARD][h] == dth[VSCALE_PATH_BOTH][h]; theta_none &= dth[VSCALE_PATH_BACKWARD][h] == dth0[h];
    }
    check(ident && theta_both && dth[VSCALE_PATH_BOTH][0] != dth0[0], "--vscale-path forward backward: dv += dvhat exactly, theta's gradient as V-scale's");
    check(jac_same && theta_none, "--vscale-path backward backward: dv += J(v) dvhat (as V-scale's), theta gets no gradient");
    int T = 4, KV = 6, ok = 1; size_t ng = (size_t)3 * T * KV; real *g = buf(ng, 1), *g0 = copy_of(g, ng); sink_grad_backward(g, (real)0.3, 3, T, KV);
    for (size_t j = 0; j < ng; j++) ok &= g[j] == ((j / KV) % T == 0 ? (real)0.3 * g0[j] : g0[j]);
    memcpy(g, g0, ng * sizeof(real)); sink_grad_backward(g, 1, 3, T, KV);
    check(ok && !memcmp(g, g0, ng * sizeof(real)), "--sink-grad G: position 0's value gradient times G in every row and kv head, the rest untouched (G 1: no-op)");
}
// whole model: each arm's forward pass (loss and every activation) is bit-identical to the run
// it must equal, and its backward differs only where the intervention acts
static int arms_forward_equal(Model *a, Model *b, int vs_a, int vs_b, int path_b, double G_b, int B, int T) {
    tiny_model(a, 2, vs_a, B, T); tiny_model(b, 2, vs_b, B, T);
    memcpy(b->params_memory, a->params_memory, a->num_parameters * sizeof(real)); // theta too
    b->vscale_path = path_b;
    b->sink_grad = G_b; real la = model_forward(a, B, T, 1), lb = model_forward(b, B, T, 1);
    int same = la == lb && !memcmp(a->acts_memory, b->acts_memory, a->num_acts * sizeof(real));
    model_zero_grad(a); model_backward(a, B, T); model_zero_grad(b); model_backward(b, B, T);
    return same;
}
static void test_interventions_model(void) {
    int B = 3, T = 7; Model a, b;
    int f1 = arms_forward_equal(&a, &b, VSCALE_FIXED, VSCALE_FIXED, VSCALE_PATH_FORWARD, 1, B, T); // vscale-fwd vs V-scale
    model_free(&a); model_free(&b);
    int f2 = arms_forward_equal(&a, &b, VSCALE_OFF, VSCALE_FIXED, VSCALE_PATH_BACKWARD, 1, B, T); // vscale-bwd vs the baseline
    const Config *c = &a.cfg; int L = c->n_layer, Hkv = c->n_kv_head, D = c->d_model / c->n_head, KV = Hkv * D, N = B * T;
    LayerActs sa = layer_acts(&a.grads_acts, &a, L - 1), sb = layer_acts(&b.grads_acts, &b, L - 1), xa = layer_acts(&a.acts, &a, L - 1);
    real *want = buf((size_t)N * KV, 0), *dth = buf(Hkv, 0);
    vscale_backward(want, dth, sa.vhat, xa.v, layer_params(&b.params, c, L - 1).theta, VSCALE_FIXED, VSCALE_PATH_BOTH, c->d_model, N, Hkv, D);
    int b2 = !memcmp(sb.vhat, sa.vhat, (size_t)N * KV * sizeof(real)) && !memcmp(sb.v, want, (size_t)N * KV * sizeof(real));
    check(f1 && f2 && b2, "--vscale-path: forward's forward pass is V-scale's, backward's is the baseline's (loss and all "
                          "activations bit-identical); backward's last-layer dv = J(v) dvhat");
    model_free(&a); model_free(&b);
    int f3 = arms_forward_equal(&a, &b, VSCALE_OFF, VSCALE_OFF, VSCALE_PATH_BOTH, 0, B, T), v_ok = 1, v0_nonzero = 0;
    sa = layer_acts(&a.grads_acts, &a, L - 1); sb = layer_acts(&b.grads_acts, &b, L - 1);
    for (size_t j = 0; j < (size_t)N * KV; j++) {
        int t0 = (j / KV) % T == 0; v_ok &= t0 ? sb.vhat[j] == 0 && sb.v[j] == 0 : sb.vhat[j] == sa.vhat[j]; v0_nonzero |= t0 && sa.vhat[j] != 0;
    }
    int kq_same = !memcmp(sa.k, sb.k, (size_t)N * KV * sizeof(real)) && !memcmp(sa.q, sb.q, (size_t)N * c->d_model * sizeof(real));
    check(f3 && v_ok && v0_nonzero && kq_same, "--sink-grad 0: forward bit-identical to the baseline; last layer: position 0's "
                                               "value gradient 0 (the baseline's is not), every other one and dq, dk unchanged");
    model_free(&a); model_free(&b);
}

// --- the probe
// what probe_json (probe_print if c is NULL) writes, kept in the pool; *bad: the non-finite numbers it wrote as null
static char *probe_text(const Probe *pr, const Config *c, double val_loss, int *bad) {
    char *s = keep(xcalloc(1 << 20, 1)); FILE *f = fmemopen(s, (1 << 20) - 1, "w");
    if (c) *bad = probe_json(f, pr, c, 7, 3.5, val_loss, -1, 1.0, FIRST_ANY);
    else probe_print(pr, 3, 1.0, f);
    fclose(f); return s;
}
static void test_probe_is_read_only(void) {
    char *p = path_in("probe_tok.bin"), err[1024]; uint16_t tok[400];
    for (int i = 0; i < 400; i++) tok[i] = (uint16_t)((i * 7 + i / 5) % 37);
    DataLoader dl; Model m;
    write_tokens(p, DATA_MAGIC, 1, 400, tok, 400); dataloader_open(&dl, p, 2, 9, 37, err, sizeof(err));
    tiny_model(&m, 2, VSCALE_LEARNED, 2, 9);
    for (int s = 0; s < 2; s++) { // give the optimizer a state worth protecting
        dataloader_batch(&dl, s, m.inputs, m.targets, FIRST_ANY, 36);
        model_forward_backward(&m, 2, 9); model_update(&m, &ADAMW, 1e-3);
    }
    size_t np = m.num_parameters, bytes = np * sizeof(real); int t_before = m.adam_t;
    real *p0 = copy_of(m.params_memory, np), *m0 = copy_of(m.m_memory, np), *v0 = copy_of(m.v_memory, np);
    Probe pr; probe_alloc(&pr, &m.cfg, 9);
    probe_run(&pr, &m, &dl, FIRST_ANY, 36); dataloader_free(&dl);
    check(!memcmp(p0, m.params_memory, bytes) && !memcmp(m0, m.m_memory, bytes) && !memcmp(v0, m.v_memory, bytes) && t_before == m.adam_t,
          "a probe leaves parameters and optimizer state bit-identical");
    const char *keys[] = {"step", "train_loss", "val_loss", "val_loss_step", "probe_loss", "probe_ms", "L", "H", "Hkv", "positions",
                          "vscale", "vscale_path", "sink_grad", "first_token", "rgs_positions", "rgs_short_T", "alpha", "sink_rate", "M0",
                          "S0", "R_gs", "R_gs_median", "grad_q_mean", "grad_k_mean", "grad_v_mean", "ratio_h_out", "ratio_r_mlp",
                          "ratio_r_attn", "ratio_v", "ratio_grad_v", "dv_dk_0", "vscale_lambda", "vscale_phi0", "vscale_phi_rest"};
    int nkeys = (int)(sizeof(keys) / sizeof(keys[0])), missing = 0, undocumented = 0, bad, bad2; size_t rn;
    char *line = probe_text(&pr, &m.cfg, NAN, &bad), *readme = slurp("README.md", &rn), key[64];
    for (int k = 0; k < nkeys + NUM_PQ; k++) {
        const char *name = k < nkeys ? keys[k] : PQ_NAMES[k - nkeys]; snprintf(key, sizeof(key), "\"%s\":", name);
        if (!strstr(line, key)) { missing++; printf("     missing key %s\n", key); }
        snprintf(key, sizeof(key), "`%s`", name);
        if (!readme || !strstr(readme, key)) { undocumented++; printf("     README does not document %s\n", key); }
    }
    check(!missing && !undocumented && !strstr(line, "nan") && !strstr(line, "inf") && bad == 0 && strstr(line, "\"val_loss\": null"),
          "probe JSON has all %d keys, all documented in README.md, no NaN literal (absent val loss -> null)", nkeys + NUM_PQ);
    pr.R_gs[0] = NAN; char *l2 = probe_text(&pr, &m.cfg, 1.0, &bad2);
    check(bad2 > 0 && strstr(l2, "\"R_gs\": [null"), "a non-finite measurement is written as null and counted (%d)", bad2);
    probe_free(&pr); model_free(&m);
}
static void test_probe_summary_many_layers(void) {
    Config cfg = config(37, 8, 70, 1, 1, 8, 32, VSCALE_OFF); Probe pr;
    probe_alloc(&pr, &cfg, 32);
    for (int l = 0; l < pr.L; l++)
        for (int t = 0; t < pr.P; t++)
            for (int q = 0; q < NUM_PQ; q++) pr.pq[q][(size_t)l * pr.P + t] = 1;
    pr.pq[PQ_NORM_H_OUT][(size_t)69 * pr.P] = 9; // token 0 / rest: 9 in the last layer
    pr.pq[PQ_NORM_R_MLP][(size_t)67 * pr.P] = 5;
    pr.sink_rate[69] = 70; // mean over the 70 layers: 1
    probe_summarize(&pr); int entries = 0, bad;
    char *text = probe_text(&pr, NULL, 0, &bad), *js = probe_text(&pr, &cfg, 1.0, &bad), *arr = strstr(js, "\"ratio_h_out\": [");
    int line_ok = strstr(text, "| sink 1.00 |") && strstr(text, "h_out tok0/rest max 9.00 (L69)") && strstr(text, "mlp tok0/rest max 5.00 (L67)");
    for (const char *c = arr; arr && *c && *c != ']'; c++) entries += *c == ',' || *c == '[';
    check(line_ok && entries == 70 && strstr(js, "9]"), "probe summary of a 70-layer model covers all 70 layers (stdout: %.*s; ratio_h_out has %d entries)",
          (int)strcspn(text, "\n"), text, entries);
    probe_free(&pr);
}

// --- training end to end
static const AdamW NO_DECAY = {.beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .fixed_row = -1};
static int train_steps(Model *m, int n, double lr, size_t *bad) { // n steps (clip 1, no decay): the last one's status
    double loss, norm; int status = 0;
    for (int s = 0; s < n; s++) status = train_step(m, &NO_DECAY, lr, 1.0, &loss, &norm, bad);
    return status;
}
// a model whose matmuls span several row blocks and panels: N = 3 x 100 rows, V 300, C 64, F 200, GQA
static void big_model(Model *m) {
    new_model(m, config(300, 64, 2, 4, 2, 200, 100, VSCALE_LEARNED), 3, 100, 5);
    for (int i = 0; i < 300; i++) { m->inputs[i] = (i * 7 + 1) % 300; m->targets[i] = (i * 13 + 5) % 300; }
}
static void test_training(void) {
    Model m; size_t bad;
    new_model(&m, config(37, 32, 2, 4, 2, 64, 16, VSCALE_LEARNED), 2, 16, 1);
    for (int i = 0; i < 32; i++) { m.inputs[i] = (i * i + 3) % 37; m.targets[i] = (i * 5 + 1) % 37; }
    double first = 0, last = 0;
    for (int s = 0; s < 150; s++) {
        last = model_forward_backward(&m, 2, 16);
        if (s == 0) first = last;
        clip_grads(m.grads_memory, m.num_parameters, 1.0); model_update(&m, &NO_DECAY, lr_at(s, 150, 10, 1e-2, 1e-3));
    }
    check(first > 3.4 && last < 0.2, "training memorises a 32-token batch: loss %.3f -> %.4f", first, last); model_free(&m);
    // the parallel kernels give every output element to one thread, summed in a fixed order: three steps
    // of a tiny model, twice, and of big_model with 2, 2, 1 and 3 threads give bit-identical parameters
    int threads[6] = {0, 0, 2, 2, 1, 3}, same = 1; real *ref[2] = {NULL, NULL};
    for (int run = 0; run < 6; run++) {
        int big = run >= 2, saved = set_threads(big ? threads[run] : max_threads());
        if (big) big_model(&m);
        else tiny_model(&m, 2, VSCALE_FIXED, 2, 8);
        train_steps(&m, 3, 1e-3, &bad);
        if (!ref[big]) ref[big] = copy_of(m.params_memory, m.num_parameters);
        else same &= !memcmp(ref[big], m.params_memory, m.num_parameters * sizeof(real));
        set_threads(saved); model_free(&m);
    }
    check(same, "three training steps are bit-identical run to run, and (C 64, V 300, N 300) with 2, 1 and 3 threads");
}
static void test_train_step(void) {
    Model m; size_t bad = 0;
    big_model(&m); train_steps(&m, 1, 1e-3, &bad);
    size_t calls = xcalloc_calls; train_steps(&m, 3, 1e-3, &bad);
    check(xcalloc_calls == calls && calls > 0, "three training steps after the first allocate nothing (%zu allocations before, %zu during)",
          calls, xcalloc_calls - calls);
    model_free(&m); tiny_model(&m, 2, VSCALE_OFF, 2, 8);
    m.params.lm_head[0] = NAN; real *before = copy_of(m.params_memory, m.num_parameters);
    int s1 = train_steps(&m, 1, 1e-3, &bad), untouched = !memcmp(before, m.params_memory, m.num_parameters * sizeof(real)) && m.adam_t == 0;
    m.params.lm_head[0] = 0; int s2 = train_steps(&m, 1, INFINITY, &bad);
    check(s1 == STEP_NONFINITE_GRAD && untouched && s2 == STEP_NONFINITE_PARAM && bad < m.num_parameters && !isfinite(m.params_memory[bad]),
          "train_step: a NaN loss stops it before the update (%d), a non-finite update names parameter %zu (%d)", s1, bad, s2);
    model_free(&m);
    Rng r; // splitmix64's published first outputs for seed 1234567
    rng_seed(&r, 1234567);
    uint64_t u1 = rng_u64(&r), u2 = rng_u64(&r);
    check(u1 == 6457827717110365317ull && u2 == 3203168211198807973ull, "splitmix64 reference outputs for seed 1234567: %llu %llu",
          (unsigned long long)u1, (unsigned long long)u2);
}

// --- Part 2. Files: checkpoints, token files, tokenizer files
static int files_equal(const char *a, const char *b) {
    size_t na = 0, nb = 0; unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    return x && y && na == nb && !memcmp(x, y, na);
}
static int f64_is(const int32_t *h, double want) { return !memcmp(h, &want, 8); } // header ints h[0..1] hold the double want
static void test_checkpoint(void) {
    char *p1 = path_in("a.bin"), *p2 = path_in("b.bin"), *o1 = path_in("a.bin.opt"), *o2 = path_in("b.bin.opt"), err[1024];
    Model m, r; Config c;
    tiny_model(&m, 2, VSCALE_LEARNED, 1, 4); m.adam_t = 17;
    fill_normal(m.m_memory, m.num_parameters, 1); fill_normal(m.v_memory, m.num_parameters, 1);
    for (size_t i = 0; i < m.num_parameters; i++) m.v_memory[i] = fabs(m.v_memory[i]); // second moments are >= 0
    int step = -1, ok = checkpoint_save(&m, p1, 17, err, sizeof(err)) == 0 && checkpoint_load(NULL, p1, &c, &step, err, sizeof(err)) == 0;
    ok &= config_equal(&c, &m.cfg) && step == 17; model_build(&r, &c);
    ok &= checkpoint_load(&r, p1, &c, &step, err, sizeof(err)) == 0 && optstate_load(&r, o1, 17, NULL, err, sizeof(err)) == 0 && r.adam_t == 17;
    for (size_t i = 0; i < m.num_parameters; i++)
        ok &= r.params_memory[i] == (real)(float)m.params_memory[i] && r.m_memory[i] == (real)(float)m.m_memory[i] &&
              r.v_memory[i] == (real)(float)m.v_memory[i];
    ok &= checkpoint_save(&r, p2, 17, err, sizeof(err)) == 0;
    check(ok && files_equal(p1, p2) && files_equal(o1, o2), "checkpoint_save -> read -> save is bit-identical (model file and optimizer state) %s", ok ? "" : err);
    size_t got = 0; int32_t *h = slurp(p1, &got), want[11] = {20261128, 3, 37, 16, 2, 4, 2, 24, 4, 2, 17};
    check(got >= 4 * HEADER_INTS && !memcmp(h, want, sizeof(want)) && f64_is(h + 11, 10000) && f64_is(h + 13, 1e-5) && h[15] == 36 &&
              h[16] == VSCALE_PATH_BOTH && f64_is(h + 17, 1),
          "checkpoint header: magic, version 3, V, C, L, H, Hkv, F, max T, vscale, step, rope_theta, eps, eot, vscale path, sink-grad");
    model_free(&m); model_free(&r);
}
// rewrites checkpoint p's header as an older version: [1] = version, nzero ints from `from` zeroed
static void as_version(const char *p, int32_t version, int from, int nzero) {
    size_t n = 0; unsigned char *b = slurp(p, &n);
    if (!b) return;
    memcpy(b + 4, &version, 4); memset(b + from * 4, 0, nzero * 4);
    write_bytes(p, b, n);
}
// version 3 keeps the interventions, version 2 RoPE's base, RMSNorm's eps and the eot id
static void test_checkpoint_versions(void) {
    char *p = path_in("v.bin"), err[1024]; Config c;
    Model m, r, d, e, e2; tiny_model_with(&m, 2, VSCALE_OFF, 2, 5, 500000.0, 1e-6);
    m.cfg.eot = 3; int step, ok = checkpoint_save(&m, p, 4, err, sizeof(err)) == 0;
    ok &= checkpoint_load(NULL, p, &c, &step, err, sizeof(err)) == 0; // a model built from the config read gives m's loss
    model_build(&r, &c); model_alloc_acts(&r, 2, 5);
    ok &= checkpoint_load(&r, p, &c, &step, err, sizeof(err)) == 0;
    memcpy(r.inputs, m.inputs, 10 * sizeof(int)); memcpy(r.targets, m.targets, 10 * sizeof(int));
    double l2 = model_forward(&r, 2, 5, 1), l1 = model_forward(&m, 2, 5, 1);
    tiny_model(&d, 2, VSCALE_OFF, 2, 5); double l0 = model_forward(&d, 2, 5, 1);
    check(ok && c.rope_theta == 500000.0 && c.rms_norm_eps == 1e-6 && c.eot == 3 && fabs(l1 - l2) < 1e-6 && fabs(l1 - l0) > 1e-4,
          "a checkpoint keeps rope_theta 5e5, eps 1e-6, eot 3; the loaded model's loss %.6f = %.6f (defaults give %.6f)", l2, l1, l0);
    d.vscale_path = VSCALE_PATH_BACKWARD; // V-scale off: refused on reading
    ok = checkpoint_save(&d, p, 4, err, sizeof(err)) == 0 && checkpoint_load(NULL, p, &c, &step, err, sizeof(err)) != 0;
    check(ok && strstr(err, "V-scale is off"), "a checkpoint with --vscale-path backward but V-scale off is refused: %s", err);
    tiny_model(&e, 2, VSCALE_FIXED, 2, 5); model_build(&e2, &e.cfg);
    e.vscale_path = VSCALE_PATH_FORWARD; e.sink_grad = 0.25;
    ok = checkpoint_save(&e, p, 4, err, sizeof(err)) == 0 && checkpoint_load(&e2, p, &c, &step, err, sizeof(err)) == 0;
    check(ok && e2.vscale_path == VSCALE_PATH_FORWARD && e2.sink_grad == 0.25, "a checkpoint keeps --vscale-path (forward) and "
          "--sink-grad (0.25): read back %s, %g", VSCALE_PATH_NAMES[e2.vscale_path], e2.sink_grad);
    as_version(p, 2, 16, 3); // a version-2 file (no [16..18]) reads as path both, G 1
    ok = checkpoint_load(&e2, p, &c, &step, err, sizeof(err)) == 0;
    check(ok && e2.vscale_path == VSCALE_PATH_BOTH && e2.sink_grad == 1, "a version-2 checkpoint reads as vscale path both, sink-grad 1");
    model_free(&m); model_free(&r);
    model_free(&d); model_free(&e);
    model_free(&e2);
}
static void test_dataloader(void) {
    char *p = path_in("tok.bin"), err[1024]; uint16_t tok[50], ids[50];
    for (int i = 0; i < 50; i++) { tok[i] = (uint16_t)(i % 13); ids[i] = (uint16_t)i; }
    DataLoader dl; write_tokens(p, DATA_MAGIC, 1, 50, tok, 50);
    int ok = dataloader_open(&dl, p, 2, 4, 13, err, sizeof(err)) == 0, in[8], tg[8], in2[8], tg2[8], good = 1;
    check(ok && dl.num_batches == 6, "data loader opens a good file: 50 tokens, B 2, T 4 -> %zu batches", dl.num_batches);
    dataloader_batch(&dl, 1, in, tg, FIRST_ANY, 12);
    for (int i = 0; i < 8; i++) good &= in[i] == tok[8 + i] && tg[i] == tok[9 + i];
    dataloader_batch(&dl, 7, in, tg, FIRST_ANY, 12); // 7 wraps to 1
    for (int i = 0; i < 8; i++) good &= in[i] == tok[8 + i];
    dataloader_batch(&dl, 1, in, tg, FIRST_EOT, 12); good &= in[0] == 12 && in[4] == 12 && in[1] == tok[9] && tg[0] == tok[9];
    dataloader_batch(&dl, 1, in2, tg2, FIRST_EOT_MASKED, 12);
    for (int i = 0; i < 8; i++) good &= in2[i] == in[i] && tg2[i] == (i % 4 ? tg[i] : IGNORE);
    check(good, "batch k = tokens[k*B*T ..], targets shifted by one, wraps; first-token eot replaces each row's first input, "
                "eot-masked also ignores its first target");
    dataloader_free(&dl);
    // random rows: with tokens[i] = i every row names its offset
    write_tokens(p, DATA_MAGIC, 1, 50, ids, 50); ok = dataloader_open(&dl, p, 2, 4, 51, err, sizeof(err)) == 0;
    int windows = 1, lo = 50, hi = -1, same = 1, differ = 0, eot_ok = 1;
    for (size_t k = 0; ok && k < 500; k++) {
        dataloader_random_batch(&dl, 3, k, in, tg, FIRST_ANY, 50);
        for (int b = 0; b < 2; b++) {
            int s0 = in[b * 4]; lo = s0 < lo ? s0 : lo; hi = s0 > hi ? s0 : hi;
            for (int t = 0; t < 4; t++) windows &= in[b * 4 + t] == s0 + t && tg[b * 4 + t] == s0 + t + 1;
        }
        dataloader_random_batch(&dl, 3, k, in2, tg2, FIRST_EOT, 50);
        for (int i = 0; i < 8; i++) same &= tg2[i] == tg[i], eot_ok &= i % 4 ? in2[i] == in[i] : in2[i] == 50;
        dataloader_random_batch(&dl, 3, k + 1, in2, tg2, FIRST_ANY, 50); differ += memcmp(in, in2, sizeof(in)) != 0;
    }
    dataloader_random_batch(&dl, 4, 0, in2, tg2, FIRST_ANY, 50); dataloader_random_batch(&dl, 3, 0, in, tg, FIRST_ANY, 50);
    check(ok && windows && lo == 0 && hi == 45 && same && eot_ok && differ >= 495 && memcmp(in, in2, sizeof(in)),
          "random rows: windows of T with shifted targets, offsets %d..%d of 0..45, a function of (seed, k), "
          "%d of 500 next batches differ, another seed another batch, eot replaces only the first input", lo, hi, differ);
    dataloader_free(&dl);
}
static void test_tokenizer_decode(void) {
    char *p = path_in("tok.tk"), err[1024], out[256] = {0}; Tokenizer tk;
    write_tokenizer(p, 4, (const char *[]){"a", "b", "ab", "<|endoftext|>"}, 3, 1, (int32_t[]){0, 1});
    int ok = tokenizer_load(&tk, p, err, sizeof(err)) == 0, ids[6] = {3, 2, 0, 1, 2, 9}; FILE *f = fmemopen(out, sizeof(out) - 1, "w");
    for (int i = 0; i < 6; i++) tokenizer_write(ok ? &tk : NULL, ids[i], f);
    fclose(f); check(ok && tk.eot == 3 && !strcmp(out, "<|endoftext|>ababab<9>"), "tokenizer file decodes [3 2 0 1 2 9] to \"%s\"", out);
    if (ok) tokenizer_free(&tk);
}
// ONE table of files every reader must refuse, with a one-line reason that names the file. Each
// case edits a valid file (of its reader's kind): up to two int32 written at byte offsets (from the
// end when negative; (0, 0) is no edit), then `cut` bytes dropped from the end (negative: zeros
// added); or it gives the whole file (`bytes`), or another path (`path`, in the temp dir).
enum { TOKENS, TOKENIZER, HEADER, CKPT, OTHER_SHAPE, OPT };
#define AT(o, v) .off = (o), .val = (v)
typedef struct {
    const char *label; int reader; const char *want; long off; int32_t val; long cut, off2; int32_t val2; const char *bytes, *path;
} FileCase;
static const FileCase FILE_CASES[] = {
    {"token file with bad magic", TOKENS, "bad magic", AT(0, 20240521)},
    {"token file of version 2", TOKENS, "unsupported version 2", AT(4, 2)},
    {"token file whose header says 60 tokens", TOKENS, "header says 60", AT(8, 60)},
    {"token file holding id 13 >= vocab 13", TOKENS, "token 13 at position 10", AT(1024 + 20, 13)},
    {"token file smaller than one batch", TOKENS, "7 tokens is fewer than one batch", AT(8, 7), .cut = 86},
    {"token file with zero tokens", TOKENS, "at least one", AT(8, 0), .cut = 100},
    {"token file with a negative count", TOKENS, "-5 tokens", AT(8, -5), .cut = 100},
    {"token file with a count of 2^31-1", TOKENS, "2147483647 tokens", AT(8, INT32_MAX)},
    {"token file with a stray byte", TOKENS, "bytes after the header", .cut = -1},
    {"5-byte token file", TOKENS, "too short", .bytes = "hello"},
    {"missing token file", TOKENS, "cannot open", .path = "missing.bin"},
    {"a directory given as a token file", TOKENS, "not a regular file", .path = ""},
    {"tokenizer file with bad magic", TOKENIZER, "bad magic", AT(0, 7)},
    {"tokenizer file of version 9", TOKENIZER, "version 9", AT(4, 9)},
    {"tokenizer file with vocab size 1", TOKENIZER, "vocab size 1", AT(8, 1)},
    {"tokenizer file with vocab size above 65536", TOKENIZER, "vocab size 70000", AT(8, 70000)},
    {"tokenizer file with an eot id outside the vocab", TOKENIZER, "eot id 5", AT(12, 5)},
    {"tokenizer file with a negative eot id", TOKENIZER, "eot id -1", AT(12, -1)},
    {"tokenizer file with a negative merge count", TOKENIZER, "negative merge count", AT(16, -3)},
    {"tokenizer file with merge count 2^31-1 (no int overflow)", TOKENIZER, "2147483647 merges", AT(16, INT32_MAX)},
    {"tokenizer file with fewer merges than the header says", TOKENIZER, "header says 3 merges", AT(16, 3)},
    {"tokenizer file whose vocabulary is cut short", TOKENIZER, "token 5", AT(8, 9), .cut = 16},
    {"tokenizer file whose merge names token 99", TOKENIZER, "token 99", AT(-4, 99)},
    {"truncated tokenizer file", TOKENIZER, "header says 2 merges", .cut = 3},
    {"checkpoint with bad magic", HEADER, "bad magic", AT(0, 12345)},
    {"checkpoint of version 4", HEADER, "version 4", AT(4, 4)},
    {"checkpoint of version 0", HEADER, "version 0", AT(4, 0)},
    {"checkpoint of version 1 (no longer read)", HEADER, "version 1", AT(4, 1)},
    {"checkpoint with V-scale path 3", HEADER, "V-scale path 3", AT(4 * 16, 3)},
    {"checkpoint with an infinite sink-grad factor", HEADER, "sink-grad", AT(4 * 18, 0x7ff00000)},
    {"checkpoint with a NaN RoPE base", HEADER, "rope_theta", AT(4 * 12, (int32_t)0xfff80000)},
    {"checkpoint with a negative RoPE base", HEADER, "rope_theta", AT(4 * 12, (int32_t)0xc0000000)},
    {"checkpoint with a negative RMSNorm eps", HEADER, "eps", AT(4 * 14, (int32_t)0xbff00000)},
    {"checkpoint with an infinite RMSNorm eps", HEADER, "eps", AT(4 * 14, 0x7ff00000)},
    {"checkpoint with an eot id of V", HEADER, "end-of-text", AT(4 * 15, 37)},
    {"checkpoint with a negative eot id", HEADER, "end-of-text", AT(4 * 15, -1)},
    {"checkpoint with a negative step", HEADER, "negative step", AT(4 * 10, -1)},
    {"checkpoint with width 2^30", HEADER, "width (-C)", AT(4 * 3, 1 << 30)},
    {"checkpoint with a negative vocab", HEADER, "vocab size (-V)", AT(4 * 2, -37)},
    {"checkpoint with a vocab of INT_MIN (no overflow computing its eot id)", HEADER, "vocab size (-V)", AT(4 * 2, INT32_MIN)},
    {"checkpoint with 100000 layers", HEADER, "layers (-L)", AT(4 * 4, 100000)},
    {"checkpoint with max T 2^30", HEADER, "sequence length", AT(4 * 8, 1 << 30)},
    {"checkpoint with V-scale mode 3", HEADER, "V-scale", AT(4 * 9, 3)},
    {"checkpoint with 5 heads for width 16", HEADER, "impossible", AT(4 * 5, 5)},
    {"checkpoint with a larger F than the payload holds", HEADER, "truncated", AT(4 * 7, 1000000)},
    {"checkpoint header with 2^32 parameters (before any allocation)", HEADER, "2^31-1 parameters", AT(4 * 2, 65536), .off2 = 4 * 3, .val2 = 16384},
    {"checkpoint with 4 extra bytes", HEADER, "truncated or not", .cut = -4},
    {"truncated checkpoint", HEADER, "truncated", .cut = 8},
    {"checkpoint shorter than a header", HEADER, "too short", .bytes = "hello"},
    {"a directory given as a checkpoint", HEADER, "not a regular file", .path = ""},
    {"checkpoint holding a NaN (model left untouched)", CKPT, "lm_head holds a non-finite", AT(-4, 0x7fc00000)},
    {"checkpoint for another shape", OTHER_SHAPE, "does not match", .cut = 0},
    {"optimizer state with bad magic", OPT, "bad magic", AT(0, 1234)},
    {"optimizer state of version 3", OPT, "version 3", AT(4, 3)},
    {"optimizer state from another step", OPT, "is from step 4, the checkpoint from step 5", AT(12, 4)},
    {"optimizer state for another parameter count", OPT, "12 parameters", AT(16, 12)},
    {"optimizer state with a negative parameter count", OPT, "-1 parameters", AT(16, -1)},
    {"optimizer state with a negative AdamW step", OPT, "AdamW step count -4 outside", AT(8, -4)},
    {"optimizer state with an AdamW step count above the step", OPT, "AdamW step count 6 outside", AT(8, 6)},
    {"optimizer state with an AdamW step count of INT_MAX", OPT, "AdamW step count 2147483647 outside", AT(8, INT32_MAX)},
    {"optimizer state with a truncated payload", OPT, "truncated", .cut = 8},
    {"optimizer state with a NaN first moment", OPT, "first moment 2 is not finite", AT(HEADER_INTS * 4 + 8, 0x7fc00000)},
    {"optimizer state with a negative second moment", OPT, "is negative", AT(-4, (int32_t)0xbf800000)},
};
static void test_bad_files(void) {
    const char *name[] = {"tok.bin", "bad.tk", "ck.bin", "ck.bin", "ck.bin", "ck.bin.opt"}; uint16_t tok[50];
    for (int i = 0; i < 50; i++) tok[i] = (uint16_t)(i % 13);
    write_tokens(path_in("tok.bin"), DATA_MAGIC, 1, 50, tok, 50);
    write_tokenizer(path_in("bad.tk"), 5, (const char *[]){"a", "b", "c", "d", "e"}, 4, 2, (int32_t[]){0, 1, 2, 3});
    char err[1024]; Model m, r, other;
    Tokenizer tk; DataLoader dl;
    tiny_model(&m, 2, VSCALE_LEARNED, 1, 4); tiny_model(&other, 4, VSCALE_LEARNED, 1, 4);
    model_build(&r, &m.cfg); m.adam_t = 5;
    for (size_t i = 0; i < m.num_parameters; i++) { m.m_memory[i] = (real)(0.1 * i); m.v_memory[i] = (real)(0.01 * i); }
    checkpoint_save(&m, path_in("ck.bin"), 5, err, sizeof(err)); model_free(&m);
    Config c; int step, ok = tokenizer_load(&tk, path_in("bad.tk"), err, sizeof(err)) == 0 && tk.vocab_size == 5;
    if (ok) tokenizer_free(&tk);
    ok &= optstate_load(&r, path_in("ck.bin.opt"), 5, NULL, err, sizeof(err)) == 0 && r.adam_t == 5 && r.v_memory[3] == (real)(float)0.03;
    check(ok, "the valid files the table edits load: a token file, a 5-token tokenizer with 2 merges, a checkpoint and its optimizer state");
    for (size_t i = 0; i < sizeof(FILE_CASES) / sizeof(FILE_CASES[0]); i++) {
        const FileCase *k = &FILE_CASES[i]; size_t n = 0;
        char *p = path_in(k->path ? k->path : name[k->reader]), *q = path_in("edited");
        unsigned char *good = slurp(path_in(name[k->reader]), &n), *b = memcpy(keep(xcalloc(n + 64, 1)), good, n);
        if (k->off || k->val) memcpy(b + (k->off < 0 ? (long)n + k->off : k->off), &k->val, 4);
        if (k->off2) memcpy(b + k->off2, &k->val2, 4);
        if (!k->path) {
            char *dot = strchr(strrchr(p, '/'), '.');
            snprintf(q + strlen(q), 16, "%s", dot); // "edited" + the file's extension
            write_bytes(q, k->bytes ? (const void *)k->bytes : b, k->bytes ? strlen(k->bytes) : n - k->cut);
            p = q;
        }
        r.params_memory[0] = 42; r.adam_t = 99;
        int rc = k->reader == TOKENS ? dataloader_open(&dl, p, 2, 4, 13, err, sizeof(err))
               : k->reader == TOKENIZER ? tokenizer_load(&tk, p, err, sizeof(err))
               : k->reader == HEADER ? checkpoint_load(NULL, p, &c, &step, err, sizeof(err))
               : k->reader == OPT ? optstate_load(&r, p, 5, NULL, err, sizeof(err))
               : checkpoint_load(k->reader == CKPT ? &r : &other, p, &c, &step, err, sizeof(err));
        int untouched = r.params_memory[0] == 42 && r.adam_t == 99 && (k->reader != TOKENIZER || !tk.entry);
        check(rc != 0 && untouched && strstr(err, strrchr(p, '/') + 1) && strstr(err, k->want) && !strchr(err, '\n'), "%s rejected: %s", k->label, err);
    }
    model_free(&r); model_free(&other);
}
// the limits on shapes, the memory estimate main compares with the machine's, and the named layout
static void test_limits(void) {
    Config ok = config(65536, 1024, 4, 8, 8, 4096, 2048, VSCALE_OFF), big = config(65536, 16384, 1024, 128, 128, 1048576, 65536, VSCALE_OFF);
    Config wide = config(100, 1 << 30, 1, 1, 1, 1, 1, VSCALE_OFF), deep = ok;
    const char *w1 = config_check(&ok), *w2 = config_check(&big), *w3 = config_check(&wide);
    check(!w1 && w2 && strstr(w2, "2^31-1") && w3 && strstr(w3, "-C"), "config limits: a 100M model passes; 2^40 parameters (%s) and width 2^30 (%s) do not",
          w2 ? w2 : "-", w3 ? w3 : "-");
    deep.n_layer = 1024; double b1 = model_bytes(&ok, 1, 16), b2 = model_bytes(&ok, 1000, 65536), b3 = model_bytes(&deep, 1000, 65536);
    check(b1 > 4.0 * 4 * config_num_parameters(&ok) && b1 < 1e10 && b2 > 1e14 && b3 > 100 * b2 && isfinite(b3),
          "model_bytes: %.3g GB for B 1 x T 16, %.3g GB for B 1000 x T 65536, %.3g GB with 1024 layers (no wrap-around)", b1 / 1e9, b2 / 1e9, b3 / 1e9);
    Model m; tiny_model(&m, 2, VSCALE_OFF, 3, 9);
    check(config_num_parameters(&m.cfg) == (double)m.num_parameters, "config_num_parameters agrees with the sizes table (%zu)", m.num_parameters);
    Slot pt[NUM_PARAM_TENSORS], at[NUM_ACT_TENSORS], gt[NUM_ACT_TENSORS]; model_params(&m, pt);
    act_table(at, &m.acts, &m.cfg, m.B, m.T); act_table(gt, &m.grads_acts, &m.cfg, m.B, m.T);
    int tiled = 1, absent = 0, with_grad = 0; size_t off = 0, aoff = 0, goff = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; off += pt[i].size, i++) tiled &= *pt[i].at == m.params_memory + off;
    for (int i = 0; i < NUM_ACT_TENSORS; aoff += at[i].size, i++) tiled &= *at[i].at == m.acts_memory + aoff && at[i].size > 0;
    for (int i = 0; i < NUM_ACT_TENSORS; i++) absent += *gt[i].at == NULL;
    for (int found = 1; found;) { // walk the gradient block: at each offset, the tensor that starts there
        found = 0;
        for (int i = 0; i < NUM_ACT_TENSORS; i++)
            if (*gt[i].at && *gt[i].at == m.grads_acts_memory + goff) { goff += gt[i].size; with_grad++; found = 1; }
    }
    tiled &= off == m.num_parameters && aoff == m.num_acts && goff == m.num_grad_acts && with_grad + absent == NUM_ACT_TENSORS;
    LayerActs g1 = layer_acts(&m.grads_acts, &m, 1);
    check(tiled && g1.rstd_attn == NULL && g1.att == NULL && g1.gate == NULL && g1.x_attn != NULL,
          "sizes tables: %d parameter and %d activation tensors tile their blocks; %d activations have a gradient, %d are NULL there",
          NUM_PARAM_TENSORS, NUM_ACT_TENSORS, with_grad, absent);
    model_free(&m);
}
static void test_safe_writes(void) {
    char *p = path_in("m.bin"), *po = path_in("m.bin.opt"), *pot = path_in("m.bin.opt.tmp"), *pt = path_in("m.bin.tmp"), err[1024];
    Model m; tiny_model(&m, 2, VSCALE_OFF, 1, 4);
    m.adam_t = 3; int ok = checkpoint_save(&m, p, 3, err, sizeof(err)) == 0;
    size_t n = 0, n2 = 0, n3 = 0, n4 = 0; unsigned char *ck0 = slurp(p, &n), *op0 = slurp(po, &n2);
    const char *what[3] = {"a NaN parameter", "an infinite second moment", "PATH.opt.tmp a folder"}; m.adam_t = 4;
    for (int i = 0; i < 3; i++) {
        m.params_memory[17] = i == 0 ? (real)NAN : 0; m.v_memory[3] = i == 1 ? (real)INFINITY : 0;
        if (i == 2) mkdir(pot, 0755);
        int rc = checkpoint_save(&m, p, 4, err, sizeof(err));
        if (i == 2) rmdir(pot);
        unsigned char *ck1 = slurp(p, &n3), *op1 = slurp(po, &n4);
        check(ok && rc != 0 && (i == 2 || strstr(err, "not finite")) && n3 == n && n4 == n2 && !memcmp(ck0, ck1, n) &&
                  !memcmp(op0, op1, n2) && !file_exists(pt) && !file_exists(pot),
              "checkpoint_save with %s fails and leaves PATH and PATH.opt as they were: %.200s", what[i], err);
    }
    model_free(&m); char *pl = path_in("probes.jsonl"), *fifo = path_in("fifo");
    ok = append_line(pl, "{\"step\": 0}", err, sizeof(err)) == 0 && append_line(pl, "{\"step\": 1}", err, sizeof(err)) == 0;
    char *got = slurp(pl, &n);
    check(ok && got && !strcmp(got, "{\"step\": 0}\n{\"step\": 1}\n"), "append_line appends whole lines, each with its newline");
    mkfifo(fifo, 0644); const char *bad[3] = {fifo, tmpdir, path_in("no/such/dir/p.jsonl")}, *want[3] = {"fifo", tmpdir, "no/such/dir"};
    for (int i = 0; i < 3; i++) {
        int rc = append_line(bad[i], "x", err, sizeof(err));
        check(rc != 0 && strstr(err, want[i]) && !strchr(err, '\n'), "append_line refuses %s in one line: %s",
              i == 0 ? "a FIFO" : i == 1 ? "a folder" : "a missing directory", err);
    }
}

// --- Part 3. The command line, end to end (--cli ./gradsink): ONE table of shell lines, run in order
// in the temp dir (later lines use what earlier ones wrote) with these helpers: gs ARGS, the binary under
// test (timeout 120: a run that hangs fails with 124); small ARGS, it on the small model every run shares
// (train.bin, V 29, C 16, L 2, H 2, F 24, B 2, T 8); resume ARGS, a resumed run; h FILE I, header int I of
// FILE; seti FILE I V sets it; same X Y: runs X and Y left the same model.bin, model.bin.opt and log.txt.
// An exit code of 0 expects `want` on stdout; any other, exactly one line on stderr holding it ("a ... b":
// a, then b). $CK is a checkpoint of step 2 (of 4).
#define PROBE "-p 1"
static const char *CLI_HELPERS =
    "gs() { timeout 120 \"$BIN\" \"$@\"; }\n"
    "small() { gs -i train.bin -j '' -V 29 -C 16 -L 2 -H 2 -F 24 -b 2 -t 8 -G 0 \"$@\"; }\n"
    "resume() { gs -i train.bin -j '' -G 0 -r 1 \"$@\"; }\n"
    "h() { od -An -t d4 -j $(($2 * 4)) -N 4 \"$1\" | tr -d ' '; }\n"
    "seti() { printf \"$(printf '\\\\%o\\\\%o\\\\%o\\\\%o' $(($3 & 255)) $(($3 >> 8 & 255)) $(($3 >> 16 & 255)) $(($3 >> 24 & 255)))\" |"
    " dd of=\"$1\" bs=4 seek=$2 conv=notrunc 2>/dev/null; }\n"
    "same() { for f in model.bin model.bin.opt log.txt; do cmp -s \"$1/$f\" \"$2/$f\" || return 1; done; }\n";
typedef struct { const char *label, *line, *want; int rc; } CliCase;
static const CliCase CLI_CASES[] = {
    // flags
    {"unknown flag", "small --bogus 1", "unknown flag --bogus", 2},
    {"flag without a value", "small -n", "needs a value", 2},
    {"integer that does not parse", "small -b abc", "--batch: 'abc' is not an integer", 2},
    {"integer out of int range", "small -L 99999999999", "is not an integer", 2},
    {"number that does not parse", "small -l 1e-3x", "--lr: '1e-3x' is not a number", 2},
    {"NaN learning rate", "small -l nan", "--lr: 'nan' is not a number", 2},
    {"negative steps", "small -n -3", "--steps", 2},
    {"T = 0", "small -t 0", "--seq-len", 2},
    {"T above 65536", "small -t 100000", "--seq-len", 2},
    {"B x T too large", "small -b 100000 -t 10000", "too large", 2},
    {"heads not dividing width", "small -H 3", "heads (-H) must divide the width (-C)", 2},
    {"kv heads not dividing heads", "small -H 4 -K 3", "kv heads (-K) must divide heads (-H)", 2},
    {"odd head size", "small -C 18 -H 2", "even", 2},
    {"absurd width", "small -C 1000000000", "width (-C)", 2},
    {"negative layers", "small -L -2", "layers (-L)", 2},
    {"vocab above 65536", "small -V 70000", "vocab size (-V)", 2},
    {"2^40 parameters", "small -V 65536 -C 16384 -L 1024 -F 1048576", "2^31-1 parameters", 2},
    {"a model that needs more memory than the machine", "small -b 1000 -t 65536 -H 8", "this machine has", 2},
    {"unknown V-scale mode", "small -a maybe", "--vscale: unknown value 'maybe'", 2},
    {"unknown rows mode", "small -R shuffled", "--rows: unknown value 'shuffled'", 2},
    {"eot-masked with T 1 (no target left in the loss)", "small -f eot-masked -t 1", "needs --seq-len >= 2", 2},
    {"--resume without a checkpoint", "small -r 1", "need a checkpoint", 2},
    {"--resume 2", "small -r 2", "--resume", 2},
    {"--sample absurd", "small -G 2000000000", "--sample", 2},
    {"--stop-at negative", "small -S -1", "--stop-at", 2},
    {"--vscale-path without V-scale", "small -J forward", "--vscale-path forward: needs V-scale on", 2},
    {"unknown V-scale path", "small -a fixed --vscale-path sideways", "--vscale-path: unknown value 'sideways'", 2},
    {"NaN sink-grad", "small --sink-grad nan", "--sink-grad: 'nan' is not a number", 2},
    {"--bench, now dev/bench", "gs --bench 2", "unknown flag --bench", 2},
    // no reader opens a FIFO, a folder or an empty name before checking it is a regular file
    {"FIFO as train file", "mkfifo fifo && small -i fifo", "fifo is not a regular file", 2},
    {"FIFO as val file", "small -j fifo", "fifo is not a regular file", 2},
    {"FIFO as tokenizer", "small -z fifo", "fifo is not a regular file", 2},
    {"FIFO as checkpoint", "small -c fifo", "fifo is not a regular file", 2},
    {"folder as train file", "mkdir -p tkdir/tokenizer.bin && small -i tkdir", "tkdir is not a regular file", 2},
    {"a folder named tokenizer.bin beside the train file", "gs -i tkdir/train.bin -j '' -n 1 -G 0 -z tkdir/tokenizer.bin", "tokenizer.bin is not a regular file", 2},
    {"empty --train", "small -i ''", "flag --train: an empty path", 2},
    {"empty --out", "small -o ''", "flag --out: an empty path", 2},
    {"FIFO as log.txt in the output folder", "mkdir flog && mkfifo flog/log.txt && small -n 1 -o flog", "log.txt is not a regular file", 2},
    // files
    {"missing train file", "small -i /nonexistent/train.bin", "cannot open /nonexistent/train.bin", 2},
    {"missing train file without -V (no tokenizer to find either)", "gs -i /nonexistent/train.bin -j '' -n 1 -G 0", "cannot open /nonexistent/train.bin", 2},
    {"train file with bad magic", "small -i bad.bin", "bad.bin: bad magic", 2},
    {"train file holding id 29 >= vocab 29", "small -i ids.bin", "ids.bin: token 29 at position 100", 2},
    {"train file shorter than one batch (T larger than the data)", "small -i seven.bin", "seven.bin: 7 tokens is fewer", 2},
    {"a directory as the train file", "small -i .", "not a regular file", 2},
    {"val file given but missing", "small -j /nonexistent/val.bin", "cannot open /nonexistent/val.bin", 2},
    {"val file shorter than one batch", "small -j seven.bin", "seven.bin: 7 tokens", 2},
    {"tokenizer file that is garbage", "printf 'not a tokenizer' > bad.tk && small -z bad.tk", "bad.tk: too short", 2},
    {"tokenizer file missing", "small -z /nonexistent/tok.bin", "cannot open /nonexistent/tok.bin", 2},
    {"output directory under a file", "printf x > a_file && small -n 1 -o a_file/sub", "cannot create output directory", 2},
    {"--eval-only without a checkpoint", "small -x 1", "need a checkpoint", 2},
    // a checkpoint of step 2 of a 4-step run ($CK), then fed with flags that disagree
    {"a 2-step run (of 4) writes a checkpoint at step 2", "small -n 4 -S 2 -o ck && [ $(h $CK 10) = 2 ]", "", 0},
    {"missing checkpoint", "small -c /nonexistent/m.bin", "cannot open /nonexistent/m.bin", 2},
    {"checkpoint with conflicting width", "small -c $CK -C 32 -H 2", "flag -C 32 disagrees with checkpoint", 2},
    {"checkpoint with conflicting V-scale", "small -c $CK -a fixed", "flag -a fixed disagrees with checkpoint", 2},
    {"-K 0 (kv heads = heads) with a checkpoint of 2 and 2 is no conflict", "small -c $CK -K 0 -n 0", "", 0},
    {"a 1-step GQA run writes a checkpoint of 2 heads and 1 kv head",
     "small -H 2 -K 1 -n 1 -o gqa && [ $(h gqa/model.bin 5) = 2 ] && [ $(h gqa/model.bin 6) = 1 ]", "", 0},
    {"-K 0 with a GQA checkpoint", "small -c gqa/model.bin -K 0", "flag -K 0 disagrees with checkpoint gqa/model.bin (which has 1)", 2},
    {"-K 2 with a GQA checkpoint of 1 kv head", "small -c gqa/model.bin -K 2", "flag -K 2 disagrees with checkpoint", 2},
    {"resuming a --steps 4 run with -n 6 notes the changed schedule", "small -c $CK -r 1 -n 6 -S 3 -o rs", "note: flags -n differ from the run that wrote", 0},
    {"resuming with the same --steps has no note", "small -c $CK -r 1 -n 4 -S 3 -o rs && ! grep -q 'differ from the run' stdout.txt", "", 0},
    {"-c CKPT " PROBE " probes step 2 (stdout and probes.jsonl) and prints no sample",
     "gs -i train.bin -j train.bin -t 8 -c $CK " PROBE " -o pr && ! grep -q 'sample (' stdout.txt && "
     "grep -q '^{\"step\": 2,' pr/probes.jsonl && grep -q 'appended to' stdout.txt", "probe step 2 |", 0},
    {"-c CKPT " PROBE " -G 5 also samples", "gs -i train.bin -j train.bin -t 8 -c $CK " PROBE " -G 5 -o pr", "sample (", 0},
    {"checkpoint with --seed", "small -c $CK -s 3", "--seed has no effect with -c", 2},
    {"T above the checkpoint's max", "small -c $CK -t 9", "above checkpoint", 2},
    {"resume past --steps", "small -c $CK -r 1 -n 1", "beyond --steps 1", 2},
    {"--stop-at before the checkpoint", "small -c $CK -r 1 -n 4 -S 1", "--stop-at 1 is before", 2},
    {"--eval-only without val tokens", "small -c $CK -x 1", "needs validation tokens", 2},
    {"-A with a checkpoint", "small -c $CK -A 50", "--vscale-lambda has no effect with -c", 2},
    {"--eval-only with --val-batches 0", "small -c $CK -x 1 -e 0 -j train.bin", "--eval-only: needs --val-batches >= 1", 2},
    {"checkpoint given as train data", "small -i $CK", "bad magic 20261128", 2},
    {"train data given as a checkpoint", "small -c train.bin", "bad magic 20240520", 2},
    {"a version-1 checkpoint", "cp $CK old.bin && seti old.bin 1 1 && small -c old.bin", "version 1", 2},
    {"truncated checkpoint", "head -c 2000 $CK > cut.bin && small -c cut.bin", "cut.bin: 2000 bytes, but its header implies", 2},
    {"truncated optimizer state", "cp $CK cut.bin && head -c 1100 $CK.opt > cut.bin.opt && small -c cut.bin -r 1", "cut.bin.opt: 1100 bytes", 2},
    {"resume without the optimizer state", "rm cut.bin.opt && small -c cut.bin -r 1", "cannot open", 2},
    {"optimizer state from another step", "small -n 4 -S 3 -o ck3 && cp ck3/model.bin.opt cut.bin.opt && small -c cut.bin -r 1",
     "is from step 3, the checkpoint from step 2", 2},
    {"-R random -s 2147483647 trains (the row seed's arithmetic does not overflow)", "small -R random -s 2147483647 -n 2 -P 0 -o seedmax", "", 0},
    {"a version-1 optimizer file (no schedule kept) resumes with the flags given",
     "mkdir v1 && cp $CK $CK.opt v1/ && seti v1/model.bin.opt 1 1 && small -c v1/model.bin -r 1 -n 4 -o v1 && "
     "! grep -q 'note: flags' stdout.txt && ! grep -q 'lr 0.00e+00' stdout.txt && [ $(h v1/model.bin 10) = 4 ]", "", 0},
    // the interventions: recorded in the checkpoint, kept on resume, reported by a probe, replaced by flags given with -c
    {"--vscale-path backward --sink-grad 0.5 are written to the checkpoint (path 2, G's high word 0x3fe00000)",
     "small -a fixed --vscale-path backward --sink-grad 0.5 -n 4 -S 2 -P 0 -o iv && [ $(h iv/model.bin 16) = 2 ] && "
     "[ $(h iv/model.bin 18) = $((0x3fe00000)) ]", "", 0},
    {"... kept by a resumed run", "small -c iv/model.bin -r 1 -n 4 -P 0 -o iv && [ $(h iv/model.bin 10) = 4 ] && "
     "[ $(h iv/model.bin 16) = 2 ] && [ $(h iv/model.bin 18) = $((0x3fe00000)) ]", "", 0},
    {"... reported by a probe of it", "gs -c iv/model.bin " PROBE " -j train.bin -b 2 -t 8 -o iv && "
     "grep -q '\"vscale_path\": \"backward\", \"sink_grad\": 0.5,' iv/probes.jsonl", "", 0},
    {"... and replaced by flags given with -c", "small -c iv/model.bin -J both -N 1 -n 1 -P 0 -o iv2 && "
     "[ $(h iv2/model.bin 16) = 0 ] && [ $(h iv2/model.bin 18) = $((0x3ff00000)) ]", "", 0},
    // a run that blows up stops with the step and the last good checkpoint, which stays as it was
    {"lr 1e300 makes the parameters infinite at step 2; the checkpoint stays",
     "cp $CK before.bin; small -c $CK -r 1 -n 4 -k 1 -l 1e300 -o ck; rc=$?; cmp -s $CK before.bin && exit $rc",
     "step 2: ... not finite ... last good checkpoint: ... ck/model.bin (step 2", 3},
    {"lr 1e30 overflows the forward pass", "small -c $CK -r 1 -n 4 -k 1 -l 1e30 -o ck4", "loss ... last good checkpoint: ", 3},
    {"stdout's step numbers are log.txt's (\"step S/N | loss X\" for each \"s:S trl:X\")",
     "small -n 3 -o steps && [ $(grep -c '^s:' steps/log.txt) = 3 ] && awk -F'[: ]' '/^s:/ {printf \"step %5d/3 | loss %.4f |\\n\", $2, $4}' "
     "steps/log.txt > want.txt && grep -cF -f want.txt stdout.txt | grep -qx 3", "", 0},
    // the checkpoint pair: a save whose model rename fails leaves the old pair as it was; the state a kill
    // between checkpoint_save's renames leaves (old model, new .opt, old .opt as .opt.prev) resumes to the same bits
    {"a save whose model.bin cannot be renamed leaves no .opt and no .opt.prev", "mkdir -p pair/model.bin; small -n 3 -P 0 -o pair; rc=$?; rmdir pair/model.bin; "
     "[ ! -e pair/model.bin.opt ] && [ ! -e pair/model.bin.opt.prev ] && exit $rc", "model.bin", 2},
    {"the state of a kill between the renames (.opt of step 3, .opt.prev of step 2 beside the model of step 2) resumes bit-identical",
     "small -n 6 -S 2 -P 0 -o pair && mkdir pair/p3 && cp pair/model.bin pair/model.bin.opt pair/p3/ && "
     "resume -c pair/p3/model.bin -S 3 -o pair/p3 && mv pair/model.bin.opt pair/model.bin.opt.prev && "
     "cp pair/p3/model.bin.opt pair/ && resume -c pair/model.bin -o pair && "
     "small -n 6 -P 0 -o pairref && cmp pair/model.bin pairref/model.bin && [ ! -e pair/model.bin.opt.prev ]", "", 0},
    // resume: the run that stops and resumes is the run that never stopped, bit for bit
    {"8 steps == 4 steps + checkpoint + resume for 4: model.bin, model.bin.opt and the 8 logged losses are bit-identical",
     "small -n 8 -w 2 -o full && small -n 8 -w 2 -S 4 -o half && resume -b 2 -t 8 -n 8 -w 2 -c half/model.bin -o half && same full half && [ $(grep -c '^s:' full/log.txt) = 8 ]", "", 0},
    {"-R random, 8 steps == 4 + resume for 4, bit for bit (and a model other than the stream's)",
     "small -R random -n 8 -w 2 -o rfull && small -R random -n 8 -w 2 -S 4 -o rhalf && resume -b 2 -t 8 -n 8 -w 2 -R random "
     "-c rhalf/model.bin -o rhalf && same rfull rhalf && ! cmp -s rfull/model.bin full/model.bin", "", 0},
    {"a resume with no schedule flags restores them all (-R random -s 5, lr, decay, clip, first token, eot row, B, T, steps): bit for bit",
     "S='-R random -s 5 -w 3 -l 2e-3 -m 1e-4 -d 0.3 -E 0.05 -g 0.5 -f eot-masked -Z fixed -n 8'; small $S -o sfull && "
     "small $S -S 4 -o shalf && resume -c shalf/model.bin -o shalf && same sfull shalf", "", 0},
    {"a flag given to a resume with another value is used and said", "resume -c shalf/model.bin -s 6 -n 8 -o sother",
     "note: flags -s differ from the run that wrote", 0},
};
static const char *cli_bin;
static char cli_err[4096], cli_out[65536]; // the last run's stderr (without its final newline) and stdout
static int cli_one_line;                  // whether that stderr was exactly one line
// runs one shell line with the helpers; returns its exit code
static int sh(const char *line) {
    char *cmd = keep(xcalloc(strlen(line) + 512, 1));
    sprintf(cmd, "cd %s && . ./helpers.sh && { %s\n} >stdout.txt 2>stderr.txt", tmpdir, line);
    int st = system(cmd); size_t n = 0, m = 0;
    char *e = slurp(path_in("stderr.txt"), &n), *o = slurp(path_in("stdout.txt"), &m);
    snprintf(cli_err, sizeof(cli_err), "%s", e ? e : ""); snprintf(cli_out, sizeof(cli_out), "%s", o ? o : "");
    n = strlen(cli_err); cli_one_line = n > 0 && strchr(cli_err, '\n') == cli_err + n - 1;
    if (n) cli_err[n - 1] = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}
// whether text holds want's pieces (separated by " ... ") in order
static int holds(const char *text, const char *want) {
    for (const char *w = want; *w;) {
        const char *end = strstr(w, " ... "); size_t n = end ? (size_t)(end - w) : strlen(w); char piece[512];
        snprintf(piece, sizeof(piece), "%.*s", (int)n, w);
        if (!(text = strstr(text, piece))) return 0;
        text += n; w += n + (end ? 5 : 0);
    }
    return 1;
}
static void test_cli(void) {
    uint16_t t[3000]; // 3000 tokens over a vocab of 29 with some structure to learn
    for (int i = 0; i < 3000; i++) t[i] = (uint16_t)((i * 7 + (i / 5) * 3) % 29);
    write_tokens(path_in("train.bin"), DATA_MAGIC, 1, 3000, t, 3000);
    write_tokens(path_in("seven.bin"), DATA_MAGIC, 1, 7, t, 7); write_tokens(path_in("bad.bin"), 1234, 1, 3000, t, 3000);
    t[100] = 29; write_tokens(path_in("ids.bin"), DATA_MAGIC, 1, 3000, t, 3000);
    write_bytes(path_in("helpers.sh"), CLI_HELPERS, strlen(CLI_HELPERS)); char bin[4096];
    setenv("D", tmpdir, 1); setenv("CK", "ck/model.bin", 1);
    setenv("BIN", realpath(cli_bin, bin) ? bin : cli_bin, 1); setenv("OMP_NUM_THREADS", "2", 0);
    for (size_t i = 0; i < sizeof(CLI_CASES) / sizeof(CLI_CASES[0]); i++) {
        const CliCase *k = &CLI_CASES[i]; int rc = sh(k->line);
        int ok = rc == k->rc && (rc == 0 ? holds(cli_out, k->want) : cli_one_line && holds(cli_err, k->want));
        const char *say = ok && !k->rc ? "" : cli_one_line ? cli_err : "stderr is not one line";
        check(ok, "cli %s: exit %d%s%.300s", k->label, rc, *say ? ", " : "", say);
    }
}
// a kill -9 at any instant, inside checkpoint_save too, must leave a pair that resumes to the same bits
static void test_kill_and_resume(void) {
    const char *flags = "-R random -s 3 -w 2 -n 24 -k 1 -P 0"; char line[1024];
    Rng kr; rng_seed(&kr, 99);
    snprintf(line, sizeof(line), "small %s -o $D/kref", flags); double t0 = now_seconds();
    int rc = sh(line), tries = 12, resumed = 0, mid = 0, bad = 0; double dur = now_seconds() - t0;
    for (int i = 0; i < tries && rc == 0; i++) {
        snprintf(line, sizeof(line), ". %s/helpers.sh; exec \"$BIN\" -i $D/train.bin -j '' -V 29 -C 16 -L 2 -H 2 -F 24 -b 2 -t 8 -G 0 %s "
                 "-o $D/kill%d >/dev/null 2>&1", tmpdir, flags, i);
        pid_t pid = fork();
        if (pid == 0) { execl("/bin/sh", "sh", "-c", line, (char *)NULL); _exit(127); }
        usleep((useconds_t)(rng_uniform(&kr) * dur * 1e6));
        kill(pid, SIGKILL); waitpid(pid, NULL, 0);
        snprintf(line, sizeof(line), "%s/kill%d/model.bin", tmpdir, i);
        size_t n = 0; int32_t *h = slurp(line, &n); // the step of the pair the kill left (model.bin is renamed into place whole)
        int step = h && n >= 4 * HEADER_INTS ? h[10] : -1;
        if (step < 0) continue; // killed before the first checkpoint: nothing to resume
        mid += step < 24;
        snprintf(line, sizeof(line), "gs -i $D/train.bin -j '' -G 0 -c $D/kill%d/model.bin -r 1 -o $D/kill%d && cmp $D/kill%d/model.bin $D/kref/model.bin", i, i, i);
        bad += sh(line) != 0; resumed++;
    }
    check(rc == 0 && !bad && mid > 0, "cli: %d kill -9 at random moments of a run saving every step (%d mid-run, %d resumed): "
          "every resume ends bit-identical to the run that never stopped %s", tries, mid, resumed, bad ? cli_err : "");
}
// no arguments: Parts 1 and 2. --cli BIN: Part 3 against the built binary BIN.
// --quick: the whole model's finite differences on one configuration only (for a fast look).
int main(int argc, char **argv) {
    rng_seed(&trng, 2026); snprintf(tmpdir, sizeof(tmpdir), "/tmp/gradsink_test_XXXXXX");
    if (!mkdtemp(tmpdir)) die("cannot make a temp dir");
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    if (argc > 2 && !strcmp(argv[1], "--cli")) {
        cli_bin = argv[2]; printf("gradsink command-line tests (%s)\n-- Part 3: the command line (flags, refusals, exit codes, resumed runs)\n", cli_bin);
        RUN(test_cli()); RUN(test_kill_and_resume());
    } else {
        printf("gradsink tests (%s build%s)\n", DBL ? "double" : "float", quick ? ", --quick: whole-model finite differences on one config" : "");
        printf("-- Part 1: the maths (every backward against finite differences, fast == naive, AdamW, the paper's identities)\n");
        RUN(test_encoder()); RUN(test_rmsnorm(RMSNORM_EPS_DEFAULT));
        Rng saved = trng; RUN(test_rmsnorm(0.7)); // an eps as large as the rows' mean square, on random numbers of its own
        trng = saved;
        // several row blocks, ragged tiles and panels; dW over N = 300 rows (more than one k chunk); whole panels
        // read in place; with 2 threads blocks of 186 rows (not whole 12-row tiles) and a 12 x 32 last panel, also in dW
        int mm[9][3] = {{7, 5, 3}, {1, 16, 9}, {13, 33, 17}, {1, 1, 1}, {130, 37, 67}, {300, 40, 33}, {2, 64, 96}, {1100, 24, 40}, {96, 40, 1100}};
        for (int i = 0; i < 9; i++) RUN(test_matmul(mm[i][0], mm[i][1], mm[i][2]));
        int at[3][2] = {{4, 4}, {4, 2}, {3, 1}}, af[4][5] = {{1, 1, 2, 1, 4}, {2, 37, 4, 2, 6}, {1, 70, 3, 3, 34}, {2, 64, 4, 4, 32}};
        RUN(test_rope());
        for (int i = 0; i < 3; i++) RUN(test_attention(at[i][0], at[i][1]));
        for (int i = 0; i < 4; i++) RUN(test_attention_fast(af[i][0], af[i][1], af[i][2], af[i][3], af[i][4]));
        for (int mode = VSCALE_OFF; mode <= VSCALE_LEARNED; mode++) RUN(test_vscale(mode));
        RUN_ALL(test_swiglu, test_crossentropy, test_softmax_row);
        for (int kv = 4; kv >= 2; kv -= 2)
            for (int mode = VSCALE_OFF; mode <= VSCALE_LEARNED; mode++)
                if (!quick || (kv == 2 && mode == VSCALE_LEARNED)) RUN(test_model_gradients(kv, mode, ROPE_THETA_DEFAULT, RMSNORM_EPS_DEFAULT));
        RUN(test_model_gradients(2, VSCALE_OFF, 7.0, 0.5)); // a checkpoint's own RoPE base and eps (an imported model's)
        RUN_ALL(test_adamw, test_adamw_model, test_sink_metrics, test_gradient_metrics);
        RUN(test_identities(4, VSCALE_OFF)); RUN(test_identities(2, VSCALE_LEARNED));
        RUN_ALL(test_rmsnorm_jacobian, test_vscale_jacobian, test_vscale_paths, test_interventions_model, test_probe_is_read_only,
                test_probe_summary_many_layers, test_training, test_train_step);
        printf("-- Part 2: files (checkpoints, token and tokenizer files, refused files, limits, safe writes)\n");
        RUN_ALL(test_checkpoint, test_checkpoint_versions, test_dataloader, test_tokenizer_decode, test_bad_files, test_limits, test_safe_writes);
    }
    char cmd[300]; snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    printf("%d passed, %d failed\n", n_passed, n_failed); return n_failed ? 1 : 0;
}
