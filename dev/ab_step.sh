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
git -C "$root" show "$rev:gradsink.c" > "$tmp/a.c"
cp "$root/gradsink.c" "$tmp/b.c"
flags="$(make -s --no-print-directory -C "$root" print-flags) -w" # the Makefile's release flags
for side in a b; do
  ${CC:-gcc} $flags -DAB_SIDE=$side "-DAB_FILE=\"$tmp/$side.c\"" -c "$root/dev/ab_step.c" -o "$tmp/$side.o"
  objcopy --keep-global-symbol=${side}_setup --keep-global-symbol=${side}_step "$tmp/$side.o"
done
${CC:-gcc} $flags -o "$tmp/ab_step" "$root/dev/ab_step.c" "$tmp/a.o" "$tmp/b.o" -lm
"$tmp/ab_step" "${args[@]}"
