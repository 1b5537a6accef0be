/*
test_gradsink.c — checks gradsink.c: every backward against central finite differences, the
whole model's gradient, the optimizer against hand-computed numbers, checkpoints, the data
loader, and a short training run. Build with -DGRADSINK_DOUBLE for tight tolerances
(`make test` builds and runs both the double and the float build).
Each check prints OK or FAIL and a number; the last line is "N passed, M failed".
A checklist in two parts, in this order:
  Part 1, the maths: each layer's backward against finite differences from pre-filled gradient
    buffers (so a backward that stores where it should add fails; the three that store are
    pinned), fast == naive, the whole model's gradient, AdamW, clipping and the schedule, the
    paper's identities and bounds on the model's own tensors, the probe, short training runs;
  Part 2, files, command line and refusals: checkpoints, token and tokenizer files, limits,
    safe writes, and (--cli ./gradsink) flags, exit codes, diverging and resumed runs.
*/
#define TESTING
#include "gradsink.c"
#if defined(__has_feature)
#define SANITIZED_BY_CLANG __has_feature(address_sanitizer)
#else
#define SANITIZED_BY_CLANG 0
#endif
#include <signal.h>
#include <sys/wait.h>

static int n_passed = 0, n_failed = 0;

// OpenMP's thread count for what follows; returns the one before (without OpenMP: 1, a no-op)
static int set_threads(int n) {
    int before = max_threads();
#ifdef _OPENMP
    omp_set_num_threads(n);
#else
    (void)n;
#endif
    return before;
}

// GRADSINK_TEST_ONLY="word|other words" (case-insensitive): count and print only the checks
// whose description contains one of the words (every test still runs). The exercises use it.
static int lower_ascii(int c) { return c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c; }
static int check_selected(const char *msg) {
    const char *only = getenv("GRADSINK_TEST_ONLY");
    if (!only || !*only) return 1;
    for (const char *w = only; *w;) {
        size_t n = strcspn(w, "|"), i;
        for (const char *m = msg; n && *m; m++) {
            for (i = 0; i < n && m[i] && lower_ascii(m[i]) == lower_ascii(w[i]); i++) {}
            if (i == n) return 1;
        }
        w += n + (w[n] == '|');
    }
    return 0;
}

static void check(int ok, const char *fmt, ...) {
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!check_selected(msg)) return;
    printf("%s %s\n", ok ? "OK  " : "FAIL", msg);
    if (ok) n_passed++; else n_failed++;
    fflush(stdout);
}

#ifdef GRADSINK_DOUBLE
#define FD_EPS 1e-4   // step of the five-point central difference, relative to the tensor's rms
#define FD_TOL 1e-6   // max relative error of a backward against finite differences
#define FD_FLOOR 1e-3 // entries below this fraction of the largest are judged at that scale
#define FD_TOL_MODEL 1e-6
#define PRECISION "double"
#else
#define FD_EPS 1e-2
#define FD_TOL 3e-2
#define FD_FLOOR 1e-2
#define FD_TOL_MODEL 5e-2 // whole model in float: the loss itself carries ~1e-7 relative rounding
#define PRECISION "float"
#endif

static Rng trng; // the tests' own random numbers (seeded in main)

static void fill_normal(real *x, size_t n, double std) {
    for (size_t i = 0; i < n; i++) x[i] = (real)(std * rng_normal(&trng));
}
static real *rand_buf(size_t n, double std) {
    real *x = xcalloc(n, sizeof(real));
    fill_normal(x, n, std);
    return x;
}
static double dot(const real *a, const real *b, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

// --- finite differences
// loss(ctx) evaluates a scalar at the current value of the buffer being perturbed.
typedef double (*LossFn)(void *ctx);

// Max over sampled entries of |analytic - numeric| / max(|analytic|, |numeric|, floor), where
// floor = FD_FLOOR * the largest |numeric| sampled: tiny entries are judged at the tensor's scale.
// The step is FD_EPS times the tensor's rms, so it is small relative to the values perturbed.
static double fd_rel_err(real *x, const real *analytic, size_t n, LossFn loss, void *ctx, int samples) {
    int count = n < (size_t)samples ? (int)n : samples;
    double h = 0;
    for (size_t i = 0; i < n; i++) h += (double)x[i] * x[i];
    h = FD_EPS * (n && h > 0 ? sqrt(h / n) : 1.0);
    double *num = xcalloc(count, sizeof(double));
    size_t *idx = xcalloc(count, sizeof(size_t));
    double scale = 0;
    for (int s = 0; s < count; s++) {
        idx[s] = n <= (size_t)samples ? (size_t)s : (size_t)(rng_uniform(&trng) * n);
        real old = x[idx[s]];
        double f[4], steps[4] = {2, 1, -1, -2};
        for (int k = 0; k < 4; k++) { x[idx[s]] = old + (real)(steps[k] * h); f[k] = loss(ctx); }
        x[idx[s]] = old;
        num[s] = (8 * (f[1] - f[2]) - (f[0] - f[3])) / (12 * h); // five-point stencil
        if (fabs(num[s]) > scale) scale = fabs(num[s]);
    }
    double worst = 0, floor = FD_FLOOR * scale + 1e-300;
    for (int s = 0; s < count; s++) {
        double a = analytic[idx[s]], d = fabs(a - num[s]);
        double den = fmax(fmax(fabs(a), fabs(num[s])), floor);
        if (d / den > worst) worst = d / den;
    }
    free(num);
    free(idx);
    return worst;
}

// Directional version, for the float build's whole-model check where single entries drown in
// rounding: compares <analytic, u> with the derivative of loss along u, for u = the analytic
// gradient itself and for a random direction. Returns the worse relative error.
static double fd_dir_err(real *x, const real *analytic, size_t n, LossFn loss, void *ctx) {
    real *x0 = xcalloc(n, sizeof(real));
    double *u = xcalloc(n, sizeof(double));
    memcpy(x0, x, n * sizeof(real));
    double worst = 0, gnorm = sqrt(dot(analytic, analytic, n));
    for (int dir = 0; dir < 2; dir++) {
        double un = 0, xn = 0, want = 0;
        for (size_t i = 0; i < n; i++) {
            u[i] = dir == 0 ? analytic[i] / (gnorm + 1e-300) : rng_normal(&trng);
            un += u[i] * u[i];
            xn += (double)x0[i] * x0[i];
        }
        un = sqrt(un);
        for (size_t i = 0; i < n; i++) { u[i] /= un; want += analytic[i] * u[i]; }
        double h = FD_EPS * (xn > 0 ? sqrt(xn) : 1.0), f[4], steps[4] = {2, 1, -1, -2};
        for (int k = 0; k < 4; k++) {
            for (size_t i = 0; i < n; i++) x[i] = x0[i] + (real)(steps[k] * h * u[i]);
            f[k] = loss(ctx);
        }
        memcpy(x, x0, n * sizeof(real));
        double got = (8 * (f[1] - f[2]) - (f[0] - f[3])) / (12 * h);
        // judged against the gradient's norm: a random direction sees only a small part of it
        double e = fabs(got - want) / fmax(fabs(want), FD_FLOOR * 10 * gnorm + 1e-300);
        if (e > worst) worst = e;
    }
    free(x0);
    free(u);
    return worst;
}

// ----------------------------------------------------------------------------
// layer checks: loss = sum(out * R) for a fixed random R, so dout = R.
// The backward convention (gradsink.c, "layers"): a backward ADDS into its gradient buffers.
// So every check starts from buffers pre-filled with random values and compares what the
// backward added (after - prefill) with finite differences: a backward that stored would fail.
// The three functions that store are checked to overwrite a pre-filled buffer.

// a buffer of n random values, and a copy of it to subtract later
static real *prefill(size_t n, real **copy) {
    real *x = rand_buf(n, 1);
    *copy = xcalloc(n, sizeof(real));
    memcpy(*copy, x, n * sizeof(real));
    return x;
}
// after - before, in place in before (which is returned): what the backward added
static real *added(const real *after, real *before, size_t n) {
    for (size_t i = 0; i < n; i++) before[i] = after[i] - before[i];
    return before;
}

typedef struct {
    int B, T, C, V, IC, OC, NH, NKV, D, mode, d_model;
    double eps;
    real *a, *b, *c, *out, *aux, *R, *cosb, *sinb;
    int *tok;
    size_t nout;
} Ctx;

static double loss_encoder(void *p) {
    Ctx *c = p;
    encoder_forward(c->out, c->tok, c->a, c->B, c->T, c->C);
    return dot(c->out, c->R, c->nout);
}
static void test_encoder(void) {
    Ctx c = {.B = 2, .T = 5, .C = 6, .V = 7};
    c.nout = (size_t)c.B * c.T * c.C;
    c.tok = xcalloc(c.B * c.T, sizeof(int));
    for (int i = 0; i < c.B * c.T; i++) c.tok[i] = (i * 3) % c.V; // tokens repeat: rows must sum
    c.a = rand_buf((size_t)c.V * c.C, 1); c.out = rand_buf(c.nout, 0); c.R = rand_buf(c.nout, 1);
    size_t nw = (size_t)c.V * c.C;
    real *dw0, *dw = prefill(nw, &dw0);
    encoder_backward(dw, c.R, c.tok, c.B, c.T, c.C);
    double e = fd_rel_err(c.a, added(dw, dw0, nw), nw, loss_encoder, &c, 1000);
    check(e <= FD_TOL, "encoder backward (added to a pre-filled dwte) vs finite differences: dwte rel err %.2e", e);
    free(c.tok); free(c.a); free(c.out); free(c.R); free(dw); free(dw0);
}

static double loss_rmsnorm(void *p) {
    Ctx *c = p;
    rmsnorm_forward(c->out, c->aux, c->a, c->b, c->B, c->C, c->eps);
    return dot(c->out, c->R, c->nout);
}
static void test_rmsnorm(double eps) {
    Ctx c = {.B = 5, .C = 9, .eps = eps};
    c.nout = (size_t)c.B * c.C;
    c.a = rand_buf(c.nout, 1.5); c.b = rand_buf(c.C, 1); c.out = rand_buf(c.nout, 0); c.aux = rand_buf(c.B, 0);
    c.R = rand_buf(c.nout, 1);
    real *dx0, *dg0, *dx = prefill(c.nout, &dx0), *dg = prefill(c.C, &dg0);
    loss_rmsnorm(&c);
    rmsnorm_backward(dx, dg, c.R, c.a, c.b, c.aux, c.B, c.C);
    double e1 = fd_rel_err(c.a, added(dx, dx0, c.nout), c.nout, loss_rmsnorm, &c, 1000);
    double e2 = fd_rel_err(c.b, added(dg, dg0, c.C), c.C, loss_rmsnorm, &c, 1000);
    check(e1 <= FD_TOL && e2 <= FD_TOL, "rmsnorm backward (eps %g, added to pre-filled buffers) vs finite differences: dx %.2e, dgain %.2e",
          eps, e1, e2);
    free(c.a); free(c.b); free(c.out); free(c.aux); free(c.R); free(dx); free(dg); free(dx0); free(dg0);
}

static double loss_matmul(void *p) {
    Ctx *c = p;
    matmul_forward(c->out, c->a, c->b, c->B, c->IC, c->OC);
    return dot(c->out, c->R, c->nout);
}
static void test_matmul(int N, int IC, int OC) {
    Ctx c = {.B = N, .IC = IC, .OC = OC};
    c.nout = (size_t)N * OC;
    c.a = rand_buf((size_t)N * IC, 1); c.b = rand_buf((size_t)OC * IC, 1); c.out = rand_buf(c.nout, 0);
    c.R = rand_buf(c.nout, 1);
    // the fast forward equals the naive one
    real *ref = rand_buf(c.nout, 0);
    matmul_forward_naive(ref, c.a, c.b, N, IC, OC);
    loss_matmul(&c);
    double maxd = 0, maxr = 0;
    for (size_t i = 0; i < c.nout; i++) { maxd = fmax(maxd, fabs(c.out[i] - ref[i])); maxr = fmax(maxr, fabs(ref[i])); }
    // backward: fast and naive accumulate the same into pre-filled buffers
    real *dx = rand_buf((size_t)N * IC, 1), *dw = rand_buf((size_t)OC * IC, 1);
    real *dx0 = xcalloc((size_t)N * IC, sizeof(real)), *dw0 = xcalloc((size_t)OC * IC, sizeof(real));
    memcpy(dx0, dx, (size_t)N * IC * sizeof(real)); memcpy(dw0, dw, (size_t)OC * IC * sizeof(real));
    matmul_backward(dx, dw, c.R, c.a, c.b, N, IC, OC);
    matmul_backward_naive(dx0, dw0, c.R, c.a, c.b, N, IC, OC);
    double bd = 0, bs = 0;
    for (size_t i = 0; i < (size_t)N * IC; i++) { bd = fmax(bd, fabs(dx[i] - dx0[i])); bs = fmax(bs, fabs(dx0[i])); }
    for (size_t i = 0; i < (size_t)OC * IC; i++) { bd = fmax(bd, fabs(dw[i] - dw0[i])); bs = fmax(bs, fabs(dw0[i])); }
    double tol = sizeof(real) == 8 ? 1e-12 : 1e-5;
    check(maxd <= tol * (maxr + 1) && bd <= tol * (bs + 1),
          "matmul %dx%dx%d: fast == naive (forward %.1e, backward %.1e)", N, IC, OC, maxd, bd);
    // finite differences on what the fast backward adds to pre-filled buffers
    fill_normal(dx, (size_t)N * IC, 1); fill_normal(dw, (size_t)OC * IC, 1);
    memcpy(dx0, dx, (size_t)N * IC * sizeof(real)); memcpy(dw0, dw, (size_t)OC * IC * sizeof(real));
    matmul_backward(dx, dw, c.R, c.a, c.b, N, IC, OC);
    double e1 = fd_rel_err(c.a, added(dx, dx0, (size_t)N * IC), (size_t)N * IC, loss_matmul, &c, 300);
    double e2 = fd_rel_err(c.b, added(dw, dw0, (size_t)OC * IC), (size_t)OC * IC, loss_matmul, &c, 300);
    check(e1 <= FD_TOL && e2 <= FD_TOL, "matmul %dx%dx%d backward (added to pre-filled buffers) vs finite differences: dinp %.2e, dweight %.2e",
          N, IC, OC, e1, e2);
    free(c.a); free(c.b); free(c.out); free(c.R); free(ref); free(dx); free(dw); free(dx0); free(dw0);
}

static double loss_rope(void *p) {
    Ctx *c = p;
    rope_forward(c->out, c->a, c->cosb, c->sinb, c->B, c->T, c->NH, c->D);
    return dot(c->out, c->R, c->nout);
}
static void test_rope(void) {
    Ctx c = {.B = 2, .T = 7, .NH = 3, .D = 8};
    c.nout = (size_t)c.B * c.T * c.NH * c.D;
    c.cosb = rand_buf((size_t)c.T * c.D / 2, 0); c.sinb = rand_buf((size_t)c.T * c.D / 2, 0);
    rope_tables(c.cosb, c.sinb, c.T, c.D, ROPE_THETA_DEFAULT);
    c.a = rand_buf(c.nout, 1); c.out = rand_buf(c.nout, 0); c.R = rand_buf(c.nout, 1);
    real *dx0, *dx = prefill(c.nout, &dx0);
    rope_backward(dx, c.R, c.cosb, c.sinb, c.B, c.T, c.NH, c.D);
    double e = fd_rel_err(c.a, added(dx, dx0, c.nout), c.nout, loss_rope, &c, 1000);
    check(e <= FD_TOL, "rope backward (added to a pre-filled buffer) vs finite differences: %.2e", e);
    // HF rotate-half pairing: position 1, pair (0, D/2) rotates by angle 1 (frequency base^0)
    real x[8] = {1, 0, 0, 0, 0, 0, 0, 0}, y[16], in2[16];
    memset(in2, 0, sizeof(in2)); memcpy(in2 + 8, x, sizeof(x));
    rope_forward(y, in2, c.cosb, c.sinb, 1, 2, 1, 8);
    check(fabs(y[8] - cos(1.0)) < 1e-6 && fabs(y[12] - sin(1.0)) < 1e-6 && fabs(y[9]) < 1e-12,
          "rope pairs dimension i with i + D/2 (HF rotate-half), angle t * base^(-2i/D)");
    free(c.cosb); free(c.sinb); free(c.a); free(c.out); free(c.R); free(dx); free(dx0);
}

static double loss_attention(void *p) {
    Ctx *c = p;
    attention_forward(c->out, c->aux, c->a, c->b, c->c, c->B, c->T, c->NH, c->NKV, c->D);
    return dot(c->out, c->R, c->nout);
}
static void test_attention(int NH, int NKV) {
    Ctx c = {.B = 2, .T = 7, .NH = NH, .NKV = NKV, .D = 4};
    size_t nq = (size_t)c.B * c.T * NH * c.D, nk = (size_t)c.B * c.T * NKV * c.D;
    c.nout = nq;
    c.a = rand_buf(nq, 1); c.b = rand_buf(nk, 1); c.c = rand_buf(nk, 1);
    c.out = rand_buf(nq, 0); c.aux = rand_buf((size_t)c.B * NH * c.T * c.T, 0); c.R = rand_buf(nq, 1);
    real *dq0, *dk0, *dv0, *dq = prefill(nq, &dq0), *dk = prefill(nk, &dk0), *dv = prefill(nk, &dv0);
    loss_attention(&c);
    attention_backward(dq, dk, dv, c.R, c.a, c.b, c.c, c.aux, c.B, c.T, NH, NKV, c.D);
    double e1 = fd_rel_err(c.a, added(dq, dq0, nq), nq, loss_attention, &c, 1000);
    double e2 = fd_rel_err(c.b, added(dk, dk0, nk), nk, loss_attention, &c, 1000);
    double e3 = fd_rel_err(c.c, added(dv, dv0, nk), nk, loss_attention, &c, 1000);
    check(e1 <= FD_TOL && e2 <= FD_TOL && e3 <= FD_TOL,
          "attention (H %d, Hkv %d) backward (added to pre-filled buffers) vs finite differences: dq %.2e, dk %.2e, dv %.2e",
          NH, NKV, e1, e2, e3);
    // causal: weights above the diagonal are exactly 0, rows sum to 1
    double worst = 0;
    for (int r = 0; r < c.B * NH * c.T; r++) {
        int t = r % c.T;
        double s = 0;
        for (int j = 0; j < c.T; j++) { s += c.aux[(size_t)r * c.T + j]; if (j > t) worst = fmax(worst, fabs(c.aux[(size_t)r * c.T + j])); }
        worst = fmax(worst, fabs(s - 1));
    }
    check(worst < 1e-5, "attention weights are causal and each row sums to 1 (worst %.1e)", worst);
    free(c.a); free(c.b); free(c.c); free(c.out); free(c.aux); free(c.R); free(dq); free(dk); free(dv);
    free(dq0); free(dk0); free(dv0);
}

static double loss_vscale(void *p) {
    Ctx *c = p;
    vscale_forward(c->out, c->aux, c->a, c->b, c->mode, VSCALE_PATH_BOTH, c->d_model, c->B, c->NKV, c->D);
    return dot(c->out, c->R, c->nout);
}
// the tiled attention against the naive one, on shapes that are not multiples of the tiles
// (T = 1, odd T and D, grouped heads); backward accumulates into pre-filled buffers
static double max_abs_diff(const real *a, const real *b, size_t n, double *scale) {
    double d = 0;
    for (size_t i = 0; i < n; i++) { d = fmax(d, fabs(a[i] - b[i])); *scale = fmax(*scale, fabs(b[i])); }
    return d;
}
static void test_attention_fast(int B, int T, int NH, int NKV, int D) {
    size_t nq = (size_t)B * T * NH * D, nk = (size_t)B * T * NKV * D, na = (size_t)B * NH * T * T;
    real *q = rand_buf(nq, 1), *k = rand_buf(nk, 1), *v = rand_buf(nk, 1), *dy = rand_buf(nq, 1);
    real *y[2], *att[2], *dq[2], *dk[2], *dv[2];
    real *dq0 = rand_buf(nq, 1), *dk0 = rand_buf(nk, 1), *dv0 = rand_buf(nk, 1);
    for (int f = 0; f < 2; f++) {
        y[f] = rand_buf(nq, 1); att[f] = rand_buf(na, 1); // garbage in: both must overwrite it
        dq[f] = xcalloc(nq, sizeof(real)); dk[f] = xcalloc(nk, sizeof(real)); dv[f] = xcalloc(nk, sizeof(real));
        memcpy(dq[f], dq0, nq * sizeof(real)); memcpy(dk[f], dk0, nk * sizeof(real)); memcpy(dv[f], dv0, nk * sizeof(real));
    }
    attention_forward_naive(y[0], att[0], q, k, v, B, T, NH, NKV, D);
    attention_forward(y[1], att[1], q, k, v, B, T, NH, NKV, D);
    attention_backward_naive(dq[0], dk[0], dv[0], dy, q, k, v, att[0], B, T, NH, NKV, D);
    attention_backward(dq[1], dk[1], dv[1], dy, q, k, v, att[1], B, T, NH, NKV, D);
    double sf = 0, sb = 0;
    double df = fmax(max_abs_diff(y[1], y[0], nq, &sf), max_abs_diff(att[1], att[0], na, &sf));
    double db = fmax(max_abs_diff(dq[1], dq[0], nq, &sb), fmax(max_abs_diff(dk[1], dk[0], nk, &sb), max_abs_diff(dv[1], dv[0], nk, &sb)));
    double tol = sizeof(real) == 8 ? 1e-12 : 2e-5;
    check(df <= tol * sf && db <= tol * sb, "attention B%d T%d H%d Hkv%d D%d: fast == naive (forward %.1e, backward %.1e)",
          B, T, NH, NKV, D, df / sf, db / sb);
    for (int f = 0; f < 2; f++) { free(y[f]); free(att[f]); free(dq[f]); free(dk[f]); free(dv[f]); }
    free(q); free(k); free(v); free(dy); free(dq0); free(dk0); free(dv0);
}

static void test_vscale(int mode) {
    Ctx c = {.B = 6, .NKV = 3, .D = 4, .mode = mode, .d_model = 12};
    c.nout = (size_t)c.B * c.NKV * c.D;
    // value norms spread around c = 12*4*0.0004 = 0.0192, where the Jacobian is most curved
    c.a = rand_buf(c.nout, 0.07); c.b = rand_buf(c.NKV, 0.5); c.out = rand_buf(c.nout, 0);
    c.aux = rand_buf((size_t)c.B * c.NKV, 0); c.R = rand_buf(c.nout, 1);
    real *dv0, *dth0, *dv = prefill(c.nout, &dv0), *dth = prefill(c.NKV, &dth0);
    vscale_backward(dv, dth, c.R, c.a, c.b, mode, VSCALE_PATH_BOTH, c.d_model, c.B, c.NKV, c.D);
    int theta_untouched = 1; // theta is a parameter only when learned: its gradient is then left as it was
    if (mode != VSCALE_LEARNED) for (int h = 0; h < c.NKV; h++) theta_untouched &= dth[h] == dth0[h];
    double e1 = fd_rel_err(c.a, added(dv, dv0, c.nout), c.nout, loss_vscale, &c, 1000);
    double e2 = mode == VSCALE_LEARNED ? fd_rel_err(c.b, added(dth, dth0, c.NKV), c.NKV, loss_vscale, &c, 10) : 0;
    check(e1 <= FD_TOL && e2 <= FD_TOL && theta_untouched,
          "vscale %s backward (added to pre-filled buffers) vs finite differences: dv %.2e, dtheta %.2e", VSCALE_NAMES[mode], e1, e2);
    free(c.a); free(c.b); free(c.out); free(c.aux); free(c.R); free(dv); free(dth); free(dv0); free(dth0);
}

static double loss_swiglu(void *p) {
    Ctx *c = p;
    swiglu_forward(c->out, c->a, c->b, c->nout);
    return dot(c->out, c->R, c->nout);
}
static void test_swiglu(void) {
    Ctx c = {.nout = 40};
    c.a = rand_buf(c.nout, 2); c.b = rand_buf(c.nout, 1); c.out = rand_buf(c.nout, 0); c.R = rand_buf(c.nout, 1);
    real *dg0, *du0, *dg = prefill(c.nout, &dg0), *du = prefill(c.nout, &du0);
    // the convention's third exception: it stores, so what is in the buffers after it is the
    // gradient itself, whatever they held (a version that added would leave prefill + gradient)
    swiglu_backward(dg, du, c.R, c.a, c.b, c.nout);
    double e1 = fd_rel_err(c.a, dg, c.nout, loss_swiglu, &c, 100);
    double e2 = fd_rel_err(c.b, du, c.nout, loss_swiglu, &c, 100);
    real *dg2 = xcalloc(c.nout, sizeof(real)), *du2 = xcalloc(c.nout, sizeof(real));
    swiglu_backward(dg2, du2, c.R, c.a, c.b, c.nout); // into zeroed buffers: the same bits
    int same = !memcmp(dg, dg2, c.nout * sizeof(real)) && !memcmp(du, du2, c.nout * sizeof(real));
    check(e1 <= FD_TOL && e2 <= FD_TOL && same,
          "swiglu backward (stores: over pre-filled buffers, the same bits as over zeroed ones) vs finite differences: dgate %.2e, dup %.2e",
          e1, e2);
    free(dg2); free(du2);
    free(c.a); free(c.b); free(c.out); free(c.R); free(dg); free(du); free(dg0); free(du0);
}

static double loss_xent(void *p) {
    Ctx *c = p;
    memcpy(c->out, c->a, (size_t)c->B * c->V * sizeof(real)); // forward turns logits into probs in place
    crossentropy_forward(c->aux, c->out, c->tok, c->B, c->V);
    double s = 0;
    for (int i = 0; i < c->B; i++) s += c->aux[i];
    return s / count_scored(c->tok, c->B);
}
static void test_crossentropy(void) {
    Ctx c = {.B = 6, .V = 11};
    c.a = rand_buf((size_t)c.B * c.V, 2); c.out = rand_buf((size_t)c.B * c.V, 0); c.aux = rand_buf(c.B, 0);
    c.tok = xcalloc(c.B, sizeof(int));
    for (int i = 0; i < c.B; i++) c.tok[i] = (i * 5 + 1) % c.V;
    c.tok[2] = IGNORE; // a position out of the loss: loss 0, gradient 0, not counted in the mean
    double l = loss_xent(&c);
    int ignored_ok = count_scored(c.tok, c.B) == c.B - 1 && c.aux[2] == 0;
    size_t n = (size_t)c.B * c.V;
    // the convention's exception: it stores, over a pre-filled buffer, or in place over the probabilities
    real *dl = rand_buf(n, 1), *inplace = xcalloc(n, sizeof(real));
    memcpy(inplace, c.out, n * sizeof(real));
    real dloss = (real)(1.0 / count_scored(c.tok, c.B));
    crossentropy_softmax_backward(dl, c.out, c.tok, dloss, c.B, c.V);
    crossentropy_softmax_backward(inplace, inplace, c.tok, dloss, c.B, c.V);
    int same = !memcmp(dl, inplace, n * sizeof(real));
    for (int i = 0; i < c.V; i++) ignored_ok &= dl[2 * c.V + i] == 0;
    double e = fd_rel_err(c.a, dl, n, loss_xent, &c, 1000);
    check(e <= FD_TOL && isfinite(l) && same && ignored_ok,
          "cross-entropy backward (stores: over a pre-filled buffer, and in place over the probabilities, the same bits; "
          "an ignored target: loss 0, gradient 0, out of the mean) vs finite differences: %.2e", e);
    free(c.a); free(c.out); free(c.aux); free(c.tok); free(dl); free(inplace);
}

// softmax_backward_row, the other function that stores: into a pre-filled row, or in place over
// da (as attention_backward calls it), the same bits, and against finite differences of
// loss = sum_j R_j softmax(scale * z)_j, whose gradient in z is the row's dlogit for da = R
static void test_softmax_row(void) {
    int n = 9;
    real z[9], a[9], R[9], dl[9], inplace[9];
    fill_normal(z, n, 1); fill_normal(R, n, 1); fill_normal(dl, n, 1);
    real scale = (real)0.5, worst = 0;
    double zmax = -INFINITY, sum = 0;
    for (int j = 0; j < n; j++) zmax = fmax(zmax, z[j]);
    for (int j = 0; j < n; j++) sum += exp(scale * (z[j] - zmax));
    for (int j = 0; j < n; j++) a[j] = (real)(exp(scale * (z[j] - zmax)) / sum);
    memcpy(inplace, R, sizeof(R));
    softmax_backward_row(dl, a, R, n, scale);
    softmax_backward_row(inplace, a, inplace, n, scale);
    for (int j = 0; j < n; j++) { // central difference of the loss in z_j
        double h = sizeof(real) == 8 ? 1e-6 : 1e-2, f[2];
        for (int k = 0; k < 2; k++) {
            double s2 = 0, l = 0, zj = z[j] + (k ? -h : h);
            for (int i = 0; i < n; i++) s2 += exp(scale * ((i == j ? zj : z[i]) - zmax));
            for (int i = 0; i < n; i++) l += R[i] * exp(scale * ((i == j ? zj : z[i]) - zmax)) / s2;
            f[k] = l;
        }
        worst = fmax(worst, fabs(dl[j] - (f[0] - f[1]) / (2 * h)));
    }
    check(worst <= (sizeof(real) == 8 ? 1e-8 : 1e-3) && !memcmp(dl, inplace, sizeof(dl)),
          "softmax_backward_row (stores: over a pre-filled row, and in place over da, the same bits) vs finite differences: %.1e",
          (double)worst);
}

// ----------------------------------------------------------------------------
// the whole model

typedef struct { Model *m; int B, T; } ModelCtx;
static double loss_model(void *p) {
    ModelCtx *c = p;
    return model_forward(c->m, c->B, c->T, 1);
}

// a tiny model with odd sizes; weights larger than the paper's 0.02 so every nonlinearity is exercised
static void tiny_model_with(Model *m, int n_kv_head, int vscale, int B, int T, double rope_theta, double rms_norm_eps) {
    Config cfg = {37, 16, 2, 4, n_kv_head, 24, T, vscale, 36, rope_theta, rms_norm_eps};
    model_build(m, &cfg);
    model_alloc_acts(m, B, T);
    model_init(m, 7);
    Rng r;
    rng_seed(&r, 8);
    real *p = m->params_memory;
    Slot t[NUM_PARAM_TENSORS];
    model_params(m, t);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++)
        for (size_t j = 0; j < t[i].size; j++, p++) {
            if (t[i].kind == KIND_MATRIX) *p *= 15;                     // std 0.3
            else if (t[i].kind == KIND_GAIN) *p += (real)(0.2 * rng_normal(&r));
            else *p = (real)(0.5 * rng_normal(&r));                       // theta
        }
    for (int i = 0; i < B * T; i++) { m->inputs[i] = (i * 7 + 3) % 37; m->targets[i] = (i * 11 + 5) % 37; }
}
static void tiny_model(Model *m, int n_kv_head, int vscale, int B, int T) {
    tiny_model_with(m, n_kv_head, vscale, B, T, ROPE_THETA_DEFAULT, RMSNORM_EPS_DEFAULT);
}

