/*
gradsink.c: "Attention Sinks Induce Gradient Sinks" (Chen & Yao, 2026) in one C file.

Trains a small Llama-like Transformer (pre-norm RMSNorm, RoPE, GQA attention, SwiGLU MLP, untied
LM head, no biases) on the CPU with a backward pass written by hand, the paper's V-scale as one
switchable forward/backward pair, and the paper's measurements (attention sinks, gradient sinks,
massive activations, RMSNorm's reshaping of gradients) read from the tensors that training stores.
Read it top to bottom, in the order of one training step: layers (forward/backward pairs), model
(sizes, forward, backward, AdamW), measurements, data loader, checkpoints, main. After the "making
it fast" banner come the matmul and attention that training calls, with the results of their
readable versions above (the tests compare each pair). libc and libm only; OpenMP when the
compiler has it. -DGRADSINK_DOUBLE makes every number a double (the tests' build).
What it is not: a fast general framework, a GPU trainer, or a 0.1B-parameter rerun of the paper.
*/
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef GRADSINK_DOUBLE
typedef double real; // the tests: finite differences then check the backward pass tightly
#else
typedef float real;
#endif

// one-line error and exit code 2: every user mistake ends here
static void die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "gradsink: error: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

// zeroed memory, aligned to a cache line so that vector loads of a row never straddle two.
// Every buffer of the model and the run comes from here (the tests count the calls); only the
// probe's JSON line is grown by libc (open_memstream).
static size_t xcalloc_calls;
static void *xcalloc(size_t n, size_t size) {
    xcalloc_calls++;
    size_t bytes = ((n ? n : 1) * size + 63) / 64 * 64;
    if (size && n > (SIZE_MAX - 64) / size) die("out of memory: %zu x %zu bytes", n, size);
    void *p = aligned_alloc(64, bytes);
    if (!p) die("out of memory allocating %zu bytes", n * size);
    return memset(p, 0, bytes);
}

// dst = src over n reals (src NULL: dst = 0), and dst = a + b; threads take contiguous parts
static void copy_parallel(real *dst, const real *src, size_t n) {
    size_t chunk = (size_t)1 << 13, nchunks = (n + chunk - 1) / chunk;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < nchunks; i++) {
        size_t len = (i + 1 < nchunks ? chunk : n - i * chunk) * sizeof(real);
        if (src) memcpy(dst + i * chunk, src + i * chunk, len);
        else memset(dst + i * chunk, 0, len);
    }
}
static void add_parallel(real *dst, const real *a, const real *b, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) dst[i] = a[i] + b[i];
}

// ----------------------------------------------------------------------------
// layers: each a forward/backward pair. Shapes in comments: B batch rows, T positions, C width.
// Every *_backward ADDS (+=) into its gradient outputs, so a tensor that feeds two branches
// simply receives both contributions; model_zero_grad zeroes every gradient, in one place,
// before the backward pass. Two backwards instead turn an activation into its own gradient, in
// place, where nothing reads the activation afterwards: the loss's (probabilities -> dlogits,
// the start of the chain) and SwiGLU's (gate, up -> their gradients). Each is the sole writer
// of that gradient; a separate, zeroed tensor for it costs 6-11% of a training step (dev/SPEED.md).

// --- token embedding: h0[b,t,:] = wte[tok[b,t], :]
void encoder_forward(real *out, const int *inp, const real *wte, int B, int T, int C) {
    // out (B,T,C), inp (B,T), wte (V,C)
    #pragma omp parallel for schedule(static)
    for (int bt = 0; bt < B * T; bt++) memcpy(out + (size_t)bt * C, wte + (size_t)inp[bt] * C, C * sizeof(real));
}
void encoder_backward(real *dwte, const real *dout, const int *inp, int B, int T, int C) {
    // dwte[tok] += dout: a row of the embedding collects the gradient of every use of its token.
    // Threads take slices of the columns (rows repeat when tokens do), each element summed in bt order.
    #pragma omp parallel for schedule(static)
    for (int i0 = 0; i0 < C; i0 += 16) {
        int i1 = i0 + 16 < C ? i0 + 16 : C;
        for (int bt = 0; bt < B * T; bt++) {
            real *dw = dwte + (size_t)inp[bt] * C;
            const real *d = dout + (size_t)bt * C;
            for (int i = i0; i < i1; i++) dw[i] += d[i];
        }
    }
}

// --- RMSNorm: y = g * x / r,  r = sqrt(mean(x^2) + eps), eps = 1e-5 (HF Llama; a checkpoint
// may store another, as imported models do)
#define RMSNORM_EPS_DEFAULT 1e-5
void rmsnorm_forward(real *out, real *rstd, const real *inp, const real *gain, int N, int C, double eps) {
    // out (N,C), rstd (N) = 1/r, inp (N,C), gain (C); N = B*T rows
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const real *x = inp + (size_t)n * C;
        double ss = 0.0;
        #pragma omp simd reduction(+ : ss)
        for (int i = 0; i < C; i++) ss += (double)x[i] * x[i];
        real s = (real)(1.0 / sqrt(ss / C + eps));
        real *y = out + (size_t)n * C;
        for (int i = 0; i < C; i++) y[i] = gain[i] * x[i] * s;
        rstd[n] = s;
    }
}
void rmsnorm_backward(real *dinp, real *dgain, const real *dout, const real *inp, const real *gain,
                      const real *rstd, int N, int C) {
    // With xhat = x / r and u = g * dy (upstream gradient seen through the gain):
    //   dx = (1/r) (u - xhat * mean(u * xhat))
    // i.e. the Jacobian (1/r) diag(g) (I - x x^T / ||x||^2) (exactly so when eps = 0), whose
    // operator norm is at most max|g| / rms(x): large-norm tokens get small gradients.
    //   dg += dy * xhat
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const real *x = inp + (size_t)n * C, *dy = dout + (size_t)n * C;
        real s = rstd[n];
        double dot = 0.0;
        #pragma omp simd reduction(+ : dot)
        for (int i = 0; i < C; i++) dot += (double)gain[i] * dy[i] * x[i] * s;
        real mean_dot = (real)(dot / C);
        real *dx = dinp + (size_t)n * C;
        for (int i = 0; i < C; i++) dx[i] += s * (gain[i] * dy[i] - x[i] * s * mean_dot);
    }
    // the gain gradient sums over rows: threads take blocks of 16 channels (one vector), each
    // channel's sum runs over the rows in order, so no two threads share a sum
    int nblk = (C + 15) / 16;
    #pragma omp parallel for schedule(static)
    for (int blk = 0; blk < nblk; blk++) {
        int i0 = blk * 16, w = C - i0 < 16 ? C - i0 : 16;
        real acc[16] = {0};
        for (int n = 0; n < N; n++) {
            const real *dy = dout + (size_t)n * C + i0, *x = inp + (size_t)n * C + i0;
            real s = rstd[n];
            if (w == 16) for (int i = 0; i < 16; i++) acc[i] += dy[i] * x[i] * s;
            else for (int i = 0; i < w; i++) acc[i] += dy[i] * x[i] * s;
        }
        for (int i = 0; i < w; i++) dgain[i0 + i] += acc[i];
    }
}

// --- linear map without bias: out = inp @ W^T, as torch.nn.Linear(IC, OC, bias=False)
void matmul_forward_naive(real *out, const real *inp, const real *weight, int N, int IC, int OC) {
    // out (N,OC), inp (N,IC), weight (OC,IC)
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            real acc = 0;
            for (int i = 0; i < IC; i++) acc += inp[(size_t)n * IC + i] * weight[(size_t)o * IC + i];
            out[(size_t)n * OC + o] = acc;
        }
}
void matmul_backward_naive(real *dinp, real *dweight, const real *dout, const real *inp, const real *weight,
                           int N, int IC, int OC) {
    // dinp += dout @ W  (N,OC)x(OC,IC);   dW += dout^T @ inp  (OC,N)x(N,IC)
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            real d = dout[(size_t)n * OC + o];
            for (int i = 0; i < IC; i++) {
                dinp[(size_t)n * IC + i] += d * weight[(size_t)o * IC + i];
                dweight[(size_t)o * IC + i] += d * inp[(size_t)n * IC + i];
            }
        }
}
// Training calls versions with the same arguments and sums, blocked and tiled for caches and
// vector units: in "making it fast" at the end of the file.
void matmul_forward(real *out, const real *inp, const real *weight, int N, int IC, int OC);
void matmul_backward(real *dinp, real *dweight, const real *dout, const real *inp, const real *weight,
                     int N, int IC, int OC);

// --- RoPE, HF Llama's "rotate half": in each head, dimension i pairs with i + D/2 and the
// pair is rotated by the angle t * base^(-2i/D), t = position in the row; base 10000 (a
// checkpoint may store another: HF's rope_theta)
//   out_i       = x_i cos - x_{i+D/2} sin
//   out_{i+D/2} = x_{i+D/2} cos + x_i sin
#define ROPE_THETA_DEFAULT 10000.0
void rope_tables(real *cosb, real *sinb, int T, int D, double base) {
    // cosb, sinb (T, D/2)
    for (int t = 0; t < T; t++)
        for (int i = 0; i < D / 2; i++) {
            double ang = t * pow(base, -2.0 * i / D);
            cosb[t * (D / 2) + i] = (real)cos(ang);
            sinb[t * (D / 2) + i] = (real)sin(ang);
        }
}
void rope_forward(real *out, const real *inp, const real *cosb, const real *sinb, int B, int T, int NH, int D) {
    // out, inp (B,T,NH*D)
    int h2 = D / 2;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++) {
                size_t off = (((size_t)b * T + t) * NH + h) * D;
                const real *x = inp + off, *c = cosb + t * h2, *s = sinb + t * h2;
                real *y = out + off;
                for (int i = 0; i < h2; i++) {
                    y[i] = x[i] * c[i] - x[i + h2] * s[i];
                    y[i + h2] = x[i + h2] * c[i] + x[i] * s[i];
                }
            }
}
void rope_backward(real *dinp, const real *dout, const real *cosb, const real *sinb, int B, int T, int NH, int D) {
    // a rotation's Jacobian is the rotation; its transpose rotates back by -angle: dinp += R^T dout
    int h2 = D / 2;
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++)
            for (int h = 0; h < NH; h++) {
                size_t off = (((size_t)b * T + t) * NH + h) * D;
                const real *dy = dout + off, *c = cosb + t * h2, *s = sinb + t * h2;
                real *dx = dinp + off;
                for (int i = 0; i < h2; i++) {
                    dx[i] += dy[i] * c[i] + dy[i + h2] * s[i];
                    dx[i + h2] += dy[i + h2] * c[i] - dy[i] * s[i];
                }
            }
}

// --- V-scale (the paper's intervention), between the value projection and attention:
//   v_hat = phi(r) v,  r = ||v||^2 per token and kv head,  phi(r) = r / (r + c),
//   c = d_model * d_head * sigma^2 * lambda,  sigma = 0.02,
//   lambda = exp(theta), one theta per layer and kv head: held fixed in mode "fixed" (theta = 0,
//   lambda = 1, unless --vscale-lambda sets another), trained in mode "learned" (from theta = 0).
// Small-norm values (a sink's values are small) are shrunk, and with them their gradient.
// V-scale changes the forward pass and the backward pass at once. --vscale-path splits the two
// routes (the causal experiment): "both" is the paper's V-scale; "forward" keeps v_hat = phi(r) v
// in the forward pass and passes the gradient to v unchanged (J replaced by I; a learned theta
// still gets its gradient); "backward" runs the forward pass on v (no V-scale) and multiplies
// the gradient by J at v (theta gets none). Neither is the gradient of the loss, on purpose.
enum { VSCALE_OFF = 0, VSCALE_FIXED = 1, VSCALE_LEARNED = 2 };
static const char *VSCALE_NAMES[4] = {"off", "fixed", "learned", NULL}; // NULL ends a list of names (flags)
enum { VSCALE_PATH_BOTH = 0, VSCALE_PATH_FORWARD = 1, VSCALE_PATH_BACKWARD = 2 };
static const char *VSCALE_PATH_NAMES[4] = {"both", "forward", "backward", NULL};
#define VSCALE_SIGMA 0.02

real vscale_c(int d_model, int d_head, real theta, int mode) {
    real lambda = mode == VSCALE_OFF ? (real)1 : (real)exp(theta);
    return (real)(d_model * d_head * VSCALE_SIGMA * VSCALE_SIGMA) * lambda;
}
void vscale_forward(real *vhat, real *phi, const real *v, const real *theta, int mode, int path, int d_model,
                    int N, int NKV, int D) {
    // vhat, v (N, NKV*D); phi (N, NKV): the factor applied; theta (NKV) of this layer
    if (mode == VSCALE_OFF || path == VSCALE_PATH_BACKWARD) { // the one branch that switches V-scale off (in the forward pass)
        copy_parallel(vhat, v, (size_t)N * NKV * D);
        for (size_t i = 0; i < (size_t)N * NKV; i++) phi[i] = 1;
        return;
    }
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int h = 0; h < NKV; h++) {
            const real *x = v + ((size_t)n * NKV + h) * D;
            real *y = vhat + ((size_t)n * NKV + h) * D;
            real c = vscale_c(d_model, D, theta[h], mode), r = 0;
            for (int i = 0; i < D; i++) r += x[i] * x[i];
            real f = r / (r + c);
            for (int i = 0; i < D; i++) y[i] = f * x[i];
            phi[(size_t)n * NKV + h] = f;
        }
}
void vscale_backward(real *dv, real *dtheta, const real *dvhat, const real *v, const real *theta, int mode,
                     int path, int d_model, int N, int NKV, int D) {
    // Jacobian J = phi(r) I + 2c/(r+c)^2 v v^T (symmetric), so dv += phi dvhat + 2c/(r+c)^2 <v,dvhat> v.
    // Its eigenvalues: r/(r+c) orthogonal to v, (r^2+3cr)/(r+c)^2 along v (at most 9/8, at r = 3c).
    // Learned lambda: dphi/dtheta = dphi/dc * dc/dtheta = -r/(r+c)^2 * c, so
    //   dtheta += <v, dvhat> * (-r c / (r+c)^2).
    if (mode == VSCALE_OFF) {
        add_parallel(dv, dv, dvhat, (size_t)N * NKV * D);
        return;
    }
    #pragma omp parallel for schedule(static) // one kv head per thread: dtheta[h] sums over n in order
    for (int h = 0; h < NKV; h++) {
        real c = vscale_c(d_model, D, theta[h], mode), dth = 0;
        for (int n = 0; n < N; n++) {
            const real *x = v + ((size_t)n * NKV + h) * D, *dy = dvhat + ((size_t)n * NKV + h) * D;
            real *dx = dv + ((size_t)n * NKV + h) * D;
            real r = 0, vd = 0;
            for (int i = 0; i < D; i++) { r += x[i] * x[i]; vd += x[i] * dy[i]; }
            real rc = r + c, f = r / rc, g = 2 * c / (rc * rc) * vd;
            if (path == VSCALE_PATH_FORWARD) { f = 1; g = 0; } // J replaced by I: dv += dvhat
            for (int i = 0; i < D; i++) dx[i] += f * dy[i] + g * x[i];
            dth += vd * (-r * c / (rc * rc));
        }
        if (mode == VSCALE_LEARNED && path != VSCALE_PATH_BACKWARD) dtheta[h] += dth; // backward: theta not in the forward pass
    }
}

// --- --sink-grad G, a gradient-only intervention on the value path. Forward: nothing (v_hat
// goes to attention as it is). Backward: the gradient that attention hands to position 0's
// values, dv_hat_0 = sum_t a[t,0] dy_t (the value path of the gradient sink), is multiplied by
// G in every row and kv head, before V-scale's backward and Wv see it. G = 0 cuts the value
// path of the sink and leaves its key path. dvhat (B, T, KV), scaled in place.
void sink_grad_backward(real *dvhat, real G, int B, int T, int KV) {
    if (G == 1) return;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < KV; i++) dvhat[(size_t)b * T * KV + i] *= G;
}

// --- softmax, for attention's rows and the logits. e^x is libm's exp in the double build; in
// float a polynomial that vectorizes (libm's is a call per element): x = n ln2 + r with
// |r| <= ln2/2, e^r by its Taylor series to r^7 (relative error below 2e-7), 2^n written into
// the exponent bits; x is clamped to [-87, 88], where e^x stays a normal float.
static inline real exp_fast(real x) {
#ifdef GRADSINK_DOUBLE
    return exp(x);
#else
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    float t = x * 1.44269504f + 12582912.0f; // 1.5 * 2^23 + round(x / ln2), exactly
    float n = t - 12582912.0f;
    float r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-6f; // ln2 split in two
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    uint32_t tb, bits; // round(x / ln2) sits in t's low mantissa bits: read it there (a NaN x gives NaN)
    memcpy(&tb, &t, sizeof(tb));
    bits = (tb - 0x4B400000u + 127u) << 23;
    float two_n;
    memcpy(&two_n, &bits, sizeof(two_n));
    return p * two_n;
#endif
}
// x[0..n) = softmax(x * scale), in place
static inline void softmax_row(real *x, int n, real scale) {
    real maxv = -INFINITY, sum = 0;
    #pragma omp simd reduction(max : maxv)
    for (int j = 0; j < n; j++) maxv = x[j] > maxv ? x[j] : maxv;
    for (int j = 0; j < n; j++) x[j] = exp_fast((x[j] - maxv) * scale);
    #pragma omp simd reduction(+ : sum)
    for (int j = 0; j < n; j++) sum += x[j];
    real inv = 1 / sum;
    for (int j = 0; j < n; j++) x[j] *= inv;
}

// --- causal attention with grouped KV heads. Query head h reads kv head h / (NH/NKV).
//   a[t,j] = softmax_j<=t( q_t . k_j / sqrt(D) ),   y_t = sum_{j<=t} a[t,j] v_j
// att (B,NH,T,T) stores the softmax weights (the measurements read them); j > t stays 0.
static real dotp(const real *a, const real *b, int n) {
    real s = 0;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}
void attention_forward_naive(real *out, real *att, const real *q, const real *k, const real *v,
                             int B, int T, int NH, int NKV, int D) {
    // out, q (B,T,NH*D); k, v (B,T,NKV*D)
    int C = NH * D, KV = NKV * D, group = NH / NKV;
    real scale = (real)(1.0 / sqrt((double)D));
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++)
            for (int t = 0; t < T; t++) {
                const real *qt = q + ((size_t)b * T + t) * C + h * D, *kv0 = k + (size_t)b * T * KV + h / group * D;
                real *a = att + (((size_t)b * NH + h) * T + t) * T, *yt = out + ((size_t)b * T + t) * C + h * D;
                for (int j = 0; j < T; j++) a[j] = j <= t ? dotp(qt, kv0 + (size_t)j * KV, D) : 0;
                softmax_row(a, t + 1, scale);
                for (int i = 0; i < D; i++) yt[i] = 0;
                for (int j = 0; j <= t; j++)
                    for (int i = 0; i < D; i++) yt[i] += a[j] * v[((size_t)b * T + j) * KV + h / group * D + i];
            }
}
void attention_backward_naive(real *dq, real *dk, real *dv, const real *dout, const real *q, const real *k,
                              const real *v, const real *att, int B, int T, int NH, int NKV, int D) {
    // Value path:  dV = A^T dY, i.e. dv_j += sum_{t>=j} a[t,j] dy_t. The sink column j = 0 is
    //              read by every query, so it collects gradient from every later token: the
    //              gradient sink.
    // Logits:      da[t,j] = dy_t . v_j, and through the softmax
    //              dlogit[t,j] = a[t,j] (da[t,j] - sum_i a[t,i] da[t,i]) / sqrt(D).
    // Key path:    dk_j += sum_t dlogit[t,j] q_t = sum_t a_tj <dy_t, v_j - y_t> q_t / sqrt(D).
    // Query path:  dq_t += sum_{j<=t} dlogit[t,j] k_j. Row-local; for t = 0 the only logit is a
    //              lone softmax entry (a = 1, dlogit = 0), so dq_0 = 0 exactly.
    // Threads split (batch row, kv head): the query heads of a group share dk, dv.
    int C = NH * D, KV = NKV * D, group = NH / NKV;
    real scale = (real)(1.0 / sqrt((double)D));
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int hk = 0; hk < NKV; hk++)
            for (int h = hk * group; h < (hk + 1) * group; h++)
                for (int t = 0; t < T; t++) {
                    const real *a = att + (((size_t)b * NH + h) * T + t) * T, *dy = dout + ((size_t)b * T + t) * C + h * D;
                    const real *qt = q + ((size_t)b * T + t) * C + h * D;
                    real *dqt = dq + ((size_t)b * T + t) * C + h * D, mean_da = 0;
                    for (int j = 0; j <= t; j++) mean_da += a[j] * dotp(dy, v + ((size_t)b * T + j) * KV + hk * D, D);
                    for (int j = 0; j <= t; j++) {
                        size_t off = ((size_t)b * T + j) * KV + hk * D;
                        real g = a[j] * (dotp(dy, v + off, D) - mean_da) * scale; // dlogit[t,j]
                        for (int i = 0; i < D; i++) {
                            dv[off + i] += a[j] * dy[i];
                            dqt[i] += g * k[off + i];
                            dk[off + i] += g * qt[i];
                        }
                    }
                }
}
// Training calls versions with the same arguments and sums, as tiled matrix products: in
// "making it fast" at the end of the file.
void attention_forward(real *out, real *att, const real *q, const real *k, const real *v,
                       int B, int T, int NH, int NKV, int D);
