#!/usr/bin/env python3
"""Exercise 4: sweep V-scale's lambda (fixed mode) and watch the factor it applies at token 0.

V-scale multiplies each value vector by phi = r/(r+c), r = ||v||^2, c = d_model*d_head*0.02^2*lambda.
A larger lambda means a larger c, so a smaller phi for the same value: small-norm values (the
sink's) are shrunk most. The script trains the classroom model with a fixed first token (-f eot,
where token 0 grows massive MLP outputs, see exercise 7) for V-scale off and lambda = 0.25, 1, 4,
16, and tabulates phi0 (vscale_phi0), phi at t = 1..15 (vscale_phi_rest), the token-0 MLP-output
ratio (ratio_r_mlp), M0 and the loss. The checks: the probe reports the lambda that was passed;
at init (same weights for every lambda) phi0 falls strictly as lambda grows, in every layer;
after training phi0 at lambda 16 is still below phi0 at lambda 0.25 (neighbouring lambdas may
swap: training moves the value norms).
The MLP-output ratio is tabulated, not checked: at this size it has no reliable trend in lambda.
"""
from common import Exercise, fmt

LAMBDAS = [0.25, 1, 4, 16]
STEPS = ["-b", "8", "-n", "100", "-P", "100", "-l", "0.01", "-f", "eot"]
ex = Exercise(4, "V-scale's lambda against the token-0 factor and the token-0 MLP output")
runs = {"off": ex.gradsink("off", "-a", "off", *STEPS)}
for lam in LAMBDAS:
    runs[lam] = ex.gradsink("lambda%g" % lam, "-a", "fixed", "-A", "%g" % lam, *STEPS)

print("%-7s %-18s %-18s %-18s %-18s %-18s %-7s" % ("lambda", "phi0 @0 [layer]", "phi0 [layer]", "phi_rest [layer]",
                                                    "ratio_r_mlp", "M0", "loss"))
for key in ["off"] + LAMBDAS:
    p0, p = runs[key][0], runs[key][-1]
    print("%-7s %-18s %-18s %-18s %-18s %-18s %.4f" % (key, fmt(p0["vscale_phi0"]), fmt(p["vscale_phi0"]),
                                                        fmt(p["vscale_phi_rest"]), fmt(p["ratio_r_mlp"], "%.2f"),
                                                        fmt(p["M0"], "%.2f"), p["probe_loss"]))

got = {lam: [x for p in runs[lam] for row in p["vscale_lambda"] for x in row] for lam in LAMBDAS}
ex.check(all(abs(x - lam) <= 1e-5 * lam for lam in LAMBDAS for x in got[lam]),
         "vscale_lambda in probes.jsonl equals the -A value in every layer and kv head (%s)" %
         ", ".join("%g" % got[lam][0] for lam in LAMBDAS))
off = runs["off"][-1]
ex.check(all(x == 0 for row in off["vscale_lambda"] for x in row) and all(f == 1 for f in off["vscale_phi0"]),
         "V-scale off: lambda reported as 0 and phi0 = 1")
phi = [runs[lam][0]["vscale_phi0"] for lam in LAMBDAS]  # the step-0 probes: same weights for every lambda
L = len(phi[0])
ex.check(all(phi[i][l] > phi[i + 1][l] for l in range(L) for i in range(len(LAMBDAS) - 1)),
         "at init, phi0 falls strictly as lambda grows, in every layer: %s" %
         "; ".join("layer %d %s" % (l, fmt([f[l] for f in phi])) for l in range(L)))
# after training the model has moved its value norms, so neighbouring lambdas may swap places;
# a factor 64 in c still shows
lo, hi = runs[LAMBDAS[0]][-1]["vscale_phi0"], runs[LAMBDAS[-1]][-1]["vscale_phi0"]
ex.check(all(h < l for h, l in zip(hi, lo)), "after %d steps, phi0 at lambda %g is below phi0 at lambda %g in every layer: %s < %s"
         % (runs[LAMBDAS[0]][-1]["step"], LAMBDAS[-1], LAMBDAS[0], fmt(hi), fmt(lo)))
ex.finish()
