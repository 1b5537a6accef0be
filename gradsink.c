/*
gradsink.c — "Attention Sinks Induce Gradient Sinks" (Chen & Yao, 2026) in one C file.

Trains a small Llama-like Transformer (pre-norm RMSNorm, RoPE, GQA attention, SwiGLU MLP,
untied LM head, no biases) on the CPU, with a backward pass derived and written by hand,
the paper's V-scale as one switchable forward/backward pair, and the paper's measurements
(attention sinks, gradient sinks, massive activations, RMSNorm gradient reshaping) read
inline from the activations and gradients that training itself stores.

Read it top to bottom, in the order of one training step:
  utilities -> layers (forward/backward pairs) -> model (sizes, init, forward, backward,
  AdamW) -> measurements -> data loader -> checkpoints -> main.

What it is not: a fast general framework, a GPU trainer, or a faithful 0.1B-scale rerun.
It uses libc and libm only, and OpenMP when the compiler has it.
Compile with -DGRADSINK_DOUBLE to make every number a double (the tests do, so finite
differences are exact enough to check the backward pass tightly).
*/
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

// ----------------------------------------------------------------------------
// numeric type: float for training, double for the finite-difference tests

#ifdef GRADSINK_DOUBLE
typedef double real;
#else
typedef float real;
#endif

// ----------------------------------------------------------------------------
// utilities

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

// zeroed memory, aligned to a cache line (64 bytes) so vector loads of a row do not straddle two
static void *xcalloc(size_t n, size_t size) {
    if (n == 0) n = 1;
    if (size && n > SIZE_MAX / size - 64) die("out of memory: %zu x %zu bytes", n, size);
    size_t bytes = (n * size + 63) / 64 * 64, align = 64;
#ifdef MADV_HUGEPAGE
    // big blocks (activations, their gradients, the LM head) in 2 MB pages where the kernel
    // allows it: a matmul walking a column of a large matrix then touches one page, not hundreds
    if (bytes >= ((size_t)4 << 20)) { align = (size_t)2 << 20; bytes = (bytes + align - 1) / align * align; }
#endif
    void *p = aligned_alloc(align, bytes);
    if (!p) die("out of memory allocating %zu bytes", n * size);
#ifdef MADV_HUGEPAGE
    if (align > 64) madvise(p, bytes, MADV_HUGEPAGE); // a hint: failure changes nothing
#endif
    memset(p, 0, bytes);
    return p;
}

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