void attention_backward(real *dq, real *dk, real *dv, const real *dout, const real *q, const real *k,
                        const real *v, const real *att, int B, int T, int NH, int NKV, int D);

// --- SwiGLU: h = silu(gate) * up, silu(x) = x * sigmoid(x)
void swiglu_forward(real *out, const real *gate, const real *up, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        real s = 1 / (1 + exp_fast(-gate[i]));
        out[i] = gate[i] * s * up[i];
    }
}
void swiglu_backward(real *dgate, real *dup, const real *dout, const real *gate, const real *up, size_t n) {
    // d silu(x)/dx = s (1 + x (1 - s)), s = sigmoid(x). Writes (dgate, dup may be gate, up: in place)
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        real x = gate[i], s = 1 / (1 + exp_fast(-x));
        dgate[i] = dout[i] * up[i] * s * (1 + x * (1 - s));
        dup[i] = dout[i] * x * s;
    }
}

// --- softmax + cross-entropy. probs overwrite the logits; losses (N) per position. A position
// whose target is IGNORE has loss 0 and gradient 0 (it is not in the mean: count_scored).
#define IGNORE (-1)
int count_scored(const int *targets, int N) {
    int n = 0;
    for (int i = 0; i < N; i++) n += targets[i] != IGNORE;
    return n;
}
void crossentropy_forward(real *losses, real *probs, const int *targets, int N, int V) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        real *p = probs + (size_t)n * V;
        softmax_row(p, V, 1);
        losses[n] = targets[n] == IGNORE ? 0 : (real)-log(p[targets[n]] > 0 ? p[targets[n]] : (real)1e-30);
    }
}
void crossentropy_softmax_backward(real *dlogits, const real *probs, const int *targets, real dloss, int N, int V) {
    // d(-log p_y)/dlogit_i = p_i - [i == y], times dloss = 1/(scored positions) for the mean loss.
    // Writes (dlogits may be probs: in place)
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int i = 0; i < V; i++)
            dlogits[(size_t)n * V + i] = targets[n] == IGNORE ? 0 : (probs[(size_t)n * V + i] - (i == targets[n])) * dloss;
}

// ----------------------------------------------------------------------------
// model: configuration, parameters, activations

typedef struct {
    int vocab_size;  // V
    int d_model;     // C
    int n_layer;     // L
    int n_head;      // H query heads, head size D = C / H
    int n_kv_head;   // Hkv key/value heads (GQA when Hkv < H)
    int ffn_hidden;  // F, SwiGLU hidden size
    int max_seq_len; // longest T the model was built for
    int vscale;      // VSCALE_OFF, VSCALE_FIXED, VSCALE_LEARNED
    int eot;         // end-of-text id: sampling starts from it, -f eot puts it first (V-1 for tokenizer.py's)
    double rope_theta;   // RoPE base (ROPE_THETA_DEFAULT)
    double rms_norm_eps; // RMSNorm eps (RMSNORM_EPS_DEFAULT)
} Config;

// the parameters, in the order they are stored in a checkpoint (shapes: param_table)
#define NUM_PARAM_TENSORS 13
typedef struct {
    real *wte, *attn_norm, *wq, *wk, *wv, *wo, *mlp_norm, *w_gate, *w_up, *w_down, *vscale_theta, *final_norm, *lm_head;
} ParamTensors;

// one tensor of a block: its name, the pointer that gets its address, its size in reals; a
// parameter's kind (how it is initialised and decayed), or whether an activation has a gradient
typedef struct {
    const char *name;
    real **at;
    size_t size;
    int kind, grad;
} Slot;
enum { KIND_MATRIX, KIND_GAIN, KIND_THETA }; // init N(0, 0.02^2) and weight decay; init 1; init 0

// the sizes table of the parameters, one line per tensor, in checkpoint order
static void param_table(Slot *t, ParamTensors *p, const Config *c) {
    size_t V = c->vocab_size, C = c->d_model, L = c->n_layer, D = C / c->n_head;
    size_t Hkv = c->n_kv_head, KV = Hkv * D, F = c->ffn_hidden;
    Slot s[NUM_PARAM_TENSORS] = {
        {"wte",          &p->wte,          V * C,      KIND_MATRIX, 0}, // (V, C)
        {"attn_norm",    &p->attn_norm,    L * C,      KIND_GAIN,   0}, // (L, C)
        {"wq",           &p->wq,           L * C * C,  KIND_MATRIX, 0}, // (L, H*D, C)
        {"wk",           &p->wk,           L * KV * C, KIND_MATRIX, 0}, // (L, Hkv*D, C)
        {"wv",           &p->wv,           L * KV * C, KIND_MATRIX, 0}, // (L, Hkv*D, C)
        {"wo",           &p->wo,           L * C * C,  KIND_MATRIX, 0}, // (L, C, H*D)
        {"mlp_norm",     &p->mlp_norm,     L * C,      KIND_GAIN,   0}, // (L, C)
        {"w_gate",       &p->w_gate,       L * F * C,  KIND_MATRIX, 0}, // (L, F, C)
        {"w_up",         &p->w_up,         L * F * C,  KIND_MATRIX, 0}, // (L, F, C)
        {"w_down",       &p->w_down,       L * C * F,  KIND_MATRIX, 0}, // (L, C, F)
        {"vscale_theta", &p->vscale_theta, L * Hkv,    KIND_THETA,  0}, // (L, Hkv) log lambda; 0 unless learned
        {"final_norm",   &p->final_norm,   C,          KIND_GAIN,   0}, // (C)
        {"lm_head",      &p->lm_head,      V * C,      KIND_MATRIX, 0}};// (V, C)
    memcpy(t, s, sizeof(s));
}

// the activations of one forward pass, and (in a second block) the gradients of those with one
#define NUM_ACT_TENSORS 24
typedef struct {
    real *res, *x_attn, *rstd_attn, *q_pre, *k_pre, *q, *k, *v, *vhat, *vphi, *att, *atty, *r_attn, *h_half;
    real *x_mlp, *rstd_mlp, *gate, *up, *hmlp, *r_mlp, *x_final, *rstd_final, *logits, *losses;
} ActTensors;

// the sizes table of the activations, one line per tensor. grad 0: no gradient tensor (NULL in
// the gradient block), because nothing differentiates through it, because its gradient is
// another tensor's, read in place (r_attn's is h_half's, r_mlp's is h_out's: residual sums), or
// because its backward writes the gradient over it (logits, gate, up)
static void act_table(Slot *t, ActTensors *a, const Config *c, int B, int T) {
    size_t L = c->n_layer, C = c->d_model, H = c->n_head, D = C / H, Hkv = c->n_kv_head, KV = Hkv * D;
    size_t F = c->ffn_hidden, V = c->vocab_size, N = (size_t)B * T;
    Slot s[NUM_ACT_TENSORS] = {
        {"res",        &a->res,        (L + 1) * N * C,   0, 1}, // residual stream: res[l] = h_in of layer l, res[l+1] its h_out
        {"x_attn",     &a->x_attn,     L * N * C,         0, 1}, // x~ = RMSNorm(h_in), the attention input
        {"rstd_attn",  &a->rstd_attn,  L * N,             0, 0}, // its 1/r
        {"q_pre",      &a->q_pre,      L * N * C,         0, 1}, // queries before RoPE
        {"k_pre",      &a->k_pre,      L * N * KV,        0, 1}, // keys before RoPE
        {"q",          &a->q,          L * N * C,         0, 1}, // queries after RoPE
        {"k",          &a->k,          L * N * KV,        0, 1}, // keys after RoPE
        {"v",          &a->v,          L * N * KV,        0, 1}, // values before V-scale
        {"vhat",       &a->vhat,       L * N * KV,        0, 1}, // values after V-scale (a copy of v when off)
        {"vphi",       &a->vphi,       L * N * Hkv,       0, 0}, // V-scale factor r/(r+c) (1 when off)
        {"att",        &a->att,        L * B * H * T * T, 0, 0}, // attention weights a[t,j] (dA: attention_backward's scratch)
        {"atty",       &a->atty,       L * N * C,         0, 1}, // attention output before Wo
        {"r_attn",     &a->r_attn,     L * N * C,         0, 0}, // attention branch output Wo y
        {"h_half",     &a->h_half,     L * N * C,         0, 1}, // h_in + r_attn
        {"x_mlp",      &a->x_mlp,      L * N * C,         0, 1}, // RMSNorm(h_half), the MLP input
        {"rstd_mlp",   &a->rstd_mlp,   L * N,             0, 0},
        {"gate",       &a->gate,       L * N * F,         0, 0}, // (backward) then its gradient
        {"up",         &a->up,         L * N * F,         0, 0}, // (backward) then its gradient
        {"hmlp",       &a->hmlp,       L * N * F,         0, 1}, // silu(gate) * up
        {"r_mlp",      &a->r_mlp,      L * N * C,         0, 0}, // MLP branch output
        {"x_final",    &a->x_final,    N * C,             0, 1}, // final RMSNorm
        {"rstd_final", &a->rstd_final, N,                 0, 0},
        {"logits",     &a->logits,     N * V,             0, 0}, // logits, probabilities, (backward) their gradient
        {"losses",     &a->losses,     N,                 0, 0}};
    memcpy(t, s, sizeof(s));
}

// Carves one block of memory into a table's tensors, in table order; returns the reals they take.
// grads: only the tensors with a gradient get memory (the others NULL). memory NULL: only count.
static size_t carve(Slot *t, int n, real *memory, int grads) {
    size_t used = 0;
    for (int i = 0; i < n; i++) {
        int present = !grads || t[i].grad;
        if (memory) *t[i].at = present ? memory + used : NULL;
        if (present) used += t[i].size;
    }
    return used;
}

// what a resumed run needs to be the run that never stopped: the schedule and the row order of
// the run that wrote the optimizer file (its header keeps them; steps 0: a file without)
typedef struct {
    int steps, warmup, B, T, seed, rows, first_token, eot_row;
    double lr, min_lr, weight_decay, mlp_weight_decay, embed_weight_decay, grad_clip;
} Schedule;

typedef struct {
    Config cfg;
    size_t num_parameters, num_acts, num_grad_acts;
    ParamTensors params, grads;
    ActTensors acts, grads_acts;
    real *params_memory, *grads_memory, *acts_memory, *grads_acts_memory;
    real *m_memory, *v_memory; // AdamW moments
    int adam_t;                // AdamW steps taken (for bias correction)
    Schedule sched;            // the run's schedule, kept in the optimizer file
    int B, T;                  // the batch shape the activations were sized for
    real *rope_cos, *rope_sin; // (max_seq_len, D/2)
    int *inputs, *targets;     // (B, T)
    // the causal experiment's interventions (defaults: none), kept in the checkpoint
    int vscale_path;           // VSCALE_PATH_BOTH, _FORWARD, _BACKWARD (--vscale-path)
    double sink_grad;          // G of --sink-grad: position 0's value gradient is multiplied by it
} Model;

// the model's parameter table (names, sizes and kinds; `at` points into m->params)
static void model_params(Model *m, Slot *t) { param_table(t, &m->params, &m->cfg); }

// Limits that keep every size and index computation in range: token ids are uint16, a
// checkpoint counts its parameters in an int32, and within these bounds no product of
// dimensions the code forms in int or size_t can overflow (B*T is capped by the flags).
#define MAX_VOCAB 65536
#define MAX_SEQ_LEN 65536

// the parameter count, in double so that absurd shapes come out huge instead of wrapping
static double config_num_parameters(const Config *c) {
    double V = c->vocab_size, C = c->d_model, L = c->n_layer, F = c->ffn_hidden;
    double KV = (double)c->n_kv_head * (c->d_model / (c->n_head > 0 ? c->n_head : 1));
    return 2 * V * C + L * (2 * C + 2 * C * C + 2 * KV * C + 3 * F * C + c->n_kv_head) + C;
}

// returns NULL when the configuration is valid, else what is wrong with it (naming the flag)
const char *config_check(const Config *c) {
    if (c->vocab_size < 2 || c->vocab_size > MAX_VOCAB) return "vocab size (-V) must be in 2..65536";
    if (c->d_model < 2 || c->d_model > 16384) return "width (-C) must be in 2..16384";
    if (c->n_layer < 1 || c->n_layer > 1024) return "layers (-L) must be in 1..1024";
    if (c->n_head < 1 || c->n_kv_head < 1) return "heads (-H) and kv heads (-K) must be positive";
    if (c->ffn_hidden < 1 || c->ffn_hidden > 1048576) return "MLP size (-F) must be in 1..1048576";
    if (c->d_model % c->n_head) return "heads (-H) must divide the width (-C)";
    if ((c->d_model / c->n_head) % 2) return "head size (width / heads) must be even for RoPE";
    if (c->n_head % c->n_kv_head) return "kv heads (-K) must divide heads (-H)";
    if (c->max_seq_len < 1 || c->max_seq_len > MAX_SEQ_LEN) return "sequence length (-t) must be in 1..65536";
    if (c->vscale < VSCALE_OFF || c->vscale > VSCALE_LEARNED) return "unknown V-scale mode";
    if (c->eot < 0 || c->eot >= c->vocab_size) return "end-of-text id outside the vocab";
    if (!(c->rope_theta > 0 && c->rope_theta < 1e300)) return "RoPE base (rope_theta) must be positive and finite";
    if (!(c->rms_norm_eps > 0 && c->rms_norm_eps < 1)) return "RMSNorm eps must be in (0, 1)";
    if (config_num_parameters(c) > 2147483647.0) return "more than 2^31-1 parameters (make -V, -C, -L or -F smaller)";
    return NULL;
}

int config_equal(const Config *a, const Config *b) {
    return a->vocab_size == b->vocab_size && a->d_model == b->d_model && a->n_layer == b->n_layer &&
           a->n_head == b->n_head && a->n_kv_head == b->n_kv_head && a->ffn_hidden == b->ffn_hidden &&
           a->max_seq_len == b->max_seq_len && a->vscale == b->vscale && a->eot == b->eot &&
           a->rope_theta == b->rope_theta && a->rms_norm_eps == b->rms_norm_eps;
}

// Bytes a model of this configuration needs to train on B x T batches: parameters, their
// gradients, AdamW's m and v, activations and activation gradients. In double: an absurd
// configuration gives a huge number, which main compares with the machine's memory.
double model_bytes(const Config *c, int B, int T) {
    double att = (double)c->n_layer * B * c->n_head * T * T; // the attention weights, the largest activation
    if (att > 1e15) return att * sizeof(real);             // beyond any machine; and size_t sums could wrap
    Slot t[NUM_ACT_TENSORS];
    ActTensors none;
    act_table(t, &none, c, B, T);
    double acts = (double)carve(t, NUM_ACT_TENSORS, NULL, 0) + carve(t, NUM_ACT_TENSORS, NULL, 1);
    return sizeof(real) * (4 * config_num_parameters(c) + acts + (double)c->max_seq_len * c->d_model);
}

// allocate parameters, gradients and optimizer state; activations come with model_alloc_acts
void model_build(Model *m, const Config *cfg) {
    memset(m, 0, sizeof(*m));
    m->cfg = *cfg;
    m->vscale_path = VSCALE_PATH_BOTH;
    m->sink_grad = 1;
    Slot t[NUM_PARAM_TENSORS];
    param_table(t, &m->params, cfg);
    m->num_parameters = carve(t, NUM_PARAM_TENSORS, NULL, 0);
    m->params_memory = xcalloc(m->num_parameters, sizeof(real));
    m->grads_memory = xcalloc(m->num_parameters, sizeof(real));
    m->m_memory = xcalloc(m->num_parameters, sizeof(real));
    m->v_memory = xcalloc(m->num_parameters, sizeof(real));
    carve(t, NUM_PARAM_TENSORS, m->params_memory, 0);
    param_table(t, &m->grads, cfg);
    carve(t, NUM_PARAM_TENSORS, m->grads_memory, 0);
    int D = cfg->d_model / cfg->n_head;
    m->rope_cos = xcalloc((size_t)cfg->max_seq_len * D / 2, sizeof(real));
    m->rope_sin = xcalloc((size_t)cfg->max_seq_len * D / 2, sizeof(real));
    rope_tables(m->rope_cos, m->rope_sin, cfg->max_seq_len, D, cfg->rope_theta);
}

