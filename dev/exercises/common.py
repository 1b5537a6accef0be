"""Shared helpers of the classroom exercises (dev/exercises/README.md). Standard library only.

Every exercise script makes its own synthetic data and runs in a fresh directory (deleted at the
end unless --keep DIR), runs ./gradsink on one thread (so its numbers do not depend on the
machine's thread count), prints each command it ran, then prints OK/FAIL lines and a last line
"exercise N: PASS" or "exercise N: FAIL" (exit status 0 or 1).

Options every exercise takes:
  --answer X   the student's answer (exercises that ask for a number); without it the script
               uses the solution's value ("solution form")
  --selftest   solution form plus a check that the exercise's check rejects a wrong answer
               (what `make exercises` runs, so no check can rot into one that always passes)
  --seed S     model seed (default 1): the checks are meant to hold for any seed
  --keep DIR   keep the runs (probes.jsonl, log.txt) in DIR to look at them afterwards
"""
import argparse
import json
import math
import os
import shlex
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GRADSINK = os.path.join(ROOT, "gradsink")
# the classroom model: 2 layers, width 32, 2 heads of size 16, 64 positions
TINY = ["-L", "2", "-C", "32", "-H", "2", "-K", "2", "-F", "64", "-t", "64"]
QUIET = ["-G", "0", "-e", "1", "-v", "0"]  # no sampling, one validation batch, at the end only


class Exercise:
    def __init__(self, number, title, answer_help=None):
        self.number = number
        ap = argparse.ArgumentParser(description="exercise %d: %s" % (number, title))
        if answer_help:
            ap.add_argument("--answer", help=answer_help)
        ap.add_argument("--selftest", action="store_true", help="also check that a wrong answer is rejected")
        ap.add_argument("--seed", type=int, default=1, help="model seed [1]")
        ap.add_argument("--keep", metavar="DIR", help="keep the runs in DIR")
        self.args = ap.parse_args()
        self.answer = getattr(self.args, "answer", None)
        if self.args.keep:
            self.dir = os.path.abspath(self.args.keep)
            os.makedirs(self.dir, exist_ok=True)
        else:
            self.dir = tempfile.mkdtemp(prefix="gradsink_ex%d_" % number)
        self.passed = self.failed = 0
        print("exercise %d: %s" % (number, title))

    def data(self, num_tokens=200000):
        """the synthetic corpus (vocab 64, copy-after-trigger), made once per directory"""
        out = os.path.join(self.dir, "data")
        if not os.path.exists(os.path.join(out, "val.bin")):
            self.sh([sys.executable, os.path.join(ROOT, "tokenizer.py"), "--synthetic", "--out", out,
                     "--num-tokens", str(num_tokens)])
        return ["-i", os.path.join(out, "train.bin"), "-j", os.path.join(out, "val.bin")]

    def sh(self, cmd, env=None, show=True):
        """run a command (printed first); its output is returned, shown only when it fails"""
        if show:
            print("  $ " + show_cmd(cmd))
        r = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
        if r.returncode != 0:
            print(r.stdout)
            self.fail_now("command failed with status %d" % r.returncode)
        return r.stdout

    def gradsink(self, name, *flags):
        """train/probe a run in DIR/name with the classroom model; returns its probes, oldest first"""
        out = os.path.join(self.dir, name)
        if os.path.exists(os.path.join(out, "probes.jsonl")):
            os.remove(os.path.join(out, "probes.jsonl"))  # probes.jsonl appends: start afresh
        env = dict(os.environ, OMP_NUM_THREADS="1")
        cmd = [GRADSINK] + self.data() + ["-o", out] + TINY + QUIET + ["-s", str(self.args.seed)] + list(flags)
        print("  $ OMP_NUM_THREADS=1 " + show_cmd(cmd))
        self.sh(cmd, env=env, show=False)
        with open(os.path.join(out, "probes.jsonl")) as f:
            return [json.loads(line) for line in f]

    def check(self, ok, msg):
        print("%s %s" % ("OK  " if ok else "FAIL", msg))
        if ok:
            self.passed += 1
        else:
            self.failed += 1
        return ok

    def fail_now(self, msg):
        self.check(False, msg)
        self.finish()

    def finish(self):
        if not self.args.keep:
            shutil.rmtree(self.dir, ignore_errors=True)
        ok = self.failed == 0 and self.passed > 0
        print("exercise %d: %s" % (self.number, "PASS" if ok else "FAIL"))
        sys.exit(0 if ok else 1)


def show_cmd(cmd):
    """a command as a student would type it in the repository root"""
    words = []
    for c in cmd:
        if c == sys.executable:
            c = "python3"
        elif c.startswith(ROOT + os.sep):
            c = os.path.relpath(c, ROOT)
            c = c if os.sep in c else "./" + c if c in ("gradsink", "test_gradsink_double") else c
        words.append(shlex.quote(c))
    return " ".join(words)


def answer_number(text):
    """a number the student typed: 4.74, 9/8, 1e-3 (None if it is not one)"""
    try:
        if "/" in text:
            a, b = text.split("/", 1)
            return float(a) / float(b)
        return float(text)
    except (TypeError, ValueError, ZeroDivisionError):
        return None


def harmonic(n):
    return sum(1.0 / k for k in range(1, n + 1))


def mean(xs):
    xs = list(xs)
    return sum(xs) / len(xs)


def fit_line(xs, ys):
    """least squares y = a + b x: returns (b, a, correlation)"""
    mx, my = mean(xs), mean(ys)
    sxx = sum((x - mx) ** 2 for x in xs)
    syy = sum((y - my) ** 2 for y in ys)
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    b = sxy / sxx
    return b, my - b * mx, sxy / math.sqrt(sxx * syy)


def fmt(xs, f="%.3f"):
    return "[" + ", ".join(f % x for x in xs) + "]"
