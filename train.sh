#!/usr/bin/env bash
# train.sh — gradsink's main job: the paper's experiment on this machine.
# Trains a baseline and a V-scale model (and, with ARMS, the causal experiment's arms) with the
# same seed, data and configuration, probing them as they train, then prints a table per seed,
# one verdict per claim, and the figures.
#
#   ./train.sh                      # PRESET=text when a corpus is at hand, else PRESET=quick
#   PRESET=quick ./train.sh         # synthetic corpus made here, no file needed
#   PRESET=text DATA=book.txt ./train.sh
#   ARMS="baseline vscale vscale-fwd vscale-bwd sinkcut" ./train.sh   # the causal experiment
#   PRESET=paper ./train.sh         # paper-faithful windows, longer
#
# Settings (environment): PRESET (quick|text|paper), DATA (a text file or a folder of .txt
# documents, for text/paper), STEPS (override the preset's), SEEDS (default "1 2"), ARMS
# (default "baseline vscale"), THREADS (OpenMP threads per run, one run at a time; default:
# two runs side by side, one thread each), OUT (default runs). Every run goes to a new folder
# OUT/<preset>-<date>-<time>/seed<k>-<arm>/ and is never overwritten.
set -euo pipefail
# DATA and OUT as the caller wrote them are relative to the caller's folder
case "${DATA:-}" in "" | /*) ;; *) DATA=$PWD/$DATA ;; esac
case "${OUT:-}" in "" | /*) ;; *) OUT=$PWD/$OUT ;; esac
cd "$(dirname "$0")"
start=$SECONDS

die() { echo "train.sh: error: $*" >&2; exit 2; }

PRESET=${PRESET:-}
SEEDS=${SEEDS:-1 2}
ARMS=${ARMS:-baseline vscale}
OUT=${OUT:-runs}
if [ -n "${THREADS:-}" ]; then
    [[ "$THREADS" =~ ^[1-9][0-9]*$ ]] || die "THREADS=$THREADS is not a positive number"
fi
if [ -n "${STEPS:-}" ]; then
    [[ "$STEPS" =~ ^[0-9]+$ ]] && [ "$STEPS" -ge 1 ] || die "STEPS=$STEPS is not a positive number"
fi
[ -n "${SEEDS//[[:space:]]/}" ] || die "SEEDS is empty"
for s in $SEEDS; do [[ "$s" =~ ^[0-9]+$ ]] || die "SEEDS holds '$s', not a number"; done
[ -z "$(for s in $SEEDS; do echo $((10#$s)); done | sort | uniq -d)" ] || die "SEEDS=\"$SEEDS\" names a seed twice"
# the arms: one flag set each (arm_flags). In the causal experiment (vscale-fwd or vscale-bwd
# among the arms) every V-scale arm uses -a fixed: a learned theta gets no gradient under
# --vscale-path backward.
vmode=learned
for a in $ARMS; do
    case "$a" in baseline | vscale | sinkcut) ;; vscale-fwd | vscale-bwd) vmode=fixed ;;
        *) die "ARMS holds '$a' (known: baseline vscale vscale-fwd vscale-bwd sinkcut)" ;; esac
done
[ -z "$(printf '%s\n' $ARMS | sort | uniq -d)" ] || die "ARMS=\"$ARMS\" names an arm twice"
read -r first_arm _ <<< "$ARMS" || true
[ "${first_arm:-}" = baseline ] || die "ARMS must start with baseline (every verdict compares with it)"
command -v python3 >/dev/null || die "python3 is needed to prepare data and compare runs"
# what an interrupt or an error leaves running or half-built is stopped and removed (a data
# folder being built is data/.building-*-$$: prepare runs in a subshell, whose $$ is this one's)
declare -A running=()
run=
cleanup() {
    for pid in "${!running[@]}"; do kill "$pid" 2>/dev/null || true; done
    rm -rf data/.building-*-$$
}
trap cleanup EXIT
trap 'cleanup; echo "train.sh: interrupted${run:+; runs so far in $run}" >&2; exit 130' INT
trap 'cleanup; echo "train.sh: terminated${run:+; runs so far in $run}" >&2; exit 143' TERM

make -s gradsink || die "build failed"

# --- data. One place decides whether a prepared folder is current: data/NAME-KEY, where KEY
# hashes the documents tokenizer.py reads from the input (its own read_documents: a file, or every
# .txt of a folder), the tokenizer's flags and tokenizer.py itself. Another text of the same name,
# other flags or another tokenizer get another folder; a folder is built aside and renamed whole.
data_key() { # INPUT ARGS...: prints the key
    python3 - "$@" <<'EOF'
import hashlib, sys
import tokenizer
h = hashlib.sha256(open("tokenizer.py", "rb").read())
inp, args = sys.argv[1], sys.argv[2:]
h.update(repr(args).encode())
try:
    docs = tokenizer.read_documents(inp) if inp else []
except tokenizer.UserError as e:  # as tokenizer.py itself says it
    sys.exit("tokenizer.py: error: %s" % " ".join(str(e).splitlines()))
for name, text in docs:
    h.update(b"\0" + tokenizer.to_bytes(name) + b"\0" + tokenizer.to_bytes(text))
print(h.hexdigest()[:12])
EOF
}
prepare() { # NAME INPUT ARGS...: prints the data folder, making it when it is not there
    local name=$1 input=$2 key dir tmp
    shift 2
    key=$(data_key "$input" "$@") || return 1
    dir=data/$name-$key
    if [ ! -f "$dir/train.bin" ]; then
        tmp=data/.building-$name-$key-$$
        rm -rf "$tmp"
        if ! python3 tokenizer.py ${input:+--input "$input"} "$@" --out "$tmp" >&2; then rm -rf "$tmp"; return 1; fi
        # renamed into place whole (another train.sh may have finished the same folder first)
        python3 -c 'import os, sys; os.rename(sys.argv[1], sys.argv[2])' "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
    fi
    echo "$dir"
}
text_corpus() { # prints the data folder of the text corpus (DATA, else tinyshakespeare)
    local input name
    if [ -n "${DATA:-}" ]; then
        [ -e "$DATA" ] || die "DATA=$DATA does not exist"
        [ -f "$DATA" ] || [ -d "$DATA" ] || die "DATA=$DATA is neither a regular file nor a folder"
        input=$DATA
        name=$(basename "${DATA%/}"); name=${name%.txt}
    else
        input=data/tinyshakespeare.txt
        name=tinyshakespeare
        if [ ! -f "$input" ]; then
            python3 -c 'import sys, tokenizer; tokenizer.fetch_tinyshakespeare("data")' ||
                die "no corpus: the tinyshakespeare download failed; pass DATA=path/to/text (a file or a folder of .txt files)"
        fi
    fi
    prepare "$name" "$input" || die "tokenizer.py could not prepare $input (its message is above)"
}

if [ -z "$PRESET" ]; then
    if [ -n "${DATA:-}" ] || [ -f data/tinyshakespeare.txt ] ||
        python3 -c 'import sys, tokenizer; tokenizer.fetch_tinyshakespeare("data")' >/dev/null 2>&1; then
        PRESET=text
    else
        echo "train.sh: no corpus available offline (pass DATA=path/to/text to use one): running PRESET=quick on a synthetic corpus"
        PRESET=quick
    fi
fi

# --- presets: the settings each one trains with (dev/EXPERIMENTS.md has the evidence for them).
# Probes every 25 steps: the verdicts average the last 4, and the onsets need the timeline.
case "$PRESET" in
    quick)
        datadir=$(prepare synthetic-v1024 "" --synthetic --vocab-size 1024) || die "could not make the synthetic corpus"
        T=32 B=32; steps=${STEPS:-2000}
        flags="-L 3 -C 48 -H 4 -K 4 -F 128 -t $T -b $B -l 3e-3 -w 100 -f eot-masked -Z fixed -P 25 -v 250 -e 4"
        ;;
    text)
        datadir=$(text_corpus)
        T=32 B=64; steps=${STEPS:-3000}
        flags="-L 3 -C 64 -H 4 -K 4 -F 176 -t $T -b $B -l 5e-3 -d 0.7 -D 0.5 -E 0.1 -w 100 -f eot-masked -Z fixed -R random -P 25 -v 250 -e 4"
        ;;
    paper)
        datadir=$(text_corpus)
        T=256 B=16; steps=${STEPS:-6000}
        flags="-L 4 -C 128 -H 4 -K 4 -F 352 -t $T -b $B -l 3e-3 -w 300 -f any -P 100 -v 500 -e 4"
        ;;
    *) die "unknown PRESET=$PRESET (quick, text or paper)" ;;
esac
arm_flags() {
    case "$1" in
        baseline) echo "-a off" ;;
        vscale) echo "-a $vmode" ;;
        vscale-fwd) echo "-a fixed --vscale-path forward" ;;
        vscale-bwd) echo "-a fixed --vscale-path backward" ;;
        sinkcut) echo "-a off --sink-grad 0" ;;
    esac
}

mkdir -p "$OUT" || die "cannot create $OUT"
run=$OUT/$PRESET-$(date +%Y%m%d-%H%M%S)
until mkdir "$run" 2>/dev/null; do # mkdir is the test: two train.sh never share a folder
    [ -e "$run" ] || die "cannot create $run"
    run=$run-x
done
echo "preset $PRESET | data $datadir | steps $steps | seeds $SEEDS | arms $ARMS | runs in $run"
echo "flags: $flags"
for a in $ARMS; do echo "  $a: $(arm_flags $a)"; done
[ $vmode = fixed ] && echo "  (every V-scale arm -a fixed: under --vscale-path backward a learned theta gets no gradient)"
# the corpus against the range the text preset was checked on (dev/EXPERIMENTS.md, "Seventh search"):
# English text of 1.1-11 MB, 0.35M-2.6M training tokens at BPE 2048
read -r ntok reads < <(python3 -c 'import struct, sys
n = struct.unpack("<3i", open(sys.argv[1], "rb").read(12))[2]
print(n, round(int(sys.argv[2]) / n, 1))' "$datadir/train.bin" $((steps * T * B))) || die "cannot read $datadir/train.bin"
echo "corpus: $ntok training tokens; $steps steps of $((T * B)) tokens read it $reads times"
if [ "$PRESET" != paper ]; then
    echo "departs from the paper (README, top): ~0.1-0.4M parameters, T $T, $((steps * T * B / 1000000))M tokens (paper: 0.1B, T 1024, 10B); rows start with"
    echo "  end-of-text, whose own prediction is out of the loss and whose embedding row is frozen (with the paper's arbitrary"
    echo "  windows no sink forms at this scale: PRESET=paper, 24.6M tokens)$([ $PRESET = text ] && echo "; weight decay 0.7/0.5/0.1 (paper 0.1)")"
fi
if [ "$PRESET" = quick ]; then
    echo "expect: all five checks on seeds 1-4 (dev/EXPERIMENTS.md, \"The causal experiment\"); the arms: vscale-bwd and vscale-fwd"
    echo "        as the paper predicts on 4 of 4, sinkcut keeps under 0.8x of the sink on 4 of 4"
fi
if [ "$PRESET" = text ]; then
    echo "expect: on 3 corpora (dev/EXPERIMENTS.md, \"The causal experiment\") (c) held on 8 of 8 seed-runs; (b) and (m) on 3 of 8:"
    echo "        median R_gs starts at 5-7 (uniform attention) and often ends below that; the spike forms before the gradient sink"
fi
if [ "$PRESET" = text ] && [ "$ntok" -lt 300000 ]; then
    echo "note: fewer than 300k training tokens (about 1 MB of English): the text settings were checked on 0.35M-2.6M tokens;"
    echo "      on a smaller corpus the run reads each token $reads times and the baseline's chain may not form"
fi

# --- the runs: a queue, two at a time with one thread each (on 2 cores that is faster than one
# after the other with two threads each, and every arm sees the same machine), or one at a time
# with THREADS. A run's end is seen from its process (kill -0), its exit code from wait, so a
# run that fails or is killed ends train.sh with its log named, never a wait that spins.
slots=2
[ -n "${THREADS:-}" ] && slots=1
queue=()
for seed in $SEEDS; do for a in $ARMS; do queue+=("seed$seed-$a"); done; done
declare -A shown=()
show_probes() { # the probe lines of a run's log not shown yet, every 250 steps and the last
    local name=$1 log=$run/$1.log n
    [ -f "$log" ] || return 0
    n=$(grep -c "^probe" "$log" || true)
    if [ "$n" -gt "${shown[$name]:-0}" ]; then
        grep "^probe" "$log" | tail -n +$((${shown[$name]:-0} + 1)) |
            awk -v s="$steps" -v tag="[$name]" '{ if ($3 % 250 == 0 || $3 == s) print tag, $0 }'
        shown[$name]=$n
    fi
}
next=0
while [ $next -lt ${#queue[@]} ] || [ ${#running[@]} -gt 0 ]; do
    while [ ${#running[@]} -lt $slots ] && [ $next -lt ${#queue[@]} ]; do
        name=${queue[$next]}; next=$((next + 1))
        seed=${name%%-*}; seed=${seed#seed}; arm=${name#*-}
        # shellcheck disable=SC2046,SC2086
        OMP_NUM_THREADS=${THREADS:-1} ./gradsink -i "$datadir/train.bin" -j "$datadir/val.bin" $flags -n "$steps" \
            -s "$seed" $(arm_flags "$arm") -G 0 -o "$run/$name" > "$run/$name.log" 2>&1 &
        running[$!]=$name
    done
    sleep 1
    for pid in "${!running[@]}"; do
        name=${running[$pid]}
        kill -0 "$pid" 2>/dev/null && continue
        rc=0; wait "$pid" || rc=$?
        unset "running[$pid]"
        show_probes "$name"
        if [ $rc != 0 ]; then
            tail -n 3 "$run/$name.log" >&2
            die "training $name failed (exit $rc); see $run/$name.log"
        fi
    done
    for pid in "${!running[@]}"; do show_probes "${running[$pid]}"; done
done
trap - EXIT

dirs=()
for seed in $SEEDS; do for a in $ARMS; do dirs+=("$run/seed$seed-$a"); done; done
python3 dev/compare.py "${dirs[@]}" | tee "$run/compare.txt" || die "dev/compare.py could not read the runs"
# figures where some python3 here has matplotlib (dev/plot.py says so and skips otherwise)
plotpy=python3
for py in python3 /usr/bin/python3; do
    if command -v $py >/dev/null && $py -c "import matplotlib" 2>/dev/null; then plotpy=$py; break; fi
done
first=()
read -r first_seed _ <<< "$SEEDS" || true
for a in $ARMS; do first+=("$run/seed$first_seed-$a"); done
$plotpy dev/plot.py --out "$run/figures" "${first[@]}" || true
echo "total wall time: $((SECONDS - start)) s ($run)"
