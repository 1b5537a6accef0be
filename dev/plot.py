#!/usr/bin/env python3
"""Draw the paper's figures from gradsink's probes.jsonl files.

usage: python3 dev/plot.py --out FIGDIR BASELINE_RUN_DIR [ARM_RUN_DIR ...]

Each run directory holds the probes.jsonl of one run (see "Measurements: the probe" in the
README); runs are labelled by their directory names. Figures 1-4 draw the first two runs (the
baseline and V-scale), figure 5 every run. Writes into FIGDIR and prints the paths of
  fig1_sinks.png       per layer at the last probe: sink rate, column mass M0, and the token-0 /
                       rest ratios of h_out, r_mlp, r_attn, v (paper Fig. 1/5)
  fig2_qkv_grads.png   token-wise gradient norms of q, k, v over positions, a line per probe
                       step, one row per run (Fig. 2)
  fig3_reshaping.png   log10 Bloat / Compress / Change against log10 of the branch input norm,
                       all layers at the last probe, coloured by token group, with the
                       least-squares slope of log Compress (Fig. 3)
  fig4_rgs.png         R_gs per layer at the last probe, and R_gs_median over probe steps
  fig5_timeline.png    the chain's timeline: mean sink rate, median R_gs, token-0 MLP-output
                       ratio (max over layers) and last-layer h_out ratio against the step, a
                       line per run (arm), each link's threshold dashed
Needs matplotlib (Agg backend); without it, prints one line and exits 0. Exit code 2 on bad
input. Null values (non-finite numbers) are skipped.
"""
import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import compare  # noqa: E402  (its reader: how gradsink writes probes.jsonl, torn last line included)

PER_LAYER = ["sink_rate", "M0", "R_gs", "ratio_h_out", "ratio_r_mlp", "ratio_r_attn", "ratio_v"]
PER_LAYER_T = ["norm_h_in", "norm_h_half"] + ["%s_%s" % (b, q) for b in ("attn", "mlp")
                                             for q in ("bloat", "compress", "change")]
PER_T = ["grad_q_mean", "grad_k_mean", "grad_v_mean"]
GROUPS = [(0, 0, "t=0", "tab:red"), (1, 1, "t=1", "tab:orange"), (2, 3, "t=2-3", "tab:olive"),
          (4, 7, "t=4-7", "tab:green"), (8, 15, "t=8-15", "tab:blue"), (16, 10**9, "t=16+", "0.7")]
RUN_COLORS, RUN_MARKERS = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"], ["o", "^"]


class InputError(Exception):
    """bad input: reported in one line, exit code 2"""


def pos(x):
    """for log axes: nan unless a positive finite number"""
    x = compare.num(x)
    return x if x > 0 else float("nan")


def check_probe(p, where):
    if not isinstance(p, dict):
        raise InputError("%s: not a JSON object" % where)
    for k in ["step", "L", "positions", "R_gs_median", "vscale"] + PER_LAYER + PER_LAYER_T + PER_T:
        if k not in p:
            raise InputError("%s: missing key %r" % (where, k))
    L, P = p["L"], p["positions"]
    if not all(isinstance(x, int) for x in (L, P, p["step"])) or L < 1 or P < 1:
        raise InputError("%s: bad step, L or positions" % where)

    def vec(v, n, k):
        if not isinstance(v, list) or len(v) != n:
            raise InputError("%s: key %r has the wrong shape (expected %d entries)" % (where, k, n))
    for k in PER_LAYER:
        vec(p[k], L, k)
    for k in PER_T:
        vec(p[k], P, k)
    for k in PER_LAYER_T:
        vec(p[k], L, k)
        for row in p[k]:
            vec(row, P, k)


def load_run(run_dir):
    path = os.path.join(run_dir, "probes.jsonl")
    try:
        probes = compare.read_probes(run_dir)
    except compare.InputError as e:
        raise InputError(str(e))
    for n, p in enumerate(probes, 1):
        check_probe(p, "%s probe %d" % (path, n))
    if any(p["L"] != probes[0]["L"] or p["positions"] != probes[0]["positions"] for p in probes):
        raise InputError("%s: L or positions change between probes" % path)
    name = os.path.basename(os.path.normpath(run_dir)) or run_dir
    return {"name": name, "label": "%s (%s)" % (name, compare.arm_of(probes[-1])),
            "probes": probes, "last": probes[-1]}


def save(fig, out, fname):
    path = os.path.join(out, fname)
    try:
        fig.savefig(path, dpi=110, bbox_inches="tight")
    except OSError as e:
        raise InputError("cannot write %s: %s" % (path, e))
    plt.close(fig)
    print(path)


