#!/usr/bin/env python3
"""Exercise 1: derive RMSNorm's backward, delete ours, write yours.

The student replaces the body of rmsnorm_backward in gradsink.c by their own derivation; the
finite-difference checks that go through it judge it: the RMSNorm layer check, the RMSNorm
Jacobian bound (Theorem 2), and the whole model's gradient on every tensor (double build).
--selftest (make exercises): also builds a copy of gradsink.c whose rmsnorm_backward does
nothing and checks that the same checks fail on it.
"""
import os
import re
import subprocess
import sys

from common import ROOT, Exercise

ONLY = "rmsnorm|model (H "  # the checks' descriptions start so (GRADSINK_TEST_ONLY, test_gradsink.c)


def run_checks(ex, binary, prefix="    "):
    """the selected checks of a test binary: (number OK, number FAIL, names of the OK ones)"""
    env = dict(os.environ, GRADSINK_TEST_ONLY=ONLY, OMP_NUM_THREADS="1")
    shown = "./" + os.path.basename(binary) if os.path.dirname(binary) == ROOT else binary
    print("  $ GRADSINK_TEST_ONLY='%s' %s" % (ONLY, shown))
    r = subprocess.run([binary], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    ok = [l for l in r.stdout.splitlines() if l.startswith("OK")]
    bad = [l for l in r.stdout.splitlines() if l.startswith("FAIL")]
    for l in r.stdout.splitlines():
        if l.startswith(("OK", "FAIL")):
            print(prefix + l)  # indented: the test's own summary line stays out of make test's sum
    crashed = r.returncode not in (0, 1)
    return len(ok), len(bad) + crashed, ok


def emptied(src):
    """gradsink.c with the body of rmsnorm_backward removed (a wrong backward: no gradient)"""
    m = re.search(r"^void rmsnorm_backward\([^)]*\)\s*\{", src, re.M)
    if not m:
        return None
    depth, i = 1, m.end()
    while depth and i < len(src):
        depth += {"{": 1, "}": -1}.get(src[i], 0)
        i += 1
    return src[:m.end()] + "\n    (void)dinp; (void)dgain; (void)dout; (void)inp; (void)gain; (void)rstd; (void)N; (void)C;\n}" + src[i:]


ex = Exercise(1, "RMSNorm's backward against finite differences")
n_ok, n_bad, names = run_checks(ex, os.path.join(ROOT, "test_gradsink_double"))
have = lambda word: any(word in l for l in names)
ex.check(n_bad == 0 and have("rmsnorm backward") and have("RMSNorm Jacobian") and have("model (H "),
         "your rmsnorm_backward: %d checks OK, %d failed (layer, Jacobian bound, whole model)" % (n_ok, n_bad))
if ex.args.selftest:
    with open(os.path.join(ROOT, "gradsink.c")) as f:
        src = emptied(f.read())
    if ex.check(src is not None, "found rmsnorm_backward in gradsink.c"):
        for name in ("gradsink.c", "test_gradsink.c"):
            with open(os.path.join(ROOT, name)) as f:
                text = f.read()
            with open(os.path.join(ex.dir, name), "w") as f:
                f.write(src if name == "gradsink.c" else text)
        binary = os.path.join(ex.dir, "test_emptied")
        ex.sh([os.environ.get("CC", "gcc"), "-O1", "-DGRADSINK_DOUBLE", "-o", binary,
               os.path.join(ex.dir, "test_gradsink.c"), "-lm"])
        e_ok, e_bad, _ = run_checks(ex, binary, prefix="    (wanted) ")
        ex.check(e_bad >= 2, "selftest: an empty rmsnorm_backward fails %d of these checks" % e_bad)
ex.finish()
