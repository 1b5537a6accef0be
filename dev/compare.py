#!/usr/bin/env python3
"""Tables and verdicts for gradsink runs of one experiment: a baseline and its arms, per seed.

usage: python3 dev/compare.py [--table] RUN_DIR [RUN_DIR ...]

Each RUN_DIR holds the probes.jsonl of one run. A run's arm is read from its probes:
  baseline    V-scale off, no intervention
  vscale      V-scale fixed or learned, in both passes (the paper's)
  vscale-fwd  V-scale in the forward pass only (--vscale-path forward)
  vscale-bwd  V-scale in the backward pass only (--vscale-path backward)
  sinkcut     V-scale off, the value gradient of position 0 cut (--sink-grad 0)
Runs are grouped per seed: each baseline starts a group, the arms after it belong to it
(`BASE VS BASE VS` for two seeds of the old pair). Every number of a verdict is the mean over
the last 4 probes of a run (the links swing from probe to probe), except the validation loss,
the run's final one; a link's step-0 value (its first probe) is printed beside it, and a link
that is not above its step-0 value is not counted as learned. The onset of a link is the first
probe from which it stays at or above its threshold to the end. Thresholds are printed beside
each verdict. --table prints instead one Markdown row per run (the links, their onsets and the
validation loss), for dev/EXPERIMENTS.md. Standard library only. Exit code 0, or 2 on unreadable
input.
"""
import json
import math
import os
import sys

LAST = 4               # probes averaged for a verdict
SINK_RATE = 0.3        # (a) a sink: mean sink rate over layers at least this
KEPT = 0.8             # (a) V-scale keeps it: sink rate and M0 at least 0.8x the baseline's
WEAKER = 0.7           # (b) V-scale's median R_gs at most 0.7x the baseline's
CUT = 0.7              # (c) a spike is cut when at most 0.7x the baseline's
LOSS_TOL = 0.02        # (d) val losses within 2%
RGS, VPATH, MLP, CARRY = 4.0, 4.0, 5.0, 2.0  # (m) the links' thresholds
RATIO_POSITIONS = 16   # token 0 against the mean of positions 1..15
ARMS = ["baseline", "vscale", "vscale-fwd", "vscale-bwd", "sinkcut"]


class InputError(Exception):
    """bad input: one line, exit code 2"""


def read_probes(run_dir):
    """The probes of a run, as gradsink writes them: one JSON object a line, appended whole; a
    torn last line (a kill during the write: no newline at its end, whatever it holds) is skipped,
    as gradsink's next append cuts it off. Anything else malformed is an error."""
    path = os.path.join(run_dir, "probes.jsonl")
    try:
        st = os.stat(path)
    except OSError as e:
        raise InputError("cannot read %s: %s" % (path, e.strerror or e))
    if not os.path.isfile(path) or not (st.st_mode & 0o170000 == 0o100000):
        raise InputError("%s is not a regular file" % path)
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise InputError("cannot read %s: %s" % (path, e.strerror or e))
    lines = data.split(b"\n")
    lines.pop()  # after the last newline: empty, or a torn line, skipped
    probes = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            p = json.loads(line.decode("utf-8"))
        except ValueError as e:
            raise InputError("%s line %d: malformed JSON (%s)" % (path, n, e))
        if not isinstance(p, dict) or not isinstance(p.get("step"), int) or not isinstance(p.get("L"), int) or p["L"] < 1:
            raise InputError("%s line %d: not a gradsink probe (no step or L)" % (path, n))
        probes.append(p)
    if not probes:
        raise InputError("%s holds no probes" % path)
    return probes


def num(x):
    """x as a float; nan when null, missing or not a finite number"""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        return float("nan")
    return float(x)


def seq(p, key, n=None):
    """p[key] as a list of floats (nan for nulls); nan-filled when absent or of another shape"""
    v = p.get(key)
    if not isinstance(v, list) or (n is not None and len(v) != n):
        return [float("nan")] * (n or 1)
    return [num(x) for x in v]


