#!/usr/bin/env python3
"""Exercise 5: gradient reshaping by RMSNorm (Theorem 2): Compress ~ 1/rms(h).

In a pre-norm branch h -> x~ = RMSNorm(h) -> r, the gradient that comes back through RMSNorm is
dh - dh_half = J^T dx~ with J = (1/rms(h)) diag(g) (I - h h^T/||h||^2). With gains g = 1 (init)
and a gradient not aligned with h, ||J^T dx~|| ~ ||dx~|| / rms(h), so
    Compress = ||dh - dh_half|| / ||dx~|| ~ sqrt(C) / ||h||:
a straight line of slope -1 in log10 Compress against log10 ||h||, through log10 sqrt(C).
The script fits that line over every layer and position t < 32 of the attention branch
(attn_compress against norm_h_in) at the step-0 probe. The checks: the slope lies in
[-1.5, -0.5] and the median of Compress * ||h_in|| / sqrt(C) lies in [0.9, 1.1].
At init the norms span only ~0.1 decade, so the slope is the less precise of the two numbers.
The same fit after 100 training steps (gains no longer 1) is printed, not checked.
"""
import math

from common import Exercise, fit_line

C = 32
ex = Exercise(5, "the slope of log Compress against log ||h_in||")
probes = ex.gradsink("run", "-b", "4", "-n", "100", "-P", "100")


def points(p, branch):
    norm = "norm_h_in" if branch == "attn" else "norm_h_half"
    return [(p[norm][l][t], p[branch + "_compress"][l][t]) for l in range(p["L"]) for t in range(p["positions"])
            if p[norm][l][t] and p[branch + "_compress"][l][t]]


results = {}
for p in probes:
    for branch in ("attn", "mlp"):
        pts = points(p, branch)
        b, a, r = fit_line([math.log10(h) for h, _ in pts], [math.log10(c) for _, c in pts])
        scaled = sorted(c * h / math.sqrt(C) for h, c in pts)
        span = math.log10(max(h for h, _ in pts) / min(h for h, _ in pts))
        results[p["step"], branch] = (b, scaled[len(scaled) // 2])
        print("step %3d, %-4s branch: slope %.3f, intercept %.3f (log10 sqrt(C) = %.3f), correlation %.3f, "
              "norms span %.2f decades, median Compress*||h||/sqrt(C) %.3f over %d points"
              % (p["step"], branch, b, a, math.log10(math.sqrt(C)), r, span, scaled[len(scaled) // 2], len(pts)))
slope, med = results[0, "attn"]
ex.check(-1.5 <= slope <= -0.5, "step 0, attention branch: slope of log10 Compress vs log10 ||h_in|| = %.3f, in [-1.5, -0.5]" % slope)
ex.check(0.9 <= med <= 1.1, "step 0, attention branch: median Compress * ||h_in|| / sqrt(C) = %.3f, in [0.9, 1.1]" % med)
ex.finish()
