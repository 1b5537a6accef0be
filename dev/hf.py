#!/usr/bin/env python3
"""dev/hf.py: the bridge between gradsink checkpoints and Hugging Face's Llama layout.

  dev/hf.py export CKPT OUT_DIR        gradsink model.bin -> OUT_DIR/config.json + model.safetensors (float32)
  dev/hf.py import HF_DIR CKPT         a LlamaForCausalLM folder (F32, F16 or BF16; one file or shards) -> model.bin
  dev/hf.py encode HF_DIR --input PATH --out DIR
                                       text -> DIR/train.bin, val.bin (llm.c token files) with the model's own
                                       tokenizer (needs the `tokenizers` package), and DIR/tokenizer.bin for decoding

Standard library only (encode excepted). Both directions stream tensor by tensor: memory stays near
the largest tensor, whatever the model's size. gradsink's model is HF's LlamaForCausalLM without
biases: the same tensor layouts, RoPE with HF's rotate-half pairing (dimension i with i + D/2), so no
row is permuted on the way. What gradsink cannot represent is refused in one line, exit 2.
export reads checkpoint versions 1, 2 and 3; import writes version 2.
"""

import array
import json
import math
import os
import stat
import struct
import sys

HEADER_INTS = 256
CKPT_MAGIC, CKPT_VERSION = 20261128, 2  # import writes version 2; export reads 1, 2 and 3
ROPE_THETA_DEFAULT, RMSNORM_EPS_DEFAULT = 10000.0, 1e-5  # gradsink's (and version-1 files')
HF_EPS_DEFAULT = 1e-6  # LlamaConfig's default rms_norm_eps, when config.json does not say
VSCALE_NAMES = ["off", "fixed", "learned"]
# gradsink's limits (config_check in gradsink.c)
MAX_VOCAB, MAX_WIDTH, MAX_LAYERS, MAX_FFN, MAX_SEQ_LEN, MAX_PARAMETERS = 65536, 16384, 1024, 1 << 20, 65536, 2**31 - 1
DTYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2}
CHUNK = 1 << 20  # elements converted at a time (F16)


class HFError(Exception):
    """A refusal or a bad file: printed as one line, exit 2."""


def open_regular(path, what):
    """A user-given file opened for reading; every reader of this script comes here. The path's type
    is checked before it is opened, since opening a FIFO or a device can block forever: anything but
    a regular file is refused in one line. The open is non-blocking and its type checked again, so a
    FIFO put in its place between the two cannot hang it either."""
    def kind(mode):
        for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                           (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                           (stat.S_ISSOCK, "a socket")):
            if test(mode):
                return name
        return None if stat.S_ISREG(mode) else "not a regular file"
    try:
        bad = kind(os.stat(path).st_mode)
        if bad is None:
            f = os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb")
            bad = kind(os.fstat(f.fileno()).st_mode)
            if bad is None:
                return f
            f.close()
    except OSError as e:
        raise HFError("cannot open %s %s: %s" % (what, path, e.strerror or e))
    raise HFError("cannot open %s %s: it is %s, not a regular file" % (what, path, bad))


# ---------------------------------------------------------------------------
# gradsink's checkpoint: header, and the tensors in their file order

def ckpt_tensors(c):
    """(name, shape, per_layer) in checkpoint order; shape is one layer's when per_layer."""
    V, C, L, F, D = c["V"], c["C"], c["L"], c["F"], c["C"] // c["H"]
    KV = c["Hkv"] * D
    return [("wte", (V, C), False), ("attn_norm", (C,), True), ("wq", (C, C), True), ("wk", (KV, C), True),
            ("wv", (KV, C), True), ("wo", (C, C), True), ("mlp_norm", (C,), True), ("w_gate", (F, C), True),
            ("w_up", (F, C), True), ("w_down", (C, F), True), ("vscale_theta", (c["Hkv"],), True),
            ("final_norm", (C,), False), ("lm_head", (V, C), False)]


# gradsink tensor -> HF name ({l}: the layer)
HF_NAMES = {"wte": "model.embed_tokens.weight", "attn_norm": "model.layers.{l}.input_layernorm.weight",
            "wq": "model.layers.{l}.self_attn.q_proj.weight", "wk": "model.layers.{l}.self_attn.k_proj.weight",
            "wv": "model.layers.{l}.self_attn.v_proj.weight", "wo": "model.layers.{l}.self_attn.o_proj.weight",
            "mlp_norm": "model.layers.{l}.post_attention_layernorm.weight",
            "w_gate": "model.layers.{l}.mlp.gate_proj.weight", "w_up": "model.layers.{l}.mlp.up_proj.weight",
            "w_down": "model.layers.{l}.mlp.down_proj.weight", "final_norm": "model.norm.weight",
            "lm_head": "lm_head.weight"}


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def num_parameters(c):
    return sum(numel(s) * (c["L"] if per else 1) for _, s, per in ckpt_tensors(c))