// e^x for the softmaxes and sigmoids, in plain arithmetic that vectorizes (libm's exp is a
// call per element): x = n ln2 + r with |r| <= ln2/2, e^r by its Taylor series to r^7
// (relative error below 2e-7, float rounding), 2^n written into the exponent bits. Inputs
// are clamped to [-87, 88], where e^x stays a normal float. The double build uses libm.
static inline real exp_fast(real x) {
#ifdef GRADSINK_DOUBLE
    return exp(x);
#else
    x = x < -87.0f ? -87.0f : x > 88.0f ? 88.0f : x;
    float n = (x * 1.44269504f + 12582912.0f) - 12582912.0f; // round(x / ln2): 1.5 * 2^23 trick
    float r = (x - n * 0.693145751953125f) - n * 1.428606765330187e-6f; // ln2 split in two
    float p = 1.0f + r * (1.0f + r * (0.5f + r * (1.0f / 6 + r * (1.0f / 24 + r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    int32_t bits = ((int32_t)n + 127) << 23;
    float two_n;
    memcpy(&two_n, &bits, sizeof(two_n));
    return p * two_n;
#endif
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

// ----------------------------------------------------------------------------
// layers: each is a forward/backward pair. Shapes in comments; B batch rows, T positions,
// C model width. Every backward ACCUMULATES (+=) into its gradient buffers, so a tensor
// that feeds two branches simply receives both contributions.

// --- token embedding: h0[b,t,:] = wte[tok[b,t], :]
void encoder_forward(real *out, const int *inp, const real *wte, int B, int T, int C) {
    // out (B,T,C), inp (B,T), wte (V,C)
    for (int bt = 0; bt < B * T; bt++) memcpy(out + (size_t)bt * C, wte + (size_t)inp[bt] * C, C * sizeof(real));
}
void encoder_backward(real *dwte, const real *dout, const int *inp, int B, int T, int C) {
    // dwte[tok] += dout: a row of the embedding collects the gradient of every use of its token
    for (int bt = 0; bt < B * T; bt++) {
        real *dw = dwte + (size_t)inp[bt] * C;
        const real *d = dout + (size_t)bt * C;
        for (int i = 0; i < C; i++) dw[i] += d[i];
    }
}

// --- RMSNorm: y = g * x / r,  r = sqrt(mean(x^2) + eps), eps = 1e-5 (HF Llama)
#define RMSNORM_EPS 1e-5
void rmsnorm_forward(real *out, real *rstd, const real *inp, const real *gain, int N, int C) {
    // out (N,C), rstd (N) = 1/r, inp (N,C), gain (C); N = B*T rows
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        const real *x = inp + (size_t)n * C;
        double ss = 0.0;
        #pragma omp simd reduction(+ : ss)
        for (int i = 0; i < C; i++) ss += (double)x[i] * x[i];
        real s = (real)(1.0 / sqrt(ss / C + RMSNORM_EPS));
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
// The _naive versions are the definition; the others compute the same sums in an order that
// is kinder to caches and vector units, and are tested against the naive ones.
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

// The fast versions share one engine, a register-tiled product C (M,N) = or += A (M,K) B (K,N):
//   - B is first packed into column panels MM_NR wide (zero-padded past N), each panel
//     K x MM_NR contiguous, so the inner loop reads two 16-float vectors per k;
//   - a register tile of MM_MR rows x MM_NR columns (16 vector accumulators) then walks k,
//     one broadcast of A(r,k) times a panel row per FMA: plain loops over constant bounds
//     that gcc/clang unroll into 512-bit FMAs (-O3 -march=native -mprefer-vector-width=512);
//   - threads split the output tiles, so each C element is summed by one thread, over k in
//     order: no atomics, and the result does not depend on the number of threads.
// A is read in place through strides (A(m,k) = A[m*am + k*ak]); in the rows past M of a
// ragged last tile the kernel re-reads row M-1 and throws the result away.
#define MM_MR 8
#define MM_NR 32

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

// Bp (panels, K, MM_NR): Bp[p][k][j] = B(k, p*MM_NR + j), or 0 past N; B(k,n) = B[k*bk + n*bn]
static void mm_pack_panels(real *bp, const real *b, size_t bk, size_t bn, int K, int N) {
    int np = (N + MM_NR - 1) / MM_NR;
    #pragma omp for schedule(static)
    for (int p = 0; p < np; p++)
        for (int k = 0; k < K; k++) {
            real *dst = bp + ((size_t)p * K + k) * MM_NR;
            for (int j = 0; j < MM_NR; j++) {
                int n = p * MM_NR + j;
                dst[j] = n < N ? b[(size_t)k * bk + (size_t)n * bn] : 0;
            }
        }
}

// one register tile: C[r][j] (+)= sum_k A(r,k) Bp[k*ldb + j] for r < mr, j < nr
static inline void mm_tile(real *c, size_t ldc, int mr, int nr, int accumulate, const real *a, size_t am,
                           size_t ak, const real *bp, size_t ldb, int K) {
    real acc[MM_MR][MM_NR];
    const real *ar[MM_MR];
    for (int r = 0; r < MM_MR; r++) {
        ar[r] = a + (size_t)(r < mr ? r : mr - 1) * am;
        for (int j = 0; j < MM_NR; j++) acc[r][j] = 0;
    }
    for (int k = 0; k < K; k++) {
        const real *b = bp + (size_t)k * ldb;
        for (int r = 0; r < MM_MR; r++) {
            real x = ar[r][(size_t)k * ak];
            for (int j = 0; j < MM_NR; j++) acc[r][j] += x * b[j];
        }
    }
    for (int r = 0; r < mr; r++) {
        real *cr = c + (size_t)r * ldc;
        if (nr == MM_NR && accumulate) for (int j = 0; j < MM_NR; j++) cr[j] += acc[r][j];
        else if (nr == MM_NR) for (int j = 0; j < MM_NR; j++) cr[j] = acc[r][j];
        else for (int j = 0; j < nr; j++) cr[j] = accumulate ? cr[j] + acc[r][j] : acc[r][j];
    }
}

// ap (tiles, kc, MM_MR) = rows m0..m1 of A over k0..k0+kc, MM_MR rows interleaved; rows past M
// repeat row M-1 (their results are never stored)
static void mm_pack_rows(real *ap, const real *a, size_t am, size_t ak, int m0, int m1, int M, int k0, int kc) {
    for (int t0 = m0; t0 < m1; t0 += MM_MR) {
        real *dst = ap + (size_t)(t0 - m0) * kc;
        for (int k = 0; k < kc; k++)
            for (int r = 0; r < MM_MR; r++)
                dst[k * MM_MR + r] = a[(size_t)(t0 + r < M ? t0 + r : M - 1) * am + (size_t)(k0 + k) * ak];
    }
}

// C (M,N), row stride ldc (+)= A (M,K) B (K,N), A(m,k) = a[m*am + k*ak], B(k,n) = b[k*bk + n*bn].
// Work items are (block of MM_MC rows) x (group of panels), taken by threads as they come
// free (dynamic: a thread the OS has paused does not hold up the others). In an item, k runs
// in chunks of MM_KC; each panel's MM_KC x MM_NR slice (in L1) serves all the block's tiles,
// whose rows of A (in L2) serve every panel of the group. Which thread takes an item changes
// nothing in the sums, so results do not depend on the thread count or the schedule.
#define MM_MC (16 * MM_MR) // a whole number of tiles
#define MM_KC 256
static void mm_product(real *c, size_t ldc, int accumulate, const real *a, size_t am, size_t ak, const real *b,
                       size_t bk, size_t bn, int M, int N, int K) {
    int nthreads = 1;
#ifdef _OPENMP
    nthreads = omp_get_max_threads();
#endif
    int np = (N + MM_NR - 1) / MM_NR, mc = MM_MC;
    if ((M + mc - 1) / mc < 2 * nthreads) mc = MM_MC / 2; // small M: more, smaller blocks (still whole tiles)
    int nblocks = (M + mc - 1) / mc, ngroups = 1;
    while (nblocks * ngroups < 2 * nthreads && ngroups < np) ngroups++; // still too few: split the panels
    int per_group = (np + ngroups - 1) / ngroups;
    // B with contiguous rows is read in place, except a ragged last panel; otherwise packed
    int first_packed = bn == 1 ? N / MM_NR : 0;
    size_t bsize = (size_t)(np - first_packed) * K * MM_NR;
    // A read down its columns (ak > 1, as in dW = dout^T inp) is copied, one block x chunk at
    // a time, into tiles of interleaved rows: walking a column of a wide matrix in place
    // would touch a new cache line every k, all of them in the same cache set
    int pack_a = ak != 1;
    real *scratch = kernel_scratch(bsize + (pack_a ? (size_t)nthreads * mc * MM_KC : 0) + 1), *bp = scratch;
    #pragma omp parallel
    {
        if (first_packed < np) // ends with a barrier
            mm_pack_panels(bp, b + (size_t)first_packed * MM_NR * bn, bk, bn, K, N - first_packed * MM_NR);
        int tid = 0;
#ifdef _OPENMP
        tid = omp_get_thread_num();
#endif
        real *ap = scratch + bsize + (size_t)tid * mc * MM_KC;
        #pragma omp for schedule(dynamic)
        for (int item = 0; item < nblocks * ngroups; item++) {
            int m0 = item / ngroups * mc, m1 = M < m0 + mc ? M : m0 + mc;
            int p0 = item % ngroups * per_group, p1 = np < p0 + per_group ? np : p0 + per_group;
            for (int k0 = 0; k0 < K; k0 += MM_KC) {
                int kc = K - k0 < MM_KC ? K - k0 : MM_KC;
                if (pack_a) mm_pack_rows(ap, a, am, ak, m0, m1, M, k0, kc);
                for (int p = p0; p < p1; p++) {
                    int n0 = p * MM_NR, nr = N - n0 < MM_NR ? N - n0 : MM_NR;
                    const real *panel = p < first_packed ? b + (size_t)k0 * bk + n0
                                                         : bp + ((size_t)(p - first_packed) * K + k0) * MM_NR;
                    size_t ldb = p < first_packed ? bk : MM_NR;
                    for (int t0 = m0; t0 < m1; t0 += MM_MR) {
                        int mr = M - t0 < MM_MR ? M - t0 : MM_MR;
                        real *ct = c + (size_t)t0 * ldc + n0;
                        if (pack_a)
                            mm_tile(ct, ldc, mr, nr, accumulate || k0 > 0, ap + (size_t)(t0 - m0) * kc, 1, MM_MR,
                                    panel, ldb, kc);
                        else
                            mm_tile(ct, ldc, mr, nr, accumulate || k0 > 0, a + (size_t)t0 * am + (size_t)k0 * ak, am,
                                    ak, panel, ldb, kc);
                    }
                }
            }
        }
    }
}

void matmul_forward(real *out, const real *inp, const real *weight, int N, int IC, int OC) {
    // out (N,OC) = inp (N,IC) W^T: A = inp, B(i,o) = W[o,i]
    mm_product(out, OC, 0, inp, IC, 1, weight, 1, IC, N, OC, IC);
}
void matmul_backward(real *dinp, real *dweight, const real *dout, const real *inp, const real *weight,
                     int N, int IC, int OC) {
    // dinp (N,IC) += dout (N,OC) W (OC,IC)
    mm_product(dinp, IC, 1, dout, OC, 1, weight, IC, 1, N, IC, OC);
    // dW (OC,IC) += dout^T (OC,N) inp (N,IC): A(o,n) = dout[n,o]
    mm_product(dweight, IC, 1, dout, 1, OC, inp, IC, 1, OC, IC, N);
}

// --- RoPE, HF Llama's "rotate half": in each head, dimension i pairs with i + D/2 and the
// pair is rotated by the angle t * base^(-2i/D), t = position in the row.
//   out_i       = x_i cos - x_{i+D/2} sin
//   out_{i+D/2} = x_{i+D/2} cos + x_i sin
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
    // a rotation's Jacobian is the rotation; its transpose rotates back by -angle
    int h2 = D / 2;
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
//   lambda = 1 (fixed) or exp(theta) with one learned theta per layer and kv head.
// Small-norm values (a sink's values are small) are shrunk, and with them their gradient.
enum { VSCALE_OFF = 0, VSCALE_FIXED = 1, VSCALE_LEARNED = 2 };
#define VSCALE_SIGMA 0.02

real vscale_c(int d_model, int d_head, real theta, int mode) {
    real lambda = mode == VSCALE_LEARNED ? (real)exp(theta) : (real)1;
    return (real)(d_model * d_head * VSCALE_SIGMA * VSCALE_SIGMA) * lambda;
}
void vscale_forward(real *vhat, real *phi, const real *v, const real *theta, int mode, int d_model,
                    int N, int NKV, int D) {
    // vhat, v (N, NKV*D); phi (N, NKV): the factor applied; theta (NKV) of this layer
    if (mode == VSCALE_OFF) { // the one branch that switches the paper's intervention off
        memcpy(vhat, v, (size_t)N * NKV * D * sizeof(real));
        for (size_t i = 0; i < (size_t)N * NKV; i++) phi[i] = 1;
        return;
    }
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
                     int d_model, int N, int NKV, int D) {
    // Jacobian J = phi(r) I + 2c/(r+c)^2 v v^T (symmetric), so dv = phi dvhat + 2c/(r+c)^2 <v,dvhat> v.
    // Its eigenvalues: r/(r+c) orthogonal to v, (r^2+3cr)/(r+c)^2 along v (at most 9/8, at r = 3c).
    // Learned lambda: dphi/dtheta = dphi/dc * dc/dtheta = -r/(r+c)^2 * c, so
    //   dtheta += <v, dvhat> * (-r c / (r+c)^2).
    if (mode == VSCALE_OFF) {
        for (size_t i = 0; i < (size_t)N * NKV * D; i++) dv[i] += dvhat[i];
        return;
    }
    for (int h = 0; h < NKV; h++) {
        real c = vscale_c(d_model, D, theta[h], mode), dth = 0;
        for (int n = 0; n < N; n++) {
            const real *x = v + ((size_t)n * NKV + h) * D, *dy = dvhat + ((size_t)n * NKV + h) * D;
            real *dx = dv + ((size_t)n * NKV + h) * D;
            real r = 0, vd = 0;
            for (int i = 0; i < D; i++) { r += x[i] * x[i]; vd += x[i] * dy[i]; }
            real rc = r + c, f = r / rc, g = 2 * c / (rc * rc) * vd;
            for (int i = 0; i < D; i++) dx[i] += f * dy[i] + g * x[i];
            dth += vd * (-r * c / (rc * rc));
        }
        if (mode == VSCALE_LEARNED) dtheta[h] += dth;
    }
}

// --- causal attention with grouped KV heads. Query head h reads kv head h / (NH/NKV).
//   a[t,j] = softmax_j<=t( q_t . k_j / sqrt(D) ),   y_t = sum_{j<=t} a[t,j] v_j
// att (B,NH,T,T) stores the softmax weights (the measurements read them); j > t stays 0.
void attention_forward_naive(real *out, real *att, const real *q, const real *k, const real *v,
                       int B, int T, int NH, int NKV, int D) {
    // out, q (B,T,NH*D); k, v (B,T,NKV*D)
    int C = NH * D, KV = NKV * D, group = NH / NKV;
    real scale = (real)(1.0 / sqrt((double)D));
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int hk = h / group;
            for (int t = 0; t < T; t++) {
                const real *qt = q + ((size_t)b * T + t) * C + h * D;
                real *a = att + (((size_t)b * NH + h) * T + t) * T;
                real maxv = -INFINITY;
                for (int j = 0; j <= t; j++) {
                    const real *kj = k + ((size_t)b * T + j) * KV + hk * D;
                    real s = 0;
                    for (int i = 0; i < D; i++) s += qt[i] * kj[i];
                    a[j] = s * scale;
                    if (a[j] > maxv) maxv = a[j];
                }
                real sum = 0;
                for (int j = 0; j <= t; j++) { a[j] = (real)exp(a[j] - maxv); sum += a[j]; }
                for (int j = 0; j <= t; j++) a[j] /= sum;
                for (int j = t + 1; j < T; j++) a[j] = 0;
                real *yt = out + ((size_t)b * T + t) * C + h * D;
                for (int i = 0; i < D; i++) yt[i] = 0;
                for (int j = 0; j <= t; j++) {
                    const real *vj = v + ((size_t)b * T + j) * KV + hk * D;
                    for (int i = 0; i < D; i++) yt[i] += a[j] * vj[i];
                }
            }
        }
}
// softmax backward for one row: dlogit_j = a_j (da_j - sum_i a_i da_i). Each row sums to 0.
void softmax_backward_row(real *dlogit, const real *a, const real *da, int n) {
    real dot = 0;
    for (int j = 0; j < n; j++) dot += a[j] * da[j];
    for (int j = 0; j < n; j++) dlogit[j] = a[j] * (da[j] - dot);
}
void attention_backward_naive(real *dq, real *dk, real *dv, const real *dout, const real *q, const real *k,
                        const real *v, const real *att, int B, int T, int NH, int NKV, int D) {
    // Value path:  dV = A^T dY, i.e. dv_j += sum_{t>=j} a[t,j] dy_t. The sink column j = 0 is
    //              read by every query, so it collects gradient from every later token: the
    //              gradient sink.
    // Logits:      da[t,j] = dy_t . v_j, dlogit = softmax backward of da.
    // Key path:    dk_j += sum_t dlogit[t,j] q_t / sqrt(D) = sum_t a_tj <dy_t, v_j - y_t> q_t / sqrt(D).
    // Query path:  dq_t += sum_{j<=t} dlogit[t,j] k_j / sqrt(D). Row-local; for t = 0 the only
    //              logit is a lone softmax entry (a = 1, dlogit = 0), so dq_0 = 0 exactly.
    // Threads split (batch row, kv head): the query heads of a group share dk, dv.
    int C = NH * D, KV = NKV * D, group = NH / NKV;
    real scale = (real)(1.0 / sqrt((double)D));
    #pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < B; b++)
        for (int hk = 0; hk < NKV; hk++) {
            real *da = (real *)malloc(2 * (size_t)T * sizeof(real)), *dl = da + T;
            for (int h = hk * group; h < (hk + 1) * group; h++)
                for (int t = 0; t < T; t++) {
                    const real *a = att + (((size_t)b * NH + h) * T + t) * T;
                    const real *dy = dout + ((size_t)b * T + t) * C + h * D;
                    const real *qt = q + ((size_t)b * T + t) * C + h * D;
                    real *dqt = dq + ((size_t)b * T + t) * C + h * D;
                    for (int j = 0; j <= t; j++) {
                        const real *vj = v + ((size_t)b * T + j) * KV + hk * D;
                        real *dvj = dv + ((size_t)b * T + j) * KV + hk * D;
                        real s = 0;
                        for (int i = 0; i < D; i++) { s += dy[i] * vj[i]; dvj[i] += a[j] * dy[i]; }
                        da[j] = s;
                    }
                    softmax_backward_row(dl, a, da, t + 1);
                    for (int j = 0; j <= t; j++) {
                        const real *kj = k + ((size_t)b * T + j) * KV + hk * D;
                        real *dkj = dk + ((size_t)b * T + j) * KV + hk * D;
                        real g = dl[j] * scale;
                        for (int i = 0; i < D; i++) { dqt[i] += g * kj[i]; dkj[i] += g * qt[i]; }
                    }
                }
            free(da);
        }
}

// The fast attention does the same sums as the naive one, as small matrix products on the
// register tiles above, one (batch row, head) per thread at a time:
//   logits S = Q K^T (tiles above the diagonal skipped), softmax row by row, Y = A V.
// Operands that the tiles read along a row (K^T, V, ...) are first copied into per-thread
// scratch, zero-padded to whole MM_NR panels.
enum { MASK_NONE, MASK_N_LE_M, MASK_K_LE_M, MASK_K_GE_M };
// one thread: C (M,N) (+)= A (M,K) B (K,N), A(m,k) = a[m*am + k], B rows ldb apart and
// zero-padded to whole panels. mask skips what the causal mask makes zero: MASK_N_LE_M
// computes only the column tiles that reach n <= m; MASK_K_LE_M sums only k <= m (A is 0
// beyond), MASK_K_GE_M only k >= m (A is 0 before).
static void mm_serial(real *c, size_t ldc, int accumulate, const real *a, size_t am, const real *b, size_t ldb,
                      int M, int N, int K, int mask) {
    for (int m0 = 0; m0 < M; m0 += MM_MR) {
        int mr = M - m0 < MM_MR ? M - m0 : MM_MR;
        int k0 = mask == MASK_K_GE_M ? m0 : 0, k1 = mask == MASK_K_LE_M && m0 + mr < K ? m0 + mr : K;
        int nend = mask == MASK_N_LE_M && m0 + mr < N ? m0 + mr : N;
        for (int n0 = 0; n0 < nend; n0 += MM_NR) {
            int nr = N - n0 < MM_NR ? N - n0 : MM_NR;
            mm_tile(c + (size_t)m0 * ldc + n0, ldc, mr, nr, accumulate, a + (size_t)m0 * am + k0, am, 1,
                    b + (size_t)k0 * ldb + n0, ldb, k1 - k0);
        }
    }
}
// dst (rows, cols_pad) = src (rows, cols) with row stride ld, zero in the padding
static void copy_padded(real *dst, int cols_pad, const real *src, size_t ld, int rows, int cols) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols_pad; j++) dst[(size_t)r * cols_pad + j] = j < cols ? src[(size_t)r * ld + j] : 0;
}
// dst (cols, rows_pad) = src^T, src (rows, cols) with row stride ld, zero in the padding
static void transpose_padded(real *dst, int rows_pad, const real *src, size_t ld, int rows, int cols) {
    for (int j = 0; j < cols; j++)
        for (int r = 0; r < rows_pad; r++) dst[(size_t)j * rows_pad + r] = r < rows ? src[(size_t)r * ld + j] : 0;
}
static int round_up_panel(int n) { return (n + MM_NR - 1) / MM_NR * MM_NR; }

void attention_forward(real *out, real *att, const real *q, const real *k, const real *v,
                       int B, int T, int NH, int NKV, int D) {
    // out, q (B,T,NH*D); k, v (B,T,NKV*D)
    int C = NH * D, KV = NKV * D, group = NH / NKV, Tp = round_up_panel(T), Dp = round_up_panel(D), nthreads = 1;
    real scale = (real)(1.0 / sqrt((double)D));
#ifdef _OPENMP
    nthreads = omp_get_max_threads();
#endif
    size_t per_thread = (size_t)D * Tp + (size_t)T * Dp;
    real *scratch = kernel_scratch(per_thread * nthreads);
    #pragma omp parallel for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            int hk = h / group, tid = 0;
#ifdef _OPENMP
            tid = omp_get_thread_num();
#endif
            real *kt = scratch + per_thread * tid, *vp = kt + (size_t)D * Tp; // K^T (D,Tp), V (T,Dp)
            transpose_padded(kt, Tp, k + (size_t)b * T * KV + hk * D, KV, T, D);
            copy_padded(vp, Dp, v + (size_t)b * T * KV + hk * D, KV, T, D);
            real *a = att + ((size_t)b * NH + h) * T * T;
            const real *qh = q + (size_t)b * T * C + h * D;
            // logits q_t . k_j into att, for the tiles on or below the diagonal
            mm_serial(a, T, 0, qh, C, kt, Tp, T, T, D, MASK_N_LE_M);
            // softmax of each row over j <= t (scaled by 1/sqrt(D)); zeros above the diagonal
            for (int t = 0; t < T; t++) {
                real *row = a + (size_t)t * T, maxv = -INFINITY, sum = 0;
                for (int j = 0; j <= t; j++) maxv = row[j] > maxv ? row[j] : maxv;
                for (int j = 0; j <= t; j++) row[j] = exp_fast((row[j] - maxv) * scale);
                #pragma omp simd reduction(+ : sum)
                for (int j = 0; j <= t; j++) sum += row[j];
                real inv = 1 / sum;
                for (int j = 0; j <= t; j++) row[j] *= inv;
                for (int j = t + 1; j < T; j++) row[j] = 0;
            }
            // y_t = sum_{j<=t} a[t,j] v_j
            mm_serial(out + (size_t)b * T * C + h * D, C, 0, a, T, vp, Dp, T, D, T, MASK_K_LE_M);
        }
}

void attention_backward(real *dq, real *dk, real *dv, const real *dout, const real *q, const real *k,
                        const real *v, const real *att, int B, int T, int NH, int NKV, int D) {
    // the math is in attention_backward_naive's comment; here as products of whole matrices:
    //   dA = dY V^T,  dL = softmax backward of dA (row by row) / sqrt(D),
    //   dQ += dL K,   dK += dL^T Q,   dV += A^T dY
    int C = NH * D, KV = NKV * D, group = NH / NKV, Tp = round_up_panel(T), Dp = round_up_panel(D), nthreads = 1;
    real scale = (real)(1.0 / sqrt((double)D));
#ifdef _OPENMP
    nthreads = omp_get_max_threads();
#endif
    size_t per_thread = (size_t)D * Tp + 3 * (size_t)T * Dp + 2 * (size_t)T * Tp;
    real *scratch = kernel_scratch(per_thread * nthreads);
    // threads split (batch row, kv head): the query heads of a group share dk, dv
    #pragma omp parallel for collapse(2) schedule(dynamic)
    for (int b = 0; b < B; b++)
        for (int hk = 0; hk < NKV; hk++) {
            int tid = 0;
#ifdef _OPENMP
            tid = omp_get_thread_num();
#endif
            real *vt = scratch + per_thread * tid;   // V^T (D,Tp)
            real *kp = vt + (size_t)D * Tp;           // K (T,Dp)
            real *qp = kp + (size_t)T * Dp;           // Q of head h (T,Dp)
            real *dyp = qp + (size_t)T * Dp;          // dY of head h (T,Dp)
            real *dl = dyp + (size_t)T * Dp;          // dA, then dL (T,Tp)
            real *tr = dl + (size_t)T * Tp;           // dL^T, then A^T (T,Tp)
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
                    const real *at = a + (size_t)t * T;
                    real *row = dl + (size_t)t * Tp, dot = 0;
                    #pragma omp simd reduction(+ : dot)
                    for (int j = 0; j <= t; j++) dot += at[j] * row[j];
                    for (int j = 0; j <= t; j++) row[j] = at[j] * (row[j] - dot) * scale;
                    for (int j = t + 1; j < Tp; j++) row[j] = 0;
                }
                mm_serial(dq + (size_t)b * T * C + h * D, C, 1, dl, Tp, kp, Dp, T, D, T, MASK_K_LE_M); // dQ += dL K
                transpose_padded(tr, Tp, dl, Tp, T, T);
                mm_serial(dkb, KV, 1, tr, Tp, qp, Dp, T, D, T, MASK_K_GE_M);                            // dK += dL^T Q
                transpose_padded(tr, Tp, a, T, T, T);
                mm_serial(dvb, KV, 1, tr, Tp, dyp, Dp, T, D, T, MASK_K_GE_M);                           // dV += A^T dY
            }
        }
}