static void test_model_gradients(int n_kv_head, int vscale, double rope_theta, double rms_norm_eps) {
    Model m;
    int B = 3, T = 9;
    tiny_model_with(&m, n_kv_head, vscale, B, T, rope_theta, rms_norm_eps);
    m.targets[T] = IGNORE; // row 1's first target out of the loss, as -f eot-masked leaves it
    char extra[64] = "";
    if (rope_theta != ROPE_THETA_DEFAULT || rms_norm_eps != RMSNORM_EPS_DEFAULT)
        snprintf(extra, sizeof(extra), ", rope_theta %g, eps %g", rope_theta, rms_norm_eps);
    ModelCtx c = {&m, B, T};
    model_forward_backward(&m, B, T);
    real *grads = xcalloc(m.num_parameters, sizeof(real));
    memcpy(grads, m.grads_memory, m.num_parameters * sizeof(real));
    // entry by entry (sampled) in the double build; along directions in the float build, where a
    // single entry's change of the loss is below float rounding
    double worst = 0;
    const char *worst_name = "";
    size_t off = 0;
    Slot t[NUM_PARAM_TENSORS];
    model_params(&m, t);
    for (int i = 0; i < NUM_PARAM_TENSORS; off += t[i].size, i++) {
        if (t[i].kind == KIND_THETA && vscale != VSCALE_LEARNED) continue; // not a parameter then
        double e = sizeof(real) == 8 ? fd_rel_err(m.params_memory + off, grads + off, t[i].size, loss_model, &c, 24)
                                     : fd_dir_err(m.params_memory + off, grads + off, t[i].size, loss_model, &c);
        if (e > worst) { worst = e; worst_name = t[i].name; }
    }
    check(worst <= FD_TOL_MODEL, "model (H 4, Hkv %d, vscale %s%s, one target ignored) gradient vs finite differences (%s) on every tensor: worst %.2e (%s)",
          n_kv_head, VSCALE_NAMES[vscale], extra, sizeof(real) == 8 ? "entries" : "directions", worst, worst_name);
    // model_backward adds into the parameter gradients too: from pre-filled ones, it adds the same gradient
    real *pre0, *pre = prefill(m.num_parameters, &pre0);
    memcpy(m.grads_memory, pre, m.num_parameters * sizeof(real));
    model_forward(&m, B, T, 1);
    model_backward(&m, B, T);
    double dmax = 0, gmax = 0;
    for (size_t i = 0; i < m.num_parameters; i++) {
        dmax = fmax(dmax, fabs((m.grads_memory[i] - pre0[i]) - grads[i]));
        gmax = fmax(gmax, fabs(grads[i]));
    }
    check(dmax <= (sizeof(real) == 8 ? 1e-14 : 1e-6) * (gmax + 1),
          "whole-model backward (H 4, Hkv %d, vscale %s%s) adds into pre-filled parameter gradients (error %.1e)", n_kv_head,
          VSCALE_NAMES[vscale], extra, dmax);
    free(pre); free(pre0);
    free(grads);
    model_free(&m);
}

// ----------------------------------------------------------------------------
// optimizer

static void test_adamw(void) {
    // two steps on three numbers; expected values worked out by hand from the update rule
    real p[3] = {0.5, -1.0, 2.0}, mm[3] = {0}, vv[3] = {0};
    real g1[3] = {0.1, -0.2, 0.3}, g2[3] = {-0.05, 0.4, 0.0};
    adamw_update(p, g1, mm, vv, 3, 0.01, 0.9, 0.95, 1e-8, 0.1, 1);
    double e1[3] = {0.489500001000, -0.989000000500, 1.988000000333};
    double d1 = 0;
    for (int i = 0; i < 3; i++) d1 = fmax(d1, fabs(p[i] - e1[i]));
    adamw_update(p, g2, mm, vv, 3, 0.01, 0.9, 0.95, 1e-8, 0.1, 2);
    double e2[3] = {0.486326806860, -0.991644739890, 1.979225523189};
    double d2 = 0;
    for (int i = 0; i < 3; i++) d2 = fmax(d2, fabs(p[i] - e2[i]));
    double tol = sizeof(real) == 8 ? 1e-11 : 1e-6;
    check(d1 < tol && d2 < tol, "AdamW two steps match hand-computed values (errors %.1e, %.1e)", d1, d2);

    real g[2] = {3, 4};
    double n = clip_grads(g, 2, 1.0);
    check(fabs(n - 5) < 1e-12 && fabs(g[0] - 3 / (5 + 1e-6)) < 1e-6 && fabs(g[1] - 4 / (5 + 1e-6)) < 1e-6,
          "grad clipping: norm 5 -> grads scaled by 1/(5+1e-6)");
    real g3[2] = {0.3, 0.4};
    clip_grads(g3, 2, 1.0);
    check(g3[0] == (real)0.3 && g3[1] == (real)0.4, "grad clipping leaves a norm below 1 alone");

    // the grad norm sums in blocks and lanes: against a plain long-double sum, on lengths that
    // leave blocks empty, partial or uneven, and the same bits for 1, 2 and 3 threads
    {
        size_t lens[8] = {0, 1, 7, 63, 64, 65, 1001, 100003};
        real *x = xcalloc(100003, sizeof(real));
        for (size_t i = 0; i < 100003; i++) x[i] = (real)(((i * 2654435761u) % 1000) / 500.0 - 1.0);
        double worst = 0;
        int same = 1;
        for (int li = 0; li < 8; li++) {
            long double ref = 0;
            for (size_t i = 0; i < lens[li]; i++) ref += (long double)x[i] * x[i];
            double want = sqrt((double)ref), got[3];
            for (int th = 1; th <= 3; th++) {
                int saved = set_threads(th);
                got[th - 1] = grad_norm(x, lens[li]);
                set_threads(saved);
            }
            same &= got[0] == got[1] && got[1] == got[2];
            worst = fmax(worst, fabs(got[0] - want) / (want > 0 ? want : 1));
        }
        check(worst < 1e-13 && same, "grad norm: lengths 0..100003 within %.1e of a long-double sum, same bits for 1-3 threads", worst);
        free(x);
    }

    double l0 = lr_at(0, 100, 10, 1e-3, 1e-4), l9 = lr_at(9, 100, 10, 1e-3, 1e-4), l10 = lr_at(10, 100, 10, 1e-3, 1e-4);
    double l55 = lr_at(55, 100, 10, 1e-3, 1e-4), l99 = lr_at(99, 100, 10, 1e-3, 1e-4);
    check(fabs(l0 - 1e-4) < 1e-15 && fabs(l9 - 1e-3) < 1e-15 && fabs(l10 - 1e-3) < 1e-15 && fabs(l55 - 5.5e-4) < 1e-15 &&
              fabs(l99 - 0.000100274127841407) < 1e-15,
          "lr schedule: warmup (s+1)/warmup, then cosine to min (%.3g %.3g %.3g %.3g %.6g)", l0, l9, l10, l55, l99);

    // decay only on matrices, the MLP's three at their own rate; theta moves only when V-scale is learned
    for (int mode = VSCALE_OFF; mode <= VSCALE_LEARNED; mode += 2) {
        Model m;
        tiny_model(&m, 2, mode, 1, 4);
        real *before = xcalloc(m.num_parameters, sizeof(real));
        memcpy(before, m.params_memory, m.num_parameters * sizeof(real));
        model_zero_grad(&m);
        m.grads.vscale_theta[0] = 1; // all grads zero but one theta's: elsewhere only decay acts
        AdamW o = {0, 0.9, 0.95, 1e-8, 0.1, 0.03, 0.05, -1};
        model_update(&m, &o, 0.01);
        int ok = 1;
        size_t off = 0, theta0 = (size_t)(m.params.vscale_theta - m.params_memory);
        Slot t[NUM_PARAM_TENSORS];
        model_params(&m, t);
        for (int i = 0; i < NUM_PARAM_TENSORS; off += t[i].size, i++)
            for (size_t j = 0; j < t[i].size; j++) {
                real b = before[off + j], a = m.params_memory[off + j];
                int mlp = !strcmp(t[i].name, "w_gate") || !strcmp(t[i].name, "w_up") || !strcmp(t[i].name, "w_down");
                double wd = mlp ? 0.03 : !strcmp(t[i].name, "wte") ? 0.05 : 0.1;
                if (t[i].kind == KIND_MATRIX) ok &= a == b - (real)(0.01 * wd) * b;
                else if (off + j == theta0 && mode == VSCALE_LEARNED) ok &= fabs(a - (b - 0.01)) < 1e-6; // Adam's first step moves by lr
                else ok &= a == b;
            }
        check(ok, "AdamW (vscale %s): decay on matrices only (w_gate, w_up, w_down at --mlp-decay's rate, wte at --embed-decay's), gains untouched, theta trained only when learned",
              VSCALE_NAMES[mode]);
        free(before);
        model_free(&m);
    }

    // --eot-row fixed: the end-of-text row keeps its direction at the mean norm of the other rows,
    // whatever its gradient; every other row steps as usual. Learned, the same row moves.
    for (int fixed = 0; fixed <= 1; fixed++) {
        Model m;
        tiny_model(&m, 2, VSCALE_LEARNED, 1, 4);
        int V = m.cfg.vocab_size, C = m.cfg.d_model, eot = m.cfg.eot;
        fill_normal(m.grads_memory, m.num_parameters, 1.0); // a gradient on every row, the fixed one too
        real *before = xcalloc((size_t)V * C, sizeof(real));
        memcpy(before, m.params.wte, (size_t)V * C * sizeof(real));
        AdamW o = {0, 0.9, 0.95, 1e-8, 0.1, 0.1, 0.1, fixed ? eot : -1};
        model_update(&m, &o, 0.01);
        const real *w = m.params.wte, *e0 = before + (size_t)eot * C, *e1 = w + (size_t)eot * C;
        double mean = 0, cosine = dot(e0, e1, C) / sqrt(dot(e0, e0, C) * dot(e1, e1, C)), moved = 0;
        for (int v = 0; v < V; v++)
            if (v != eot) mean += sqrt(dot(w + (size_t)v * C, w + (size_t)v * C, C)) / (V - 1);
        for (size_t i = 0; i < (size_t)V * C; i++)
            if (i / C != (size_t)eot) moved = fmax(moved, fabs(w[i] - before[i]));
        double own = sqrt(dot(e1, e1, C));
        if (fixed)
            check(fabs(cosine - 1) < 1e-6 && fabs(own / mean - 1) < 1e-5 && fabs(own - sqrt(dot(e0, e0, C))) > 1e-3 && moved > 1e-3,
                  "--eot-row fixed: the end-of-text row keeps its direction (cos %.7f) at the other rows' mean norm (%.6f vs %.6f); the others step",
                  cosine, own, mean);
        else
            check(cosine < 1 - 1e-6 && moved > 1e-3, "--eot-row learned: the end-of-text row steps like the others (cos %.7f)", cosine);
        free(before);
        model_free(&m);
    }
}