// RNG: splitmix64 (Steele, Lea, Flood 2014) over a 64-bit state; uniform doubles from its
// top 53 bits; normals by Box-Muller. Integer arithmetic only until the last step, so the
// same seed gives the same model on any machine with IEEE doubles.
typedef struct { uint64_t state; int has_spare; double spare; } Rng;
static void rng_seed(Rng *r, uint64_t seed) { r->state = seed; r->has_spare = 0; r->spare = 0.0; }
static uint64_t rng_u64(Rng *r) {
    uint64_t z = (r->state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rng_uniform(Rng *r) { return (rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); } // [0,1)
static double rng_normal(Rng *r) {
    if (r->has_spare) { r->has_spare = 0; return r->spare; }
    double u1 = rng_uniform(r), u2 = rng_uniform(r);
    if (u1 < 1e-300) u1 = 1e-300;
    double rad = sqrt(-2.0 * log(u1)), ang = 2.0 * M_PI * u2;
    r->spare = rad * sin(ang);
    r->has_spare = 1;
    return rad * cos(ang);
}

// init as the paper: every matrix and the embedding ~ N(0, 0.02^2), norm gains 1, theta 0.
// One RNG stream walks the parameters in checkpoint order.
void model_init(Model *m, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    Slot t[NUM_PARAM_TENSORS];
    model_params(m, t);
    real *p = m->params_memory;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++)
        for (size_t j = 0; j < t[i].size; j++, p++)
            *p = t[i].kind == KIND_MATRIX ? (real)(0.02 * rng_normal(&rng)) : t[i].kind == KIND_GAIN ? 1 : 0;
}

void model_alloc_acts(Model *m, int B, int T) {
    m->B = B; m->T = T;
    Slot t[NUM_ACT_TENSORS];
    act_table(t, &m->acts, &m->cfg, B, T);
    m->num_acts = carve(t, NUM_ACT_TENSORS, NULL, 0);
    m->acts_memory = xcalloc(m->num_acts, sizeof(real));
    carve(t, NUM_ACT_TENSORS, m->acts_memory, 0);
    act_table(t, &m->grads_acts, &m->cfg, B, T);
    m->num_grad_acts = carve(t, NUM_ACT_TENSORS, NULL, 1);
    m->grads_acts_memory = xcalloc(m->num_grad_acts, sizeof(real));
    carve(t, NUM_ACT_TENSORS, m->grads_acts_memory, 1);
    m->inputs = xcalloc((size_t)B * T, sizeof(int));
    m->targets = xcalloc((size_t)B * T, sizeof(int));
}

void model_free(Model *m) {
    free(m->params_memory); free(m->grads_memory); free(m->m_memory); free(m->v_memory);
    free(m->acts_memory); free(m->grads_acts_memory); free(m->rope_cos); free(m->rope_sin);
    free(m->inputs); free(m->targets);
    memset(m, 0, sizeof(*m));
}

// per-layer views into the parameter and activation blocks
typedef struct {
    real *attn_norm, *wq, *wk, *wv, *wo, *mlp_norm, *w_gate, *w_up, *w_down, *theta;
} LayerParams;
static LayerParams layer_params(const ParamTensors *p, const Config *c, int l) {
    size_t C = c->d_model, D = C / c->n_head, KV = c->n_kv_head * D, F = c->ffn_hidden;
    LayerParams lp = {.attn_norm = p->attn_norm + l * C, .wq = p->wq + l * C * C, .wk = p->wk + l * KV * C,
                      .wv = p->wv + l * KV * C, .wo = p->wo + l * C * C, .mlp_norm = p->mlp_norm + l * C,
                      .w_gate = p->w_gate + l * F * C, .w_up = p->w_up + l * F * C, .w_down = p->w_down + l * C * F,
                      .theta = p->vscale_theta + l * c->n_kv_head};
    return lp;
}
typedef struct {
    real *h_in, *h_out, *x_attn, *rstd_attn, *q_pre, *k_pre, *q, *k, *v, *vhat, *vphi, *att, *atty, *r_attn;
    real *h_half, *x_mlp, *rstd_mlp, *gate, *up, *hmlp, *r_mlp;
} LayerActs;
// layer l's part of a tensor of L equal parts, `per` reals each (NULL for a tensor that is absent)
static real *part(real *x, int l, size_t per) { return x ? x + l * per : NULL; }
// strides use the allocated shape (m->B, m->T), so a forward on a smaller B, T still fits
static LayerActs layer_acts(const ActTensors *a, const Model *m, int l) {
    const Config *c = &m->cfg;
    size_t N = (size_t)m->B * m->T, C = c->d_model, KV = c->n_kv_head * (C / c->n_head), F = c->ffn_hidden;
    LayerActs la = {.h_in = part(a->res, l, N * C), .h_out = part(a->res, l + 1, N * C),
                    .x_attn = part(a->x_attn, l, N * C), .rstd_attn = part(a->rstd_attn, l, N),
                    .q_pre = part(a->q_pre, l, N * C), .k_pre = part(a->k_pre, l, N * KV),
                    .q = part(a->q, l, N * C), .k = part(a->k, l, N * KV), .v = part(a->v, l, N * KV),
                    .vhat = part(a->vhat, l, N * KV), .vphi = part(a->vphi, l, N * c->n_kv_head),
                    .att = part(a->att, l, N * c->n_head * m->T), .atty = part(a->atty, l, N * C),
                    .r_attn = part(a->r_attn, l, N * C), .h_half = part(a->h_half, l, N * C),
                    .x_mlp = part(a->x_mlp, l, N * C), .rstd_mlp = part(a->rstd_mlp, l, N),
                    .gate = part(a->gate, l, N * F), .up = part(a->up, l, N * F), .hmlp = part(a->hmlp, l, N * F),
                    .r_mlp = part(a->r_mlp, l, N * C)};
    return la;
}

// ----------------------------------------------------------------------------
// forward: the model card, op by op. inputs/targets (B,T) are in m->inputs, m->targets.
// With with_targets == 0 only the logits are computed (sampling). Returns the mean loss.

real model_forward(Model *m, int B, int T, int with_targets) {
    const Config *c = &m->cfg;
    int C = c->d_model, L = c->n_layer, H = c->n_head, Hkv = c->n_kv_head, D = C / H, KV = Hkv * D;
    int F = c->ffn_hidden, V = c->vocab_size, N = B * T;
    ActTensors *a = &m->acts;
    encoder_forward(a->res, m->inputs, m->params.wte, B, T, C);            // h = wte[tokens]
    for (int l = 0; l < L; l++) {
        LayerParams p = layer_params(&m->params, c, l);
        LayerActs s = layer_acts(a, m, l);
        // attention branch: h_half = h + Wo Attn(RoPE(Wq x~), RoPE(Wk x~), Vscale(Wv x~)),  x~ = RMSNorm(h)
        rmsnorm_forward(s.x_attn, s.rstd_attn, s.h_in, p.attn_norm, N, C, c->rms_norm_eps);
        matmul_forward(s.q_pre, s.x_attn, p.wq, N, C, C);
        matmul_forward(s.k_pre, s.x_attn, p.wk, N, C, KV);
        matmul_forward(s.v, s.x_attn, p.wv, N, C, KV);
        rope_forward(s.q, s.q_pre, m->rope_cos, m->rope_sin, B, T, H, D);
        rope_forward(s.k, s.k_pre, m->rope_cos, m->rope_sin, B, T, Hkv, D);
        vscale_forward(s.vhat, s.vphi, s.v, p.theta, c->vscale, m->vscale_path, C, N, Hkv, D);
        attention_forward(s.atty, s.att, s.q, s.k, s.vhat, B, T, H, Hkv, D);
        matmul_forward(s.r_attn, s.atty, p.wo, N, C, C);
        add_parallel(s.h_half, s.h_in, s.r_attn, (size_t)N * C);
        // MLP branch: h_out = h_half + Wdown( silu(Wgate x) * Wup x ),  x = RMSNorm(h_half)
        rmsnorm_forward(s.x_mlp, s.rstd_mlp, s.h_half, p.mlp_norm, N, C, c->rms_norm_eps);
        matmul_forward(s.gate, s.x_mlp, p.w_gate, N, C, F);
        matmul_forward(s.up, s.x_mlp, p.w_up, N, C, F);
        swiglu_forward(s.hmlp, s.gate, s.up, (size_t)N * F);
        matmul_forward(s.r_mlp, s.hmlp, p.w_down, N, F, C);
        add_parallel(s.h_out, s.h_half, s.r_mlp, (size_t)N * C);
    }
    real *h_last = a->res + (size_t)L * m->B * m->T * C;
    rmsnorm_forward(a->x_final, a->rstd_final, h_last, m->params.final_norm, N, C, c->rms_norm_eps);
    matmul_forward(a->logits, a->x_final, m->params.lm_head, N, C, V);
    if (!with_targets) return 0;
    crossentropy_forward(a->losses, a->logits, m->targets, N, V);              // logits -> probs
    double sum = 0;
    for (int i = 0; i < N; i++) sum += a->losses[i];
    return (real)(sum / count_scored(m->targets, N));
}

// ----------------------------------------------------------------------------
// backward: the forward list in reverse. Every gradient is of the mean loss over the scored
// positions; the gradients start at zero, all in one place:

void model_zero_grad(Model *m) {
    copy_parallel(m->grads_memory, NULL, m->num_parameters);
    copy_parallel(m->grads_acts_memory, NULL, m->num_grad_acts);
}

void model_backward(Model *m, int B, int T) {
    const Config *c = &m->cfg;
    int C = c->d_model, L = c->n_layer, H = c->n_head, Hkv = c->n_kv_head, D = C / H, KV = Hkv * D;
    int F = c->ffn_hidden, V = c->vocab_size, N = B * T;
    ActTensors *a = &m->acts, *g = &m->grads_acts;
    crossentropy_softmax_backward(a->logits, a->logits, m->targets, (real)(1.0 / count_scored(m->targets, N)), N, V);
    matmul_backward(g->x_final, m->grads.lm_head, a->logits, a->x_final, m->params.lm_head, N, C, V); // dlogits
    size_t last = (size_t)L * m->B * m->T * C;
    rmsnorm_backward(g->res + last, m->grads.final_norm, g->x_final, a->res + last, m->params.final_norm,
                     a->rstd_final, N, C);
    for (int l = L - 1; l >= 0; l--) {
        LayerParams p = layer_params(&m->params, c, l), dp = layer_params(&m->grads, c, l);
        LayerActs s = layer_acts(a, m, l), ds = layer_acts(g, m, l);
        // MLP branch: h_out = h_half + r_mlp, so both receive d h_out (r_mlp's gradient is
        // d h_out itself, read in place)
        add_parallel(ds.h_half, ds.h_half, ds.h_out, (size_t)N * C);
        matmul_backward(ds.hmlp, dp.w_down, ds.h_out, s.hmlp, p.w_down, N, F, C);
        swiglu_backward(s.gate, s.up, ds.hmlp, s.gate, s.up, (size_t)N * F); // gate, up -> d gate, d up
        matmul_backward(ds.x_mlp, dp.w_gate, s.gate, s.x_mlp, p.w_gate, N, C, F);
        matmul_backward(ds.x_mlp, dp.w_up, s.up, s.x_mlp, p.w_up, N, C, F);
        rmsnorm_backward(ds.h_half, dp.mlp_norm, ds.x_mlp, s.h_half, p.mlp_norm, s.rstd_mlp, N, C);
        // attention branch: h_half = h_in + r_attn, the same way
        add_parallel(ds.h_in, ds.h_in, ds.h_half, (size_t)N * C);
        matmul_backward(ds.atty, dp.wo, ds.h_half, s.atty, p.wo, N, C, C);
        attention_backward(ds.q, ds.k, ds.vhat, ds.atty, s.q, s.k, s.vhat, s.att, B, T, H, Hkv, D);
        sink_grad_backward(ds.vhat, (real)m->sink_grad, B, T, KV);
        vscale_backward(ds.v, dp.theta, ds.vhat, s.v, p.theta, c->vscale, m->vscale_path, C, N, Hkv, D);
        rope_backward(ds.q_pre, ds.q, m->rope_cos, m->rope_sin, B, T, H, D);
        rope_backward(ds.k_pre, ds.k, m->rope_cos, m->rope_sin, B, T, Hkv, D);
        matmul_backward(ds.x_attn, dp.wq, ds.q_pre, s.x_attn, p.wq, N, C, C);
        matmul_backward(ds.x_attn, dp.wk, ds.k_pre, s.x_attn, p.wk, N, C, KV);
        matmul_backward(ds.x_attn, dp.wv, ds.v, s.x_attn, p.wv, N, C, KV);
        rmsnorm_backward(ds.h_in, dp.attn_norm, ds.x_attn, s.h_in, p.attn_norm, s.rstd_attn, N, C);
    }
    encoder_backward(m->grads.wte, g->res, m->inputs, B, T, C);
}

// the gradients of the mean loss on the batch in m->inputs, m->targets (B x T): forward, zero
// the gradients, backward. Returns the loss. A training step clips and updates after it; a probe measures.
real model_forward_backward(Model *m, int B, int T) {
    real loss = model_forward(m, B, T, 1);
    model_zero_grad(m);
    model_backward(m, B, T);
    return loss;
}

// ----------------------------------------------------------------------------
// optimizer: global grad-norm clipping, learning-rate schedule, AdamW (PyTorch semantics)

// the global gradient norm sqrt(sum_i g_i^2), summed in double in an order fixed by n alone, so
// the same bits for any thread count: GN_BLOCKS contiguous blocks, each summed in GN_LANES
// interleaved lanes (a vector of doubles), then lanes and blocks added in order
#define GN_BLOCKS 64
#define GN_LANES 8
double grad_norm(const real *g, size_t n) {
    double part[GN_BLOCKS];
    size_t per = (n + GN_BLOCKS - 1) / GN_BLOCKS;
    #pragma omp parallel for schedule(static)
    for (int blk = 0; blk < GN_BLOCKS; blk++) {
        size_t i0 = blk * per < n ? blk * per : n, i1 = i0 + per < n ? i0 + per : n, i = i0;
        double lane[GN_LANES] = {0}, t = 0;
        for (; i + GN_LANES <= i1; i += GN_LANES)
            for (int j = 0; j < GN_LANES; j++) lane[j] += (double)g[i + j] * g[i + j];
        for (; i < i1; i++) lane[0] += (double)g[i] * g[i];
        for (int j = 0; j < GN_LANES; j++) t += lane[j];
        part[blk] = t;
    }
    double ss = 0;
    for (int blk = 0; blk < GN_BLOCKS; blk++) ss += part[blk];
    return sqrt(ss);
}

// returns the norm before clipping; scales the grads by clip/(norm+1e-6) when norm > clip
double clip_grads(real *g, size_t n, double clip) {
    double norm = grad_norm(g, n);
    if (clip > 0 && norm > clip) {
        real s = (real)(clip / (norm + 1e-6));
        #pragma omp parallel for schedule(static)
        for (size_t i = 0; i < n; i++) g[i] *= s;
    }
    return norm;
}

// linear warmup for `warmup` steps, then cosine from max_lr down to min_lr at the last step
double lr_at(int step, int steps, int warmup, double max_lr, double min_lr) {
    if (step < warmup) return max_lr * (step + 1) / warmup;
    if (steps <= warmup) return min_lr;
    double frac = (double)(step - warmup) / (steps - warmup);
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + cos(M_PI * frac));
}

// one AdamW step on one tensor; t counts steps from 1. Decoupled decay first, as PyTorch:
//   p -= lr*wd*p;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;  p -= lr * mhat / (sqrt(vhat) + eps)
void adamw_update(real *p, const real *g, real *mm, real *vv, size_t n, double lr, double b1, double b2,
                  double eps, double wd, int t) {
    double bc1 = 1.0 - pow(b1, t), bc2 = 1.0 - pow(b2, t);
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        p[i] -= (real)(lr * wd) * p[i];
        mm[i] = (real)(b1 * mm[i] + (1.0 - b1) * g[i]);
        vv[i] = (real)(b2 * vv[i] + (1.0 - b2) * (double)g[i] * g[i]);
        double mhat = mm[i] / bc1, vhat = vv[i] / bc2;
        p[i] -= (real)(lr * mhat / (sqrt(vhat) + eps));
    }
}

typedef struct {
    double beta1, beta2, eps, weight_decay, mlp_weight_decay, embed_weight_decay;
    int fixed_row; // a row of wte that is not trained (--eot-row fixed: the end-of-text token's); -1: none
} AdamW;

// --eot-row fixed: the end-of-text row of wte is not trained; after each step it is put back in
// the direction it had, at the mean norm of the other rows. Under -f eot token 0 is always the
// end-of-text token, and a learned row lets the model grow token 0's residual norm in the
// embedding itself, with no MLP spike (the chain of the paper: gradient sink -> MLP spike ->
// residual carry). At the other rows' norm token 0 starts neither large nor small (its RMSNorm
// Jacobian, about 1/rms(h), like every other token's), and any growth is written by the blocks.
static void embed_fix_row(real *wte, int V, int C, int row, const real *kept) {
    double mean = 0, own = 0;
    for (int v = 0; v < V; v++) {
        if (v == row) continue;
        double s2 = 0;
        for (int c = 0; c < C; c++) s2 += (double)wte[(size_t)v * C + c] * wte[(size_t)v * C + c];
        mean += sqrt(s2);
    }
    mean /= V - 1;
    for (int c = 0; c < C; c++) own += (double)kept[c] * kept[c];
    own = sqrt(own);
    for (int c = 0; c < C; c++) wte[(size_t)row * C + c] = own > 0 ? (real)(kept[c] * mean / own) : 0;
}

// weight decay on the embedding, every matrix and the LM head (the MLP's three matrices and the
// token embedding at rates of their own, mlp_weight_decay and embed_weight_decay); not on gains,
// not on theta. theta is trained only when V-scale is learned. o->fixed_row >= 0: that row of
// wte is not trained (embed_fix_row).
void model_update(Model *m, const AdamW *o, double lr) {
    m->adam_t++;
    int C = m->cfg.d_model;
    real *kept = NULL;
    if (o->fixed_row >= 0) {
        kept = xcalloc(C, sizeof(real));
        memcpy(kept, m->params.wte + (size_t)o->fixed_row * C, C * sizeof(real));
    }
    Slot t[NUM_PARAM_TENSORS];
    model_params(m, t);
    size_t off = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        real **at = t[i].at;
        int mlp = at == &m->params.w_gate || at == &m->params.w_up || at == &m->params.w_down;
        double wd = t[i].kind != KIND_MATRIX ? 0.0 : mlp ? o->mlp_weight_decay
                    : at == &m->params.wte ? o->embed_weight_decay : o->weight_decay;
        if (!(t[i].kind == KIND_THETA && m->cfg.vscale != VSCALE_LEARNED))
            adamw_update(m->params_memory + off, m->grads_memory + off, m->m_memory + off, m->v_memory + off,
                         t[i].size, lr, o->beta1, o->beta2, o->eps, wd, m->adam_t);
        off += t[i].size;
    }
    if (kept) embed_fix_row(m->params.wte, m->cfg.vocab_size, C, o->fixed_row, kept);
    free(kept);
}

// index of the first NaN or infinity in x[0..n), or n when all are finite
static size_t first_nonfinite(const real *x, size_t n) {
    size_t i = 0;
    while (i < n && isfinite(x[i])) i++;
    return i;
}

// One training step on the batch in m->inputs, m->targets (m->B x m->T): the gradients, the
// global norm clipped, AdamW at lr. Fills loss and norm (before clipping). A NaN or infinity
// stops the step: STEP_NONFINITE_GRAD when the loss or the gradient norm is not finite (the
// parameters are left untouched), STEP_NONFINITE_PARAM when the update made parameter *bad
// not finite. STEP_OK otherwise.
enum { STEP_OK, STEP_NONFINITE_GRAD, STEP_NONFINITE_PARAM };
int train_step(Model *m, const AdamW *opt, double lr, double clip, double *loss, double *norm, size_t *bad) {
    *loss = model_forward_backward(m, m->B, m->T);
    *norm = clip_grads(m->grads_memory, m->num_parameters, clip);
    if (!isfinite(*loss) || !isfinite(*norm)) return STEP_NONFINITE_GRAD;
    model_update(m, opt, lr);
    *bad = first_nonfinite(m->params_memory, m->num_parameters);
    return *bad < m->num_parameters ? STEP_NONFINITE_PARAM : STEP_OK;
}

// ----------------------------------------------------------------------------
// measurements: the paper's quantities, read from what forward and backward stored.
// Token 0 is the candidate sink (s = 0). All gradients are of the mean training loss.
// "Batch-aggregated" (the paper's word): sum a position's gradient over the batch rows, as one
// optimizer step sees it, then take the norm. Measurements use doubles and never change the model.

#define SINK_EPS 0.3         // a head is a sink head when its sink score alpha > 0.3
#define SINK_T_EPS 64        // alpha averages a[t,0] over the first min(64, T) queries
#define PROBE_POSITIONS 32   // per-position quantities are kept for t < 32
#define RATIO_POSITIONS 16   // "token 0 vs the rest" compares t = 0 with the mean over t = 1..15

// sink score of head h: alpha_h = mean over batch rows and queries t < T_eps of a[t,0].
// att (B,H,T,T) of one layer.
double sink_score(const real *att, int B, int H, int T, int h) {
    int te = T < SINK_T_EPS ? T : SINK_T_EPS;
    double s = 0;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < te; t++) s += att[(((size_t)b * H + h) * T + t) * T + 0];
    return s / ((double)B * te);
}

// fraction of heads with alpha > SINK_EPS
double sink_rate(const double *alpha, int H) {
    int n = 0;
    for (int h = 0; h < H; h++) n += alpha[h] > SINK_EPS;
    return (double)n / H;
}

// column mass M_0 = sum_t a[t,0] and second moment S_0 = sum_t a[t,0]^2 (Theorem 1's M_s, S_s
// for s = 0), averaged over heads and batch rows
void column_moments(double *M0, double *S0, const real *att, int B, int H, int T) {
    double m = 0, s = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int t = 0; t < T; t++) {
                double a = att[(((size_t)b * H + h) * T + t) * T + 0];
                m += a;
                s += a * a;
            }
    *M0 = m / ((double)B * H);
    *S0 = s / ((double)B * H);
}

// activation norms: out[t] = mean over batch rows and heads of ||x[b,t,h,:]||, t < P.
// x (B,T,NH*D); NH = 1, D = C for the residual stream.
void mean_norms(double *out, const real *x, int B, int T, int NH, int D, int P) {
    for (int t = 0; t < P; t++) {
        double acc = 0;
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) {
                const real *v = x + (((size_t)b * T + t) * NH + h) * D;
                double ss = 0;
                for (int i = 0; i < D; i++) ss += (double)v[i] * v[i];
                acc += sqrt(ss);
            }
        out[t] = acc / ((double)B * NH);
    }
}

// batch-aggregated gradient norms: out[t] = mean over heads of ||sum_b (g - minus)[b,t,h,:]||,
// t < P (minus may be NULL). g (B,T,NH*D).
void aggregated_norms(double *out, const real *g, const real *minus, int B, int T, int NH, int D, int P) {
    double *sum = xcalloc(D, sizeof(double));
    for (int t = 0; t < P; t++) {
        double acc = 0;
        for (int h = 0; h < NH; h++) {
            memset(sum, 0, D * sizeof(double));
            for (int b = 0; b < B; b++) {
                size_t off = (((size_t)b * T + t) * NH + h) * D;
                for (int i = 0; i < D; i++) sum[i] += g[off + i] - (minus ? minus[off + i] : 0);
            }
            double ss = 0;
            for (int i = 0; i < D; i++) ss += sum[i] * sum[i];
            acc += sqrt(ss);
        }
        out[t] = acc / NH;
    }
    free(sum);
}

