"""What the dev/test_*.py suites share: one OK/FAIL line per check and the closing count
(each suite prints `N passed, M failed` from Counts, the line make test adds up). Standard library only."""


class Counts:
    passed = failed = 0


def check(ok, name, detail="", detail_on_ok=False):
    """prints OK or FAIL and the check's name (its detail on failure, or always); returns ok"""
    if ok:
        Counts.passed += 1
    else:
        Counts.failed += 1
    show = detail and (detail_on_ok or not ok)
    print("%s %s%s" % ("OK  " if ok else "FAIL", name, ": " + detail if show else ""), flush=True)
    return ok

