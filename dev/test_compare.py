#!/usr/bin/env python3
"""Tests of dev/compare.py, the verdicts of train.sh (standard library only).

usage: python3 dev/test_compare.py        (from anywhere; needs nothing built)

Every probes.jsonl is written here, in a temporary folder, from a few knobs (sink rate, R_gs,
token-0 value-gradient ratio, MLP ratio, last-layer h_out ratio, M0, loss) at step 0 and after it,
with every key compare.py (and dev/plot.py) reads. One OK/FAIL line per check, then
`N passed, M failed`; exit 1 on any failure. The checks:
  - the verdicts: a full chain in the baseline and a V-scale run that keeps the sink and cuts the
    rest give (a) (b) (c) (d) (m) YES; each link absent in turn gives NO on every check naming it,
    and (m) names the missing link; a link the initial model already has is not counted; the
    verdicts read the mean of the last 4 probes (and the final validation loss);
  - onsets, and (t): the gradient sink's onset before the MLP spike's;
  - the causal arms (e) sinkcut, (f) vscale-bwd, (g) vscale-fwd, each both ways and at the boundary;
  - grouping per seed (`BASE VS BASE VS`, arms between baselines, an arm before any baseline);
  - robust input, through the command line: missing, empty, FIFO, folder, non-probe and
    malformed lines give exit 2 and one line on stderr; a torn last line is skipped; nulls
    (a -t 1 run, lost losses) never give a YES and never a traceback;
  - dev/plot.py on a run with a torn last line, when a python3 here has matplotlib (otherwise
    one line says it was skipped, not counted).
"""
import contextlib
import io
import json
import os
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMPARE = os.path.join(ROOT, "dev", "compare.py")
PLOT = os.path.join(ROOT, "dev", "plot.py")
sys.path.insert(0, os.path.join(ROOT, "dev"))
import compare  # noqa: E402  (the verdicts in-process, for speed; bad input through the command line)

from testing import Counts  # noqa: E402
from testing import check as _check  # noqa: E402


def check(ok, name, detail=""):
    return _check(ok, name, detail, detail_on_ok=False)


# --- synthetic probes ---------------------------------------------------------------------------

L, H, HKV, P = 3, 4, 4, 32
ARM_KEYS = {"baseline": ("off", "both", 1), "vscale": ("learned", "both", 1), "vscale-fwd": ("fixed", "forward", 1),
            "vscale-bwd": ("fixed", "backward", 1), "sinkcut": ("off", "both", 0)}
# a trained baseline with the whole chain: sink, gradient sink, value path, MLP spike, carry
CHAIN = dict(sink=0.625, m0=10.0, rgs=8.0, vpath=6.0, mlp=10.0, carry=4.0, carry_early=None, loss=3.0)
# the initial model: none of the links
INIT = dict(sink=0.0, m0=4.0, rgs=1.5, vpath=1.5, mlp=1.0, carry=1.2, carry_early=None, loss=7.6)
# V-scale as the paper has it: the sink kept, the gradient sink, the spike and the carry cut, the loss kept
VSCALE = dict(CHAIN, rgs=2.0, vpath=1.5, mlp=2.0, carry=1.3, loss=3.02)