// ----------------------------------------------------------------------------
// files: checkpoints, token files, tokenizer files

static char tmpdir[256];

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    fwrite(data, 1, n, f);
    fclose(f);
}
static int files_equal(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char err[256];
    unsigned char *x = read_file(a, &na, err, sizeof(err)), *y = read_file(b, &nb, err, sizeof(err));
    int eq = x && y && na == nb && memcmp(x, y, na) == 0;
    free(x); free(y);
    return eq;
}

static void test_checkpoint(void) {
    char p1[512], p2[512], err[1024];
    snprintf(p1, sizeof(p1), "%s/a.bin", tmpdir);
    snprintf(p2, sizeof(p2), "%s/b.bin", tmpdir);
    Model m, r;
    tiny_model(&m, 2, VSCALE_LEARNED, 1, 4);
    int ok = checkpoint_write(&m, p1, 17, err, sizeof(err)) == 0;
    Config c;
    int step = -1;
    ok &= checkpoint_read_header(p1, &c, &step, err, sizeof(err)) == 0;
    ok &= config_equal(&c, &m.cfg) && step == 17;
    model_build(&r, &c);
    ok &= checkpoint_read(&r, p1, &step, err, sizeof(err)) == 0;
    int same = 1;
    for (size_t i = 0; i < m.num_parameters; i++) same &= r.params_memory[i] == (real)(float)m.params_memory[i];
    ok &= checkpoint_write(&r, p2, 17, err, sizeof(err)) == 0;
    check(ok && same && files_equal(p1, p2), "checkpoint write -> read -> write is bit-identical");

    // the header layout, int by int
    FILE *f = fopen(p1, "rb");
    int32_t h[HEADER_INTS];
    size_t got = fread(h, sizeof(int32_t), HEADER_INTS, f);
    fclose(f);
    double theta, eps;
    memcpy(&theta, h + 11, 8);
    memcpy(&eps, h + 13, 8);
    double G;
    memcpy(&G, h + 17, 8);
    check(got == HEADER_INTS && h[0] == 20261128 && h[1] == 3 && h[2] == 37 && h[3] == 16 && h[4] == 2 && h[5] == 4 &&
              h[6] == 2 && h[7] == 24 && h[8] == 4 && h[9] == 2 && h[10] == 17 && theta == 10000 && eps == 1e-5 && h[15] == 36 &&
              h[16] == VSCALE_PATH_BOTH && G == 1,
          "checkpoint header: magic, version 3, V, C, L, H, Hkv, F, max T, vscale, step, rope_theta, eps, eot, vscale path, sink-grad");

    // bad headers and truncated payloads are refused
    size_t n;
    unsigned char *buf = read_file(p1, &n, err, sizeof(err));
    int32_t bad = 12345;
    memcpy(buf, &bad, 4);
    write_bytes(p2, buf, n);
    int r1 = checkpoint_read_header(p2, &c, &step, err, sizeof(err));
    check(r1 != 0 && strstr(err, "magic"), "checkpoint with bad magic rejected: %s", err);
    bad = CKPT_MAGIC;
    memcpy(buf, &bad, 4);
    write_bytes(p2, buf, n - 8);
    int r2 = checkpoint_read(&r, p2, &step, err, sizeof(err));
    check(r2 != 0 && strstr(err, "truncated"), "truncated checkpoint rejected: %s", err);
    bad = 5; // n_head 5 does not divide width 16
    memcpy(buf + 5 * 4, &bad, 4);
    write_bytes(p2, buf, n);
    int r3 = checkpoint_read_header(p2, &c, &step, err, sizeof(err));
    check(r3 != 0 && strstr(err, "impossible"), "checkpoint header with impossible shapes rejected: %s", err);
    free(buf);

    // optimizer state round trip, and a mismatched step refused
    m.adam_t = 17;
    fill_normal(m.m_memory, m.num_parameters, 1);
    fill_normal(m.v_memory, m.num_parameters, 1);
    for (size_t i = 0; i < m.num_parameters; i++) m.v_memory[i] = fabs(m.v_memory[i]); // second moments are >= 0
    snprintf(p2, sizeof(p2), "%s/a.bin.opt", tmpdir);
    ok = optstate_write(&m, p2, 17, err, sizeof(err)) == 0 && optstate_read(&r, p2, 17, err, sizeof(err)) == 0;
    same = r.adam_t == 17;
    for (size_t i = 0; i < m.num_parameters; i++)
        same &= r.m_memory[i] == (real)(float)m.m_memory[i] && r.v_memory[i] == (real)(float)m.v_memory[i];
    int r4 = optstate_read(&r, p2, 16, err, sizeof(err));
    check(ok && same && r4 != 0, "optimizer state round trip; a state from another step is refused: %s", err);
    model_free(&m);
    model_free(&r);
}

// loads checkpoint p into a new model (its config into *c), runs it on src's batch of 2 x 5 and
// returns the loss; *ok is cleared when the file does not load
static double reload_loss(const char *p, const Model *src, Config *c, int *ok, char *err, size_t errlen) {
    int step = -1;
    Model r;
    *ok &= checkpoint_read_header(p, c, &step, err, errlen) == 0;
    model_build(&r, c);
    model_alloc_acts(&r, 2, 5);
    *ok &= checkpoint_read(&r, p, &step, err, errlen) == 0;
    memcpy(r.inputs, src->inputs, 10 * sizeof(int));
    memcpy(r.targets, src->targets, 10 * sizeof(int));
    double loss = model_forward(&r, 2, 5, 1);
    model_free(&r);
    return loss;
}

// rewrites checkpoint p's header as an older version: [1] = version, nzero ints from `from` zeroed
static void as_version(const char *p, int32_t version, int from, int nzero) {
    size_t n;
    char err[256];
    unsigned char *buf = read_file(p, &n, err, sizeof(err));
    if (!buf) return;
    memcpy(buf + 4, &version, 4);
    memset(buf + from * 4, 0, nzero * 4);
    write_bytes(p, buf, n);
    free(buf);
}

// version 2 stores RoPE's base, RMSNorm's eps and the eot id; version 1 files read as 10000, 1e-5, V-1
static void test_checkpoint_versions(void) {
    char p[512], err[1024];
    int step_unused;
    snprintf(p, sizeof(p), "%s/v.bin", tmpdir);
    Model m;
    tiny_model_with(&m, 2, VSCALE_OFF, 2, 5, 500000.0, 1e-6);
    m.cfg.eot = 3;
    int ok = checkpoint_write(&m, p, 4, err, sizeof(err)) == 0;
    Config c;
    double l2 = reload_loss(p, &m, &c, &ok, err, sizeof(err)), l1 = model_forward(&m, 2, 5, 1);
    ok &= c.rope_theta == 500000.0 && c.rms_norm_eps == 1e-6 && c.eot == 3;
    Model d;
    tiny_model(&d, 2, VSCALE_OFF, 2, 5);
    double l0 = model_forward(&d, 2, 5, 1);
    check(ok && fabs(l1 - l2) < 1e-6 && fabs(l1 - l0) > 1e-4,
          "a checkpoint keeps rope_theta 5e5, eps 1e-6, eot 3; the loaded model's loss %.6f = %.6f (defaults give %.6f)",
          l2, l1, l0);

    // interventions are kept: path and G round-trip, and a probe reports them
    d.vscale_path = VSCALE_PATH_BACKWARD; // V-scale off: refused on reading
    ok = checkpoint_write(&d, p, 4, err, sizeof(err)) == 0 && checkpoint_read_header(p, &c, &step_unused, err, sizeof(err)) != 0;
    check(ok && strstr(err, "V-scale is off"), "a checkpoint with --vscale-path backward but V-scale off is refused: %s", err);
    Model e, e2;
    tiny_model(&e, 2, VSCALE_FIXED, 2, 5);
    e.vscale_path = VSCALE_PATH_FORWARD;
    e.sink_grad = 0.25;
    ok = checkpoint_write(&e, p, 4, err, sizeof(err)) == 0;
    model_build(&e2, &e.cfg);
    ok &= checkpoint_read(&e2, p, &step_unused, err, sizeof(err)) == 0;
    check(ok && e2.vscale_path == VSCALE_PATH_FORWARD && e2.sink_grad == 0.25,
          "a checkpoint keeps --vscale-path (forward) and --sink-grad (0.25): read back %s, %g", VSCALE_PATH_NAMES[e2.vscale_path],
          e2.sink_grad);
    // a version-2 file (no [16..18]) reads as path both, G 1
    as_version(p, 2, 16, 3);
    ok = checkpoint_read(&e2, p, &step_unused, err, sizeof(err)) == 0;
    check(ok && e2.vscale_path == VSCALE_PATH_BOTH && e2.sink_grad == 1, "a version-2 checkpoint reads as vscale path both, sink-grad 1");
    model_free(&e); model_free(&e2);
    d.vscale_path = VSCALE_PATH_BOTH;

    // a version-1 file: the same payload with the old header (no [11..18])
    checkpoint_write(&d, p, 4, err, sizeof(err));
    as_version(p, 1, 11, 8);
    ok = 1;
    double l3 = reload_loss(p, &d, &c, &ok, err, sizeof(err));
    ok &= c.rope_theta == 10000.0 && c.rms_norm_eps == 1e-5 && c.eot == 36;
    check(ok && fabs(l3 - l0) < 1e-6, "version-1 checkpoint loads as rope_theta 10000, eps 1e-5, eot V-1 (loss %.6f = %.6f): %s",
          l3, l0, ok ? "" : err);
    model_free(&m); model_free(&d);
}

// writes an llm.c token file with a given header and tokens
static void write_tokens(const char *path, int magic, int version, int count, const uint16_t *tok, int ntok) {
    int32_t h[HEADER_INTS] = {magic, version, count};
    FILE *f = fopen(path, "wb");
    fwrite(h, sizeof(int32_t), HEADER_INTS, f);
    fwrite(tok, sizeof(uint16_t), ntok, f);
    fclose(f);
}

static void test_dataloader(void) {
    char p[512], err[1024];
    snprintf(p, sizeof(p), "%s/tok.bin", tmpdir);
    uint16_t tok[50];
    for (int i = 0; i < 50; i++) tok[i] = (uint16_t)(i % 13);
    DataLoader dl;
    write_tokens(p, DATA_MAGIC, 1, 50, tok, 50);
    int ok = dataloader_open(&dl, p, 2, 4, 13, err, sizeof(err)) == 0;
    check(ok && dl.num_batches == 6, "data loader opens a good file: 50 tokens, B 2, T 4 -> %zu batches", dl.num_batches);
    int in[8], tg[8], good = 1;
    dataloader_batch(&dl, 1, in, tg, FIRST_ANY, 12);
    for (int i = 0; i < 8; i++) good &= in[i] == tok[8 + i] && tg[i] == tok[9 + i];
    dataloader_batch(&dl, 7, in, tg, FIRST_ANY, 12); // 7 wraps to 1
    for (int i = 0; i < 8; i++) good &= in[i] == tok[8 + i];
    dataloader_batch(&dl, 1, in, tg, FIRST_EOT, 12);
    good &= in[0] == 12 && in[4] == 12 && in[1] == tok[9] && tg[0] == tok[9];
    int in3[8], tg3[8];
    dataloader_batch(&dl, 1, in3, tg3, FIRST_EOT_MASKED, 12);
    for (int i = 0; i < 8; i++) good &= in3[i] == in[i] && tg3[i] == (i % 4 ? tg[i] : IGNORE);
    check(good, "batch k = tokens[k*B*T ..], targets shifted by one, wraps; first-token eot replaces each row's first input, "
                "eot-masked also ignores its first target");
    dataloader_free(&dl);

    // random rows: with tokens[i] = i every row names its offset; each row is a window of T with
    // targets shifted by one, offsets cover [0, count - T) and nothing past it, a batch is a
    // function of (seed, k) alone, and consecutive batches differ
    uint16_t ids[50];
    for (int i = 0; i < 50; i++) ids[i] = (uint16_t)i;
    write_tokens(p, DATA_MAGIC, 1, 50, ids, 50);
    ok = dataloader_open(&dl, p, 2, 4, 51, err, sizeof(err)) == 0;
    int windows = 1, lo = 50, hi = -1, same = 1, differ = 0, eot_ok = 1, in2[8], tg2[8];
    for (size_t k = 0; ok && k < 500; k++) {
        dataloader_random_batch(&dl, 3, k, in, tg, FIRST_ANY, 50);
        for (int b = 0; b < 2; b++) {
            int s0 = in[b * 4];
            lo = s0 < lo ? s0 : lo;
            hi = s0 > hi ? s0 : hi;
            for (int t = 0; t < 4; t++) windows &= in[b * 4 + t] == s0 + t && tg[b * 4 + t] == s0 + t + 1;
        }
        dataloader_random_batch(&dl, 3, k, in2, tg2, FIRST_EOT, 50);
        for (int i = 0; i < 8; i++) {
            same &= tg2[i] == tg[i];
            eot_ok &= i % 4 ? in2[i] == in[i] : in2[i] == 50;
        }
        dataloader_random_batch(&dl, 3, k + 1, in2, tg2, FIRST_ANY, 50);
        differ += memcmp(in, in2, sizeof(in)) != 0;
    }
    dataloader_random_batch(&dl, 4, 0, in2, tg2, FIRST_ANY, 50);
    dataloader_random_batch(&dl, 3, 0, in, tg, FIRST_ANY, 50);
    check(ok && windows && lo == 0 && hi == 45 && same && eot_ok && differ >= 495 && memcmp(in, in2, sizeof(in)),
          "random rows: windows of T with shifted targets, offsets %d..%d of 0..45, a function of (seed, k), "
          "%d of 500 next batches differ, another seed another batch, eot replaces only the first input", lo, hi, differ);
    dataloader_free(&dl);

    write_tokens(p, 20240521, 1, 50, tok, 50);
    int r1 = dataloader_open(&dl, p, 2, 4, 13, err, sizeof(err));
    check(r1 != 0 && strstr(err, "magic") && strstr(err, "tok.bin"), "token file with bad magic rejected: %s", err);
    write_tokens(p, DATA_MAGIC, 2, 50, tok, 50);
    int r2 = dataloader_open(&dl, p, 2, 4, 13, err, sizeof(err));
    check(r2 != 0 && strstr(err, "version"), "token file with bad version rejected: %s", err);
    write_tokens(p, DATA_MAGIC, 1, 60, tok, 50);
    int r3 = dataloader_open(&dl, p, 2, 4, 13, err, sizeof(err));
    check(r3 != 0 && strstr(err, "header says 60"), "short token file rejected: %s", err);
    write_tokens(p, DATA_MAGIC, 1, 50, tok, 50);
    int r4 = dataloader_open(&dl, p, 2, 4, 12, err, sizeof(err));
    check(r4 != 0 && strstr(err, "vocab size 12"), "token id >= vocab rejected: %s", err);
    int r5 = dataloader_open(&dl, p, 7, 8, 13, err, sizeof(err));
    check(r5 != 0 && strstr(err, "fewer than one batch"), "file smaller than one batch rejected: %s", err);
    snprintf(p, sizeof(p), "%s/missing.bin", tmpdir);
    int r6 = dataloader_open(&dl, p, 2, 4, 13, err, sizeof(err));
    check(r6 != 0 && strstr(err, "cannot open"), "missing token file rejected: %s", err);
}

