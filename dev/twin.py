#!/usr/bin/env python3
"""twin.py: gradsink's model, training and probe in PyTorch, for GPUs and for many of them.

The same model as gradsink.c (pre-norm Llama-like blocks, RMSNorm, rotate-half RoPE, GQA,
SwiGLU, untied head, V-scale off/fixed/learned, --vscale-path, --sink-grad, -f any|eot|eot-masked,
-Z fixed), the same training (AdamW with gradsink's per-group decay, clipping, warmup + cosine,
the same batches in the same order), the same probe (the same keys in probes.jsonl, from the same
fixed batch, by the same definitions) and the same files (log.txt, probes.jsonl, model.bin,
model.bin.opt: a checkpoint moves between gradsink and the twin in both directions).

Its command line is gradsink's: a gradsink command replays with `python3 dev/twin.py` (or
`torchrun --nproc_per_node N dev/twin.py`) in front of the same flags. Flags of its own have long
names gradsink does not use: --device, --dtype, --micro-batch, --probe-micro, --threads,
--attention, --preset, --batch-tokens. `python3 dev/twin.py -h` lists them all. dev/SCALE.md
says how to run it on one GPU and on a node, and what the paper's recipe costs.

PyTorch only (no numpy). Errors in the input: one line on stderr, exit 2; a NaN: exit 3.
"""
import contextlib
import math
import mmap
import os
import stat
import struct
import sys
import time

PROG = "twin"
RANK = int(os.environ.get("RANK", "0"))
WORLD = int(os.environ.get("WORLD_SIZE", "1"))


def die(msg, code=2):
    """one-line error and exit 2 (every user mistake ends here); only rank 0 speaks"""
    if RANK == 0:
        sys.stderr.write("%s: error: %s\n" % (PROG, msg))
        sys.stderr.flush()
    sys.stdout.flush()
    os._exit(code) if WORLD > 1 else sys.exit(code)


def say(msg=""):
    if RANK == 0:
        print(msg, flush=True)


# ----------------------------------------------------------------------------
# the command line: gradsink's table (same letters, long names, defaults), then the twin's own

VSCALE_NAMES = ["off", "fixed", "learned"]
PATH_NAMES = ["both", "forward", "backward"]
FIRST_NAMES = ["any", "eot", "eot-masked"]
ROWS_NAMES = ["stream", "random"]
EOTROW_NAMES = ["learned", "fixed"]
OFF, FIXED, LEARNED = 0, 1, 2
P_BOTH, P_FORWARD, P_BACKWARD = 0, 1, 2
F_ANY, F_EOT, F_EOT_MASKED = 0, 1, 2
IGNORE = -1

# (short, long, type, dest, default, names, help); types: i int, f float, s string, e one of names, b switch
FLAGS = [
    ("-i", "--train", "s", "train_path", "data/train.bin", None, "training tokens (llm.c .bin format)"),
    ("-j", "--val", "s", "val_path", "data/val.bin", None, "validation tokens; '' for none"),
    ("-z", "--tokenizer", "s", "tokenizer_path", "", None, "tokenizer.bin (default: beside the train file)"),
    ("-o", "--out", "s", "out_dir", "out", None, "output directory (log, checkpoints)"),
    ("-b", "--batch", "i", "B", 16, None, "batch size B (rows per optimizer step, all ranks together)"),
    ("-t", "--seq-len", "i", "T", 128, None, "sequence length T"),
    ("-L", "--layers", "i", "n_layer", 4, None, "number of layers"),
    ("-C", "--width", "i", "d_model", 128, None, "model width d_model"),
    ("-H", "--heads", "i", "n_head", 4, None, "query heads"),
    ("-K", "--kv-heads", "i", "n_kv_head", 0, None, "key/value heads (0: same as heads)"),
    ("-F", "--ffn", "i", "ffn_hidden", 352, None, "SwiGLU hidden size"),
    ("-V", "--vocab", "i", "vocab_size", 0, None, "vocab size (0: from the tokenizer file)"),
    ("-n", "--steps", "i", "steps", 1000, None, "training steps"),
    ("-w", "--warmup", "i", "warmup", 50, None, "linear warmup steps"),
    ("-l", "--lr", "f", "lr", 3e-3, None, "max learning rate"),
    ("-m", "--min-lr", "f", "min_lr", -1.0, None, "min learning rate (<0: max/10)"),
    ("-d", "--weight-decay", "f", "weight_decay", 0.1, None, "AdamW weight decay (matrices only)"),
    ("-D", "--mlp-decay", "f", "mlp_weight_decay", -1.0, None, "weight decay of the MLP's matrices (<0: as --weight-decay)"),
    ("-E", "--embed-decay", "f", "embed_weight_decay", -1.0, None, "weight decay of the token embedding (<0: as --weight-decay)"),
    ("-g", "--grad-clip", "f", "grad_clip", 1.0, None, "global grad-norm clip (0: none)"),
    ("-s", "--seed", "i", "seed", 1337, None, "seed of the initialisation"),
    ("-a", "--vscale", "e", "vscale", OFF, VSCALE_NAMES, "V-scale: off, fixed, learned"),
    ("-A", "--vscale-lambda", "f", "vscale_lambda", 1.0, None, "V-scale's starting lambda (fixed: its value throughout)"),
    ("-J", "--vscale-path", "e", "vscale_path", P_BOTH, PATH_NAMES, "V-scale in: both passes, forward only, backward only"),
    ("-N", "--sink-grad", "f", "sink_grad", 1.0, None, "multiply the gradient reaching position 0's values by G in every layer"),
    ("-f", "--first-token", "e", "first_token", F_ANY, FIRST_NAMES, "first input of each row: any, eot, eot-masked"),
    ("-R", "--rows", "e", "rows", 0, ROWS_NAMES, "training rows: stream (consecutive windows), random (random offsets)"),
    ("-Z", "--eot-row", "e", "eot_row", 0, EOTROW_NAMES, "end-of-text row of the embedding: learned, fixed"),
    ("-v", "--val-every", "i", "val_every", 100, None, "validate every N steps (0: only at the end)"),
    ("-e", "--val-batches", "i", "val_batches", 8, None, "validation batches"),
    ("-c", "--ckpt", "s", "ckpt_in", "", None, "start from this checkpoint instead of random init"),
    ("-r", "--resume", "i", "resume", 0, None, "1: also load CKPT.opt and continue at its step"),
    ("-k", "--ckpt-every", "i", "ckpt_every", 0, None, "write a checkpoint every N steps (0: at the end only)"),
    ("-S", "--stop-at", "i", "stop_at", 0, None, "stop after this step and checkpoint; the schedule still ends at --steps"),
    ("-x", "--eval-only", "i", "eval_only", 0, None, "1: evaluate the checkpoint (-c), do not train"),
    ("-G", "--sample", "i", "sample_tokens", 200, None, "tokens to generate at the end (0: none)"),
    ("-u", "--temperature", "f", "temperature", 0.8, None, "sampling temperature (0: greedy)"),
    ("-q", "--top-k", "i", "top_k", 40, None, "sample from the k most likely tokens (0: all)"),
    ("-y", "--sample-seed", "i", "sample_seed", 42, None, "seed of the sampler"),
    ("-P", "--probe-every", "i", "probe_every", 100, None, "probe every N steps, and at the first and last (0: never)"),
    ("-p", "--probe", "i", "probe_only", 0, None, "1: probe the checkpoint (-c) once, do not train"),
    # the twin's own: long names only
    (None, "--device", "e", "device", 0, ["auto", "cpu", "cuda"], "where to compute (auto: cuda when there is one)"),
    (None, "--dtype", "e", "dtype", 0, ["auto", "float32", "float64", "bf16"],
     "float32/float64: parameters and arithmetic; bf16: float32 parameters, bf16 autocast (auto: bf16 on cuda, else float32)"),
    (None, "--micro-batch", "i", "micro", 0, None, "rows per forward pass on each rank; B/(ranks*micro) steps of accumulation (0: B/ranks)"),
    (None, "--probe-micro", "i", "probe_micro", 0, None, "rows per forward pass of the probe (0: --micro-batch, at most 4)"),
    (None, "--threads", "i", "threads", 0, None, "CPU threads of torch (0: torch's default)"),
    (None, "--attention", "e", "attention", 0, ["auto", "explicit", "sdpa"],
     "training attention: explicit weights, or torch's fused scaled_dot_product_attention (auto: sdpa on cuda when torch has it)"),
    (None, "--preset", "e", "preset", 0, ["none", "paper-0.1b", "paper-0.3b"], "the paper's recipe (flags given override it)"),
    (None, "--batch-tokens", "i", "batch_tokens", 0, None, "global batch in tokens (sets -b to this / -t; 0: use -b)"),
]

PRESETS = {  # the paper's recipe (paper.md "Training recipe"): shapes, T, lr, schedule, decay, clip
    "paper-0.1b": dict(n_layer=16, d_model=512, n_head=8, n_kv_head=8, ffn_hidden=1408, T=1024, lr=5e-4),
    "paper-0.3b": dict(n_layer=16, d_model=1024, n_head=8, n_kv_head=4, ffn_hidden=2816, T=2048, lr=1e-3),
}
PRESET_COMMON = dict(warmup=1000, steps=20000, weight_decay=0.1, grad_clip=1.0, first_token=F_ANY,
                     val_every=500, probe_every=500, ckpt_every=1000, val_batches=8, sample_tokens=0)
PRESET_BATCH_TOKENS = 524288  # 0.5M tokens a step, the low end of the paper's 0.5M-1M


class Options:
    pass


def usage():
    print("usage: twin.py [flags]   (gradsink's flags, and the twin's own long ones; defaults in brackets)")
    for short, long_, typ, dest, default, names, help_ in FLAGS:
        d = ("off; takes no value" if typ == "b" else names[default] if typ == "e" else "%g" % default if typ == "f"
             else str(default))
        print("  %s %-15s %s [%s]" % (short or "  ", long_, help_, d))