def config_problem(c):
    """gradsink.c's config_check: None, or what is wrong."""
    if not 2 <= c["V"] <= MAX_VOCAB:
        return "vocab size %d outside gradsink's 2..%d (its token files are uint16)" % (c["V"], MAX_VOCAB)
    if not 2 <= c["C"] <= MAX_WIDTH:
        return "hidden size %d outside gradsink's 2..%d" % (c["C"], MAX_WIDTH)
    if not 1 <= c["L"] <= MAX_LAYERS:
        return "%d layers, outside gradsink's 1..%d" % (c["L"], MAX_LAYERS)
    if c["H"] < 1 or c["Hkv"] < 1 or c["C"] % c["H"] or c["H"] % c["Hkv"]:
        return "%d heads and %d kv heads do not divide hidden size %d and each other" % (c["H"], c["Hkv"], c["C"])
    if (c["C"] // c["H"]) % 2:
        return "head size %d is odd (RoPE pairs dimensions)" % (c["C"] // c["H"])
    if not 1 <= c["F"] <= MAX_FFN:
        return "intermediate size %d outside gradsink's 1..%d" % (c["F"], MAX_FFN)
    if not 1 <= c["T"] <= MAX_SEQ_LEN:
        return "max sequence length %d outside 1..%d" % (c["T"], MAX_SEQ_LEN)
    if c["vscale"] not in (0, 1, 2):
        return "unknown V-scale mode %d" % c["vscale"]
    if not 0 <= c["eot"] < c["V"]:
        return "end-of-text id %d outside the vocab of %d" % (c["eot"], c["V"])
    if not (0 < c["theta"] < 1e300):
        return "rope_theta %r is not a finite number between 0 and 1e300" % c["theta"]
    if not (0 < c["eps"] < 1):
        return "rms_norm_eps %r is not a finite number between 0 and 1" % c["eps"]
    if num_parameters(c) > MAX_PARAMETERS:
        return "more than 2^31-1 parameters"
    return None


def read_ckpt_header(f, path):
    """The configuration in a gradsink checkpoint's header (f: the open file), every field checked.
    Versions 1, 2 and 3 are read; version 3's [16] (V-scale path) and [17-18] (the sink-grad factor
    G, float64) change training only, not the forward pass, so they are checked and then not used."""
    size = os.fstat(f.fileno()).st_size
    f.seek(0)
    raw = f.read(HEADER_INTS * 4)
    if len(raw) < HEADER_INTS * 4:
        raise HFError("%s: too short for a gradsink checkpoint header (%d bytes)" % (path, len(raw)))
    h = struct.unpack("<%di" % HEADER_INTS, raw)
    if h[0] != CKPT_MAGIC:
        raise HFError("%s: bad magic %d (not a gradsink checkpoint)" % (path, h[0]))
    if h[1] not in (1, 2, 3):
        raise HFError("%s: unsupported checkpoint version %d (expected 1, 2 or 3)" % (path, h[1]))
    c = dict(V=h[2], C=h[3], L=h[4], H=h[5], Hkv=h[6], F=h[7], T=h[8], vscale=h[9], step=h[10],
             theta=ROPE_THETA_DEFAULT, eps=RMSNORM_EPS_DEFAULT, eot=h[2] - 1)
    if h[1] >= 2:
        c["theta"], c["eps"] = struct.unpack_from("<dd", raw, 11 * 4)
        c["eot"] = h[15]
    if h[1] >= 3:
        (grad_factor,) = struct.unpack_from("<d", raw, 17 * 4)
        if h[16] not in (0, 1, 2):
            raise HFError("%s: header [16] V-scale path %d is not 0, 1 or 2" % (path, h[16]))
        if not math.isfinite(grad_factor):
            raise HFError("%s: header [17-18] sink-grad factor %r is not finite" % (path, grad_factor))
    why = config_problem(c)
    if why:
        raise HFError("%s: header describes an impossible model (%s)" % (path, why))
    want = HEADER_INTS * 4 + 4 * num_parameters(c)
    if size != want:
        raise HFError("%s: %d bytes, but its header implies %d (truncated or not a checkpoint)" % (path, size, want))
    return c


def ckpt_header_bytes(c):
    h = [0] * HEADER_INTS
    h[:11] = [CKPT_MAGIC, CKPT_VERSION, c["V"], c["C"], c["L"], c["H"], c["Hkv"], c["F"], c["T"], c["vscale"], c["step"]]
    h[15] = c["eot"]
    b = bytearray(struct.pack("<%di" % HEADER_INTS, *h))
    struct.pack_into("<dd", b, 11 * 4, c["theta"], c["eps"])
    return bytes(b)


# ---------------------------------------------------------------------------
# safetensors: 8-byte little-endian header length N, N bytes of JSON, then the data

class SafeFile:
    """One .safetensors file: its header checked against the file size; tensors read one at a time."""

    def __init__(self, path):
        self.path = path
        self.f = open_regular(path, "safetensors file")
        self.size = os.fstat(self.f.fileno()).st_size
        head = self.f.read(8)
        if len(head) < 8:
            raise HFError("%s: %d bytes, too short for a safetensors header (truncated?)" % (path, len(head)))
        n = struct.unpack("<Q", head)[0]
        if n > self.size - 8:
            raise HFError("%s: header of %d bytes points past the end of the file (%d bytes; truncated?)" %
                          (path, n, self.size))
        if n > 100 << 20:
            raise HFError("%s: header of %d bytes is too large for a safetensors file" % (path, n))
        try:
            meta = json.loads(self.f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise HFError("%s: header is not valid JSON (%s)" % (path, str(e).splitlines()[0]))
        if not isinstance(meta, dict):
            raise HFError("%s: header is not a JSON object" % path)
        self.data_start = 8 + n
        self.metadata = meta.pop("__metadata__", None)
        if not isinstance(self.metadata, dict):
            self.metadata = {}
        self.tensors = {}
        for name, t in meta.items():
            if not isinstance(t, dict) or not isinstance(t.get("dtype"), str) or not isinstance(t.get("shape"), list) \
                    or not isinstance(t.get("data_offsets"), list) or len(t["data_offsets"]) != 2 \
                    or not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0
                               for x in t["shape"] + t["data_offsets"]):
                raise HFError("%s: tensor %s has a malformed entry in the header" % (path, name))
            if t["dtype"] not in DTYPE_SIZE:
                raise HFError("%s: tensor %s has dtype %s; gradsink imports F32, F16 and BF16" % (path, name, t["dtype"]))
            b, e = t["data_offsets"]
            if e < b or e - b != numel(t["shape"]) * DTYPE_SIZE[t["dtype"]]:
                raise HFError("%s: tensor %s: data_offsets [%d, %d] do not hold shape %s in %s" %
                              (path, name, b, e, t["shape"], t["dtype"]))
            if self.data_start + e > self.size:
                raise HFError("%s: tensor %s ends at byte %d, past the end of the file (%d bytes; truncated?)" %
                              (path, name, self.data_start + e, self.size))
            self.tensors[name] = (t["dtype"], tuple(t["shape"]), b, e)
        # the data section as a whole, as the format requires: taken in offset order, the tensors
        # tile it exactly, with no two overlapping (one tensor's bytes read as another's), no gap
        # and nothing after the last
        pos, prev = 0, None
        for name, (_, _, b, e) in sorted(self.tensors.items(), key=lambda kv: (kv[1][2], kv[1][3], kv[0])):
            if b < pos:
                raise HFError("%s: tensors %s and %s overlap (data_offsets [%d, %d] and [%d, %d])" %
                              (path, prev, name, self.tensors[prev][2], pos, b, e))
            if b > pos:
                raise HFError("%s: data bytes %d to %d, before tensor %s, belong to no tensor (safetensors data "
                              "has no gaps)" % (path, pos, b, name))
            pos, prev = e, name
        if self.data_start + pos != self.size:
            raise HFError("%s: %d bytes after the last tensor's data (safetensors data ends with its last tensor)" %
                          (path, self.size - self.data_start - pos))

    def read_f32(self, name):
        """The tensor as little-endian float32 bytes, converted exactly from F16 or BF16."""
        dtype, _, b, e = self.tensors[name]
        self.f.seek(self.data_start + b)
        raw = self.f.read(e - b)
        if len(raw) != e - b:
            raise HFError("%s: could not read tensor %s (file changed or truncated?)" % (self.path, name))
        return to_f32(raw, dtype)

    def close(self):
        self.f.close()


def bf16_to_f32(raw):
    """BF16 is the top half of a float32: place each 2-byte value in the high half of 4 bytes."""
    out = bytearray(2 * len(raw))
    out[2::4] = raw[0::2]
    out[3::4] = raw[1::2]
    return out


def f16_to_f32(raw):
    """IEEE half to float32, exactly (struct's 'e'; subnormals, infinities and NaNs kept)."""
    n = len(raw) // 2
    out = bytearray()
    for i in range(0, n, CHUNK):
        k = min(CHUNK, n - i)
        a = array.array("f", struct.unpack_from("<%de" % k, raw, 2 * i))
        if sys.byteorder == "big":
            a.byteswap()
        out += a.tobytes()
    return out


def to_f32(raw, dtype):
    if dtype == "F32":
        return bytearray(raw)
    return bf16_to_f32(raw) if dtype == "BF16" else f16_to_f32(raw)


def first_nonfinite(f32):
    """Index of the first NaN or infinity in little-endian float32 bytes, or -1."""
    mv = memoryview(f32).cast("f")
    if math.isfinite(sum(mv)):  # a sum of finite floats32 cannot overflow a double
        return -1
    for i, x in enumerate(mv):
        if not math.isfinite(x):
            return i
    return -1


# ---------------------------------------------------------------------------
# export: gradsink checkpoint -> config.json + model.safetensors (float32)

def hf_layout(c):
    """[(hf_name, shape, gradsink byte offset)] in HF's model order."""
    offsets, off = {}, HEADER_INTS * 4
    for name, shape, per in ckpt_tensors(c):
        offsets[name] = (off, shape, per)
        off += 4 * numel(shape) * (c["L"] if per else 1)
    out = [(HF_NAMES["wte"], offsets["wte"][1], offsets["wte"][0])]
    for l in range(c["L"]):
        for name in ("attn_norm", "wq", "wk", "wv", "wo", "mlp_norm", "w_gate", "w_up", "w_down"):
            base, shape, _ = offsets[name]
            out.append((HF_NAMES[name].format(l=l), shape, base + 4 * numel(shape) * l))
    for name in ("final_norm", "lm_head"):
        out.append((HF_NAMES[name], offsets[name][1], offsets[name][0]))
    return out, offsets


def hf_config(c):
    return {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
        "hidden_size": c["C"], "intermediate_size": c["F"], "num_hidden_layers": c["L"],
        "num_attention_heads": c["H"], "num_key_value_heads": c["Hkv"], "head_dim": c["C"] // c["H"],
        "vocab_size": c["V"], "rms_norm_eps": c["eps"], "rope_theta": c["theta"], "rope_scaling": None,
        "max_position_embeddings": c["T"], "tie_word_embeddings": False, "torch_dtype": "float32",
        "attention_bias": False, "mlp_bias": False, "bos_token_id": c["eot"], "eos_token_id": c["eot"],
        "initializer_range": 0.02, "pretraining_tp": 1, "use_cache": True}


def atomic_write(path, write):
    """write(f) into PATH.tmp, fsync'ed, then renamed to path. A stale PATH.tmp is removed and the
    file created anew (O_EXCL), never opened: if it were a FIFO, the open would block."""
    tmp = path + ".tmp"
    try:
        if os.path.lexists(tmp):
            os.remove(tmp)
        with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:  # a refusal while writing leaves no file behind either
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise HFError("cannot write %s: %s" % (path, e.strerror or e))
        raise


def cmd_export(ckpt, out_dir):
    f = open_regular(ckpt, "checkpoint")
    c = read_ckpt_header(f, ckpt)
    if c["vscale"] != 0:
        raise HFError("%s uses V-scale (%s), which Hugging Face's Llama does not have: only -a off checkpoints export"
                      % (ckpt, VSCALE_NAMES[c["vscale"]]))
    layout, offsets = hf_layout(c)
    f.seek(offsets["vscale_theta"][0])
    if any(f.read(4 * c["L"] * c["Hkv"])):
        raise HFError("%s: V-scale is off but vscale_theta is not zero; HF's Llama cannot hold it" % ckpt)
    entries, pos = {}, 0
    for name, shape, _ in layout:
        n = 4 * numel(shape)
        entries[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [pos, pos + n]}
        pos += n
    entries["__metadata__"] = {"format": "pt", "gradsink_step": str(c["step"])}
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-(8 + len(header)) % 8)  # the data starts 8-byte aligned
    created = not os.path.isdir(out_dir)
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise HFError("cannot create %s: %s" % (out_dir, e.strerror or e))

    def write_model(out):
        """the tensors in HF's order, each checked finite as it is copied (HF's loaders take NaN and
        infinities, and gradsink's import would refuse the result)"""
        out.write(struct.pack("<Q", len(header)) + header)
        for name, shape, off in layout:
            f.seek(off)
            left, done = 4 * numel(shape), 0
            while left:
                buf = f.read(min(left, 64 << 20))
                if not buf or len(buf) % 4:
                    raise HFError("%s: changed while being read" % ckpt)
                bad = first_nonfinite(buf)
                if bad >= 0:
                    raise HFError("%s: tensor %s holds a non-finite value (%r) at index %d; nothing exported" %
                                  (ckpt, name, memoryview(buf).cast("f")[bad], done + bad))
                out.write(buf)
                left -= len(buf)
                done += len(buf) // 4

    try:
        atomic_write(os.path.join(out_dir, "model.safetensors"), write_model)
    except HFError:
        if created:  # a refused export leaves nothing behind, not even the folder it made
            try:
                os.rmdir(out_dir)
            except OSError:
                pass
        raise
    f.close()
    cfg = (json.dumps(hf_config(c), indent=2) + "\n").encode()
    atomic_write(os.path.join(out_dir, "config.json"), lambda out: out.write(cfg))
    print("exported %s (step %d, %d parameters) to %s/config.json and model.safetensors (float32)" %
          (ckpt, c["step"], num_parameters(c) - c["L"] * c["Hkv"], out_dir))


# ---------------------------------------------------------------------------
# import: HF Llama folder -> gradsink checkpoint

def load_json(path, what):
    with open_regular(path, what) as f:
        try:
            return json.loads(f.read().decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise HFError("%s %s is not valid JSON (%s)" % (what, path, str(e).splitlines()[0]))


def shown(v):
    """A JSON value for a message, cut short (an integer can have thousands of digits)."""
    r = repr(v)
    return r if len(r) <= 40 else "%s... (%d characters)" % (r[:30], len(r))


def config_number(path, key, v, lo, hi, default=None, why="gradsink's limits"):
    """A number of config.json, or the default when it is absent or null. An integer in lo..hi (hi
    None: no upper bound) when lo is an int, else a finite number strictly between lo and hi.
    Anything else is refused in one line naming the file and the key: a bool, a string, a list,
    inf or nan (JSON's 1e400 parses as inf), an integer too large for a float."""
    if v is None:
        if default is None:
            raise HFError("%s: %s is missing" % (path, key))
        v = default
    want_int = isinstance(lo, int)
    if isinstance(v, bool) or not isinstance(v, int if want_int else (int, float)):
        raise HFError("%s: %s is %s, not %s" % (path, key, shown(v), "an integer" if want_int else "a number"))
    if want_int:
        if not (lo <= v and (hi is None or v <= hi)):
            raise HFError("%s: %s %s is outside %d..%s (%s)" % (path, key, shown(v), lo, "" if hi is None else hi, why))
        return v
    x = float(v) if abs(v) <= 1e308 else math.inf  # float() of a huge integer would raise OverflowError
    if not (math.isfinite(x) and lo < x < hi):
        raise HFError("%s: %s %s is not a finite number between %g and %g (%s)" % (path, key, shown(v), lo, hi, why))
    return x


def read_hf_config(hf_dir):
    """config.json -> gradsink's configuration, refusing what gradsink's Llama cannot represent.
    Every field read is checked for its type and range here, each refusal naming the file and the key."""
    path = os.path.join(hf_dir, "config.json")
    cfg = load_json(path, "config")
    if not isinstance(cfg, dict):
        raise HFError("%s is not a JSON object" % path)

    def flag(key):
        v = cfg.get(key)
        if v is not None and not isinstance(v, bool):
            raise HFError("%s: %s is %s, not true or false" % (path, key, shown(v)))
        return bool(v)

    def num(key, lo, hi, default=None, why="gradsink's limits"):
        return config_number(path, key, cfg.get(key), lo, hi, default, why)

    arch = cfg.get("architectures")
    if arch is not None and arch != ["LlamaForCausalLM"]:
        raise HFError("%s: architecture %s; gradsink imports LlamaForCausalLM only" % (path, shown(arch)))
    if arch is None and cfg.get("model_type") != "llama":
        raise HFError("%s: model_type %s; gradsink imports Llama (LlamaForCausalLM) only"
                      % (path, shown(cfg.get("model_type"))))
    if flag("attention_bias") or flag("mlp_bias"):
        raise HFError("%s: the model has biases (attention_bias/mlp_bias); gradsink's Llama has none" % path)
    # plain RoPE: rope_scaling null (or of rope_type "default"); newer configs say it in rope_parameters
    rope = cfg.get("rope_parameters")
    if rope is not None and not isinstance(rope, dict):
        raise HFError("%s: rope_parameters %s is not an object" % (path, shown(rope)))
    for key, val in (("rope_scaling", cfg.get("rope_scaling")), ("rope_parameters", rope)):
        if val is not None and (not isinstance(val, dict) or val.get("rope_type", val.get("type")) != "default"
                                or set(val) - {"rope_type", "type", "rope_theta"}):
            raise HFError("%s: %s %s; gradsink's RoPE has no scaling" % (path, key, shown(val)))
    if cfg.get("hidden_act", "silu") != "silu":
        raise HFError("%s: hidden_act %s; gradsink's MLP is SwiGLU (silu)" % (path, shown(cfg["hidden_act"])))

    c = dict(V=num("vocab_size", 2, MAX_VOCAB, why="gradsink's token files are uint16"),
             C=num("hidden_size", 2, MAX_WIDTH), L=num("num_hidden_layers", 1, MAX_LAYERS), vscale=0, step=0)
    c["H"] = num("num_attention_heads", 1, c["C"], why="at most hidden_size")
    c["Hkv"] = num("num_key_value_heads", 1, c["H"], c["H"], why="at most num_attention_heads")
    c["F"] = num("intermediate_size", 1, MAX_FFN)
    c["T"] = num("max_position_embeddings", 1, None, 2048)
    if rope and "rope_theta" in rope:
        c["theta"] = config_number(path, "rope_parameters.rope_theta", rope["rope_theta"], 0.0, 1e300,
                                   ROPE_THETA_DEFAULT)
    else:
        c["theta"] = num("rope_theta", 0.0, 1e300, ROPE_THETA_DEFAULT)
    c["eps"] = num("rms_norm_eps", 0.0, 1.0, HF_EPS_DEFAULT)
    if cfg.get("head_dim") is not None and num("head_dim", 1, c["C"]) != c["C"] // c["H"]:
        raise HFError("%s: head_dim %s is not hidden_size / num_attention_heads = %d; gradsink's head size is "
                      "always hidden_size / num_attention_heads" % (path, shown(cfg["head_dim"]), c["C"] // c["H"]))
    tied = flag("tie_word_embeddings")
    if c["T"] > MAX_SEQ_LEN:
        print("note: max_position_embeddings %s is above gradsink's %d; the checkpoint allows T up to %d" %
              (shown(c["T"]), MAX_SEQ_LEN, MAX_SEQ_LEN), file=sys.stderr)
        c["T"] = MAX_SEQ_LEN
    # end-of-text: eos_token_id, else bos_token_id (an id or a list of ids, the first used), else V-1
    c["eot"] = c["V"] - 1
    for key in ("bos_token_id", "eos_token_id"):
        v = cfg.get(key)
        ids = v if isinstance(v, list) else [] if v is None else [v]
        ids = [config_number(path, "%s[%d]" % (key, i) if isinstance(v, list) else key, x, 0, c["V"] - 1,
                             why="an id of the vocab") for i, x in enumerate(ids)]
        if ids:
            c["eot"] = ids[0]
    why = config_problem(c)
    if why:
        raise HFError("%s: gradsink cannot hold this model: %s" % (path, why))
    return c, tied


def open_hf_tensors(hf_dir):
    """{tensor name: SafeFile} over model.safetensors, or the shards model.safetensors.index.json names."""
    single, index = os.path.join(hf_dir, "model.safetensors"), os.path.join(hf_dir, "model.safetensors.index.json")
    if os.path.exists(single):
        sf = SafeFile(single)
        return {name: sf for name in sf.tensors}, [sf]
    if not os.path.exists(index):
        raise HFError("%s has neither model.safetensors nor model.safetensors.index.json" % hf_dir)
    idx = load_json(index, "shard index")
    wm = idx.get("weight_map") if isinstance(idx, dict) else None
    if not isinstance(wm, dict) or not all(isinstance(v, str) for v in wm.values()):
        raise HFError("%s: no weight_map of tensor names to file names" % index)
    files, where = {}, {}
    for name, fname in sorted(wm.items()):
        if os.path.isabs(fname) or ".." in fname.replace("\\", "/").split("/"):
            raise HFError("%s: shard %r is not a file inside %s" % (index, fname, hf_dir))
        if fname not in files:
            files[fname] = SafeFile(os.path.join(hf_dir, fname))
        if name not in files[fname].tensors:
            raise HFError("%s: tensor %s is mapped to %s, which does not hold it" % (index, name, fname))
        where[name] = files[fname]
    for fname, sf in files.items():
        for name in sf.tensors:
            if wm.get(name) != fname:
                raise HFError("%s holds tensor %s, which %s does not map to it" % (sf.path, name, index))
    return where, list(files.values())


def cmd_import(hf_dir, ckpt):
    c, tied = read_hf_config(hf_dir)
    where, files = open_hf_tensors(hf_dir)
    # the tensors gradsink needs, with their shapes; nothing missing, nothing extra, nothing mis-shaped
    want = {}
    for name, shape, per in ckpt_tensors(c):
        if name == "vscale_theta" or (name == "lm_head" and tied):
            continue
        for l in range(c["L"] if per else 1):
            want[HF_NAMES[name].format(l=l)] = shape
    for name in sorted(want):
        if name not in where:
            raise HFError("%s: missing tensor %s" % (hf_dir, name))
    for name in sorted(where):
        if name not in want and not (tied and name == "lm_head.weight"):  # tied: HF ignores a stored lm_head too
            why = "a bias: gradsink's Llama has none" if name.endswith(".bias") else "not part of gradsink's Llama"
            raise HFError("%s: unexpected tensor %s (%s)" % (hf_dir, name, why))
    for name, shape in want.items():
        got = where[name].tensors[name][1]
        if got != shape:
            raise HFError("%s: tensor %s has shape %s, expected %s" % (hf_dir, name, list(got), list(shape)))
    step = files[0].metadata.get("gradsink_step") if len(files) == 1 else None
    c["step"] = int(step) if isinstance(step, str) and step.isdigit() and int(step) < 2**31 else 0
    dtypes = sorted({where[n].tensors[n][0] for n in want})

    def write_ckpt(out):
        out.write(ckpt_header_bytes(c))
        for name, shape, per in ckpt_tensors(c):
            for l in range(c["L"] if per else 1):
                if name == "vscale_theta":
                    out.write(bytes(4 * numel(shape)))
                    continue
                hf = HF_NAMES["wte" if name == "lm_head" and tied else name].format(l=l)
                data = where[hf].read_f32(hf)
                bad = first_nonfinite(data)
                if bad >= 0:
                    raise HFError("%s: tensor %s holds a non-finite value at index %d (gradsink refuses NaN and "
                                  "infinite weights)" % (where[hf].path, hf, bad))
                out.write(data)
                del data

    if os.path.dirname(ckpt):
        try:
            os.makedirs(os.path.dirname(ckpt), exist_ok=True)
        except OSError as e:
            raise HFError("cannot create %s: %s" % (os.path.dirname(ckpt), e.strerror or e))
    atomic_write(ckpt, write_ckpt)
    for sf in files:
        sf.close()
    print("imported %s (%s%s; V %d C %d L %d H %d Hkv %d F %d, rope_theta %g, eps %g, eot %d) to %s" %
          (hf_dir, "/".join(dtypes), ", tied embeddings: lm_head copied from the embedding" if tied else "",
           c["V"], c["C"], c["L"], c["H"], c["Hkv"], c["F"], c["theta"], c["eps"], c["eot"], ckpt))


# ---------------------------------------------------------------------------
# encode: text -> llm.c token files with the model's own tokenizer

def byte_level_decoder():
    """GPT-2's byte-level alphabet, reversed: unicode char -> byte."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def token_bytes(piece, special, bl):
    """A vocabulary entry's bytes: byte-level BPE (GPT-2, SmolLM; bl is the reversed alphabet), else
    SentencePiece-style (<0xNN> byte tokens, U+2581 for a space) or as written."""
    if piece is None:
        return b""
    if special:
        return piece.encode("utf-8")
    if bl is not None and all(ch in bl for ch in piece):
        return bytes(bl[ch] for ch in piece)
    if len(piece) == 6 and piece.startswith("<0x") and piece.endswith(">"):
        try:
            return bytes([int(piece[3:5], 16)])
        except ValueError:
            pass
    return piece.replace("\u2581", " ").encode("utf-8")


def tokenizer_module():
    """tokenizer.py (beside dev/), whose document reader, packing and token-file writer encode shares."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import tokenizer
    return tokenizer


def write_token_files(out_dir, docs, eot, V, vocab_bytes, val_fraction, seed):
    """docs: token-id lists. Packs them as tokenizer.py does (EOT before each document; whole
    documents to val) and writes train.bin, val.bin and tokenizer.bin with its write_outputs: the
    same rules (no val.bin with --val-fraction 0, an earlier one removed; no token file too small
    for gradsink; every file atomic). Returns train, val, the paths written and a note or None."""
    T = tokenizer_module()
    for d in docs:
        for t in d:
            if not 0 <= t < V:
                raise HFError("the tokenizer produced id %d, outside the model's vocab of %d" % (t, V))
    train, val, _ = T.pack_and_split(docs, eot, val_fraction, seed)
    try:
        # only the decoding table (no merges); a token's bytes are cut at tokenizer.bin's 65535
        tok_bytes = T.tokenizer_file_bytes([b[:65535] for b in vocab_bytes], [], eot)
        written, note = T.write_outputs(out_dir, train, val, tok_bytes, val_fraction)
    except T.UserError as e:
        raise HFError(str(e))
    return train, val, written, note


def cmd_encode(hf_dir, input_path, out_dir, val_fraction, seed):
    c, _ = read_hf_config(hf_dir)
    try:
        import tokenizers
    except ImportError:
        raise HFError("encode needs the Python package 'tokenizers' (pip install tokenizers), which is not installed")
    tj = os.path.join(hf_dir, "tokenizer.json")
    tj_json = load_json(tj, "tokenizer")  # first: its type is checked before the package opens it
    try:
        tok = tokenizers.Tokenizer.from_file(tj)
    except Exception as e:  # the package's own errors: one line
        raise HFError("cannot load %s: %s" % (tj, str(e).splitlines()[0] if str(e) else type(e).__name__))
    T = tokenizer_module()
    try:
        docs = T.read_documents(input_path)
    except T.UserError as e:
        raise HFError(str(e))
    ids = [tok.encode(text, add_special_tokens=False).ids for _, text in docs]
    special = {getattr(t, "content", None) for t in tok.get_added_tokens_decoder().values()} \
        if hasattr(tok, "get_added_tokens_decoder") else set()
    byte_level = isinstance(tj_json, dict) and "ByteLevel" in json.dumps(tj_json.get("decoder"))
    bl = byte_level_decoder() if byte_level else None
    vocab = []
    for i in range(c["V"]):
        piece = tok.id_to_token(i)
        vocab.append(token_bytes(piece, piece in special, bl))
    train, val, written, note = write_token_files(out_dir, ids, c["eot"], c["V"], vocab, val_fraction, seed)
    if note:
        print(note)
    print("encoded %d documents of %s with %s: train %d tokens, val %d; wrote %s (tokenizer.bin decodes only)"
          % (len(docs), input_path, tj, len(train), len(val), ", ".join(written)))


# ---------------------------------------------------------------------------

USAGE = __doc__.split("\n\n")[0] + "\n\n" + __doc__.split("\n\n")[1]


def main(argv):
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    cmd, args = argv[0], argv[1:]
    if cmd == "export" and len(args) == 2:
        cmd_export(args[0], args[1])
    elif cmd == "import" and len(args) == 2:
        cmd_import(args[0], args[1])
    elif cmd == "encode" and args:
        opts = {"--input": None, "--out": None, "--val-fraction": "0.1", "--seed": "1337"}
        rest, i = [], 0
        while i < len(args):
            if args[i] in opts:
                if i + 1 >= len(args):
                    raise HFError("encode: %s needs a value" % args[i])
                opts[args[i]] = args[i + 1]
                i += 2
            else:
                rest.append(args[i])
                i += 1
        if len(rest) != 1 or not opts["--input"] or not opts["--out"]:
            raise HFError("usage: dev/hf.py encode HF_DIR --input PATH --out DIR [--val-fraction F] [--seed S]")
        try:
            vf, seed = float(opts["--val-fraction"]), int(opts["--seed"])
        except ValueError:
            raise HFError("encode: --val-fraction must be a number and --seed an integer")
        if not 0 <= vf < 1:
            raise HFError("encode: --val-fraction must be in [0, 1)")
        cmd_encode(rest[0], opts["--input"], opts["--out"], vf, seed)
    else:
        raise HFError("usage: dev/hf.py export CKPT OUT_DIR | import HF_DIR CKPT | encode HF_DIR --input PATH --out DIR")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except HFError as e:
        print("hf.py: error: %s" % " ".join(str(e).splitlines()), file=sys.stderr)  # one line, whatever a path holds
        sys.exit(2)
    except MemoryError:
        print("hf.py: error: out of memory", file=sys.stderr)
        sys.exit(2)
    except OSError as e:
        print("hf.py: error: %s" % e, file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # a bug: still one line, never a traceback
        print("hf.py: error: internal error: %s: %s" % (type(e).__name__, " ".join(str(e).splitlines())),
              file=sys.stderr)
        sys.exit(2)
