#!/usr/bin/env bash
# dev/ab_step.sh REV [L C H F V B T STEPS]: the training step of gradsink.c at git revision REV
# ("a") against the working tree's ("b"), alternating in one process (see dev/ab_step.c).
# Default shape: the bench's default model, 20 step pairs. Example, the text preset's model:
#   dev/ab_step.sh HEAD~1 3 64 4 176 2048 16 64 40
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: dev/ab_step.sh REV [L C H F V B T STEPS]" >&2; exit 1; }
rev=$1; shift
args=("$@"); [ ${#args[@]} -gt 0 ] || args=(4 128 4 352 2048 16 128 20)
root=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# each side's gradsink.c, and its dev/bench.c where the version has one (bench_step lives there
# since the benchmark left gradsink.c; older versions have it in gradsink.c)
mkdir -p "$tmp/a/dev" "$tmp/b/dev"
git -C "$root" show "$rev:gradsink.c" > "$tmp/a/gradsink.c"
git -C "$root" show "$rev:dev/bench.c" > "$tmp/a/dev/bench.c" 2>/dev/null || rm -f "$tmp/a/dev/bench.c"
cp "$root/gradsink.c" "$tmp/b/gradsink.c"
cp "$root/dev/bench.c" "$tmp/b/dev/bench.c"
flags="$(make -s --no-print-directory -C "$root" print-flags) -w" # the Makefile's release flags
for side in a b; do
  src="$tmp/$side/gradsink.c"; [ -f "$tmp/$side/dev/bench.c" ] && src="$tmp/$side/dev/bench.c"
  ${CC:-gcc} $flags -DAB_SIDE=$side "-DAB_FILE=\"$src\"" -c "$root/dev/ab_step.c" -o "$tmp/$side.o"
  objcopy --keep-global-symbol=${side}_setup --keep-global-symbol=${side}_step "$tmp/$side.o"
done
${CC:-gcc} $flags -o "$tmp/ab_step" "$root/dev/ab_step.c" "$tmp/a.o" "$tmp/b.o" -lm
"$tmp/ab_step" "${args[@]}"
