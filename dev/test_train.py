#!/usr/bin/env python3
"""Tests of train.sh: nothing hangs, nothing goes stale (standard library only).

usage: python3 dev/test_train.py        (from anywhere; builds ./gradsink with make when it is missing or stale)

train.sh cds into its own folder and writes data/ and runs/ there, so every test runs a copy of it
in a temporary folder: train.sh, tokenizer.py, Makefile, gradsink.c, the built gradsink (copied
with their times, so `make -s gradsink` there finds it up to date), dev/compare.py and dev/plot.py.
Where the figures are not checked, dev/plot.py is a stub that exits 0 (train.sh carries on
without figures either way; matplotlib takes seconds a run). Every run has OMP_NUM_THREADS=1, a
timeout, and its own session, killed whole if it outlives the timeout. The corpora are generated
here (English-like text, ~200 KB: BPE in about a second). One OK/FAIL line per check, then
`N passed, M failed`; exit 1 on any failure. The checks:
  - a run that fails (a corpus smaller than one batch) ends train.sh with exit 2 and the failing
    run's log named, at once; a run killed from outside (kill -9) ends it with "failed", and the
    other run is stopped;
  - data: two texts of the same name get two data folders, a changed text a third, the same
    text again reuses its folder (no tokenizer run); a single-arm ARMS="baseline" works;
  - refusals in one `train.sh: error:` line, exit 2, before any run folder: bad STEPS, SEEDS (a
    seed twice too), THREADS, ARMS, PRESET; DATA missing, empty, a folder without .txt, a FIFO (no
    hang); a relative DATA is the caller's; two train.sh in the same second get two run folders;
  - PRESET=quick, 30 steps: three arms (baseline vscale sinkcut) give compare.txt with the arms
    and the verdicts (a)-(e), (m), (t), and the figures when matplotlib is at hand; the default
    arms give (a)-(d), (m) and nothing of the causal experiment.
"""
import glob
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FILES = ["train.sh", "tokenizer.py", "Makefile", "gradsink.c", "gradsink", "dev/compare.py", "dev/plot.py"]
SETTINGS = ["PRESET", "DATA", "STEPS", "SEEDS", "ARMS", "THREADS", "OUT"]
from testing import Counts  # noqa: E402
from testing import check as _check  # noqa: E402


def check(ok, name, detail=""):
    return _check(ok, name, detail, detail_on_ok=False)


def tail(s, n=600):
    return s if len(s) <= n else "..." + s[-n:]


# --- processes ----------------------------------------------------------------------------------

def procs():
    """{pid: (ppid, session id, comm)} of every process now"""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
        except OSError:
            continue
        comm = s[s.index("(") + 1:s.rindex(")")]
        fields = s[s.rindex(")") + 2:].split()
        if fields[0] != "Z":  # a zombie has ended
            out[int(d)] = (int(fields[1]), int(fields[3]), comm)
    return out


def kill_session(sid):
    """SIGKILL every process left in the session of a train.sh this test started; their pids"""
    left = [pid for pid, (_, s, _) in procs().items() if s == sid]
    for pid in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    return left


def env_of(settings):
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env["OMP_NUM_THREADS"] = "1"
    env.update(settings)
    return env


class Result:
    def __init__(self, rc, out, err, secs, left):
        self.rc, self.out, self.err, self.secs, self.left = rc, out, err, secs, left

    def __repr__(self):
        return "exit %s after %.1f s; stdout %r; stderr %r" % (self.rc, self.secs, tail(self.out, 300), tail(self.err))