static void test_tokenizer_decode(void) {
    // a 4-token vocabulary written by hand: "a", "b", "ab", "<|endoftext|>", one merge (0, 1)
    char p[512], err[1024];
    snprintf(p, sizeof(p), "%s/tok.tk", tmpdir);
    unsigned char buf[2048];
    int32_t h[HEADER_INTS] = {TOKENIZER_MAGIC, 1, 4, 3, 1};
    size_t n = 0;
    memcpy(buf, h, sizeof(h)); n += sizeof(h);
    const char *toks[4] = {"a", "b", "ab", "<|endoftext|>"};
    for (int i = 0; i < 4; i++) {
        uint16_t len = (uint16_t)strlen(toks[i]);
        memcpy(buf + n, &len, 2); memcpy(buf + n + 2, toks[i], len); n += 2 + len;
    }
    int32_t merge[2] = {0, 1};
    memcpy(buf + n, merge, 8); n += 8;
    write_bytes(p, buf, n);
    Tokenizer tk;
    int ok = tokenizer_load(&tk, p, err, sizeof(err)) == 0;
    char out[256] = {0};
    FILE *f = fmemopen(out, sizeof(out) - 1, "w");
    int ids[6] = {3, 2, 0, 1, 2, 9};
    for (int i = 0; i < 6; i++) tokenizer_write(ok ? &tk : NULL, ids[i], f);
    fclose(f);
    check(ok && tk.eot == 3 && !strcmp(out, "<|endoftext|>ababab<9>"),
          "tokenizer file decodes [3 2 0 1 2 9] to \"%s\"", out);
    if (ok) tokenizer_free(&tk);
    write_bytes(p, buf, n - 3);
    int r1 = tokenizer_load(&tk, p, err, sizeof(err));
    check(r1 != 0, "truncated tokenizer file rejected: %s", err);
}

// ----------------------------------------------------------------------------
// measurements: each metric on a hand-built case, then the paper's identities on a model

static void test_sink_metrics(void) {
    // 8 heads, T 4: heads 1, 4, 6 put 0.5 on token 0 at every query, the others 0.1
    int B = 1, H = 8, T = 4;
    real *att = xcalloc((size_t)B * H * T * T, sizeof(real));
    for (int h = 0; h < H; h++)
        for (int t = 0; t < T; t++) att[((size_t)h * T + t) * T] = (h == 1 || h == 4 || h == 6) ? 0.5 : 0.1;
    double alpha[8], M0, S0;
    for (int h = 0; h < H; h++) alpha[h] = sink_score(att, B, H, T, h);
    double rate = sink_rate(alpha, H);
    column_moments(&M0, &S0, att, B, H, T);
    check(fabs(rate - 0.375) < 1e-12 && fabs(alpha[1] - 0.5) < 1e-7 && fabs(alpha[0] - 0.1) < 1e-7,
          "sink rate: 3 of 8 heads with alpha 0.5 -> %.3f", rate);
    check(fabs(M0 - 1.0) < 1e-6 && fabs(S0 - 0.4) < 1e-6, "column mass M0 = %.4f (want 1.0), S0 = %.4f (want 0.4)", M0, S0);
    free(att);
    // T_eps = min(64, T): weight on token 0 only after query 64 does not count
    T = 100;
    att = xcalloc((size_t)T * T, sizeof(real));
    for (int t = 64; t < T; t++) att[(size_t)t * T] = 1;
    double a_late = sink_score(att, 1, 1, T, 0);
    for (int t = 0; t < T; t++) att[(size_t)t * T] = t < 64;
    double a_early = sink_score(att, 1, 1, T, 0);
    check(a_late == 0 && fabs(a_early - 1) < 1e-12, "sink score averages the first min(64, T) queries (%.2f, %.2f)", a_late, a_early);
    free(att);
}

static void test_gradient_metrics(void) {
    // batch-aggregated: rows are summed before the norm. B 2, T 32, C 3.
    int B = 2, T = 32, C = 3;
    real *g = xcalloc((size_t)B * T * C, sizeof(real));
    for (int t = 0; t < T; t++) {
        double total = t == 0 ? 10 : 2; // |G_0| = 10, |G_t| = 2: R_gs = 5
        g[((size_t)0 * T + t) * C + 1] = (real)(0.25 * total);
        g[((size_t)1 * T + t) * C + 1] = (real)(0.75 * total);
    }
    g[((size_t)0 * T + 5) * C + 2] = 7; // rows that cancel: no aggregated gradient at t = 5, axis 2
    g[((size_t)1 * T + 5) * C + 2] = -7;
    double G[32];
    aggregated_norms(G, g, NULL, B, T, 1, C, 32);
    double r = r_gs(G, 32);
    check(fabs(G[0] - 10) < 1e-6 && fabs(G[5] - 2) < 1e-6 && fabs(r - 5) < 1e-6,
          "R_gs from batch-aggregated norms: |G_0| 10, |G_t| 2 -> %.4f (opposite rows cancel: |G_5| = %.3f)", r, G[5]);
    double x[16];
    for (int t = 0; t < 16; t++) x[t] = t == 0 ? 12 : 3;
    check(fabs(tok0_ratio(x, 16) - 4) < 1e-12 && fabs(median((double[]){3, 1, 2, 9}, 4) - 2.5) < 1e-12,
          "token-0/rest ratio (12 vs 3 -> 4) and median of layers");
    free(g);

    // Bloat, Compress, Change on a layer whose gradients are set by hand (B 1, T 2, C 2)
    Model m;
    Config cfg = {5, 2, 1, 1, 1, 2, 2, VSCALE_OFF, 4, ROPE_THETA_DEFAULT, RMSNORM_EPS_DEFAULT};
    model_build(&m, &cfg);
    model_alloc_acts(&m, 1, 2);
    ActTensors *ga = &m.grads_acts;
    real dh_out[2] = {1, 0}, dh_half[2] = {3, 0}, dh_in[2] = {3, 4}, dx1[2] = {0, 2}, dx2[2] = {0, 6};
    for (int t = 0; t < 2; t++) {
        memcpy(ga->res + 2 * 2 + 2 * t, dh_out, sizeof(dh_out)); // res[1] = h_out of layer 0
        memcpy(ga->res + 2 * t, dh_in, sizeof(dh_in));
        memcpy(ga->h_half + 2 * t, dh_half, sizeof(dh_half));
        memcpy(ga->ln1 + 2 * t, dx1, sizeof(dx1));
        memcpy(ga->ln2 + 2 * t, dx2, sizeof(dx2));
    }
    Probe pr;
    probe_alloc(&pr, &cfg, 2);
    probe_measure(&pr, &m, 1, 2);
    double *q[NUM_PQ];
    for (int k = 0; k < NUM_PQ; k++) q[k] = pr.pq[k];
    check(fabs(q[PQ_ATTN_BLOAT][0] - 2.0 / 3) < 1e-9 && fabs(q[PQ_ATTN_COMPRESS][0] - 2) < 1e-9 &&
              fabs(q[PQ_ATTN_CHANGE][0] - 5.0 / 3) < 1e-9,
          "attention branch: Bloat |dx~|/|dr| = %.4f (2/3), Compress |dh-dh_half|/|dx~| = %.4f (2), Change |dh|/|dh_half| = %.4f (5/3)",
          q[PQ_ATTN_BLOAT][0], q[PQ_ATTN_COMPRESS][0], q[PQ_ATTN_CHANGE][0]);
    check(fabs(q[PQ_MLP_BLOAT][1] - 6) < 1e-9 && fabs(q[PQ_MLP_COMPRESS][1] - 1.0 / 3) < 1e-9 && fabs(q[PQ_MLP_CHANGE][1] - 3) < 1e-9,
          "MLP branch: Bloat %.4f (6), Compress %.4f (1/3), Change %.4f (3)", q[PQ_MLP_BLOAT][1], q[PQ_MLP_COMPRESS][1],
          q[PQ_MLP_CHANGE][1]);
    check(pr.rgs_n == 2 && fabs(pr.R_gs[0] - 1) < 1e-9, "T < 32: R_gs uses positions 1..T-1 (here %d position)", pr.rgs_n - 1);
    probe_free(&pr);
    model_free(&m);
}

// the paper's exact identities, from the code's own activations and gradients
static void test_identities(int n_kv_head, int vscale) {
    Model m;
    int B = 2, T = 9;
    tiny_model(&m, n_kv_head, vscale, B, T);
    model_forward_backward(&m, B, T);
    const Config *c = &m.cfg;
    int C = c->d_model, H = c->n_head, Hkv = c->n_kv_head, D = C / H, KV = Hkv * D, group = H / Hkv;
    double scale = 1.0 / sqrt((double)D), err_v = 0, err_k = 0, mag_v = 0, mag_k = 0, dq0 = 0, rowsum = 0;
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
                                double a = s.att[(((size_t)b * H + h) * T + t) * T + j];
                                const real *gt = g.atty + ((size_t)b * T + t) * C + h * D;
                                const real *yt = s.atty + ((size_t)b * T + t) * C + h * D;
                                const real *vs = s.vhat + ((size_t)b * T + j) * KV + hk * D;
                                double beta = 0;
                                for (int e = 0; e < D; e++) beta += gt[e] * (vs[e] - yt[e]);
                                want_v += a * gt[i];
                                want_k += a * beta * s.q[((size_t)b * T + t) * C + h * D + i] * scale;
                            }
                        size_t at = ((size_t)b * T + j) * KV + hk * D + i;
                        err_v = fmax(err_v, fabs(g.vhat[at] - want_v)); mag_v = fmax(mag_v, fabs(want_v));
                        err_k = fmax(err_k, fabs(g.k[at] - want_k)); mag_k = fmax(mag_k, fabs(want_k));
                    }
        for (int b = 0; b < B; b++)
            for (int i = 0; i < C; i++) dq0 = fmax(dq0, fabs(g.q[(size_t)b * T * C + i])); // t = 0
        // each row of the logit gradient sums to 0: on this model's da = dy_t . v_j, through
        // softmax_backward_row in place, as attention_backward calls it in training
        real row[16];
        for (int b = 0; b < B; b++)
            for (int h = 0; h < H; h++)
                for (int t = 0; t < T; t++) {
                    const real *a = s.att + (((size_t)b * H + h) * T + t) * T;
                    for (int j = 0; j <= t; j++) {
                        row[j] = 0;
                        for (int e = 0; e < D; e++)
                            row[j] += g.atty[((size_t)b * T + t) * C + h * D + e] * s.vhat[((size_t)b * T + j) * KV + (h / group) * D + e];
                    }
                    softmax_backward_row(row, a, row, t + 1, (real)scale);
                    double sum = 0, mag = 0;
                    for (int j = 0; j <= t; j++) { sum += row[j]; mag += fabs(row[j]); }
                    rowsum = fmax(rowsum, fabs(sum) / (mag + 1e-300));
                }
    }
    // and the output softmax's: the logits' gradient that training's cross-entropy backward left in place
    double xrow = 0;
    for (int n = 0; n < B * T; n++) {
        double sum = 0, mag = 0;
        for (int i = 0; i < c->vocab_size; i++) { real d = m.acts.logits[(size_t)n * c->vocab_size + i]; sum += d; mag += fabs(d); }
        xrow = fmax(xrow, fabs(sum) / (mag + 1e-300));
    }
    double tol = sizeof(real) == 8 ? 1e-12 : 1e-5;
    check(err_v <= tol * mag_v, "dV = A^T dY for every head (H %d, Hkv %d, vscale %s): max error %.1e of %.1e", H, Hkv,
          VSCALE_NAMES[vscale], err_v, mag_v);
    check(err_k <= tol * mag_k * 10, "key gradient dk_s = sum_t a_ts <g_t, v_s - y_t> q_t / sqrt(D): max error %.1e of %.1e",
          err_k, mag_k);
    check(dq0 == 0, "query path: dq_0 = 0 exactly (max |dq_0| = %g)", dq0);
    check(rowsum < tol, "each row of the attention logit gradient sums to 0 (worst |sum|/sum|.| = %.1e)", rowsum);
    check(xrow < tol, "each row of the output logit gradient (p - onehot)/(B T) sums to 0 (worst |sum|/sum|.| = %.1e)", xrow);
    model_free(&m);
}

static void test_rmsnorm_jacobian(void) {
    // ||J^T u|| <= max|g| / rms(x) ||u|| for random upstream u, on rows of very different norms
    int N = 50, C = 12;
    real *x = rand_buf((size_t)N * C, 1), *g = rand_buf(C, 1), *y = rand_buf((size_t)N * C, 0), *rs = rand_buf(N, 0);
    for (int n = 0; n < N; n++)
        for (int i = 0; i < C; i++) x[(size_t)n * C + i] *= (real)pow(10.0, (n % 5) - 2); // rms from 0.01 to 100
    rmsnorm_forward(y, rs, x, g, N, C, RMSNORM_EPS_DEFAULT);
    double gmax = 0, worst = 0;
    for (int i = 0; i < C; i++) gmax = fmax(gmax, fabs(g[i]));
    // J^T u is what rmsnorm_backward adds to a gradient already there (random, as a residual's)
    real *u = xcalloc(C, sizeof(real)), *dx = xcalloc(C, sizeof(real)), *dx0 = xcalloc(C, sizeof(real)), dg[12];
    fill_normal(dg, C, 1);
    for (int n = 0; n < N; n++)
        for (int trial = 0; trial < 20; trial++) {
            double rms = sqrt(dot(x + (size_t)n * C, x + (size_t)n * C, C) / C);
            fill_normal(u, C, 1);
            fill_normal(dx, C, 1 / rms); // of the size of J^T u, so float rounding stays below the bound's margin
            memcpy(dx0, dx, C * sizeof(real));
            rmsnorm_backward(dx, dg, u, x + (size_t)n * C, g, rs + n, 1, C);
            added(dx, dx0, C);
            double ratio = sqrt(dot(dx0, dx0, C)) / sqrt(dot(u, u, C)) / (gmax / rms);
            worst = fmax(worst, ratio);
        }
    check(worst <= 1 + 1e-6, "RMSNorm Jacobian norm <= max|g|/rms(x), J^T u added to a non-zero gradient (worst ratio to the bound %.4f)",
          worst);
    free(x); free(g); free(y); free(rs); free(u); free(dx); free(dx0);
}

static void test_vscale_jacobian(void) {
    // J = phi I + 2c/(r+c)^2 v v^T: eigenvalue r/(r+c) orthogonal to v, (r^2+3cr)/(r+c)^2 along v,
    // whose maximum over r is 9/8 at r = 3c. J is applied through vscale_backward (J symmetric).
    int D = 4, d_model = 8;
    real theta = 0, c = vscale_c(d_model, D, theta, VSCALE_FIXED);
    double worst = 0, best_lambda = 0, best_r = 0;
    for (int k = -20; k <= 20; k++) {
        double r = 3 * c * pow(2.0, k / 4.0);
        real v[4] = {1, 2, -1, 0.5}, u[4] = {2, -1, 0, 0}, Jv[4] = {0}, Ju[4] = {0}, dth = 0; // u . v = 0
        double vn = sqrt(dot(v, v, 4));
        for (int i = 0; i < 4; i++) v[i] = (real)(v[i] / vn * sqrt(r));
        vscale_backward(Jv, &dth, v, v, &theta, VSCALE_FIXED, VSCALE_PATH_BOTH, d_model, 1, 1, D);
        vscale_backward(Ju, &dth, u, v, &theta, VSCALE_FIXED, VSCALE_PATH_BOTH, d_model, 1, 1, D);
        double lam_par = (r * r + 3 * c * r) / ((r + c) * (r + c)), lam_perp = r / (r + c);
        for (int i = 0; i < 4; i++) {
            worst = fmax(worst, fabs(Jv[i] - lam_par * v[i]) / sqrt(r));
            worst = fmax(worst, fabs(Ju[i] - lam_perp * u[i]));
        }
        double measured = dot(Jv, v, 4) / dot(v, v, 4);
        if (measured > best_lambda) { best_lambda = measured; best_r = r; }
    }
    double tol = sizeof(real) == 8 ? 1e-12 : 1e-5;
    real c1 = vscale_c(128, 32, 0, VSCALE_FIXED), c2 = vscale_c(128, 32, (real)log(2.0), VSCALE_FIXED);
    check(fabs(c1 / (128 * 32 * 0.0004) - 1) < tol && fabs(c2 / c1 - 2) < tol,
          "V-scale c = d_model * d_head * 0.02^2 * lambda, lambda = exp(theta): c = %.4f, and x2 at theta = log 2", c1);
    check(worst < tol, "V-scale Jacobian: eigenvalues r/(r+c) orthogonal to v and (r^2+3cr)/(r+c)^2 along v (error %.1e)", worst);
    check(fabs(best_lambda - 9.0 / 8) < tol && fabs(best_r / (3 * c) - 1) < 1e-9,
          "V-scale Jacobian's largest eigenvalue is 9/8 = %.6f, at r = 3c (found at r/c = %.3f)", best_lambda, best_r / c);
}

// The causal experiment's interventions are not gradients of the loss, so finite differences
// cannot check them: each is pinned to its formula, and its forward pass to the run it must equal.
static void test_vscale_paths(void) {
    int B = 5, NKV = 2, D = 4, d_model = 8;
    size_t n = (size_t)B * NKV * D;
    real *v = rand_buf(n, 0.06), *theta = rand_buf(NKV, 0.5), *dvhat = rand_buf(n, 1);
    real *y[3], *phi[3], *dv[3], *dth[3], *dv0, *dth0;
    real *pre = prefill(n, &dv0), *pth = prefill(NKV, &dth0);
    for (int path = 0; path < 3; path++) {
        y[path] = rand_buf(n, 1); phi[path] = rand_buf((size_t)B * NKV, 1); // garbage in: overwritten
        vscale_forward(y[path], phi[path], v, theta, VSCALE_LEARNED, path, d_model, B, NKV, D);
        dv[path] = xcalloc(n, sizeof(real)); dth[path] = xcalloc(NKV, sizeof(real));
        memcpy(dv[path], pre, n * sizeof(real)); memcpy(dth[path], pth, NKV * sizeof(real));
        vscale_backward(dv[path], dth[path], dvhat, v, theta, VSCALE_LEARNED, path, d_model, B, NKV, D);
    }
    int fwd_same = !memcmp(y[VSCALE_PATH_FORWARD], y[VSCALE_PATH_BOTH], n * sizeof(real)) &&
                   !memcmp(phi[VSCALE_PATH_FORWARD], phi[VSCALE_PATH_BOTH], B * NKV * sizeof(real));
    int bwd_plain = !memcmp(y[VSCALE_PATH_BACKWARD], v, n * sizeof(real));
    for (int i = 0; i < B * NKV; i++) bwd_plain &= phi[VSCALE_PATH_BACKWARD][i] == 1;
    check(fwd_same && bwd_plain, "--vscale-path: forward's v_hat is V-scale's (bit-identical), backward's is v itself (phi 1)");
    // forward: dv = dv_before + dvhat exactly (J replaced by I); theta's gradient as in both
    int ident = 1, theta_both = 1, jac_same = 1, theta_none = 1;
    for (size_t i = 0; i < n; i++) ident &= dv[VSCALE_PATH_FORWARD][i] == dv0[i] + dvhat[i];
    for (int h = 0; h < NKV; h++) theta_both &= dth[VSCALE_PATH_FORWARD][h] == dth[VSCALE_PATH_BOTH][h];
    // backward: dv = J(v) dvhat, the same numbers as both's (J taken at v in both); theta untouched
    for (size_t i = 0; i < n; i++) jac_same &= dv[VSCALE_PATH_BACKWARD][i] == dv[VSCALE_PATH_BOTH][i];
    for (int h = 0; h < NKV; h++) theta_none &= dth[VSCALE_PATH_BACKWARD][h] == dth0[h];
    int theta_moved = dth[VSCALE_PATH_BOTH][0] != dth0[0];
    check(ident && theta_both && theta_moved, "--vscale-path forward backward: dv += dvhat exactly, theta's gradient as V-scale's");
    check(jac_same && theta_none, "--vscale-path backward backward: dv += J(v) dvhat (as V-scale's), theta gets no gradient");
    for (int path = 0; path < 3; path++) { free(y[path]); free(phi[path]); free(dv[path]); free(dth[path]); }
    free(v); free(theta); free(dvhat); free(pre); free(pth); free(dv0); free(dth0);
}