// token 0 against the rest: x[0] / mean(x[1..n-1]) (NaN when n < 2). With x the batch-aggregated
// gradient norms at the attention input x~ over n = 32 positions, this is the paper's gradient-
// sink ratio R_GS = ||G_0|| / mean_{t=1..31} ||G_t|| (a shorter T uses 1..T-1).
double tok0_ratio(const double *x, int n) {
    if (n < 2) return NAN;
    double m = 0;
    for (int t = 1; t < n; t++) m += x[t];
    return x[0] / (m / (n - 1));
}

double median(const double *x, int n) {
    double *s = xcalloc(n, sizeof(double));
    memcpy(s, x, n * sizeof(double));
    for (int i = 1; i < n; i++) // insertion sort: n is the number of layers
        for (int j = i; j > 0 && s[j - 1] > s[j]; j--) { double t = s[j]; s[j] = s[j - 1]; s[j - 1] = t; }
    double m = n % 2 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
    free(s);
    return m;
}

// The probe: every quantity of the paper's figures, per layer (and per position t < P).
// One table names the per-(layer, position) arrays; the JSON writer and the README use its names.
enum {
    PQ_NORM_H_IN, PQ_NORM_H_HALF, PQ_NORM_H_OUT, PQ_NORM_R_ATTN, PQ_NORM_R_MLP, PQ_NORM_V, PQ_NORM_VHAT,
    PQ_GRAD_X_ATTN, PQ_GRAD_X_MLP, PQ_GRAD_Q, PQ_GRAD_K, PQ_GRAD_V,
    PQ_ATTN_BLOAT, PQ_ATTN_COMPRESS, PQ_ATTN_CHANGE, PQ_MLP_BLOAT, PQ_MLP_COMPRESS, PQ_MLP_CHANGE,
    NUM_PQ
};
static const char *PQ_NAMES[NUM_PQ] = {
    "norm_h_in", "norm_h_half", "norm_h_out", "norm_r_attn", "norm_r_mlp", "norm_v", "norm_vhat",
    "grad_x_attn", "grad_x_mlp", "grad_q", "grad_k", "grad_v",
    "attn_bloat", "attn_compress", "attn_change", "mlp_bloat", "mlp_compress", "mlp_change"};
// per layer, token 0 against the rest (tok0_ratio over t < 16) of these norms
enum { RATIO_H_OUT, RATIO_R_MLP, RATIO_R_ATTN, RATIO_V, RATIO_GRAD_V, NUM_RATIO };
static const char *RATIO_NAMES[NUM_RATIO] = {"ratio_h_out", "ratio_r_mlp", "ratio_r_attn", "ratio_v", "ratio_grad_v"};
static const int RATIO_OF[NUM_RATIO] = {PQ_NORM_H_OUT, PQ_NORM_R_MLP, PQ_NORM_R_ATTN, PQ_NORM_V, PQ_GRAD_V};

typedef struct {
    int L, H, Hkv, P, rgs_n;            // rgs_n: R_gs averages positions 1..rgs_n-1
    double loss;                        // mean loss on the probe batch
    double *alpha;                      // (L, H) sink score per head
    double *sink_rate, *M0, *S0, *R_gs; // (L)
    double *pq[NUM_PQ];                 // (L, P) each, named by PQ_NAMES
    double *lambda;                     // (L, Hkv) V-scale lambda (0 when off)
    double *phi0, *phi_rest;            // (L) V-scale factor r/(r+c) at token 0, mean over t = 1..15
    int vscale_path;                    // the interventions the gradients were taken under
    double sink_grad;
    // summaries over the layers (the stdout line, train.sh and dev/compare.py read them)
    double sink_mean, M0_mean, R_gs_median, dv_dk_0;
    double *ratio[NUM_RATIO];           // (L) named by RATIO_NAMES
    double *grad_mean[3];               // (P) q, k, v gradient norms averaged over layers
} Probe;

void probe_alloc(Probe *pr, const Config *c, int T) {
    memset(pr, 0, sizeof(*pr));
    int L = pr->L = c->n_layer, P = pr->P = T < PROBE_POSITIONS ? T : PROBE_POSITIONS, H = pr->H = c->n_head;
    int Hkv = pr->Hkv = c->n_kv_head;
    pr->rgs_n = P;
    pr->sink_grad = 1;
    double *x = pr->alpha = xcalloc((size_t)L * (H + Hkv + 6 + NUM_PQ * P + NUM_RATIO) + 3 * P, sizeof(double));
    x += (size_t)L * H; // one block for all the arrays, carved in turn
    pr->lambda = x;
    x += (size_t)L * Hkv;
    double **perlayer[] = {&pr->sink_rate, &pr->M0, &pr->S0, &pr->R_gs, &pr->phi0, &pr->phi_rest};
    for (int i = 0; i < 6; i++, x += L) *perlayer[i] = x;
    for (int q = 0; q < NUM_PQ; q++, x += (size_t)L * P) pr->pq[q] = x;
    for (int i = 0; i < NUM_RATIO; i++, x += L) pr->ratio[i] = x;
    for (int i = 0; i < 3; i++, x += P) pr->grad_mean[i] = x;
}
void probe_free(Probe *pr) { free(pr->alpha); memset(pr, 0, sizeof(*pr)); }

static void ratio_of(double *out, const double *num, const double *den, int P) {
    for (int t = 0; t < P; t++) out[t] = num[t] / den[t];
}

// the summaries over the layers, from the per-layer quantities
void probe_summarize(Probe *pr) {
    int L = pr->L, P = pr->P, nr = P < RATIO_POSITIONS ? P : RATIO_POSITIONS;
    pr->sink_mean = pr->M0_mean = 0;
    for (int t = 0; t < P; t++) pr->grad_mean[0][t] = pr->grad_mean[1][t] = pr->grad_mean[2][t] = 0;
    for (int l = 0; l < L; l++) {
        pr->sink_mean += pr->sink_rate[l] / L;
        pr->M0_mean += pr->M0[l] / L;
        for (int i = 0; i < NUM_RATIO; i++) pr->ratio[i][l] = tok0_ratio(pr->pq[RATIO_OF[i]] + (size_t)l * P, nr);
        for (int t = 0; t < P; t++)
            for (int i = 0; i < 3; i++) pr->grad_mean[i][t] += pr->pq[PQ_GRAD_Q + i][(size_t)l * P + t] / L;
    }
    pr->R_gs_median = median(pr->R_gs, L);
    pr->dv_dk_0 = pr->grad_mean[2][0] / pr->grad_mean[1][0];
}

// fill the probe from the activations and gradients of the last forward + backward (B, T)
void probe_measure(Probe *pr, const Model *m, int B, int T) {
    const Config *c = &m->cfg;
    int C = c->d_model, H = c->n_head, Hkv = c->n_kv_head, D = C / H, L = c->n_layer, P = pr->P;
    int nr = P < RATIO_POSITIONS ? P : RATIO_POSITIONS;
    pr->vscale_path = m->vscale_path;
    pr->sink_grad = m->sink_grad;
    double *dh = xcalloc(P, sizeof(double)), *dh_half = xcalloc(P, sizeof(double));
    double *dh_out = xcalloc(P, sizeof(double)), *dh_norm = xcalloc(P, sizeof(double));
    for (int l = 0; l < L; l++) {
        LayerActs s = layer_acts(&m->acts, m, l), g = layer_acts(&m->grads_acts, m, l);
        double *alpha = pr->alpha + (size_t)l * H, *out[NUM_PQ];
        for (int k = 0; k < NUM_PQ; k++) out[k] = pr->pq[k] + (size_t)l * P;
        // attention sink: where the attention weights go
        for (int h = 0; h < H; h++) alpha[h] = sink_score(s.att, B, H, T, h);
        pr->sink_rate[l] = sink_rate(alpha, H);
        column_moments(&pr->M0[l], &pr->S0[l], s.att, B, H, T);
        // massive activations: norms per position
        mean_norms(out[PQ_NORM_H_IN], s.h_in, B, T, 1, C, P);
        mean_norms(out[PQ_NORM_H_HALF], s.h_half, B, T, 1, C, P);
        mean_norms(out[PQ_NORM_H_OUT], s.h_out, B, T, 1, C, P);
        mean_norms(out[PQ_NORM_R_ATTN], s.r_attn, B, T, 1, C, P);
        mean_norms(out[PQ_NORM_R_MLP], s.r_mlp, B, T, 1, C, P);
        mean_norms(out[PQ_NORM_V], s.v, B, T, Hkv, D, P);
        mean_norms(out[PQ_NORM_VHAT], s.vhat, B, T, Hkv, D, P);
        // gradient sink: batch-aggregated gradients at x~, and at q, k (after RoPE), v (before V-scale)
        aggregated_norms(out[PQ_GRAD_X_ATTN], g.x_attn, NULL, B, T, 1, C, P);
        aggregated_norms(out[PQ_GRAD_X_MLP], g.x_mlp, NULL, B, T, 1, C, P);
        aggregated_norms(out[PQ_GRAD_Q], g.q, NULL, B, T, H, D, P);
        aggregated_norms(out[PQ_GRAD_K], g.k, NULL, B, T, Hkv, D, P);
        aggregated_norms(out[PQ_GRAD_V], g.v, NULL, B, T, Hkv, D, P);
        pr->R_gs[l] = tok0_ratio(out[PQ_GRAD_X_ATTN], pr->rgs_n);
        // gradient reshaping by the pre-norm branch (h -> x~ -> r -> h_half):
        //   Bloat = |dx~| / |dr|, Compress = |dh - dh_half| / |dx~|, Change = |dh| / |dh_half|
        // where dr = dh_half (residual) and dh - dh_half is what came back through RMSNorm.
        aggregated_norms(dh, g.h_in, NULL, B, T, 1, C, P);
        aggregated_norms(dh_half, g.h_half, NULL, B, T, 1, C, P);
        aggregated_norms(dh_out, g.h_out, NULL, B, T, 1, C, P);
        aggregated_norms(dh_norm, g.h_in, g.h_half, B, T, 1, C, P);
        ratio_of(out[PQ_ATTN_BLOAT], out[PQ_GRAD_X_ATTN], dh_half, P);
        ratio_of(out[PQ_ATTN_COMPRESS], dh_norm, out[PQ_GRAD_X_ATTN], P);
        ratio_of(out[PQ_ATTN_CHANGE], dh, dh_half, P);
        aggregated_norms(dh_norm, g.h_half, g.h_out, B, T, 1, C, P); // the MLP branch: h_half -> h_out
        ratio_of(out[PQ_MLP_BLOAT], out[PQ_GRAD_X_MLP], dh_out, P);
        ratio_of(out[PQ_MLP_COMPRESS], dh_norm, out[PQ_GRAD_X_MLP], P);
        ratio_of(out[PQ_MLP_CHANGE], dh_half, dh_out, P);
        // V-scale: lambda and the factor r/(r+c) it applies at token 0 and (mean) at t = 1..15
        LayerParams p = layer_params(&m->params, c, l);
        double f0 = 0, fr = 0;
        for (int h = 0; h < Hkv; h++) {
            pr->lambda[(size_t)l * Hkv + h] = c->vscale == VSCALE_OFF ? 0 : exp(p.theta[h]); // fixed: -A's value
            for (int b = 0; b < B; b++)
                for (int t = 0; t < nr; t++) {
                    double f = s.vphi[((size_t)b * T + t) * Hkv + h];
                    if (t == 0) f0 += f; else fr += f;
                }
        }
        pr->phi0[l] = f0 / ((double)B * Hkv);
        pr->phi_rest[l] = nr > 1 ? fr / ((double)B * Hkv * (nr - 1)) : NAN;
    }
    free(dh); free(dh_half); free(dh_out); free(dh_norm);
    probe_summarize(pr);
}


// ----------------------------------------------------------------------------
// files. Readers return 0 (or a pointer) on success; on failure -1 (or NULL) with a one-line
// reason naming the file in err, which main turns into die(). Every file is stat'ed before it
// is opened: opening a FIFO blocks until a writer comes, and a device or a folder is no file.

static int errorf(char *err, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -1;
}
static int not_regular(const char *path, char *err, size_t errlen) { // an absent file is fine here
    struct stat st;
    return stat(path, &st) == 0 && !S_ISREG(st.st_mode) ? errorf(err, errlen, "%s is not a regular file", path) : 0;
}
int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

// Reads a regular file, whole (most 0) or its first `most` bytes; *size is the file's size and
// *got the bytes read (the size, when whole). NULL with err set when it cannot.
static unsigned char *read_part(const char *path, size_t most, size_t *size, size_t *got, char *err, size_t errlen) {
    struct stat st;
    FILE *f = NULL;
    if (!*path) errorf(err, errlen, "an empty file name was given");
    else if (!not_regular(path, err, errlen) && !(f = fopen(path, "rb")))
        errorf(err, errlen, "cannot open %s: %s", path, strerror(errno));
    if (f && (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode))) { // replaced between the two looks
        fclose(f);
        f = NULL;
        errorf(err, errlen, "%s is not a regular file", path);
    }
    if (!f) return NULL;
    size_t n = most && most < (size_t)st.st_size ? most : (size_t)st.st_size;
    unsigned char *buf = xcalloc(n + 1, 1);
    *size = (size_t)st.st_size;
    *got = fread(buf, 1, n, f);
    fclose(f);
    if (*got == n) return buf;
    free(buf);
    errorf(err, errlen, "cannot read %s", path);
    return NULL;
}

// Files never seen half-written (checkpoints): a header of 256 int32 and float32 arrays go to
// PATH.tmp, flushed and synced; rename_synced then puts it in place in one step, so a kill or a
// full disk at any moment leaves the previous complete PATH or the new one. Non-finite values
// are refused: a diverged run never replaces a good checkpoint.
#define HEADER_INTS 256
static int write_tmp(const char *path, char *tmp, const int32_t *header, const real **arrays, const size_t *lens,
                     int n, char *err, size_t errlen) {
    float buf[4096];
    for (int a = 0; a < n; a++) {
        size_t j = first_nonfinite(arrays[a], lens[a]);
        if (j < lens[a]) return errorf(err, errlen, "refusing to write %s: value %zu of array %d is not finite", path, j, a);
    }
    if (snprintf(tmp, 4096, "%s.tmp", path) >= 4096) return errorf(err, errlen, "path too long: %s", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return errorf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
    int bad = fwrite(header, sizeof(int32_t), HEADER_INTS, f) != HEADER_INTS;
    for (int a = 0; a < n; a++)
        for (size_t i = 0, c; i < lens[a] && !bad; i += c) {
            c = lens[a] - i < 4096 ? lens[a] - i : 4096;
            for (size_t j = 0; j < c; j++) buf[j] = (float)arrays[a][i + j];
            bad = fwrite(buf, sizeof(float), c, f) != c;
        }
    bad |= fflush(f) != 0 || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad) remove(tmp);
    return bad ? errorf(err, errlen, "writing %s failed (disk full?); %s is unchanged", tmp, path) : 0;
}
static int rename_synced(const char *tmp, const char *path, char *err, size_t errlen) {
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (rename(tmp, path) != 0) {
        int e = errno;
        remove(tmp);
        return errorf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(e));
    }
    snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) + 1 : 1, slash ? path : ".");
    int fd = open(dir, O_RDONLY); // the rename reaches the disk with its folder (best effort)
    if (fd >= 0) { fsync(fd); close(fd); }
    return 0;
}

// Appends a line and '\n' to a log that grows during a run (one JSON object per line) in one
// write() on an O_APPEND descriptor, synced: the lines already there are never touched.
int append_line(const char *path, const char *line, char *err, size_t errlen) {
    if (not_regular(path, err, errlen)) return -1;
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (fd < 0) return errorf(err, errlen, "cannot append to %s: %s", path, strerror(errno));
    size_t n = strlen(line);
    char *buf = xcalloc(n + 1, 1);
    memcpy(buf, line, n);
    buf[n] = '\n';
    int bad = write(fd, buf, n + 1) != (ssize_t)(n + 1);
    bad |= fsync(fd) != 0;
    bad |= close(fd) != 0;
    free(buf);
    return bad ? errorf(err, errlen, "appending to %s failed (disk full?)", path) : 0;
}