def train(folder, settings, timeout=120, cwd=None, script=None):
    """bash train.sh in folder (or script from cwd) with these settings: a Result; rc None on a timeout.
    Whatever is still running in its session afterwards is killed and listed in .left"""
    t0 = time.time()
    p = subprocess.Popen(["bash", script or "train.sh"], cwd=cwd or folder, env=env_of(settings), stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = p.communicate(timeout=timeout)
        rc = p.returncode
    except subprocess.TimeoutExpired:
        kill_session(p.pid)
        out, err = p.communicate()
        rc = None
    secs = time.time() - t0
    time.sleep(0.2)
    return Result(rc, out, err, secs, kill_session(p.pid))


def run_folder(folder, r):
    m = re.search(r"\| runs in (\S+)$", r.out, re.M)
    return os.path.join(folder, m.group(1)) if m else None


def data_folder(r):
    m = re.search(r"^preset \S+ \| data (\S+) \|", r.out, re.M)
    return m.group(1) if m else None


# --- the copies and the corpora -------------------------------------------------------------------

def ensure_built():
    gs = os.path.join(ROOT, "gradsink")
    if os.access(gs, os.X_OK) and subprocess.run(["make", "-q", "gradsink"], cwd=ROOT, capture_output=True).returncode == 0:
        return True
    r = subprocess.run(["make", "-s", "gradsink"], cwd=ROOT, capture_output=True, text=True, timeout=600)
    return check(r.returncode == 0, "make -s gradsink in %s" % ROOT, tail(r.stderr))


STUB = "import sys\nprint('dev/plot.py: a stub of dev/test_train.py, no figures')\nsys.exit(0)\n"


def copy_repo(dest, plot=True):
    os.makedirs(os.path.join(dest, "dev"))
    for f in FILES:
        shutil.copy2(os.path.join(ROOT, f), os.path.join(dest, f))
    if not plot:
        stub_plot(dest)
    return dest


def stub_plot(dest):
    with open(os.path.join(dest, "dev", "plot.py"), "w") as f:
        f.write(STUB)


def english(seed, size):
    """English-like text of about size bytes: sentences of common words and made-up ones"""
    rng = random.Random(seed)
    cons, vow = "bcdfghjklmnprstvwz", "aeiou"
    words = ["".join(rng.choice(cons) + rng.choice(vow) for _ in range(rng.randint(1, 3))) for _ in range(3000)]
    common = "the a of and to in is was he she it that for on with as his her they at by".split()
    out, n = [], 0
    while n < size:
        s = " ".join(rng.choice(common) if rng.random() < 0.4 else rng.choice(words) for _ in range(rng.randint(4, 14)))
        line = s.capitalize() + rng.choice(".!?.")
        out.append(line)
        n += len(line) + 1
        if rng.random() < 0.1:
            out.append("")
    return "\n".join(out) + "\n"


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)
    return path


# --- the checks ---------------------------------------------------------------------------------

def test_data(T, x, y, tmp):
    """two texts named corpus.txt, a changed one, the same one again; ARMS=baseline alone"""
    base = dict(PRESET="text", STEPS="2", SEEDS="1", ARMS="baseline")
    original = open(x).read()
    seen = []

    def prepare(name, data, new):
        r = train(T, dict(base, DATA=data))
        d = data_folder(r)
        wrote = "wrote data/.building-" in r.err
        ok = r.rc == 0 and d is not None and os.path.isfile(os.path.join(T, d, "train.bin")) and wrote == new
        ok = ok and re.match(r"data/corpus-[0-9a-f]+$", d or "") is not None
        check(ok, "%s: exit 0, data folder %s, %s" % (name, d, "the tokenizer ran" if new else "reused (no tokenizer run)"), repr(r))
        seen.append(d)
        return r, d

    r, k1 = prepare("x/corpus.txt", x, True)
    run = run_folder(T, r)
    cmp_txt = open(os.path.join(run, "compare.txt")).read() if run and os.path.isfile(os.path.join(run, "compare.txt")) else ""
    check(r.rc == 0 and "(m) baseline shows the mechanism" in cmp_txt and "(a) " not in cmp_txt and "vscale" not in cmp_txt.split("\n")[1],
          'ARMS="baseline" alone: exit 0, compare.txt with (m) and no V-scale verdict', repr(r) + " compare.txt %r" % tail(cmp_txt))
    _, k2 = prepare("y/corpus.txt, another text of the same name", y, True)
    check(k2 not in (None, k1), "two texts of the same name: two data folders", "%s %s" % (k1, k2))
    write(x, original.replace("the", "teh", 50))
    _, k3 = prepare("x/corpus.txt changed", x, True)
    check(k3 not in (None, k1, k2), "x/corpus.txt changed: a third data folder", "%s %s %s" % (k1, k2, k3))
    _, k4 = prepare("x/corpus.txt again", x, False)
    check(k4 == k3, "the same text again: its folder reused", "%s then %s" % (k3, k4))
    write(x, original)  # the first content back, with a new time
    _, k5 = prepare("x/corpus.txt back to its first text", x, False)
    check(k5 == k1, "the first text back (a newer file): the first folder reused (the key is the content)", "%s then %s" % (k1, k5))
    names = sorted(os.listdir(os.path.join(T, "data")))
    corpora = [n for n in names if n.startswith("corpus-")]
    check(len(corpora) == 3 and not [n for n in names if n.startswith(".building")],
          "data/ holds three corpus folders and nothing half-built", repr(names))


