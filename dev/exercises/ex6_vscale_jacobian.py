#!/usr/bin/env python3
"""Exercise 6: V-scale's Jacobian, its eigenvalues, and the 9/8 maximum at r = 3c.

v_hat = phi(r) v with r = ||v||^2, phi = r/(r+c). Differentiate: J = phi I + 2c/(r+c)^2 v v^T.
Orthogonal to v the eigenvalue is phi = r/(r+c) (< 1: gradients shrink); along v it is
(r^2 + 3cr)/(r+c)^2. Find its largest value over r and the r/c where it is reached.
The check runs the V-scale Jacobian tests of test_gradsink.c (double build), which apply J
through vscale_backward over a sweep of r, and compares your two numbers with what they found:
ANSWER=EIG,R_OVER_C (e.g. 1.1,2), each within 1e-3. Solution form: 9/8 at r/c = 3.
"""
import os
import re
import subprocess

from common import ROOT, Exercise, answer_number

ONLY = "V-scale Jacobian|V-scale c ="
ex = Exercise(6, "V-scale's Jacobian: eigenvalues, and the maximum 9/8 at r = 3c",
              answer_help="EIG,R_OVER_C: the largest eigenvalue along v and the r/c where it is reached")
print("  $ GRADSINK_TEST_ONLY='%s' ./test_gradsink_double" % ONLY)
r = subprocess.run([os.path.join(ROOT, "test_gradsink_double")], cwd=ROOT, stdout=subprocess.PIPE,
                   stderr=subprocess.STDOUT, universal_newlines=True,
                   env=dict(os.environ, GRADSINK_TEST_ONLY=ONLY, OMP_NUM_THREADS="1"))
lines = [l for l in r.stdout.splitlines() if l.startswith(("OK", "FAIL"))]
for l in lines:
    print("    " + l)
ex.check(len(lines) == 3 and all(l.startswith("OK") for l in lines),
         "the 3 V-scale checks of test_gradsink.c pass (c, eigenvalues, maximum)")
m = re.search(r"largest eigenvalue is 9/8 = ([0-9.]+), at r = 3c \(found at r/c = ([0-9.]+)\)", r.stdout)
if not m:
    ex.fail_now("could not read the measured maximum from the test's output")
eig, at = float(m.group(1)), float(m.group(2))
print("measured through vscale_backward: largest eigenvalue along v %.6f at r/c = %.3f" % (eig, at))


def judge(text):
    parts = (text or "").split(",")
    if len(parts) != 2 or None in [answer_number(x) for x in parts]:
        return None
    e, a = (answer_number(x) for x in parts)
    return abs(e - eig) <= 1e-3 and abs(a - at) <= 1e-3


if ex.answer is not None:
    ok = judge(ex.answer)
    if ok is None:
        ex.fail_now("ANSWER=%r: write EIG,R_OVER_C, e.g. ANSWER=1.1,2" % ex.answer)
    ex.check(ok, "your answer %s matches (each within 1e-3)" % ex.answer)
else:
    ex.check(judge("9/8,3"), "the solution 9/8 at r/c = 3 matches")
if ex.args.selftest:
    ex.check(judge("1,3") is False and judge("9/8,1") is False, "selftest: 1 at r/c = 3 and 9/8 at r/c = 1 are rejected")
ex.finish()