static void test_sink_grad_unit(void) {
    int B = 3, T = 4, KV = 6;
    size_t n = (size_t)B * T * KV;
    real *g = rand_buf(n, 1), *g0 = xcalloc(n, sizeof(real));
    memcpy(g0, g, n * sizeof(real));
    sink_grad_backward(g, (real)0.3, B, T, KV);
    int ok = 1;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < KV; i++) {
                size_t j = ((size_t)b * T + t) * KV + i;
                ok &= g[j] == (t == 0 ? (real)0.3 * g0[j] : g0[j]);
            }
    memcpy(g, g0, n * sizeof(real));
    sink_grad_backward(g, 1, B, T, KV);
    ok &= !memcmp(g, g0, n * sizeof(real));
    check(ok, "--sink-grad G: position 0's value gradient times G in every row and kv head, the rest untouched (G 1: no-op)");
    free(g); free(g0);
}

// whole model: each arm's forward pass (loss and every activation) is bit-identical to the run
// it must equal, and its backward differs only where the intervention acts
static void model_pair(Model *a, Model *b, int vs_a, int vs_b, int B, int T) {
    tiny_model(a, 2, vs_a, B, T);
    tiny_model(b, 2, vs_b, B, T);
    memcpy(b->params_memory, a->params_memory, a->num_parameters * sizeof(real)); // theta too
}
static int acts_equal(const Model *a, const Model *b) {
    return !memcmp(a->acts_memory, b->acts_memory, a->num_acts * sizeof(real));
}
static void test_interventions_model(void) {
    int B = 3, T = 7;
    Model a, b;
    // vscale-fwd vs V-scale: same forward
    model_pair(&a, &b, VSCALE_FIXED, VSCALE_FIXED, B, T);
    b.vscale_path = VSCALE_PATH_FORWARD;
    real la = model_forward_backward(&a, B, T), lb = model_forward_backward(&b, B, T);
    int f1 = la == lb && acts_equal(&a, &b);
    model_free(&a); model_free(&b);
    // vscale-bwd vs the baseline (V-scale off): same forward
    model_pair(&a, &b, VSCALE_OFF, VSCALE_FIXED, B, T);
    b.vscale_path = VSCALE_PATH_BACKWARD;
    la = model_forward_backward(&a, B, T); lb = model_forward_backward(&b, B, T);
    int f2 = la == lb && acts_equal(&a, &b);
    // and its backward is V-scale's Jacobian at v: the last layer's dv = J(v) dvhat, dvhat the baseline's
    const Config *c = &a.cfg;
    int L = c->n_layer, Hkv = c->n_kv_head, D = c->d_model / c->n_head, KV = Hkv * D, N = B * T;
    LayerActs sa = layer_acts(&a.grads_acts, &a, L - 1), sb = layer_acts(&b.grads_acts, &b, L - 1);
    LayerActs xa = layer_acts(&a.acts, &a, L - 1);
    LayerParams pb = layer_params(&b.params, c, L - 1);
    real *want = xcalloc((size_t)N * KV, sizeof(real)), dth = 0;
    (void)dth;
    real *dth_scratch = xcalloc(Hkv, sizeof(real));
    vscale_backward(want, dth_scratch, sa.vhat, xa.v, pb.theta, VSCALE_FIXED, VSCALE_PATH_BOTH, c->d_model, N, Hkv, D);
    int b2 = !memcmp(sb.vhat, sa.vhat, (size_t)N * KV * sizeof(real)) && !memcmp(sb.v, want, (size_t)N * KV * sizeof(real));
    check(f1 && f2 && b2, "--vscale-path: forward's forward pass is V-scale's, backward's is the baseline's (loss and all "
                          "activations bit-identical); backward's last-layer dv = J(v) dvhat");
    free(want); free(dth_scratch);
    model_free(&a); model_free(&b);
    // sinkcut vs the baseline: same forward; in the last layer the value gradient differs only at position 0 (times G),
    // the key and query gradients not at all; the loss's own gradient reaches Wq, Wk unchanged there
    model_pair(&a, &b, VSCALE_OFF, VSCALE_OFF, B, T);
    b.sink_grad = 0;
    la = model_forward_backward(&a, B, T); lb = model_forward_backward(&b, B, T);
    int f3 = la == lb && acts_equal(&a, &b);
    sa = layer_acts(&a.grads_acts, &a, L - 1); sb = layer_acts(&b.grads_acts, &b, L - 1);
    int v_ok = 1, v0_nonzero = 0;
    for (int bb = 0; bb < B; bb++)
        for (int t = 0; t < T; t++)
            for (int i = 0; i < KV; i++) {
                size_t j = ((size_t)bb * T + t) * KV + i;
                v_ok &= t == 0 ? sb.vhat[j] == 0 && sb.v[j] == 0 : sb.vhat[j] == sa.vhat[j];
                v0_nonzero |= t == 0 && sa.vhat[j] != 0;
            }
    int kq_same = !memcmp(sa.k, sb.k, (size_t)N * KV * sizeof(real)) && !memcmp(sa.q, sb.q, (size_t)N * c->d_model * sizeof(real));
    check(f3 && v_ok && v0_nonzero && kq_same, "--sink-grad 0: forward bit-identical to the baseline; last layer: position 0's "
                                               "value gradient 0 (the baseline's is not), every other one and dq, dk unchanged");
    model_free(&a); model_free(&b);
}

static void test_probe_is_read_only(void) {
    char p[512], err[1024];
    snprintf(p, sizeof(p), "%s/probe_tok.bin", tmpdir);
    uint16_t tok[400];
    for (int i = 0; i < 400; i++) tok[i] = (uint16_t)((i * 7 + i / 5) % 37);
    write_tokens(p, DATA_MAGIC, 1, 400, tok, 400);
    DataLoader dl;
    dataloader_open(&dl, p, 2, 9, 37, err, sizeof(err));
    Model m;
    tiny_model(&m, 2, VSCALE_LEARNED, 2, 9);
    AdamW o = {0, 0.9, 0.95, 1e-8, 0.1, 0.1, 0.1, -1};
    for (int s = 0; s < 2; s++) { // give the optimizer a state worth protecting
        dataloader_batch(&dl, s, m.inputs, m.targets, FIRST_ANY, 36);
        model_forward_backward(&m, 2, 9);
        model_update(&m, &o, 1e-3);
    }
    size_t bytes = m.num_parameters * sizeof(real);
    real *before = xcalloc(3 * m.num_parameters, sizeof(real));
    memcpy(before, m.params_memory, bytes);
    memcpy(before + m.num_parameters, m.m_memory, bytes);
    memcpy(before + 2 * m.num_parameters, m.v_memory, bytes);
    int t_before = m.adam_t;
    Probe pr;
    probe_alloc(&pr, &m.cfg, 9);
    probe_run(&pr, &m, &dl, FIRST_ANY, 36);
    int same = !memcmp(before, m.params_memory, bytes) && !memcmp(before + m.num_parameters, m.m_memory, bytes) &&
               !memcmp(before + 2 * m.num_parameters, m.v_memory, bytes) && t_before == m.adam_t;
    check(same, "a probe leaves parameters and optimizer state bit-identical");

    // the JSON line: every documented key, no NaN literal, and each key documented in the README
    StrBuf line = {0};
    int bad = probe_json(&line, &pr, &m.cfg, 7, 3.5, NAN, -1, 1.0, FIRST_ANY);
    const char *keys[] = {"step", "train_loss", "val_loss", "val_loss_step", "probe_loss", "probe_ms", "L", "H", "Hkv",
                          "positions", "vscale", "vscale_path", "sink_grad", "first_token", "rgs_positions", "rgs_short_T", "alpha", "sink_rate", "M0",
                          "S0", "R_gs", "R_gs_median", "grad_q_mean", "grad_k_mean", "grad_v_mean", "ratio_h_out",
                          "ratio_r_mlp", "ratio_r_attn", "ratio_v", "ratio_grad_v", "dv_dk_0", "vscale_lambda",
                          "vscale_phi0", "vscale_phi_rest"};
    int nkeys = (int)(sizeof(keys) / sizeof(keys[0])), missing = 0, undocumented = 0;
    size_t rn;
    unsigned char *readme = read_file("README.md", &rn, err, sizeof(err));
    char key[64], tick[70];
    for (int k = 0; k < nkeys + NUM_PQ; k++) {
        snprintf(key, sizeof(key), "\"%s\":", k < nkeys ? keys[k] : PQ_NAMES[k - nkeys]);
        snprintf(tick, sizeof(tick), "`%s`", k < nkeys ? keys[k] : PQ_NAMES[k - nkeys]);
        if (!strstr(line.s, key)) { missing++; printf("     missing key %s\n", key); }
        if (!readme || !strstr((char *)readme, tick)) { undocumented++; printf("     README does not document %s\n", tick); }
    }
    int has_nan = strstr(line.s, "nan") || strstr(line.s, "inf");
    check(!missing && !undocumented && !has_nan && bad == 0 && strstr(line.s, "\"val_loss\": null"),
          "probe JSON has all %d keys, all documented in README.md, no NaN literal (absent val loss -> null)", nkeys + NUM_PQ);
    free(readme);
    pr.R_gs[0] = NAN;
    StrBuf l2 = {0};
    int bad2 = probe_json(&l2, &pr, &m.cfg, 7, 3.5, 1.0, 0, 1.0, FIRST_ANY);
    check(bad2 > 0 && strstr(l2.s, "\"R_gs\": [null"), "a non-finite measurement is written as null and counted (%d)", bad2);
    free(line.s); free(l2.s); free(before);
    probe_free(&pr);
    model_free(&m);
    dataloader_free(&dl);
}

// the summaries (stdout line, JSON ratio_* arrays) cover every layer, also beyond 64
static void test_probe_summary_many_layers(void) {
    Config cfg = {37, 8, 70, 1, 1, 8, 32, VSCALE_OFF, 36, ROPE_THETA_DEFAULT, RMSNORM_EPS_DEFAULT};
    Probe pr;
    probe_alloc(&pr, &cfg, 32);
    int L = pr.L, P = pr.P;
    for (int l = 0; l < L; l++)
        for (int t = 0; t < P; t++) {
            size_t i = (size_t)l * P + t;
            for (int q = 0; q < NUM_PQ; q++) pr.pq[q][i] = 1;
            if (t == 0 && l == 69) pr.pq[PQ_NORM_H_OUT][i] = 9; // token 0 / rest: 9 in the last layer
            if (t == 0 && l == 67) pr.pq[PQ_NORM_R_MLP][i] = 5;
        }
    pr.sink_rate[69] = 70; // mean over the 70 layers: 1
    char path[600], err[256];
    snprintf(path, sizeof(path), "%s/probe_line.txt", tmpdir);
    FILE *f = fopen(path, "w");
    probe_print(&pr, 3, 1.0, f);
    fclose(f);
    size_t n;
    char *text = (char *)read_file(path, &n, err, sizeof(err));
    int line_ok = text && strstr(text, "| sink 1.00 |") && strstr(text, "h_out tok0/rest max 9.00 (L69)") &&
                  strstr(text, "mlp tok0/rest max 5.00 (L67)");
    StrBuf js = {0};
    probe_json(&js, &pr, &cfg, 3, 1.0, 1.0, 0, 1.0, FIRST_ANY);
    int entries = 0;
    const char *arr = strstr(js.s, "\"ratio_h_out\": [");
    if (arr) for (const char *c = arr; *c && *c != ']'; c++) entries += *c == ',' || *c == '[';
    int json_ok = entries == 70 && strstr(js.s, "9]") != NULL;
    check(line_ok && json_ok, "probe summary of a 70-layer model covers all 70 layers (stdout: %.*s; ratio_h_out has %d entries)",
          text ? (int)strcspn(text, "\n") : 0, text ? text : "", entries);
    free(text); free(js.s);
    probe_free(&pr);
}

// ----------------------------------------------------------------------------
// bad input, one case at a time: every reader refuses with a one-line reason naming the file

// err must be one line that names the file and says `what`
static int names(const char *err, const char *file, const char *what) {
    return strstr(err, file) && strstr(err, what) && !strchr(err, '\n');
}

static void test_bad_token_files(void) {
    char p[512], err[1024];
    snprintf(p, sizeof(p), "%s/tok.bin", tmpdir);
    uint16_t tok[50] = {0};
    DataLoader dl;
    write_tokens(p, DATA_MAGIC, 1, 0, tok, 0);
    int r1 = dataloader_open(&dl, p, 1, 1, 13, err, sizeof(err));
    check(r1 != 0 && names(err, "tok.bin", "at least one"), "token file with zero tokens rejected: %s", err);
    write_tokens(p, DATA_MAGIC, 1, -5, tok, 0);
    int r2 = dataloader_open(&dl, p, 1, 1, 13, err, sizeof(err));
    check(r2 != 0 && names(err, "tok.bin", "-5 tokens"), "token file with a negative count rejected: %s", err);
    write_tokens(p, DATA_MAGIC, 1, 2147483647, tok, 50);
    int r3 = dataloader_open(&dl, p, 1, 1, 13, err, sizeof(err));
    check(r3 != 0 && names(err, "tok.bin", "2147483647 tokens"), "token file with a count of 2^31-1 rejected: %s", err);
    write_tokens(p, DATA_MAGIC, 1, 10, tok, 10);
    FILE *f = fopen(p, "ab");
    fputc(7, f); // an odd byte after the tokens
    fclose(f);
    int r4 = dataloader_open(&dl, p, 1, 1, 13, err, sizeof(err));
    check(r4 != 0 && names(err, "tok.bin", "bytes after the header"), "token file with a stray byte rejected: %s", err);
    write_bytes(p, "hello", 5);
    int r5 = dataloader_open(&dl, p, 1, 1, 13, err, sizeof(err));
    check(r5 != 0 && names(err, "tok.bin", "too short"), "5-byte token file rejected: %s", err);
    int r6 = dataloader_open(&dl, tmpdir, 1, 1, 13, err, sizeof(err));
    check(r6 != 0 && names(err, tmpdir, "not a regular file"), "a directory given as a token file rejected: %s", err);
}

// a tokenizer file: header h, then n entries "x", then merges
static void write_tokenizer(const char *path, int32_t magic, int32_t version, int32_t V, int32_t eot, int32_t M,
                            int entries, const int32_t *merges, int nmerge_ints) {
    FILE *f = fopen(path, "wb");
    int32_t h[HEADER_INTS] = {magic, version, V, eot, M};
    fwrite(h, 4, HEADER_INTS, f);
    for (int i = 0; i < entries; i++) { uint16_t len = 1; fwrite(&len, 2, 1, f); fputc('a' + i % 26, f); }
    fwrite(merges, 4, nmerge_ints, f);
    fclose(f);
}