def mean(xs):
    xs = [x for x in xs if x == x]
    return sum(xs) / len(xs) if xs else float("nan")


def arm_of(p):
    mode, path, g = p.get("vscale", "off"), p.get("vscale_path", "both"), num(p.get("sink_grad", 1))
    if mode == "off":
        return "baseline" if g == 1 else "sinkcut" if g == 0 else "sink-grad %g" % g
    if g != 1:
        return "vscale-%s, sink-grad %g" % (path, g)
    return {"both": "vscale", "forward": "vscale-fwd", "backward": "vscale-bwd"}.get(path, "vscale-" + str(path))


def quantities(p):
    """the numbers the verdicts read, from one probe"""
    L = p["L"]
    gv = seq(p, "grad_v_mean")
    rest = gv[1:RATIO_POSITIONS]
    h_out = seq(p, "ratio_h_out", L)
    return {
        "mean sink rate": mean(seq(p, "sink_rate", L)),
        "sink mass M0 (mean over layers)": mean(seq(p, "M0", L)),
        "median R_gs": num(p.get("R_gs_median")),
        "token-0 |dv| / rest (layer mean)": gv[0] / mean(rest) if rest and mean(rest) > 0 else float("nan"),
        "token-0 |dv|/|dk|": num(p.get("dv_dk_0")),
        "r_mlp tok0/rest (max over layers)": max([x for x in seq(p, "ratio_r_mlp", L) if x == x] or [float("nan")]),
        "h_out tok0/rest (last layer)": h_out[-1],
        "h_out tok0/rest (max over layers)": max([x for x in h_out if x == x] or [float("nan")]),
        "r_attn tok0/rest (max over layers)": max([x for x in seq(p, "ratio_r_attn", L) if x == x] or [float("nan")]),
        "probe loss": num(p.get("probe_loss")),
    }


# the links of the paper's chain: (name, quantity, threshold)
LINKS = [("sink", "mean sink rate", SINK_RATE), ("gradient sink", "median R_gs", RGS),
         ("value path", "token-0 |dv| / rest (layer mean)", VPATH),
         ("MLP spike", "r_mlp tok0/rest (max over layers)", MLP), ("carry", "h_out tok0/rest (last layer)", CARRY)]


def onset(series, threshold):
    """(step) of the first probe from which the value stays >= threshold to the end; None if never"""
    start = None
    for step, x in series:
        if x == x and x >= threshold:
            if start is None:
                start = step
        else:
            start = None
    return start


def summarize(run_dir):
    probes = read_probes(run_dir)
    qs = [(p["step"], quantities(p)) for p in probes]
    tail = qs[-LAST:] if len(qs) > LAST else qs[1:] or qs  # not the step-0 probe, when others are
    last = [q for _, q in tail]
    s = {k: mean([q[k] for q in last]) for k in last[0]}
    val = num(probes[-1].get("val_loss"))
    s["val loss"] = val if val == val else s["probe loss"]
    return {"dir": run_dir, "arm": arm_of(probes[-1]), "L": probes[-1]["L"], "last": s,
            "steps": "%d-%d" % (tail[0][0], tail[-1][0]) if len(tail) > 1 else "%d" % tail[0][0], "step0": qs[0][1],
            "onset": {name: onset([(st, q[key]) for st, q in qs], t) for name, key, t in LINKS}}


def ratio(a, b):
    return a / b if b == b and b != 0 else float("nan")


def yes(ok):
    return "YES" if ok else "no"