// --- SwiGLU: h = silu(gate) * up, silu(x) = x * sigmoid(x)
void swiglu_forward(real *out, const real *gate, const real *up, size_t n) {
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        real s = 1 / (1 + exp_fast(-gate[i]));
        out[i] = gate[i] * s * up[i];
    }
}
void swiglu_backward(real *dgate, real *dup, const real *dout, const real *gate, const real *up, size_t n) {
    // d silu(x)/dx = s (1 + x (1 - s)), s = sigmoid(x)
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        real x = gate[i], s = 1 / (1 + exp_fast(-x));
        dgate[i] += dout[i] * up[i] * s * (1 + x * (1 - s));
        dup[i] += dout[i] * x * s;
    }
}

// --- softmax + cross-entropy. probs overwrite the logits; losses (N) per position.
void crossentropy_forward(real *losses, real *probs, const int *targets, int N, int V) {
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++) {
        real *p = probs + (size_t)n * V;
        real maxv = p[0], sum = 0;
        for (int i = 1; i < V; i++) maxv = p[i] > maxv ? p[i] : maxv;
        for (int i = 0; i < V; i++) p[i] = exp_fast(p[i] - maxv);
        #pragma omp simd reduction(+ : sum)
        for (int i = 0; i < V; i++) sum += p[i];
        real inv = 1 / sum;
        for (int i = 0; i < V; i++) p[i] *= inv;
        losses[n] = (real)-log(p[targets[n]] > 0 ? p[targets[n]] : (real)1e-30);
    }
}
void crossentropy_softmax_backward(real *dlogits, const real *probs, const int *targets, real dloss, int N, int V) {
    // d(-log p_y)/dlogit_i = p_i - [i == y], times dloss = 1/N for the mean loss
    #pragma omp parallel for schedule(static)
    for (int n = 0; n < N; n++)
        for (int i = 0; i < V; i++)
            dlogits[(size_t)n * V + i] += (probs[(size_t)n * V + i] - (i == targets[n])) * dloss;
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
} Config;

// the parameters, in the order they are stored in a checkpoint
#define NUM_PARAM_TENSORS 13
typedef struct {
    real *wte;          // (V, C)
    real *attn_norm;    // (L, C)
    real *wq;           // (L, H*D, C)
    real *wk;           // (L, Hkv*D, C)
    real *wv;           // (L, Hkv*D, C)
    real *wo;           // (L, C, H*D)
    real *mlp_norm;     // (L, C)
    real *w_gate;       // (L, F, C)
    real *w_up;         // (L, F, C)
    real *w_down;       // (L, C, F)
    real *vscale_theta; // (L, Hkv) log lambda; zeros unless V-scale is learned
    real *final_norm;   // (C)
    real *lm_head;      // (V, C)
} ParamTensors;

static const char *PARAM_NAMES[NUM_PARAM_TENSORS] = {
    "wte", "attn_norm", "wq", "wk", "wv", "wo", "mlp_norm", "w_gate", "w_up", "w_down",
    "vscale_theta", "final_norm", "lm_head"};
// what each tensor is: a matrix (init N(0, 0.02^2), weight decay), a norm gain (init 1), theta (init 0)
enum { KIND_MATRIX, KIND_GAIN, KIND_THETA };
static const int PARAM_KIND[NUM_PARAM_TENSORS] = {
    KIND_MATRIX, KIND_GAIN, KIND_MATRIX, KIND_MATRIX, KIND_MATRIX, KIND_MATRIX, KIND_GAIN,
    KIND_MATRIX, KIND_MATRIX, KIND_MATRIX, KIND_THETA, KIND_GAIN, KIND_MATRIX};

static void param_sizes(size_t *s, const Config *c) {
    size_t V = c->vocab_size, C = c->d_model, L = c->n_layer, D = C / c->n_head;
    size_t KV = c->n_kv_head * D, F = c->ffn_hidden;
    s[0] = V * C; s[1] = L * C; s[2] = L * C * C; s[3] = L * KV * C; s[4] = L * KV * C;
    s[5] = L * C * C; s[6] = L * C; s[7] = L * F * C; s[8] = L * F * C; s[9] = L * C * F;
    s[10] = L * c->n_kv_head; s[11] = C; s[12] = V * C;
}

// carve one block of memory into named tensors, in table order
static void point_tensors(real **ptrs[], const size_t *sizes, int n, real *memory) {
    for (int i = 0; i < n; i++) { *ptrs[i] = memory; memory += sizes[i]; }
}
static void param_pointers(real **ptrs[NUM_PARAM_TENSORS], ParamTensors *p) {
    real **list[NUM_PARAM_TENSORS] = {&p->wte, &p->attn_norm, &p->wq, &p->wk, &p->wv, &p->wo, &p->mlp_norm,
                                      &p->w_gate, &p->w_up, &p->w_down, &p->vscale_theta, &p->final_norm, &p->lm_head};
    memcpy(ptrs, list, sizeof(list));
}

// the activations of one forward pass (and, in a second copy, their gradients)
#define NUM_ACT_TENSORS 24
typedef struct {
    real *res;      // (L+1, B, T, C) residual stream: res[l] = h_in of layer l, res[l+1] = its h_out
    real *ln1;      // (L, B, T, C)   x~ = RMSNorm(h_in), the attention input
    real *ln1_rstd; // (L, B, T)
    real *q;        // (L, B, T, C)   queries after RoPE
    real *k;        // (L, B, T, KV)  keys after RoPE
    real *v;        // (L, B, T, KV)  values before V-scale
    real *vhat;     // (L, B, T, KV)  values after V-scale (a copy of v when off)
    real *vphi;     // (L, B, T, Hkv) V-scale factor r/(r+c) (1 when off)
    real *att;      // (L, B, H, T, T) attention weights a[t,j]
    real *atty;     // (L, B, T, C)   attention output before Wo
    real *r_attn;   // (L, B, T, C)   attention branch output Wo y
    real *h_half;   // (L, B, T, C)   h_in + r_attn
    real *ln2;      // (L, B, T, C)   RMSNorm(h_half), the MLP input
    real *ln2_rstd; // (L, B, T)
    real *gate;     // (L, B, T, F)
    real *up;       // (L, B, T, F)
    real *hmlp;     // (L, B, T, F)   silu(gate) * up
    real *r_mlp;    // (L, B, T, C)   MLP branch output
    real *lnf;      // (B, T, C)      final RMSNorm
    real *lnf_rstd; // (B, T)
    real *logits;   // (B, T, V)      logits, then probabilities
    real *losses;   // (B, T)
    real *qpre;     // (B, T, C)      scratch: queries before RoPE (one layer at a time)
    real *kpre;     // (B, T, KV)     scratch: keys before RoPE
} ActTensors;

