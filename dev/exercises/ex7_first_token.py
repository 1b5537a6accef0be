#!/usr/bin/env python3
"""Exercise 7: replace the first-token mode and watch where the sink forms.

-f any reads training windows as they fall: token 0 is whatever token the window starts with.
-f eot replaces the first input of every row by end-of-text: token 0 is the same token in every
row, so its key and value are the same everywhere, a safe place to park attention, and the
model can afford to make its residual stream large. The script trains the classroom model
twice (same seed, same data, 400 steps, batch 8), once per mode, and compares the last probes:
the column mass M0, and the token-0 over rest ratios of the MLP output (ratio_r_mlp) and of the
layer output (ratio_h_out). The checks: M0 (mean over layers) is larger by more than 1 with eot
(attention moves to token 0), and the largest ratio_r_mlp over layers is more than 1.5 times as
large (token 0 grows a massive MLP output). The sink is still young: no head's sink score reaches
the paper's 0.3 (sink_rate 0) at this size and length.
"""
from common import Exercise, fmt, mean

STEPS = ["-b", "8", "-n", "400", "-P", "200", "-l", "0.01"]
ex = Exercise(7, "first-token mode: where the sink and the massive activations form")
last = {}
for mode in ("any", "eot"):
    probes = ex.gradsink(mode, "-f", mode, *STEPS)
    last[mode] = p = probes[-1]
    print("-f %s, step %d: loss %.3f | M0 %s | sink_rate %s | ratio_r_mlp %s | ratio_h_out %s | R_gs %s"
          % (mode, p["step"], p["probe_loss"], fmt(p["M0"], "%.2f"), fmt(p["sink_rate"], "%.2f"),
             fmt(p["ratio_r_mlp"], "%.2f"), fmt(p["ratio_h_out"], "%.2f"), fmt(p["R_gs"], "%.2f")))
a, e = last["any"], last["eot"]
ex.check(mean(e["M0"]) > mean(a["M0"]) + 1, "M0 (mean over layers) is larger by more than 1 with eot: %.2f vs %.2f"
         % (mean(e["M0"]), mean(a["M0"])))
ex.check(max(e["ratio_r_mlp"]) > 1.5 * max(a["ratio_r_mlp"]),
         "token-0 MLP output over the rest (largest over layers) is > 1.5 times larger with eot: %.2f vs %.2f"
         % (max(e["ratio_r_mlp"]), max(a["ratio_r_mlp"])))
ex.finish()