def test_refusals(T, x, tmp):
    base = dict(PRESET="text", DATA=x, STEPS="2", SEEDS="1", ARMS="baseline")
    empty = write(os.path.join(tmp, "empty", "corpus.txt"), "")
    notxt = os.path.join(tmp, "notxt")
    write(os.path.join(notxt, "readme.md"), "no .txt here\n")
    tiny = write(os.path.join(tmp, "tiny", "corpus.txt"), "A cat.\n")
    fifo = os.path.join(tmp, "fifo.txt")
    os.mkfifo(fifo)
    fifodir = os.path.join(tmp, "fifodir")
    os.makedirs(fifodir)
    os.mkfifo(os.path.join(fifodir, "a.txt"))
    # (settings, what train.sh's line must say, tokenizer.py's line expected before it)
    cases = [
        (dict(STEPS="0"), "STEPS=0", None), (dict(STEPS="abc"), "STEPS=abc", None), (dict(STEPS="-3"), "STEPS=-3", None),
        (dict(SEEDS="1 x"), "'x'", None), (dict(SEEDS=" "), "SEEDS is empty", None),
        (dict(SEEDS="1 1"), "1", None),
        (dict(THREADS="0"), "THREADS=0", None), (dict(THREADS="two"), "THREADS=two", None),
        (dict(ARMS="baseline bogus"), "'bogus'", None), (dict(ARMS="vscale baseline"), "must start with baseline", None),
        (dict(ARMS="baseline vscale vscale"), "twice", None), (dict(PRESET="bogus"), "PRESET=bogus", None),
        (dict(DATA="/nonexistent/corpus.txt", PRESET=None), "does not exist", None),
        (dict(DATA=empty), "could not prepare", "corpus is empty"),
        (dict(DATA=notxt), "could not prepare", "no .txt files"),
        (dict(DATA=tiny), "could not prepare", "val.bin would hold"),
        (dict(DATA=fifo), "neither a regular file nor a folder", None),
        (dict(DATA=fifodir), "could not prepare", "not a regular file"),
    ]
    for i, (over, says, tok) in enumerate(cases):
        settings = dict(base, OUT=os.path.join(tmp, "refused%d" % i))
        settings.update(over)
        settings = {k: v for k, v in settings.items() if v is not None}
        r = train(T, settings, timeout=60)
        lines = r.err.splitlines()
        mine = [line for line in lines if line.startswith("train.sh: error:")]
        problems = []
        if r.rc != 2:
            problems.append("exit %s" % r.rc)
        if len(mine) != 1 or says not in mine[0]:
            problems.append("train.sh's error line (want one, saying %r)" % says)
        if tok is None and len(lines) != 1:
            problems.append("%d lines on stderr, not 1" % len(lines))
        if tok is not None and not any(line.startswith("tokenizer.py: error:") and tok in line for line in lines):
            problems.append("no tokenizer.py: error: line saying %r" % tok)
        if "download" in r.err or "Traceback" in r.err:
            problems.append("a download or a traceback mentioned")
        if os.path.exists(settings["OUT"]):
            problems.append("a run folder was made")
        if r.left:
            problems.append("processes left: %r" % r.left)
        shown = " ".join("%s=%r" % kv for kv in over.items() if kv[1] is not None and kv[0] != "DATA") or \
            "DATA=" + {empty: "an empty file", notxt: "a folder without .txt", tiny: "'A cat.' (too small to split)", fifo: "a FIFO", fifodir: "a folder whose a.txt is a FIFO"}.get(over["DATA"], over["DATA"])
        check(not problems, "refused: %s -> exit 2, one 'train.sh: error:' line%s" % (shown, " after tokenizer.py's" if tok else ""),
              "; ".join(problems) + " | " + repr(r))


def test_relative_data(T, tmp):
    """DATA relative to the folder train.sh is started from (train.sh cds into its own)"""
    r = train(T, dict(PRESET="text", DATA=os.path.join("x", "corpus.txt"), STEPS="2", SEEDS="1", ARMS="baseline",
                      OUT=os.path.join(tmp, "relative")), cwd=tmp, script=os.path.join(T, "train.sh"))
    check(r.rc == 0, "DATA=x/corpus.txt relative to the caller's folder (train.sh started from there by its path): found, exit 0",
          repr(r))


