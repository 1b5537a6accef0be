#!/usr/bin/env python3
"""Checks the README's reading map against the code, so that it cannot rot.

A row of the map names one or more functions as `NAME` (FILE:A-B), e.g.
`rmsnorm_backward` (gradsink.c:120-145), and has a `find` column holding a piece of text in
backticks (an identifier, a line of code or a formula of a comment). For every row this checks
  - that FILE defines each NAME on exactly lines A (the line with the name) to B (the closing
    brace), and
  - that the `find` text appears within the lines of one of the row's functions, as the code
    has them: a row that sends the reader to the wrong function fails even when its range is right.
`--fix` rewrites the ranges in README.md from the code (never the `find` texts). `--self-test`
feeds the checker doctored maps (a wrong range, a row sent to the wrong function, a find text
that is nowhere) and checks that each one fails. Prints an OK/FAIL line per check and ends with
"N passed, M failed". Standard library only.
"""
import re
import sys

REF = re.compile(r"`(\w+)` \((\w+\.c):(\d+)-(\d+)\)")
CELL = re.compile(r"(?<!\\)\|")  # a column separator (a \| inside a cell is text)
FIND_COLUMN = 3  # | paper | where | find | what to look at |


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


def check_map(text, fix=False, out=print):
    """checks every reading-map row of a README text; returns (passed, failed, fixed text)"""
    defs, sources = {}, {}
    passed = failed = 0

    def load(path):
        if path not in defs:
            defs[path] = definitions(path)
            with open(path) as f:
                sources[path] = f.read().split("\n")

    new_lines = []
    for line in text.split("\n"):
        refs = list(REF.finditer(line))
        if not refs:
            new_lines.append(line)
            continue
        row_refs = []  # (name, path, first, last) as the code has them

        def check_ref(m):
            nonlocal passed, failed
            name, path, a, b = m.group(1), m.group(2), int(m.group(3)), int(m.group(4))
            load(path)
            where = defs[path].get(name)
            if where is None:
                out("FAIL %s is not defined in %s" % (name, path))
                failed += 1
                return m.group(0)
            row_refs.append((name, path) + where)
            if fix:
                a, b = where
            ok = (a, b) == where
            out("%s %s at %s:%d-%d%s" % ("OK  " if ok else "FAIL", name, path, a, b,
                                         "" if ok else " (the code has %d-%d)" % where))
            passed += ok
            failed += not ok
            return "`%s` (%s:%d-%d)" % (name, path, a, b)

        line = REF.sub(check_ref, line)
        new_lines.append(line)
        cells = CELL.split(line)
        if len(cells) <= FIND_COLUMN + 1 or not row_refs:
            continue  # a reference outside the map's table: its range is checked, nothing more
        fm = re.fullmatch(r"\s*`(.+)`\s*", cells[FIND_COLUMN])
        if not fm:
            out("FAIL the row of %s has no `find` text" % row_refs[0][0])
            failed += 1
            continue
        find = fm.group(1).replace("\\|", "|")
        hit = next((r for r in row_refs
                    if any(find in s for s in sources[r[1]][r[2] - 1:r[3]])), None)
        names = ", ".join(r[0] for r in row_refs)
        if hit:
            out("OK   '%s' is in %s (%s:%d-%d)" % (find, hit[0], hit[1], hit[2], hit[3]))
            passed += 1
        else:
            out("FAIL '%s' is not within %s" % (find, names))
            failed += 1
    if passed + failed == 0:
        out("FAIL the README has no reading-map references")
        failed += 1
    return passed, failed, "\n".join(new_lines)


def self_test(text):
    """doctored maps must fail; returns (passed, failed)"""
    passed = failed = 0
    quiet = lambda *a: None
    rows = [l for l in text.split("\n") if "`dv[off + i] += a[j] * dy[i]`" in l]
    if not rows:
        print("FAIL self-test: the map has no value-path row to doctor")
        return 0, 1
    row = rows[0]
    p, f, _ = check_map(text, out=quiet)
    defs = definitions("gradsink.c")
    fa, fb = defs["attention_forward_naive"]
    doctored = {
        # the row's function replaced by another, with that one's right range
        "the value-path row sent to attention_forward_naive":
            re.sub(r"`attention_backward_naive` \(gradsink\.c:\d+-\d+\)",
                   "`attention_forward_naive` (gradsink.c:%d-%d)" % (fa, fb), row),
        # the range moved off by one line
        "the value-path row's range shifted by one line":
            REF.sub(lambda m: "`%s` (%s:%d-%d)" % (m.group(1), m.group(2), int(m.group(3)) + 1,
                                                    int(m.group(4)) + 1), row, count=1),
        # a find text that the code does not have
        "the value-path row finding text that is not there":
            row.replace("`dv[off + i] += a[j] * dy[i]`", "`dv[off + i] += a[j] * q[i]`"),
        # no find text at all
        "the value-path row without a find text":
            row.replace("`dv[off + i] += a[j] * dy[i]`", "the value path"),
    }
    ok = f == 0
    print("%s self-test: the README's own map passes (%d checks)" % ("OK  " if ok else "FAIL", p + f))
    passed += ok
    failed += not ok
    for what, bad_row in doctored.items():
        _, f2, _ = check_map(text.replace(row, bad_row), out=quiet)
        ok = bad_row != row and f2 > f
        print("%s self-test: %s fails the check" % ("OK  " if ok else "FAIL", what))
        passed += ok
        failed += not ok
    return passed, failed


def main(argv):
    readme = "README.md"
    if "--readme" in argv:
        readme = argv[argv.index("--readme") + 1]
    with open(readme) as f:
        text = f.read()
    if "--self-test" in argv:
        passed, failed = self_test(text)
    else:
        fix = "--fix" in argv
        passed, failed, new = check_map(text, fix)
        if fix and new != text:
            with open(readme, "w") as f:
                f.write(new)
            print("%s: line ranges rewritten" % readme)
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
