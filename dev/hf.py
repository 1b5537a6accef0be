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
"""

import array
import json
import math
import os
import struct
import sys

HEADER_INTS = 256
CKPT_MAGIC, CKPT_VERSION = 20261128, 2
ROPE_THETA_DEFAULT, RMSNORM_EPS_DEFAULT = 10000.0, 1e-5  # gradsink's (and version-1 files')
HF_EPS_DEFAULT = 1e-6  # LlamaConfig's default rms_norm_eps, when config.json does not say
VSCALE_NAMES = ["off", "fixed", "learned"]
# gradsink's limits (config_check in gradsink.c)
MAX_VOCAB, MAX_WIDTH, MAX_LAYERS, MAX_FFN, MAX_SEQ_LEN, MAX_PARAMETERS = 65536, 16384, 1024, 1 << 20, 65536, 2**31 - 1
DTYPE_SIZE = {"F32": 4, "F16": 2, "BF16": 2}
CHUNK = 1 << 20  # elements converted at a time (F16)


class HFError(Exception):
    """A refusal or a bad file: printed as one line, exit 2."""


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
        return "vocab size %d: gradsink's token files are uint16, so at most %d" % (c["V"], MAX_VOCAB)
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
        return "rope_theta %r is not positive and finite" % c["theta"]
    if not (0 < c["eps"] < 1):
        return "rms_norm_eps %r is not in (0, 1)" % c["eps"]
    if num_parameters(c) > MAX_PARAMETERS:
        return "more than 2^31-1 parameters"
    return None


def read_ckpt_header(path):
    try:
        f = open(path, "rb")
    except OSError as e:
        raise HFError("cannot open checkpoint %s: %s" % (path, e.strerror or e))
    with f:
        size = os.fstat(f.fileno()).st_size
        raw = f.read(HEADER_INTS * 4)
    if len(raw) < HEADER_INTS * 4:
        raise HFError("%s: too short for a gradsink checkpoint header (%d bytes)" % (path, len(raw)))
    h = struct.unpack("<%di" % HEADER_INTS, raw)
    if h[0] != CKPT_MAGIC:
        raise HFError("%s: bad magic %d (not a gradsink checkpoint)" % (path, h[0]))
    if h[1] not in (1, 2):
        raise HFError("%s: unsupported checkpoint version %d (expected 1 or 2)" % (path, h[1]))
    c = dict(V=h[2], C=h[3], L=h[4], H=h[5], Hkv=h[6], F=h[7], T=h[8], vscale=h[9], step=h[10],
             theta=ROPE_THETA_DEFAULT, eps=RMSNORM_EPS_DEFAULT, eot=h[2] - 1)
    if h[1] >= 2:
        c["theta"], c["eps"] = struct.unpack_from("<dd", raw, 11 * 4)
        c["eot"] = h[15]
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
        try:
            self.f = open(path, "rb")
        except OSError as e:
            raise HFError("cannot open %s: %s" % (path, e.strerror or e))
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
    tmp = path + ".tmp"
    try:
        with open(tmp, "wb") as f:
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
    c = read_ckpt_header(ckpt)
    if c["vscale"] != 0:
        raise HFError("%s uses V-scale (%s), which Hugging Face's Llama does not have: only -a off checkpoints export"
                      % (ckpt, VSCALE_NAMES[c["vscale"]]))
    layout, offsets = hf_layout(c)
    with open(ckpt, "rb") as f:
        f.seek(offsets["vscale_theta"][0])
        theta = f.read(4 * c["L"] * c["Hkv"])
    if any(theta):
        raise HFError("%s: V-scale is off but vscale_theta is not zero; HF's Llama cannot hold it" % ckpt)
    entries, pos = {}, 0
    for name, shape, _ in layout:
        n = 4 * numel(shape)
        entries[name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [pos, pos + n]}
        pos += n
    entries["__metadata__"] = {"format": "pt", "gradsink_step": str(c["step"])}
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-(8 + len(header)) % 8)  # the data starts 8-byte aligned
    try:
        os.makedirs(out_dir, exist_ok=True)
    except OSError as e:
        raise HFError("cannot create %s: %s" % (out_dir, e.strerror or e))

    def write_model(out):
        out.write(struct.pack("<Q", len(header)) + header)
        with open(ckpt, "rb") as f:
            for _, shape, off in layout:
                f.seek(off)
                left = 4 * numel(shape)
                while left:
                    buf = f.read(min(left, 64 << 20))
                    if not buf:
                        raise HFError("%s: changed while being read" % ckpt)
                    out.write(buf)
                    left -= len(buf)

    atomic_write(os.path.join(out_dir, "model.safetensors"), write_model)
    cfg = (json.dumps(hf_config(c), indent=2) + "\n").encode()
    atomic_write(os.path.join(out_dir, "config.json"), lambda f: f.write(cfg))
    print("exported %s (step %d, %d parameters) to %s/config.json and model.safetensors (float32)" %
          (ckpt, c["step"], num_parameters(c) - c["L"] * c["Hkv"], out_dir))


# ---------------------------------------------------------------------------
# import: HF Llama folder -> gradsink checkpoint

def load_json(path, what):
    try:
        with open(path, "rb") as f:
            return json.loads(f.read().decode("utf-8"))
    except OSError as e:
        raise HFError("cannot read %s %s: %s" % (what, path, e.strerror or e))
    except (UnicodeDecodeError, ValueError) as e:
        raise HFError("%s %s is not valid JSON (%s)" % (what, path, str(e).splitlines()[0]))


def token_id(cfg, key):
    v = cfg.get(key)
    if isinstance(v, list):
        v = v[0] if v else None
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def read_hf_config(hf_dir):
    """config.json -> gradsink's configuration, refusing what gradsink's Llama cannot represent."""
    path = os.path.join(hf_dir, "config.json")
    cfg = load_json(path, "config")
    if not isinstance(cfg, dict):
        raise HFError("%s is not a JSON object" % path)
    arch = cfg.get("architectures")
    if arch is not None and arch != ["LlamaForCausalLM"]:
        raise HFError("%s: architecture %s; gradsink imports LlamaForCausalLM only" % (path, arch))
    if arch is None and cfg.get("model_type") != "llama":
        raise HFError("%s: model_type %r; gradsink imports Llama (LlamaForCausalLM) only" % (path, cfg.get("model_type")))
    if cfg.get("attention_bias") or cfg.get("mlp_bias"):
        raise HFError("%s: the model has biases (attention_bias/mlp_bias); gradsink's Llama has none" % path)
    # plain RoPE: rope_scaling null (or of rope_type "default"); newer configs say it in rope_parameters
    rope = cfg.get("rope_parameters")
    if rope is not None and not isinstance(rope, dict):
        raise HFError("%s: rope_parameters %s is not an object" % (path, json.dumps(rope)))
    for key, val in (("rope_scaling", cfg.get("rope_scaling")), ("rope_parameters", rope)):
        if val is not None and (not isinstance(val, dict) or val.get("rope_type", val.get("type")) != "default"
                                or set(val) - {"rope_type", "type", "rope_theta"}):
            raise HFError("%s: %s %s; gradsink's RoPE has no scaling" % (path, key, json.dumps(val)))
    if rope and "rope_theta" in rope:
        cfg = dict(cfg, rope_theta=rope["rope_theta"])
    if cfg.get("hidden_act", "silu") != "silu":
        raise HFError("%s: hidden_act %r; gradsink's MLP is SwiGLU (silu)" % (path, cfg["hidden_act"]))

    def num(key, default=None, kind=int):
        v = cfg.get(key, default)
        if v is None:
            v = default
        if kind is int and not (isinstance(v, int) and not isinstance(v, bool)):
            raise HFError("%s: %s is %r, not an integer" % (path, key, v))
        if kind is float and not (isinstance(v, (int, float)) and not isinstance(v, bool)):
            raise HFError("%s: %s is %r, not a number" % (path, key, v))
        return kind(v)

    H = num("num_attention_heads")
    c = dict(V=num("vocab_size"), C=num("hidden_size"), L=num("num_hidden_layers"), H=H,
             Hkv=num("num_key_value_heads", H), F=num("intermediate_size"), T=num("max_position_embeddings", 2048),
             vscale=0, step=0, theta=num("rope_theta", ROPE_THETA_DEFAULT, float),
             eps=num("rms_norm_eps", HF_EPS_DEFAULT, float))
    if c["V"] > MAX_VOCAB:
        raise HFError("%s: vocab_size %d > %d: gradsink's token files are uint16" % (path, c["V"], MAX_VOCAB))
    if H > 0 and "head_dim" in cfg and cfg["head_dim"] is not None and cfg["head_dim"] != c["C"] // H:
        raise HFError("%s: head_dim %r is not hidden_size / num_attention_heads = %d; gradsink's head size is" %
                      (path, cfg["head_dim"], c["C"] // H))
    tied = cfg.get("tie_word_embeddings", False)
    if not isinstance(tied, bool):
        raise HFError("%s: tie_word_embeddings is %r, not true or false" % (path, tied))
    if c["T"] > MAX_SEQ_LEN:
        print("note: max_position_embeddings %d is above gradsink's %d; the checkpoint allows T up to %d" %
              (c["T"], MAX_SEQ_LEN, MAX_SEQ_LEN), file=sys.stderr)
        c["T"] = MAX_SEQ_LEN
    eot = token_id(cfg, "eos_token_id")
    if eot is None:
        eot = token_id(cfg, "bos_token_id")
    c["eot"] = eot if eot is not None else c["V"] - 1
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


def write_token_files(out_dir, docs, eot, V, vocab_bytes, val_fraction, seed):
    """docs: token-id lists. Packs them as tokenizer.py does (EOT before each document; whole
    documents to val) and writes train.bin, val.bin and tokenizer.bin."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import tokenizer as T
    for d in docs:
        for t in d:
            if not 0 <= t < V:
                raise HFError("the tokenizer produced id %d, outside the model's vocab of %d" % (t, V))
    train, val, _ = T.pack_and_split(docs, eot, val_fraction, seed)
    try:
        os.makedirs(out_dir, exist_ok=True)
        T.write_file(os.path.join(out_dir, "train.bin"), T.tokens_file_bytes(train))
        if val:
            T.write_file(os.path.join(out_dir, "val.bin"), T.tokens_file_bytes(val))
        # only the decoding table (no merges); a token's bytes are cut at tokenizer.bin's 65535
        T.write_file(os.path.join(out_dir, "tokenizer.bin"),
                     T.tokenizer_file_bytes([b[:65535] for b in vocab_bytes], [], eot))
    except OSError as e:
        raise HFError("cannot write to --out %s: %s" % (out_dir, e.strerror or e))
    return train, val