def test_same_second(T, x, tmp):
    """two train.sh started in the same second, with the same OUT: two run folders. A fixed `date` and a
    `mkdir` that takes a second (first on PATH) hold both between choosing the folder's name and making it"""
    bin_dir = os.path.join(tmp, "slowbin")
    write(os.path.join(bin_dir, "date"), "#!/bin/sh\necho 20260101-000000\n")
    write(os.path.join(bin_dir, "mkdir"), "#!/bin/sh\nsleep 1\nexec %s \"$@\"\n" % shutil.which("mkdir"))
    for f in ("date", "mkdir"):
        os.chmod(os.path.join(bin_dir, f), 0o755)
    settings = dict(PRESET="text", DATA=x, STEPS="2", SEEDS="1", ARMS="baseline", OUT=os.path.join(tmp, "same"),
                    PATH=bin_dir + os.pathsep + os.environ.get("PATH", ""))
    ps = [subprocess.Popen(["bash", "train.sh"], cwd=T, env=env_of(settings), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, start_new_session=True) for _ in range(2)]
    outs = []
    for p in ps:
        try:
            out, err = p.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            kill_session(p.pid)
            out, err = p.communicate()
        kill_session(p.pid)
        outs.append((p.returncode, run_folder(T, Result(0, out, err, 0, []))))
    folders = sorted(os.listdir(settings["OUT"])) if os.path.isdir(settings["OUT"]) else []
    check(all(rc == 0 for rc, _ in outs) and outs[0][1] != outs[1][1] and len(folders) == 2,
          "two train.sh in the same second, one OUT: two run folders, neither run written over",
          "exits and run folders %r; OUT holds %r" % (outs, folders))


def test_failing_run(T, tmp):
    small = write(os.path.join(tmp, "small", "s.txt"), ("A cat.\n" * 400)[:2048])
    r = train(T, dict(PRESET="text", DATA=small, STEPS="20", SEEDS="1"), timeout=60)
    m = re.search(r"^train\.sh: error: training (seed1-\S+) failed \(exit (\d+)\); see (\S+\.log)$", r.err, re.M)
    log = os.path.join(T, m.group(3)) if m else ""
    logtext = open(log).read() if log and os.path.isfile(log) else ""
    ok = r.rc == 2 and m is not None and "fewer than one batch" in logtext and r.err.rstrip().endswith(m.group(0) if m else "?")
    check(ok, "a run that fails (1054 tokens, less than a batch of 64 x 32): exit 2 within 60 s, its log named as the last line",
          repr(r))
    check(r.rc is not None and not r.left, "... and nothing of it left running", repr(r.left))