int make_dirs(const char *path) { // mkdir -p; 0 on success
    char buf[4096];
    struct stat st;
    if (!*path) return -1;
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') { *p = 0; mkdir(buf, 0755); *p = '/'; }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
    return stat(buf, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

// The header of 256 int32 that every file here starts with: copied into h, its magic and
// version (lo..hi) checked. `what` names the kind of file in messages ("an llm.c token file").
static int header_parse(int32_t *h, const char *name, const unsigned char *buf, size_t size, int32_t magic,
                        int lo, int hi, const char *what, char *err, size_t errlen) {
    char range[32];
    snprintf(range, sizeof(range), lo < hi ? "%d to %d" : "%d", lo, hi);
    if (size < HEADER_INTS * sizeof(int32_t))
        return errorf(err, errlen, "%s: too short for the header of %s (%zu bytes)", name, what, size);
    memcpy(h, buf, HEADER_INTS * sizeof(int32_t));
    if (h[0] != magic) return errorf(err, errlen, "%s: bad magic %d (expected %d: %s)", name, h[0], magic, what);
    if (h[1] < lo || h[1] > hi) return errorf(err, errlen, "%s: unsupported version %d of %s (expected %s)", name, h[1], what, range);
    return 0;
}
static real float_at(const unsigned char *buf, size_t i) { // the i-th float32 of buf
    float v;
    memcpy(&v, buf + i * sizeof(float), sizeof(float));
    return v;
}

// ----------------------------------------------------------------------------
// data loader: token files in llm.c's format. Header of 256 int32: magic 20240520, version 1,
// token count; then `count` uint16 tokens. Read as a stream (evaluation, the probe, and
// training with `-R stream`), batch k holds inputs tokens[k*B*T .. k*B*T + B*T) and the same
// shifted by one as targets; batches wrap. With `-R random` a training batch is B windows of T
// tokens at random offsets (as nanoGPT draws them), so one batch mixes the whole corpus.

#define DATA_MAGIC 20240520
typedef struct {
    uint16_t *tokens;
    size_t count, num_batches;
    int B, T;
} DataLoader;

// every header field is checked before it is used
int dataloader_open(DataLoader *dl, const char *path, int B, int T, int vocab_size, char *err, size_t errlen) {
    int32_t h[HEADER_INTS];
    size_t size, got, hs = sizeof(h), count = 0;
    memset(dl, 0, sizeof(*dl));
    unsigned char *buf = read_part(path, 0, &size, &got, err, errlen);
    if (!buf) return -1;
    int rc = header_parse(h, path, buf, size, DATA_MAGIC, 1, 1, "an llm.c token file", err, errlen);
    if (!rc && h[2] <= 0) rc = errorf(err, errlen, "%s: header says %d tokens (a token file needs at least one)", path, h[2]);
    if (!rc && size - hs != (count = (size_t)h[2]) * 2)
        rc = errorf(err, errlen, "%s: header says %zu tokens (%zu bytes) but the file has %zu bytes after the header",
                    path, count, count * 2, size - hs);
    if (!rc && count < (size_t)B * T + 1)
        rc = errorf(err, errlen, "%s: %zu tokens is fewer than one batch needs (B*T+1 = %zu; make -b or -t smaller)",
                    path, count, (size_t)B * T + 1);
    if (!rc) dl->tokens = xcalloc(count, sizeof(uint16_t));
    for (size_t i = 0; !rc && i < count; i++) {
        memcpy(dl->tokens + i, buf + hs + 2 * i, 2);
        if (dl->tokens[i] >= vocab_size)
            rc = errorf(err, errlen, "%s: token %d at position %zu is not below the vocab size %d", path, dl->tokens[i], i, vocab_size);
    }
    free(buf);
    if (rc) { free(dl->tokens); dl->tokens = NULL; return -1; }
    *dl = (DataLoader){dl->tokens, count, (count - 1) / ((size_t)B * T), B, T};
    return 0;
}
void dataloader_free(DataLoader *dl) { free(dl->tokens); dl->tokens = NULL; }

// first-token modes: ANY reads the stream as it is (paper-faithful windows, arbitrary first
// token); EOT replaces the first input of every row by the end-of-text token (a fixed sink
// candidate); EOT_MASKED does that and leaves the row's first target out of the loss (target
// IGNORE): from the end-of-text token alone it is a guess of a token from the middle of a text
enum { FIRST_ANY = 0, FIRST_EOT = 1, FIRST_EOT_MASKED = 2 };
static const char *FIRST_TOKEN_NAMES[4] = {"any", "eot", "eot-masked", NULL};
enum { ROWS_STREAM = 0, ROWS_RANDOM = 1 };
static const char *ROWS_NAMES[3] = {"stream", "random", NULL};
enum { EOT_ROW_LEARNED = 0, EOT_ROW_FIXED = 1 };
static const char *EOT_ROW_NAMES[3] = {"learned", "fixed", NULL};

// one row: inputs tokens[start .. start+T), targets the same shifted by one
static void dataloader_row(const DataLoader *dl, size_t start, int *inputs, int *targets, int first_token, int eot) {
    for (int t = 0; t < dl->T; t++) {
        inputs[t] = dl->tokens[start + t];
        targets[t] = dl->tokens[start + t + 1];
    }
    if (first_token != FIRST_ANY) inputs[0] = eot;
    if (first_token == FIRST_EOT_MASKED) targets[0] = IGNORE;
}

// batch k of the stream: B consecutive windows
void dataloader_batch(const DataLoader *dl, size_t k, int *inputs, int *targets, int first_token, int eot) {
    size_t start = (k % dl->num_batches) * dl->B * dl->T;
    for (int b = 0; b < dl->B; b++)
        dataloader_row(dl, start + (size_t)b * dl->T, inputs + (size_t)b * dl->T, targets + (size_t)b * dl->T,
                       first_token, eot);
}

// batch k of random windows: B offsets uniform in [0, count - T), drawn from (seed, k) alone,
// so a resumed run draws the batches the uninterrupted run would have
void dataloader_random_batch(const DataLoader *dl, int seed, size_t k, int *inputs, int *targets, int first_token,
                             int eot) {
    Rng rng;
    rng_seed(&rng, 0x5EEDull * ((uint64_t)seed + 1) + (uint64_t)k * (uint64_t)dl->B * 0x9E3779B97F4A7C15ull);
    for (int b = 0; b < dl->B; b++)
        dataloader_row(dl, rng_u64(&rng) % (dl->count - dl->T), inputs + (size_t)b * dl->T,
                       targets + (size_t)b * dl->T, first_token, eot);
}

// ----------------------------------------------------------------------------
// checkpoints. Model file: header of 256 int32: [0] magic 20261128, [1] version 3, [2] vocab_size,
// [3] d_model, [4] n_layer, [5] n_head, [6] n_kv_head, [7] ffn_hidden, [8] max_seq_len,
// [9] vscale mode, [10] step, [11-12] rope_theta and [13-14] rms_norm_eps (float64 each, in two
// ints), [15] eot id, [16] --vscale-path, [17-18] --sink-grad G (float64); then every parameter
// tensor as float32, row-major, in ParamTensors order. Version 2 (no [16-18]) reads as path
// both, G 1. Optimizer file (PATH.opt): [0] magic 20261129, [1] version 2, [2] AdamW step count,
// [3] training step, [4] number of parameters, then the run's Schedule: [5] steps, [6] warmup,
// [7] B, [8] T, [9] seed, [10] rows, [11] first token, [12] eot row, [13-24] lr, min lr, weight
// decay, MLP decay, embedding decay, grad clip (float64 each; version 1 has none); then the
// AdamW first moments and second moments as float32.
#define CKPT_MAGIC 20261128
#define CKPT_VERSION 3
#define OPT_MAGIC 20261129
#define OPT_VERSION 2

// What a training run saves: PATH and PATH.opt, as a pair that a kill at any instant leaves
// resumable. Both are written to temp files and synced; then the old PATH.opt steps aside as
// PATH.opt.prev, the new PATH.opt and the new PATH are renamed into place, and PATH.opt.prev is
// removed. In between, the old PATH pairs with PATH.opt.prev, and a resume takes the optimizer
// file whose step is the model's (resume_opt_path). A failed rename puts the old pair back.
int checkpoint_save(const Model *m, const char *path, int step, char *err, size_t errlen) {
    const Config *c = &m->cfg;
    const Schedule *s = &m->sched;
    int32_t h[HEADER_INTS] = {CKPT_MAGIC, CKPT_VERSION, c->vocab_size, c->d_model, c->n_layer, c->n_head,
                              c->n_kv_head, c->ffn_hidden, c->max_seq_len, c->vscale, step};
    int32_t ho[HEADER_INTS] = {OPT_MAGIC, OPT_VERSION, m->adam_t, step, (int32_t)m->num_parameters, s->steps,
                               s->warmup, s->B, s->T, s->seed, s->rows, s->first_token, s->eot_row};
    memcpy(h + 11, &c->rope_theta, sizeof(double));
    memcpy(h + 13, &c->rms_norm_eps, sizeof(double));
    h[15] = c->eot;
    h[16] = m->vscale_path;
    memcpy(h + 17, &m->sink_grad, sizeof(double));
    memcpy(ho + 13, &s->lr, 6 * sizeof(double)); // lr .. grad_clip
    char opt[4096], prev[4096], tmp[4096], opt_tmp[4096];
    const real *params[1] = {m->params_memory}, *moments[2] = {m->m_memory, m->v_memory};
    size_t lens[2] = {m->num_parameters, m->num_parameters};
    if (strlen(path) > 4000) return errorf(err, errlen, "path too long: %s", path);
    snprintf(opt, sizeof(opt), "%s.opt", path);
    snprintf(prev, sizeof(prev), "%s.opt.prev", path);
    if (write_tmp(path, tmp, h, params, lens, 1, err, errlen)) return -1;
    if (write_tmp(opt, opt_tmp, ho, moments, lens, 2, err, errlen)) { remove(tmp); return -1; }
    int had = file_exists(opt);
    if (had && rename(opt, prev) != 0) {
        int e = errno;
        remove(tmp); remove(opt_tmp);
        return errorf(err, errlen, "cannot rename %s to %s: %s", opt, prev, strerror(e));
    }
    if (rename_synced(opt_tmp, opt, err, errlen) || rename_synced(tmp, path, err, errlen)) {
        remove(tmp);
        if (had) rename(prev, opt); // the old pair, as it was
        else remove(opt);
        return -1;
    }
    if (had) remove(prev);
    return 0;
}

// Checks a model file's header (head: the file's first bytes) and that the file's size is
// exactly what the header implies, before anything is allocated for it. Fills cfg, step and
// the interventions (path, G). name is only for messages.
static int checkpoint_check(const char *name, const unsigned char *head, size_t headlen, size_t file_size, Config *cfg,
                            int *step, int *path, double *G, char *err, size_t errlen) {
    int32_t h[HEADER_INTS];
    if (header_parse(h, name, head, headlen, CKPT_MAGIC, 1, CKPT_VERSION, "a gradsink checkpoint", err, errlen)) return -1;
    if (h[1] == 1) // no RoPE base, eps or eot id
        return errorf(err, errlen, "%s: version 1 of a gradsink checkpoint is no longer read (convert it: dev/hf.py "
                      "export, then import)", name);
    Config c = {h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[15], 0, 0};
    memcpy(&c.rope_theta, h + 11, sizeof(double));
    memcpy(&c.rms_norm_eps, h + 13, sizeof(double));
    *path = h[1] >= 3 ? h[16] : VSCALE_PATH_BOTH;
    *G = 1;
    if (h[1] >= 3) memcpy(G, h + 17, sizeof(double));
    const char *why = config_check(&c);
    double want = sizeof(h) + config_num_parameters(&c) * sizeof(float);
    if (why) return errorf(err, errlen, "%s: header describes an impossible model (%s)", name, why);
    if (h[10] < 0) return errorf(err, errlen, "%s: negative step %d in header", name, h[10]);
    if (*path < VSCALE_PATH_BOTH || *path > VSCALE_PATH_BACKWARD)
        return errorf(err, errlen, "%s: unknown V-scale path %d in header", name, *path);
    if (*path != VSCALE_PATH_BOTH && c.vscale == VSCALE_OFF)
        return errorf(err, errlen, "%s: V-scale path %s in header, but V-scale is off", name, VSCALE_PATH_NAMES[*path]);
    if (!isfinite(*G)) return errorf(err, errlen, "%s: sink-grad factor in header is not finite", name);
    if ((double)file_size != want)
        return errorf(err, errlen, "%s: %zu bytes, but its header implies %.0f (truncated or not a checkpoint)", name,
                      file_size, want);
    *cfg = c;
    *step = h[10];
    return 0;
}

// Reads model file `path`: only its header into cfg and step (m NULL), or whole into m, built
// for the same configuration. Every value is checked in the file's bytes first, so the model
// is changed only when all is well.
int checkpoint_load(Model *m, const char *path, Config *cfg, int *step, char *err, size_t errlen) {
    size_t size, got, n = m ? m->num_parameters : 0;
    int vp = VSCALE_PATH_BOTH, rc;
    double G;
    unsigned char *buf = read_part(path, m ? 0 : HEADER_INTS * sizeof(int32_t), &size, &got, err, errlen), *src;
    if (!buf) return -1;
    rc = checkpoint_check(path, buf, got, size, cfg, step, &vp, &G, err, errlen);
    if (!rc && m && !config_equal(cfg, &m->cfg)) rc = errorf(err, errlen, "%s: header does not match the model", path);
    Slot t[NUM_PARAM_TENSORS];
    if (m) model_params(m, t);
    src = rc ? buf : buf + HEADER_INTS * sizeof(int32_t);
    for (size_t i = 0, k = 0, start = 0; !rc && i < n; i++) {
        while (i >= start + t[k].size) start += t[k++].size;
        if (!isfinite(float_at(src, i)))
            rc = errorf(err, errlen, "%s: tensor %s holds a non-finite value at index %zu", path, t[k].name, i - start);
    }
    for (size_t i = 0; !rc && i < n; i++) m->params_memory[i] = float_at(src, i);
    if (!rc && m) { m->vscale_path = vp; m->sink_grad = G; }
    free(buf);
    return rc;
}

// Reads optimizer file `path` of the checkpoint at step `step`: only its header (m NULL), whose
// schedule fills s (steps 0 when the file keeps none), or whole into m, which then holds the
// checkpoint. Every field is checked first, so m is changed only when all is well.
int optstate_load(Model *m, const char *path, int step, Schedule *s, char *err, size_t errlen) {
    int32_t h[HEADER_INTS];
    size_t size, got, P = m ? m->num_parameters : 0, bad = 2 * P;
    unsigned char *buf = read_part(path, m ? 0 : sizeof(h), &size, &got, err, errlen), *src;
    if (!buf) return -1;
    int rc = header_parse(h, path, buf, got, OPT_MAGIC, 1, OPT_VERSION, "a gradsink optimizer state", err, errlen);
    src = rc ? buf : buf + sizeof(h);
    if (!rc && h[3] != step) rc = errorf(err, errlen, "%s: is from step %d, the checkpoint from step %d", path, h[3], step);
    if (!rc && (h[2] < 0 || h[2] > h[3])) rc = errorf(err, errlen, "%s: AdamW step count %d outside 0..%d (the step)", path, h[2], h[3]);
    Schedule t = {0}; // steps 0: no schedule kept (a version-1 file, or a model that never trained)
    if (!rc && h[1] >= 2 && h[5] != 0) {
        t = (Schedule){h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], 0, 0, 0, 0, 0, 0};
        memcpy(&t.lr, h + 13, 6 * sizeof(double));
        int ok = t.steps >= h[3] && t.warmup >= 0 && t.B >= 1 && t.T >= 1 && t.T <= MAX_SEQ_LEN && (double)t.B * t.T <= 1e8 &&
                 t.rows >= ROWS_STREAM && t.rows <= ROWS_RANDOM && t.first_token >= FIRST_ANY &&
                 t.first_token <= FIRST_EOT_MASKED && t.eot_row >= EOT_ROW_LEARNED && t.eot_row <= EOT_ROW_FIXED;
        for (const double *d = &t.lr; d <= &t.grad_clip; d++) ok &= isfinite(*d) && *d >= 0;
        if (!ok) rc = errorf(err, errlen, "%s: the run's schedule in its header is out of range", path);
    }
    if (!rc && m && (h[4] < 0 || (size_t)h[4] != P))
        rc = errorf(err, errlen, "%s: holds state for %d parameters, the checkpoint has %zu", path, h[4], P);
    else if (!rc && m && size != sizeof(h) + 2 * P * sizeof(float))
        rc = errorf(err, errlen, "%s: %zu bytes, expected %zu (truncated?)", path, size, sizeof(h) + 2 * P * sizeof(float));
    for (size_t i = 0; !rc && i < 2 * P && bad == 2 * P; i++)
        if (!isfinite(float_at(src, i)) || (i >= P && float_at(src, i) < 0)) bad = i;
    if (!rc && bad < 2 * P)
        rc = errorf(err, errlen, "%s: AdamW %s moment %zu is %s", path, bad < P ? "first" : "second", bad % P,
                    isfinite(float_at(src, bad)) ? "negative" : "not finite");
    for (size_t i = 0; !rc && i < P; i++) { m->m_memory[i] = float_at(src, i); m->v_memory[i] = float_at(src, P + i); }
    if (!rc && m) { m->adam_t = h[2]; m->sched = t; }
    if (!rc && s) *s = t;
    free(buf);
    return rc;
}

// The optimizer file that pairs with checkpoint ckpt at step: ckpt.opt, or ckpt.opt.prev when a
// kill stopped checkpoint_save between its renames. Fills path and the schedule; -1 with
// ckpt.opt's own error when neither is from that step.
int resume_opt_path(const char *ckpt, int step, char *path, size_t pathlen, Schedule *s, char *err, size_t errlen) {
    char err2[1024];
    snprintf(path, pathlen, "%s.opt", ckpt);
    if (optstate_load(NULL, path, step, s, err, errlen) == 0) return 0;
    snprintf(path, pathlen, "%s.opt.prev", ckpt);
    return file_exists(path) ? optstate_load(NULL, path, step, s, err2, sizeof(err2)) : -1;
}

// ----------------------------------------------------------------------------
// tokenizer file (written by tokenizer.py), read here only to turn tokens back into text.
// Header of 256 int32: [0] magic 20261130, [1] version 1, [2] vocab size, [3] eot id,
// [4] number of merges M; then for each id a uint16 length and that many bytes; then M
// pairs of int32 (the merges, which only tokenizer.py needs).
#define TOKENIZER_MAGIC 20261130
typedef struct {
    int vocab_size, eot;
    unsigned char *file; // the whole file
    size_t *entry;       // (V) where token i's entry (a uint16 length, then its bytes) starts in file
} Tokenizer;

int tokenizer_load(Tokenizer *tk, const char *path, char *err, size_t errlen) {
    int32_t h[HEADER_INTS] = {0};
    size_t size, got, pos = sizeof(h);
    memset(tk, 0, sizeof(*tk));
    unsigned char *buf = read_part(path, 0, &size, &got, err, errlen);
    if (!buf) return -1;
    int rc = header_parse(h, path, buf, size, TOKENIZER_MAGIC, 1, 1, "a tokenizer.py file", err, errlen), V = h[2];
    if (!rc && (V < 2 || V > MAX_VOCAB)) rc = errorf(err, errlen, "%s: vocab size %d out of range 2..%d", path, V, MAX_VOCAB);
    else if (!rc && (h[3] < 0 || h[3] >= V)) rc = errorf(err, errlen, "%s: eot id %d outside the vocab of %d", path, h[3], V);
    else if (!rc && h[4] < 0) rc = errorf(err, errlen, "%s: negative merge count %d", path, h[4]);
    if (!rc) tk->entry = xcalloc(V, sizeof(size_t));
    for (int i = 0; !rc && i < V; i++) {
        size_t len = size - pos < 2 ? 0 : (buf[pos] | (size_t)buf[pos + 1] << 8);
        if (size - pos < 2) rc = errorf(err, errlen, "%s: ends inside the entry of token %d", path, i);
        else if (size - pos - 2 < len) rc = errorf(err, errlen, "%s: ends inside the bytes of token %d", path, i);
        tk->entry[i] = pos;
        pos += 2 + len;
    }
    if (!rc && size - pos != (size_t)h[4] * 8)
        rc = errorf(err, errlen, "%s: %zu bytes after the vocabulary, but the header says %d merges (%zu bytes)", path,
                    size - pos, h[4], (size_t)h[4] * 8);
    for (size_t k = 0; !rc && k < 2 * (size_t)h[4]; k++) {
        int32_t id;
        memcpy(&id, buf + pos + 4 * k, 4);
        if (id < 0 || id >= V) rc = errorf(err, errlen, "%s: merge %zu refers to token %d, outside the vocab", path, k / 2, id);
    }
    if (rc) { free(buf); free(tk->entry); tk->entry = NULL; return -1; }
    *tk = (Tokenizer){V, h[3], buf, tk->entry};
    return 0;
}

// writes token id's bytes to out (or its id in angle brackets when there is no tokenizer)
void tokenizer_write(const Tokenizer *tk, int id, FILE *out) {
    if (!tk || !tk->entry || id < 0 || id >= tk->vocab_size) { fprintf(out, "<%d>", id); return; }
    const unsigned char *e = tk->file + tk->entry[id];
    fwrite(e + 2, 1, e[0] | (size_t)e[1] << 8, out);
}
void tokenizer_free(Tokenizer *tk) { free(tk->file); free(tk->entry); memset(tk, 0, sizeof(*tk)); }

// ----------------------------------------------------------------------------
// sampling: start from end-of-text (as every document does) and draw tokens one at a time

static int descending(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x < y) - (x > y);
}
// draw from softmax(logits / temperature) restricted to the top_k largest (top_k 0: all;
// temperature 0: the largest, greedy)
int sample_token(const real *logits, int V, double temperature, int top_k, Rng *rng) {
    double *w = xcalloc(V, sizeof(double)), sum = 0, acc = 0;
    for (int i = 0; i < V; i++) w[i] = logits[i];
    qsort(w, V, sizeof(double), descending);
    double maxv = w[0], thresh = top_k > 0 && top_k < V ? w[top_k - 1] : -INFINITY; // the k-th largest, ties counted
    int pick = -1, last = 0;
    for (int i = 0; i < V && temperature <= 0 && pick < 0; i++) if (logits[i] == maxv) pick = i;
    for (int i = 0; i < V && pick < 0; i++) sum += w[i] = logits[i] < thresh ? 0 : exp((logits[i] - maxv) / temperature);
    double u = pick < 0 ? rng_uniform(rng) * sum : 0;
    for (int i = 0; i < V && pick < 0; i++) {
        if (logits[i] < thresh) continue;
        last = i;
        if ((acc += w[i]) > u) pick = i;
    }
    free(w);
    return pick < 0 ? last : pick;
}

void model_sample(Model *m, const Tokenizer *tk, int eot, int n, double temperature, int top_k, uint64_t seed, FILE *out) {
    int V = m->cfg.vocab_size, T = m->T;
    Rng rng;
    rng_seed(&rng, seed);
    int *ctx = xcalloc((size_t)n + 1, sizeof(int));
    ctx[0] = eot;
    for (int len = 1; len <= n; len++) {
        int start = len > T ? len - T : 0, t = len - start; // the last T tokens are the context
        memcpy(m->inputs, ctx + start, t * sizeof(int));
        model_forward(m, 1, t, 0);
        ctx[len] = sample_token(m->acts.logits + (size_t)(t - 1) * V, V, temperature, top_k, &rng);
        tokenizer_write(tk, ctx[len], out);
    }
    fprintf(out, "\n");
    free(ctx);
}

// mean loss over the first n batches of a loader
double evaluate(Model *m, const DataLoader *dl, int n, int first_token, int eot) {
    if (n > (int)dl->num_batches) n = (int)dl->num_batches;
    double sum = 0;
    for (int k = 0; k < n; k++) {
        dataloader_batch(dl, k, m->inputs, m->targets, first_token, eot);
        sum += model_forward(m, dl->B, dl->T, 1);
    }
    return sum / n;
}

// ----------------------------------------------------------------------------
// the probe pass: forward and backward on a fixed batch exactly as a training step does them,
// without the update, then the measurements above; one JSON line per probe in probes.jsonl.
// JSON has no NaN or Infinity: such numbers are written as null, and counted.

static void json_num(FILE *f, double x, int *nonfinite) {
    if (isfinite(x)) fprintf(f, "%.6g", x);
    else { fprintf(f, "null"); (*nonfinite)++; }
}
// , "key": [x0, ...] for a vector of n numbers (rows 0), or [[...], ...] for rows lists of n
static void json_key(FILE *f, const char *key, const double *x, int rows, int n, int *nonfinite) {
    fprintf(f, ", \"%s\": %s", key, rows ? "[" : "");
    for (int r = 0; r < (rows ? rows : 1); r++) {
        fprintf(f, r ? ", [" : "[");
        for (int i = 0; i < n; i++) { if (i) fprintf(f, ", "); json_num(f, x[(size_t)r * n + i], nonfinite); }
        fprintf(f, "]");
    }
    if (rows) fprintf(f, "]");
}
// , "key": x for one number
static void json_scalar(FILE *f, const char *key, double x, int *nonfinite) {
    fprintf(f, ", \"%s\": ", key);
    json_num(f, x, nonfinite);
}