def verdicts(runs):
    """each verdict: (name, holds, detail). runs: arm -> summary; the baseline always there"""
    b = runs["baseline"]
    B, B0 = b["last"], b["step0"]
    out = []

    def learned(key, t):
        x, x0 = B[key], B0[key]
        return x == x and x >= t and x > x0

    v = runs.get("vscale")
    if v:
        V = v["last"]
        sr, m0 = ratio(V["mean sink rate"], B["mean sink rate"]), ratio(V["sink mass M0 (mean over layers)"],
                                                                         B["sink mass M0 (mean over layers)"])
        ok = B["mean sink rate"] >= SINK_RATE and sr >= KEPT and m0 >= KEPT
        out.append(("(a) attention sink kept under V-scale", ok,
                    "baseline sink rate %.2f (needs >= %.1f); V-scale's sink rate %.2fx, M0 %.2fx the baseline's (need >= %.1fx)"
                    % (B["mean sink rate"], SINK_RATE, sr, m0, KEPT)))
        r = ratio(V["median R_gs"], B["median R_gs"])
        ok = learned("median R_gs", RGS) and r <= WEAKER
        out.append(("(b) gradient sink weakened", ok,
                    "baseline median R_gs %.2f (step 0: %.2f; needs >= %g and above step 0), V-scale's %.2f = %.2fx (needs <= %.1fx)"
                    % (B["median R_gs"], B0["median R_gs"], RGS, V["median R_gs"], r, WEAKER)))
        key = "r_mlp tok0/rest (max over layers)"
        r = ratio(V[key], B[key])
        out.append(("(c) massive activations suppressed", r <= CUT,
                    "token-0 MLP-output ratio %.2f vs %.2f = %.2fx (needs <= %.1fx)" % (V[key], B[key], r, CUT)))
        lb, lv = B["val loss"], V["val loss"]
        out.append(("(d) loss comparable", abs(lv - lb) <= LOSS_TOL * lb,
                    "val loss %.4f vs %.4f; needs within %.0f%%" % (lv, lb, 100 * LOSS_TOL)))
    # (m): the baseline's chain, link by link, each against its step-0 value
    parts, ok_all, missing = [], True, []
    for name, key, t in LINKS[1:]:
        ok = learned(key, t)
        ok_all &= ok
        if not ok:
            missing.append(name + (" (already at step 0)" if B0[key] >= t and B[key] >= t else ""))
        parts.append("%s %.2f (step 0: %.2f) >= %g" % (name, B[key], B0[key], t))
    out.append(("(m) baseline shows the mechanism", ok_all,
                ("missing: %s; " % ", ".join(missing) if missing else "") + ", ".join(parts)))
    # the causal verdicts: each a prediction of the paper
    key = "r_mlp tok0/rest (max over layers)"
    s = runs.get("sinkcut")
    if s:
        S = s["last"]
        sr, m0, r = (ratio(S["mean sink rate"], B["mean sink rate"]),
                     ratio(S["sink mass M0 (mean over layers)"], B["sink mass M0 (mean over layers)"]), ratio(S[key], B[key]))
        out.append(("(e) sinkcut: sink kept, spike cut", sr >= KEPT and m0 >= KEPT and r <= CUT,
                    "sinkcut: sink rate %.2fx, M0 %.2fx the baseline's (need >= %.1fx); MLP ratio %.2f vs %.2f = %.2fx (needs <= %.1fx)"
                    % (sr, m0, KEPT, S[key], B[key], r, CUT)))
    w = runs.get("vscale-bwd")
    if w:
        r = ratio(w["last"][key], B[key])
        out.append(("(f) vscale-bwd: spike cut", r <= CUT,
                    "vscale-bwd MLP ratio %.2f vs %.2f = %.2fx (needs <= %.1fx)" % (w["last"][key], B[key], r, CUT)))
    f = runs.get("vscale-fwd")
    if f:
        r = ratio(f["last"][key], B[key])
        out.append(("(g) vscale-fwd: spike not cut", r > CUT,
                    "vscale-fwd MLP ratio %.2f vs %.2f = %.2fx (needs > %.1fx)" % (f["last"][key], B[key], r, CUT)))
    if len(runs) > 2 or s or w or f:
        og, osp = b["onset"]["gradient sink"], b["onset"]["MLP spike"]
        out.append(("(t) baseline: R_gs onset before spike's", og is not None and osp is not None and og < osp,
                    "baseline onsets: R_gs >= %g from step %s, MLP spike >= %g from step %s"
                    % (RGS, "never" if og is None else og, MLP, "never" if osp is None else osp)))
    return out