def cmd_encode(hf_dir, input_path, out_dir, val_fraction, seed):
    c, _ = read_hf_config(hf_dir)
    try:
        import tokenizers
    except ImportError:
        raise HFError("encode needs the Python package 'tokenizers' (pip install tokenizers), which is not installed")
    tj = os.path.join(hf_dir, "tokenizer.json")
    try:
        tok = tokenizers.Tokenizer.from_file(tj)
    except Exception as e:  # the package's own errors: one line
        raise HFError("cannot load %s: %s" % (tj, str(e).splitlines()[0] if str(e) else type(e).__name__))
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    import tokenizer as T
    try:
        docs = T.read_documents(input_path)
    except T.UserError as e:
        raise HFError(str(e))
    ids = [tok.encode(text, add_special_tokens=False).ids for _, text in docs]
    special = {getattr(t, "content", None) for t in tok.get_added_tokens_decoder().values()} \
        if hasattr(tok, "get_added_tokens_decoder") else set()
    tj_json = load_json(tj, "tokenizer")
    byte_level = isinstance(tj_json, dict) and "ByteLevel" in json.dumps(tj_json.get("decoder"))
    bl = byte_level_decoder() if byte_level else None
    vocab = []
    for i in range(c["V"]):
        piece = tok.id_to_token(i)
        vocab.append(token_bytes(piece, piece in special, bl))
    train, val = write_token_files(out_dir, ids, c["eot"], c["V"], vocab, val_fraction, seed)
    print("encoded %d documents of %s with %s: %s/train.bin (%d tokens), val.bin (%d), tokenizer.bin (decoding only)"
          % (len(docs), input_path, tj, out_dir, len(train), len(val)))


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
        print("hf.py: error: %s" % e, file=sys.stderr)
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
        print("hf.py: error: internal error: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(2)