def probe(step, arm="baseline", extra=None, **knobs):
    """one probe dict with every key compare.py and plot.py read, from the knobs (CHAIN's by default);
    extra: raw keys put over it last (e.g. {"M0": None})"""
    k = dict(CHAIN)
    k.update(knobs)
    mode, path, g = ARM_KEYS[arm]

    def tok0(x):  # [layer][t]: token 0 at x, the rest 1
        return [[x] + [1.0] * (P - 1) for _ in range(L)]
    early = k["carry"] if k["carry_early"] is None else k["carry_early"]
    r_mlp = [1.0] * L
    r_mlp[1] = k["mlp"]  # the spike in a middle layer: the verdict reads the max over layers
    p = {
        "step": step, "train_loss": None if step == 0 else k["loss"], "val_loss": k["loss"], "val_loss_step": step,
        "probe_loss": k["loss"], "probe_ms": 10.0, "L": L, "H": H, "Hkv": HKV, "positions": P,
        "vscale": mode, "vscale_path": path, "sink_grad": g, "first_token": "eot-masked",
        "rgs_positions": [1, P - 1], "rgs_short_T": False,
        "alpha": [[0.5 if h < k["sink"] * H else 0.1 for h in range(H)] for _ in range(L)],
        "sink_rate": [k["sink"]] * L, "M0": [k["m0"]] * L, "S0": [k["m0"] / 2] * L,
        "R_gs": [k["rgs"]] * L, "R_gs_median": k["rgs"],
        "norm_h_in": tok0(early), "norm_h_half": tok0(early), "norm_h_out": tok0(early)[:-1] + [[k["carry"]] + [1.0] * (P - 1)],
        "norm_r_attn": tok0(2.0), "norm_r_mlp": tok0(k["mlp"]), "norm_v": tok0(1.0), "norm_vhat": tok0(1.0),
        "grad_x_attn": tok0(k["rgs"]), "grad_x_mlp": tok0(1.0), "grad_q": [[0.0] + [1.0] * (P - 1)] * L,
        "grad_k": tok0(1.0), "grad_v": tok0(k["vpath"]),
        "grad_q_mean": [0.0] + [1.0] * (P - 1), "grad_k_mean": [1.0] * P, "grad_v_mean": [k["vpath"]] + [1.0] * (P - 1),
        "ratio_h_out": [early] * (L - 1) + [k["carry"]], "ratio_r_mlp": r_mlp, "ratio_r_attn": [2.0] * L,
        "ratio_v": [1.0] * L, "ratio_grad_v": [k["vpath"]] * L, "dv_dk_0": k["vpath"],
        "vscale_lambda": [[0.0 if mode == "off" else 1.0] * HKV] * L, "vscale_phi0": [1.0] * L, "vscale_phi_rest": [1.0] * L,
    }
    for b in ("attn", "mlp"):
        for q in ("bloat", "compress", "change"):
            p["%s_%s" % (b, q)] = tok0(0.5)
    p.update(extra or {})
    return p


def run_probes(arm="baseline", end=None, init=None, n=9, every=25, series=None, extra=None):
    """n probes at steps 0, every, 2 every, ...: the first with the knobs init (INIT's), the rest
    with end (CHAIN's, VSCALE's for arm vscale); series: {knob: [a value per probe]} over both"""
    out = []
    for i in range(n):
        knobs = dict(INIT) if i == 0 else dict(VSCALE if arm == "vscale" else CHAIN)
        knobs.update((init or {}) if i == 0 else (end or {}))
        for key, vals in (series or {}).items():
            knobs[key] = vals[i]
        out.append(probe(i * every, arm, extra, **knobs))
    return out


TMP = None
_n = [0]


def write_run(probes, tail=b"", name=None):
    """a run folder holding these probes as probes.jsonl, one line each, then tail (raw bytes)"""
    _n[0] += 1
    d = os.path.join(TMP, name or "run%03d" % _n[0])
    os.makedirs(d)
    with open(os.path.join(d, "probes.jsonl"), "wb") as f:
        for p in probes:
            f.write(json.dumps(p).encode() + b"\n")
        f.write(tail)
    return d


def run(arm="baseline", **kw):
    return write_run(run_probes(arm, **kw))


def compare_in(*dirs):
    """compare.main in this process: (exit code, stdout, stderr)"""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = compare.main(list(dirs))
    return rc, out.getvalue(), err.getvalue()