def fmt(x):
    return "null" if x != x else "%.4f" % x


def group(summaries):
    """each baseline starts a seed's group"""
    groups = []
    for s in summaries:
        if s["arm"] == "baseline" or not groups:
            groups.append({})
        g = groups[-1]
        if s["arm"] in g:
            raise InputError("%s and %s are both arm %s of one group (each baseline starts a group)"
                             % (g[s["arm"]]["dir"], s["dir"], s["arm"]))
        g[s["arm"]] = s
    for g in groups:
        if "baseline" not in g:
            raise InputError("%s: no baseline run before it" % next(iter(g.values()))["dir"])
        Ls = {s["L"] for s in g.values()}
        if len(Ls) > 1:
            raise InputError("runs of one group have different numbers of layers: %s" % ", ".join(s["dir"] for s in g.values()))
    return groups


def table(groups):
    key = {name: k for name, k, _ in LINKS}
    print("| group | arm | " + " | ".join(name for name, _, _ in LINKS) + " | onsets (" +
          ", ".join(name for name, _, _ in LINKS) + ") | val loss |")
    print("|" + "---|" * (len(LINKS) + 4))
    for i, g in enumerate(groups, 1):
        for a in sorted(g, key=lambda a: ARMS.index(a) if a in ARMS else len(ARMS)):
            r = g[a]
            cells = ["%.2f" % r["last"][key[n]] for n, _, _ in LINKS]
            ons = ["-" if r["onset"][n] is None else str(r["onset"][n]) for n, _, _ in LINKS]
            print("| %d | %s | %s | %s | %.4f |" % (i, a, " | ".join(cells), " / ".join(ons), r["last"]["val loss"]))


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    as_table = argv[0] == "--table"
    if as_table:
        argv = argv[1:]
        if not argv:
            print("usage: python3 dev/compare.py [--table] RUN_DIR [RUN_DIR ...]", file=sys.stderr)
            return 2
    try:
        groups = group([summarize(d) for d in argv])
    except InputError as e:
        print("compare.py: error: %s" % e, file=sys.stderr)
        return 2
    if as_table:
        table(groups)
        return 0
    holds = {}
    for g in groups:
        arms = sorted(g, key=lambda a: ARMS.index(a) if a in ARMS else len(ARMS))
        runs = [g[a] for a in arms]
        print("\n" + "  ".join("%s: %s" % (a, g[a]["dir"]) for a in arms))
        print("mean of the last %d probes (steps %s); step-0 values in brackets" % (LAST, ", ".join(
            sorted({r["steps"] for r in runs}))))
        print("%-36s" % "quantity" + "".join("%-22s" % a for a in arms))
        for k in runs[0]["last"]:
            print("%-36s" % k + "".join("%-22s" % ("%s (%s)" % (fmt(r["last"][k]), fmt(r["step0"][k]) if k in r["step0"] else "")
                                                    if k != "val loss" else fmt(r["last"][k])) for r in runs))
        print("%-36s" % "onset (first step staying above)")
        for name, key, t in LINKS:
            print("  %-34s" % ("%s >= %g" % (name, t)) + "".join(
                "%-22s" % ("never" if r["onset"][name] is None else r["onset"][name]) for r in runs))
        for name, ok, detail in verdicts(g):
            holds.setdefault(name, []).append(ok)
            print("%-44s %-4s %s" % (name, yes(ok), detail))
    if len(groups) > 1:
        print("\nover %d seeds:" % len(groups))
        for name, oks in holds.items():
            print("%-44s holds on %d of %d" % (name, sum(oks), len(oks)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
