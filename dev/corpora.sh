#!/usr/bin/env bash
# dev/corpora.sh OUT — rebuild the development and held-out corpora of dev/EXPERIMENTS.md
# (issue "the mechanism on any corpus") from Debian packages, into OUT (outside the repository).
# Needs: apt-get install fortunes dict-gcide dict-jargon perl-doc python3.11-doc linux-doc-6.1
#        debian-handbook postgresql-doc-15 git-doc dict-foldoc bible-kjv guile-3.0-doc dict-wn
#        manpages-dev r-base-core r-cran-janeaustenr vim-doc vim-runtime emacs-common
#        debian-reference-en debian-policy developers-reference ada-reference-manual-2012 apache2-doc
#        sqlite3-doc octave-doc diatheke sword-comm-tdavid r-doc-html abs-guide crawl-common gimp-help-en maxima-doc freeciv-data
#        sword-text-web nodejs-doc, and
#        SHAKESPEARE=path/to/tinyshakespeare.txt for the default corpus,
#        SOTU=path/to/sotu for the shuffled SOTU corpus. Each corpus is a file or a folder of .txt
# documents, as train.sh's DATA takes them.
set -euo pipefail
out=${1:?usage: dev/corpora.sh OUT}
mkdir -p "$out"
# --- development set (settings are chosen on these)
# dev-shakespeare: one 1.1 MB file of plays (what train.sh downloads by default)
[ -n "${SHAKESPEARE:-}" ] && cp "$SHAKESPEARE" "$out/dev-shakespeare.txt"
# dev-sotu-shuffled: the 233 SOTU addresses, file names prefixed by a hash so the sorted order is not chronological
if [ -n "${SOTU:-}" ]; then
    mkdir -p "$out/dev-sotu-shuffled"
    for f in "$SOTU"/*.txt; do
        b=$(basename "$f"); h=$(printf %s "$b" | md5sum | cut -c1-8)
        cp "$f" "$out/dev-sotu-shuffled/${h}_$b"
    done
fi
# dev-perlpod: Perl's manual pages in POD (technical documentation), one document a page
mkdir -p "$out/dev-perlpod"
for f in /usr/share/perl/5.*/pod/*.pod; do cp "$f" "$out/dev-perlpod/$(basename "$f" .pod).txt"; done
# dev-jargon: the Jargon File (a glossary, 1.4 MB, one file)
zcat /usr/share/dictd/jargon.dict.dz > "$out/dev-jargon.txt"
# --- held-out set (looked at only after the settings were chosen)
# held-fortunes: the fortune cookie files (quotes, jokes), one document a file
mkdir -p "$out/held-fortunes"
for f in /usr/share/games/fortunes/*; do
    case "$f" in *.dat|*.u8) continue ;; esac
    [ -f "$f" ] && cp "$f" "$out/held-fortunes/$(basename "$f").txt"
done
# held-linuxdoc: the Linux kernel's admin guide and filesystem docs (reStructuredText), one document a file
mkdir -p "$out/held-linuxdoc"
for d in admin-guide filesystems; do
    find "/usr/share/doc/linux-doc-6.1/Documentation/$d" -name '*.rst.gz' | sort | while read -r f; do
        n=$(echo "${f#/usr/share/doc/linux-doc-6.1/Documentation/}" | tr / _); zcat "$f" > "$out/held-linuxdoc/${n%.rst.gz}.txt"
    done
done
# held-gcide: the first 4 MB of the Collaborative International Dictionary of English (one file)
{ zcat /usr/share/dictd/gcide.dict.dz || true; } | head -c 4000000 > "$out/held-gcide.txt"  # zcat ends on SIGPIPE
# strip_html OUT FILES...: HTML pages to text in OUT (made when missing), tags and scripts removed, one document a page
strip_html() {
    python3 - "$@" <<'PY'
import html, os, re, sys
os.makedirs(sys.argv[1], exist_ok=True)
for f in sys.argv[2:]:
    t = open(f, encoding="utf-8", errors="replace").read()
    t = re.sub(r"(?s)<(script|style|head).*?</\1>", "", t)
    t = html.unescape(re.sub(r"<[^>]+>", "", t))
    t = re.sub(r"\n\s*\n+", "\n\n", t).strip()
    open(os.path.join(sys.argv[1], os.path.basename(f)[:-5] + ".txt"), "w").write(t + "\n")
PY
}
# held-pydoc: Python's library reference, HTML with the tags stripped, one document a page
strip_html "$out/held-pydoc" /usr/share/doc/python3.11/html/library/*.html
# --- second held-out set (tokenized and looked at only after the settings of the second search were fixed)
# held2-handbook: the Debian Administrator's Handbook (English), a book in 20-odd HTML chapters
strip_html "$out/held2-handbook" /usr/share/doc/debian-handbook/html/en-US/*.html
# held2-pgdoc: PostgreSQL 15's manual, one document an HTML page
strip_html "$out/held2-pgdoc" /usr/share/doc/postgresql-doc-15/html/*.html
# held2-gitdoc: git's documentation in AsciiDoc text, one document a file
mkdir -p "$out/held2-gitdoc"
for f in /usr/share/doc/git-doc/*.txt; do cp "$f" "$out/held2-gitdoc/"; done
# held2-foldoc: the Free On-line Dictionary of Computing (one file)
zcat /usr/share/dictd/foldoc.dict.dz > "$out/held2-foldoc.txt"
# --- third held-out set (tokenized and looked at only after the settings of the third search were fixed)
# held3-kjv: the King James Bible (prose), one document a book, one verse a line, a blank line between chapters
mkdir -p "$out/held3-kjv"
bible -f 'gen1:1-rev22:21' | awk -v d="$out/held3-kjv" '{
    match($0, /^[1-3]?[A-Za-z]+/); b = substr($0, 1, RLENGTH); r = substr($0, RLENGTH + 1)
    c = r; sub(/:.*/, "", c); sub(/^[0-9]+:[0-9]+ /, "", r)
    if (b != pb) { if (f) close(f); n++; f = sprintf("%s/%02d-%s.txt", d, n, b); pb = b; pc = c }
    else if (c != pc) { print "" > f; pc = c }
    print r > f }'