static void test_bad_tokenizer_files(void) {
    char p[512], err[1024];
    snprintf(p, sizeof(p), "%s/bad.tk", tmpdir);
    Tokenizer tk;
    int32_t mg[4] = {0, 1, 2, 3};
    write_tokenizer(p, TOKENIZER_MAGIC, 1, 5, 4, 2, 5, mg, 4);
    int ok = tokenizer_load(&tk, p, err, sizeof(err)) == 0;
    check(ok && tk.vocab_size == 5, "a hand-written 5-token tokenizer file with 2 merges loads");
    if (ok) tokenizer_free(&tk);
    struct { int32_t magic, version, V, eot, M; int entries, nm; const char *what, *label; } cases[] = {
        {7, 1, 5, 4, 2, 5, 4, "bad magic", "bad magic"},
        {TOKENIZER_MAGIC, 9, 5, 4, 2, 5, 4, "version 9", "bad version"},
        {TOKENIZER_MAGIC, 1, 1, 0, 0, 1, 0, "vocab size 1", "vocab size 1"},
        {TOKENIZER_MAGIC, 1, 70000, 0, 0, 5, 0, "vocab size 70000", "vocab size above 65536"},
        {TOKENIZER_MAGIC, 1, 5, 5, 2, 5, 4, "eot id 5", "eot id outside the vocab"},
        {TOKENIZER_MAGIC, 1, 5, -1, 2, 5, 4, "eot id -1", "negative eot id"},
        {TOKENIZER_MAGIC, 1, 5, 4, -3, 5, 4, "negative merge count", "negative merge count"},
        {TOKENIZER_MAGIC, 1, 5, 4, 2147483647, 5, 4, "2147483647 merges", "merge count 2^31-1 (no int overflow)"},
        {TOKENIZER_MAGIC, 1, 5, 4, 3, 5, 4, "header says 3 merges", "fewer merges than the header says"},
        {TOKENIZER_MAGIC, 1, 9, 4, 0, 5, 0, "token 5", "a vocabulary cut short"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_tokenizer(p, cases[i].magic, cases[i].version, cases[i].V, cases[i].eot, cases[i].M, cases[i].entries, mg,
                        cases[i].nm);
        int r = tokenizer_load(&tk, p, err, sizeof(err));
        check(r != 0 && names(err, "bad.tk", cases[i].what) && !tk.offset, "tokenizer file with %s rejected: %s",
              cases[i].label, err);
    }
    int32_t far[4] = {0, 1, 2, 99};
    write_tokenizer(p, TOKENIZER_MAGIC, 1, 5, 4, 2, 5, far, 4);
    int r = tokenizer_load(&tk, p, err, sizeof(err));
    check(r != 0 && names(err, "bad.tk", "token 99"), "tokenizer file whose merge names token 99 rejected: %s", err);
}

// the header ints of a valid checkpoint of `m`, for editing
static void header_of(const Model *m, int32_t *h, int step) {
    const Config *c = &m->cfg;
    int32_t g[11] = {CKPT_MAGIC, 1, c->vocab_size, c->d_model, c->n_layer, c->n_head, c->n_kv_head, c->ffn_hidden,
                     c->max_seq_len, c->vscale, step};
    memset(h, 0, HEADER_INTS * 4);
    memcpy(h, g, sizeof(g));
}

static void test_bad_checkpoints(void) {
    char p[512], q[512], err[1024];
    snprintf(p, sizeof(p), "%s/ck.bin", tmpdir);
    snprintf(q, sizeof(q), "%s/ck.bin.opt", tmpdir);
    Model m, r;
    tiny_model(&m, 2, VSCALE_LEARNED, 1, 4);
    model_build(&r, &m.cfg);
    checkpoint_write(&m, p, 5, err, sizeof(err));
    size_t n;
    unsigned char *good = read_file(p, &n, err, sizeof(err));
    unsigned char *buf = xcalloc(n + 64, 1);
    Config c;
    int step;
    // each case edits one header int of a valid checkpoint
    struct { int index; int32_t value; const char *what, *label; } cases[] = {
        {1, 4, "version 4", "version 4"},
        {1, 0, "version 0", "version 0"},
        {16, 3, "V-scale path 3", "V-scale path 3"},
        {18, 0x7ff00000, "sink-grad", "a NaN sink-grad factor"},
        {12, (int32_t)0xfff80000, "rope_theta", "a NaN RoPE base"},
        {12, (int32_t)0xc0000000, "rope_theta", "a negative RoPE base"},
        {14, (int32_t)0xbff00000, "eps", "a negative RMSNorm eps"},
        {14, 0x7ff00000, "eps", "a NaN RMSNorm eps"},
        {15, 37, "end-of-text", "an eot id of V"},
        {15, -1, "end-of-text", "a negative eot id"},
        {10, -1, "negative step", "a negative step"},
        {3, 1 << 30, "width (-C)", "width 2^30"},
        {2, -37, "vocab size (-V)", "a negative vocab"},
        {2, INT32_MIN, "vocab size (-V)", "a vocab of INT_MIN (no overflow computing its eot id)"},
        {4, 100000, "layers (-L)", "100000 layers"},
        {8, 1 << 30, "sequence length", "max T 2^30"},
        {9, 3, "V-scale", "V-scale mode 3"},
        {7, 1000000, "truncated", "a larger F than the payload holds"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        memcpy(buf, good, n);
        memcpy(buf + 4 * cases[i].index, &cases[i].value, 4);
        write_bytes(p, buf, n);
        int rc = checkpoint_read_header(p, &c, &step, err, sizeof(err));
        check(rc != 0 && names(err, "ck.bin", cases[i].what), "checkpoint with %s rejected: %s", cases[i].label, err);
    }
    // shapes that are each in range but together overflow the int32 parameter count
    int32_t h[HEADER_INTS];
    header_of(&m, h, 0);
    h[2] = 65536; h[3] = 16384; h[4] = 1024; h[5] = 128; h[6] = 128; h[7] = 1048576;
    write_bytes(p, h, sizeof(h));
    int r1 = checkpoint_read_header(p, &c, &step, err, sizeof(err));
    check(r1 != 0 && names(err, "ck.bin", "2^31-1 parameters"), "checkpoint header with 2^40 parameters rejected before any allocation: %s", err);
    memcpy(buf, good, n);
    write_bytes(p, buf, n + 4);
    int r2 = checkpoint_read_header(p, &c, &step, err, sizeof(err));
    check(r2 != 0 && names(err, "ck.bin", "truncated or not"), "checkpoint with 4 extra bytes rejected: %s", err);
    write_bytes(p, buf, 100);
    int r3 = checkpoint_read_header(p, &c, &step, err, sizeof(err));
    check(r3 != 0 && names(err, "ck.bin", "too short"), "checkpoint shorter than a header rejected: %s", err);
    float nan = NAN;
    memcpy(buf + n - 4, &nan, 4); // the last entry of lm_head
    write_bytes(p, buf, n);
    real before = r.params_memory[0] = 42;
    int r4 = checkpoint_read(&r, p, &step, err, sizeof(err));
    check(r4 != 0 && names(err, "ck.bin", "lm_head holds a non-finite") && r.params_memory[0] == before,
          "checkpoint holding a NaN rejected, model left untouched: %s", err);
    Model other;
    tiny_model(&other, 4, VSCALE_LEARNED, 1, 4);
    write_bytes(p, good, n);
    int r5 = checkpoint_read(&other, p, &step, err, sizeof(err));
    check(r5 != 0 && names(err, "ck.bin", "does not match"), "checkpoint for another shape refused by a model: %s", err);
    model_free(&other);
    int r6 = checkpoint_read_header(tmpdir, &c, &step, err, sizeof(err));
    check(r6 != 0 && names(err, tmpdir, "not a regular file"), "a directory given as a checkpoint rejected: %s", err);

    // optimizer state: one edit at a time on a valid one; a refused file leaves the model as it was
    m.adam_t = 5;
    for (size_t i = 0; i < m.num_parameters; i++) { m.m_memory[i] = (real)(0.1 * i); m.v_memory[i] = (real)(0.01 * i); }
    optstate_write(&m, q, 5, err, sizeof(err));
    free(good); free(buf);
    good = read_file(q, &n, err, sizeof(err));
    buf = xcalloc(n, 1);
    r.adam_t = 99;
    int ok = optstate_read(&r, q, 5, err, sizeof(err)) == 0 && r.adam_t == 5 && r.v_memory[3] == (real)(float)(0.03);
    check(ok, "optimizer state reads back");
    struct { size_t offset; int32_t value; size_t len; const char *what, *label; } ocases[] = {
        {0, 1234, 0, "bad magic", "bad magic"},
        {4, 3, 0, "version 3", "version 3"},
        {16, 12, 0, "12 parameters", "another parameter count"},
        {16, -1, 0, "-1 parameters", "a negative parameter count"},
        {8, -4, 0, "AdamW step count -4 outside", "a negative AdamW step"},
        {8, 6, 0, "AdamW step count 6 outside", "an AdamW step count above the step"},
        {8, INT32_MAX, 0, "AdamW step count 2147483647 outside", "an AdamW step count of INT_MAX"},
        {0, OPT_MAGIC, 8, "truncated", "a truncated payload"},
        {HEADER_INTS * 4 + 8, 0x7fc00000, 0, "first moment 2 is not finite", "a NaN first moment"},
        {n - 4, (int32_t)0xbf800000, 0, "is negative", "a negative second moment"},
    };
    for (size_t i = 0; i < sizeof(ocases) / sizeof(ocases[0]); i++) {
        memcpy(buf, good, n);
        memcpy(buf + ocases[i].offset, &ocases[i].value, 4);
        write_bytes(q, buf, n - ocases[i].len);
        r.adam_t = 99;
        int rc = optstate_read(&r, q, 5, err, sizeof(err));
        check(rc != 0 && names(err, "ck.bin.opt", ocases[i].what) && r.adam_t == 99,
              "optimizer state with %s rejected, model untouched: %s", ocases[i].label, err);
    }
    free(good); free(buf);
    model_free(&m);
    model_free(&r);
}

// the limits on shapes, and the memory estimate that main compares with the machine's memory
static void test_limits(void) {
    Config ok = {65536, 1024, 4, 8, 8, 4096, 2048, VSCALE_OFF, 65535, ROPE_THETA_DEFAULT, RMSNORM_EPS_DEFAULT};
    Config big = {65536, 16384, 1024, 128, 128, 1048576, 65536, VSCALE_OFF, 65535, ROPE_THETA_DEFAULT, RMSNORM_EPS_DEFAULT};
    Config wide = {100, 1 << 30, 1, 1, 1, 1, 1, VSCALE_OFF, 99, ROPE_THETA_DEFAULT, RMSNORM_EPS_DEFAULT};
    const char *w1 = config_check(&ok), *w2 = config_check(&big), *w3 = config_check(&wide);
    check(!w1 && w2 && strstr(w2, "2^31-1") && w3 && strstr(w3, "-C"), "config limits: a 100M model passes; 2^40 parameters (%s) and width 2^30 (%s) do not",
          w2 ? w2 : "-", w3 ? w3 : "-");
    Config deep = ok;
    deep.n_layer = 1024;
    double b1 = model_bytes(&ok, 1, 16), b2 = model_bytes(&ok, 1000, 65536), b3 = model_bytes(&deep, 1000, 65536);
    check(b1 > 4.0 * 4 * config_num_parameters(&ok) && b1 < 1e10 && b2 > 1e14 && b3 > 100 * b2 && isfinite(b3),
          "model_bytes: %.3g GB for B 1 x T 16, %.3g GB for B 1000 x T 65536, %.3g GB with 1024 layers (no wrap-around)",
          b1 / 1e9, b2 / 1e9, b3 / 1e9);
    Model m;
    tiny_model(&m, 2, VSCALE_OFF, 3, 9);
    check(config_num_parameters(&m.cfg) == (double)m.num_parameters, "config_num_parameters agrees with the sizes table (%zu)",
          m.num_parameters);
    // the named layout: each block holds its tables' tensors back to back, in table order, each
    // exactly its size; an activation without a gradient is NULL in the gradient block (no alias)
    Slot pt[NUM_PARAM_TENSORS], at[NUM_ACT_TENSORS], gt[NUM_ACT_TENSORS];
    model_params(&m, pt);
    act_table(at, &m.acts, &m.cfg, m.B, m.T);
    act_table(gt, &m.grads_acts, &m.cfg, m.B, m.T);
    int tiled = 1, absent = 0, with_grad = 0;
    size_t off = 0, aoff = 0, goff = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; off += pt[i].size, i++) tiled &= *pt[i].at == m.params_memory + off;
    tiled &= off == m.num_parameters;
    for (int i = 0; i < NUM_ACT_TENSORS; aoff += at[i].size, i++) {
        tiled &= *at[i].at == m.acts_memory + aoff && at[i].size > 0;
        if (gt[i].kind == NO_GRAD) { tiled &= *gt[i].at == NULL; absent++; }
    }
    // the gradient block: the GRAD tensors (zeroed by model_backward) first, then the GRAD_STORED ones
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < NUM_ACT_TENSORS; i++)
            if (gt[i].kind == (pass == 0 ? GRAD : GRAD_STORED)) {
                tiled &= *gt[i].at == m.grads_acts_memory + goff;
                goff += gt[i].size;
                with_grad++;
            }
        if (pass == 0) tiled &= goff == m.num_zeroed_grad_acts;
    }
    tiled &= aoff == m.num_acts && goff == m.num_grad_acts && with_grad + absent == NUM_ACT_TENSORS;
    LayerActs g1 = layer_acts(&m.grads_acts, &m, 1);
    check(tiled && g1.ln1_rstd == NULL && g1.att == NULL && g1.r_mlp == NULL && g1.ln1 != NULL,
          "sizes tables: %d parameter and %d activation tensors tile their blocks; %d activations have a gradient, %d are NULL there",
          NUM_PARAM_TENSORS, NUM_ACT_TENSORS, with_grad, absent);
    model_free(&m);
}

// ----------------------------------------------------------------------------
// writes that a kill or a failure cannot leave half-done

static void test_safe_writes(void) {
    char p[512], blocker[600], err[1024];
    snprintf(p, sizeof(p), "%s/w.bin", tmpdir);
    snprintf(blocker, sizeof(blocker), "%s.tmp", p);
    int ok = write_file_atomic(p, "old", 3, err, sizeof(err)) == 0;
    mkdir(blocker, 0755); // PATH.tmp cannot be opened as a file: the write must fail and leave PATH
    int r1 = write_file_atomic(p, "new!", 4, err, sizeof(err));
    size_t n;
    unsigned char *got = read_file(p, &n, err + 512, 512);
    check(ok && r1 != 0 && got && n == 3 && !memcmp(got, "old", 3), "a failed atomic write leaves the old file: %s", err);
    free(got);
    rmdir(blocker);
    ok = write_file_atomic(p, "new!", 4, err, sizeof(err)) == 0;
    got = read_file(p, &n, err, sizeof(err));
    struct stat st;
    check(ok && n == 4 && !memcmp(got, "new!", 4) && stat(blocker, &st) != 0, "an atomic write replaces the file, no temp file left");
    free(got);

    // a checkpoint of non-finite parameters is never written over a good one
    snprintf(p, sizeof(p), "%s/m.bin", tmpdir);
    Model m;
    tiny_model(&m, 2, VSCALE_OFF, 1, 4);
    checkpoint_write(&m, p, 3, err, sizeof(err));
    unsigned char *before = read_file(p, &n, err, sizeof(err));
    m.params_memory[17] = (real)NAN;
    int r2 = checkpoint_write(&m, p, 4, err, sizeof(err));
    size_t n2;
    unsigned char *after = read_file(p, &n2, err + 512, 512);
    check(r2 != 0 && strstr(err, "not finite") && n2 == n && !memcmp(before, after, n),
          "checkpoint_write refuses a NaN parameter; the file on disk is unchanged: %s", err);
    free(before); free(after);
    m.params_memory[17] = 0;

    // checkpoint_save writes PATH and PATH.opt as a pair: when the second cannot be written,
    // neither file changes and no temp file is left
    char po[600], pot[600], pt[600];
    snprintf(po, sizeof(po), "%s.opt", p);
    snprintf(pot, sizeof(pot), "%s.opt.tmp", p);
    snprintf(pt, sizeof(pt), "%s.tmp", p);
    ok = checkpoint_save(&m, p, 3, err, sizeof(err)) == 0;
    unsigned char *ck0 = read_file(p, &n, err, sizeof(err)), *op0 = read_file(po, &n2, err, sizeof(err));
    m.params_memory[0] += 1;
    m.adam_t = 4;
    mkdir(pot, 0755);
    int r5 = checkpoint_save(&m, p, 4, err, sizeof(err));
    rmdir(pot);
    size_t n3, n4;
    unsigned char *ck1 = read_file(p, &n3, err + 512, 512), *op1 = read_file(po, &n4, err + 512, 512);
    check(ok && r5 != 0 && n3 == n && n4 == n2 && !memcmp(ck0, ck1, n) && !memcmp(op0, op1, n2) && stat(pt, &st) != 0,
          "checkpoint_save: a failure writing PATH.opt leaves both PATH and PATH.opt as they were: %s", err);
    free(ck0); free(ck1); free(op0); free(op1);
    int step4 = -1;
    Config c4;
    ok = checkpoint_save(&m, p, 4, err, sizeof(err)) == 0 && checkpoint_read_header(p, &c4, &step4, err, sizeof(err)) == 0;
    Model r;
    model_build(&r, &m.cfg);
    ok &= checkpoint_read(&r, p, &step4, err, sizeof(err)) == 0 && optstate_read(&r, po, 4, err, sizeof(err)) == 0;
    check(ok && step4 == 4 && r.adam_t == 4 && r.params_memory[0] == (real)(float)m.params_memory[0],
          "checkpoint_save then checkpoint_read + optstate_read: step 4, AdamW step 4, parameters back");
    model_free(&r);
    m.v_memory[3] = (real)INFINITY;
    int r3 = optstate_write(&m, p, 4, err, sizeof(err));
    check(r3 != 0 && strstr(err, "not finite"), "optstate_write refuses an infinite moment: %s", err);
    model_free(&m);

    // append_line: whole lines; a torn tail from an earlier kill is cut before the next line
    snprintf(p, sizeof(p), "%s/probes.jsonl", tmpdir);
    ok = append_line(p, "{\"step\": 0}", err, sizeof(err)) == 0 && append_line(p, "{\"step\": 1}\n", err, sizeof(err)) == 0;
    FILE *f = fopen(p, "ab");
    fputs("{\"step\": 2, \"sin", f); // what a kill in the middle of a write leaves
    fclose(f);
    ok &= append_line(p, "{\"step\": 2}", err, sizeof(err)) == 0;
    got = read_file(p, &n, err, sizeof(err));
    const char *want = "{\"step\": 0}\n{\"step\": 1}\n{\"step\": 2}\n";
    check(ok && got && n == strlen(want) && !memcmp(got, want, n), "append_line writes whole lines and cuts a torn tail");
    free(got);
    write_bytes(p, "no newline at all", 17);
    ok = append_line(p, "x", err, sizeof(err)) == 0;
    got = read_file(p, &n, err, sizeof(err));
    check(ok && n == 2 && !memcmp(got, "x\n", 2), "append_line on a file that is one torn line keeps only the new line");
    free(got);
    snprintf(p, sizeof(p), "%s/no/such/dir/p.jsonl", tmpdir);
    int r4 = append_line(p, "x", err, sizeof(err));
    check(r4 != 0 && strstr(err, "no/such/dir"), "append_line into a missing directory fails with a reason: %s", err);
}

// ----------------------------------------------------------------------------
// training end to end

// n training steps on the batch already in m (allocated for B x T), as main takes them (clip 1.0, lr 1e-3)
static void train_steps(Model *m, int B, int T, int n, const AdamW *o) {
    double loss, norm;
    size_t bad;
    (void)B; (void)T;
    for (int s = 0; s < n; s++) train_step(m, o, 1e-3, 1.0, &loss, &norm, &bad);
}