static void act_sizes(size_t *s, const Config *c, int B, int T, int for_grads) {
    size_t L = c->n_layer, C = c->d_model, H = c->n_head, D = C / H, KV = c->n_kv_head * D;
    size_t F = c->ffn_hidden, V = c->vocab_size, N = (size_t)B * T;
    size_t sz[NUM_ACT_TENSORS] = {
        (L + 1) * N * C, L * N * C, L * N, L * N * C, L * N * KV, L * N * KV, L * N * KV,
        L * N * c->n_kv_head, L * B * H * T * T, L * N * C, L * N * C, L * N * C, L * N * C, L * N,
        L * N * F, L * N * F, L * N * F, L * N * C, N * C, N, N * V, N, N * C, N * KV};
    if (for_grads) { sz[2] = sz[7] = sz[8] = sz[13] = sz[19] = sz[21] = 0; } // no gradient needed
    memcpy(s, sz, sizeof(sz));
}
static void act_pointers(real **ptrs[NUM_ACT_TENSORS], ActTensors *a) {
    real **list[NUM_ACT_TENSORS] = {&a->res, &a->ln1, &a->ln1_rstd, &a->q, &a->k, &a->v, &a->vhat, &a->vphi,
                                    &a->att, &a->atty, &a->r_attn, &a->h_half, &a->ln2, &a->ln2_rstd, &a->gate,
                                    &a->up, &a->hmlp, &a->r_mlp, &a->lnf, &a->lnf_rstd, &a->logits, &a->losses,
                                    &a->qpre, &a->kpre};
    memcpy(ptrs, list, sizeof(list));
}

typedef struct {
    Config cfg;
    size_t param_sizes[NUM_PARAM_TENSORS], num_parameters;
    ParamTensors params, grads;
    real *params_memory, *grads_memory;
    real *m_memory, *v_memory; // AdamW moments
    int adam_t;                // AdamW steps taken (for bias correction)
    int B, T;                  // the batch shape the activations were sized for
    size_t act_sizes[NUM_ACT_TENSORS], num_acts, num_grad_acts;
    ActTensors acts, grads_acts;
    real *acts_memory, *grads_acts_memory;
    real *rope_cos, *rope_sin; // (max_seq_len, D/2)
    int *inputs, *targets;     // (B, T)
    real mean_loss;
} Model;

static const char *VSCALE_NAMES[3] = {"off", "fixed", "learned"};

// returns NULL when the configuration is valid, else what is wrong with it
const char *config_check(const Config *c) {
    if (c->vocab_size < 2) return "vocab size must be at least 2";
    if (c->d_model < 2 || c->n_layer < 1 || c->n_head < 1 || c->n_kv_head < 1 || c->ffn_hidden < 1)
        return "width, layers, heads, kv heads and MLP size must be positive";
    if (c->d_model % c->n_head) return "heads must divide the width";
    if ((c->d_model / c->n_head) % 2) return "head size (width / heads) must be even for RoPE";
    if (c->n_head % c->n_kv_head) return "kv heads must divide heads";
    if (c->max_seq_len < 1) return "sequence length must be at least 1";
    if (c->vscale < VSCALE_OFF || c->vscale > VSCALE_LEARNED) return "unknown V-scale mode";
    return NULL;
}

// allocate parameters, gradients and optimizer state; activations come with model_alloc_acts
void model_build(Model *m, const Config *cfg) {
    memset(m, 0, sizeof(*m));
    m->cfg = *cfg;
    param_sizes(m->param_sizes, cfg);
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) m->num_parameters += m->param_sizes[i];
    m->params_memory = xcalloc(m->num_parameters, sizeof(real));
    m->grads_memory = xcalloc(m->num_parameters, sizeof(real));
    m->m_memory = xcalloc(m->num_parameters, sizeof(real));
    m->v_memory = xcalloc(m->num_parameters, sizeof(real));
    real **pp[NUM_PARAM_TENSORS];
    param_pointers(pp, &m->params); point_tensors(pp, m->param_sizes, NUM_PARAM_TENSORS, m->params_memory);
    param_pointers(pp, &m->grads); point_tensors(pp, m->param_sizes, NUM_PARAM_TENSORS, m->grads_memory);
    int D = cfg->d_model / cfg->n_head;
    m->rope_cos = xcalloc((size_t)cfg->max_seq_len * D / 2, sizeof(real));
    m->rope_sin = xcalloc((size_t)cfg->max_seq_len * D / 2, sizeof(real));
    rope_tables(m->rope_cos, m->rope_sin, cfg->max_seq_len, D, 10000.0);
}

// init as the paper: every matrix and the embedding ~ N(0, 0.02^2), norm gains 1, theta 0.
// One RNG stream walks the parameters in checkpoint order.
void model_init(Model *m, uint64_t seed) {
    Rng rng;
    rng_seed(&rng, seed);
    real *p = m->params_memory;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++)
        for (size_t j = 0; j < m->param_sizes[i]; j++, p++)
            *p = PARAM_KIND[i] == KIND_MATRIX ? (real)(0.02 * rng_normal(&rng)) : PARAM_KIND[i] == KIND_GAIN ? 1 : 0;
}

void model_alloc_acts(Model *m, int B, int T) {
    m->B = B; m->T = T;
    size_t gsz[NUM_ACT_TENSORS];
    act_sizes(m->act_sizes, &m->cfg, B, T, 0);
    act_sizes(gsz, &m->cfg, B, T, 1);
    m->num_acts = m->num_grad_acts = 0;
    for (int i = 0; i < NUM_ACT_TENSORS; i++) { m->num_acts += m->act_sizes[i]; m->num_grad_acts += gsz[i]; }
    m->acts_memory = xcalloc(m->num_acts, sizeof(real));
    m->grads_acts_memory = xcalloc(m->num_grad_acts, sizeof(real));
    real **pp[NUM_ACT_TENSORS];
    act_pointers(pp, &m->acts); point_tensors(pp, m->act_sizes, NUM_ACT_TENSORS, m->acts_memory);
    act_pointers(pp, &m->grads_acts); point_tensors(pp, gsz, NUM_ACT_TENSORS, m->grads_acts_memory);
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
    LayerParams lp = {p->attn_norm + l * C, p->wq + l * C * C, p->wk + l * KV * C, p->wv + l * KV * C,
                      p->wo + l * C * C, p->mlp_norm + l * C, p->w_gate + l * F * C, p->w_up + l * F * C,
                      p->w_down + l * C * F, p->vscale_theta + l * c->n_kv_head};
    return lp;
}
typedef struct {
    real *h_in, *h_out, *ln1, *ln1_rstd, *q, *k, *v, *vhat, *vphi, *att, *atty, *r_attn, *h_half;
    real *ln2, *ln2_rstd, *gate, *up, *hmlp, *r_mlp;
} LayerActs;
// strides use the allocated shape (m->B, m->T), so a forward on a smaller B, T still fits
static LayerActs layer_acts(const ActTensors *a, const Model *m, int l) {
    const Config *c = &m->cfg;
    size_t N = (size_t)m->B * m->T, C = c->d_model, D = C / c->n_head, KV = c->n_kv_head * D;
    size_t F = c->ffn_hidden, H = c->n_head;
    LayerActs la = {a->res + l * N * C, a->res + (l + 1) * N * C, a->ln1 + l * N * C,
                    a->ln1_rstd ? a->ln1_rstd + l * N : NULL, a->q + l * N * C, a->k + l * N * KV,
                    a->v + l * N * KV, a->vhat + l * N * KV, a->vphi ? a->vphi + l * N * c->n_kv_head : NULL,
                    a->att ? a->att + l * m->B * H * m->T * m->T : NULL, a->atty + l * N * C,
                    a->r_attn + l * N * C, a->h_half + l * N * C, a->ln2 + l * N * C,
                    a->ln2_rstd ? a->ln2_rstd + l * N : NULL, a->gate + l * N * F, a->up + l * N * F,
                    a->hmlp + l * N * F, a->r_mlp + l * N * C};
    return la;
}

// memset(x, 0, n reals), the threads each clearing one contiguous part
static void zero_parallel(real *x, size_t n) {
    size_t chunk = (size_t)1 << 16, nchunks = (n + chunk - 1) / chunk;
    #pragma omp parallel for schedule(static)
    for (size_t i = 0; i < nchunks; i++) memset(x + i * chunk, 0, (i + 1 < nchunks ? chunk : n - i * chunk) * sizeof(real));
}

static void add_into(real *dst, const real *src, size_t n) {
    for (size_t i = 0; i < n; i++) dst[i] += src[i];
}

// ----------------------------------------------------------------------------
// forward: the model card, op by op. inputs/targets (B,T) are in m->inputs, m->targets.
// With with_targets == 0 only the logits are computed (sampling). Returns the mean loss.

real model_forward(Model *m, int B, int T, int with_targets) {
    const Config *c = &m->cfg;
    int C = c->d_model, L = c->n_layer, H = c->n_head, Hkv = c->n_kv_head, D = C / H, KV = Hkv * D;
    int F = c->ffn_hidden, V = c->vocab_size, N = B * T;
    if (B > m->B || T > m->T) die("internal: forward with B=%d T=%d above the allocated %d x %d", B, T, m->B, m->T);
    ActTensors *a = &m->acts;
    encoder_forward(a->res, m->inputs, m->params.wte, B, T, C);            // h = wte[tokens]
    for (int l = 0; l < L; l++) {
        LayerParams p = layer_params(&m->params, c, l);
        LayerActs s = layer_acts(a, m, l);
        // attention branch: h_half = h + Wo Attn(RoPE(Wq x~), RoPE(Wk x~), Vscale(Wv x~)),  x~ = RMSNorm(h)
        rmsnorm_forward(s.ln1, s.ln1_rstd, s.h_in, p.attn_norm, N, C);
        matmul_forward(a->qpre, s.ln1, p.wq, N, C, C);
        matmul_forward(a->kpre, s.ln1, p.wk, N, C, KV);
        matmul_forward(s.v, s.ln1, p.wv, N, C, KV);
        rope_forward(s.q, a->qpre, m->rope_cos, m->rope_sin, B, T, H, D);
        rope_forward(s.k, a->kpre, m->rope_cos, m->rope_sin, B, T, Hkv, D);
        vscale_forward(s.vhat, s.vphi, s.v, p.theta, c->vscale, C, N, Hkv, D);
        attention_forward(s.atty, s.att, s.q, s.k, s.vhat, B, T, H, Hkv, D);
        matmul_forward(s.r_attn, s.atty, p.wo, N, C, C);
        for (size_t i = 0; i < (size_t)N * C; i++) s.h_half[i] = s.h_in[i] + s.r_attn[i];
        // MLP branch: h_out = h_half + Wdown( silu(Wgate x) * Wup x ),  x = RMSNorm(h_half)
        rmsnorm_forward(s.ln2, s.ln2_rstd, s.h_half, p.mlp_norm, N, C);
        matmul_forward(s.gate, s.ln2, p.w_gate, N, C, F);
        matmul_forward(s.up, s.ln2, p.w_up, N, C, F);
        swiglu_forward(s.hmlp, s.gate, s.up, (size_t)N * F);
        matmul_forward(s.r_mlp, s.hmlp, p.w_down, N, F, C);
        for (size_t i = 0; i < (size_t)N * C; i++) s.h_out[i] = s.h_half[i] + s.r_mlp[i];
    }
    real *h_last = a->res + (size_t)L * m->B * m->T * C;
    rmsnorm_forward(a->lnf, a->lnf_rstd, h_last, m->params.final_norm, N, C);
    matmul_forward(a->logits, a->lnf, m->params.lm_head, N, C, V);
    if (!with_targets) return 0;
    crossentropy_forward(a->losses, a->logits, m->targets, N, V);              // logits -> probs
    double sum = 0;
    for (int i = 0; i < N; i++) sum += a->losses[i];
    m->mean_loss = (real)(sum / N);
    return m->mean_loss;
}