def bars(ax, runs, key, title, ref=None):
    """grouped bars per layer at the last probe, one colour per run"""
    w = 0.8 / len(runs)
    for i, r in enumerate(runs):
        v = [compare.num(x) for x in r["last"][key]]
        ax.bar([l - 0.4 + w * (i + 0.5) for l in range(len(v))], v, w,
               color=RUN_COLORS[i], label=r["label"])
    if ref is not None:
        ax.axhline(ref, color="k", lw=0.8, ls="--")
        ax.set_ylabel("token 0 / rest" if key.startswith("ratio") else key)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("layer")
    ax.set_xticks(range(runs[0]["last"]["L"]))
    ax.set_xlim(-0.5, runs[0]["last"]["L"] - 0.5)  # null bars must not shift the axis


def fig1(runs, out):
    fig, axes = plt.subplots(2, 3, figsize=(13, 7), constrained_layout=True)
    spec = [("sink_rate", "sink rate (heads with alpha > 0.3)", None),
            ("M0", "column mass M0 = sum_t a[t,0]", None),
            ("ratio_h_out", "||h_out||: token 0 / mean t=1..15", 1),
            ("ratio_r_mlp", "||r_mlp||: token 0 / mean t=1..15", 1),
            ("ratio_r_attn", "||r_attn||: token 0 / mean t=1..15", 1),
            ("ratio_v", "||v||: token 0 / mean t=1..15", 1)]
    for ax, (key, title, ref) in zip(axes.flat, spec):
        bars(ax, runs, key, title, ref)
    axes[0, 0].set_ylim(0, 1.05)
    axes[0, 0].legend(fontsize=8)
    steps = ", ".join("%s step %d" % (r["name"], r["last"]["step"]) for r in runs)
    fig.suptitle("Attention sinks and token-0 norms per layer (last probe: %s)" % steps)
    save(fig, out, "fig1_sinks.png")


def fig2(runs, out):
    fig, axes = plt.subplots(len(runs), 3, figsize=(13, 3.8 * len(runs)),
                             constrained_layout=True, squeeze=False)
    cmap = plt.get_cmap("viridis")
    for row, r in zip(axes, runs):
        steps = [p["step"] for p in r["probes"]]
        norm = matplotlib.colors.Normalize(min(steps), max(steps) if max(steps) > min(steps)
                                           else min(steps) + 1)
        for ax, (key, q) in zip(row, [("grad_q_mean", "q"), ("grad_k_mean", "k"),
                                      ("grad_v_mean", "v")]):
            for p in r["probes"]:
                ys = [pos(x) for x in p[key]]
                ax.plot(range(len(ys)), ys, color=cmap(norm(p["step"])), lw=1.2, marker=".", ms=3)
            ax.set_yscale("log")
            ax.set_xlabel("position t")
            ax.set_ylabel("||d%s_t|| (mean over layers, heads)" % q, fontsize=9)
            note = " (dq_0 = 0 not drawn)" if q == "q" else ""
            ax.set_title("%s: gradient of %s%s" % (r["label"], q, note), fontsize=10)
        sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
        fig.colorbar(sm, ax=list(row), label="probe step")
    fig.suptitle("Token-wise gradient norms of q, k, v (after RoPE for q, k; before V-scale for v)")
    save(fig, out, "fig2_qkv_grads.png")


def slope(xs, ys):
    """least-squares slope of y on x, or nan with fewer than 2 distinct x"""
    n = len(xs)
    if n < 2:
        return float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx if sxx > 0 else float("nan")


