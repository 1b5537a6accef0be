#!/usr/bin/env python3
"""Side-by-side table and verdicts for a baseline and a V-scale run of gradsink.

usage: python3 dev/compare.py BASELINE_DIR VSCALE_DIR [BASELINE_DIR VSCALE_DIR ...]

Each directory holds the probes.jsonl of one run; the last probe (taken after the last step)
is compared. With several pairs (seeds), each pair gets its table and verdicts, then a count
of the pairs on which each verdict holds. Every verdict is computed from the numbers, and its
threshold is printed beside it. Standard library only. Exit code 0, or 2 on unreadable input.
"""
import json
import os
import sys

# thresholds of the verdicts (the README's "Results" section quotes them)
SINK_KEPT = 0.8        # (a) V-scale's column mass M0 at least 0.8x the baseline's
MLP_CUT = 0.7          # (c) V-scale's token-0 MLP-output ratio at most 0.7x the baseline's (a 30% cut)
LOSS_TOL = 0.02        # (d) val losses within 2%
# the baseline "shows the mechanism" when all of these hold
MECH_MLP, MECH_RES, MECH_RGS = 5.0, 2.0, 4.0


def last_probe(run_dir):
    path = os.path.join(run_dir, "probes.jsonl")
    try:
        with open(path) as f:
            lines = [l for l in f if l.strip()]
        return json.loads(lines[-1])
    except (OSError, IndexError, ValueError) as e:
        sys.exit("compare.py: error: cannot read the last probe of %s: %s" % (path, e))


def max_layer(values):
    """(max, layer) over layers, skipping nulls"""
    pairs = [(v, l) for l, v in enumerate(values) if v is not None]
    return max(pairs) if pairs else (float("nan"), -1)


def summary(p):
    L = p["L"]
    mlp, lm = max_layer(p["ratio_r_mlp"])
    res, lr = max_layer(p["ratio_h_out"])
    att, la = max_layer(p["ratio_r_attn"])
    v, lv = max_layer(p["ratio_v"])
    return {
        "val loss": (p["val_loss"] if p["val_loss"] is not None else p["probe_loss"], None),
        "mean sink rate": (sum(p["sink_rate"]) / L, None),
        "sink mass M0 (mean over layers)": (sum(p["M0"]) / L, None),
        "median R_gs": (p["R_gs_median"], None),
        "h_out tok0/rest (max, layer)": (res, lr),
        "r_mlp tok0/rest (max, layer)": (mlp, lm),
        "r_attn tok0/rest (max, layer)": (att, la),
        "|v| tok0/rest (max, layer)": (v, lv),
        "token-0 |dv|/|dk|": (p["dv_dk_0"], None),
        "token-0 |dv|/rest (mean over layers)": (sum(x for x in p["ratio_grad_v"] if x is not None) / L, None),
    }


def fmt(value, layer):
    s = "%.4f" % value if value is not None else "null"
    return s + (" (L%d)" % layer if layer is not None else "")


def verdicts(b, v):
    """each verdict: (name, holds, the numbers and the threshold)"""
    out = []
    m0b, m0v = b["sink mass M0 (mean over layers)"][0], v["sink mass M0 (mean over layers)"][0]
    out.append(("(a) attention sink kept under V-scale", m0v >= SINK_KEPT * m0b,
                "M0 %.2f vs %.2f; needs V-scale >= %.1fx baseline" % (m0v, m0b, SINK_KEPT)))
    rb, rv = b["median R_gs"][0], v["median R_gs"][0]
    out.append(("(b) gradient sink weakened", rv < rb, "median R_gs %.2f vs %.2f; needs V-scale < baseline" % (rv, rb)))
    mb, mv = b["r_mlp tok0/rest (max, layer)"][0], v["r_mlp tok0/rest (max, layer)"][0]
    out.append(("(c) massive activations suppressed", mv <= MLP_CUT * mb,
                "token-0 MLP-output ratio %.2f vs %.2f; needs V-scale <= %.1fx baseline" % (mv, mb, MLP_CUT)))
    lb, lv = b["val loss"][0], v["val loss"][0]
    out.append(("(d) loss comparable", abs(lv - lb) <= LOSS_TOL * lb,
                "val loss %.4f vs %.4f; needs within %.0f%%" % (lv, lb, 100 * LOSS_TOL)))
    # the chain of the paper, link by link: a gradient sink at token 0 (on its value path more than
    # its key path) -> an MLP that writes a spike at token 0 -> the residual stream carrying it
    links = [("gradient sink", "R_gs", rb, ">=", MECH_RGS), ("gradient sink", "|dv0|/|dk0|", b["token-0 |dv|/|dk|"][0], ">", 1),
             ("MLP spike", "MLP ratio", mb, ">=", MECH_MLP),
             ("residual carry", "residual ratio", b["h_out tok0/rest (max, layer)"][0], ">=", MECH_RES)]
    ok = [x >= t if op == ">=" else x > t for _, _, x, op, t in links]
    missing = []
    for (link, *_), good in zip(links, ok):
        if not good and link not in missing:
            missing.append(link)
    # three decimals, so that 1.996 never reads as "2.00 >= 2"
    detail = ", ".join("%s %.3f %s %g" % (n, x, op, t) for _, n, x, op, t in links)
    out.append(("(m) baseline shows the mechanism", all(ok),
                ("missing: %s; " % ", ".join(missing) if missing else "") + detail))
    return out


def main(argv):
    if len(argv) < 2 or len(argv) % 2:
        sys.exit("usage: compare.py BASELINE_DIR VSCALE_DIR [BASELINE_DIR VSCALE_DIR ...]")
    pairs = [(argv[i], argv[i + 1]) for i in range(0, len(argv), 2)]
    holds = {}
    for bdir, vdir in pairs:
        pb, pv = last_probe(bdir), last_probe(vdir)
        b, v = summary(pb), summary(pv)
        print("\n%s  vs  %s   (step %d)" % (bdir, vdir, pb["step"]))
        print("%-38s %-18s %-18s" % ("quantity", "baseline", "V-scale"))
        for k in b:
            print("%-38s %-18s %-18s" % (k, fmt(*b[k]), fmt(*v[k])))
        for name, ok, detail in verdicts(b, v):
            holds.setdefault(name, []).append(ok)
            print("%-38s %-5s %s" % (name, "YES" if ok else "no", detail))
    if len(pairs) > 1:
        print("\nover %d seeds:" % len(pairs))
        for name, oks in holds.items():
            print("%-38s holds on %d of %d" % (name, sum(oks), len(oks)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