// ----------------------------------------------------------------------------
// backward: the forward list in reverse. Every gradient is of the mean loss over B*T.

void model_zero_grad(Model *m) {
    zero_parallel(m->grads_memory, m->num_parameters);
}

void model_backward(Model *m, int B, int T) {
    const Config *c = &m->cfg;
    int C = c->d_model, L = c->n_layer, H = c->n_head, Hkv = c->n_kv_head, D = C / H, KV = Hkv * D;
    int F = c->ffn_hidden, V = c->vocab_size, N = B * T;
    ActTensors *a = &m->acts, *g = &m->grads_acts;
    zero_parallel(m->grads_acts_memory, m->num_grad_acts); // activation grads accumulate
    crossentropy_softmax_backward(g->logits, a->logits, m->targets, (real)(1.0 / N), N, V);
    matmul_backward(g->lnf, m->grads.lm_head, g->logits, a->lnf, m->params.lm_head, N, C, V);
    real *h_last = a->res + (size_t)L * m->B * m->T * C, *dh_last = g->res + (size_t)L * m->B * m->T * C;
    rmsnorm_backward(dh_last, m->grads.final_norm, g->lnf, h_last, m->params.final_norm, a->lnf_rstd, N, C);
    for (int l = L - 1; l >= 0; l--) {
        LayerParams p = layer_params(&m->params, c, l), dp = layer_params(&m->grads, c, l);
        LayerActs s = layer_acts(a, m, l), ds = layer_acts(g, m, l);
        // MLP branch: h_out = h_half + r_mlp, so both receive d h_out
        add_into(ds.r_mlp, ds.h_out, (size_t)N * C);
        add_into(ds.h_half, ds.h_out, (size_t)N * C);
        matmul_backward(ds.hmlp, dp.w_down, ds.r_mlp, s.hmlp, p.w_down, N, F, C);
        swiglu_backward(ds.gate, ds.up, ds.hmlp, s.gate, s.up, (size_t)N * F);
        matmul_backward(ds.ln2, dp.w_gate, ds.gate, s.ln2, p.w_gate, N, C, F);
        matmul_backward(ds.ln2, dp.w_up, ds.up, s.ln2, p.w_up, N, C, F);
        rmsnorm_backward(ds.h_half, dp.mlp_norm, ds.ln2, s.h_half, p.mlp_norm, s.ln2_rstd, N, C);
        // attention branch: h_half = h_in + r_attn
        add_into(ds.r_attn, ds.h_half, (size_t)N * C);
        add_into(ds.h_in, ds.h_half, (size_t)N * C);
        matmul_backward(ds.atty, dp.wo, ds.r_attn, s.atty, p.wo, N, C, C);
        attention_backward(ds.q, ds.k, ds.vhat, ds.atty, s.q, s.k, s.vhat, s.att, B, T, H, Hkv, D);
        vscale_backward(ds.v, dp.theta, ds.vhat, s.v, p.theta, c->vscale, C, N, Hkv, D);
        memset(g->qpre, 0, (size_t)N * C * sizeof(real));
        memset(g->kpre, 0, (size_t)N * KV * sizeof(real));
        rope_backward(g->qpre, ds.q, m->rope_cos, m->rope_sin, B, T, H, D);
        rope_backward(g->kpre, ds.k, m->rope_cos, m->rope_sin, B, T, Hkv, D);
        matmul_backward(ds.ln1, dp.wq, g->qpre, s.ln1, p.wq, N, C, C);
        matmul_backward(ds.ln1, dp.wk, g->kpre, s.ln1, p.wk, N, C, KV);
        matmul_backward(ds.ln1, dp.wv, ds.v, s.ln1, p.wv, N, C, KV);
        rmsnorm_backward(ds.h_in, dp.attn_norm, ds.ln1, s.h_in, p.attn_norm, s.ln1_rstd, N, C);
    }
    encoder_backward(m->grads.wte, g->res, m->inputs, B, T, C);
}

// ----------------------------------------------------------------------------
// optimizer: global grad-norm clipping, learning-rate schedule, AdamW (PyTorch semantics)

double grad_norm(const real *g, size_t n) {
    double ss = 0; // sequential double sum: the same value for any thread count
    for (size_t i = 0; i < n; i++) ss += (double)g[i] * g[i];
    return sqrt(ss);
}

// returns the norm before clipping; scales the grads by clip/(norm+1e-6) when norm > clip
double clip_grads(real *g, size_t n, double clip) {
    double norm = grad_norm(g, n);
    if (clip > 0 && norm > clip) {
        real s = (real)(clip / (norm + 1e-6));
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

typedef struct { double lr, beta1, beta2, eps, weight_decay; } AdamW;

// weight decay on the embedding, every matrix and the LM head; not on gains, not on theta.
// theta is trained only when V-scale is learned.
void model_update(Model *m, const AdamW *o, double lr) {
    m->adam_t++;
    size_t off = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; i++) {
        size_t n = m->param_sizes[i];
        int kind = PARAM_KIND[i];
        if (!(kind == KIND_THETA && m->cfg.vscale != VSCALE_LEARNED))
            adamw_update(m->params_memory + off, m->grads_memory + off, m->m_memory + off, m->v_memory + off, n,
                         lr, o->beta1, o->beta2, o->eps, kind == KIND_MATRIX ? o->weight_decay : 0.0, m->adam_t);
        off += n;
    }
}

// ----------------------------------------------------------------------------
// measurements: the paper's quantities, read from what forward and backward stored
// (the probe pass is added here)

// ----------------------------------------------------------------------------
// data loader: token files in llm.c's format. Header of 256 int32: magic 20240520,
// version 1, token count; then `count` uint16 tokens. Batch k holds inputs
// tokens[k*B*T .. k*B*T + B*T) and the same shifted by one as targets; batches wrap.

#define DATA_MAGIC 20240520
#define HEADER_INTS 256

typedef struct {
    uint16_t *tokens;
    size_t count, num_batches;
    int B, T;
} DataLoader;

static int errorf(char *err, size_t len, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -1;
}

// reads a whole file; returns NULL with err set when it cannot
static unsigned char *read_file(const char *path, size_t *size, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) { errorf(err, errlen, "cannot open %s: %s", path, strerror(errno)); return NULL; }
    if (fseek(f, 0, SEEK_END) != 0) { fclose(f); errorf(err, errlen, "cannot seek in %s", path); return NULL; }
    long n = ftell(f);
    if (n < 0) { fclose(f); errorf(err, errlen, "cannot size %s (is it a directory?)", path); return NULL; }
    rewind(f);
    unsigned char *buf = xcalloc((size_t)n + 1, 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        fclose(f); free(buf); errorf(err, errlen, "cannot read %s", path); return NULL;
    }
    fclose(f);
    *size = (size_t)n;
    return buf;
}

// 0 on success; -1 with a one-line reason in err
int dataloader_open(DataLoader *dl, const char *path, int B, int T, int vocab_size, char *err, size_t errlen) {
    memset(dl, 0, sizeof(*dl));
    size_t size;
    unsigned char *buf = read_file(path, &size, err, errlen);
    if (!buf) return -1;
    int32_t h[HEADER_INTS];
    int rc = 0;
    if (size < sizeof(h)) rc = errorf(err, errlen, "%s: too short for a token file header (%zu bytes)", path, size);
    else {
        memcpy(h, buf, sizeof(h));
        if (h[0] != DATA_MAGIC) rc = errorf(err, errlen, "%s: bad magic %d (expected %d: an llm.c token file)", path, h[0], DATA_MAGIC);
        else if (h[1] != 1) rc = errorf(err, errlen, "%s: unsupported version %d (expected 1)", path, h[1]);
        else if (h[2] <= 0) rc = errorf(err, errlen, "%s: header says %d tokens", path, h[2]);
        else if (size != sizeof(h) + (size_t)h[2] * 2)
            rc = errorf(err, errlen, "%s: header says %d tokens (%zu bytes) but the file has %zu bytes after the header",
                        path, h[2], (size_t)h[2] * 2, size - sizeof(h));
    }
    if (rc == 0) {
        dl->count = (size_t)h[2];
        dl->tokens = xcalloc(dl->count, sizeof(uint16_t));
        memcpy(dl->tokens, buf + sizeof(h), dl->count * sizeof(uint16_t));
        for (size_t i = 0; i < dl->count && rc == 0; i++)
            if (dl->tokens[i] >= vocab_size)
                rc = errorf(err, errlen, "%s: token %d at position %zu is not below the vocab size %d", path,
                            dl->tokens[i], i, vocab_size);
        if (rc == 0 && dl->count < (size_t)B * T + 1)
            rc = errorf(err, errlen, "%s: %zu tokens is fewer than one batch needs (B*T+1 = %zu)", path, dl->count,
                        (size_t)B * T + 1);
    }
    free(buf);
    if (rc) { free(dl->tokens); dl->tokens = NULL; return rc; }
    dl->B = B; dl->T = T;
    dl->num_batches = (dl->count - 1) / ((size_t)B * T);
    return 0;
}

// first-token modes: ANY reads the stream as it is (paper-faithful windows, arbitrary first
// token); EOT replaces the first input of every row by the end-of-text token (a fixed sink candidate)
enum { FIRST_ANY = 0, FIRST_EOT = 1 };

void dataloader_batch(const DataLoader *dl, size_t k, int *inputs, int *targets, int first_token, int eot) {
    size_t BT = (size_t)dl->B * dl->T, start = (k % dl->num_batches) * BT;
    for (size_t i = 0; i < BT; i++) {
        inputs[i] = dl->tokens[start + i];
        targets[i] = dl->tokens[start + i + 1];
    }
    if (first_token == FIRST_EOT)
        for (int b = 0; b < dl->B; b++) inputs[(size_t)b * dl->T] = eot;
}

void dataloader_free(DataLoader *dl) { free(dl->tokens); dl->tokens = NULL; }

// ----------------------------------------------------------------------------
// checkpoints. Model file: header of 256 int32 — [0] magic 20261128, [1] version 1,
// [2] vocab_size, [3] d_model, [4] n_layer, [5] n_head, [6] n_kv_head, [7] ffn_hidden,
// [8] max_seq_len, [9] vscale mode, [10] step — then every parameter tensor as float32,
// row-major, in ParamTensors order. Optimizer file (PATH.opt): [0] magic 20261129,
// [1] version 1, [2] AdamW step count, [3] training step, [4] number of parameters; then
// the AdamW first moments and second moments as float32. Both written to PATH.tmp, then renamed.

#define CKPT_MAGIC 20261128
#define OPT_MAGIC 20261129

static int write_floats(FILE *f, const real *x, size_t n) {
    float buf[4096];
    for (size_t i = 0; i < n; i += 4096) {
        size_t c = n - i < 4096 ? n - i : 4096;
        for (size_t j = 0; j < c; j++) buf[j] = (float)x[i + j];
        if (fwrite(buf, sizeof(float), c, f) != c) return -1;
    }
    return 0;
}
static void read_floats(real *x, const unsigned char *src, size_t n) {
    for (size_t i = 0; i < n; i++) {
        float v;
        memcpy(&v, src + i * sizeof(float), sizeof(float));
        x[i] = v;
    }
}

// writes header + float arrays to path atomically (temp file, then rename)
static int write_atomic(const char *path, const int32_t *header, const real **arrays, const size_t *lens, int n,
                        char *err, size_t errlen) {
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) return errorf(err, errlen, "cannot write %s: %s", tmp, strerror(errno));
    int bad = fwrite(header, sizeof(int32_t), HEADER_INTS, f) != HEADER_INTS;
    for (int i = 0; i < n && !bad; i++) bad = write_floats(f, arrays[i], lens[i]) != 0;
    bad |= fclose(f) != 0;
    if (bad) { remove(tmp); return errorf(err, errlen, "writing %s failed (disk full?)", tmp); }
    if (rename(tmp, path) != 0) { remove(tmp); return errorf(err, errlen, "cannot rename %s to %s: %s", tmp, path, strerror(errno)); }
    return 0;
}