// one JSON object on one line; returns how many numbers were not finite (written as null)
int probe_json(FILE *f, const Probe *pr, const Config *c, int step, double train_loss, double val_loss, int val_step,
               double probe_ms, int first_token) {
    int bad = 0, absent = 0, L = pr->L, P = pr->P; // absent: no training or validation loss yet (null)
    const char *grad_mean[3] = {"grad_q_mean", "grad_k_mean", "grad_v_mean"};
    fprintf(f, "{\"step\": %d", step);
    json_scalar(f, "train_loss", train_loss, &absent);
    json_scalar(f, "val_loss", val_loss, &absent);
    fprintf(f, ", \"val_loss_step\": %d", val_step);
    json_scalar(f, "probe_loss", pr->loss, &bad);
    fprintf(f, ", \"probe_ms\": %.1f, \"L\": %d, \"H\": %d, \"Hkv\": %d, \"positions\": %d, \"vscale\": \"%s\", "
               "\"vscale_path\": \"%s\", \"sink_grad\": %.6g, "
               "\"first_token\": \"%s\", \"rgs_positions\": [1, %d], \"rgs_short_T\": %s",
            probe_ms, L, pr->H, pr->Hkv, P, VSCALE_NAMES[c->vscale], VSCALE_PATH_NAMES[pr->vscale_path], pr->sink_grad,
            FIRST_TOKEN_NAMES[first_token], pr->rgs_n - 1, pr->rgs_n < PROBE_POSITIONS ? "true" : "false");
    json_key(f, "alpha", pr->alpha, L, pr->H, &bad);
    json_key(f, "sink_rate", pr->sink_rate, 0, L, &bad);
    json_key(f, "M0", pr->M0, 0, L, &bad);
    json_key(f, "S0", pr->S0, 0, L, &bad);
    json_key(f, "R_gs", pr->R_gs, 0, L, &bad);
    json_scalar(f, "R_gs_median", pr->R_gs_median, &bad);
    for (int q = 0; q < NUM_PQ; q++) json_key(f, PQ_NAMES[q], pr->pq[q], L, P, &bad);
    for (int i = 0; i < 3; i++) json_key(f, grad_mean[i], pr->grad_mean[i], 0, P, &bad);
    for (int i = 0; i < NUM_RATIO; i++) json_key(f, RATIO_NAMES[i], pr->ratio[i], 0, L, &bad);
    json_scalar(f, "dv_dk_0", pr->dv_dk_0, &bad);
    json_key(f, "vscale_lambda", pr->lambda, L, pr->Hkv, &bad);
    json_key(f, "vscale_phi0", pr->phi0, 0, L, &bad);
    json_key(f, "vscale_phi_rest", pr->phi_rest, 0, L, &bad);
    fprintf(f, "}");
    return bad;
}

// the layer where x is largest (a finite value before a non-finite one)
static int argmax(const double *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) if (x[i] > x[best] || (!isfinite(x[best]) && isfinite(x[i]))) best = i;
    return best;
}

// the compact line on stdout
void probe_print(const Probe *pr, int step, double probe_ms, FILE *out) {
    int lh = argmax(pr->ratio[RATIO_H_OUT], pr->L), lm = argmax(pr->ratio[RATIO_R_MLP], pr->L);
    fprintf(out, "probe step %d | loss %.4f | sink %.2f | M0 %.2f | R_gs med %.2f%s | h_out tok0/rest max %.2f (L%d) | "
                 "mlp tok0/rest max %.2f (L%d) | |dv0|/|dk0| %.2f | %.0f ms\n",
            step, pr->loss, pr->sink_mean, pr->M0_mean, pr->R_gs_median,
            pr->rgs_n < PROBE_POSITIONS ? " (T<32: over t=1..T-1)" : "", pr->ratio[RATIO_H_OUT][lh], lh,
            pr->ratio[RATIO_R_MLP][lm], lm, pr->dv_dk_0, probe_ms);
}

// forward + backward on the probe batch, then measure. Touches gradients, never parameters
// or optimizer state.
void probe_run(Probe *pr, Model *m, const DataLoader *dl, int first_token, int eot) {
    dataloader_batch(dl, 0, m->inputs, m->targets, first_token, eot);
    pr->loss = model_forward_backward(m, dl->B, dl->T);
    probe_measure(pr, m, dl->B, dl->T);
}

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// one probe as main runs it: measure, print the line, append the JSON to path (exit 2 if it cannot)
void probe_and_log(Probe *pr, Model *m, const DataLoader *dl, int first_token, int eot, int step, double train_loss,
                   double val_loss, int val_step, const char *path) {
    double t0 = now_seconds();
    probe_run(pr, m, dl, first_token, eot);
    double ms = (now_seconds() - t0) * 1e3;
    probe_print(pr, step, ms, stdout);
    char *line = NULL, err[1024];
    size_t len = 0;
    FILE *f = open_memstream(&line, &len);
    if (!f) die("out of memory");
    if (probe_json(f, pr, &m->cfg, step, train_loss, val_loss, val_step, ms, first_token))
        fprintf(stderr, "gradsink: warning: step %d: non-finite probe values written as null\n", step);
    if (fclose(f) != 0) die("out of memory");
    if (append_line(path, line, err, sizeof(err))) die("%s", err);
    free(line);
}

// ----------------------------------------------------------------------------
// command line: one table, parsed in one place; every flag takes a value

typedef struct {
    const char *train_path, *val_path, *tokenizer_path, *out_dir, *ckpt_in;
    int B, T, n_layer, d_model, n_head, n_kv_head, ffn_hidden, vocab_size;
    int steps, warmup, seed, vscale, first_token, rows, eot_row;
    double lr, min_lr, weight_decay, mlp_weight_decay, embed_weight_decay, grad_clip;
    int val_every, val_batches, ckpt_every, resume, eval_only, stop_at;
    int sample_tokens, top_k, sample_seed;
    double temperature;
    int probe_every, probe_only;
    double vscale_lambda;
    int vscale_path;  // the causal experiment's interventions
    double sink_grad;
} Options;

typedef struct {
    const char *shortf, *longf;
    char type;      // 'i' int, 'f' double, 's' string, 'e' one of names
    void *ptr;
    const char *def; // the default, read as a given value would be
    double lo, hi;  // the range of a number
    const char *const *names; // for 'e'
    const char *help;
    int given;
} Flag;

#define NUM_FLAGS 41
#define ANY -INFINITY, INFINITY
static void flag_table(Flag *f, Options *o) {
    Flag t[NUM_FLAGS] = {
        {"-i", "--train", 's', &o->train_path, "data/train.bin", ANY, NULL, "training tokens (llm.c .bin format)", 0},
        {"-j", "--val", 's', &o->val_path, "data/val.bin", ANY, NULL, "validation tokens; '' for none", 0},
        {"-z", "--tokenizer", 's', &o->tokenizer_path, "", ANY, NULL, "tokenizer.bin (default: beside the train file)", 0},
        {"-o", "--out", 's', &o->out_dir, "out", ANY, NULL, "output directory (log, checkpoints)", 0},
        {"-b", "--batch", 'i', &o->B, "16", 1, INFINITY, NULL, "batch size B (rows)", 0},
        {"-t", "--seq-len", 'i', &o->T, "128", 1, MAX_SEQ_LEN, NULL, "sequence length T", 0},
        {"-L", "--layers", 'i', &o->n_layer, "4", ANY, NULL, "number of layers", 0},
        {"-C", "--width", 'i', &o->d_model, "128", ANY, NULL, "model width d_model", 0},
        {"-H", "--heads", 'i', &o->n_head, "4", ANY, NULL, "query heads", 0},
        {"-K", "--kv-heads", 'i', &o->n_kv_head, "0", ANY, NULL, "key/value heads (0: same as heads)", 0},
        {"-F", "--ffn", 'i', &o->ffn_hidden, "352", ANY, NULL, "SwiGLU hidden size", 0},
        {"-V", "--vocab", 'i', &o->vocab_size, "0", ANY, NULL, "vocab size (0: from the tokenizer file)", 0},
        {"-n", "--steps", 'i', &o->steps, "1000", 0, INFINITY, NULL, "training steps", 0},
        {"-w", "--warmup", 'i', &o->warmup, "50", 0, INFINITY, NULL, "linear warmup steps", 0},
        {"-l", "--lr", 'f', &o->lr, "3e-3", 0, INFINITY, NULL, "max learning rate", 0},
        {"-m", "--min-lr", 'f', &o->min_lr, "-1", ANY, NULL, "min learning rate (<0: max/10)", 0},
        {"-d", "--weight-decay", 'f', &o->weight_decay, "0.1", 0, INFINITY, NULL, "AdamW weight decay (matrices only)", 0},
        {"-D", "--mlp-decay", 'f', &o->mlp_weight_decay, "-1", ANY, NULL, "weight decay of the MLP's matrices (<0: as --weight-decay)", 0},
        {"-E", "--embed-decay", 'f', &o->embed_weight_decay, "-1", ANY, NULL, "weight decay of the token embedding (<0: as --weight-decay)", 0},
        {"-g", "--grad-clip", 'f', &o->grad_clip, "1", 0, INFINITY, NULL, "global grad-norm clip (0: none)", 0},
        {"-s", "--seed", 'i', &o->seed, "1337", ANY, NULL, "seed of the initialisation", 0},
        {"-a", "--vscale", 'e', &o->vscale, "off", ANY, VSCALE_NAMES, "V-scale: off, fixed, learned", 0},
        {"-A", "--vscale-lambda", 'f', &o->vscale_lambda, "1", ANY, NULL, "V-scale's starting lambda, > 0 (fixed: its value throughout)", 0},
        {"-J", "--vscale-path", 'e', &o->vscale_path, "both", ANY, VSCALE_PATH_NAMES, "V-scale in: both passes (the paper's), forward only (gradient passes unchanged), backward only (forward on v, gradient times V-scale's Jacobian)", 0},
        {"-N", "--sink-grad", 'f', &o->sink_grad, "1", ANY, NULL, "multiply the gradient reaching position 0's values by G in every layer (forward unchanged; 0 cuts the value path of the gradient sink)", 0},
        {"-f", "--first-token", 'e', &o->first_token, "any", ANY, FIRST_TOKEN_NAMES, "first input of each row: any (as read), eot, eot-masked (eot, and its prediction not in the loss)", 0},
        {"-R", "--rows", 'e', &o->rows, "stream", ANY, ROWS_NAMES, "training rows: stream (consecutive windows), random (random offsets)", 0},
        {"-Z", "--eot-row", 'e', &o->eot_row, "learned", ANY, EOT_ROW_NAMES, "end-of-text row of the embedding: learned, fixed (not trained: its direction at the other rows' mean norm)", 0},
        {"-v", "--val-every", 'i', &o->val_every, "100", 0, INFINITY, NULL, "validate every N steps (0: only at the end)", 0},
        {"-e", "--val-batches", 'i', &o->val_batches, "8", 0, INFINITY, NULL, "validation batches", 0},
        {"-c", "--ckpt", 's', &o->ckpt_in, "", ANY, NULL, "start from this checkpoint instead of random init", 0},
        {"-r", "--resume", 'i', &o->resume, "0", 0, 1, NULL, "1: also load CKPT.opt and continue at its step", 0},
        {"-k", "--ckpt-every", 'i', &o->ckpt_every, "0", 0, INFINITY, NULL, "write a checkpoint every N steps (0: at the end only)", 0},
        {"-S", "--stop-at", 'i', &o->stop_at, "0", 0, INFINITY, NULL, "stop after this step and checkpoint; the schedule still ends at --steps (0: off)", 0},
        {"-x", "--eval-only", 'i', &o->eval_only, "0", 0, 1, NULL, "1: evaluate the checkpoint (-c), do not train", 0},
        {"-p", "--probe", 'i', &o->probe_only, "0", 0, 1, NULL, "1: probe the checkpoint (-c) once, do not train", 0},
        {"-P", "--probe-every", 'i', &o->probe_every, "100", 0, INFINITY, NULL, "probe every N steps, and at the first and last (0: never)", 0},
        {"-G", "--sample", 'i', &o->sample_tokens, "200", 0, 10000000, NULL, "tokens to generate at the end (0: none)", 0},
        {"-u", "--temperature", 'f', &o->temperature, "0.8", 0, INFINITY, NULL, "sampling temperature (0: greedy)", 0},
        {"-q", "--top-k", 'i', &o->top_k, "40", 0, INFINITY, NULL, "sample from the k most likely tokens (0: all)", 0},
        {"-y", "--sample-seed", 'i', &o->sample_seed, "42", ANY, NULL, "seed of the sampler", 0}};
    memcpy(f, t, sizeof(t));
}

const Flag *flag_of(const Flag *f, const char *shortf) {
    for (int i = 0; i < NUM_FLAGS; i++) if (!strcmp(f[i].shortf, shortf)) return f + i;
    die("no flag %s in the table", shortf); // a caller's typo, not the user's
    return NULL;
}

// flag f takes the value val; a mistake is one line and exit 2
static void flag_set(Flag *f, const char *val) {
    char *end;
    errno = 0;
    if (f->type == 'i' || f->type == 'f') {
        double v = f->type == 'i' ? strtol(val, &end, 10) : strtod(val, &end);
        if (*val == '\0' || *end != '\0' || errno || !isfinite(v) || (f->type == 'i' && fabs(v) > 2147483647))
            die("flag %s: '%s' is not %s", f->longf, val, f->type == 'i' ? "an integer" : "a number");
        char range[64];
        snprintf(range, sizeof(range), isinf(f->hi) ? ">= %.15g" : "in %.15g..%.15g", f->lo, f->hi);
        if (v < f->lo || v > f->hi) die("flag %s: must be %s (got %s)", f->longf, range, val);
        if (f->type == 'i') *(int *)f->ptr = (int)v;
        else *(double *)f->ptr = v;
    } else if (f->type == 'e') {
        int e = 0;
        while (f->names[e] && strcmp(f->names[e], val)) e++;
        if (!f->names[e]) die("flag %s: unknown value '%s'", f->longf, val);
        *(int *)f->ptr = e;
    } else {
        *(const char **)f->ptr = val;
    }
}

// Fills o from argv, then checks what the flags ask for together (the model's shape:
// config_check; agreement with a checkpoint: config_from_checkpoint). A mistake is one line, exit 2.
void parse_args(int argc, char **argv, Options *o, Flag *f) {
    flag_table(f, o);
    for (int i = 0; i < NUM_FLAGS; i++) flag_set(&f[i], f[i].def);
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "-h") || !strcmp(argv[a], "--help")) {
            printf("usage: gradsink [flags]   (each flag takes a value; defaults in brackets)\n");
            for (int i = 0; i < NUM_FLAGS; i++) printf("  %s %-15s %s [%s]\n", f[i].shortf, f[i].longf, f[i].help, f[i].def);
            exit(0);
        }
        int k = 0;
        while (k < NUM_FLAGS && strcmp(argv[a], f[k].shortf) && strcmp(argv[a], f[k].longf)) k++;
        if (k == NUM_FLAGS) die("unknown flag %s (see -h)", argv[a]);
        if (a + 1 >= argc) die("flag %s needs a value", argv[a]);
        flag_set(&f[k], argv[++a]);
        f[k].given = 1;
    }
    if (o->min_lr < 0) o->min_lr = o->lr / 10;
    if (o->mlp_weight_decay < 0) o->mlp_weight_decay = o->weight_decay;
    if (o->embed_weight_decay < 0) o->embed_weight_decay = o->weight_decay;
}
void options_check(const Options *o) {
    if ((double)o->B * o->T > 1e8) die("flag --batch x --seq-len: %d x %d is too large", o->B, o->T);
    if (o->first_token == FIRST_EOT_MASKED && o->T < 2) die("flag --first-token eot-masked: needs --seq-len >= 2 (a row with a target in the loss)");
    if ((o->resume || o->eval_only || o->probe_only) && !*o->ckpt_in)
        die("flags --resume, --eval-only and --probe need a checkpoint (-c PATH)");
    if (o->vscale_lambda <= 0) die("flag --vscale-lambda: must be > 0 (got %g)", o->vscale_lambda);
    if (o->vscale_path != VSCALE_PATH_BOTH && o->vscale == VSCALE_OFF && !*o->ckpt_in) // with -c: the checkpoint's -a
        die("flag --vscale-path %s: needs V-scale on (-a fixed or -a learned)", VSCALE_PATH_NAMES[o->vscale_path]);
    if (strlen(o->out_dir) > 3000 || strlen(o->ckpt_in) > 3000 || strlen(o->train_path) > 3000)
        die("flags --out, --ckpt, --train: path longer than 3000 characters");
    if (!*o->out_dir) die("flag --out: an empty path (pass a folder)");
    if (!*o->train_path && !o->eval_only && !o->probe_only && o->steps > 0) die("flag --train: an empty path (pass a token file)");
    if (o->eval_only && o->val_batches == 0) die("flag --eval-only: needs --val-batches >= 1 (got 0)");
}

// the model's configuration from the flags (-K 0: as many kv heads as heads)
Config options_config(const Options *o, int vocab_size, int vscale) {
    return (Config){vocab_size, o->d_model, o->n_layer, o->n_head, o->n_kv_head ? o->n_kv_head : o->n_head,
                    o->ffn_hidden, o->T, vscale, vocab_size - 1, ROPE_THETA_DEFAULT, RMSNORM_EPS_DEFAULT};
}

// The configuration from checkpoint -c's header; flags that would change the model must agree
// with it. Resuming (-r 1), the run is the run that never stopped: the schedule and row-order
// flags not given take the values kept in the optimizer file (a given flag that differs is
// used, and said). Returns the checkpoint's step.
int config_from_checkpoint(Options *o, const Flag *f, Config *cfg, char *opt_path) {
    char err[1024];
    int step;
    if (checkpoint_load(NULL, o->ckpt_in, cfg, &step, err, sizeof(err))) die("%s", err);
    struct { const char *flag; int value, have; } arch[6] = {
        {"-V", o->vocab_size, cfg->vocab_size}, {"-C", o->d_model, cfg->d_model}, {"-L", o->n_layer, cfg->n_layer},
        {"-H", o->n_head, cfg->n_head}, {"-F", o->ffn_hidden, cfg->ffn_hidden},
        {"-K", o->n_kv_head, !o->n_kv_head && cfg->n_kv_head == cfg->n_head ? 0 : cfg->n_kv_head}}; // -K 0: kv heads = heads
    for (int i = 0; i < 6; i++)
        if (flag_of(f, arch[i].flag)->given && arch[i].value != arch[i].have)
            die("flag %s %d disagrees with checkpoint %s (which has %d)", arch[i].flag, arch[i].value, o->ckpt_in, arch[i].have);
    if (flag_of(f, "-a")->given && o->vscale != cfg->vscale)
        die("flag -a %s disagrees with checkpoint %s (which has %s)", VSCALE_NAMES[o->vscale], o->ckpt_in, VSCALE_NAMES[cfg->vscale]);
    if (flag_of(f, "-s")->given && !o->resume)
        die("flag --seed has no effect with -c %s without -r 1 (the model comes from the checkpoint)", o->ckpt_in);
    if (flag_of(f, "-A")->given) die("flag --vscale-lambda has no effect with -c %s (theta comes from the checkpoint)", o->ckpt_in);
    Schedule s = {0};
    char diff[512] = "";
    if (o->resume && resume_opt_path(o->ckpt_in, step, opt_path, 4096, &s, err, sizeof(err))) die("%s", err);
    const char *kept[14] = {"-n", "-w", "-b", "-t", "-s", "-R", "-f", "-Z", "-l", "-m", "-d", "-D", "-E", "-g"};
    double saved[14] = {s.steps, s.warmup, s.B, s.T, s.seed, s.rows, s.first_token, s.eot_row, s.lr, s.min_lr,
                        s.weight_decay, s.mlp_weight_decay, s.embed_weight_decay, s.grad_clip};
    for (int i = 0; i < 14 && s.steps; i++) { // the Schedule's fields, in order
        const Flag *g = flag_of(f, kept[i]);
        double now = g->type == 'f' ? *(double *)g->ptr : *(int *)g->ptr;
        if (g->given && now != saved[i]) snprintf(diff + strlen(diff), sizeof(diff) - strlen(diff), " %s", kept[i]);
        else if (g->type == 'f') *(double *)g->ptr = saved[i];
        else *(int *)g->ptr = (int)saved[i];
    }
    options_check(o);
    if (*diff) printf("note: flags%s differ from the run that wrote %s: this run is not that run continued\n", diff, opt_path);
    if (o->T > cfg->max_seq_len)
        die("flag --seq-len %d is above checkpoint %s's max sequence length %d", o->T, o->ckpt_in, cfg->max_seq_len);
    return step;
}