def parse_args(argv):
    o = Options()
    o.given = set()
    for f in FLAGS:
        setattr(o, f[3], f[4])
    table = {}
    for f in FLAGS:
        if f[0]:
            table[f[0]] = f
        table[f[1]] = f
    a = 0
    while a < len(argv):
        arg = argv[a]
        if arg in ("-h", "--help"):
            usage()
            sys.exit(0)
        f = table.get(arg)
        if f is None:
            die("unknown flag %s (see -h)" % arg)
        short, long_, typ, dest = f[0], f[1], f[2], f[3]
        o.given.add(dest)
        if typ == "b":
            setattr(o, dest, 1)
            a += 1
            continue
        if a + 1 >= len(argv):
            die("flag %s needs a value" % arg)
        val = argv[a + 1]
        a += 2
        if typ == "i":
            s = val[1:] if val[:1] in "+-" else val
            if not s or not s.isdigit() or not s.isascii() or abs(int(val)) > 2147483647:
                die("flag %s: '%s' is not an integer" % (long_, val))
            setattr(o, dest, int(val))
        elif typ == "f":
            try:
                v = float(val)
            except ValueError:
                die("flag %s: '%s' is not a number" % (long_, val))
            if not math.isfinite(v) or val.strip() != val or not val:
                die("flag %s: '%s' is not a number" % (long_, val))
            setattr(o, dest, v)
        elif typ == "e":
            if val not in f[5]:
                die("flag %s: unknown value '%s'" % (long_, val))
            setattr(o, dest, f[5].index(val))
        else:
            setattr(o, dest, val)
    o.preset_name = FLAGS_BY_DEST["preset"][5][o.preset]
    if o.preset_name != "none":  # the recipe, under the flags that were given
        for k, v in list(PRESETS[o.preset_name].items()) + list(PRESET_COMMON.items()):
            if k not in o.given:
                setattr(o, k, v)
        if "batch_tokens" not in o.given and "B" not in o.given:
            o.batch_tokens = PRESET_BATCH_TOKENS
        if "vocab_size" not in o.given:
            o.vocab_size = 50257  # GPT-2's, as the paper
    if o.batch_tokens:
        if o.batch_tokens % o.T:
            die("flag --batch-tokens: %d is not a multiple of --seq-len %d" % (o.batch_tokens, o.T))
        o.B = o.batch_tokens // o.T
    if o.min_lr < 0:
        o.min_lr = o.lr / 10
    if o.mlp_weight_decay < 0:
        o.mlp_weight_decay = o.weight_decay
    if o.embed_weight_decay < 0:
        o.embed_weight_decay = o.weight_decay
    return o


FLAGS_BY_DEST = {f[3]: f for f in FLAGS}


def options_check(o):
    """gradsink's checks of the flags on their own, with its messages"""
    if not o.out_dir:
        die("flag --out: an empty path (pass a folder)")
    if not o.train_path and not o.eval_only and not o.probe_only and o.steps > 0:
        die("flag --train: an empty path (pass a token file)")
    if o.eval_only and o.val_batches == 0:
        die("flag --eval-only: needs --val-batches >= 1 (got 0)")
    if o.B < 1:
        die("flag --batch: must be at least 1 (got %d)" % o.B)
    if o.T < 1 or o.T > 65536:
        die("flag --seq-len: must be in 1..65536 (got %d)" % o.T)
    if o.first_token == F_EOT_MASKED and o.T < 2:
        die("flag --first-token eot-masked: needs --seq-len >= 2 (a row with a target in the loss)")
    if o.steps < 0:
        die("flag --steps: must be >= 0 (got %d)" % o.steps)
    if o.warmup < 0:
        die("flag --warmup: must be >= 0 (got %d)" % o.warmup)
    if o.lr < 0 or o.weight_decay < 0 or o.grad_clip < 0:
        die("flags --lr, --weight-decay, --grad-clip must be >= 0")
    if o.val_every < 0 or o.val_batches < 0 or o.ckpt_every < 0:
        die("flags --val-every, --val-batches, --ckpt-every must be >= 0")
    for flag, value in (("--resume", o.resume), ("--probe", o.probe_only), ("--eval-only", o.eval_only)):
        if value not in (0, 1):
            die("flag %s: 0 or 1 (got %d)" % (flag, value))
    if (o.resume or o.eval_only or o.probe_only) and not o.ckpt_in:
        die("flags --resume, --eval-only and --probe need a checkpoint (-c PATH)")
    if o.probe_every < 0:
        die("flag --probe-every: must be >= 0 (got %d)" % o.probe_every)
    if o.vscale_lambda <= 0:
        die("flag --vscale-lambda: must be > 0 (got %g)" % o.vscale_lambda)
    if o.vscale_path != P_BOTH and o.vscale == OFF and not o.ckpt_in:
        die("flag --vscale-path %s: needs V-scale on (-a fixed or -a learned)" % PATH_NAMES[o.vscale_path])
    if o.stop_at < 0:
        die("flag --stop-at: must be >= 0 (got %d)" % o.stop_at)
    if o.sample_tokens < 0 or o.top_k < 0 or o.temperature < 0:
        die("flags --sample, --top-k, --temperature must be >= 0")
    if o.micro < 0 or o.probe_micro < 0 or o.threads < 0 or o.batch_tokens < 0:
        die("flags --micro-batch, --probe-micro, --threads, --batch-tokens must be >= 0")
    if o.B % WORLD:
        die("flag --batch: %d rows do not split over %d ranks" % (o.B, WORLD))
    per_rank = o.B // WORLD
    micro = o.micro or per_rank
    if per_rank % micro:
        die("flag --micro-batch: %d rows per rank are not a whole number of micro-batches of %d" % (per_rank, micro))


# ----------------------------------------------------------------------------
# files: every reader checks the type with os.stat before it opens, and every header field
# before it is used (the same checks as gradsink's readers, with its messages)

HEADER_INTS = 256
DATA_MAGIC, CKPT_MAGIC, OPT_MAGIC, TOK_MAGIC = 20240520, 20261128, 20261129, 20261130
CKPT_VERSION = 3
OPT_VERSION = 2
MAX_VOCAB = 65536


def stat_regular(path, what=""):
    if not path:
        die("an empty file name was given")
    try:
        st = os.stat(path)
    except OSError as e:
        die("cannot open %s%s: %s" % (what, path, e.strerror))
    if not stat.S_ISREG(st.st_mode):
        die("%s is not a regular file" % path)
    return st.st_size


def read_whole(path, what=""):
    size = stat_regular(path, what)
    buf = bytearray(size)
    try:
        with open(path, "rb") as f:
            n = f.readinto(buf)
    except OSError as e:
        die("cannot read %s: %s" % (path, e.strerror))
    if n != size:
        die("cannot read %s" % path)
    return buf


def header_parse(name, buf, magic, max_version, what):
    if len(buf) < HEADER_INTS * 4:
        die("%s: too short for the header of %s (%d bytes)" % (name, what, len(buf)))
    h = list(struct.unpack_from("<256i", buf, 0))
    if h[0] != magic:
        die("%s: bad magic %d (expected %d: %s)" % (name, h[0], magic, what))
    if h[1] < 1 or h[1] > max_version:
        die("%s: unsupported version %d of %s (expected %s%d)" % (name, h[1], what, "1 to " if max_version > 1 else "",
                                                                   max_version))
    return h


def f64_at(h, i):
    return struct.unpack("<d", struct.pack("<2i", h[i], h[i + 1]))[0]


def f64_ints(x):
    return list(struct.unpack("<2i", struct.pack("<d", x)))