static void test_training(void) {
    // memorise one short sequence: the loss must fall from ~ln 37 to near zero
    Model m;
    Config cfg = {37, 32, 2, 4, 2, 64, 16, VSCALE_LEARNED, 36, ROPE_THETA_DEFAULT, RMSNORM_EPS_DEFAULT};
    model_build(&m, &cfg);
    model_alloc_acts(&m, 2, 16);
    model_init(&m, 1);
    for (int i = 0; i < 32; i++) { m.inputs[i] = (i * i + 3) % 37; m.targets[i] = (i * 5 + 1) % 37; }
    AdamW o = {0, 0.9, 0.95, 1e-8, 0.0, 0.0, 0.0, -1};
    double first = 0, last = 0;
    for (int s = 0; s < 150; s++) {
        double l = model_forward_backward(&m, 2, 16);
        if (s == 0) first = l;
        last = l;
        clip_grads(m.grads_memory, m.num_parameters, 1.0);
        model_update(&m, &o, lr_at(s, 150, 10, 1e-2, 1e-3));
    }
    check(first > 3.4 && last < 0.2, "training memorises a 32-token batch: loss %.3f -> %.4f", first, last);
    model_free(&m);

    // same seed, same steps -> bit-identical parameters
    real *p[2];
    for (int run = 0; run < 2; run++) {
        tiny_model(&m, 2, VSCALE_FIXED, 2, 8);
        train_steps(&m, 2, 8, 3, &o);
        p[run] = xcalloc(m.num_parameters, sizeof(real));
        memcpy(p[run], m.params_memory, m.num_parameters * sizeof(real));
        if (run == 1) check(memcmp(p[0], p[1], m.num_parameters * sizeof(real)) == 0, "three training steps are bit-identical run to run");
        model_free(&m);
    }
    free(p[0]); free(p[1]);

    // the parallel kernels give every output element to one thread, summed in a fixed order:
    // a few steps of a model whose matmuls span several row blocks and panels (N = 3 x 100
    // rows, V 300, C 64, F 200, GQA) give bit-identical parameters run to run and for any
    // number of threads
    Config cfg2 = {300, 64, 2, 4, 2, 200, 100, VSCALE_LEARNED, 299, ROPE_THETA_DEFAULT, RMSNORM_EPS_DEFAULT};
    int threads[4] = {2, 2, 1, 3}, ok = 1;
    real *ref = NULL;
    for (int run = 0; run < 4; run++) {
        int saved = set_threads(threads[run]);
        model_build(&m, &cfg2);
        model_alloc_acts(&m, 3, 100);
        model_init(&m, 5);
        for (int i = 0; i < 300; i++) { m.inputs[i] = (i * 7 + 1) % 300; m.targets[i] = (i * 13 + 5) % 300; }
        train_steps(&m, 3, 100, 3, &o);
        set_threads(saved);
        if (!ref) { ref = xcalloc(m.num_parameters, sizeof(real)); memcpy(ref, m.params_memory, m.num_parameters * sizeof(real)); }
        else ok &= memcmp(ref, m.params_memory, m.num_parameters * sizeof(real)) == 0;
        model_free(&m);
    }
#ifdef _OPENMP
    check(ok, "three training steps (C 64, V 300, N 300) are bit-identical run to run with 2 threads, and with 1 and 3 threads");
#else
    check(ok, "three training steps (C 64, V 300, N 300) are bit-identical run to run (built without OpenMP)");
#endif
    free(ref);

    // the training step allocates nothing once warm (activations, scratch and optimizer state
    // are allocated up front or on the first step): count xcalloc calls over three more steps
    model_build(&m, &cfg2);
    model_alloc_acts(&m, 3, 100);
    model_init(&m, 5);
    for (int i = 0; i < 300; i++) { m.inputs[i] = (i * 11 + 2) % 300; m.targets[i] = (i * 3 + 1) % 300; }
    train_steps(&m, 3, 100, 1, &o);
    size_t calls = xcalloc_calls;
    train_steps(&m, 3, 100, 3, &o);
    check(xcalloc_calls == calls && calls > 0, "three training steps after the first allocate nothing (%zu allocations before, %zu during)",
          calls, xcalloc_calls - calls);
    model_free(&m);

    // train_step stops at a NaN or infinity: a non-finite loss leaves the parameters untouched;
    // an update that makes a parameter non-finite (here an infinite lr) says which
    {
        tiny_model(&m, 2, VSCALE_OFF, 2, 8);
        double loss, norm;
        size_t bad = 0;
        real *before = xcalloc(m.num_parameters, sizeof(real));
        m.params.lm_head[0] = NAN;
        memcpy(before, m.params_memory, m.num_parameters * sizeof(real));
        int s1 = train_step(&m, &o, 1e-3, 1.0, &loss, &norm, &bad);
        int untouched = !memcmp(before, m.params_memory, m.num_parameters * sizeof(real)) && m.adam_t == 0;
        m.params.lm_head[0] = 0;
        int s2 = train_step(&m, &o, INFINITY, 1.0, &loss, &norm, &bad);
        check(s1 == STEP_NONFINITE_GRAD && untouched && s2 == STEP_NONFINITE_PARAM && bad < m.num_parameters &&
                  !isfinite(m.params_memory[bad]),
              "train_step: a NaN loss stops it before the update (%d), a non-finite update names parameter %zu (%d)", s1,
              bad, s2);
        free(before);
        model_free(&m);
    }

    // the documented RNG: splitmix64's published first outputs for seed 1234567
    Rng r;
    rng_seed(&r, 1234567);
    uint64_t u1 = rng_u64(&r), u2 = rng_u64(&r);
    check(u1 == 6457827717110365317ull && u2 == 3203168211198807973ull, "splitmix64 reference outputs for seed 1234567: %llu %llu",
          (unsigned long long)u1, (unsigned long long)u2);
}

// ----------------------------------------------------------------------------
// the command line, end to end: `test_gradsink --cli ./gradsink` runs the built binary on
// files it makes in a temp dir, and reads its exit code and stderr

static const char *cli_bin;
static char cli_err[4096]; // the last run's stderr, without its final newline
static int cli_one_line;   // whether that stderr was exactly one line