// ----------------------------------------------------------------------------
// main: parse and check the flags, set up the run, then evaluate, probe, train and/or sample

#ifndef TESTING
int main(int argc, char **argv) {
    static Options opts; // with the flag table: not on the stack
    static Flag f[NUM_FLAGS];
    static char tok_path[4096], opt_path[4096], path[4096], ckpt_path[4096], last_good[4300], err[1024];
    Options *o = &opts;
    parse_args(argc, argv, o, f);
    options_check(o);
    int train = !o->eval_only && !o->probe_only && o->steps > 0, ckpt_step = 0, start = 0;
    // the tokenizer: given (-z), or tokenizer.bin beside the training file when there is one
    // (a tokenizer.bin there that is no regular file is refused, not passed over)
    Tokenizer tok = {0};
    const char *slash = strrchr(o->train_path, '/');
    if (*o->tokenizer_path) snprintf(tok_path, sizeof(tok_path), "%s", o->tokenizer_path);
    else snprintf(tok_path, sizeof(tok_path), "%.*stokenizer.bin", slash ? (int)(slash - o->train_path) + 1 : 0, o->train_path);
    struct stat st;
    if ((*o->tokenizer_path || stat(tok_path, &st) == 0) && tokenizer_load(&tok, tok_path, err, sizeof(err))) die("%s", err);
    int have_tok = tok.entry != NULL;
    // the configuration: from the checkpoint, or from the flags
    Config cfg;
    if (*o->ckpt_in) {
        ckpt_step = config_from_checkpoint(o, f, &cfg, opt_path);
        if (o->resume) start = ckpt_step; // without -r, a new schedule starts at step 0
    } else {
        int V = o->vocab_size ? o->vocab_size : have_tok ? tok.vocab_size : 0;
        size_t size, got;
        unsigned char *probe_read = V == 0 && train ? read_part(o->train_path, 1, &size, &got, err, sizeof(err)) : NULL;
        if (V == 0 && train && !probe_read) die("%s", err); // a train file that cannot be read is the first thing to say
        free(probe_read);
        if (V == 0) die("vocab size unknown: pass -V N or put tokenizer.bin beside the train file (or -z PATH)");
        cfg = options_config(o, V, o->vscale);
    }
    const char *why = config_check(&cfg);
    if (why) die("%s", why);
    double need = model_bytes(&cfg, o->B, o->T), have_mem = (double)sysconf(_SC_PHYS_PAGES) * sysconf(_SC_PAGE_SIZE);
    if (have_mem > 0 && need > have_mem)
        die("the model needs %.3g GB (parameters, AdamW state, activations for -b %d -t %d), this machine has %.3g GB",
            need / 1e9, o->B, o->T, have_mem / 1e9);
    if (have_tok && tok.vocab_size != cfg.vocab_size)
        die("tokenizer %s has vocab %d but the model has %d", tok_path, tok.vocab_size, cfg.vocab_size);
    int eot = have_tok ? tok.eot : cfg.eot;
    if (o->resume && start > o->steps) die("checkpoint %s is at step %d, beyond --steps %d", o->ckpt_in, start, o->steps);
    int end = o->stop_at > 0 && o->stop_at < o->steps ? o->stop_at : o->steps;
    if (o->stop_at > 0 && o->stop_at < start) die("flag --stop-at %d is before the checkpoint's step %d", o->stop_at, start);
    // the token files: training (when training), validation (when given or present); the probe's batch
    DataLoader train_dl = {0}, val_dl = {0};
    if (train && dataloader_open(&train_dl, o->train_path, o->B, o->T, cfg.vocab_size, err, sizeof(err))) die("%s", err);
    int have_val = *o->val_path && o->val_batches > 0 && (flag_of(f, "-j")->given || file_exists(o->val_path));
    if (have_val && dataloader_open(&val_dl, o->val_path, o->B, o->T, cfg.vocab_size, err, sizeof(err))) die("%s", err);
    if (o->eval_only && !have_val) die("--eval-only needs validation tokens (-j PATH)");
    int probing = o->probe_only || (train && o->probe_every > 0);
    const DataLoader *probe_dl = have_val ? &val_dl : &train_dl;
    if (probing && !have_val) {
        if (!train) die("--probe needs validation tokens (-j PATH) for its probe batch");
        printf("note: no validation file, so probes use the first training batch\n");
    }
    // the model: from the checkpoint (and, resuming, its optimizer state), or initialised from the seed
    static Model model;
    Model *m = &model;
    model_build(m, &cfg);
    model_alloc_acts(m, o->B, o->T);
    if (*o->ckpt_in) {
        if (checkpoint_load(m, o->ckpt_in, &cfg, &ckpt_step, err, sizeof(err))) die("%s", err);
        if (o->resume && optstate_load(m, opt_path, start, NULL, err, sizeof(err))) die("%s", err);
    } else {
        model_init(m, (uint64_t)o->seed);
        if (cfg.vscale != VSCALE_OFF) // theta = log lambda
            for (size_t i = 0; i < (size_t)cfg.n_layer * cfg.n_kv_head; i++) m->params.vscale_theta[i] = (real)log(o->vscale_lambda);
    }
    // the interventions: the flags when given, else the checkpoint's (a resumed run keeps them)
    if (!*o->ckpt_in || flag_of(f, "-J")->given) m->vscale_path = o->vscale_path;
    if (!*o->ckpt_in || flag_of(f, "-N")->given) m->sink_grad = o->sink_grad;
    if (m->vscale_path != VSCALE_PATH_BOTH && cfg.vscale == VSCALE_OFF)
        die("flag --vscale-path %s: needs V-scale on, and checkpoint %s has it off", VSCALE_PATH_NAMES[m->vscale_path], o->ckpt_in);
    m->sched = (Schedule){o->steps, o->warmup, o->B, o->T, o->seed, o->rows, o->first_token, o->eot_row, o->lr, o->min_lr,
                          o->weight_decay, o->mlp_weight_decay, o->embed_weight_decay, o->grad_clip}; // what this run's checkpoints keep
    printf("model: V %d | C %d | L %d | H %d | Hkv %d | D %d | F %d | vscale %s | %zu parameters\n", cfg.vocab_size,
           cfg.d_model, cfg.n_layer, cfg.n_head, cfg.n_kv_head, cfg.d_model / cfg.n_head, cfg.ffn_hidden,
           VSCALE_NAMES[cfg.vscale], m->num_parameters);
    if (cfg.rope_theta != ROPE_THETA_DEFAULT || cfg.rms_norm_eps != RMSNORM_EPS_DEFAULT || cfg.eot != cfg.vocab_size - 1)
        printf("model: rope_theta %g | rms_norm_eps %g | eot %d (from the checkpoint)\n", cfg.rope_theta, cfg.rms_norm_eps, cfg.eot);
    if (m->vscale_path != VSCALE_PATH_BOTH || m->sink_grad != 1)
        printf("interventions: vscale-path %s | sink-grad %g (the gradient is not the loss's)\n",
               VSCALE_PATH_NAMES[m->vscale_path], m->sink_grad);
#ifdef _OPENMP
    printf("threads: %d\n", omp_get_max_threads());
#endif
    if (o->eval_only)
        printf("val loss %.4f (%d batches of %s)\n", evaluate(m, &val_dl, o->val_batches, o->first_token, eot),
               o->val_batches < (int)val_dl.num_batches ? o->val_batches : (int)val_dl.num_batches, o->val_path);
    Probe probe;
    probe_alloc(&probe, &cfg, o->T);
    char probe_path[4096];
    snprintf(probe_path, sizeof(probe_path), "%s/probes.jsonl", o->out_dir);
    if ((probing || train) && make_dirs(o->out_dir)) die("cannot create output directory %s", o->out_dir);
    if (o->probe_only) {
        probe_and_log(&probe, m, probe_dl, o->first_token, eot, ckpt_step, NAN, NAN, -1, probe_path);
        printf("appended to %s\n", probe_path);
    }
    if (train) {
        // Training from start to end: validation and probes at their steps (a probe also at the
        // first and after the last), the step, the log, checkpoints. A NaN or infinity stops the
        // run with exit 3, naming the step and the newest complete checkpoint, never replaced.
        snprintf(path, sizeof(path), "%s/log.txt", o->out_dir);
        if (not_regular(path, err, sizeof(err))) die("%s", err);
        FILE *logf = fopen(path, "a");
        if (!logf) die("cannot write %s: %s", path, strerror(errno));
        snprintf(ckpt_path, sizeof(ckpt_path), "%s/model.bin", o->out_dir); // and model.bin.opt beside it
        printf("train: %s (%zu tokens, %zu batches of %d x %d, rows %s) | steps %d..%d | lr %g -> %g | warmup %d | "
               "weight decay %g (MLP %g, embedding %g) | end-of-text row %s\n", o->train_path, train_dl.count,
               train_dl.num_batches, o->B, o->T, ROWS_NAMES[o->rows], start, o->steps, o->lr, o->min_lr, o->warmup,
               o->weight_decay, o->mlp_weight_decay, o->embed_weight_decay, EOT_ROW_NAMES[o->eot_row]);
        AdamW opt = {0.9, 0.95, 1e-8, o->weight_decay, o->mlp_weight_decay, o->embed_weight_decay,
                     o->eot_row == EOT_ROW_FIXED ? eot : -1};
        int val_step = -1;
        double val_loss = NAN, train_loss = NAN;
        if (*o->ckpt_in) snprintf(last_good, sizeof(last_good), "%s (step %d, where this run started)", o->ckpt_in, ckpt_step);
        else snprintf(last_good, sizeof(last_good), "none (this run has not written one yet)");
        for (int step = start; step <= end; step++) {
            int last = step == end;
            if (have_val && (last || (o->val_every > 0 && step % o->val_every == 0))) {
                val_loss = evaluate(m, &val_dl, o->val_batches, o->first_token, eot);
                val_step = step;
                printf("step %5d | val loss %.4f\n", step, val_loss);
                fprintf(logf, "s:%d tel:%.6f\n", step, val_loss);
                fflush(logf);
            }
            if (o->probe_every > 0 && (last || step == start || step % o->probe_every == 0))
                probe_and_log(&probe, m, probe_dl, o->first_token, eot, step, train_loss, val_loss, val_step, probe_path);
            if (last) break;
            double t0 = now_seconds(), loss, norm, lr = lr_at(step, o->steps, o->warmup, o->lr, o->min_lr);
            size_t bad;
            if (o->rows == ROWS_RANDOM) dataloader_random_batch(&train_dl, o->seed, step, m->inputs, m->targets, o->first_token, eot);
            else dataloader_batch(&train_dl, step, m->inputs, m->targets, o->first_token, eot);
            int status = train_step(m, &opt, lr, o->grad_clip, &loss, &norm, &bad);
            train_loss = loss;
            if (status == STEP_NONFINITE_GRAD)
                fprintf(stderr, "gradsink: error: step %d: loss %g, grad norm %g: not finite, training stopped; last good "
                                "checkpoint: %s\n", step, loss, norm, last_good);
            if (status == STEP_NONFINITE_PARAM)
                fprintf(stderr, "gradsink: error: step %d: the update (lr %g) made parameter %zu not finite, training "
                                "stopped; last good checkpoint: %s\n", step, lr, bad, last_good);
            if (status != STEP_OK) exit(3);
            double dt = now_seconds() - t0;
            // STEP on stdout and in log.txt: the training steps taken before this one, as for the
            // validation and probe lines (all three then measure the same parameters at the same STEP)
            printf("step %5d/%d | loss %.4f | lr %.2e | norm %.4f | %.1f ms | %.0f tok/s\n", step, o->steps, loss, lr,
                   norm, dt * 1e3, o->B * o->T / dt);
            fprintf(logf, "s:%d trl:%.9g\n", step, loss); // %.9g: a float loss, exactly
            if (o->ckpt_every > 0 && (step + 1) % o->ckpt_every == 0 && step + 1 < end) {
                if (checkpoint_save(m, ckpt_path, step + 1, err, sizeof(err))) die("%s", err);
                snprintf(last_good, sizeof(last_good), "%s (step %d)", ckpt_path, step + 1);
            }
        }
        fclose(logf);
        if (checkpoint_save(m, ckpt_path, end, err, sizeof(err))) die("%s", err);
        printf("wrote %s (step %d)\n", ckpt_path, end);
    }
    // sample after training, or from a checkpoint; a probe (-p 1) or an evaluation (-x 1) of a
    // checkpoint samples only when -G is given
    int sample = train || (*o->ckpt_in && ((!o->probe_only && !o->eval_only) || flag_of(f, "-G")->given));
    if (o->sample_tokens > 0 && sample) {
        printf("sample (temperature %g, top-k %d, seed %d):\n", o->temperature, o->top_k, o->sample_seed);
        model_sample(m, have_tok ? &tok : NULL, eot, o->sample_tokens, o->temperature, o->top_k, (uint64_t)o->sample_seed, stdout);
    }
    probe_free(&probe);
    dataloader_free(&train_dl);
    dataloader_free(&val_dl);
    tokenizer_free(&tok);
    model_free(m);
    return 0;
}
#endif
// ============================================================================
// making it fast. Everything above reads as the paper's model; what follows are the matmul and
// the attention that training calls, with the same arguments and sums as their readable
// versions above (matmul_*_naive, attention_*_naive; the tests compare each pair). Nothing
// here is needed to explain a number.
// ============================================================================

