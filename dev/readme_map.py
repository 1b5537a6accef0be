#!/usr/bin/env python3
"""Checks the README's reading map against the code, so its line ranges cannot rot.

The map writes a function as `NAME` (FILE:A-B), e.g. `rmsnorm_backward` (gradsink.c:120-145).
For every such reference this checks that FILE defines NAME and that its definition runs from
line A (the line with the name) to line B (the closing brace). `--fix` rewrites the ranges in
README.md from the code. Prints an OK/FAIL line per reference and ends with "N passed, M failed".
Standard library only.
"""
import re
import sys

REF = re.compile(r"`(\w+)` \((\w+\.c):(\d+)-(\d+)\)")


def definitions(path):
    """name -> (first line, last line) of each top-level function or struct/enum in a C file"""
    with open(path) as f:
        lines = f.read().split("\n")
    found = {}
    for i, line in enumerate(lines):
        # a definition starts at column 0 and is not a declaration or a call
        m = re.match(r"^(?:static |inline )*[A-Za-z_][\w \*]*?\b(\w+)\(", line)
        t = re.match(r"^typedef struct \{|^(?:typedef )?(?:struct|enum) (\w+)? ?\{", line)
        if m and not line.rstrip().endswith(";"):
            name = m.group(1)
        elif t:
            name = None  # a typedef is named on its closing line: } Name;
        else:
            continue
        for j in range(i, len(lines)):
            if lines[j].startswith("}"):
                if name is None:
                    tm = re.match(r"^\}\s*(\w+)\s*;", lines[j])
                    name = tm.group(1) if tm else None
                if name and name not in found:
                    found[name] = (i + 1, j + 1)
                break
    return found


def main(argv):
    fix = "--fix" in argv
    with open("README.md") as f:
        text = f.read()
    defs = {}
    passed = failed = 0

    def check(m):
        nonlocal passed, failed
        name, path, a, b = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
        if path not in defs:
            defs[path] = definitions(path)
        where = defs[path].get(name)
        if where is None:
            print("FAIL %s is not defined in %s" % (name, path))
            failed += 1
            return m.group(0)
        if fix:
            a, b = where
        ok = (a, b) == where
        print("%s %s at %s:%d-%d%s" % ("OK  " if ok else "FAIL", name, path, a, b,
                                        "" if ok else " (the code has %d-%d)" % where))
        passed += ok
        failed += not ok
        return "`%s` (%s:%d-%d)" % (name, path, a, b)

    new = REF.sub(check, text)
    if passed + failed == 0:
        print("FAIL the README has no reading-map references")
        failed += 1
    if fix and new != text:
        with open("README.md", "w") as f:
            f.write(new)
        print("README.md: line ranges rewritten")
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