int checkpoint_write(const Model *m, const char *path, int step, char *err, size_t errlen) {
    const Config *c = &m->cfg;
    int32_t h[HEADER_INTS] = {CKPT_MAGIC, 1, c->vocab_size, c->d_model, c->n_layer, c->n_head, c->n_kv_head,
                              c->ffn_hidden, c->max_seq_len, c->vscale, step};
    const real *arrays[1] = {m->params_memory};
    size_t lens[1] = {m->num_parameters};
    return write_atomic(path, h, arrays, lens, 1, err, errlen);
}

// reads the model file's header into cfg and step, checking it is one of ours
int checkpoint_read_header(const char *path, Config *cfg, int *step, char *err, size_t errlen) {
    FILE *f = fopen(path, "rb");
    if (!f) return errorf(err, errlen, "cannot open checkpoint %s: %s", path, strerror(errno));
    int32_t h[HEADER_INTS];
    size_t got = fread(h, sizeof(int32_t), HEADER_INTS, f);
    fclose(f);
    if (got != HEADER_INTS) return errorf(err, errlen, "%s: too short for a checkpoint header", path);
    if (h[0] != CKPT_MAGIC) return errorf(err, errlen, "%s: bad magic %d (expected %d: a gradsink checkpoint)", path, h[0], CKPT_MAGIC);
    if (h[1] != 1) return errorf(err, errlen, "%s: unsupported checkpoint version %d", path, h[1]);
    Config c = {h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9]};
    const char *why = config_check(&c);
    if (why) return errorf(err, errlen, "%s: header describes an impossible model (%s)", path, why);
    if (h[10] < 0) return errorf(err, errlen, "%s: negative step %d in header", path, h[10]);
    *cfg = c;
    *step = h[10];
    return 0;
}

// reads the parameters into a model built from the same header
int checkpoint_read(Model *m, const char *path, int *step, char *err, size_t errlen) {
    Config c;
    if (checkpoint_read_header(path, &c, step, err, errlen)) return -1;
    if (memcmp(&c, &m->cfg, sizeof(c)) != 0) return errorf(err, errlen, "%s: header does not match the model", path);
    size_t size;
    unsigned char *buf = read_file(path, &size, err, errlen);
    if (!buf) return -1;
    size_t want = HEADER_INTS * sizeof(int32_t) + m->num_parameters * sizeof(float);
    if (size != want) {
        free(buf);
        return errorf(err, errlen, "%s: %zu bytes, but its header implies %zu (truncated or not a checkpoint)", path, size, want);
    }
    read_floats(m->params_memory, buf + HEADER_INTS * sizeof(int32_t), m->num_parameters);
    free(buf);
    size_t off = 0;
    for (int i = 0; i < NUM_PARAM_TENSORS; off += m->param_sizes[i], i++)
        for (size_t j = 0; j < m->param_sizes[i]; j++)
            if (!isfinite(m->params_memory[off + j]))
                return errorf(err, errlen, "%s: tensor %s holds a non-finite value at index %zu", path, PARAM_NAMES[i], j);
    return 0;
}

int optstate_write(const Model *m, const char *path, int step, char *err, size_t errlen) {
    int32_t h[HEADER_INTS] = {OPT_MAGIC, 1, m->adam_t, step, (int32_t)m->num_parameters};
    const real *arrays[2] = {m->m_memory, m->v_memory};
    size_t lens[2] = {m->num_parameters, m->num_parameters};
    return write_atomic(path, h, arrays, lens, 2, err, errlen);
}

int optstate_read(Model *m, const char *path, int expect_step, char *err, size_t errlen) {
    size_t size;
    unsigned char *buf = read_file(path, &size, err, errlen);
    if (!buf) return -1;
    int32_t h[HEADER_INTS];
    int rc = 0;
    size_t want = HEADER_INTS * sizeof(int32_t) + 2 * m->num_parameters * sizeof(float);
    if (size < sizeof(h)) rc = errorf(err, errlen, "%s: too short for an optimizer-state header", path);
    else {
        memcpy(h, buf, sizeof(h));
        if (h[0] != OPT_MAGIC || h[1] != 1) rc = errorf(err, errlen, "%s: not a gradsink optimizer state (bad magic/version)", path);
        else if (h[4] != (int32_t)m->num_parameters)
            rc = errorf(err, errlen, "%s: holds state for %d parameters, the checkpoint has %zu", path, h[4], m->num_parameters);
        else if (h[3] != expect_step)
            rc = errorf(err, errlen, "%s: is from step %d, the checkpoint from step %d", path, h[3], expect_step);
        else if (h[2] < 0) rc = errorf(err, errlen, "%s: negative AdamW step count", path);
        else if (size != want) rc = errorf(err, errlen, "%s: %zu bytes, expected %zu (truncated?)", path, size, want);
    }
    if (rc == 0) {
        m->adam_t = h[2];
        read_floats(m->m_memory, buf + sizeof(h), m->num_parameters);
        read_floats(m->v_memory, buf + sizeof(h) + m->num_parameters * sizeof(float), m->num_parameters);
    }
    free(buf);
    return rc;
}

// ----------------------------------------------------------------------------
// tokenizer file (written by tokenizer.py), read here only to turn tokens back into text.
// Header of 256 int32: [0] magic 20261130, [1] version 1, [2] vocab size, [3] eot id,
// [4] number of merges M; then for each id a uint16 length and that many bytes; then M
// pairs of int32 (the merges, which only tokenizer.py needs).

#define TOKENIZER_MAGIC 20261130

typedef struct {
    int vocab_size, eot;
    unsigned char *bytes; // every token's bytes, back to back
    size_t *offset;       // (V+1) token i is bytes[offset[i] .. offset[i+1])
} Tokenizer;

int tokenizer_load(Tokenizer *tk, const char *path, char *err, size_t errlen) {
    memset(tk, 0, sizeof(*tk));
    size_t size;
    unsigned char *buf = read_file(path, &size, err, errlen);
    if (!buf) return -1;
    int32_t h[HEADER_INTS];
    int rc = 0;
    if (size < sizeof(h)) rc = errorf(err, errlen, "%s: too short for a tokenizer header", path);
    else {
        memcpy(h, buf, sizeof(h));
        if (h[0] != TOKENIZER_MAGIC) rc = errorf(err, errlen, "%s: bad magic %d (expected %d: a tokenizer.py file)", path, h[0], TOKENIZER_MAGIC);
        else if (h[1] != 1) rc = errorf(err, errlen, "%s: unsupported tokenizer version %d", path, h[1]);
        else if (h[2] < 1 || h[2] > 65536) rc = errorf(err, errlen, "%s: vocab size %d out of range", path, h[2]);
        else if (h[3] < 0 || h[3] >= h[2]) rc = errorf(err, errlen, "%s: eot id %d outside the vocab", path, h[3]);
        else if (h[4] < 0) rc = errorf(err, errlen, "%s: negative merge count", path);
    }
    if (rc == 0) {
        tk->vocab_size = h[2];
        tk->eot = h[3];
        tk->offset = xcalloc((size_t)tk->vocab_size + 1, sizeof(size_t));
        size_t pos = sizeof(h), total = 0;
        for (int i = 0; i < tk->vocab_size && rc == 0; i++) {
            if (pos + 2 > size) { rc = errorf(err, errlen, "%s: ends inside the entry of token %d", path, i); break; }
            size_t len = buf[pos] | (size_t)buf[pos + 1] << 8;
            if (pos + 2 + len > size) { rc = errorf(err, errlen, "%s: ends inside the bytes of token %d", path, i); break; }
            pos += 2 + len;
            total += len;
        }
        if (rc == 0 && size - pos != (size_t)h[4] * 8)
            rc = errorf(err, errlen, "%s: %zu bytes after the vocabulary, expected %d merges (%d bytes)", path,
                        size - pos, h[4], h[4] * 8);
        if (rc == 0) { // second pass: copy the bytes out
            tk->bytes = xcalloc(total, 1);
            pos = sizeof(h);
            for (int i = 0; i < tk->vocab_size; i++) {
                size_t len = buf[pos] | (size_t)buf[pos + 1] << 8;
                memcpy(tk->bytes + tk->offset[i], buf + pos + 2, len);
                tk->offset[i + 1] = tk->offset[i] + len;
                pos += 2 + len;
            }
        }
    }
    free(buf);
    if (rc) { free(tk->offset); tk->offset = NULL; }
    return rc;
}

// writes token id's bytes to out (or its id in angle brackets when there is no tokenizer)
void tokenizer_write(const Tokenizer *tk, int id, FILE *out) {
    if (!tk || !tk->offset || id < 0 || id >= tk->vocab_size) { fprintf(out, "<%d>", id); return; }
    fwrite(tk->bytes + tk->offset[id], 1, tk->offset[id + 1] - tk->offset[id], out);
}

void tokenizer_free(Tokenizer *tk) { free(tk->bytes); free(tk->offset); memset(tk, 0, sizeof(*tk)); }

// ----------------------------------------------------------------------------
// sampling: start from end-of-text (as every document does) and draw tokens one at a time