// the threads OpenMP will use, and this thread's number in its team (1 and 0 without OpenMP)
static int max_threads(void) {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}
static int thread_id(void) {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

// The fast versions share one engine, a register-tiled product C (M,N) = or += A (M,K) B (K,N):
//   - B is first packed into column panels (zero-padded past N), each panel K rows of one
//     panel width, contiguous, so the inner loop reads whole 16-float vectors per k (a B whose
//     rows are already contiguous under a packed A, the layer input in dW, is read in place);
//   - a register tile of 24 vector accumulators then walks k, one broadcast of A(r,k) times a
//     panel row per FMA: plain loops over constant bounds that gcc/clang unroll into 512-bit
//     FMAs (-O3 -march=native -mprefer-vector-width=512). Two tile shapes:
//       MM_MR x MM_NR = 12 x 32 when A is packed into tiles of interleaved rows (A read down
//       its columns, as dout^T in dW): the inner loop reads A at constant offsets of one pointer;
//       MM_RR x MM_RN = 6 x 64 when A is read in place through its rows (x W^T, dout W): one
//       pointer per row, and 6 row pointers fit in the general registers (12 do not: see
//       dev/SPEED.md);
//   - threads split the output tiles, so each C element is summed by one thread, over k in
//     order: no atomics, and the result does not depend on the number of threads.
// In the rows past M of a ragged last tile the kernel re-reads row M-1 and throws the result away.
#define MM_MR 12
#define MM_NR 32
#define MM_RR 6
#define MM_RN 64
#define MM_TILE_MAX (MM_MR * MM_NR > MM_RR * MM_RN ? MM_MR * MM_NR : MM_RR * MM_RN) // outputs of the larger tile
#define MM_ROWS_MAX (MM_MR > MM_RR ? MM_MR : MM_RR)

// scratch for packed panels (matmuls) and per-thread tiles (attention): grown on first use,
// then reused, so later steps allocate nothing. Called only outside parallel regions.
static real *kernel_scratch(size_t n) {
    static real *buf = NULL;
    static size_t cap = 0;
    if (n > cap) {
        free(buf);
        buf = xcalloc(n, sizeof(real));
        cap = n;
    }
    return buf;
}

// panel p of Bp (panels, K, w): Bp[p][k][j] = B(k, p*w + j), or 0 past N; B(k,n) = B[k*bk + n*bn]
static void mm_pack_panel(real *bp, int w, const real *b, size_t bk, size_t bn, int K, int N, int p) {
    for (int k = 0; k < K; k++) {
        real *dst = bp + ((size_t)p * K + k) * w;
        if (bn == 1 && (p + 1) * w <= N) { // a contiguous run (B = W in dinp);
            const real *src = b + (size_t)k * bk + (size_t)p * w; // constant lengths: inline moves
            if (w == MM_NR) memcpy(dst, src, MM_NR * sizeof(real));
            else memcpy(dst, src, MM_RN * sizeof(real));
            continue;
        }
        for (int j = 0; j < w; j++) {
            int n = p * w + j;
            dst[j] = n < N ? b[(size_t)k * bk + (size_t)n * bn] : 0;
        }
    }
}

// C[r][j] (+)= acc[r*NR + j] for r < mr, j < nr; MR and NR are constants at every call
static inline void mm_store(real *c, size_t ldc, int mr, int nr, int accumulate, int MR, int NR, const real *acc) {
    if (mr == MR && nr == NR) { // a whole tile: constant bounds, so acc can stay in registers
        for (int r = 0; r < MR; r++)
            for (int j = 0; j < NR; j++)
                c[(size_t)r * ldc + j] = accumulate ? c[(size_t)r * ldc + j] + acc[r * NR + j] : acc[r * NR + j];
        return;
    }
    real part[MM_TILE_MAX]; // a ragged tile goes through memory
    for (int i = 0; i < MR * NR; i++) part[i] = acc[i];
    for (int r = 0; r < mr; r++)
        for (int j = 0; j < nr; j++) c[(size_t)r * ldc + j] = accumulate ? c[(size_t)r * ldc + j] + part[r * NR + j] : part[r * NR + j];
}

// one register tile on packed A: C[r][j] (+)= sum_k ap[k*MM_MR + r] bp[k*ldb + j] (B: a packed
// panel, ldb = MM_NR, or a padded matrix; every address of A a constant offset from one pointer)
static inline void mm_tile_packed(real *c, size_t ldc, int mr, int nr, int accumulate, const real *ap,
                                  const real *bp, size_t ldb, int K) {
    real acc[MM_MR * MM_NR];
    for (int r = 0; r < MM_MR; r++) // k = 0 starts the sums (no zeroing pass; K >= 1 here)
        for (int j = 0; j < MM_NR; j++) acc[r * MM_NR + j] = ap[r] * bp[j];
    for (int k = 1; k < K; k++) {
        const real *a = ap + (size_t)k * MM_MR, *b = bp + (size_t)k * ldb;
        for (int r = 0; r < MM_MR; r++)
            for (int j = 0; j < MM_NR; j++) acc[r * MM_NR + j] += a[r] * b[j];
    }
    mm_store(c, ldc, mr, nr, accumulate, MM_MR, MM_NR, acc);
}

// A read in place, A(r,k) = a[r*am + k], times B rows ldb apart: an MR x NR tile (MR x NR
// = MM_MR x MM_NR for attention's small products and ragged panels, MM_RR x MM_RN for
// mm_product's A with contiguous rows; constants at every call, so each call is its own kernel).
// `omp simd` marks j, along a panel row, as the loop to vectorize (not r, across the rows).
static inline void mm_tile(real *c, size_t ldc, int mr, int nr, int accumulate, const real *a, size_t am,
                           const real *bp, size_t ldb, int K, const int MR, const int NR) {
    real acc[MM_TILE_MAX];
    const real *ar[MM_ROWS_MAX];
    for (int r = 0; r < MR; r++) ar[r] = a + (size_t)(r < mr ? r : mr - 1) * am;
    for (int r = 0; r < MR; r++) { // k = 0 starts the sums (no zeroing pass; K >= 1 here)
        real x = ar[r][0];
        #pragma omp simd
        for (int j = 0; j < NR; j++) acc[r * NR + j] = x * bp[j];
    }
    for (int k = 1; k < K; k++) {
        const real *b = bp + (size_t)k * ldb;
        for (int r = 0; r < MR; r++) {
            real x = ar[r][k];
            #pragma omp simd
            for (int j = 0; j < NR; j++) acc[r * NR + j] += x * b[j];
        }
    }
    mm_store(c, ldc, mr, nr, accumulate, MR, NR, acc);
}

// ap (tiles, kc, MM_MR) = rows m0..m1 of A over k0..k0+kc, MM_MR rows interleaved; rows past M
// repeat row M-1 (their results are never stored). For A read down its columns (am == 1, as
// dout^T), k outermost: each k is one contiguous run of memory.
static void mm_pack_rows(real *ap, const real *a, size_t am, size_t ak, int m0, int m1, int M, int k0, int kc) {
    for (int k = 0; k < kc; k++) {
        const real *src = a + (size_t)(k0 + k) * ak;
        for (int t0 = m0; t0 < m1; t0 += MM_MR) {
            real *dst = ap + (size_t)(t0 - m0) * kc + (size_t)k * MM_MR;
            if (am == 1 && t0 + MM_MR <= M) memcpy(dst, src + t0, MM_MR * sizeof(real));
            else for (int r = 0; r < MM_MR; r++) dst[r] = src[(size_t)(t0 + r < M ? t0 + r : M - 1) * am];
        }
    }
}

// C (M,N), row stride ldc (+)= A (M,K) B (K,N), A(m,k) = a[m*am + k*ak], B(k,n) = b[k*bk + n*bn].
// B is packed into panels once per call (in dW only a ragged last panel: the whole ones are
// read in place, rows bk apart). A with contiguous rows (ak == 1) is read in place by
// 6 x 64 tiles (a last panel at most 32 wide by 12 x 32 tiles, so N = 352 wastes nothing);
// A read down its columns (as dout^T in dW) is packed per work item into tiles of interleaved
// rows for 12 x 32 tiles: walking a column of a wide matrix in place would touch a new cache
// line every k, all of them in a few cache sets. (Packing A always would cost as much as the
// product when N is only a few panels wide.) Work items are (block of about MM_MC rows) x (group
// of panels), taken by threads as they come free (dynamic: a thread the OS has paused does not
// hold up the others). In an item, k runs in chunks of MM_KC; each panel's slice of MM_KC rows
// serves all the block's tiles, whose packed rows (in L2) serve every panel of the group. Which
// thread takes an item changes nothing in the sums, so results do not depend on the thread count.
#define MM_MC (16 * MM_MR) // rows in a block (one thread: a whole number of tiles of either height)
#define MM_KC 256
typedef struct { // one product, and how it is cut into work items (mm_plan)
    real *c;
    size_t ldc, am, ak, bk, bn;
    const real *a, *b;
    int accumulate, M, N, K;
    int pack_a, w, b_rows, np, mc, nblocks, ngroups, per_group, mc_pack;
    size_t bsize;   // the packed panels of B
    real *bp, *ap;  // where they go, and each thread's packed rows of A (when pack_a)
} MMPlan;

static MMPlan mm_plan(real *c, size_t ldc, int accumulate, const real *a, size_t am, size_t ak, const real *b,
                      size_t bk, size_t bn, int M, int N, int K) {
    int nthreads = max_threads();
    MMPlan p = {.c = c, .ldc = ldc, .am = am, .ak = ak, .bk = bk, .bn = bn, .a = a, .b = b,
                .accumulate = accumulate, .M = M, .N = N, .K = K};
    p.pack_a = ak != 1;
    p.w = p.pack_a ? MM_NR : MM_RN; // panel width
    // B with contiguous rows under a packed A (inp in dW): whole panels are read in place
    p.b_rows = p.pack_a && bn == 1;
    p.np = (N + p.w - 1) / p.w;
    p.mc = MM_MC;
    // with several threads: blocks of about equal height, as many as a whole multiple of the
    // threads (at least two each), but not under MM_MC / 2 rows; if still too few, split the
    // panels into groups (each group's items pack their A again)
    if (nthreads > 1) {
        int nb = (M + MM_MC - 1) / MM_MC;
        if (nb < 2 * nthreads) nb = 2 * nthreads;
        nb = (nb + nthreads - 1) / nthreads * nthreads;
        p.mc = ((M + nb - 1) / nb + MM_RR - 1) / MM_RR * MM_RR;
        if (p.mc < MM_MC / 2) p.mc = MM_MC / 2;
    }
    p.nblocks = (M + p.mc - 1) / p.mc;
    p.ngroups = 1;
    while (nthreads > 1 && p.nblocks * p.ngroups < 2 * nthreads && p.ngroups < p.np) p.ngroups++;
    p.per_group = (p.np + p.ngroups - 1) / p.ngroups;
    p.bsize = (size_t)p.np * K * p.w;
    p.mc_pack = (p.mc + MM_MR - 1) / MM_MR * MM_MR; // a block's packed rows, in whole tiles
    return p;
}
// the scratch a plan needs with all threads: B's panels, then (when pack_a) A's rows per thread
static size_t mm_scratch_size(const MMPlan *p, int nthreads) {
    return p->bsize + (p->pack_a ? (size_t)nthreads * p->mc_pack * MM_KC : 0);
}
// whether panel pi of B is read in place (b_rows, and the panel whole), so never packed
static int mm_panel_in_place(const MMPlan *p, int pi) { return p->b_rows && (pi + 1) * p->w <= p->N; }

// one work item: a block of rows x a group of panels, every k
static void mm_item(const MMPlan *p, int item, int tid) {
    const real *a = p->a, *b = p->b;
    size_t am = p->am, ldc = p->ldc;
    int M = p->M, N = p->N, K = p->K, w = p->w;
    real *ap = p->ap + (size_t)tid * p->mc_pack * MM_KC; // used only when pack_a
    int m0 = item / p->ngroups * p->mc, m1 = M < m0 + p->mc ? M : m0 + p->mc;
    int p0 = item % p->ngroups * p->per_group, p1 = p->np < p0 + p->per_group ? p->np : p0 + p->per_group;
    for (int k0 = 0; k0 < K; k0 += MM_KC) {
        int kc = K - k0 < MM_KC ? K - k0 : MM_KC, add = p->accumulate || k0 > 0;
        if (p->pack_a) mm_pack_rows(ap, a, am, p->ak, m0, m1, M, k0, kc);
        for (int pi = p0; pi < p1; pi++) {
            int n0 = pi * w, nr = N - n0 < w ? N - n0 : w;
            int in_place = mm_panel_in_place(p, pi);
            const real *panel = in_place ? b + (size_t)k0 * p->bk + n0 : p->bp + ((size_t)pi * K + k0) * w;
            size_t ldb = in_place ? p->bk : (size_t)w;
            real *cp = p->c + (size_t)m0 * ldc + n0;
            const real *arows = a + (size_t)m0 * am + k0;
            if (p->pack_a)
                for (int t0 = m0; t0 < m1; t0 += MM_MR)
                    mm_tile_packed(cp + (size_t)(t0 - m0) * ldc, ldc, m1 - t0 < MM_MR ? m1 - t0 : MM_MR, nr, add,
                                   ap + (size_t)(t0 - m0) * kc, panel, ldb, kc);
            else if (nr > MM_NR)
                for (int t0 = m0; t0 < m1; t0 += MM_RR)
                    mm_tile(cp + (size_t)(t0 - m0) * ldc, ldc, m1 - t0 < MM_RR ? m1 - t0 : MM_RR, nr, add,
                            arows + (size_t)(t0 - m0) * am, am, panel, w, kc, MM_RR, MM_RN);
            else
                for (int t0 = m0; t0 < m1; t0 += MM_MR)
                    mm_tile(cp + (size_t)(t0 - m0) * ldc, ldc, m1 - t0 < MM_MR ? m1 - t0 : MM_MR, nr, add,
                            arows + (size_t)(t0 - m0) * am, am, panel, w, kc, MM_MR, MM_NR);
        }
    }
}

// index (in, out): which of the counts' consecutive ranges it falls in (returned), and where
static int mm_locate(const int *counts, int *index) {
    int i = 0;
    while (*index >= counts[i]) *index -= counts[i++];
    return i;
}
// runs n (<= MM_RUN_MAX) planned products in one parallel region: first all their B panels,
// then the threads take the items of all of them from one queue as they come free, so one
// product's last items overlap the next one's instead of each product ending in its own wait.
// The products must write different outputs.
#define MM_RUN_MAX 2
static void mm_run(MMPlan *plans, int n) {
    int nthreads = max_threads();
    if (n > MM_RUN_MAX) die("internal: mm_run of %d products (at most %d)", n, MM_RUN_MAX);
    size_t total = 0, size[MM_RUN_MAX];
    int panels = 0, items = 0, np[MM_RUN_MAX], ni[MM_RUN_MAX];
    for (int i = 0; i < n; i++) {
        total += size[i] = mm_scratch_size(&plans[i], nthreads);
        panels += np[i] = plans[i].np;
        items += ni[i] = plans[i].nblocks * plans[i].ngroups;
    }
    real *scratch = kernel_scratch(total);
    for (int i = 0; i < n; i++) {
        plans[i].bp = scratch;
        plans[i].ap = scratch + plans[i].bsize;
        scratch += size[i];
    }
    #pragma omp parallel
    {
        #pragma omp for schedule(static) // ends with a barrier
        for (int q = 0; q < panels; q++) {
            int pi = q;
            const MMPlan *p = &plans[mm_locate(np, &pi)];
            if (!mm_panel_in_place(p, pi)) mm_pack_panel(p->bp, p->w, p->b, p->bk, p->bn, p->K, p->N, pi);
        }
        int tid = thread_id();
        #pragma omp for schedule(dynamic)
        for (int q = 0; q < items; q++) {
            int item = q;
            const MMPlan *p = &plans[mm_locate(ni, &item)];
            mm_item(p, item, tid);
        }
    }
}

// C (M,N), row stride ldc (+)= A (M,K) B (K,N): one product (see the comment above mm_plan)
static void mm_product(real *c, size_t ldc, int accumulate, const real *a, size_t am, size_t ak, const real *b,
                       size_t bk, size_t bn, int M, int N, int K) {
    MMPlan p = mm_plan(c, ldc, accumulate, a, am, ak, b, bk, bn, M, N, K);
    mm_run(&p, 1);
}

void matmul_forward(real *out, const real *inp, const real *weight, int N, int IC, int OC) {
    // out (N,OC) = inp (N,IC) W^T: A = inp, B(i,o) = W[o,i]
    mm_product(out, OC, 0, inp, IC, 1, weight, 1, IC, N, OC, IC);
}
// dinp += dout W and dW += dout^T inp, as the naive version
void matmul_backward(real *dinp, real *dweight, const real *dout, const real *inp, const real *weight,
                     int N, int IC, int OC) {
    // dW (OC,IC) += dout^T (OC,N) inp (N,IC), A(o,n) = dout[n,o]; dinp (N,IC) += dout (N,OC) W (OC,IC);
    // in one queue of work items, dW's (the larger ones) first
    MMPlan p[2] = {mm_plan(dweight, IC, 1, dout, 1, OC, inp, IC, 1, OC, IC, N),
                   mm_plan(dinp, IC, 1, dout, OC, 1, weight, IC, 1, N, IC, OC)};
    mm_run(p, 2);
}

// The fast attention does the same sums as the naive one, as small matrix products on the
// register tiles above, one (batch row, head) per thread at a time:
//   logits S = Q K^T (tiles above the diagonal skipped), softmax row by row, Y = A V.
// Operands that the tiles read along a row (K^T, V, ...) are first copied into per-thread
// scratch, zero-padded to whole MM_NR panels.
enum { MASK_N_LE_M, MASK_K_LE_M };
// one thread: C (M,N) (+)= A (M,K) B (K,N), A(m,k) = a[m*am + k], B rows ldb apart and
// zero-padded to whole panels. mask skips what the causal mask makes zero: MASK_N_LE_M
// computes only the column tiles that reach n <= m; MASK_K_LE_M sums only k <= m (A is 0
// beyond). (Sums over k >= m, of A read down its columns: mm_serial_tn.) Inline, so that each
// call's mask and strides are constants the compiler folds into the loops.
static inline void mm_serial(real *c, size_t ldc, int accumulate, const real *a, size_t am, const real *b, size_t ldb,
                      int M, int N, int K, int mask) {
    for (int m0 = 0; m0 < M; m0 += MM_MR) {
        int mr = M - m0 < MM_MR ? M - m0 : MM_MR;
        int k1 = mask == MASK_K_LE_M && m0 + mr < K ? m0 + mr : K;
        int nend = mask == MASK_N_LE_M && m0 + mr < N ? m0 + mr : N;
        for (int n0 = 0; n0 < nend; n0 += MM_NR) {
            int nr = N - n0 < MM_NR ? N - n0 : MM_NR;
            mm_tile(c + (size_t)m0 * ldc + n0, ldc, mr, nr, accumulate, a + (size_t)m0 * am, am, b + n0, ldb, k1,
                    MM_MR, MM_NR);
        }
    }
}
// one thread: C (T,D) += X^T Y summed over k >= m, X (T,T) row stride ldx and 0 above its
// diagonal (X^T below it), Y (T,Dp) zero-padded to whole panels. X^T is A read down its
// columns, so it is packed into tiles of interleaved rows (each k a contiguous copy of MM_MR
// floats of row k of X; pack holds whole tiles x T) for the spill-free packed tile.
static void mm_serial_tn(real *c, size_t ldc, const real *x, size_t ldx, const real *y, size_t ldy, int T, int D,
                         real *pack) {
    mm_pack_rows(pack, x, 1, ldx, 0, T, T, 0, T);
    for (int m0 = 0; m0 < T; m0 += MM_MR)
        for (int n0 = 0; n0 < D; n0 += MM_NR)
            mm_tile_packed(c + (size_t)m0 * ldc + n0, ldc, T - m0 < MM_MR ? T - m0 : MM_MR, D - n0 < MM_NR ? D - n0 : MM_NR,
                           1, pack + (size_t)m0 * T + (size_t)m0 * MM_MR, y + (size_t)m0 * ldy + n0, ldy, T - m0);
}
// dst (rows, cols_pad) = src (rows, cols) with row stride ld, zero in the padding
static void copy_padded(real *dst, int cols_pad, const real *src, size_t ld, int rows, int cols) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols_pad; j++) dst[(size_t)r * cols_pad + j] = j < cols ? src[(size_t)r * ld + j] : 0;
}
// dst (cols, rows_pad) = src^T, src (rows, cols) with row stride ld, zero in the padding. In
// 16 x 16 blocks: walking a whole column of a row-major matrix would touch a new cache line per
// element, all of them in a few cache sets when ld is a power of two.
static void transpose_padded(real *dst, int rows_pad, const real *src, size_t ld, int rows, int cols) {
    for (int r0 = 0; r0 < rows_pad; r0 += 16)
        for (int j0 = 0; j0 < cols; j0 += 16) {
            int r1 = r0 + 16 < rows_pad ? r0 + 16 : rows_pad, j1 = j0 + 16 < cols ? j0 + 16 : cols;
            for (int j = j0; j < j1; j++)
                for (int r = r0; r < r1; r++) dst[(size_t)j * rows_pad + r] = r < rows ? src[(size_t)r * ld + j] : 0;
        }
}
static int round_up_panel(int n) { return (n + MM_NR - 1) / MM_NR * MM_NR; }

void attention_forward(real *out, real *att, const real *q, const real *k, const real *v,
                       int B, int T, int NH, int NKV, int D) {
    // out, q (B,T,NH*D); k, v (B,T,NKV*D)
    int C = NH * D, KV = NKV * D, group = NH / NKV, Tp = round_up_panel(T), Dp = round_up_panel(D);
    int nthreads = max_threads();
    real scale = (real)(1.0 / sqrt((double)D));
    size_t per_thread = (size_t)D * Tp + (size_t)T * Dp;
    real *scratch = kernel_scratch(per_thread * nthreads);
    #pragma omp parallel for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int hk = h / group, tid = thread_id();
            real *kt = scratch + per_thread * tid, *vp = kt + (size_t)D * Tp; // K^T (D,Tp), V (T,Dp)
            transpose_padded(kt, Tp, k + (size_t)b * T * KV + hk * D, KV, T, D);
            copy_padded(vp, Dp, v + (size_t)b * T * KV + hk * D, KV, T, D);
            real *a = att + ((size_t)b * NH + h) * T * T;
            const real *qh = q + (size_t)b * T * C + h * D;
            // logits q_t . k_j into att, for the tiles on or below the diagonal
            mm_serial(a, T, 0, qh, C, kt, Tp, T, T, D, MASK_N_LE_M);
            // softmax of each row over j <= t (scaled by 1/sqrt(D)); zeros above the diagonal
            for (int t = 0; t < T; t++) {
                softmax_row(a + (size_t)t * T, t + 1, scale);
                for (int j = t + 1; j < T; j++) a[(size_t)t * T + j] = 0;
            }
            // y_t = sum_{j<=t} a[t,j] v_j
            mm_serial(out + (size_t)b * T * C + h * D, C, 0, a, T, vp, Dp, T, D, T, MASK_K_LE_M);
        }
}

// the softmax's backward for one row (attention_backward_naive's dlogit), into a scratch row,
// which may be da itself: dlogit_j = a_j (da_j - sum_i a_i da_i) * scale. Always inlined, so
// that the tiles around it stay inlined (dev/SPEED.md).
#ifdef __GNUC__
__attribute__((always_inline))
#endif
static inline void dsoftmax_row(real *dlogit, const real *a, const real *da, int n, real scale) {
    real dot = 0;
    #pragma omp simd reduction(+ : dot)
    for (int j = 0; j < n; j++) dot += a[j] * da[j];
    for (int j = 0; j < n; j++) dlogit[j] = a[j] * (da[j] - dot) * scale;
}

void attention_backward(real *dq, real *dk, real *dv, const real *dout, const real *q, const real *k,
                        const real *v, const real *att, int B, int T, int NH, int NKV, int D) {
    // the math is in attention_backward_naive's comment; here as products of whole matrices:
    //   dA = dY V^T,  dL = softmax backward of dA (row by row) / sqrt(D),
    //   dQ += dL K,   dK += dL^T Q,   dV += A^T dY
    int C = NH * D, KV = NKV * D, group = NH / NKV, Tp = round_up_panel(T), Dp = round_up_panel(D);
    int nthreads = max_threads();
    real scale = (real)(1.0 / sqrt((double)D));
    size_t per_thread = (size_t)D * Tp + 3 * (size_t)T * Dp + (size_t)T * Tp + (size_t)(T + MM_MR - 1) / MM_MR * MM_MR * T;
    real *scratch = kernel_scratch(per_thread * nthreads);
    // threads split (batch row, kv head): the query heads of a group share dk, dv
    #pragma omp parallel for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; b++)
        for (int hk = 0; hk < NKV; hk++) {
            int tid = thread_id();
            real *vt = scratch + per_thread * tid;   // V^T (D,Tp)
            real *kp = vt + (size_t)D * Tp;           // K (T,Dp)
            real *qp = kp + (size_t)T * Dp;           // Q of head h (T,Dp)
            real *dyp = qp + (size_t)T * Dp;          // dY of head h (T,Dp)
            real *dl = dyp + (size_t)T * Dp;          // dA, then dL (T,Tp)
            real *tr = dl + (size_t)T * Tp;           // dL^T, then A^T, packed (mm_serial_tn)
            transpose_padded(vt, Tp, v + (size_t)b * T * KV + hk * D, KV, T, D);
            copy_padded(kp, Dp, k + (size_t)b * T * KV + hk * D, KV, T, D);
            real *dkb = dk + (size_t)b * T * KV + hk * D, *dvb = dv + (size_t)b * T * KV + hk * D;
            for (int h = hk * group; h < (hk + 1) * group; h++) {
                const real *a = att + ((size_t)b * NH + h) * T * T, *dy = dout + (size_t)b * T * C + h * D;
                copy_padded(qp, Dp, q + (size_t)b * T * C + h * D, C, T, D);
                copy_padded(dyp, Dp, dy, C, T, D);
                // da[t,j] = dy_t . v_j (on and below the diagonal)
                mm_serial(dl, Tp, 0, dy, C, vt, Tp, T, T, D, MASK_N_LE_M);
                // dlogit[t,j] = a[t,j] (da[t,j] - sum_i a[t,i] da[t,i]) / sqrt(D); 0 above the diagonal
                for (int t = 0; t < T; t++) {
                    real *row = dl + (size_t)t * Tp;
                    dsoftmax_row(row, a + (size_t)t * T, row, t + 1, scale);
                    for (int j = t + 1; j < Tp; j++) row[j] = 0;
                }
                mm_serial(dq + (size_t)b * T * C + h * D, C, 1, dl, Tp, kp, Dp, T, D, T, MASK_K_LE_M); // dQ += dL K
                mm_serial_tn(dkb, KV, dl, Tp, qp, Dp, T, D, tr); // dK += dL^T Q
                mm_serial_tn(dvb, KV, a, T, dyp, Dp, T, D, tr);  // dV += A^T dY
            }
        }
}