def test_killed_run(T, y):
    p = subprocess.Popen(["bash", "train.sh"], cwd=T, env=env_of(dict(PRESET="text", DATA=y, STEPS="5000", SEEDS="1")),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        victim, deadline = None, time.time() + 60
        while victim is None and time.time() < deadline and p.poll() is None:
            kids = sorted(pid for pid, (pp, _, comm) in procs().items() if pp == p.pid and comm == "gradsink")
            if len(kids) == 2:
                victim, other = kids
            else:
                time.sleep(0.1)
        if not check(victim is not None, "train.sh started two gradsink runs (to kill one)", "exit %s" % p.poll()):
            return
        time.sleep(0.5)
        os.kill(victim, signal.SIGKILL)
        t0 = time.time()
        try:
            out, err = p.communicate(timeout=30)
            rc, secs = p.returncode, time.time() - t0
        except subprocess.TimeoutExpired:
            rc, secs, err = None, time.time() - t0, ""
        ok = rc is not None and rc != 0 and re.search(r"^train\.sh: error: training seed1-\S+ failed \(exit 137\); see \S+\.log$", err, re.M)
        check(bool(ok), "kill -9 of a gradsink run: train.sh ends with 'failed' (exit 137 named), non-zero, within 30 s",
              "exit %s after %.1f s, stderr %r" % (rc, secs, tail(err)))
        time.sleep(0.5)
        check(other not in procs(), "... and the other run is stopped", "pid %d still running" % other)
    finally:
        if p.poll() is None:
            kill_session(p.pid)
            p.communicate()
        kill_session(p.pid)


def test_quick(Q):
    r = train(Q, dict(PRESET="quick", STEPS="30", SEEDS="1", ARMS="baseline vscale sinkcut"), timeout=300)
    run = run_folder(Q, r)
    cmp_path = os.path.join(run, "compare.txt") if run else ""
    txt = open(cmp_path).read() if cmp_path and os.path.isfile(cmp_path) else ""
    rel = os.path.relpath(run, Q) if run else "?"
    head = "baseline: %s/seed1-baseline  vscale: %s/seed1-vscale  sinkcut: %s/seed1-sinkcut" % (rel, rel, rel)
    lines = {m for m in re.findall(r"^\(([a-z])\) ", txt, re.M)}
    check(r.rc == 0 and "total wall time" in r.out, "PRESET=quick STEPS=30 ARMS=\"baseline vscale sinkcut\": exit 0", repr(r))
    check(head in txt.splitlines(), "compare.txt lists the three arms", "want %r in %r" % (head, tail(txt, 300)))
    check(lines == set("abcdemt"), "compare.txt has the verdicts (a) (b) (c) (d) (m) (e) (t), no (f) (g)", repr(sorted(lines)))
    check(all(os.path.isfile(os.path.join(run or "", "seed1-%s" % a, "probes.jsonl")) for a in ("baseline", "vscale", "sinkcut")),
          "each arm's probes.jsonl is in the run folder", repr(run))
    mpl = any(subprocess.run([py, "-c", "import importlib.util, sys; sys.exit(importlib.util.find_spec('matplotlib') is None)"],
                             capture_output=True).returncode == 0 for py in ("python3", "/usr/bin/python3") if shutil.which(py))
    if mpl:
        check(os.path.isfile(os.path.join(run or "", "figures", "fig5_timeline.png")), "figures written (matplotlib at hand)",
              repr(r))
    else:
        print("skip the figures: no matplotlib in python3 or /usr/bin/python3 (not counted)")
    stub_plot(Q)  # the figures once are enough
    r = train(Q, dict(PRESET="quick", STEPS="30", SEEDS="1"), timeout=300)
    run = run_folder(Q, r)
    txt = open(os.path.join(run, "compare.txt")).read() if run and os.path.isfile(os.path.join(run, "compare.txt")) else ""
    lines = {m for m in re.findall(r"^\(([a-z])\) ", txt, re.M)}
    check(r.rc == 0 and "wrote data/.building" not in r.err, "PRESET=quick, ARMS unset: exit 0, the synthetic corpus reused", repr(r))
    check(lines == set("abcdm"), "default arms (baseline vscale): (a) (b) (c) (d) (m), no (e) (f) (g) (t)", repr(sorted(lines)))


def test_interrupt_while_building(T, tmp, sig, code):
    """an interrupt (SIGINT, Ctrl-C) or a SIGTERM to the process group while tokenizer.py builds a
    data folder leaves no half-built data/.building-* behind"""
    big = write(os.path.join(tmp, "big%d" % sig, "corpus.txt"), english(3 + sig, 3000000))
    building = os.path.join(T, "data", ".building-*")
    p = subprocess.Popen(["bash", "train.sh"], cwd=T, env=env_of(dict(PRESET="text", DATA=big, STEPS="2", SEEDS="1")),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.time() + 60
        while not glob.glob(building) and time.time() < deadline and p.poll() is None:
            time.sleep(0.05)
        if not check(bool(glob.glob(building)), "train.sh started building a data folder (to interrupt it)", "exit %s" % p.poll()):
            return
        os.killpg(p.pid, sig)
        try:
            p.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        left = glob.glob(building)
        check(p.returncode == code and not left, "%s while tokenizing: train.sh exits %d and removes the half-built folder"
              % (signal.Signals(sig).name, code),
              "exit %s, left %r" % (p.returncode, left))
    finally:
        if p.poll() is None:
            kill_session(p.pid)
            p.communicate()
        kill_session(p.pid)


def main():
    if not ensure_built():
        print("%d passed, %d failed" % (Counts.passed, Counts.failed))
        return 1
    t_start = time.time()
    with tempfile.TemporaryDirectory(prefix="test_train_") as tmp:
        T = copy_repo(os.path.join(tmp, "text"), plot=False)
        x = write(os.path.join(tmp, "x", "corpus.txt"), english(1, 200000))
        y = write(os.path.join(tmp, "y", "corpus.txt"), english(2, 200000))
        for name, fn in [("failing run", lambda: test_failing_run(T, tmp)), ("data", lambda: test_data(T, x, y, tmp)),
                         ("refusals", lambda: test_refusals(T, x, tmp)), ("relative DATA", lambda: test_relative_data(T, tmp)),
                         ("same second", lambda: test_same_second(T, x, tmp)),
                         ("killed run", lambda: test_killed_run(T, y)),
                         ("SIGINT while building", lambda: test_interrupt_while_building(T, tmp, signal.SIGINT, 130)),
                         ("SIGTERM while building", lambda: test_interrupt_while_building(T, tmp, signal.SIGTERM, 143)),
                         ("quick runs", lambda: test_quick(copy_repo(os.path.join(tmp, "quick"))))]:
            try:
                fn()
            except Exception as e:  # a crash is one failed check, and the rest still run
                check(False, "%s: the checks ran to the end" % name, "%s: %s" % (type(e).__name__, e))
    print("(%.0f s)" % (time.time() - t_start))
    print("%d passed, %d failed" % (Counts.passed, Counts.failed))
    return 1 if Counts.failed else 0


if __name__ == "__main__":
    sys.exit(main())