// draw from softmax(logits / temperature) restricted to the top_k largest (top_k <= 0: all)
int sample_token(const real *logits, int V, double temperature, int top_k, Rng *rng) {
    if (temperature <= 0) { // greedy
        int best = 0;
        for (int i = 1; i < V; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }
    double maxv = -INFINITY, thresh = -INFINITY;
    for (int i = 0; i < V; i++) if (logits[i] > maxv) maxv = logits[i];
    if (top_k > 0 && top_k < V) { // threshold = k-th largest logit (counting ties once each)
        double *sorted = xcalloc(V, sizeof(double));
        for (int i = 0; i < V; i++) sorted[i] = logits[i];
        for (int a = 0; a < top_k; a++) { // partial selection sort: the top_k largest to the front
            int best = a;
            for (int i = a + 1; i < V; i++) if (sorted[i] > sorted[best]) best = i;
            double t = sorted[a]; sorted[a] = sorted[best]; sorted[best] = t;
        }
        thresh = sorted[top_k - 1];
        free(sorted);
    }
    double sum = 0;
    for (int i = 0; i < V; i++) if (logits[i] >= thresh) sum += exp((logits[i] - maxv) / temperature);
    double u = rng_uniform(rng) * sum, acc = 0;
    int last = 0;
    for (int i = 0; i < V; i++) {
        if (logits[i] < thresh) continue;
        acc += exp((logits[i] - maxv) / temperature);
        last = i;
        if (acc > u) return i;
    }
    return last;
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
// command line: one table, parsed in one place

typedef struct {
    const char *train_path, *val_path, *tokenizer_path, *out_dir, *ckpt_in;
    int B, T, n_layer, d_model, n_head, n_kv_head, ffn_hidden, vocab_size;
    int steps, warmup, seed, vscale, first_token;
    double lr, min_lr, weight_decay, grad_clip;
    int val_every, val_batches, ckpt_every, resume, eval_only;
    int sample_tokens, top_k, sample_seed;
    double temperature;
    int bench;
} Options;

typedef struct {
    const char *shortf, *longf;
    char type; // 'i' int, 'f' double, 's' string, 'e' one of names
    void *ptr;
    const char *const *names; // for 'e'
    const char *help;
    int given;
} Flag;

static const char *FIRST_TOKEN_NAMES[3] = {"any", "eot", NULL};
static const char *VSCALE_FLAG_NAMES[4] = {"off", "fixed", "learned", NULL};

static void options_defaults(Options *o) {
    Options d = {
        .train_path = "data/train.bin", .val_path = "data/val.bin", .tokenizer_path = "", .out_dir = "out",
        .ckpt_in = "", .B = 16, .T = 128, .n_layer = 4, .d_model = 128, .n_head = 4, .n_kv_head = 4,
        .ffn_hidden = 352, .vocab_size = 0, .steps = 1000, .warmup = 50, .seed = 1337, .vscale = VSCALE_OFF,
        .first_token = FIRST_ANY, .lr = 3e-3, .min_lr = -1, .weight_decay = 0.1, .grad_clip = 1.0,
        .val_every = 100, .val_batches = 8, .ckpt_every = 0, .resume = 0, .eval_only = 0,
        .sample_tokens = 200, .top_k = 40, .sample_seed = 42, .temperature = 0.8, .bench = 0};
    *o = d;
}

#define NUM_FLAGS 32
static int flag_table(Flag *f, Options *o) {
    Flag t[] = {
        {"-i", "--train", 's', &o->train_path, NULL, "training tokens (llm.c .bin format)", 0},
        {"-j", "--val", 's', &o->val_path, NULL, "validation tokens; '' for none", 0},
        {"-z", "--tokenizer", 's', &o->tokenizer_path, NULL, "tokenizer.bin (default: beside the train file)", 0},
        {"-o", "--out", 's', &o->out_dir, NULL, "output directory (log, checkpoints)", 0},
        {"-b", "--batch", 'i', &o->B, NULL, "batch size B (rows)", 0},
        {"-t", "--seq-len", 'i', &o->T, NULL, "sequence length T", 0},
        {"-L", "--layers", 'i', &o->n_layer, NULL, "number of layers", 0},
        {"-C", "--width", 'i', &o->d_model, NULL, "model width d_model", 0},
        {"-H", "--heads", 'i', &o->n_head, NULL, "query heads", 0},
        {"-K", "--kv-heads", 'i', &o->n_kv_head, NULL, "key/value heads (0: same as heads)", 0},
        {"-F", "--ffn", 'i', &o->ffn_hidden, NULL, "SwiGLU hidden size", 0},
        {"-V", "--vocab", 'i', &o->vocab_size, NULL, "vocab size (0: from the tokenizer file)", 0},
        {"-n", "--steps", 'i', &o->steps, NULL, "training steps", 0},
        {"-w", "--warmup", 'i', &o->warmup, NULL, "linear warmup steps", 0},
        {"-l", "--lr", 'f', &o->lr, NULL, "max learning rate", 0},
        {"-m", "--min-lr", 'f', &o->min_lr, NULL, "min learning rate (<0: max/10)", 0},
        {"-d", "--weight-decay", 'f', &o->weight_decay, NULL, "AdamW weight decay (matrices only)", 0},
        {"-g", "--grad-clip", 'f', &o->grad_clip, NULL, "global grad-norm clip (0: none)", 0},
        {"-s", "--seed", 'i', &o->seed, NULL, "seed of the initialisation", 0},
        {"-a", "--vscale", 'e', &o->vscale, VSCALE_FLAG_NAMES, "V-scale: off, fixed, learned", 0},
        {"-f", "--first-token", 'e', &o->first_token, FIRST_TOKEN_NAMES, "first input of each row: any (as read), eot", 0},
        {"-v", "--val-every", 'i', &o->val_every, NULL, "validate every N steps (0: only at the end)", 0},
        {"-e", "--val-batches", 'i', &o->val_batches, NULL, "validation batches", 0},
        {"-c", "--ckpt", 's', &o->ckpt_in, NULL, "start from this checkpoint instead of random init", 0},
        {"-r", "--resume", 'i', &o->resume, NULL, "1: also load CKPT.opt and continue at its step", 0},
        {"-k", "--ckpt-every", 'i', &o->ckpt_every, NULL, "write a checkpoint every N steps (0: at the end only)", 0},
        {"-x", "--eval-only", 'i', &o->eval_only, NULL, "1: evaluate the checkpoint (-c), do not train", 0},
        {"-G", "--sample", 'i', &o->sample_tokens, NULL, "tokens to generate at the end (0: none)", 0},
        {"-p", "--temperature", 'f', &o->temperature, NULL, "sampling temperature (0: greedy)", 0},
        {"-q", "--top-k", 'i', &o->top_k, NULL, "sample from the k most likely tokens (0: all)", 0},
        {"-y", "--sample-seed", 'i', &o->sample_seed, NULL, "seed of the sampler", 0},
        {"-B", "--bench", 'i', &o->bench, NULL, "N: time N training steps at this and a 4x larger model, then exit", 0},
    };
    int n = (int)(sizeof(t) / sizeof(t[0]));
    memcpy(f, t, sizeof(t));
    return n;
}

static void print_usage(Flag *f, int n) {
    printf("usage: gradsink [flags]   (each flag takes a value; defaults in brackets)\n");
    for (int i = 0; i < n; i++) {
        char def[64];
        if (f[i].type == 'i') snprintf(def, sizeof(def), "%d", *(int *)f[i].ptr);
        else if (f[i].type == 'f') snprintf(def, sizeof(def), "%g", *(double *)f[i].ptr);
        else if (f[i].type == 'e') snprintf(def, sizeof(def), "%s", f[i].names[*(int *)f[i].ptr]);
        else snprintf(def, sizeof(def), "%s", *(const char **)f[i].ptr);
        printf("  %s %-15s %s [%s]\n", f[i].shortf, f[i].longf, f[i].help, def);
    }
}

// fills o from argv; every mistake is one line and exit 2
static void parse_args(int argc, char **argv, Options *o, Flag *f, int *nflags) {
    options_defaults(o);
    int n = flag_table(f, o);
    *nflags = n;
    for (int a = 1; a < argc; a++) {
        if (!strcmp(argv[a], "-h") || !strcmp(argv[a], "--help")) { print_usage(f, n); exit(0); }
        int k = 0;
        while (k < n && strcmp(argv[a], f[k].shortf) && strcmp(argv[a], f[k].longf)) k++;
        if (k == n) die("unknown flag %s (see -h)", argv[a]);
        if (a + 1 >= argc) die("flag %s needs a value", argv[a]);
        const char *val = argv[++a];
        char *end;
        errno = 0;
        if (f[k].type == 'i') {
            long v = strtol(val, &end, 10);
            if (*val == '\0' || *end != '\0' || errno || v < -2147483647L || v > 2147483647L)
                die("flag %s: '%s' is not an integer", f[k].longf, val);
            *(int *)f[k].ptr = (int)v;
        } else if (f[k].type == 'f') {
            double v = strtod(val, &end);
            if (*val == '\0' || *end != '\0' || errno || !isfinite(v)) die("flag %s: '%s' is not a number", f[k].longf, val);
            *(double *)f[k].ptr = v;
        } else if (f[k].type == 'e') {
            int e = 0;
            while (f[k].names[e] && strcmp(f[k].names[e], val)) e++;
            if (!f[k].names[e]) die("flag %s: unknown value '%s'", f[k].longf, val);
            *(int *)f[k].ptr = e;
        } else {
            *(const char **)f[k].ptr = val;
        }
        f[k].given = 1;
    }
    if (o->n_kv_head == 0) o->n_kv_head = o->n_head;
    if (o->min_lr < 0) o->min_lr = o->lr / 10;
    // ranges of the values that are not part of the model's configuration
    if (o->B < 1) die("flag --batch: must be at least 1 (got %d)", o->B);
    if (o->T < 1) die("flag --seq-len: must be at least 1 (got %d)", o->T);
    if ((double)o->B * o->T > 1e8) die("flag --batch x --seq-len: %d x %d is too large", o->B, o->T);
    if (o->steps < 0) die("flag --steps: must be >= 0 (got %d)", o->steps);
    if (o->bench < 0 || o->bench > 64) die("flag --bench: 0 to 64 steps (got %d)", o->bench);
    if (o->warmup < 0) die("flag --warmup: must be >= 0 (got %d)", o->warmup);
    if (o->lr < 0 || o->weight_decay < 0 || o->grad_clip < 0) die("flags --lr, --weight-decay, --grad-clip must be >= 0");
    if (o->val_every < 0 || o->val_batches < 0 || o->ckpt_every < 0) die("flags --val-every, --val-batches, --ckpt-every must be >= 0");
    if (o->resume != 0 && o->resume != 1) die("flag --resume: 0 or 1 (got %d)", o->resume);
    if (o->eval_only != 0 && o->eval_only != 1) die("flag --eval-only: 0 or 1 (got %d)", o->eval_only);
    if ((o->resume || o->eval_only) && !*o->ckpt_in) die("flags --resume and --eval-only need a checkpoint (-c PATH)");
    if (o->sample_tokens < 0 || o->top_k < 0 || o->temperature < 0) die("flags --sample, --top-k, --temperature must be >= 0");
}

static int flag_given(const Flag *f, int n, const char *shortf) {
    for (int i = 0; i < n; i++) if (!strcmp(f[i].shortf, shortf)) return f[i].given;
    return 0;
}

// mkdir -p; 0 on success
static int make_dirs(const char *path) {
    char buf[4096];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *p = buf + 1; *p; p++)
        if (*p == '/') { *p = 0; mkdir(buf, 0755); *p = '/'; }
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
    struct stat st;
    return stat(buf, &st) == 0 && S_ISDIR(st.st_mode) ? 0 : -1;
}

static int file_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

// ----------------------------------------------------------------------------
// benchmark (`make bench`, i.e. ./gradsink --bench N): how fast one training step runs
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
#include <sys/resource.h>

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
    model_forward(m, m->B, m->T, 1);
    model_zero_grad(m);
    model_backward(m, m->B, m->T);
    clip_grads(m->grads_memory, m->num_parameters, 1.0);
    model_update(m, opt, 1e-4);
}

// hook for the probe (the measurement pass): return its median ms at this model and batch.
// There is no probe yet: -1 prints as n/a.
static double bench_probe_ms(Model *m) {
    (void)m;
    return -1;
}

typedef struct {
    double step_ms, tok_s, gflops, frac, mm_gflops, mm_frac, probe_ms, maxrss_mb;
    double prof[5]; // share of the step: matmul fwd, matmul bwd, attention fwd, attention bwd, rest
} BenchResult;

// times fn-like blocks: median over reps of the wall time of `body`, in seconds
#define BENCH_TIME(out, reps, body)                                                  \
    do {                                                                             \
        double ts_[64];                                                              \
        for (int r_ = 0; r_ < (reps); r_++) { double t0_ = now_seconds(); body;     \
                                              ts_[r_] = now_seconds() - t0_; }       \
        out = bench_median(ts_, (reps));                                             \
    } while (0)

static BenchResult bench_config(const Config *cfg, int B, int T, int steps, double peak) {
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
    AdamW opt = {0, 0.9, 0.95, 1e-8, 0.1};
    if (steps > 64) steps = 64;
    for (int s = 0; s < 3; s++) bench_step(&m, &opt); // warm-up
    double t[64], N = (double)B * T;
    for (int s = 0; s < steps; s++) { double t0 = now_seconds(); bench_step(&m, &opt); t[s] = now_seconds() - t0; }
    double step = bench_median(t, steps);
    double flops = 6 * bench_matmul_params(cfg) * N + bench_attention_flops(cfg, B, T);
    r.step_ms = step * 1e3;
    r.tok_s = N / step;
    r.gflops = flops / step * 1e-9;
    r.frac = r.gflops / peak;

    // the matmuls alone, on buffers as large as the largest activation; and the per-function profile
    int C = cfg->d_model, H = cfg->n_head, Hkv = cfg->n_kv_head, D = C / H, L = cfg->n_layer;
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
    r.mm_frac = r.mm_gflops / peak;
    free(x); free(y); free(dx); free(w); free(dw);
    // attention on layer 0's stored activations (its gradients go to layer 0's buffers, which
    // the next step zeroes anyway)
    LayerActs s = layer_acts(&m.acts, &m, 0), ds = layer_acts(&m.grads_acts, &m, 0);
    double af, ab;
    BENCH_TIME(af, 7, attention_forward(s.atty, s.att, s.q, s.k, s.vhat, B, T, H, Hkv, D));
    BENCH_TIME(ab, 7, attention_backward(ds.q, ds.k, ds.vhat, ds.atty, s.q, s.k, s.vhat, s.att, B, T, H, Hkv, D));
    double parts[4] = {mm_fwd, mm_bwd, af * L, ab * L}, rest = step;
    for (int i = 0; i < 4; i++) { r.prof[i] = parts[i] / step; rest -= parts[i]; }
    r.prof[4] = rest / step;
    r.probe_ms = bench_probe_ms(&m);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    r.maxrss_mb = ru.ru_maxrss / 1024.0; // Linux reports KiB
    model_free(&m);
    return r;
}

