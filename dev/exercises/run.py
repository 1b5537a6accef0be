#!/usr/bin/env python3
"""The exercises' driver.

  python3 dev/exercises/run.py            run every exercise in its solution form with --selftest
                                          (make exercises; make test runs it), EXERCISE_JOBS at a
                                          time (default 2), then one line "N passed, M failed"
                                          counting exercises
  python3 dev/exercises/run.py N [ARGS]   run exercise N with ARGS (make exercise-N ANSWER=... KEEP=...)
"""
import concurrent.futures
import glob
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def scripts():
    found = {}
    for path in glob.glob(os.path.join(HERE, "ex*_*.py")):
        n = os.path.basename(path)[2:].split("_", 1)[0]
        if n.isdigit():
            found[int(n)] = path
    return found


def main():
    found = scripts()
    if len(sys.argv) > 1:
        n = sys.argv[1]
        if not n.isdigit() or int(n) not in found:
            print("run.py: no exercise %r (there are %s)" % (n, ", ".join(str(k) for k in sorted(found))), file=sys.stderr)
            return 2
        return subprocess.call([sys.executable, found[int(n)]] + sys.argv[2:])
    # two at a time (each exercise runs gradsink on one thread); outputs are printed in order
    jobs = int(os.environ.get("EXERCISE_JOBS", "2"))
    t_all = time.time()

    def run(n):
        t0 = time.time()
        r = subprocess.run([sys.executable, found[n], "--selftest"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           universal_newlines=True)
        return r.returncode, r.stdout, time.time() - t0

    passed = failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = [(n, pool.submit(run, n)) for n in sorted(found)]
        for n, f in futures:
            rc, out, seconds = f.result()
            sys.stdout.write(out)
            print("     (exercise %d took %.1f s)" % (n, seconds))
            sys.stdout.flush()
            if rc == 0:
                passed += 1
            else:
                failed += 1
    print("exercises: %d of %d pass in their solution form (%.1f s)" % (passed, passed + failed, time.time() - t_all))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