def fig3(runs, out):
    fig, axes = plt.subplots(2, 3, figsize=(14, 8), constrained_layout=True)
    for row, (branch, nkey, nname) in zip(axes, [("attn", "norm_h_in", "||h_in||"),
                                                 ("mlp", "norm_h_half", "||h_half||")]):
        fits = []
        for ax, q in zip(row, ["bloat", "compress", "change"]):
            for i, r in enumerate(runs):
                p, pts = r["last"], []
                for l in range(p["L"]):
                    for t in range(p["positions"]):
                        x, y = pos(p[nkey][l][t]), pos(p["%s_%s" % (branch, q)][l][t])
                        if x == x and y == y:
                            pts.append((t, math.log10(x), math.log10(y)))
                for lo, hi, gname, col in reversed(GROUPS):  # token 0 on top
                    g = [(x, y) for t, x, y in pts if lo <= t <= hi]
                    if g:
                        ax.scatter([x for x, _ in g], [y for _, y in g], s=16, c=col,
                                   marker=RUN_MARKERS[i], alpha=0.8, edgecolors="none")
                if q == "compress":
                    xs, ys = [x for _, x, _ in pts], [y for _, _, y in pts]
                    b = slope(xs, ys)
                    fits.append("%s %.2f" % (r["name"], b))
                    if b == b:
                        mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
                        x0, x1 = min(xs), max(xs)
                        ax.plot([x0, x1], [my + b * (x0 - mx), my + b * (x1 - mx)],
                                color=RUN_COLORS[i], lw=1.2, ls="--")
            ax.set_xlabel("log10 %s (%s branch input)" % (nname, branch))
            ax.set_ylabel("log10 %s" % q.capitalize())
            ax.set_title("%s %s" % (branch, q.capitalize()), fontsize=10)
        row[1].set_title("%s Compress; LS slope: %s (expected ~ -1)"
                         % (branch, ", ".join(fits)), fontsize=9)
    handles = [matplotlib.lines.Line2D([], [], ls="", marker="s", color=col, label=gname)
               for _, _, gname, col in GROUPS]
    handles += [matplotlib.lines.Line2D([], [], ls="", marker=RUN_MARKERS[i], color="k",
                                        mfc="none", label=r["label"]) for i, r in enumerate(runs)]
    handles += [matplotlib.lines.Line2D([], [], ls="--", color=RUN_COLORS[i],
                                        label="LS fit, %s" % r["name"]) for i, r in enumerate(runs)]
    fig.legend(handles=handles, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    steps = ", ".join("%s step %d" % (r["name"], r["last"]["step"]) for r in runs)
    fig.suptitle("Gradient reshaping vs branch input norm, all layers (last probe: %s)" % steps)
    save(fig, out, "fig3_reshaping.png")


def fig4(runs, out):
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)
    bars(a, runs, "R_gs", "R_gs = ||G_0|| / mean_t ||G_t|| per layer (last probe)", 1)
    a.set_ylabel("R_gs")
    a.legend(fontsize=8)
    for i, r in enumerate(runs):
        b.plot([p["step"] for p in r["probes"]], [compare.num(p["R_gs_median"]) for p in r["probes"]],
               marker="o", color=RUN_COLORS[i], label=r["label"])
    b.axhline(1, color="k", lw=0.8, ls="--")
    b.set_xlabel("training step")
    b.set_ylabel("median R_gs over layers")
    b.set_title("R_gs median over probe steps", fontsize=10)
    b.legend(fontsize=8)
    fig.suptitle("Gradient-sink ratio")
    save(fig, out, "fig4_rgs.png")


def fig5(runs, out):
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), constrained_layout=True)
    spec = [("mean sink rate", "attention sink: mean sink rate over layers", compare.SINK_RATE),
            ("median R_gs", "gradient sink: median R_gs over layers", compare.RGS),
            ("r_mlp tok0/rest (max over layers)", "massive activation: token-0 MLP output / rest (max over layers)",
             compare.MLP),
            ("h_out tok0/rest (last layer)", "carry: token-0 h_out / rest, last layer", compare.CARRY)]
    for ax, (key, title, t) in zip(axes.flat, spec):
        for i, r in enumerate(runs):
            qs = [(p["step"], compare.quantities(p)[key]) for p in r["probes"]]
            ax.plot([s for s, _ in qs], [q for _, q in qs], color=RUN_COLORS[i % len(RUN_COLORS)], lw=1.3,
                    label=r["label"])
        ax.axhline(t, color="k", lw=0.8, ls="--")
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("training step")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("The chain's timeline, one line per arm (dashed: each link's threshold)")
    save(fig, out, "fig5_timeline.png")


def main():
    ap = argparse.ArgumentParser(
        prog="dev/plot.py", description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n".join(__doc__.split("\n")[3:]))
    ap.add_argument("--out", required=True, metavar="FIGDIR", help="directory for the PNGs")
    ap.add_argument("baseline", metavar="BASELINE_RUN_DIR", help="run dir with probes.jsonl")
    ap.add_argument("arms", metavar="ARM_RUN_DIR", nargs="*", help="more runs: V-scale first, then any arms")
    args = ap.parse_args()
    global matplotlib, plt
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        import matplotlib.cm, matplotlib.colors, matplotlib.lines  # noqa: E401
    except ImportError:
        print("dev/plot.py: matplotlib not found; skipping figures "
              "(apt-get install python3-matplotlib or pip install matplotlib)")
        return 0
    try:
        runs = [load_run(d) for d in [args.baseline] + args.arms]
        if any(r["last"]["L"] != runs[0]["last"]["L"] for r in runs):
            raise InputError("the runs have different numbers of layers")
        os.makedirs(args.out, exist_ok=True)
        for f in (fig1, fig2, fig3, fig4):
            f(runs[:2], args.out)
        fig5(runs, args.out)
    except (InputError, OSError) as e:
        print("dev/plot.py: error: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