static void bench_print(const char *name, const Config *c, int B, int T, const BenchResult *r) {
    char probe[32];
    if (r->probe_ms < 0) snprintf(probe, sizeof(probe), "n/a");
    else snprintf(probe, sizeof(probe), "%.1f ms = %.2f steps", r->probe_ms, r->probe_ms / r->step_ms);
    printf("%-8s L%d C%d H%d Hkv%d F%d V%d T%d B%d\n", name, c->n_layer, c->d_model, c->n_head, c->n_kv_head,
           c->ffn_hidden, c->vocab_size, T, B);
    printf("  step %8.1f ms | %7.0f tok/s | %6.1f GFLOP/s = %4.1f%% of peak | matmuls alone %6.1f GFLOP/s = %4.1f%%\n",
           r->step_ms, r->tok_s, r->gflops, 100 * r->frac, r->mm_gflops, 100 * r->mm_frac);
    printf("  profile: matmul fwd %2.0f%% | matmul bwd %2.0f%% | attention fwd %2.0f%% | attention bwd %2.0f%% | rest %2.0f%%\n",
           100 * r->prof[0], 100 * r->prof[1], 100 * r->prof[2], 100 * r->prof[3], 100 * r->prof[4]);
    printf("  probe %s | peak memory (max RSS so far) %.0f MB\n", probe, r->maxrss_mb);
}

void bench_run(const Options *o) {
    Config c = {o->vocab_size ? o->vocab_size : 2048, o->d_model, o->n_layer, o->n_head, o->n_kv_head,
                o->ffn_hidden, o->T, VSCALE_OFF};
    const char *why = config_check(&c);
    if (why) die("%s", why);
    Config big = c;
    big.d_model *= 2;
    big.ffn_hidden *= 2;
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    double peak = bench_fma_peak();
    printf("gradsink bench: %d thread%s, %s; median of %d steps after 3 warm-up steps\n", threads,
           threads > 1 ? "s" : "", sizeof(real) == 4 ? "float32" : "float64", o->bench);
    double load[1] = {0};
    if (getloadavg(load, 1) < 1) load[0] = -1;
    printf("FMA peak (all threads, measured): %.1f GFLOP/s | load average %.2f on %ld cores before the run "
           "(other processes on the cores lower every figure here)\n", peak, load[0], sysconf(_SC_NPROCESSORS_ONLN));
    BenchResult r1 = bench_config(&c, o->B, o->T, o->bench, peak);
    bench_print("default", &c, o->B, o->T, &r1);
    BenchResult r2 = bench_config(&big, o->B, o->T, o->bench, peak);
    bench_print("4x", &big, o->B, o->T, &r2);
    printf("headline: default step %.1f ms, %.1f GFLOP/s = %.0f%% of the %.0f GFLOP/s FMA peak (matmuls alone %.0f%%)\n",
           r1.step_ms, r1.gflops, 100 * r1.frac, peak, 100 * r1.mm_frac);
}

#ifndef TESTING
int main(int argc, char **argv) {
    Options o;
    Flag flags[NUM_FLAGS];
    int nflags;
    parse_args(argc, argv, &o, flags, &nflags);
    if (o.bench > 0) { bench_run(&o); return 0; }
    char err[1024], path[4096];
    int train = !o.eval_only && o.steps > 0;

    // the tokenizer: given, or beside the training file
    Tokenizer tok = {0};
    char tok_path[4096];
    if (*o.tokenizer_path) snprintf(tok_path, sizeof(tok_path), "%s", o.tokenizer_path);
    else {
        const char *slash = strrchr(o.train_path, '/');
        int dirlen = slash ? (int)(slash - o.train_path) : 0;
        snprintf(tok_path, sizeof(tok_path), "%.*s%stokenizer.bin", dirlen, o.train_path, slash ? "/" : "");
    }
    int have_tok = 0;
    if (*o.tokenizer_path || file_exists(tok_path)) {
        if (tokenizer_load(&tok, tok_path, err, sizeof(err))) die("%s", err);
        have_tok = 1;
    }

    // the model's configuration: from the checkpoint, or from the flags
    Config cfg;
    int start_step = 0;
    if (*o.ckpt_in) {
        if (checkpoint_read_header(o.ckpt_in, &cfg, &start_step, err, sizeof(err))) die("%s", err);
        const char *arch[8] = {"-V", "-C", "-L", "-H", "-K", "-F", NULL, "-a"};
        int *vals[8] = {&o.vocab_size, &o.d_model, &o.n_layer, &o.n_head, &o.n_kv_head, &o.ffn_hidden, NULL, &o.vscale};
        int *have[8] = {&cfg.vocab_size, &cfg.d_model, &cfg.n_layer, &cfg.n_head, &cfg.n_kv_head, &cfg.ffn_hidden, NULL, &cfg.vscale};
        for (int i = 0; i < 8; i++)
            if (arch[i] && flag_given(flags, nflags, arch[i]) && *vals[i] != *have[i])
                die("flag %s %d disagrees with checkpoint %s (which has %d)", arch[i], *vals[i], o.ckpt_in, *have[i]);
        if (o.T > cfg.max_seq_len) die("flag --seq-len %d is above checkpoint %s's max sequence length %d", o.T, o.ckpt_in, cfg.max_seq_len);
        if (!o.resume) start_step = 0;
    } else {
        int V = o.vocab_size ? o.vocab_size : have_tok ? tok.vocab_size : 0;
        if (V == 0) die("vocab size unknown: pass -V N or put tokenizer.bin beside the train file (or -z PATH)");
        Config c = {V, o.d_model, o.n_layer, o.n_head, o.n_kv_head, o.ffn_hidden, o.T, o.vscale};
        cfg = c;
    }
    const char *why = config_check(&cfg);
    if (why) die("%s", why);
    if (have_tok && tok.vocab_size != cfg.vocab_size)
        die("tokenizer %s has vocab %d but the model has %d", tok_path, tok.vocab_size, cfg.vocab_size);
    int eot = have_tok ? tok.eot : cfg.vocab_size - 1;
    if (o.resume && start_step > o.steps) die("checkpoint %s is at step %d, beyond --steps %d", o.ckpt_in, start_step, o.steps);

    // data
    DataLoader train_dl = {0}, val_dl = {0};
    if (train && dataloader_open(&train_dl, o.train_path, o.B, o.T, cfg.vocab_size, err, sizeof(err))) die("%s", err);
    int have_val = *o.val_path && (o.val_batches > 0) && (flag_given(flags, nflags, "-j") || file_exists(o.val_path));
    if (have_val && dataloader_open(&val_dl, o.val_path, o.B, o.T, cfg.vocab_size, err, sizeof(err))) die("%s", err);
    if (o.eval_only && !have_val) die("--eval-only needs validation tokens (-j PATH)");

    // model
    Model model;
    model_build(&model, &cfg);
    model_alloc_acts(&model, o.B, o.T);
    if (*o.ckpt_in) {
        int s;
        if (checkpoint_read(&model, o.ckpt_in, &s, err, sizeof(err))) die("%s", err);
        if (o.resume) {
            snprintf(path, sizeof(path), "%s.opt", o.ckpt_in);
            if (optstate_read(&model, path, start_step, err, sizeof(err))) die("%s", err);
        }
    } else {
        model_init(&model, (uint64_t)o.seed);
    }
    int D = cfg.d_model / cfg.n_head;
    printf("model: V %d | C %d | L %d | H %d | Hkv %d | D %d | F %d | vscale %s | %zu parameters\n", cfg.vocab_size,
           cfg.d_model, cfg.n_layer, cfg.n_head, cfg.n_kv_head, D, cfg.ffn_hidden, VSCALE_NAMES[cfg.vscale],
           model.num_parameters);
#ifdef _OPENMP
    printf("threads: %d\n", omp_get_max_threads());
#endif

    if (o.eval_only) {
        printf("val loss %.4f (%d batches of %s)\n", evaluate(&model, &val_dl, o.val_batches, o.first_token, eot),
               o.val_batches < (int)val_dl.num_batches ? o.val_batches : (int)val_dl.num_batches, o.val_path);
    }
    if (train) {
        if (make_dirs(o.out_dir)) die("cannot create output directory %s", o.out_dir);
        snprintf(path, sizeof(path), "%s/log.txt", o.out_dir);
        FILE *logf = fopen(path, "a");
        if (!logf) die("cannot write %s: %s", path, strerror(errno));
        char ckpt_path[4096], opt_path[4096];
        snprintf(ckpt_path, sizeof(ckpt_path), "%s/model.bin", o.out_dir);
        snprintf(opt_path, sizeof(opt_path), "%s/model.bin.opt", o.out_dir);
        printf("train: %s (%zu tokens, %zu batches of %d x %d) | steps %d..%d | lr %g -> %g | warmup %d\n",
               o.train_path, train_dl.count, train_dl.num_batches, o.B, o.T, start_step, o.steps, o.lr, o.min_lr, o.warmup);
        AdamW opt = {0, 0.9, 0.95, 1e-8, o.weight_decay};
        int last_saved = -1;
        for (int step = start_step; step <= o.steps; step++) {
            int last = step == o.steps;
            if (have_val && (last || (o.val_every > 0 && step % o.val_every == 0))) {
                double vl = evaluate(&model, &val_dl, o.val_batches, o.first_token, eot);
                printf("step %5d | val loss %.4f\n", step, vl);
                fprintf(logf, "s:%d tel:%.6f\n", step, vl);
                fflush(logf);
            }
            if (last) break;
            double t0 = now_seconds();
            dataloader_batch(&train_dl, (size_t)step, model.inputs, model.targets, o.first_token, eot);
            double loss = model_forward(&model, o.B, o.T, 1);
            model_zero_grad(&model);
            model_backward(&model, o.B, o.T);
            double norm = clip_grads(model.grads_memory, model.num_parameters, o.grad_clip);
            if (!isfinite(loss) || !isfinite(norm)) {
                fprintf(stderr, "gradsink: error: step %d: loss %g, grad norm %g is not finite; stopping. Last good checkpoint: %s\n",
                        step, loss, norm, last_saved >= 0 ? ckpt_path : "none written in this run");
                fclose(logf);
                return 1;
            }
            double lr = lr_at(step, o.steps, o.warmup, o.lr, o.min_lr);
            model_update(&model, &opt, lr);
            double dt = now_seconds() - t0;
            printf("step %5d/%d | loss %.4f | lr %.2e | norm %.4f | %.1f ms | %.0f tok/s\n", step + 1, o.steps, loss, lr,
                   norm, dt * 1e3, o.B * o.T / dt);
            fprintf(logf, "s:%d trl:%.6f\n", step, loss);
            if (o.ckpt_every > 0 && (step + 1) % o.ckpt_every == 0 && step + 1 < o.steps) {
                if (checkpoint_write(&model, ckpt_path, step + 1, err, sizeof(err)) ||
                    optstate_write(&model, opt_path, step + 1, err, sizeof(err))) die("%s", err);
                last_saved = step + 1;
            }
        }
        fclose(logf);
        if (checkpoint_write(&model, ckpt_path, o.steps, err, sizeof(err)) ||
            optstate_write(&model, opt_path, o.steps, err, sizeof(err))) die("%s", err);
        printf("wrote %s (step %d)\n", ckpt_path, o.steps);
    }
    if (o.sample_tokens > 0 && (train || *o.ckpt_in)) {
        printf("sample (temperature %g, top-k %d, seed %d):\n", o.temperature, o.top_k, o.sample_seed);
        model_sample(&model, have_tok ? &tok : NULL, eot, o.sample_tokens, o.temperature, o.top_k,
                     (uint64_t)o.sample_seed, stdout);
    }
    dataloader_free(&train_dl);
    dataloader_free(&val_dl);
    tokenizer_free(&tok);
    model_free(&model);
    return 0;
}
#endif