class Tokenizer:
    """tokenizer.py's file: gradsink reads it for the vocab size, the end-of-text id and samples"""

    def __init__(self, path):
        buf = read_whole(path)
        h = header_parse(path, buf, TOK_MAGIC, 1, "a tokenizer.py file")
        V, eot, merges = h[2], h[3], h[4]
        if V < 2 or V > MAX_VOCAB:
            die("%s: vocab size %d out of range 2..%d" % (path, V, MAX_VOCAB))
        if eot < 0 or eot >= V:
            die("%s: eot id %d outside the vocab of %d" % (path, eot, V))
        if merges < 0:
            die("%s: negative merge count %d" % (path, merges))
        pos, size, self.tokens = HEADER_INTS * 4, len(buf), []
        for i in range(V):
            if size - pos < 2:
                die("%s: ends inside the entry of token %d" % (path, i))
            n = buf[pos] | buf[pos + 1] << 8
            if size - pos - 2 < n:
                die("%s: ends inside the bytes of token %d" % (path, i))
            self.tokens.append(bytes(buf[pos + 2:pos + 2 + n]))
            pos += 2 + n
        if size - pos != merges * 8:
            die("%s: %d bytes after the vocabulary, but the header says %d merges (%d bytes)" % (
                path, size - pos, merges, merges * 8))
        for k in range(2 * merges):
            (i,) = struct.unpack_from("<i", buf, pos + 4 * k)
            if i < 0 or i >= V:
                die("%s: merge %d refers to token %d, outside the vocab" % (path, k // 2, i))
        self.vocab_size, self.eot = V, eot


class Config:
    FIELDS = ("vocab_size", "d_model", "n_layer", "n_head", "n_kv_head", "ffn_hidden", "max_seq_len", "vscale", "eot",
              "rope_theta", "rms_norm_eps")

    def __init__(self, **kw):
        for k in self.FIELDS:
            setattr(self, k, kw[k])

    def __eq__(self, other):
        return all(getattr(self, k) == getattr(other, k) for k in self.FIELDS)

    def num_parameters(self):
        V, C, L, F = self.vocab_size, self.d_model, self.n_layer, self.ffn_hidden
        KV = self.n_kv_head * (C // max(self.n_head, 1))
        return 2 * V * C + L * (2 * C + 2 * C * C + 2 * KV * C + 3 * F * C + self.n_kv_head) + C

    def check(self):
        """None when valid, else what is wrong (gradsink's config_check)"""
        c = self
        if c.vocab_size < 2 or c.vocab_size > MAX_VOCAB:
            return "vocab size (-V) must be in 2..65536"
        if c.d_model < 2 or c.d_model > 16384:
            return "width (-C) must be in 2..16384"
        if c.n_layer < 1 or c.n_layer > 1024:
            return "layers (-L) must be in 1..1024"
        if c.n_head < 1 or c.n_kv_head < 1:
            return "heads (-H) and kv heads (-K) must be positive"
        if c.ffn_hidden < 1 or c.ffn_hidden > 1048576:
            return "MLP size (-F) must be in 1..1048576"
        if c.d_model % c.n_head:
            return "heads (-H) must divide the width (-C)"
        if (c.d_model // c.n_head) % 2:
            return "head size (width / heads) must be even for RoPE"
        if c.n_head % c.n_kv_head:
            return "kv heads (-K) must divide heads (-H)"
        if c.max_seq_len < 1 or c.max_seq_len > 65536:
            return "sequence length (-t) must be in 1..65536"
        if c.vscale not in (OFF, FIXED, LEARNED):
            return "unknown V-scale mode"
        if c.eot < 0 or c.eot >= c.vocab_size:
            return "end-of-text id outside the vocab"
        if not (0 < c.rope_theta < 1e300):
            return "RoPE base (rope_theta) must be positive and finite"
        if not (0 < c.rms_norm_eps < 1):
            return "RMSNorm eps must be in (0, 1)"
        if c.num_parameters() > 2147483647:
            return "more than 2^31-1 parameters (make -V, -C, -L or -F smaller)"
        return None


def param_table(c):
    """(name, shape, kind) in checkpoint order; kind: matrix (init N(0, 0.02^2), decayed), gain, theta"""
    V, C, L, F, Hkv = c.vocab_size, c.d_model, c.n_layer, c.ffn_hidden, c.n_kv_head
    KV = Hkv * (C // c.n_head)
    return [("wte", (V, C), "matrix"), ("attn_norm", (L, C), "gain"), ("wq", (L, C, C), "matrix"),
            ("wk", (L, KV, C), "matrix"), ("wv", (L, KV, C), "matrix"), ("wo", (L, C, C), "matrix"),
            ("mlp_norm", (L, C), "gain"), ("w_gate", (L, F, C), "matrix"), ("w_up", (L, F, C), "matrix"),
            ("w_down", (L, C, F), "matrix"), ("vscale_theta", (L, Hkv), "theta"), ("final_norm", (C,), "gain"),
            ("lm_head", (V, C), "matrix")]


def checkpoint_read_header(path):
    """(Config, step, vscale_path, sink_grad) of a model file, every field and the size checked"""
    size = stat_regular(path, "checkpoint ")
    try:
        with open(path, "rb") as f:
            head = f.read(HEADER_INTS * 4)
    except OSError as e:
        die("cannot open checkpoint %s: %s" % (path, e.strerror))
    h = header_parse(path, head, CKPT_MAGIC, CKPT_VERSION, "a gradsink checkpoint")
    c = Config(vocab_size=h[2], d_model=h[3], n_layer=h[4], n_head=h[5], n_kv_head=h[6], ffn_hidden=h[7],
               max_seq_len=h[8], vscale=h[9], eot=h[2] - 1, rope_theta=10000.0, rms_norm_eps=1e-5)
    if h[1] >= 2:
        c.rope_theta, c.rms_norm_eps, c.eot = f64_at(h, 11), f64_at(h, 13), h[15]
    why = c.check()
    if why:
        die("%s: header describes an impossible model (%s)" % (path, why))
    if h[10] < 0:
        die("%s: negative step %d in header" % (path, h[10]))
    vpath, G = P_BOTH, 1.0
    if h[1] >= 3:
        vpath, G = h[16], f64_at(h, 17)
        if vpath < P_BOTH or vpath > P_BACKWARD:
            die("%s: unknown V-scale path %d in header" % (path, vpath))
        if vpath != P_BOTH and c.vscale == OFF:
            die("%s: V-scale path %s in header, but V-scale is off" % (path, PATH_NAMES[vpath]))
        if not math.isfinite(G):
            die("%s: sink-grad factor in header is not finite" % path)
    want = HEADER_INTS * 4 + c.num_parameters() * 4
    if size != want:
        die("%s: %d bytes, but its header implies %d (truncated or not a checkpoint)" % (path, size, want))
    return c, h[10], vpath, G


# ----------------------------------------------------------------------------
# torch from here on

try:
    import torch
    import torch.nn.functional as F
except ImportError:
    if __name__ == "__main__" and not any(a in ("-h", "--help") for a in sys.argv[1:]):
        die("PyTorch is not installed for %s (Debian: apt-get install python3-torch)" % sys.executable)
    torch = None


def floats_to_bytes(t):
    """a tensor's values as little-endian float32 bytes, without numpy"""
    t = t.detach().reshape(-1).to("cpu", torch.float32)
    buf = bytearray(t.numel() * 4)
    if t.numel():
        torch.frombuffer(buf, dtype=torch.float32).copy_(t)
    return buf


def floats_from(buf, offset, count):
    if count == 0:
        return torch.zeros(0, dtype=torch.float32)
    return torch.frombuffer(buf, dtype=torch.float32, offset=offset, count=count).clone()


# --- splitmix64, exactly gradsink's Rng: the same seed gives the same init and the same random rows

M64 = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & M64
    return z ^ (z >> 31)


class Rng:
    def __init__(self, seed):
        self.state = seed & M64

    def u64(self):
        self.state = (self.state + GOLDEN) & M64
        return mix64(self.state)

    def uniform(self):
        return (self.u64() >> 11) * (1.0 / 9007199254740992.0)


def _signed(x):
    return x - (1 << 64) if x >= 1 << 63 else x


def _srl(z, s):  # logical shift right of int64 tensors holding uint64 bits
    return (z >> s) & ((1 << (64 - s)) - 1)


def splitmix_u64(seed, first, n):
    """the u64 draws first..first+n-1 of Rng(seed) as int64 tensors (uint64 bits): draw i is mix(seed + (i+1)*golden)"""
    i = torch.arange(first + 1, first + n + 1, dtype=torch.int64)
    z = i * _signed(GOLDEN) + _signed(seed & M64)  # int64 arithmetic wraps as uint64 does
    z = (z ^ _srl(z, 30)) * _signed(0xBF58476D1CE4E5B9)
    z = (z ^ _srl(z, 27)) * _signed(0x94D049BB133111EB)
    return z ^ _srl(z, 31)


def init_normals(seed, n, chunk=1 << 22):
    """gradsink's model_init stream: n normals 0.02 * rng_normal (Box-Muller, cos then sin of each
    pair), rounded to float32 as gradsink's float build stores them"""
    out = torch.empty(n, dtype=torch.float32)
    pairs = (n + 1) // 2
    for p0 in range(0, pairs, chunk):
        k = min(chunk, pairs - p0)
        u = _srl(splitmix_u64(seed, 2 * p0, 2 * k), 11).to(torch.float64) * (1.0 / 9007199254740992.0)
        u1, u2 = u[0::2].clamp(min=1e-300), u[1::2]
        rad, ang = torch.sqrt(-2.0 * torch.log(u1)), 2.0 * math.pi * u2
        z = torch.stack([rad * torch.cos(ang), rad * torch.sin(ang)], 1).reshape(-1)
        lo = 2 * p0
        m = min(2 * k, n - lo)
        out[lo:lo + m] = (0.02 * z[:m]).to(torch.float32)
    return out


# --- token files (llm.c's format), memory-mapped: a corpus of billions of tokens is not read into memory

class TokenFile:
    def __init__(self, path, B, T, vocab_size):
        size = stat_regular(path)
        if size < HEADER_INTS * 4:
            die("%s: too short for the header of an llm.c token file (%d bytes)" % (path, size))
        with open(path, "rb") as f:
            h = header_parse(path, f.read(HEADER_INTS * 4), DATA_MAGIC, 1, "an llm.c token file")
            if h[2] <= 0:
                die("%s: header says %d tokens (a token file needs at least one)" % (path, h[2]))
            count, after = h[2], size - HEADER_INTS * 4
            if count * 2 != after:
                die("%s: header says %d tokens (%d bytes) but the file has %d bytes after the header" % (
                    path, count, count * 2, after))
            if count < B * T + 1:
                die("%s: %d tokens is fewer than one batch needs (B*T+1 = %d; make -b or -t smaller)" % (
                    path, count, B * T + 1))
            self.map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)  # private: the file is never written
        self.tok = torch.frombuffer(self.map, dtype=torch.int16, offset=HEADER_INTS * 4, count=count)
        for i in range(0, count, 1 << 24):  # every id below the vocab, as gradsink checks
            part = self.tok[i:i + (1 << 24)].to(torch.int32) & 0xFFFF
            bad = (part >= vocab_size).nonzero()
            if len(bad):
                j = int(bad[0, 0])
                die("%s: token %d at position %d is not below the vocab size %d" % (path, int(part[j]), i + j, vocab_size))
        self.path, self.count, self.B, self.T = path, count, B, T
        self.num_batches = (count - 1) // (B * T)

    def rows(self, starts, first_token, eot):
        """inputs, targets (len(starts), T) int64: windows at the starts, as gradsink's dataloader_row"""
        T = self.T
        x = torch.stack([self.tok[s:s + T + 1] for s in starts]).to(torch.int64) & 0xFFFF
        inp, tgt = x[:, :T].clone(), x[:, 1:].clone()
        if first_token != F_ANY:
            inp[:, 0] = eot
        if first_token == F_EOT_MASKED:
            tgt[:, 0] = IGNORE
        return inp, tgt

    def batch_starts(self, k):
        """batch k of the stream: B consecutive windows (wrapping)"""
        start = (k % self.num_batches) * self.B * self.T
        return [start + b * self.T for b in range(self.B)]

    def random_starts(self, seed, k):
        """batch k of random windows, from (seed, k) alone (gradsink's dataloader_random_batch)"""
        rng = Rng(0x5EED * (seed + 1) + k * self.B * GOLDEN)
        return [rng.u64() % (self.count - self.T) for _ in range(self.B)]


# ----------------------------------------------------------------------------
# the model

class Twin(torch.nn.Module if torch else object):
    def __init__(self, cfg, vscale_path, sink_grad, dtype, device):
        super().__init__()
        self.cfg, self.vscale_path, self.sink_grad = cfg, vscale_path, sink_grad
        self.table = param_table(cfg)
        for name, shape, kind in self.table:
            p = torch.nn.Parameter(torch.zeros(shape, dtype=dtype, device=device))
            if kind == "theta":  # trained only when learned and in the forward pass (gradsink gives it no gradient otherwise)
                p.requires_grad_(cfg.vscale == LEARNED and vscale_path != P_BACKWARD)
            self.register_parameter(name, p)
        D = cfg.d_model // cfg.n_head
        t = torch.arange(cfg.max_seq_len, dtype=torch.float64)[:, None]
        inv = torch.tensor([cfg.rope_theta ** (-2.0 * i / D) for i in range(D // 2)], dtype=torch.float64)
        self.register_buffer("rope_cos", torch.cos(t * inv).to(dtype), persistent=False)
        self.register_buffer("rope_sin", torch.sin(t * inv).to(dtype), persistent=False)
        self.use_sdpa = False
        self._mask = None

    def params(self):
        return [getattr(self, name) for name, _, _ in self.table]

    def _sink_hook(self, g):  # g (B, T, Hkv, D): dv_hat; every row's position 0, every kv head
        g = g.clone()
        g[:, 0] *= self.sink_grad
        return g

    def rmsnorm(self, x, g):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.cfg.rms_norm_eps) * g

    def rope(self, x, T):  # x (B, T, heads, D): dimension i pairs with i + D/2 (rotate half)
        x = x if x.dtype in (torch.float32, torch.float64) else x.float()  # bf16 autocast: rotate in float32
        h = x.shape[-1] // 2
        cos, sin = self.rope_cos[:T, None, :].to(x.dtype), self.rope_sin[:T, None, :].to(x.dtype)
        x1, x2 = x[..., :h], x[..., h:]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)

    def vscale(self, v, theta):
        """v_hat and phi (B, T, Hkv, 1); with --vscale-path forward/backward, one pass each"""
        c = self.cfg
        if c.vscale == OFF:
            return v, None
        const = c.d_model * (c.d_model // c.n_head) * 0.02 * 0.02

        def scaled(vv, th):  # in float32 at least (under bf16 autocast v comes in bf16)
            vv = vv if vv.dtype in (torch.float32, torch.float64) else vv.float()
            r = (vv * vv).sum(-1, keepdim=True)
            phi = r / (r + const * torch.exp(th.to(vv.dtype))[:, None])
            return phi * vv, phi

        if self.vscale_path == P_BOTH:
            return scaled(v, theta)
        if self.vscale_path == P_FORWARD:  # value phi v; gradient: identity to v, the usual one to theta
            out, phi = scaled(v.detach(), theta)
            return out + (v - v.detach()), phi
        s, _ = scaled(v, theta.detach())  # P_BACKWARD: value v; gradient: V-scale's Jacobian at v
        return v.detach() + (s - s.detach()), None

    def forward(self, idx, tgt, pb=None):
        """sum of the losses over the scored positions (and the logits when tgt is None).
        pb: a ProbeAcc that reads activations here and gradients in hooks."""
        c = self.cfg
        B, T = idx.shape
        C, H, Hkv = c.d_model, c.n_head, c.n_kv_head
        D, group = C // H, H // Hkv
        h = F.embedding(idx, self.wte)
        if pb:
            pb.res(0, h)
        for l in range(c.n_layer):
            x = self.rmsnorm(h, self.attn_norm[l])
            q = self.rope((x @ self.wq[l].t()).view(B, T, H, D), T)
            k = self.rope((x @ self.wk[l].t()).view(B, T, Hkv, D), T)
            v = (x @ self.wv[l].t()).view(B, T, Hkv, D)
            vhat, phi = self.vscale(v, self.vscale_theta[l])
            if self.sink_grad != 1 and vhat.requires_grad:  # --sink-grad: position 0's value gradient times G
                vhat.register_hook(self._sink_hook)
            qh, kh, vh = q.transpose(1, 2), k.transpose(1, 2), vhat.transpose(1, 2)
            if group > 1:
                kh, vh = kh.repeat_interleave(group, 1), vh.repeat_interleave(group, 1)
            if self.use_sdpa and pb is None:
                dt = torch.get_autocast_gpu_dtype() if torch.is_autocast_enabled() else qh.dtype
                y = F.scaled_dot_product_attention(qh.to(dt), kh.to(dt), vh.to(dt), is_causal=True)
            else:
                s = (qh @ kh.transpose(-1, -2)) * (1.0 / math.sqrt(D))
                if self._mask is None or self._mask.shape[0] != T or self._mask.device != s.device:
                    self._mask = torch.ones(T, T, dtype=torch.bool, device=s.device).triu(1)  # j > t
                att = torch.softmax(s.masked_fill(self._mask, float("-inf")), -1)
                y = att @ vh.to(att.dtype)
            r_attn = y.transpose(1, 2).reshape(B, T, C) @ self.wo[l].t()
            h_half = h + r_attn
            x2 = self.rmsnorm(h_half, self.mlp_norm[l])
            r_mlp = (F.silu(x2 @ self.w_gate[l].t()) * (x2 @ self.w_up[l].t())) @ self.w_down[l].t()
            h_out = h_half + r_mlp
            if pb:
                pb.layer(l, x, q, k, v, vhat, phi, att, r_attn, h_half, x2, r_mlp, h_out)
            h = h_out
        logits = self.rmsnorm(h, self.final_norm) @ self.lm_head.t()
        if tgt is None:
            return logits
        return F.cross_entropy(logits.reshape(-1, c.vocab_size).float() if logits.dtype != torch.float64 else
                               logits.reshape(-1, c.vocab_size), tgt.reshape(-1), ignore_index=IGNORE, reduction="sum")


# ----------------------------------------------------------------------------
# the probe: gradsink's quantities, accumulated over rows (micro-batches, ranks) as sums, so a
# probe batch of any size fits; the gradients come from tensor hooks during torch.autograd.grad
# with respect to the embedding only: no parameter's .grad is touched, no optimizer state.

SINK_EPS, SINK_T_EPS, PROBE_POSITIONS, RATIO_POSITIONS = 0.3, 64, 32, 16
PQ_NAMES = ["norm_h_in", "norm_h_half", "norm_h_out", "norm_r_attn", "norm_r_mlp", "norm_v", "norm_vhat",
            "grad_x_attn", "grad_x_mlp", "grad_q", "grad_k", "grad_v",
            "attn_bloat", "attn_compress", "attn_change", "mlp_bloat", "mlp_compress", "mlp_change"]


class ProbeAcc:
    def __init__(self, cfg, T, device):
        L, C, H, Hkv = cfg.n_layer, cfg.d_model, cfg.n_head, cfg.n_kv_head
        KV = Hkv * (C // H)
        self.cfg, self.T = cfg, T
        self.P = min(T, PROBE_POSITIONS)
        self.te, self.nr = min(T, SINK_T_EPS), min(self.P, RATIO_POSITIONS)
        P = self.P
        z = lambda *s: torch.zeros(s, dtype=torch.float64, device=device)
        self.s = {  # sums over rows (and heads where gradsink averages them)
            "loss": z(1), "alpha": z(L, H), "M0": z(L), "S0": z(L), "phi0": z(L), "phir": z(L),
            "n_res": z(L + 1, P), "n_h_half": z(L, P), "n_r_attn": z(L, P), "n_r_mlp": z(L, P), "n_v": z(L, P),
            "n_vhat": z(L, P),
            "g_res": z(L + 1, P, C), "g_h_half": z(L, P, C), "g_ln1": z(L, P, C), "g_ln2": z(L, P, C),
            "g_q": z(L, P, C), "g_k": z(L, P, KV), "g_v": z(L, P, KV)}

    def _grad(self, key, l, t):
        P, s = self.P, self.s[key]

        def hook(g):
            s[l] += g[:, :P].reshape(g.shape[0], P, -1).sum(0).double()
        t.register_hook(hook)

    @staticmethod
    def _norms(x, P):  # sum over rows and heads of ||x[b, t, h, :]||, t < P
        x = x.detach()[:, :P].double()
        return x.reshape(x.shape[0], P, -1, x.shape[-1]).norm(dim=-1).sum((0, 2))

    def res(self, j, h):
        self.s["n_res"][j] += self._norms(h, self.P)
        self._grad("g_res", j, h)

    def layer(self, l, x, q, k, v, vhat, phi, att, r_attn, h_half, x2, r_mlp, h_out):
        P, s = self.P, self.s
        with torch.no_grad():
            a0 = att[:, :, :, 0].double()  # (B, H, T): a[t, 0]
            s["alpha"][l] += a0[:, :, :self.te].sum((0, 2))
            s["M0"][l] += a0.sum()
            s["S0"][l] += (a0 * a0).sum()
            s["n_h_half"][l] += self._norms(h_half, P)
            s["n_r_attn"][l] += self._norms(r_attn, P)
            s["n_r_mlp"][l] += self._norms(r_mlp, P)
            s["n_v"][l] += self._norms(v, P)
            s["n_vhat"][l] += self._norms(vhat, P)
            if phi is None:  # V-scale off, or only in the backward pass: the factor 1
                B, Hkv = v.shape[0], v.shape[2]
                s["phi0"][l] += B * Hkv
                s["phir"][l] += B * Hkv * (self.nr - 1)
            else:
                f = phi[:, :self.nr, :, 0].double()
                s["phi0"][l] += f[:, 0].sum()
                s["phir"][l] += f[:, 1:].sum()
        self.res(l + 1, h_out)
        self._grad("g_h_half", l, h_half)
        self._grad("g_ln1", l, x)
        self._grad("g_ln2", l, x2)
        self._grad("g_q", l, q)
        self._grad("g_k", l, k)
        self._grad("g_v", l, v)

    def allreduce(self):
        if WORLD > 1:
            keys = sorted(self.s)
            flat = torch.cat([self.s[k].reshape(-1) for k in keys])
            torch.distributed.all_reduce(flat)
            i = 0
            for k in keys:
                n = self.s[k].numel()
                self.s[k].copy_(flat[i:i + n].view_as(self.s[k]))
                i += n


def fdiv(a, b):  # IEEE division (gradsink's doubles): x/0 is inf or nan, not an exception
    if b == 0:
        return float("nan") if a == 0 or a != a else math.copysign(float("inf"), a) * (1 if math.copysign(1, b) > 0 else -1)
    return a / b


def r_gs(G, n):
    if n < 2:
        return float("nan")
    return fdiv(G[0], sum(G[1:n]) / (n - 1))


def median(x):
    s, n = sorted(x), len(x)
    return s[n // 2] if n % 2 else 0.5 * (s[n // 2 - 1] + s[n // 2])


def probe_finish(acc, model, B, scored):
    """the probe's numbers (gradsink's Probe and ProbeSummary) from the sums over B rows"""
    c, s = acc.cfg, {k: v.cpu() for k, v in acc.s.items()}
    L, H, Hkv, P = c.n_layer, c.n_head, c.n_kv_head, acc.P
    D = c.d_model // H
    pr = {"loss": float(s["loss"][0]) / scored, "L": L, "H": H, "Hkv": Hkv, "P": P, "rgs_n": P}

    def agg(g, nh):  # (P, nh*Dh) row sums -> mean over heads of the norm
        return (g.reshape(P, nh, -1).norm(dim=-1).sum(1) / nh).tolist()

    pr["alpha"] = (s["alpha"] / (B * acc.te)).tolist()
    pr["sink_rate"] = [sum(a > SINK_EPS for a in row) / H for row in pr["alpha"]]
    pr["M0"] = (s["M0"] / (B * H)).tolist()
    pr["S0"] = (s["S0"] / (B * H)).tolist()
    q = {k: [] for k in PQ_NAMES}
    pr["R_gs"] = []
    for l in range(L):
        q["norm_h_in"].append((s["n_res"][l] / B).tolist())
        q["norm_h_half"].append((s["n_h_half"][l] / B).tolist())
        q["norm_h_out"].append((s["n_res"][l + 1] / B).tolist())
        q["norm_r_attn"].append((s["n_r_attn"][l] / B).tolist())
        q["norm_r_mlp"].append((s["n_r_mlp"][l] / B).tolist())
        q["norm_v"].append((s["n_v"][l] / (B * Hkv)).tolist())
        q["norm_vhat"].append((s["n_vhat"][l] / (B * Hkv)).tolist())
        gx, gx2 = agg(s["g_ln1"][l], 1), agg(s["g_ln2"][l], 1)
        q["grad_x_attn"].append(gx)
        q["grad_x_mlp"].append(gx2)
        q["grad_q"].append(agg(s["g_q"][l], H))
        q["grad_k"].append(agg(s["g_k"][l], Hkv))
        q["grad_v"].append(agg(s["g_v"][l], Hkv))
        pr["R_gs"].append(r_gs(gx, P))
        dh, dhh, dho = agg(s["g_res"][l], 1), agg(s["g_h_half"][l], 1), agg(s["g_res"][l + 1], 1)
        thr_a = agg(s["g_res"][l] - s["g_h_half"][l], 1)
        thr_m = agg(s["g_h_half"][l] - s["g_res"][l + 1], 1)
        q["attn_bloat"].append([fdiv(a, b) for a, b in zip(gx, dhh)])
        q["attn_compress"].append([fdiv(a, b) for a, b in zip(thr_a, gx)])
        q["attn_change"].append([fdiv(a, b) for a, b in zip(dh, dhh)])
        q["mlp_bloat"].append([fdiv(a, b) for a, b in zip(gx2, dho)])
        q["mlp_compress"].append([fdiv(a, b) for a, b in zip(thr_m, gx2)])
        q["mlp_change"].append([fdiv(a, b) for a, b in zip(dhh, dho)])
    pr["pq"] = q
    theta = model.vscale_theta.detach().double().cpu()
    pr["lambda"] = [[0.0 if c.vscale == OFF else math.exp(float(x)) for x in row] for row in theta]
    pr["phi0"] = (s["phi0"] / (B * Hkv)).tolist()
    pr["phi_rest"] = (s["phir"] / (B * Hkv * (acc.nr - 1))).tolist() if acc.nr > 1 else [float("nan")] * L
    # the summaries (gradsink's probe_summarize)
    tok0 = lambda x: r_gs(x, min(P, RATIO_POSITIONS))
    for key, src in (("ratio_h_out", "norm_h_out"), ("ratio_r_mlp", "norm_r_mlp"), ("ratio_r_attn", "norm_r_attn"),
                     ("ratio_v", "norm_v"), ("ratio_grad_v", "grad_v")):
        pr[key] = [tok0(x) for x in q[src]]
    for key, src in (("grad_q_mean", "grad_q"), ("grad_k_mean", "grad_k"), ("grad_v_mean", "grad_v")):
        pr[key] = [sum(q[src][l][t] for l in range(L)) / L for t in range(P)]
    pr["sink_mean"] = sum(pr["sink_rate"]) / L
    pr["M0_mean"] = sum(pr["M0"]) / L
    pr["R_gs_median"] = median(pr["R_gs"])
    pr["dv_dk_0"] = fdiv(pr["grad_v_mean"][0], pr["grad_k_mean"][0])
    return pr


def jnum(x, bad):
    if isinstance(x, bool):
        return "true" if x else "false"
    if x is None or not math.isfinite(x):
        bad[0] += 1
        return "null"
    return "%.10g" % x


def probe_json(pr, cfg, step, train_loss, val_loss, val_step, ms, first_token, vscale_path, sink_grad):
    """one line, gradsink's keys in gradsink's order (numbers with 10 significant digits); and the non-finite count"""
    bad, absent = [0], [0]
    arr = lambda x: "[" + ", ".join(jnum(v, bad) for v in x) + "]"
    mat = lambda x: "[" + ", ".join(arr(r) for r in x) + "]"
    out = ['{"step": %d, "train_loss": %s, "val_loss": %s, "val_loss_step": %d, "probe_loss": %s' % (
        step, jnum(train_loss, absent), jnum(val_loss, absent), val_step, jnum(pr["loss"], bad))]
    out.append(', "probe_ms": %.1f, "L": %d, "H": %d, "Hkv": %d, "positions": %d, "vscale": "%s", '
               '"vscale_path": "%s", "sink_grad": %s, "first_token": "%s", "rgs_positions": [1, %d], "rgs_short_T": %s' % (
                   ms, pr["L"], pr["H"], pr["Hkv"], pr["P"], VSCALE_NAMES[cfg.vscale], PATH_NAMES[vscale_path],
                   "%.10g" % sink_grad, FIRST_NAMES[first_token], pr["rgs_n"] - 1,
                   "true" if pr["rgs_n"] < PROBE_POSITIONS else "false"))
    out.append(', "alpha": ' + mat(pr["alpha"]))
    for key in ("sink_rate", "M0", "S0", "R_gs"):
        out.append(', "%s": %s' % (key, arr(pr[key])))
    out.append(', "R_gs_median": ' + jnum(pr["R_gs_median"], bad))
    for key in PQ_NAMES:
        out.append(', "%s": %s' % (key, mat(pr["pq"][key])))
    for key in ("grad_q_mean", "grad_k_mean", "grad_v_mean", "ratio_h_out", "ratio_r_mlp", "ratio_r_attn", "ratio_v",
                "ratio_grad_v"):
        out.append(', "%s": %s' % (key, arr(pr[key])))
    out.append(', "dv_dk_0": ' + jnum(pr["dv_dk_0"], bad))
    out.append(', "vscale_lambda": ' + mat(pr["lambda"]))
    out.append(', "vscale_phi0": ' + arr(pr["phi0"]))
    out.append(', "vscale_phi_rest": ' + arr(pr["phi_rest"]) + "}")
    return "".join(out), bad[0]


def argmax(x):
    best = 0
    for i in range(1, len(x)):
        if x[i] > x[best] or (not math.isfinite(x[best]) and math.isfinite(x[i])):
            best = i
    return best


def probe_line(pr, step, ms):
    lh, lm = argmax(pr["ratio_h_out"]), argmax(pr["ratio_r_mlp"])
    return ("probe step %d | loss %.4f | sink %.2f | M0 %.2f | R_gs med %.2f%s | h_out tok0/rest max %.2f (L%d) | "
            "mlp tok0/rest max %.2f (L%d) | |dv0|/|dk0| %.2f | %.0f ms" % (
                step, pr["loss"], pr["sink_mean"], pr["M0_mean"], pr["R_gs_median"],
                " (T<32: over t=1..T-1)" if pr["rgs_n"] < PROBE_POSITIONS else "", pr["ratio_h_out"][lh], lh,
                pr["ratio_r_mlp"][lm], lm, pr["dv_dk_0"], ms))


def append_line(path, line):
    """gradsink's append_line: O_APPEND, a torn tail cut first, the whole line in one write, fsync"""
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError as e:
        die("cannot append to %s: %s" % (path, e.strerror))
    try:
        end = os.lseek(fd, 0, os.SEEK_END)
        keep = end
        while keep > 0:
            frm = max(0, keep - 4096)
            chunk = os.pread(fd, keep - frm, frm)
            i = chunk.rfind(b"\n")
            if i >= 0:
                keep = frm + i + 1
                break
            keep = frm
        if keep < end:
            os.ftruncate(fd, keep)
        data = (line if line.endswith("\n") else line + "\n").encode()
        if os.write(fd, data) != len(data):
            raise OSError(0, "short write")
        os.fsync(fd)
    except OSError:
        die("appending to %s failed (disk full?)" % path)
    finally:
        os.close(fd)


# ----------------------------------------------------------------------------
# checkpoints: gradsink's files, float32, written to PATH.tmp, synced, renamed (opt first, then model)

def write_tmp(path, header, arrays):
    for i, a in enumerate(arrays):
        if not bool(torch.isfinite(a).all()):
            die("refusing to write %s: array %d holds a value that is not finite" % (path, i))
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
            f.write(struct.pack("<256i", *header))
            for a in arrays:
                f.write(floats_to_bytes(a))
            f.flush()
            os.fsync(f.fileno())
    except OSError:
        try:
            os.remove(tmp)
        except OSError:
            pass
        die("writing %s failed (disk full?); %s is unchanged" % (tmp, path))
    return tmp


def sync_dir(path):
    try:
        fd = os.open(os.path.dirname(os.path.abspath(path)), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
    except OSError:
        pass


class State:
    """the run's model, optimizer state and counters"""
    pass


def checkpoint_save(st, path, step):
    c = st.cfg
    h = [0] * HEADER_INTS
    h[:11] = [CKPT_MAGIC, CKPT_VERSION, c.vocab_size, c.d_model, c.n_layer, c.n_head, c.n_kv_head, c.ffn_hidden,
              c.max_seq_len, c.vscale, step]
    h[11:13], h[13:15], h[15] = f64_ints(c.rope_theta), f64_ints(c.rms_norm_eps), c.eot
    h[16], h[17:19] = st.model.vscale_path, f64_ints(st.model.sink_grad)
    o = st.o
    ho = [0] * HEADER_INTS  # version 2: the run's schedule and row order, for a resumed run
    ho[:13] = [OPT_MAGIC, OPT_VERSION, st.adam_t, step, c.num_parameters(), o.steps, o.warmup, o.B, o.T, o.seed, o.rows,
               o.first_token, o.eot_row]
    ho[13:25] = list(struct.unpack("<12i", struct.pack("<6d", o.lr, o.min_lr, o.weight_decay, o.mlp_weight_decay,
                                                       o.embed_weight_decay, o.grad_clip)))
    params = st.model.params()
    flat = lambda ts: torch.cat([t.detach().reshape(-1).to("cpu", torch.float32) for t in ts])
    tmp = write_tmp(path, h, [flat(params)])
    tmp_opt = write_tmp(path + ".opt", ho, [flat(st.m), flat(st.v)])
    # as gradsink's checkpoint_save: the old optimizer file steps aside as PATH.opt.prev until the
    # new pair is in place, so a kill at any instant leaves a pair that resumes
    opt, prev = path + ".opt", path + ".opt.prev"
    had = os.path.isfile(opt)
    try:
        if had:
            os.replace(opt, prev)
        os.replace(tmp_opt, opt)
        os.replace(tmp, path)
    except OSError as e:
        die("cannot rename %s to %s: %s" % (tmp, path, e.strerror))
    sync_dir(path)
    if had:
        os.remove(prev)


def checkpoint_load(st, path):
    buf = read_whole(path)
    params, off = st.model.params(), HEADER_INTS * 4
    values = []
    for (name, shape, kind), p in zip(st.model.table, params):
        x = floats_from(buf, off, p.numel())
        if not bool(torch.isfinite(x).all()):
            j = int((~torch.isfinite(x)).nonzero()[0, 0])
            die("%s: tensor %s holds a non-finite value at index %d" % (path, name, j))
        values.append(x)
        off += 4 * p.numel()
    with torch.no_grad():
        for p, x in zip(params, values):
            p.copy_(x.view(p.shape))


SCHED_INTS = ("steps", "warmup", "B", "T", "seed", "rows", "first_token", "eot_row")
SCHED_REALS = ("lr", "min_lr", "weight_decay", "mlp_weight_decay", "embed_weight_decay", "grad_clip")
SCHED_FLAGS = {"steps": "-n", "warmup": "-w", "B": "-b", "T": "-t", "seed": "-s", "rows": "-R", "first_token": "-f",
               "eot_row": "-Z", "lr": "-l", "min_lr": "-m", "weight_decay": "-d", "mlp_weight_decay": "-D",
               "embed_weight_decay": "-E", "grad_clip": "-g"}


def optstate_header(path, buf, expect_step):
    """gradsink's optstate_parse_header: (header, schedule dict or None); None when the file keeps no
    schedule (version 1), or an error string"""
    if len(buf) < HEADER_INTS * 4:
        return None, None, "%s: too short for the header of a gradsink optimizer state (%d bytes)" % (path, len(buf))
    h = list(struct.unpack_from("<256i", buf, 0))
    if h[0] != OPT_MAGIC:
        return None, None, "%s: bad magic %d (expected %d: a gradsink optimizer state)" % (path, h[0], OPT_MAGIC)
    if h[1] < 1 or h[1] > OPT_VERSION:
        return None, None, "%s: unsupported version %d of a gradsink optimizer state (expected 1 to %d)" % (
            path, h[1], OPT_VERSION)
    if h[3] != expect_step:
        return None, None, "%s: is from step %d, the checkpoint from step %d" % (path, h[3], expect_step)
    if h[2] < 0 or h[2] > h[3]:
        return None, None, "%s: AdamW step count %d outside 0..%d (the step)" % (path, h[2], h[3])
    sched = {"steps": max(h[5], 0)}
    if h[1] < 2 or h[5] == 0:  # no schedule kept (a version-1 file, or a model that never trained)
        return h, sched, None
    sched = dict(zip(SCHED_INTS, h[5:13]))
    sched.update(zip(SCHED_REALS, struct.unpack("<6d", struct.pack("<12i", *h[13:25]))))
    t = sched
    ok = (t["steps"] >= h[3] and t["warmup"] >= 0 and t["B"] >= 1 and 1 <= t["T"] <= 65536 and t["B"] * t["T"] <= 1e8
          and t["rows"] in (0, 1) and t["first_token"] in (0, 1, 2) and t["eot_row"] in (0, 1)
          and all(math.isfinite(t[k]) and t[k] >= 0 for k in SCHED_REALS))
    if not ok:
        return None, None, "%s: the run's schedule in its header is out of range" % path
    return h, sched, None


def resume_opt_path(ckpt, step):
    """the optimizer file that pairs with the checkpoint: CKPT.opt, or CKPT.opt.prev when a kill stopped
    a save between its renames; (path, schedule), or exit 2 with CKPT.opt's own error"""
    path = ckpt + ".opt"
    if not os.path.exists(path):
        err = "cannot open %s: No such file or directory" % path
    else:
        stat_regular(path)
        with open(path, "rb") as f:
            _, sched, err = optstate_header(path, f.read(HEADER_INTS * 4), step)
        if not err:
            return path, sched
    prev = ckpt + ".opt.prev"
    if os.path.isfile(prev):
        with open(prev, "rb") as f:
            _, sched, err2 = optstate_header(prev, f.read(HEADER_INTS * 4), step)
        if not err2:
            return prev, sched
    die(err)


def resume_schedule(o, opt_path, sched):
    """a resumed run is the run that never stopped: the schedule's flags not given take the saved values"""
    if sched["steps"] == 0 or len(sched) == 1:  # version 1: no schedule kept
        return
    diff = []
    for k in SCHED_INTS + SCHED_REALS:
        if k not in o.given:
            setattr(o, k, sched[k])
        elif getattr(o, k) != sched[k]:
            diff.append(SCHED_FLAGS[k])
    options_check(o)
    if diff:
        say("note: flags %s differ from the run that wrote %s: this run is not that run continued" % (" ".join(diff),
                                                                                                  opt_path))


def optstate_load(st, path, expect_step):
    buf = read_whole(path)
    h, _, err = optstate_header(path, buf, expect_step)
    if err:
        die(err)
    P = st.cfg.num_parameters()
    if h[4] < 0 or h[4] != P:
        die("%s: holds state for %d parameters, the checkpoint has %d" % (path, h[4], P))
    if len(buf) != HEADER_INTS * 4 + 2 * P * 4:
        die("%s: %d bytes, expected %d (truncated?)" % (path, len(buf), HEADER_INTS * 4 + 2 * P * 4))
    mv = floats_from(buf, HEADER_INTS * 4, 2 * P)
    if not bool(torch.isfinite(mv).all()) or bool((mv[P:] < 0).any()):
        badf = (~torch.isfinite(mv)) | torch.cat([torch.zeros(P, dtype=torch.bool), mv[P:] < 0])
        j = int(badf.nonzero()[0, 0])
        die("%s: AdamW %s moment %d is %s" % (path, "first" if j < P else "second", j % P,
                                                "not finite" if not math.isfinite(float(mv[j])) else "negative"))
    off = 0
    for mt in st.m:
        mt.copy_(mv[off:off + mt.numel()].view(mt.shape))
        off += mt.numel()
    for vt in st.v:
        vt.copy_(mv[off:off + vt.numel()].view(vt.shape))
        off += vt.numel()
    st.adam_t = h[2]


# ----------------------------------------------------------------------------
# training: batches split over ranks and micro-batches; gradients of the mean loss over the
# global batch; gradsink's clipping, schedule and AdamW

def lr_at(step, steps, warmup, max_lr, min_lr):
    if step < warmup:
        return max_lr * (step + 1) / warmup
    if steps <= warmup:
        return min_lr
    frac = (step - warmup) / (steps - warmup)
    return min_lr + 0.5 * (max_lr - min_lr) * (1.0 + math.cos(math.pi * frac))


def my_rows(B):
    per = B // WORLD
    return RANK * per, (RANK + 1) * per


def autocast_ctx(st):
    if st.autocast:
        return torch.autocast(device_type=st.device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def allreduce_sum(x):
    if WORLD > 1:
        torch.distributed.all_reduce(x)
    return x


def train_step(st, inp, tgt, lr):
    """forward, backward (accumulated over micro-batches, averaged over ranks), clip, AdamW.
    Returns (loss, norm, status): status 0 ok, 1 loss or norm not finite (nothing updated), 2 a parameter not finite."""
    o, model = st.o, st.model
    scored = int((tgt != IGNORE).sum())
    lo, hi = my_rows(inp.shape[0])
    micro = o.micro or (hi - lo)
    for p in model.parameters():
        p.grad = None
    loss_sum = torch.zeros((), dtype=torch.float64, device=st.device)
    n_micro = (hi - lo) // micro
    for i in range(n_micro):
        a, b = lo + i * micro, lo + (i + 1) * micro
        x, y = inp[a:b].to(st.device, non_blocking=True), tgt[a:b].to(st.device, non_blocking=True)
        sync = st.ddp is None or i == n_micro - 1
        with (contextlib.nullcontext() if sync else st.ddp.no_sync()):
            with autocast_ctx(st):
                lsum = (st.ddp or model)(x, y)
            # DDP averages over ranks: WORLD / scored makes the average the global batch's mean gradient
            (lsum * (WORLD / max(scored, 1))).backward()
        loss_sum += lsum.detach().double()
    loss = float(allreduce_sum(loss_sum)) / max(scored, 1)
    params = model.params()
    grads = [p.grad if p.grad is not None else None for p in params]
    sq = sum(float(g.double().pow(2).sum()) for g in grads if g is not None)
    norm = math.sqrt(sq)
    if not math.isfinite(loss) or not math.isfinite(norm):
        return loss, norm, 1
    if o.grad_clip > 0 and norm > o.grad_clip:
        s = o.grad_clip / (norm + 1e-6)
        for g in grads:
            if g is not None:
                g.mul_(s)
    adamw(st, grads, lr)
    bad = any(not bool(torch.isfinite(p).all()) for p in params)
    return loss, norm, 2 if bad else 0


@torch.no_grad() if torch else (lambda f: f)
def adamw(st, grads, lr):
    """gradsink's model_update: decoupled decay first (matrices only, per group), bias-corrected moments;
    theta only when learned; the end-of-text row put back after the step under -Z fixed"""
    o, model = st.o, st.model
    st.adam_t += 1
    t = st.adam_t
    b1, b2, eps = 0.9, 0.95, 1e-8
    bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
    kept = model.wte[st.fixed_row].clone() if st.fixed_row >= 0 else None
    for (name, shape, kind), p, g, m, v in zip(model.table, model.params(), grads, st.m, st.v):
        if kind == "theta" and st.cfg.vscale != LEARNED:
            continue
        if g is None:
            g = torch.zeros_like(p)
        wd = 0.0 if kind != "matrix" else (o.mlp_weight_decay if name in ("w_gate", "w_up", "w_down")
                                           else o.embed_weight_decay if name == "wte" else o.weight_decay)
        if wd:
            p.sub_(p * (lr * wd))
        m.mul_(b1).add_(g.to(m.dtype), alpha=1.0 - b1)
        v.mul_(b2).addcmul_(g.to(v.dtype), g.to(v.dtype), value=1.0 - b2)
        p.sub_((lr * (m / bc1) / ((v / bc2).sqrt() + eps)).to(p.dtype))
    if kept is not None:  # embed_fix_row: the row's old direction at the other rows' mean norm
        norms = model.wte.double().norm(dim=1)
        mean = (float(norms.sum()) - float(norms[st.fixed_row])) / (st.cfg.vocab_size - 1)
        own = float(kept.double().norm())
        model.wte[st.fixed_row] = kept * (mean / own) if own > 0 else 0


def evaluate(st, dl, n):
    """mean over the first n batches of the stream of each batch's mean loss"""
    n = min(n, dl.num_batches)
    total = 0.0
    lo, hi = my_rows(dl.B)
    micro = st.o.micro or (hi - lo)
    with torch.no_grad():
        for k in range(n):
            inp, tgt = dl.rows(dl.batch_starts(k), st.o.first_token, st.eot)
            s = torch.zeros((), dtype=torch.float64, device=st.device)
            for a in range(lo, hi, micro):
                with autocast_ctx(st):
                    s += st.model(inp[a:a + micro].to(st.device), tgt[a:a + micro].to(st.device)).double()
            total += float(allreduce_sum(s)) / int((tgt != IGNORE).sum())
    return total / n


def probe_run(st, dl, step, train_loss, val_loss, val_step):
    """forward + backward on the probe batch (batch 0 of dl), no update; the line, the JSON"""
    t0 = time.time()
    model = st.model
    inp, tgt = dl.rows(dl.batch_starts(0), st.o.first_token, st.eot)
    scored = int((tgt != IGNORE).sum())
    acc = ProbeAcc(st.cfg, dl.T, st.device)
    lo, hi = my_rows(dl.B)
    micro = st.o.probe_micro or min(st.o.micro or (hi - lo), 4)  # the probe keeps every attention weight
    for a in range(lo, hi, micro):
        x, y = inp[a:a + micro].to(st.device), tgt[a:a + micro].to(st.device)
        lsum = model(x, y, pb=acc)  # the probe measures in the parameters' precision (no autocast)
        acc.s["loss"] += lsum.detach().double()
        torch.autograd.grad(lsum / scored, [model.wte])  # only the hooks' sums are kept
    acc.allreduce()
    if st.device.type == "cuda":
        torch.cuda.synchronize()
    ms = (time.time() - t0) * 1e3
    if RANK != 0:
        return None
    pr = probe_finish(acc, model, dl.B, scored)
    say(probe_line(pr, step, ms))
    line, bad = probe_json(pr, st.cfg, step, train_loss, val_loss, val_step, ms, st.o.first_token,
                           model.vscale_path, model.sink_grad)
    if bad:
        sys.stderr.write("%s: warning: step %d: non-finite probe values written as null\n" % (PROG, step))
    append_line(st.probe_path, line)
    return pr


def sample(st, tok, n):
    """gradsink's model_sample: from end-of-text, the last T tokens as context, top-k at a temperature"""
    o, V = st.o, st.cfg.vocab_size
    rng = Rng(o.sample_seed)
    ctx = [st.eot]
    out = sys.stdout.buffer
    with torch.no_grad():
        for ln in range(1, n + 1):
            start = max(0, ln - o.T)
            x = torch.tensor([ctx[start:ln]], dtype=torch.int64, device=st.device)
            logits = st.model(x, None)[0, -1].double().cpu().tolist()
            nxt = sample_token(logits, o.temperature, o.top_k, rng)
            ctx.append(nxt)
            out.write(tok.tokens[nxt] if tok else b"<%d>" % nxt)
    out.write(b"\n")
    out.flush()


def sample_token(logits, temperature, top_k, rng):
    V = len(logits)
    if temperature <= 0:
        return max(range(V), key=lambda i: (logits[i], -i))
    maxv = max(logits)
    thresh = sorted(logits, reverse=True)[top_k - 1] if 0 < top_k < V else float("-inf")
    w = [math.exp((x - maxv) / temperature) if x >= thresh else 0.0 for x in logits]
    u, acc, last = rng.uniform() * sum(w), 0.0, 0
    for i in range(V):
        if logits[i] < thresh:
            continue
        acc += w[i]
        last = i
        if acc > u:
            return i
    return last


# ----------------------------------------------------------------------------
# main: gradsink's order: flags, tokenizer, configuration, data, model; evaluate, probe, train, sample

def main(argv):
    o = parse_args(argv)
    options_check(o)
    if torch is None:
        die("PyTorch is not installed for %s" % sys.executable)
    train = not o.eval_only and not o.probe_only and o.steps > 0
    # tokenizer: given, or beside the training file
    tok_path = o.tokenizer_path or os.path.join(os.path.dirname(o.train_path), "tokenizer.bin")
    tok = Tokenizer(tok_path) if o.tokenizer_path or os.path.lexists(tok_path) else None  # there but no file: refused
    # configuration: from the checkpoint (the flags given must agree) or from the flags
    ckpt_step, start_step, ck_path, ck_G = 0, 0, P_BOTH, 1.0
    if o.ckpt_in:
        cfg, ckpt_step, ck_path, ck_G = checkpoint_read_header(o.ckpt_in)
        for flag, dest, have in (("-V", "vocab_size", cfg.vocab_size), ("-C", "d_model", cfg.d_model),
                                 ("-L", "n_layer", cfg.n_layer), ("-H", "n_head", cfg.n_head),
                                 ("-F", "ffn_hidden", cfg.ffn_hidden)):
            if dest in o.given and getattr(o, dest) != have:
                die("flag %s %d disagrees with checkpoint %s (which has %d)" % (flag, getattr(o, dest), o.ckpt_in, have))
        if "n_kv_head" in o.given:
            if o.n_kv_head == 0 and cfg.n_kv_head != cfg.n_head:
                die("flag -K 0 (kv heads = heads) disagrees with checkpoint %s (which has %d kv heads for %d heads)" % (
                    o.ckpt_in, cfg.n_kv_head, cfg.n_head))
            if o.n_kv_head and o.n_kv_head != cfg.n_kv_head:
                die("flag -K %d disagrees with checkpoint %s (which has %d)" % (o.n_kv_head, o.ckpt_in, cfg.n_kv_head))
        if "vscale" in o.given and o.vscale != cfg.vscale:
            die("flag -a %s disagrees with checkpoint %s (which has %s)" % (VSCALE_NAMES[o.vscale], o.ckpt_in,
                                                                             VSCALE_NAMES[cfg.vscale]))
        if "seed" in o.given and not o.resume:
            die("flag --seed has no effect with -c %s without -r 1 (the model comes from the checkpoint)" % o.ckpt_in)
        if "vscale_lambda" in o.given:
            die("flag --vscale-lambda has no effect with -c %s (theta comes from the checkpoint)" % o.ckpt_in)
        if o.resume:  # without -r, a new schedule starts at step 0
            start_step = ckpt_step
            opt_path, sched = resume_opt_path(o.ckpt_in, ckpt_step)
            resume_schedule(o, opt_path, sched)
            train = not o.eval_only and not o.probe_only and o.steps > 0
        if o.T > cfg.max_seq_len:
            die("flag --seq-len %d is above checkpoint %s's max sequence length %d" % (o.T, o.ckpt_in, cfg.max_seq_len))
    else:
        V = o.vocab_size or (tok.vocab_size if tok else 0)
        if V == 0 and train:
            stat_regular(o.train_path)
        if V == 0:
            die("vocab size unknown: pass -V N or put tokenizer.bin beside the train file (or -z PATH)")
        cfg = Config(vocab_size=V, d_model=o.d_model, n_layer=o.n_layer, n_head=o.n_head,
                     n_kv_head=o.n_kv_head or o.n_head, ffn_hidden=o.ffn_hidden, max_seq_len=o.T, vscale=o.vscale,
                     eot=V - 1, rope_theta=10000.0, rms_norm_eps=1e-5)
    why = cfg.check()
    if why:
        die(why)
    if tok and tok.vocab_size != cfg.vocab_size:
        die("tokenizer %s has vocab %d but the model has %d" % (tok_path, tok.vocab_size, cfg.vocab_size))
    eot = tok.eot if tok else cfg.eot
    if o.resume and start_step > o.steps:
        die("checkpoint %s is at step %d, beyond --steps %d" % (o.ckpt_in, start_step, o.steps))
    end = o.stop_at if 0 < o.stop_at < o.steps else o.steps
    if 0 < o.stop_at < start_step:
        die("flag --stop-at %d is before the checkpoint's step %d" % (o.stop_at, start_step))
    vscale_path = o.vscale_path if (not o.ckpt_in or "vscale_path" in o.given) else ck_path
    sink_grad = o.sink_grad if (not o.ckpt_in or "sink_grad" in o.given) else ck_G
    if vscale_path != P_BOTH and cfg.vscale == OFF:
        die("flag --vscale-path %s: needs V-scale on, and checkpoint %s has it off" % (PATH_NAMES[vscale_path], o.ckpt_in))
    # data
    train_dl = TokenFile(o.train_path, o.B, o.T, cfg.vocab_size) if train else None
    have_val = bool(o.val_path) and o.val_batches > 0 and ("val_path" in o.given or os.path.isfile(o.val_path))
    val_dl = TokenFile(o.val_path, o.B, o.T, cfg.vocab_size) if have_val else None
    if o.eval_only and not have_val:
        die("--eval-only needs validation tokens (-j PATH)")
    probing = o.probe_only or (train and o.probe_every > 0)
    probe_dl = val_dl if have_val else train_dl
    if probing and not have_val:
        if not train:
            die("--probe needs validation tokens (-j PATH) for its probe batch")
        say("note: no validation file, so probes use the first training batch")
    # device, precision, ranks
    cuda_ok = torch.cuda.is_available()
    dev_name = ["auto", "cpu", "cuda"][o.device]
    if dev_name == "cuda" and not cuda_ok:
        die("flag --device cuda: this torch sees no GPU")
    use_cuda = dev_name == "cuda" or (dev_name == "auto" and cuda_ok)
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(device)
    if o.threads:
        torch.set_num_threads(o.threads)
    dtype_name = ["auto", "float32", "float64", "bf16"][o.dtype]
    if dtype_name == "auto":
        dtype_name = "bf16" if use_cuda else "float32"
    if WORLD > 1:
        torch.distributed.init_process_group("nccl" if use_cuda else "gloo")
    st = State()
    st.o, st.cfg, st.device, st.eot = o, cfg, device, eot
    st.autocast = dtype_name == "bf16"
    pdtype = torch.float64 if dtype_name == "float64" else torch.float32
    model = Twin(cfg, vscale_path, sink_grad, pdtype, device)
    model.use_sdpa = hasattr(F, "scaled_dot_product_attention") and (
        o.attention == 2 or (o.attention == 0 and use_cuda))
    if o.attention == 2 and not hasattr(F, "scaled_dot_product_attention"):
        die("flag --attention sdpa: this torch (%s) has no scaled_dot_product_attention" % torch.__version__)
    st.model = model
    st.m = [torch.zeros_like(p) for p in model.params()]
    st.v = [torch.zeros_like(p) for p in model.params()]
    st.adam_t = 0
    if o.ckpt_in:
        checkpoint_load(st, o.ckpt_in)
        if o.resume:
            optstate_load(st, opt_path, start_step)
    else:
        with torch.no_grad():
            n_mat = sum(p.numel() for (_, _, kind), p in zip(model.table, model.params()) if kind == "matrix")
            z, off = init_normals(o.seed, n_mat), 0
            for (name, shape, kind), p in zip(model.table, model.params()):
                if kind == "matrix":
                    p.copy_(z[off:off + p.numel()].view(shape))
                    off += p.numel()
                elif kind == "gain":
                    p.fill_(1.0)
                else:
                    # theta = log lambda, rounded to float32 as gradsink's float build stores it
                    p.fill_(float(torch.tensor(math.log(o.vscale_lambda), dtype=torch.float32)) if cfg.vscale != OFF else 0.0)
            del z
    st.fixed_row = eot if o.eot_row == 1 else -1
    st.ddp = None
    if WORLD > 1 and train:
        st.ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=[local_rank] if use_cuda else None,
                                                           broadcast_buffers=False)
    nparam = cfg.num_parameters()
    say("model: V %d | C %d | L %d | H %d | Hkv %d | D %d | F %d | vscale %s | %d parameters" % (
        cfg.vocab_size, cfg.d_model, cfg.n_layer, cfg.n_head, cfg.n_kv_head, cfg.d_model // cfg.n_head, cfg.ffn_hidden,
        VSCALE_NAMES[cfg.vscale], nparam))
    if cfg.rope_theta != 10000.0 or cfg.rms_norm_eps != 1e-5 or cfg.eot != cfg.vocab_size - 1:
        say("model: rope_theta %g | rms_norm_eps %g | eot %d (from the checkpoint)" % (cfg.rope_theta, cfg.rms_norm_eps,
                                                                                     cfg.eot))
    if vscale_path != P_BOTH or sink_grad != 1:
        say("interventions: vscale-path %s | sink-grad %g (the gradient is not the loss's)" % (PATH_NAMES[vscale_path],
                                                                                             sink_grad))
    micro = o.micro or o.B // WORLD
    say("twin: torch %s | %s | %s | %d rank%s x %d rows, micro-batch %d (%d accumulation step%s) | attention %s" % (
        torch.__version__, device, dtype_name, WORLD, "s" if WORLD > 1 else "", o.B // WORLD, micro,
        o.B // WORLD // micro, "s" if o.B // WORLD // micro > 1 else "", "sdpa" if model.use_sdpa else "explicit"))
    if o.eval_only:
        vl = evaluate(st, val_dl, o.val_batches)
        say("val loss %.4f (%d batches of %s)" % (vl, min(o.val_batches, val_dl.num_batches), o.val_path))
    st.probe_path = os.path.join(o.out_dir, "probes.jsonl")
    if probing and RANK == 0:
        make_dirs(o.out_dir)
    if o.probe_only:
        probe_run(st, probe_dl, ckpt_step, float("nan"), float("nan"), -1)
        say("appended to %s" % st.probe_path)
    if train:
        run_train(st, train_dl, val_dl, probe_dl, start_step, end, ckpt_step)
    do_sample = train or (o.ckpt_in and ((not o.probe_only and not o.eval_only) or "sample_tokens" in o.given))
    if o.sample_tokens > 0 and do_sample and RANK == 0:
        say("sample (temperature %g, top-k %d, seed %d):" % (o.temperature, o.top_k, o.sample_seed))
        sample(st, tok, o.sample_tokens)
    if WORLD > 1:
        # every file is written and synced; exit without tearing the process group down: torch 1.13's
        # DDP Reducer can deadlock in ~ProcessGroupGloo (a worker thread waits for the GIL the
        # destructor holds), which left a rank spinning forever here once in a few runs
        torch.distributed.barrier()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)


def make_dirs(path):
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        pass
    if not os.path.isdir(path):
        die("cannot create output directory %s" % path)


def run_train(st, train_dl, val_dl, probe_dl, start_step, end, ckpt_step):
    o = st.o
    if RANK == 0:
        make_dirs(o.out_dir)
    logf = None
    if RANK == 0:
        try:
            logf = open(os.path.join(o.out_dir, "log.txt"), "a")
        except OSError as e:
            die("cannot write %s: %s" % (os.path.join(o.out_dir, "log.txt"), e.strerror))
    ckpt_path = os.path.join(o.out_dir, "model.bin")
    say("train: %s (%d tokens, %d batches of %d x %d, rows %s) | steps %d..%d | lr %g -> %g | warmup %d | "
        "weight decay %g (MLP %g, embedding %g) | end-of-text row %s" % (
            o.train_path, train_dl.count, train_dl.num_batches, o.B, o.T, ROWS_NAMES[o.rows], start_step, o.steps,
            o.lr, o.min_lr, o.warmup, o.weight_decay, o.mlp_weight_decay, o.embed_weight_decay, EOTROW_NAMES[o.eot_row]))
    val_step, val_loss, train_loss = -1, float("nan"), float("nan")
    last_good = ("%s (step %d, where this run started)" % (o.ckpt_in, ckpt_step) if o.ckpt_in
                 else "none (this run has not written one yet)")
    step = start_step
    while step <= end:
        last = step == end
        if val_dl is not None and (last or (o.val_every > 0 and step % o.val_every == 0)):
            val_loss, val_step = evaluate(st, val_dl, o.val_batches), step
            say("step %5d | val loss %.4f" % (step, val_loss))
            if logf:
                logf.write("s:%d tel:%.6f\n" % (step, val_loss))
                logf.flush()
        if o.probe_every > 0 and (last or step == start_step or step % o.probe_every == 0):
            probe_run(st, probe_dl, step, train_loss, val_loss, val_step)
        if last:
            break
        if st.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.time()
        lr = lr_at(step, o.steps, o.warmup, o.lr, o.min_lr)
        starts = train_dl.random_starts(o.seed, step) if o.rows == 1 else train_dl.batch_starts(step)
        inp, tgt = train_dl.rows(starts, o.first_token, st.eot)
        loss, norm, status = train_step(st, inp, tgt, lr)
        train_loss = loss
        if status:
            if logf:
                logf.close()
            if status == 1:
                die("step %d: loss %g, grad norm %g: not finite, training stopped; last good checkpoint: %s" % (
                    step, loss, norm, last_good), 3)
            die("step %d: the update (lr %g) made a parameter not finite, training stopped; last good checkpoint: %s" % (
                step, lr, last_good), 3)
        if st.device.type == "cuda":
            torch.cuda.synchronize()
        dt = time.time() - t0
        say("step %5d/%d | loss %.4f | lr %.2e | norm %.4f | %.1f ms | %.0f tok/s" % (
            step, o.steps, loss, lr, norm, dt * 1e3, o.B * o.T / dt))
        if logf:
            logf.write("s:%d trl:%.9g\n" % (step, loss))
            logf.flush()
        if o.ckpt_every > 0 and (step + 1) % o.ckpt_every == 0 and step + 1 < end:
            if RANK == 0:
                checkpoint_save(st, ckpt_path, step + 1)
            last_good = "%s (step %d)" % (ckpt_path, step + 1)
        step += 1
    if logf:
        logf.close()
    if RANK == 0:
        checkpoint_save(st, ckpt_path, end)
        say("wrote %s (step %d)" % (ckpt_path, end))


if __name__ == "__main__":
    main(sys.argv[1:])