# held3-guile: the Guile 3.0 reference manual (a GNU manual in Info), one document an Info file, control characters removed
mkdir -p "$out/held3-guile"
for f in /usr/share/info/guile-3.0/guile.info-*.gz; do
    zcat "$f" | tr -d '\000\010\037\177' > "$out/held3-guile/$(basename "$f" .gz).txt"
done
# held3-wordnet: the first 4 MB of WordNet 3.0 (a dictionary), cut before the last entry that does not fit (one file)
{ zcat /usr/share/dictd/wn.dict.dz || true; } | head -c 4000000 | python3 -c '
import re, sys
t = sys.stdin.buffer.read(); sys.stdout.buffer.write(t[:list(re.finditer(rb"\n(?=[^ \n])", t))[-1].start() + 1])
' > "$out/held3-wordnet.txt"
# held3-man2: the Linux system-call manual pages (manpages-dev, section 2) rendered to ASCII by man, one document a page
mkdir -p "$out/held3-man2"
for f in /usr/share/man/man2/*.2.gz; do
    [ -L "$f" ] && continue  # aliases of other pages
    LC_ALL=C MANWIDTH=80 man -l "$f" 2>/dev/null | col -bx > "$out/held3-man2/$(basename "$f" .gz).txt"
done
# --- fourth held-out set (tokenized and looked at only after the settings of the fifth search were fixed)
# Jane Austen's six novels (r-cran-janeaustenr, read with Rscript), one document a novel:
# the first three are a development corpus (dev-austen1), the last three held out (held4-austen2)
austen() { # austen DIR BOOK...
    local d=$1; shift; mkdir -p "$d"
    Rscript -e 'library(janeaustenr); a <- commandArgs(TRUE); b <- austen_books()
        for (i in seq(2, length(a))) writeLines(as.character(b$text[b$book == a[i]]), file.path(a[1], paste0(gsub("[^A-Za-z]", "", a[i]), ".txt")))' \
        "$d" "$@"
}
austen "$out/dev-austen1" "Sense & Sensibility" "Pride & Prejudice" "Mansfield Park"
austen "$out/held4-austen2" "Emma" "Northanger Abbey" "Persuasion"
# held4-vimdoc: Vim's help files (vim-doc, vim-runtime), one document a file
mkdir -p "$out/held4-vimdoc"
cp /usr/share/vim/vim90/doc/*.txt "$out/held4-vimdoc/"
# held4-emacsnews: the NEWS files of Emacs (emacs-common), release notes from 1.x to 28, one document a file
mkdir -p "$out/held4-emacsnews"
for f in /usr/share/emacs/*/etc/*NEWS*; do
    case "$f" in *.gz) zcat "$f" ;; *) cat "$f" ;; esac > "$out/held4-emacsnews/$(basename "$f" .gz).txt"
done
# held4-debref: the Debian Reference (debian-reference-en, HTML), the Policy manual (debian-policy)
# and the Developer's Reference (developers-reference), one document a chapter or manual
strip_html "$out/held4-debref" /usr/share/debian-reference/*.en.html
zcat /usr/share/doc/debian-policy/policy.txt.gz > "$out/held4-debref/policy.txt"
zcat /usr/share/doc/developers-reference/docs/developers-reference.txt.gz > "$out/held4-debref/developers-reference.txt"
# --- fifth held-out set (built before the sixth search, tokenized and looked at only after its settings were fixed)
# held5-ada: the Ada 2012 Reference Manual (a language standard), plain text, one document a clause file
mkdir -p "$out/held5-ada"
for f in /usr/share/doc/ada-reference-manual-2012/arm2012.txt/*.TXT; do cp "$f" "$out/held5-ada/$(basename "$f" .TXT).txt"; done
# held5-apache: the Apache HTTP Server manual (English pages), HTML with the tags stripped, one document a page
# (copied first under names that keep their folder, since strip_html names a page by its file name)
mkdir -p "$out/held5-apache.src"
find /usr/share/doc/apache2-doc/manual/en -name '*.html' | sort | while read -r f; do
    n=$(echo "${f#/usr/share/doc/apache2-doc/manual/en/}" | tr / _); cp "$f" "$out/held5-apache.src/$n"
done
strip_html "$out/held5-apache" "$out"/held5-apache.src/*.html && rm -r "$out/held5-apache.src"
# held5-sqlite: SQLite's documentation, one document an HTML page
strip_html "$out/held5-sqlite" /usr/share/doc/sqlite3/*.html
# held5-octave: the first 300 pages of GNU Octave's manual (mathematics and numerics), one document a page
strip_html "$out/held5-octave" $(ls /usr/share/doc/octave/octave.html/*.html | head -300)
# --- sixth held-out set (built for a later confirmation run, tokenized and looked at only after the settings it confirms were fixed)
# held6-spurgeon: Psalms 1-100 of C. H. Spurgeon's Treasury of David (sword-comm-tdavid, a 19th-century commentary in prose),
# read with diatheke as XHTML, the tags and the verse keys stripped, one document a psalm
mkdir -p "$out/held6-spurgeon.src"
for i in $(seq 1 100); do
    diatheke -b TDavid -f XHTML -k "Psalms $i" > "$out/held6-spurgeon.src/$(printf 'psalm%03d' "$i").html"
done
strip_html "$out/held6-spurgeon" "$out"/held6-spurgeon.src/*.html && rm -r "$out/held6-spurgeon.src"
sed -i -E '/^Psalms [0-9]+:[0-9]+: *$/d; s/^Psalms [0-9]+:[0-9]+: //; /^\(TDavid\)$/d' "$out"/held6-spurgeon/*.txt
# held6-rman: R's manuals (r-doc-html: the introduction, the language definition, Writing R Extensions, the FAQ, ...),
# HTML with the tags stripped, one document a manual
strip_html "$out/held6-rman" /usr/share/R/doc/manual/*.html
# held6-absguide: the Advanced Bash-Scripting Guide (abs-guide, a tutorial book full of example scripts),
# HTML with the tags stripped, one document a page
strip_html "$out/held6-absguide" /usr/share/doc/abs-guide/html/*.html
# held6-crawl: the texts of the game Dungeon Crawl Stone Soup (crawl-common): its in-game descriptions, quotes, monster
# speech and names (the English files), its manual and its changelog, one document a file
mkdir -p "$out/held6-crawl"
for f in /usr/share/crawl/dat/descript/*.txt /usr/share/crawl/dat/database/*.txt; do
    cp "$f" "$out/held6-crawl/$(basename "$(dirname "$f")")_$(basename "$f")"
done
cp /usr/share/crawl/docs/crawl_manual.txt /usr/share/crawl/docs/changelog.txt "$out/held6-crawl/"
# --- seventh held-out set (tokenized and looked at only after the quick preset of the eighth search was fixed)
# held7-web: the World English Bible (sword-text-web, a modern translation in prose), one document a book,
# one verse a line, the verse keys stripped
mkdir -p "$out/held7-web"
for b in Genesis Exodus Leviticus Numbers Deuteronomy Joshua Judges Ruth "I Samuel" "II Samuel" "I Kings" "II Kings" \
    "I Chronicles" "II Chronicles" Ezra Nehemiah Esther Job Psalms Proverbs Ecclesiastes "Song of Solomon" Isaiah Jeremiah \
    Lamentations Ezekiel Daniel Hosea Joel Amos Obadiah Jonah Micah Nahum Habakkuk Zephaniah Haggai Zechariah Malachi \
    Matthew Mark Luke John Acts Romans "I Corinthians" "II Corinthians" Galatians Ephesians Philippians Colossians \
    "I Thessalonians" "II Thessalonians" "I Timothy" "II Timothy" Titus Philemon Hebrews James "I Peter" "II Peter" \
    "I John" "II John" "III John" Jude Revelation; do
    diatheke -b engWEB2015eb -f plain -k "$b" 2>/dev/null | sed -E 's/^[1-3I]*[A-Za-z ]+ [0-9]+:[0-9]+: //; /^\(engWEB2015eb\)$/d' \
        > "$out/held7-web/${b// /_}.txt"
done
# held7-gimp: the GIMP user manual (gimp-help-en), HTML with the tags stripped, one document a page
strip_html "$out/held7-gimp" /usr/share/gimp/2.0/help/en/*.html
# held7-maxima: the Maxima manual (maxima-doc; computer algebra), HTML with the tags stripped, one document a page
strip_html "$out/held7-maxima" /usr/share/doc/maxima-doc/html/*.html
# held7-freeciv: the game data of Freeciv (freeciv-data): the nations' files (legends, leaders, city names), the help
# texts and the civ2civ3 rules, files of `key = "value"` lines, one document a file
mkdir -p "$out/held7-freeciv"
for f in /usr/share/games/freeciv/nation/*.ruleset /usr/share/games/freeciv/civ2civ3/*.ruleset; do
    cp "$f" "$out/held7-freeciv/$(basename "$(dirname "$f")")_$(basename "$f" .ruleset).txt"
done
cp /usr/share/games/freeciv/helpdata.txt "$out/held7-freeciv/"
# --- eighth held-out set (built for the causal experiment, after its arms and verdicts were fixed)
# held8-nodejs: the Node.js API documentation (nodejs-doc), Markdown, one document a module
mkdir -p "$out/held8-nodejs"
for f in /usr/share/doc/nodejs/api/*.md.gz; do
    b=$(basename "$f" .md.gz); [ "$b" = all ] && continue # all.md repeats every module
    zcat "$f" > "$out/held8-nodejs/$b.txt"
done
du -sh "$out"/*