// runs "BIN args" with OMP_NUM_THREADS=2; returns the exit code, stderr in cli_err
static int run(const char *fmt, ...) {
    char args[3000], cmd[4096], ep[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(ep, sizeof(ep), "%s/stderr.txt", tmpdir);
    // under timeout: a run that hangs (a FIFO opened for reading, say) fails its check with 124
    snprintf(cmd, sizeof(cmd), "OMP_NUM_THREADS=2 timeout 120 %s %s >%s/stdout.txt 2>%s", cli_bin, args, tmpdir, ep);
    int st = system(cmd);
    size_t n = 0;
    char err[16];
    unsigned char *e = read_file(ep, &n, err, sizeof(err));
    snprintf(cli_err, sizeof(cli_err), "%.*s", e ? (int)n : 0, e ? (char *)e : "");
    free(e);
    size_t len = strlen(cli_err);
    cli_one_line = len > 0 && strchr(cli_err, '\n') == cli_err + len - 1;
    if (len > 0 && cli_err[len - 1] == '\n') cli_err[len - 1] = 0;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

// 1 when the last run's stdout contains `what`
// header field i of a checkpoint file (-1 when it cannot be read)
static int ckpt_header_int(const char *path, int i) {
    char err[300];
    size_t n = 0;
    unsigned char *buf = read_file(path, &n, err, sizeof(err));
    int v = -1;
    if (buf && n >= 256 * sizeof(int32_t)) { int32_t x; memcpy(&x, buf + i * sizeof(int32_t), sizeof(x)); v = x; }
    free(buf);
    return v;
}
static int stdout_has(const char *what) {
    char path[600], err[64];
    snprintf(path, sizeof(path), "%s/stdout.txt", tmpdir);
    size_t n = 0;
    unsigned char *buf = read_file(path, &n, err, sizeof(err)); // read_file ends the text with a 0
    int found = buf && strstr((char *)buf, what) != NULL;
    free(buf);
    return found;
}

// exit code 2 and exactly one line on stderr that contains `what`
static void expect_refusal(const char *label, const char *what, const char *fmt, ...) {
    char args[3000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    int rc = run("%s", args);
    check(rc == 2 && cli_one_line && strstr(cli_err, what), "cli %s: exit %d, %s", label, rc,
          cli_one_line ? cli_err : "stderr is not one line");
}

static void kill_and_resume(const char *model, const char *d);
// whether two runs in d/x and d/y left the same model.bin, model.bin.opt and log.txt, byte for byte
static int same_run_files(const char *d, const char *x, const char *y) {
    const char *files[3] = {"model.bin", "model.bin.opt", "log.txt"};
    char a[700], b[700];
    int same = 1;
    for (int i = 0; i < 3; i++) {
        snprintf(a, sizeof(a), "%s/%s/%s", d, x, files[i]);
        snprintf(b, sizeof(b), "%s/%s/%s", d, y, files[i]);
        same &= files_equal(a, b);
    }
    return same;
}
static void test_cli(void) {
    char err[256];
    char d[512], tok[600], tok7[600], big[600], bad[600], tkz[600], ck[600], out[600], file[600];
    snprintf(d, sizeof(d), "%s", tmpdir);
    snprintf(tok, sizeof(tok), "%s/train.bin", d);
    snprintf(tok7, sizeof(tok7), "%s/seven.bin", d);
    snprintf(big, sizeof(big), "%s/ids.bin", d);
    snprintf(bad, sizeof(bad), "%s/bad.bin", d);
    snprintf(tkz, sizeof(tkz), "%s/bad.tk", d);
    snprintf(ck, sizeof(ck), "%s/ck/model.bin", d);
    snprintf(out, sizeof(out), "%s/out", d);
    snprintf(file, sizeof(file), "%s/a_file", d);
    // 3000 tokens over a vocab of 29 with some structure to learn
    uint16_t t[3000];
    for (int i = 0; i < 3000; i++) t[i] = (uint16_t)((i * 7 + (i / 5) * 3) % 29);
    write_tokens(tok, DATA_MAGIC, 1, 3000, t, 3000);
    write_tokens(tok7, DATA_MAGIC, 1, 7, t, 7);
    t[100] = 29;
    write_tokens(big, DATA_MAGIC, 1, 3000, t, 3000);
    t[100] = 0;
    write_tokens(bad, 1234, 1, 3000, t, 3000);
    write_bytes(tkz, "not a tokenizer", 15);
    write_bytes(file, "x", 1);
    // a small model every run below shares: V 29, C 16, L 2, H 2, F 24
    char model[1200];
    snprintf(model, sizeof(model), "-i %s -j '' -V 29 -C 16 -L 2 -H 2 -F 24 -b 2 -t 8 -G 0", tok);

    // flags
    expect_refusal("unknown flag", "unknown flag --bogus", "%s --bogus 1", model);
    expect_refusal("flag without a value", "needs a value", "%s -n", model);
    expect_refusal("integer that does not parse", "--batch: 'abc' is not an integer", "%s -b abc", model);
    expect_refusal("integer out of int range", "is not an integer", "%s -L 99999999999", model);
    expect_refusal("number that does not parse", "--lr: '1e-3x' is not a number", "%s -l 1e-3x", model);
    expect_refusal("NaN learning rate", "--lr: 'nan' is not a number", "%s -l nan", model);
    expect_refusal("negative steps", "--steps", "%s -n -3", model);
    expect_refusal("T = 0", "--seq-len", "%s -t 0", model);
    expect_refusal("T above 65536", "--seq-len", "%s -t 100000", model);
    expect_refusal("B x T too large", "too large", "%s -b 100000 -t 10000", model);
    expect_refusal("heads not dividing width", "heads (-H) must divide the width (-C)", "%s -H 3", model);
    expect_refusal("kv heads not dividing heads", "kv heads (-K) must divide heads (-H)", "%s -H 4 -K 3", model);
    expect_refusal("odd head size", "even", "%s -C 18 -H 2", model);
    expect_refusal("absurd width", "width (-C)", "%s -C 1000000000", model);
    expect_refusal("negative layers", "layers (-L)", "%s -L -2", model);
    expect_refusal("vocab above 65536", "vocab size (-V)", "%s -V 70000", model);
    expect_refusal("2^40 parameters", "2^31-1 parameters", "%s -V 65536 -C 16384 -L 1024 -F 1048576", model);
    expect_refusal("a model that needs more memory than the machine", "this machine has", "%s -b 1000 -t 65536 -H 8", model);
    expect_refusal("unknown V-scale mode", "--vscale: unknown value 'maybe'", "%s -a maybe", model);
    expect_refusal("unknown rows mode", "--rows: unknown value 'shuffled'", "%s -R shuffled", model);
    expect_refusal("eot-masked with T 1 (no target left in the loss)", "needs --seq-len >= 2", "%s -f eot-masked -t 1", model);
    expect_refusal("--resume without a checkpoint", "need a checkpoint", "%s -r 1", model);
    expect_refusal("--resume 2", "--resume", "%s -r 2", model);
    expect_refusal("--sample absurd", "--sample", "%s -G 2000000000", model);
    expect_refusal("--stop-at negative", "--stop-at", "%s -S -1", model);
    {   // no reader opens a FIFO, a folder or an empty name before checking it is a regular file
        char fifo[700], fdir[700], tkdir[700];
        snprintf(fifo, sizeof(fifo), "%s/fifo", d);
        snprintf(fdir, sizeof(fdir), "%s/tkdir", d);
        snprintf(tkdir, sizeof(tkdir), "%s/tkdir/tokenizer.bin", d);
        mkfifo(fifo, 0644);
        mkdir(fdir, 0755);
        mkdir(tkdir, 0755);
        expect_refusal("FIFO as train file", "fifo is not a regular file", "%s -i %s", model, fifo);
        expect_refusal("FIFO as val file", "fifo is not a regular file", "%s -j %s", model, fifo);
        expect_refusal("FIFO as tokenizer", "fifo is not a regular file", "%s -z %s", model, fifo);
        expect_refusal("FIFO as checkpoint", "fifo is not a regular file", "%s -c %s", model, fifo);
        expect_refusal("folder as train file", "tkdir is not a regular file", "%s -i %s", model, fdir);
        expect_refusal("a folder named tokenizer.bin beside the train file", "tokenizer.bin is not a regular file",
                       "-i %s/train.bin -j '' -n 1 -G 0 -z %s", fdir, tkdir);
        expect_refusal("empty --train", "flag --train: an empty path", "%s -i ''", model);
        expect_refusal("empty --out", "flag --out: an empty path", "%s -o ''", model);
        char flog[700];
        snprintf(flog, sizeof(flog), "%s/flog", d);
        mkdir(flog, 0755);
        snprintf(fifo, sizeof(fifo), "%s/flog/log.txt", d);
        mkfifo(fifo, 0644);
        expect_refusal("FIFO as log.txt in the output folder", "log.txt is not a regular file", "%s -n 1 -o %s", model, flog);
    }
    expect_refusal("--vscale-path without V-scale", "--vscale-path forward: needs V-scale on", "%s -J forward", model);
    expect_refusal("unknown V-scale path", "--vscale-path: unknown value 'sideways'", "%s -a fixed --vscale-path sideways", model);
    expect_refusal("NaN sink-grad", "--sink-grad: 'nan' is not a number", "%s --sink-grad nan", model);
    {   // the interventions: recorded in the checkpoint, kept on resume, reported by a probe of it
        char ivd[700], ivc[800];
        snprintf(ivd, sizeof(ivd), "%s/iv", d);
        snprintf(ivc, sizeof(ivc), "%s/model.bin", ivd);
        int rc1 = run("%s -a fixed --vscale-path backward --sink-grad 0.5 -n 4 -S 2 -P 0 -o %s", model, ivd);
        int h16 = ckpt_header_int(ivc, 16), h18 = ckpt_header_int(ivc, 18); // G = 0.5: high word 0x3fe00000
        int rc2 = run("%s -c %s -r 1 -n 4 -P 0 -o %s", model, ivc, ivd);
        int kept = ckpt_header_int(ivc, 16) == 2 && ckpt_header_int(ivc, 18) == 0x3fe00000 && ckpt_header_int(ivc, 10) == 4;
        int rc3 = run("-c %s -p -j %s -b 2 -t 8 -o %s", ivc, tok, ivd);
        char pj[800];
        snprintf(pj, sizeof(pj), "%s/probes.jsonl", ivd);
        size_t pn;
        unsigned char *pb = read_file(pj, &pn, err, sizeof(err));
        int reported = pb && strstr((char *)pb, "\"vscale_path\": \"backward\", \"sink_grad\": 0.5,");
        free(pb);
        int rc4 = run("%s -c %s -J both -N 1 -n 1 -P 0 -o %s/iv2", model, ivc, d);
        char iv2[800];
        snprintf(iv2, sizeof(iv2), "%s/iv2/model.bin", d);
        int over = ckpt_header_int(iv2, 16) == 0 && ckpt_header_int(iv2, 18) == 0x3ff00000;
        check(rc1 == 0 && h16 == 2 && h18 == 0x3fe00000 && rc2 == 0 && kept && rc3 == 0 && reported && rc4 == 0 && over,
              "cli: --vscale-path backward --sink-grad 0.5 are written to the checkpoint, kept by a resumed run, reported by a probe "
              "of it, and replaced by flags given with -c (exits %d %d %d %d) %s", rc1, rc2, rc3, rc4, cli_err);
    }

    // files
    expect_refusal("missing train file", "cannot open /nonexistent/train.bin", "%s -i /nonexistent/train.bin", model);
    expect_refusal("missing train file without -V (no tokenizer to find either)", "cannot open /nonexistent/train.bin",
                   "-i /nonexistent/train.bin -j '' -n 1 -G 0");
    expect_refusal("train file with bad magic", "bad.bin: bad magic", "%s -i %s", model, bad);
    expect_refusal("train file holding id 29 >= vocab 29", "ids.bin: token 29 at position 100", "%s -i %s", model, big);
    expect_refusal("train file shorter than one batch (T larger than the data)", "seven.bin: 7 tokens is fewer", "%s -i %s", model, tok7);
    expect_refusal("a directory as the train file", "not a regular file", "%s -i %s", model, d);
    expect_refusal("val file given but missing", "cannot open /nonexistent/val.bin", "%s -j /nonexistent/val.bin", model);
    expect_refusal("val file shorter than one batch", "seven.bin: 7 tokens", "%s -j %s", model, tok7);
    expect_refusal("tokenizer file that is garbage", "bad.tk: too short", "%s -z %s", model, tkz);
    expect_refusal("tokenizer file missing", "cannot open /nonexistent/tok.bin", "%s -z /nonexistent/tok.bin", model);
    expect_refusal("output directory under a file", "cannot create output directory", "%s -n 1 -o %s/sub", model, file);
    expect_refusal("--eval-only without a checkpoint", "need a checkpoint", "%s -x 1", model);

    // checkpoints: make one at step 2, then feed it with flags that disagree
    int rc = run("%s -n 4 -S 2 -o %s/ck", model, d);
    check(rc == 0 && ckpt_header_int(ck, 10) == 2, "cli: a 2-step run (of 4) writes a checkpoint at step %d: exit %d %s",
          ckpt_header_int(ck, 10), rc, cli_err);
    expect_refusal("missing checkpoint", "cannot open /nonexistent/m.bin", "%s -c /nonexistent/m.bin", model);
    expect_refusal("checkpoint with conflicting width", "flag -C 32 disagrees with checkpoint", "%s -c %s -C 32 -H 2", model, ck);
    expect_refusal("checkpoint with conflicting V-scale", "flag -a fixed disagrees with checkpoint", "%s -c %s -a fixed", model, ck);
    // -K 0 means "as many kv heads as heads": it agrees with a checkpoint that has that, whatever -H defaults to
    rc = run("%s -c %s -K 0 -n 0", model, ck);
    check(rc == 0, "cli: -K 0 with a checkpoint of 2 heads and 2 kv heads is no conflict: exit %d %s", rc, cli_err);
    rc = run("%s -H 2 -K 1 -n 1 -o %s/gqa", model, d);
    char gqa[700];
    snprintf(gqa, sizeof(gqa), "%s/gqa/model.bin", d);
    check(rc == 0 && ckpt_header_int(gqa, 5) == 2 && ckpt_header_int(gqa, 6) == 1,
          "cli: a 1-step GQA run writes a checkpoint of %d heads and %d kv head: exit %d %s", ckpt_header_int(gqa, 5),
          ckpt_header_int(gqa, 6), rc, cli_err);
    expect_refusal("-K 0 with a GQA checkpoint", "-K 0 (kv heads = heads) disagrees with checkpoint", "%s -c %s -K 0", model, gqa);
    expect_refusal("-K 2 with a GQA checkpoint of 1 kv head", "flag -K 2 disagrees with checkpoint", "%s -c %s -K 2", model, gqa);
    // the benchmark left gradsink for dev/bench.c (make test runs it on a small model)
    expect_refusal("--bench, now dev/bench", "unknown flag --bench", "--bench 2");
    // resuming under another --steps works, with a note that the learning rates now differ
    rc = run("%s -c %s -r 1 -n 6 -S 3 -o %s/rs", model, ck, d);
    int noted = stdout_has("note: flags -n differ from the run that wrote");
    check(rc == 0 && noted, "cli: resuming a --steps 4 run with -n 6 notes the changed schedule: exit %d, noted %d %s", rc,
          noted, cli_err);
    rc = run("%s -c %s -r 1 -n 4 -S 3 -o %s/rs", model, ck, d);
    check(rc == 0 && !stdout_has("differ from the run that wrote"), "cli: resuming with the same --steps has no note: exit %d %s",
          rc, cli_err);
    // probing (-p) a checkpoint prints no sample unless -G asks for one
    rc = run("-i %s -j %s -t 8 -c %s -p -o %s/pr", tok, tok, ck, d);
    int probed = stdout_has("appended to"), sampled = stdout_has("sample (");
    check(rc == 0 && probed && !sampled, "cli: -c CKPT -p probes and prints no sample: exit %d, probed %d, sampled %d %s",
          rc, probed, sampled, cli_err);
    int step_line = stdout_has("probe step 2 |");
    char probes[700];
    snprintf(probes, sizeof(probes), "%s/pr/probes.jsonl", d);
    size_t pn;
    char *pj = (char *)read_file(probes, &pn, err, sizeof(err));
    int step_json = pj && !strncmp(pj, "{\"step\": 2,", 11);
    free(pj);
    check(rc == 0 && step_line && step_json, "cli: probing a checkpoint of step 2 records step 2 (stdout %d, probes.jsonl %d)",
          step_line, step_json);
    rc = run("-i %s -j %s -t 8 -c %s -p -G 5 -o %s/pr", tok, tok, ck, d);
    sampled = stdout_has("sample (");
    check(rc == 0 && sampled, "cli: -c CKPT -p -G 5 also samples: exit %d, sampled %d %s", rc, sampled, cli_err);
    expect_refusal("checkpoint with --seed", "--seed has no effect with -c", "%s -c %s -s 3", model, ck);
    expect_refusal("T above the checkpoint's max", "above checkpoint", "%s -c %s -t 9", model, ck);
    expect_refusal("resume past --steps", "beyond --steps 1", "%s -c %s -r 1 -n 1", model, ck);
    expect_refusal("--stop-at before the checkpoint", "--stop-at 1 is before", "%s -c %s -r 1 -n 4 -S 1", model, ck);
    expect_refusal("--eval-only without val tokens", "needs validation tokens", "%s -c %s -x 1", model, ck);
    expect_refusal("checkpoint given as train data", "bad magic 20261128", "%s -i %s", model, ck);
    expect_refusal("train data given as a checkpoint", "bad magic 20240520", "%s -c %s", model, tok);
    char cp[700], cpo[700], cmd[4000];
    snprintf(cp, sizeof(cp), "%s/cut.bin", d);
    snprintf(cpo, sizeof(cpo), "%s/cut.bin.opt", d);
    snprintf(cmd, sizeof(cmd), "head -c 2000 %s > %s && head -c 1100 %s.opt > %s", ck, cp, ck, cpo);
    if (system(cmd) != 0) check(0, "cli: could not make truncated files");
    expect_refusal("truncated checkpoint", "cut.bin: 2000 bytes, but its header implies", "%s -c %s", model, cp);
    snprintf(cmd, sizeof(cmd), "cp %s %s", ck, cp);
    if (system(cmd) != 0) check(0, "cli: could not copy a checkpoint");
    expect_refusal("truncated optimizer state", "cut.bin.opt: 1100 bytes", "%s -c %s -r 1", model, cp);
    remove(cpo);
    expect_refusal("resume without the optimizer state", "cannot open", "%s -c %s -r 1", model, cp);
    rc = run("%s -R random -s 2147483647 -n 2 -P 0 -o %s/seedmax", model, d);
    check(rc == 0, "cli: -R random -s 2147483647 trains (the row seed's arithmetic does not overflow): exit %d %s", rc, cli_err);
    {   // an optimizer file of version 1 keeps no schedule: a resume takes the flags as given
        char v1[800];
        snprintf(v1, sizeof(v1), "%s/v1", d);
        snprintf(cmd, sizeof(cmd), "mkdir -p %s && cp %s %s.opt %s/", v1, ck, ck, v1);
        int okc = system(cmd) == 0;
        snprintf(cmd, sizeof(cmd), "%s/model.bin.opt", v1);
        size_t vn;
        unsigned char *vb = read_file(cmd, &vn, err, sizeof(err));
        if (vb) { int32_t one = 1; memcpy(vb + 4, &one, 4); write_bytes(cmd, vb, vn); free(vb); }
        rc = run("%s -c %s/model.bin -r 1 -n 4 -o %s", model, v1, v1);
        check(okc && vb && rc == 0 && ckpt_header_int(ck, 10) == 2 && !stdout_has("note: flags") && !stdout_has("lr 0.00e+00"),
              "cli: a version-1 optimizer file (no schedule kept) resumes with the flags given: exit %d %s", rc, cli_err);
    }
    expect_refusal("-A with a checkpoint", "--vscale-lambda has no effect with -c", "%s -c %s -A 50", model, ck);
    expect_refusal("--eval-only with --val-batches 0", "--eval-only: needs --val-batches >= 1", "%s -c %s -x 1 -e 0 -j %s", model,
                   ck, tok);
    {   // the checkpoint pair: a save whose model rename fails leaves the old pair as it was, and the
        // state a kill between checkpoint_save's renames leaves (old model, new .opt, old .opt as
        // .opt.prev) resumes to the same bits as the run that never stopped
        char pd[700], pm[800], po[800], pp[800];
        snprintf(pd, sizeof(pd), "%s/pair", d);
        snprintf(pm, sizeof(pm), "%s/model.bin", pd);
        snprintf(po, sizeof(po), "%s/model.bin.opt", pd);
        snprintf(pp, sizeof(pp), "%s/model.bin.opt.prev", pd);
        mkdir(pd, 0755);
        mkdir(pm, 0755); // model.bin is a folder: its rename fails
        int r1 = run("%s -n 3 -P 0 -o %s", model, pd);
        int clean = !file_exists(po) && !file_exists(pp);
        rmdir(pm);
        int r2 = run("%s -n 6 -S 2 -P 0 -o %s", model, pd); // the old pair, at step 2
        snprintf(cmd, sizeof(cmd), "mkdir -p %s/p3 && cp %s %s/p3/ && cp %s %s/p3/", pd, pm, pd, po, pd);
        int r3 = system(cmd) == 0 ? run("-i %s -j '' -G 0 -c %s/p3/model.bin -r 1 -S 3 -o %s/p3", tok, pd, pd) : -1;
        snprintf(cmd, sizeof(cmd), "mv %s %s && cp %s/p3/model.bin.opt %s", po, pp, pd, po); // step 2 .prev, step 3 .opt
        int r4 = system(cmd) == 0 ? run("-i %s -j '' -G 0 -c %s -r 1 -o %s", tok, pm, pd) : -1;
        int r5 = run("%s -n 6 -P 0 -o %s/pairref", model, d);
        char ref[800];
        snprintf(ref, sizeof(ref), "%s/pairref/model.bin", d);
        check(r1 == 2 && clean && r2 == 0 && r3 == 0 && r4 == 0 && r5 == 0 && files_equal(pm, ref) && !file_exists(pp),
              "cli: a failed save leaves no new .opt; the state of a kill between the renames (.opt of step 3, .opt.prev of "
              "step 2 beside the model of step 2) resumes bit-identical (exits %d %d %d %d %d) %s", r1, r2, r3, r4, r5, cli_err);
    }
    snprintf(cmd, sizeof(cmd), "%s/ck2", d);
    run("%s -n 4 -S 3 -o %s", model, cmd);
    snprintf(cmd, sizeof(cmd), "cp %s/ck2/model.bin.opt %s", d, cpo);
    if (system(cmd) != 0) check(0, "cli: could not copy an optimizer state");
    expect_refusal("optimizer state from another step", "is from step 3, the checkpoint from step 2", "%s -c %s -r 1", model, cp);

    // a run that blows up stops with the step and the last good checkpoint, which stays as it was
    size_t n0, n1;
    unsigned char *before = read_file(ck, &n0, err, sizeof(err));
    rc = run("%s -c %s -r 1 -n 4 -k 1 -l 1e300 -o %s/ck", model, ck, d);
    unsigned char *after = read_file(ck, &n1, err, sizeof(err));
    check(rc == 3 && cli_one_line && strstr(cli_err, "step 2:") && strstr(cli_err, "not finite") &&
              strstr(cli_err, "last good checkpoint: ") && strstr(cli_err, "ck/model.bin (step 2") && n0 == n1 &&
              !memcmp(before, after, n0),
          "cli: lr 1e300 makes the parameters infinite at step 2: exit %d, checkpoint unchanged, %s", rc, cli_err);
    free(after);
    rc = run("%s -c %s -r 1 -n 4 -k 1 -l 1e30 -o %s/ck2", model, ck, d);
    check(rc == 3 && cli_one_line && strstr(cli_err, "loss") && strstr(cli_err, "last good checkpoint: "),
          "cli: lr 1e30 overflows the forward pass: exit %d, %s", rc, cli_err);
    free(before);

    // stdout and log.txt number a step alike: "step S/N | loss X" on stdout for each "s:S trl:X" in the log
    rc = run("%s -n 3 -o %s/steps", model, d);
    char lp[700];
    snprintf(lp, sizeof(lp), "%s/steps/log.txt", d);
    char *lg = (char *)read_file(lp, &n0, err, sizeof(err));
    int logged = 0, matched = 0;
    for (char *ln = lg; ln && *ln; ln = strchr(ln, '\n') ? strchr(ln, '\n') + 1 : ln + strlen(ln)) {
        int s;
        double x;
        if (sscanf(ln, "s:%d trl:%lf", &s, &x) != 2) continue;
        char want[100];
        snprintf(want, sizeof(want), "step %5d/3 | loss %.4f |", s, x);
        logged++;
        matched += stdout_has(want);
    }
    free(lg);
    check(rc == 0 && logged == 3 && matched == 3, "cli: stdout's step numbers are log.txt's (%d of %d training lines agree)",
          matched, logged);

    // resume: 8 steps in one run == 4 steps, checkpoint, resume for 4, bit for bit
    rc = run("%s -n 8 -w 2 -o %s/full", model, d);
    int rc2 = run("%s -n 8 -w 2 -S 4 -o %s/half", model, d);
    char resume_from[700];
    snprintf(resume_from, sizeof(resume_from), "%s/half/model.bin", d);
    int rc3 = run("-i %s -j '' -b 2 -t 8 -G 0 -n 8 -w 2 -c %s -r 1 -o %s/half", tok, resume_from, d);
    char a[700], b[700];
    int same = same_run_files(d, "full", "half");
    snprintf(a, sizeof(a), "%s/full/log.txt", d);
    unsigned char *log = read_file(a, &n0, err, sizeof(err));
    int lines = 0;
    for (size_t i = 0; log && i < n0; i++) lines += log[i] == '\n';
    free(log);
    check(rc == 0 && rc2 == 0 && rc3 == 0 && same && lines == 8,
          "cli: 8 steps == 4 steps + checkpoint + resume for 4: model.bin, model.bin.opt and the 8 logged losses are bit-identical");

    // the same with random rows: a resumed run draws the batches of the uninterrupted one
    rc = run("%s -R random -n 8 -w 2 -o %s/rfull", model, d);
    rc2 = run("%s -R random -n 8 -w 2 -S 4 -o %s/rhalf", model, d);
    snprintf(resume_from, sizeof(resume_from), "%s/rhalf/model.bin", d);
    rc3 = run("-i %s -j '' -b 2 -t 8 -G 0 -n 8 -w 2 -R random -c %s -r 1 -o %s/rhalf", tok, resume_from, d);
    same = same_run_files(d, "rfull", "rhalf");
    snprintf(a, sizeof(a), "%s/rfull/model.bin", d);
    snprintf(b, sizeof(b), "%s/full/model.bin", d);
    check(rc == 0 && rc2 == 0 && rc3 == 0 && same && !files_equal(a, b),
          "cli: -R random, 8 steps == 4 + resume for 4, bit for bit (and a model other than the stream's)");

    // a resume restores the schedule and row order of the run that wrote the checkpoint: the
    // resumed run gets none of -s, -R, -w, -l, -d, -b, -t, -n, yet is the run that never stopped
    const char *sched = "-R random -s 5 -w 3 -l 2e-3 -m 1e-4 -d 0.3 -E 0.05 -g 0.5 -f eot-masked -Z fixed -n 8";
    rc = run("%s %s -o %s/sfull", model, sched, d);
    rc2 = run("%s %s -S 4 -o %s/shalf", model, sched, d);
    snprintf(resume_from, sizeof(resume_from), "%s/shalf/model.bin", d);
    rc3 = run("-i %s -j '' -G 0 -c %s -r 1 -o %s/shalf", tok, resume_from, d);
    same = same_run_files(d, "sfull", "shalf");
    int rc4 = run("-i %s -j '' -G 0 -c %s -r 1 -s 6 -n 8 -o %s/sother", tok, resume_from, d);
    int said = stdout_has("note: flags -s differ from the run that wrote");
    check(rc == 0 && rc2 == 0 && rc3 == 0 && same && rc4 == 0 && said,
          "cli: a resume with no schedule flags restores them all (-R random -s 5, lr, decay, clip, first token, "
          "eot row, B, T, steps): bit for bit; a flag given with another value is used and said");
    kill_and_resume(model, d);
}

// Kills a run that checkpoints every step at random moments (kill -9), resumes each from the
// pair it left, and compares the end with the run that never stopped: a kill at any instant,
// inside checkpoint_save too, must leave a pair that resumes to the same bits.
static void kill_and_resume(const char *model, const char *d) {
    char cmd[4096], ref[700], dir[700], a[800], b[800], err[256];
    const char *flags = "-R random -s 3 -w 2 -n 24 -k 1 -P 0";
    snprintf(ref, sizeof(ref), "%s/kref", d);
    double t0 = now_seconds();
    int rc = run("%s %s -o %s", model, flags, ref);
    double dur = now_seconds() - t0;
    int tries = 12, resumed = 0, mid = 0, same = 1, bad_rc = 0;
    Rng kr;
    rng_seed(&kr, 99);
    for (int i = 0; i < tries && rc == 0; i++) {
        snprintf(dir, sizeof(dir), "%s/kill%d", d, i);
        snprintf(cmd, sizeof(cmd), "OMP_NUM_THREADS=2 exec %s %s %s -o %s >/dev/null 2>&1", cli_bin, model, flags, dir);
        pid_t pid = fork();
        if (pid == 0) { execl("/bin/sh", "sh", "-c", cmd, (char *)NULL); _exit(127); }
        usleep((useconds_t)(rng_uniform(&kr) * dur * 1e6));
        kill(pid, SIGKILL);
        int st;
        waitpid(pid, &st, 0);
        snprintf(a, sizeof(a), "%s/model.bin", dir);
        int step = ckpt_header_int(a, 10);
        if (step < 0) continue; // killed before the first checkpoint: nothing to resume
        mid += step < 24;
        int r2 = run("-i %s/train.bin -j '' -G 0 -c %s -r 1 -o %s", d, a, dir);
        bad_rc |= r2 != 0;
        snprintf(b, sizeof(b), "%s/model.bin", ref);
        same &= r2 == 0 && files_equal(a, b);
        resumed++;
    }
    (void)err;
    check(rc == 0 && !bad_rc && same && mid > 0,
          "cli: %d kill -9 at random moments of a run saving every step (%d mid-run, %d resumed): every resume "
          "ends bit-identical to the run that never stopped %s", tries, mid, resumed, bad_rc ? cli_err : "");
}

// no arguments: the unit tests. --cli BIN: the command-line tests against the built binary BIN.
// --quick: skip the slow whole-model finite differences (for a fast look; make test runs them all).
int main(int argc, char **argv) {
    rng_seed(&trng, 2026);
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/gradsink_test_XXXXXX");
    if (!mkdtemp(tmpdir)) die("cannot make a temp dir");
    int quick = argc > 1 && !strcmp(argv[1], "--quick");
    if (argc > 2 && !strcmp(argv[1], "--cli")) {
        cli_bin = argv[2];
        printf("gradsink command-line tests (%s)\n", cli_bin);
        printf("-- Part 2: the command line (flags, refusals, exit codes, resumed runs)\n");
        test_cli();
    } else {
        printf("gradsink tests (%s build%s)\n", PRECISION, quick ? ", --quick: whole-model finite differences on one config" : "");
        printf("-- Part 1: the maths (every backward against finite differences, fast == naive, AdamW, the paper's identities)\n");
        test_encoder();
        test_rmsnorm(RMSNORM_EPS_DEFAULT);
        // an eps as large as the rows' mean square, so the eps term is exercised; on random numbers
        // of its own (the later checks see the stream they always saw: some float-build checks
        // along random directions are that sensitive)
        Rng saved = trng;
        test_rmsnorm(0.7);
        trng = saved;
        test_matmul(7, 5, 3);
        test_matmul(1, 16, 9);
        test_matmul(13, 33, 17);
        test_matmul(1, 1, 1);
        test_matmul(130, 37, 67);  // several row blocks, ragged tiles and panels
        test_matmul(300, 40, 33);  // dW sums over N = 300 rows: more than one k chunk
        test_matmul(2, 64, 96);    // whole panels read in place
        test_matmul(1100, 24, 40); // with 2 threads: blocks of 186 rows (not whole 12-row tiles), a 12 x 32 last panel
        test_matmul(96, 40, 1100); // the same blocks in dW, through packed rows
        test_rope();
        test_attention(4, 4);
        test_attention(4, 2);
        test_attention(3, 1);
        test_attention_fast(1, 1, 2, 1, 4);
        test_attention_fast(2, 37, 4, 2, 6);
        test_attention_fast(1, 70, 3, 3, 34);
        test_attention_fast(2, 64, 4, 4, 32);
        test_vscale(VSCALE_OFF);
        test_vscale(VSCALE_FIXED);
        test_vscale(VSCALE_LEARNED);
        test_swiglu();
        test_crossentropy();
        test_softmax_row();
        if (quick) test_model_gradients(2, VSCALE_LEARNED, ROPE_THETA_DEFAULT, RMSNORM_EPS_DEFAULT);
        else
            for (int kv = 4; kv >= 2; kv -= 2)
                for (int mode = VSCALE_OFF; mode <= VSCALE_LEARNED; mode++)
                    test_model_gradients(kv, mode, ROPE_THETA_DEFAULT, RMSNORM_EPS_DEFAULT);
        // a checkpoint's own RoPE base and eps (as an imported model has): an eps near the rows'
        // mean square, so it changes the gradient, and a base that turns the angles fast
        saved = trng;
        test_model_gradients(2, VSCALE_OFF, 7.0, 0.5);
        trng = saved;
        test_adamw();
        // the paper's quantities and identities, on the model's own tensors
        test_sink_metrics();
        test_gradient_metrics();
        for (int kv = 4; kv >= 2; kv -= 2) test_identities(kv, kv == 4 ? VSCALE_OFF : VSCALE_LEARNED);
        test_rmsnorm_jacobian();
        test_vscale_jacobian();
        test_vscale_paths();
        test_sink_grad_unit();
        test_interventions_model();
        test_probe_is_read_only();
        test_probe_summary_many_layers();
        test_training();
        printf("-- Part 2: files and refusals (checkpoints, token and tokenizer files, limits, safe writes)\n");
        test_checkpoint();
        test_checkpoint_versions();
        test_dataloader();
        test_tokenizer_decode();
        test_bad_token_files();
        test_bad_tokenizer_files();
        test_bad_checkpoints();
        test_limits();
        test_safe_writes();
    }
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", tmpdir);
    printf("%d passed, %d failed\n", n_passed, n_failed);
    return n_failed ? 1 : 0;
}