def compare_cli(*dirs):
    """python3 dev/compare.py DIRS: a CompletedProcess, or None when it did not end within 20 s"""
    try:
        return subprocess.run([sys.executable, COMPARE] + list(dirs), capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return None


def groups_of(text):
    """the verdict lines of each seed's group: [{letter: (holds, line)}]"""
    groups = []
    for line in text.splitlines():
        if re.match(r"baseline: ", line):
            groups.append({})
        m = re.match(r"\(([a-z])\) ", line)
        if m and groups and line[45:49].rstrip() in ("YES", "no"):
            groups[-1][m.group(1)] = (line[45:49].rstrip() == "YES", line)
    return groups


def verdicts(*dirs):
    """{letter: (holds, line)} of the one group these runs make"""
    rc, out, err = compare_in(*dirs)
    if rc != 0:
        raise AssertionError("compare.py exit %d: %s" % (rc, err.strip()))
    g = groups_of(out)
    if len(g) != 1:
        raise AssertionError("%d groups in the output, not 1" % len(g))
    return g[0]


def expect(v, want, name):
    """want: {letter: True/False/None (None: the line must be absent)}"""
    bad = []
    for letter, holds in want.items():
        got = v.get(letter)
        if holds is None:
            if got is not None:
                bad.append("(%s) present: %s" % (letter, got[1]))
        elif got is None:
            bad.append("(%s) missing" % letter)
        elif got[0] != holds:
            bad.append("(%s) is %s, expected %s: %s" % (letter, "YES" if got[0] else "no", "YES" if holds else "no", got[1]))
    return check(not bad, name, "; ".join(bad))


def missing_of(line):
    """the links named after 'missing:' in (m)'s line, or [] when none is"""
    m = re.search(r"missing: ([^;]*);", line)
    return [] if not m else [x.strip() for x in m.group(1).split(",")]


def one_error(r):
    """exit 2, nothing on stdout, one line on stderr starting compare.py: error:"""
    if r is None:
        return False, "did not end within 20 s"
    lines = r.stderr.splitlines()
    ok = r.returncode == 2 and len(lines) == 1 and lines[0].startswith("compare.py: error:") and not r.stdout
    return ok, "exit %d, stdout %r, stderr %r" % (r.returncode, r.stdout[:200], r.stderr[-600:])


# --- the checks ---------------------------------------------------------------------------------

def test_full_chain():
    base, vs = run("baseline"), run("vscale")
    rc, out, err = compare_in(base, vs)
    check(rc == 0 and not err, "a baseline and a V-scale run: exit 0, nothing on stderr", "exit %d, %r" % (rc, err))
    v = groups_of(out)[0]
    expect(v, dict(a=True, b=True, c=True, d=True, m=True), "full chain in the baseline, V-scale keeps the sink and cuts the rest: (a) (b) (c) (d) (m) YES")
    expect(v, dict(e=None, f=None, g=None, t=None), "two arms only: no (e) (f) (g) (t) line")
    check("missing" not in v["m"][1], "(m) with the whole chain names nothing missing", v["m"][1])
    return base, vs


def test_absent_links(vs):
    # no sink: the V-scale run has the baseline's (too small) sink too, so only the threshold fails
    base = run("baseline", end=dict(sink=0.1))
    expect(verdicts(base, run("vscale", end=dict(sink=0.1))), dict(a=False, b=True, c=True, d=True),
           "no sink (baseline sink rate 0.1): (a) NO, the others YES")
    # no gradient sink: V-scale's R_gs at 0.5x, so only the baseline's threshold fails (b)
    v = verdicts(run("baseline", end=dict(rgs=2.0)), run("vscale", end=dict(rgs=1.0)))
    expect(v, dict(a=True, b=False, c=True, d=True, m=False), "no gradient sink (R_gs 2): (b) and (m) NO")
    check(missing_of(v["m"][1]) == ["gradient sink"], "no gradient sink: (m) names it, and only it", v["m"][1])
    for name, knobs, link in [("no value path (token-0 |dv| ratio 1.5)", dict(vpath=1.5), "value path"),
                              ("no MLP spike (ratio 2)", dict(mlp=2.0), "MLP spike"),
                              ("no carry (last layer 1.2, an earlier layer 8)", dict(carry=1.2, carry_early=8.0), "carry")]:
        v = verdicts(run("baseline", end=knobs), vs)
        expect(v, dict(m=False), name + ": (m) NO")
        check(missing_of(v["m"][1]) == [link], name + ": (m) names %s, and only it" % link, v["m"][1])
    # the carry is read at the last layer: an earlier layer's 8 does not make it
    v = verdicts(run("baseline", end=dict(carry=2.5, carry_early=1.0)), vs)
    expect(v, dict(m=True), "carry 2.5 at the last layer, 1.0 before it: (m) YES (the last layer is read)")


def test_step0(vs):
    v = verdicts(run("baseline", init=dict(rgs=6.0), end=dict(rgs=5.0)), vs)
    expect(v, dict(b=False, m=False), "R_gs 6 at step 0, 5 at the end: (b) and (m) NO")
    check("gradient sink (already at step 0)" in v["m"][1], "R_gs 6 at step 0, 5 at the end: (m) says 'already at step 0'", v["m"][1])
    v = verdicts(run("baseline", init=dict(rgs=6.0), end=dict(rgs=8.0)), vs)
    expect(v, dict(b=True, m=True), "R_gs 6 at step 0, 8 at the end: counted, (b) and (m) YES")
    # a link below its threshold at the end is missing, not 'already at step 0'
    v = verdicts(run("baseline", init=dict(rgs=6.0), end=dict(rgs=3.0)), vs)
    check(missing_of(v["m"][1]) == ["gradient sink"], "R_gs 6 at step 0, 3 at the end: (m) names it missing, not 'already'", v["m"][1])
    # a link only at step 0 is no link: the sink, the spike, the carry there and gone after
    v = verdicts(run("baseline", init=dict(sink=0.6), end=dict(sink=0.1)), run("vscale", end=dict(sink=0.1)))
    expect(v, dict(a=False), "a sink only at step 0 (sink rate 0.6 there, 0.1 after): (a) NO")
    for name, init, end, link in [("a spike only at step 0 (MLP ratio 9 there, 2 after)", dict(mlp=9.0), dict(mlp=2.0), "MLP spike"),
                                  ("a carry only at step 0 (last layer 3 there, 1.2 after)", dict(carry=3.0), dict(carry=1.2), "carry")]:
        v = verdicts(run("baseline", init=init, end=end), vs)
        expect(v, dict(m=False), name + ": (m) NO")
        check(missing_of(v["m"][1]) == [link], name + ": (m) names %s, and only it" % link, v["m"][1])


def test_last4(vs):
    # the MLP spike only at the last probe: 12 there, 1 at the three before (mean 3.75 < 5)
    v = verdicts(run("baseline", series=dict(mlp=[1.0] * 8 + [12.0])), vs)
    expect(v, dict(m=False), "the MLP spike at the last probe alone (mean of the last 4 is 3.75): (m) NO")
    check(missing_of(v["m"][1]) == ["MLP spike"], "... and (m) names the MLP spike", v["m"][1])
    # the sink at the last probe alone: 0.9 there, 0 before (mean 0.225 < 0.3)
    sinks = [0.0] * 8 + [0.9]
    v = verdicts(run("baseline", series=dict(sink=sinks)), run("vscale", series=dict(sink=sinks)))
    expect(v, dict(a=False), "the sink at the last probe alone (mean 0.225): (a) NO")
    # the mirror: the last probe alone below, the mean of the last 4 above
    v = verdicts(run("baseline", series=dict(mlp=[1.0] * 5 + [12.0, 12.0, 12.0, 2.0])), vs)
    expect(v, dict(m=True), "the MLP spike below only at the last probe (mean 9.5): (m) YES")
    # high before the last 4, low in them: not counted
    v = verdicts(run("baseline", series=dict(rgs=[1.5] + [9.0] * 4 + [3.0] * 4)), vs)
    expect(v, dict(b=False, m=False), "R_gs 9 before the last 4 probes, 3 in them: (b) and (m) NO")
    # (d) reads the run's final validation loss, not a mean
    losses = [7.6] + [5.0] * 7 + [3.02]
    v = verdicts(run("baseline"), run("vscale", series=dict(loss=losses)))
    expect(v, dict(d=True), "(d) reads the final validation loss (3.02 vs 3.0; 5.0 at the probes before)")
    v = verdicts(run("baseline"), run("vscale", series=dict(loss=[7.6] + [3.02] * 7 + [3.5])))
    expect(v, dict(d=False), "(d) final validation loss 3.5 vs 3.0 (3.02 before it): NO")


def test_onsets():
    # R_gs above 4 at step 0, a dip, above again from step 100 on; the spike never stays above
    rgs = [6.0, 6.0, 2.0, 3.0, 5.0, 5.0, 6.0, 7.0, 8.0]
    mlp = [1.0, 6.0, 6.0, 1.0, 7.0, 1.0, 8.0, 9.0, 2.0]
    d = run("baseline", series=dict(rgs=rgs, mlp=mlp))
    on = compare.summarize(d)["onset"]
    check(on["gradient sink"] == 100, "onset: above at step 0, a dip, above from step 100 on -> 100", repr(on))
    check(on["MLP spike"] is None, "onset: a link that never stays above to the end -> None", repr(on))
    rc, out, _ = compare_in(d, run("vscale"))
    row = lambda name: (re.search(r"^  %s >= \S+\s+(\S+)" % re.escape(name), out, re.M) or [None, None])[1]
    check(row("gradient sink") == "100" and row("MLP spike") == "never",
          "the onset table prints 100 and never", "gradient sink %r, MLP spike %r" % (row("gradient sink"), row("MLP spike")))
    check(row("sink") == "25", "the onset table: the sink from step 25 (the first probe after step 0)", repr(row("sink")))
    cut = run("sinkcut", end=dict(mlp=2.0))

    def t_of(rgs, mlp):
        return verdicts(run("baseline", series=dict(rgs=rgs, mlp=mlp)), cut)

    # (t): the gradient sink from step 50, the spike from step 100
    expect(t_of([1.5, 2, 5, 5, 6, 7, 8, 8, 8], [1, 1, 1, 1, 6, 7, 8, 9, 9]), dict(t=True),
           "(t) R_gs from step 50, the spike from step 100: YES")
    expect(t_of([1.5, 2, 2, 2, 2, 2, 5, 8, 8], [1, 1, 1, 1, 6, 7, 8, 9, 9]), dict(t=False),
           "(t) R_gs from step 150, the spike from step 100: NO")
    expect(t_of([1.5, 2, 2, 2, 6, 7, 8, 8, 8], [1, 1, 1, 1, 6, 7, 8, 9, 9]), dict(t=False),
           "(t) both from step 100: NO")
    expect(t_of([1.5, 5, 5, 5, 5, 5, 5, 8, 8], [1, 1, 1, 1, 1, 1, 1, 1, 1]), dict(t=False),
           "(t) the spike never forms: NO")
    expect(t_of([1.5, 2, 2, 2, 2, 2, 2, 2, 2], [1, 1, 6, 6, 6, 6, 6, 6, 6]), dict(t=False),
           "(t) the gradient sink never forms: NO")


def test_causal():
    # the baseline: sink 0.625, M0 10, MLP 10 (exact binary ratios at the boundaries); its gradient
    # sink from step 50, its spike from step 75 ((t))
    base = run("baseline", series=dict(rgs=[1.5, 2, 8, 8, 8, 8, 8, 8, 8], mlp=[1, 1, 1, 10, 10, 10, 10, 10, 10]))
    vs = run("vscale")
    arms = [run("sinkcut", end=dict(mlp=2.0)), run("vscale-fwd", end=dict(mlp=9.0)), vs, run("vscale-bwd", end=dict(mlp=5.0))]
    rc, out, err = compare_in(base, *arms)
    g = groups_of(out)
    check(rc == 0 and len(g) == 1, "5 arms (sinkcut, fwd, vscale, bwd after the baseline): one group", "exit %d, %d groups" % (rc, len(g)))
    header = [line for line in out.splitlines() if line.startswith("baseline: ")]
    cols = re.findall(r"([a-z-]+): ", header[0]) if header else []
    check(cols == ["baseline", "vscale", "vscale-fwd", "vscale-bwd", "sinkcut"],
          "arms read from vscale/vscale_path/sink_grad, listed in ARMS order", repr(cols))
    expect(g[0], dict(a=True, b=True, c=True, d=True, m=True, e=True, f=True, g=True, t=True),
           "5 arms, each as the paper predicts: (a)-(g), (m), (t) YES")

    def causal(arm, **end):
        return verdicts(base, vs, run(arm, end=end))

    expect(causal("sinkcut", mlp=2.0), dict(e=True), "(e) sinkcut with the sink kept (1x) and the spike at 0.2x: YES")
    expect(causal("sinkcut", sink=0.5, m0=8.0, mlp=7.0), dict(e=True), "(e) at the boundary (sink rate, M0 0.8x; MLP 0.7x): YES")
    expect(causal("sinkcut", sink=0.4, mlp=2.0), dict(e=False), "(e) sinkcut's sink rate 0.64x: NO")
    expect(causal("sinkcut", m0=7.5, mlp=2.0), dict(e=False), "(e) sinkcut's M0 0.75x: NO")
    expect(causal("sinkcut", mlp=7.5), dict(e=False), "(e) sinkcut's MLP ratio 0.75x (the sink kept): NO")
    expect(causal("vscale-bwd", mlp=5.0), dict(f=True, e=None, g=None), "(f) vscale-bwd's MLP ratio 0.5x: YES (no (e), (g) line)")
    expect(causal("vscale-bwd", mlp=7.0), dict(f=True), "(f) vscale-bwd's MLP ratio 0.7x: YES")
    expect(causal("vscale-bwd", mlp=8.0), dict(f=False), "(f) vscale-bwd's MLP ratio 0.8x: NO")
    expect(causal("vscale-fwd", mlp=9.0), dict(g=True, e=None, f=None), "(g) vscale-fwd's MLP ratio 0.9x: YES (no (e), (f) line)")
    expect(causal("vscale-fwd", mlp=3.0), dict(g=False), "(g) vscale-fwd's MLP ratio 0.3x: NO")
    expect(causal("vscale-fwd", mlp=7.0), dict(g=False), "(g) vscale-fwd's MLP ratio 0.7x (needs more): NO")


def test_grouping():
    b1, v1 = run("baseline"), run("vscale")
    b2, v2 = run("baseline"), run("vscale", end=dict(sink=0.1))  # seed 2: V-scale loses the sink
    rc, out, err = compare_in(b1, v1, b2, v2)
    g = groups_of(out)
    check(rc == 0 and len(g) == 2, "BASE VS BASE VS: two seed groups", "exit %d, %d groups" % (rc, len(g)))
    check(len(g) == 2 and g[0]["a"][0] and not g[1]["a"][0], "BASE VS BASE VS: each group judged on its own runs",
          "; ".join(x["a"][1] for x in g if "a" in x))
    over = re.findall(r"^over (\d+) seeds:$", out, re.M)
    counts = dict(re.findall(r"^(\([a-z]\)) .*holds on (\d+ of \d+)$", out, re.M))
    check(over == ["2"] and counts.get("(a)") == "1 of 2" and counts.get("(b)") == "2 of 2" and counts.get("(m)") == "2 of 2",
          "BASE VS BASE VS: 'over 2 seeds' and a count per verdict ((a) 1 of 2, (b) 2 of 2)", "%r %r" % (over, counts))
    # arms between two baselines: each group gets the arms after its baseline
    s1, w2 = run("sinkcut", end=dict(mlp=2.0)), run("vscale-bwd", end=dict(mlp=5.0))
    rc, out, err = compare_in(b1, v1, s1, b2, w2, v2)
    g = groups_of(out)
    heads = [line for line in out.splitlines() if line.startswith("baseline: ")]
    ok = (rc == 0 and len(g) == 2 and "e" in g[0] and "f" not in g[0] and "f" in g[1] and "e" not in g[1]
          and heads == ["baseline: %s  vscale: %s  sinkcut: %s" % (b1, v1, s1), "baseline: %s  vscale: %s  vscale-bwd: %s" % (b2, v2, w2)])
    check(ok, "BASE VS SINKCUT BASE BWD VS: two groups, the sinkcut in the first ((e)), the bwd in the second ((f))",
          "exit %d, heads %r" % (rc, heads))
    ok, detail = one_error(compare_cli(v1, b1))
    check(ok, "an arm before any baseline: exit 2, one line on stderr", detail)
    ok, detail = one_error(compare_cli(b1, v1, v2))
    check(ok, "two V-scale runs after one baseline: exit 2, one line on stderr", detail)
    r = compare_cli(b1)
    check(r is not None and r.returncode == 0 and "(m) " in r.stdout and "(a) " not in r.stdout,
          "a baseline alone: exit 0, (m) only", "" if r is None else "exit %d %r" % (r.returncode, r.stderr))
    rc, out, err = compare_in("--table", b1, v1, b2, v2)
    rows = re.findall(r"^\| (\d) \| ([a-z-]+) \|", out, re.M)
    check(rc == 0 and rows == [("1", "baseline"), ("1", "vscale"), ("2", "baseline"), ("2", "vscale")],
          "--table: one Markdown row per run, numbered by group", "exit %d, rows %r" % (rc, rows))


def test_robust(base, vs):
    lines = [json.dumps(p).encode() + b"\n" for p in run_probes("vscale")]
    cases = []
    d = os.path.join(TMP, "no_probes")
    os.makedirs(d)
    cases.append(("a run folder without probes.jsonl", d))
    cases.append(("a run folder that does not exist", os.path.join(TMP, "nowhere")))
    cases.append(("an empty probes.jsonl", write_run([])))
    cases.append(("a probes.jsonl of blank lines", write_run([], tail=b"\n\n  \n")))
    d = os.path.join(TMP, "fifo")
    os.makedirs(d)
    os.mkfifo(os.path.join(d, "probes.jsonl"))
    cases.append(("a FIFO named probes.jsonl (no hang)", d))
    d = os.path.join(TMP, "folder")
    os.makedirs(os.path.join(d, "probes.jsonl"))
    cases.append(("a folder named probes.jsonl", d))
    for what, bad in [("{}", b"{}\n"), ("[1]", b"[1]\n"), ("malformed JSON", b'{"step": 25, "L": 3,,}\n'),
                      ("a probe without L", b'{"step": 25}\n'), ("a probe with L 0", b'{"step": 25, "L": 0}\n'),
                      ("invalid UTF-8", b'{"step": 25, "L": 3, "x": "\xff"}\n')]:
        d = write_run([])
        with open(os.path.join(d, "probes.jsonl"), "wb") as f:
            f.write(b"".join(lines[:4]) + bad + b"".join(lines[4:]))
        cases.append(("a line that is %s in the middle" % what, d))
    for name, d in cases:
        ok, detail = one_error(compare_cli(base, d))
        check(ok, "%s: exit 2, one line 'compare.py: error:' on stderr" % name, detail)

    # a torn last line: the whole lines are read, the partial one skipped
    full = json.dumps(probe(225, "vscale", **dict(VSCALE, mlp=50.0))).encode()
    torn = write_run(run_probes("vscale"), tail=full[:len(full) // 2])
    r = compare_cli(base, torn)
    v = groups_of(r.stdout)[0] if r and r.returncode == 0 and groups_of(r.stdout) else {}
    ok = r is not None and r.returncode == 0 and not r.stderr and all(v.get(x, (0,))[0] for x in "abcdm") and "-200)" in r.stdout
    check(ok, "a torn last line (no newline): skipped, exit 0, the verdicts from the whole lines (steps to 200)",
          "" if r is None else "exit %d, stderr %r" % (r.returncode, r.stderr[-300:]))
    # a last line without a newline that parses but is no probe: gradsink cuts any such tail off, and
    # compare.py must skip it (or refuse it in one line), never a traceback
    for what, tail in [("{}", b"{}"), ("[1]", b"[1]"), ('{"step": 225, "L": 5}', b'{"step": 225, "L": 5}')]:
        d = write_run(run_probes("vscale"), tail=tail)
        r = compare_cli(base, d)
        if r is not None and r.returncode == 0:
            v = groups_of(r.stdout)[0] if groups_of(r.stdout) else {}
            ok = not r.stderr and all(v.get(x, (0,))[0] for x in "abcdm") and "-200)" in r.stdout
            detail = "exit 0 but stdout %r stderr %r" % (r.stdout[-400:], r.stderr[-300:])
        else:
            ok, detail = one_error(r)
        check(ok, "an unterminated last line %s: skipped like a torn one (or exit 2 in one line), no traceback" % what, detail)
    return torn


def test_nulls():
    def null_case(name, base_extra, vs_extra, want, vs_series=None):
        b = write_run(run_probes("baseline", extra=base_extra))
        v = write_run(run_probes("vscale", extra=vs_extra, series=vs_series))
        r = compare_cli(b, v)
        if r is None or r.returncode != 0 or "Traceback" in r.stderr or r.stderr:
            return check(False, name, "exit %s, stderr %r" % (None if r is None else r.returncode, "" if r is None else r.stderr[-400:]))
        g = groups_of(r.stdout)
        return expect(g[0] if g else {}, want, name)

    null_case('V-scale\'s "M0": null: exit 0, (a) no, the rest YES', None, {"M0": None},
              dict(a=False, b=True, c=True, d=True, m=True))
    null_case('the baseline\'s M0 [null, null, null]: exit 0, (a) no', {"M0": [None] * L}, None, dict(a=False, b=True, m=True))
    null_case('the baseline\'s "R_gs_median": null (a -t 1 run): exit 0, (b) and (m) no', {"R_gs_median": None, "R_gs": [None] * L},
              None, dict(a=True, b=False, c=True, d=True, m=False))
    null_case('V-scale\'s "R_gs_median": null: exit 0, (b) no', None, {"R_gs_median": None}, dict(b=False, m=True))
    null_case("V-scale's val_loss and probe_loss null: exit 0, (d) no", None, {"val_loss": None, "probe_loss": None},
              dict(a=True, b=True, c=True, d=False, m=True))
    null_case("the baseline's val_loss and probe_loss null: exit 0, (d) no", {"val_loss": None, "probe_loss": None}, None,
              dict(d=False))
    null_case("the baseline's ratio_r_mlp, ratio_h_out, grad_v_mean all null: exit 0, (c) and (m) no",
              {"ratio_r_mlp": [None] * L, "ratio_h_out": [None] * L, "grad_v_mean": [None] * P}, None,
              dict(a=True, b=True, c=False, m=False))
    # the keys gone altogether (another shape of the same probe): no traceback either
    null_case("the baseline's ratio_r_mlp missing, its sink_rate of the wrong length: exit 0, (a) (c) no",
              {"sink_rate": [0.6], "ratio_r_mlp": "x"}, None, dict(a=False, c=False))


def matplotlib_python():
    """the first of this python, python3, /usr/bin/python3 that has matplotlib (looked up, not imported)"""
    for py in [sys.executable, "python3", "/usr/bin/python3"]:
        try:
            r = subprocess.run([py, "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('matplotlib') is None)"],
                               capture_output=True, timeout=60)
            if r.returncode == 0:
                return py
        except (OSError, subprocess.TimeoutExpired):
            pass
    return None


def main():
    global TMP
    with tempfile.TemporaryDirectory(prefix="test_compare_") as TMP:
        plot = None
        py = matplotlib_python()
        if py:  # the slow one (matplotlib) in the background, on the other core
            base_p = run_probes("baseline")
            full = json.dumps(probe(225, **CHAIN)).encode()
            pb = write_run(base_p, tail=full[:100], name="plot_base")
            figs = os.path.join(TMP, "figs")
            plot = subprocess.Popen([py, PLOT, "--out", figs, pb], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        base = vs = None
        for name, fn in [("full chain", test_full_chain), ("absent links", lambda: test_absent_links(vs)),
                         ("step 0", lambda: test_step0(vs)), ("last 4", lambda: test_last4(vs)), ("onsets", test_onsets),
                         ("causal arms", test_causal), ("grouping", test_grouping), ("robust input", lambda: test_robust(base, vs)),
                         ("nulls", test_nulls)]:
            try:
                got = fn()
                if name == "full chain":
                    base, vs = got
            except Exception as e:  # a crash is one failed check, and the rest still run
                check(False, "%s: the checks ran to the end" % name, "%s: %s" % (type(e).__name__, e))
        if plot is None:
            print("skip dev/plot.py on a torn-line run: no matplotlib in %s, python3 or /usr/bin/python3 (not counted)" % sys.executable)
        else:
            try:
                out, err = plot.communicate(timeout=120)
                ok = plot.returncode == 0 and os.path.isfile(os.path.join(figs, "fig5_timeline.png"))
                check(ok, "dev/plot.py (%s) on a run with a torn last line: exit 0, fig5_timeline.png written" % py,
                      "exit %d: %s" % (plot.returncode, err.strip()[-400:]))
            except subprocess.TimeoutExpired:
                plot.kill()
                plot.communicate()
                check(False, "dev/plot.py on a run with a torn last line", "did not end within 120 s")
    print("%d passed, %d failed" % (Counts.passed, Counts.failed))
    return 1 if Counts.failed else 0


if __name__ == "__main__":
    sys.exit(main())
