#!/usr/bin/env python3
"""Tests of dev/hf.py, the Hugging Face bridge (standard library only; run by make test).

Every file is built here, in a temporary folder: token files, gradsink checkpoints (trained by
./gradsink, or written below), safetensors files. The forward check is independent of the
exporter: its own safetensors reader and its own Llama forward, written after HF's modeling_llama
(rotate_half RoPE, repeat_kv GQA), from config.json and model.safetensors alone.

  python3 dev/test_hf.py                   the tests; the last line is "N passed, M failed"
  python3 dev/test_hf.py --write-135m DIR [F16]   a random BF16 (or F16) Llama folder of SmolLM-135M's
                                                  shape, tied embeddings (for dev/HF.md)
"""

import array
import json
import math
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HF_PY = os.path.join(ROOT, "dev", "hf.py")
GRADSINK = os.path.join(ROOT, "gradsink")
sys.path.insert(0, os.path.join(ROOT, "dev"))
import hf  # noqa: E402  (only its converters are unit-tested directly; everything else through the command line)

HEADER_INTS = 256


def run(*args, env=None, timeout=600):
    """a subprocess; one that hangs past `timeout` fails the test (TimeoutExpired), not the suite"""
    return subprocess.run(list(args), capture_output=True, text=True, env=env, timeout=timeout)


def hf_run(*args, env=None, timeout=600):
    return run(sys.executable, HF_PY, *args, env=env, timeout=timeout)


# words a sentence cannot end on: a refusal ending on one was cut off
DANGLING = {"a", "an", "the", "is", "are", "of", "to", "and", "or", "with", "for", "in", "at", "by", "from",
            "as", "but", "not", "than", "its", "be"}

# a stand-in for the tokenizers package: ids 1..62 are bytes 32..93 in the byte-level alphabet, id 0
# is the special <|endoftext|>, id 63 is left out of the vocabulary
FAKE_TOKENIZERS = (
    "class _E:\n    def __init__(self, ids): self.ids = ids\n"
    "class _A:\n    content = '<|endoftext|>'\n"
    "class Tokenizer:\n"
    "    @staticmethod\n    def from_file(p):\n        open(p).close(); return Tokenizer()\n"
    "    def encode(self, text, add_special_tokens=True): return _E([ord(c) % 62 + 1 for c in text])\n"
    "    def get_added_tokens_decoder(self): return {0: _A()}\n"
    "    def id_to_token(self, i):\n"
    "        if i == 0: return '<|endoftext|>'\n"
    "        if i == 63: return None\n"
    "        return 'Ġ' if i == 1 else chr(i + 31)\n")


def write_tokens(path, toks):
    h = [0] * HEADER_INTS
    h[:3] = [20240520, 1, len(toks)]
    with open(path, "wb") as f:
        f.write(struct.pack("<%di" % HEADER_INTS, *h) + struct.pack("<%dH" % len(toks), *toks))


def read(path):
    with open(path, "rb") as f:
        return f.read()


def f32(values):
    return struct.pack("<%df" % len(values), *values)


def write_safetensors(path, tensors, metadata=None):
    """tensors: [(name, dtype, shape, raw bytes)]"""
    head, pos = {}, 0
    for name, dtype, shape, raw in tensors:
        head[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [pos, pos + len(raw)]}
        pos += len(raw)
    if metadata:
        head["__metadata__"] = metadata
    h = json.dumps(head).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for t in tensors:
            f.write(t[3])


def read_safetensors(path):
    """The test's own reader: {name: (dtype, shape, raw bytes)}, metadata"""
    data = read(path)
    n = struct.unpack_from("<Q", data)[0]
    head = json.loads(data[8:8 + n])
    meta = head.pop("__metadata__", {})
    return {k: (v["dtype"], tuple(v["shape"]), data[8 + n + v["data_offsets"][0]:8 + n + v["data_offsets"][1]])
            for k, v in head.items()}, meta


def as_version2(data):
    """A checkpoint's bytes as import writes them, version 2: a version-3 header (./gradsink may write
    one) loses [16-18], the V-scale path and the sink-grad factor, which act on training only."""
    head = bytearray(data[:4 * HEADER_INTS])
    if struct.unpack_from("<i", head, 4)[0] == 3:
        struct.pack_into("<i", head, 4, 2)
        head[64:76] = bytes(12)
    return bytes(head) + data[4 * HEADER_INTS:]


def write_checkpoint(path, V, C, L, H, Hkv, F, T, theta, eps, eot, step, seed, std=0.3, version=2, vpath=0,
                     grad_factor=1.0):
    """A gradsink checkpoint written here (weights larger than training's init, so the forward check
    sees every nonlinearity); V-scale off, vscale_theta zeros. Version 2 by default; version 1 has no
    theta, eps and eot (they read as 10000, 1e-5, V-1); version 3 adds [16] the V-scale path and
    [17-18] the sink-grad factor G (float64)."""
    r = random.Random(seed)
    D = C // H
    h = [0] * HEADER_INTS
    h[:11] = [20261128, version, V, C, L, H, Hkv, F, T, 0, step]
    if version >= 2:
        h[15] = eot
    if version >= 3:
        h[16] = vpath
    head = bytearray(struct.pack("<%di" % HEADER_INTS, *h))
    if version >= 2:
        struct.pack_into("<dd", head, 44, theta, eps)
    if version >= 3:
        struct.pack_into("<d", head, 68, grad_factor)
    sizes = [("m", V * C), ("g", L * C), ("m", L * C * C), ("m", L * Hkv * D * C), ("m", L * Hkv * D * C),
             ("m", L * C * C), ("g", L * C), ("m", L * F * C), ("m", L * F * C), ("m", L * C * F), ("z", L * Hkv),
             ("g", C), ("m", V * C)]
    vals = []
    for kind, n in sizes:
        vals += [r.gauss(0, std) if kind == "m" else 1 + r.gauss(0, 0.2) if kind == "g" else 0.0 for _ in range(n)]
    with open(path, "wb") as f:
        f.write(bytes(head) + f32(vals))


# ---------------------------------------------------------------------------
# an independent Llama forward, after HF's modeling_llama (double precision)

def ref_forward(folder, tokens, pairing="rotate_half", kv_map="repeat_kv"):
    """Logits [t][v] of LlamaForCausalLM from config.json and model.safetensors (F32) alone.
    pairing / kv_map: HF's conventions, or a wrong one (to show the check can fail)."""
    cfg = json.loads(read(os.path.join(folder, "config.json")))
    st, _ = read_safetensors(os.path.join(folder, "model.safetensors"))

    def w(name):
        dtype, shape, raw = st[name]
        assert dtype == "F32"
        return struct.unpack("<%df" % (len(raw) // 4), raw)

    C, L, H = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"]
    Hkv, F, V = cfg["num_key_value_heads"], cfg["intermediate_size"], cfg["vocab_size"]
    eps, theta, D = cfg["rms_norm_eps"], cfg["rope_theta"], C // H
    n_rep = H // Hkv

    def linear(x, W, out_f, in_f):  # torch.nn.Linear: y = x W^T
        return [sum(W[o * in_f + i] * x[i] for i in range(in_f)) for o in range(out_f)]

    def rmsnorm(x, g):  # LlamaRMSNorm
        r = 1.0 / math.sqrt(sum(v * v for v in x) / len(x) + eps)
        return [g[i] * x[i] * r for i in range(len(x))]

    inv_freq = [1.0 / theta ** (2 * j / D) for j in range(D // 2)]

    def rope(x, t):  # x: one head (D); HF: x * cos + rotate_half(x) * sin, cos = cat(freqs, freqs)
        if pairing == "rotate_half":
            cos = [math.cos(t * inv_freq[i % (D // 2)]) for i in range(D)]
            sin = [math.sin(t * inv_freq[i % (D // 2)]) for i in range(D)]
            rot = [-x[i + D // 2] for i in range(D // 2)] + [x[i] for i in range(D // 2)]
            return [x[i] * cos[i] + rot[i] * sin[i] for i in range(D)]
        out = list(x)  # interleaved (2j, 2j+1): the wrong convention for HF's weights
        for j in range(D // 2):
            c, s = math.cos(t * inv_freq[j]), math.sin(t * inv_freq[j])
            out[2 * j], out[2 * j + 1] = x[2 * j] * c - x[2 * j + 1] * s, x[2 * j + 1] * c + x[2 * j] * s
        return out

    emb = w("model.embed_tokens.weight")
    hs = [list(emb[tok * C:(tok + 1) * C]) for tok in tokens]
    T = len(tokens)
    for l in range(L):
        p = "model.layers.%d." % l
        Wq, Wk, Wv, Wo = (w(p + "self_attn.%s_proj.weight" % n) for n in "qkvo")
        g1, g2 = w(p + "input_layernorm.weight"), w(p + "post_attention_layernorm.weight")
        Wg, Wu, Wd = (w(p + "mlp.%s_proj.weight" % n) for n in ("gate", "up", "down"))
        q, k, v = [], [], []
        for t in range(T):
            x = rmsnorm(hs[t], g1)
            qt, kt, vt = linear(x, Wq, H * D, C), linear(x, Wk, Hkv * D, C), linear(x, Wv, Hkv * D, C)
            q.append([rope(qt[h * D:(h + 1) * D], t) for h in range(H)])
            k.append([rope(kt[h * D:(h + 1) * D], t) for h in range(Hkv)])
            v.append([vt[h * D:(h + 1) * D] for h in range(Hkv)])
        for t in range(T):
            y = []
            for h in range(H):
                kvh = h // n_rep if kv_map == "repeat_kv" else h % Hkv
                s = [sum(q[t][h][i] * k[j][kvh][i] for i in range(D)) / math.sqrt(D) for j in range(t + 1)]
                m = max(s)
                e = [math.exp(x - m) for x in s]
                z = sum(e)
                y += [sum(e[j] / z * v[j][kvh][i] for j in range(t + 1)) for i in range(D)]
            o = linear(y, Wo, C, H * D)
            hs[t] = [hs[t][i] + o[i] for i in range(C)]
        for t in range(T):
            x = rmsnorm(hs[t], g2)
            g, u = linear(x, Wg, F, C), linear(x, Wu, F, C)
            a = [g[i] / (1 + math.exp(-g[i])) * u[i] for i in range(F)]  # silu(gate) * up
            d = linear(a, Wd, C, F)
            hs[t] = [hs[t][i] + d[i] for i in range(C)]
    head = w("lm_head.weight") if "lm_head.weight" in st and not cfg.get("tie_word_embeddings") else emb
    gf = w("model.norm.weight")
    return [linear(rmsnorm(hs[t], gf), head, V, C) for t in range(T)]


# gradsink's own logits: a small program that includes gradsink.c
LOGITS_C = r'''
#define TESTING
#include "%s"
int main(int argc, char **argv) { // CKPT T tok...: prints the logits, one per line
    Config c; int step; char err[1024]; Model m;
    if (checkpoint_load(NULL, argv[1], &c, &step, err, sizeof(err))) { fprintf(stderr, "%%s\n", err); return 2; }
    int T = atoi(argv[2]);
    model_build(&m, &c);
    model_alloc_acts(&m, 1, T);
    if (checkpoint_load(&m, argv[1], &c, &step, err, sizeof(err))) { fprintf(stderr, "%%s\n", err); return 2; }
    for (int t = 0; t < T && 3 + t < argc; t++) m.inputs[t] = atoi(argv[3 + t]);
    model_forward(&m, 1, T, 0);
    for (int i = 0; i < T * c.vocab_size; i++) printf("%%.9g\n", (double)m.acts.logits[i]);
    model_free(&m);
    return 0;
}
'''


class HFTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="gradsink_hf_")
        cls.logits_bin = os.path.join(cls.tmp, "logits")
        src = os.path.join(cls.tmp, "logits.c")
        with open(src, "w") as f:
            f.write(LOGITS_C % os.path.join(ROOT, "gradsink.c"))
        r = run(os.environ.get("CC", "cc"), "-O1", "-o", cls.logits_bin, src, "-lm")
        cls.logits_error = None if r.returncode == 0 else r.stderr
        r = random.Random(5)
        cls.tokens = os.path.join(cls.tmp, "tokens.bin")
        write_tokens(cls.tokens, [r.randrange(64) for _ in range(3000)])

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def path(self, *parts):
        p = os.path.join(self.tmp, self.id().split(".")[-1], *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def train(self, kv, vscale="off"):
        out = self.path("run")
        r = run(GRADSINK, "-i", self.tokens, "-j", "", "-V", "64", "-L", "2", "-C", "16", "-H", "4", "-K", str(kv),
                "-F", "32", "-t", "8", "-b", "2", "-n", "3", "-P", "0", "-G", "0", "-a", vscale, "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        return os.path.join(out, "model.bin")

    def gradsink_logits(self, ckpt, toks):
        self.assertIsNone(self.logits_error)
        r = run(self.logits_bin, ckpt, str(len(toks)), *map(str, toks))
        self.assertEqual(r.returncode, 0, r.stderr)
        x = [float(s) for s in r.stdout.split()]
        V = len(x) // len(toks)
        return [x[t * V:(t + 1) * V] for t in range(len(toks))]

    def export(self, ckpt, name="hf"):
        out = self.path(name)
        r = hf_run("export", ckpt, out)
        self.assertEqual(r.returncode, 0, r.stderr)
        return out

    def refused(self, r, words, ckpt=None):
        """exit 2, one line on stderr naming the problem, whole (not cut off), no traceback, no internal
        error, no checkpoint written"""
        lines = r.stderr.strip().splitlines()
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertTrue(lines[0].startswith("hf.py: error: "), lines[0])
        self.assertNotIn("Traceback", r.stderr)
        self.assertNotIn("internal error", lines[0])
        self.assertFalse(lines[0].rstrip().endswith((":", ",", ";")), lines[0])
        self.assertNotIn(lines[0].split()[-1].lower(), DANGLING, "message cut off: " + lines[0])
        for w in words:
            self.assertIn(w, lines[0])
        if ckpt:
            self.assertFalse(os.path.exists(ckpt) or os.path.exists(ckpt + ".tmp"))

    # --- round trips ---------------------------------------------------------

    def roundtrip(self, ckpt):
        hfdir = self.export(ckpt)
        back = self.path("back.bin")
        r = hf_run("import", hfdir, back)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(as_version2(read(ckpt)), read(back), "export -> import is not bit-identical")
        return hfdir

    def test_roundtrip_mha(self):
        hfdir = self.roundtrip(self.train(4))
        cfg = json.loads(read(os.path.join(hfdir, "config.json")))
        self.assertEqual((cfg["architectures"], cfg["num_key_value_heads"], cfg["tie_word_embeddings"],
                          cfg["torch_dtype"], cfg["eos_token_id"]), (["LlamaForCausalLM"], 4, False, "float32", 63))

    def test_roundtrip_gqa(self):
        hfdir = self.roundtrip(self.train(2))
        st, meta = read_safetensors(os.path.join(hfdir, "model.safetensors"))
        names = {"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight"}
        for l in range(2):
            names |= {"model.layers.%d.%s.weight" % (l, n) for n in
                      ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj", "mlp.gate_proj",
                       "mlp.up_proj", "mlp.down_proj", "input_layernorm", "post_attention_layernorm"]}
        self.assertEqual(set(st), names)
        self.assertEqual(st["model.layers.1.self_attn.k_proj.weight"][:2], ("F32", (8, 16)))
        self.assertEqual(meta.get("gradsink_step"), "3")

    def test_roundtrip_nondefault_theta_eps_eot(self):
        ckpt = self.path("w.bin")
        write_checkpoint(ckpt, 64, 16, 2, 4, 2, 32, 8, 500.0, 1e-3, 5, 7, seed=1)
        hfdir = self.roundtrip(ckpt)
        cfg = json.loads(read(os.path.join(hfdir, "config.json")))
        self.assertEqual((cfg["rope_theta"], cfg["rms_norm_eps"], cfg["eos_token_id"]), (500.0, 1e-3, 5))

    # --- the independent forward ---------------------------------------------

    def test_independent_forward(self):
        ckpt = self.path("w.bin")
        write_checkpoint(ckpt, 64, 16, 2, 4, 2, 32, 8, 500.0, 1e-3, 63, 0, seed=2)
        hfdir = self.export(ckpt)
        worst, scale = 0.0, 1.0
        for toks in ([3, 17, 5, 63, 0, 41, 41, 9], [60, 2, 2, 33, 8, 19, 50, 1]):
            ref, got = ref_forward(hfdir, toks), self.gradsink_logits(ckpt, toks)
            worst = max(worst, max(abs(a - b) for ra, rb in zip(ref, got) for a, b in zip(ra, rb)))
            scale = max(scale, max(abs(a) for ra in ref for a in ra))
        print("\n  independent forward: max |logit difference| %.2e (logits up to %.2f)" % (worst, scale),
              file=sys.stderr)
        self.assertLess(worst, 1e-5 * scale)
        # the check can fail: the other RoPE pairing, or another kv-head mapping, gives other logits
        toks = [3, 17, 5, 63, 0, 41, 41, 9]
        got = self.gradsink_logits(ckpt, toks)
        for kw in ({"pairing": "interleaved"}, {"kv_map": "modulo"}):
            bad = ref_forward(hfdir, toks, **kw)
            self.assertGreater(max(abs(a - b) for ra, rb in zip(bad, got) for a, b in zip(ra, rb)), 1e-2, kw)

    # --- the safetensors reader ------------------------------------------------

    def test_bf16_values(self):
        bits = [0x3f80, 0xc020, 0x0001, 0x8001, 0x007f, 0x7f80, 0xff80, 0x7fc0, 0x8000, 0x7f7f]
        out = hf.bf16_to_f32(struct.pack("<%dH" % len(bits), *bits))
        self.assertEqual(list(struct.unpack("<%dI" % len(bits), out)), [b << 16 for b in bits])
        vals = struct.unpack("<%df" % len(bits), out)
        self.assertEqual(vals[:2], (1.0, -2.5))
        self.assertEqual(vals[2], 2.0 ** -133)  # the smallest subnormal BF16: a subnormal float32
        self.assertTrue(math.isinf(vals[5]) and vals[5] > 0 and math.isinf(vals[6]) and vals[6] < 0)
        self.assertTrue(math.isnan(vals[7]))
        self.assertEqual(hf.first_nonfinite(out), 5)

    def test_f16_values(self):
        bits = [0x3c00, 0xc100, 0x0001, 0x8001, 0x03ff, 0x7bff, 0x7c00, 0xfc00, 0x7e00, 0x8000]
        out = hf.f16_to_f32(struct.pack("<%dH" % len(bits), *bits))
        vals = struct.unpack("<%df" % len(bits), out)
        self.assertEqual(vals[:6], (1.0, -2.5, 2.0 ** -24, -(2.0 ** -24), 1023 * 2.0 ** -24, 65504.0))
        self.assertEqual(struct.unpack("<I", out[36:40])[0], 0x80000000)  # -0 keeps its sign
        self.assertTrue(math.isinf(vals[6]) and vals[6] > 0 and math.isinf(vals[7]) and vals[7] < 0)
        self.assertTrue(math.isnan(vals[8]))
        self.assertEqual(hf.first_nonfinite(out[:24]), -1)

    def test_token_bytes(self):
        bl = hf.byte_level_decoder()
        self.assertEqual(len(bl), 256)
        self.assertEqual(hf.token_bytes("\u0120the", False, bl), b" the")   # byte-level: a space is U+0120
        self.assertEqual(hf.token_bytes("\u00c3\u00a9", False, bl), "\u00e9".encode())  # two bytes of UTF-8
        self.assertEqual(hf.token_bytes("\u2581the", False, None), b" the")  # SentencePiece
        self.assertEqual(hf.token_bytes("<0x0A>", False, None), b"\n")
        self.assertEqual(hf.token_bytes("<|endoftext|>", True, bl), b"<|endoftext|>")
        self.assertEqual(hf.token_bytes(None, False, bl), b"")

    def converted_folder(self, name, convert, tie=False, keep_head=False):
        """the exported tiny model with every tensor converted (convert: F32 bytes -> (dtype, bytes)),
        and the checkpoint import must give: the original with each value rounded the same way"""
        ckpt = self.path("w.bin")
        if not os.path.exists(ckpt):
            write_checkpoint(ckpt, 64, 16, 2, 4, 2, 32, 8, 10000.0, 1e-5, 63, 4, seed=3, std=0.05)
        src = self.export(ckpt)
        st, meta = read_safetensors(os.path.join(src, "model.safetensors"))
        out = self.path(name)
        os.makedirs(out, exist_ok=True)
        cfg = json.loads(read(os.path.join(src, "config.json")))
        cfg["tie_word_embeddings"] = tie
        with open(os.path.join(out, "config.json"), "w") as f:
            json.dump(cfg, f)
        tensors = [(n, *convert(st[n][2]), st[n][1]) for n in st if not (tie and n == "lm_head.weight" and not keep_head)]
        write_safetensors(os.path.join(out, "model.safetensors"), [(n, d, s, b) for n, d, b, s in tensors], meta)
        return ckpt, out

    def import_ok(self, folder):
        back = self.path(os.path.basename(folder) + ".bin")
        r = hf_run("import", folder, back)
        self.assertEqual(r.returncode, 0, r.stderr)
        return read(back), back

    def test_import_bf16(self):
        to_bf16 = lambda raw: ("BF16", b"".join(raw[i + 2:i + 4] for i in range(0, len(raw), 4)))
        ckpt, folder = self.converted_folder("bf16", to_bf16)
        got, _ = self.import_ok(folder)
        orig = bytearray(read(ckpt))
        for i in range(1024, len(orig), 4):  # expected: the low 16 bits of every value cleared
            orig[i:i + 2] = b"\0\0"
        self.assertEqual(got, bytes(orig))

    def test_import_f16(self):
        def to_f16(raw):
            v = struct.unpack("<%df" % (len(raw) // 4), raw)
            return "F16", struct.pack("<%de" % len(v), *v)
        ckpt, folder = self.converted_folder("f16", to_f16)
        got, _ = self.import_ok(folder)
        data = read(ckpt)
        v = struct.unpack("<%df" % ((len(data) - 1024) // 4), data[1024:])
        want = data[:1024] + f32(struct.unpack("<%de" % len(v), struct.pack("<%de" % len(v), *v)))
        self.assertEqual(got, want)

    def test_import_shards(self):
        ckpt = self.train(2)
        src = self.export(ckpt)
        st, meta = read_safetensors(os.path.join(src, "model.safetensors"))
        out = self.path("shards")
        os.makedirs(out)
        shutil.copy(os.path.join(src, "config.json"), out)
        names = sorted(st)
        parts = {"model-00001-of-00002.safetensors": names[:9], "model-00002-of-00002.safetensors": names[9:]}
        wm = {}
        for fname, ns in parts.items():
            write_safetensors(os.path.join(out, fname), [(n, *st[n]) for n in ns], {"format": "pt"})
            wm.update({n: fname for n in ns})
        with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
            json.dump({"metadata": {"total_size": 0}, "weight_map": wm}, f)
        got, _ = self.import_ok(out)
        want = bytearray(as_version2(read(ckpt)))
        want[40:44] = bytes(4)  # the step travels in one file's metadata only; shards give step 0
        self.assertEqual(got, bytes(want))
        # a weight_map that names the wrong shard is refused
        wm[names[0]] = "model-00002-of-00002.safetensors"
        with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
            json.dump({"weight_map": wm}, f)
        self.refused(hf_run("import", out, self.path("x.bin")), ["does not hold it"], self.path("x.bin"))

    def test_import_tied(self):
        ckpt, folder = self.converted_folder("tied", lambda raw: ("F32", raw), tie=True)
        got, back = self.import_ok(folder)
        V, C = 64, 16
        wte, lm_head = got[1024:1024 + 4 * V * C], got[-4 * V * C:]
        self.assertEqual(wte, lm_head)
        self.assertEqual(wte, read(ckpt)[1024:1024 + 4 * V * C])
        # the forward of the tied HF model (its own reading: lm_head = embedding) is gradsink's
        toks = [3, 17, 5, 63, 0, 41, 41, 9]
        ref, mine = ref_forward(folder, toks), self.gradsink_logits(back, toks)
        self.assertLess(max(abs(a - b) for ra, rb in zip(ref, mine) for a, b in zip(ra, rb)), 1e-5)
        # a tied model that also stores an lm_head: HF ties it to the embedding all the same
        _, folder = self.converted_folder("tiedkept", lambda raw: ("F32", raw), tie=True, keep_head=True)
        got2, _ = self.import_ok(folder)
        self.assertEqual(got2, got)

    def test_nonfinite_refused(self):
        nan_bf16 = lambda raw: ("BF16", b"\xc0\x7f" + b"".join(raw[i + 2:i + 4] for i in range(4, len(raw), 4)))
        _, folder = self.converted_folder("nanbf16", nan_bf16)
        self.refused(hf_run("import", folder, self.path("a.bin")), ["non-finite", "index 0"], self.path("a.bin"))

        def nan_f16(raw):
            v = struct.unpack("<%df" % (len(raw) // 4), raw)
            return "F16", struct.pack("<%de" % len(v), *v)[:-2] + b"\x00\x7e"
        _, folder = self.converted_folder("nanf16", nan_f16)
        self.refused(hf_run("import", folder, self.path("b.bin")), ["non-finite"], self.path("b.bin"))
        inf_f32 = lambda raw: ("F32", raw[:4] + f32([float("inf")]) + raw[8:])
        _, folder = self.converted_folder("inff32", inf_f32)
        self.refused(hf_run("import", folder, self.path("c.bin")), ["non-finite", "index 1"], self.path("c.bin"))

    # --- refusals ----------------------------------------------------------------

    def edited(self, name, config_edit=None, tensors_edit=None, raw_edit=None, config_raw=None):
        """a copy of the exported tiny model with config.json, the tensor list or the file bytes edited;
        config_raw (key, JSON text) puts a value json.dump cannot write (1e400, a 400-digit integer)"""
        ckpt = self.path("w.bin")
        if not os.path.exists(ckpt):
            write_checkpoint(ckpt, 64, 16, 2, 4, 2, 32, 8, 10000.0, 1e-5, 63, 0, seed=4)
            self.export(ckpt, "src")
        src = self.path("src")
        out = self.path(name)
        os.makedirs(out, exist_ok=True)
        cfg = json.loads(read(os.path.join(src, "config.json")))
        if config_edit:
            config_edit(cfg)
        text = json.dumps(cfg)
        if config_raw:
            cfg[config_raw[0]] = "@@raw@@"
            text = json.dumps(cfg).replace('"@@raw@@"', config_raw[1])
        with open(os.path.join(out, "config.json"), "w") as f:
            f.write(text)
        st, meta = read_safetensors(os.path.join(src, "model.safetensors"))
        tensors = [(n, *st[n]) for n in sorted(st)]
        if tensors_edit:
            tensors = tensors_edit(tensors)
        p = os.path.join(out, "model.safetensors")
        write_safetensors(p, tensors, meta)
        if raw_edit:
            data = raw_edit(read(p))
            with open(p, "wb") as f:
                f.write(data)
        return out

    def refuse(self, folder, words):
        ck = self.path(os.path.basename(folder) + ".bin")
        self.refused(hf_run("import", folder, ck), words, ck)

    def test_refuse_config(self):
        cases = [
            ("arch", lambda c: c.update(architectures=["MistralForCausalLM"]), ["MistralForCausalLM", "LlamaForCausalLM only"]),
            ("bias", lambda c: c.update(attention_bias=True), ["biases"]),
            ("mlpbias", lambda c: c.update(mlp_bias=True), ["biases"]),
            ("rope", lambda c: c.update(rope_scaling={"rope_type": "llama3", "factor": 8.0}), ["rope_scaling"]),
            ("ropeparams", lambda c: c.update(rope_parameters={"rope_type": "yarn", "rope_theta": 1e6}),
             ["rope_parameters", "no scaling"]),
            ("headdim", lambda c: c.update(head_dim=8), ["head_dim 8"]),
            ("vocab", lambda c: c.update(vocab_size=70000), ["vocab_size 70000", "uint16"]),
            ("act", lambda c: c.update(hidden_act="gelu"), ["hidden_act"]),
            ("heads", lambda c: c.update(num_key_value_heads=3), ["kv heads"]),
            ("notint", lambda c: c.update(hidden_size="16"), ["hidden_size", "not an integer"]),
        ]
        for name, edit, words in cases:
            with self.subTest(name):
                self.refuse(self.edited(name, config_edit=edit), words)

    def test_refuse_tensors(self):
        def bias(ts):
            return ts + [("model.layers.0.self_attn.q_proj.bias", "F32", (16,), bytes(64))]

        def reshape(ts):
            up = "model.layers.1.mlp.up_proj.weight"
            return [(n, d, (32, 8), b[:32 * 8 * 4]) if n == up else (n, d, s, b) for n, d, s, b in ts]

        def f64(ts):
            return [(n, "F64" if n == "model.norm.weight" else d, (8,) if n == "model.norm.weight" else s, b)
                    for n, d, s, b in ts]
        cases = [
            ("missing", lambda ts: [t for t in ts if t[0] != "model.layers.1.mlp.down_proj.weight"],
             ["missing tensor model.layers.1.mlp.down_proj.weight"]),
            ("extra", lambda ts: ts + [("model.layers.0.self_attn.rotary_emb.inv_freq", "F32", (2,), bytes(8))],
             ["unexpected tensor model.layers.0.self_attn.rotary_emb.inv_freq"]),
            ("biastensor", bias, ["unexpected tensor model.layers.0.self_attn.q_proj.bias", "bias"]),
            ("shape", reshape, ["model.layers.1.mlp.up_proj.weight has shape [32, 8], expected [32, 16]"]),
            ("dtype", f64, ["dtype F64"]),
        ]
        for name, edit, words in cases:
            with self.subTest(name):
                self.refuse(self.edited(name, tensors_edit=edit), words)

    def test_refuse_files(self):
        def past_end(raw):
            return struct.pack("<Q", len(raw)) + raw[8:]

        def bad_json(raw):
            n = struct.unpack_from("<Q", raw)[0]
            return raw[:8] + b"{" * n + raw[8 + n:]
        cases = [
            ("truncated", lambda raw: raw[:-10], ["past the end of the file", "truncated"]),
            ("pastend", past_end, ["header of", "points past the end"]),
            ("tiny", lambda raw: raw[:5], ["too short"]),
            ("badjson", bad_json, ["not valid JSON"]),
        ]
        for name, edit, words in cases:
            with self.subTest(name):
                self.refuse(self.edited(name, raw_edit=edit), words)
        empty = self.path("empty")
        os.makedirs(empty)
        shutil.copy(os.path.join(self.path("src"), "config.json"), empty)
        self.refuse(empty, ["neither model.safetensors nor"])
        self.refuse(self.path("nothing"), ["config"])

    def test_refuse_vscale_export(self):
        for mode in ("fixed", "learned"):
            with self.subTest(mode):
                ckpt = self.train(2, mode)
                out = self.path("hf_" + mode)
                r = hf_run("export", ckpt, out)
                self.refused(r, ["V-scale (%s)" % mode, "does not have"])
                self.assertFalse(os.path.exists(os.path.join(out, "model.safetensors")))

    def test_refuse_config_values(self):
        # every number of config.json is checked for type, finiteness and range, in one line naming
        # the file and the key: never an internal error (1e400 is inf to json, a 400-digit integer
        # overflows float())
        big = "1" + "0" * 400
        cases = [("rope_theta", v) for v in ("1e400", "-1e400", "NaN", "Infinity", big, "-" + big, "true", '"10000"',
                                             "0", "-5", "1e300", "[10000]", "{}")]
        cases += [("rms_norm_eps", v) for v in ("0", "1", "1e400", "-1e-5", "1e-400", "NaN", big, "false")]
        cases += [("vocab_size", v) for v in ("64.0", "1e400", big, "true", "1", "-64", "null")]
        cases += [("hidden_size", "0"), ("hidden_size", "-16"), ("hidden_size", big), ("num_hidden_layers", "1e3"),
                  ("num_hidden_layers", "100000"), ("num_attention_heads", "0"), ("num_attention_heads", "32"),
                  ("num_key_value_heads", "false"), ("num_key_value_heads", "8"), ("intermediate_size", big),
                  ("intermediate_size", "0.5"), ("max_position_embeddings", "0"), ("max_position_embeddings", '"2048"'),
                  ("max_position_embeddings", "1e400"), ("eos_token_id", "64"), ("eos_token_id", "-1"),
                  ("eos_token_id", '"0"'), ("eos_token_id", "[1.5]"), ("eos_token_id", "[0, " + big + "]"),
                  ("bos_token_id", "1e400"), ("head_dim", '"4"'), ("head_dim", "0"), ("head_dim", "1e400"),
                  ("tie_word_embeddings", '"yes"'), ("attention_bias", "0"), ("mlp_bias", '"false"')]
        for i, (key, raw) in enumerate(cases):
            with self.subTest(key=key, raw=raw[:20]):
                folder = self.edited("cfg%d" % i, config_raw=(key, raw))
                self.refuse(folder, [os.path.join(folder, "config.json"), key])
        # rope_theta given in rope_parameters is checked the same way, and named so
        folder = self.edited("ropeparams_inf", config_edit=lambda c: c.update(
            rope_parameters={"rope_type": "default", "rope_theta": "@@"}))
        with open(os.path.join(folder, "config.json")) as f:
            text = f.read().replace('"@@"', "1e400")
        with open(os.path.join(folder, "config.json"), "w") as f:
            f.write(text)
        self.refuse(folder, ["config.json", "rope_parameters.rope_theta"])

    def test_head_dim_message_whole(self):
        # the refusal was cut off after "gradsink's head size is"; here it is, whole
        folder = self.edited("headdim_msg", config_edit=lambda c: c.update(head_dim=8))
        ck = self.path("headdim_msg.bin")
        r = hf_run("import", folder, ck)
        self.refused(r, [], ck)
        self.assertEqual(r.stderr.strip(), "hf.py: error: %s: head_dim 8 is not hidden_size / num_attention_heads = 4; "
                         "gradsink's head size is always hidden_size / num_attention_heads"
                         % os.path.join(folder, "config.json"))

    def test_refuse_overlapping_offsets(self):
        # the tensors must tile the data section exactly: none overlapping (one tensor read from
        # another's bytes), no gap, nothing after the last; checked as a whole, in offset order
        def header_edit(edit):
            def raw_edit(raw):
                n = struct.unpack_from("<Q", raw)[0]
                head = json.loads(raw[8:8 + n])
                data = edit(head, raw[8 + n:])
                h = json.dumps(head).encode()
                return struct.pack("<Q", len(h)) + h + data
            return raw_edit

        def onto(name, other):  # `name` points at the first bytes of `other`; its own bytes stay unused
            def edit(head, data):
                b = head[other]["data_offsets"][0]
                e = head[name]["data_offsets"]
                head[name]["data_offsets"] = [b, b + e[1] - e[0]]
                return data
            return edit

        def gap(head, data):  # 4 bytes no tensor owns, after the first tensor
            first = min(head.values(), key=lambda t: t["data_offsets"][0] if isinstance(t, dict) and "data_offsets" in t
                        else 1 << 62)
            end = first["data_offsets"][1]
            for t in head.values():
                if isinstance(t, dict) and "data_offsets" in t and t["data_offsets"][0] >= end:
                    t["data_offsets"] = [x + 4 for x in t["data_offsets"]]
            return data[:end] + bytes(4) + data[end:]

        def swap_ends(head, data):
            t = head["model.norm.weight"]
            t["data_offsets"] = t["data_offsets"][::-1]
            return data
        k0, k1 = "model.layers.0.self_attn.k_proj.weight", "model.layers.1.self_attn.k_proj.weight"
        cases = [
            ("norm_on_embedding", onto("model.norm.weight", "model.embed_tokens.weight"),
             ["overlap", "model.norm.weight", "model.embed_tokens.weight"]),
            ("same_bytes", onto(k1, k0), ["overlap", k0, k1]),
            ("embedding_on_norm", onto("model.embed_tokens.weight", "model.norm.weight"), ["overlap"]),
            ("gap", gap, ["belong to no tensor"]),
            ("trailing", lambda head, data: data + bytes(4), ["4 bytes after the last tensor"]),
            ("reversed", swap_ends, ["model.norm.weight", "data_offsets"]),
        ]
        for name, edit, words in cases:
            with self.subTest(name):
                self.refuse(self.edited(name, raw_edit=header_edit(edit)), words)

    def test_export_nonfinite_refused(self):
        # a NaN or an infinity in any parameter: refused naming the file and the tensor, nothing written
        # (no folder, no .tmp; an earlier export in the folder is left as it was)
        V, C, L, F = 64, 16, 2, 32
        KV = 2 * (C // 4)
        offset = {"model.layers.1.self_attn.q_proj.weight": V * C + L * C + C * C,
                  "model.norm.weight": V * C + 2 * L * C + 2 * L * C * C + 2 * L * KV * C + 3 * L * F * C + L * 2,
                  "lm_head.weight": V * C + 2 * L * C + 2 * L * C * C + 2 * L * KV * C + 3 * L * F * C + L * 2 + C}
        cases = [("model.layers.1.self_attn.q_proj.weight", 5, float("nan")), ("model.norm.weight", 3, float("inf")),
                 ("lm_head.weight", V * C - 1, float("-inf"))]
        for tensor, index, value in cases:
            with self.subTest(tensor):
                ckpt = self.path(tensor + ".bin")
                write_checkpoint(ckpt, V, C, L, 4, 2, F, 8, 10000.0, 1e-5, 63, 0, seed=6)
                self.export(ckpt, "ok_" + tensor)  # finite: exports
                data = bytearray(read(ckpt))
                struct.pack_into("<f", data, 1024 + 4 * (offset[tensor] + index), value)
                with open(ckpt, "wb") as f:
                    f.write(data)
                out = self.path("hf_" + tensor)
                self.refused(hf_run("export", ckpt, out), [ckpt, tensor, "non-finite", "index %d" % index])
                self.assertFalse(os.path.exists(out))
                earlier = self.path("ok_" + tensor)
                before = {n: read(os.path.join(earlier, n)) for n in os.listdir(earlier)}
                self.refused(hf_run("export", ckpt, earlier), [tensor])
                self.assertEqual({n: read(os.path.join(earlier, n)) for n in os.listdir(earlier)}, before)

    def test_checkpoint_versions(self):
        # export reads versions 1, 2 and 3 (version 3's V-scale path and sink-grad factor change
        # training only: the export is the same); import writes version 2
        args = (64, 16, 2, 4, 2, 32, 8)
        v1, v2, v3 = self.path("v1.bin"), self.path("v2.bin"), self.path("v3.bin")
        write_checkpoint(v1, *args, 500.0, 1e-3, 5, 7, seed=8, version=1)
        write_checkpoint(v2, *args, 10000.0, 1e-5, 63, 7, seed=8)  # version 1's implied theta, eps, eot
        write_checkpoint(v3, *args, 10000.0, 1e-5, 63, 7, seed=8, version=3, vpath=2, grad_factor=0.25)
        exported = {}
        for name, ck in (("v1", v1), ("v2", v2), ("v3", v3)):
            out = self.export(ck, "hf_" + name)
            exported[name] = (read(os.path.join(out, "config.json")), read(os.path.join(out, "model.safetensors")))
        self.assertEqual(exported["v1"], exported["v2"])
        self.assertEqual(exported["v3"], exported["v2"])
        back = self.path("back.bin")
        self.assertEqual(hf_run("import", self.path("hf_v3"), back).returncode, 0)
        self.assertEqual(read(back), read(v2))  # version 2, the same model
        self.assertEqual(as_version2(read(v3)), read(v2))
        for name, kw, words in (("v4", dict(version=4), ["unsupported checkpoint version 4", "1, 2 or 3"]),
                                ("path3", dict(version=3, vpath=3), ["V-scale path 3"]),
                                ("gnan", dict(version=3, grad_factor=float("nan")), ["sink-grad factor nan"])):
            with self.subTest(name):
                ck = self.path(name + ".bin")
                write_checkpoint(ck, *args, 10000.0, 1e-5, 63, 7, seed=8, **kw)
                out = self.path("hf_" + name)
                self.refused(hf_run("export", ck, out), [ck] + words)
                self.assertFalse(os.path.exists(out))

    def test_nonregular_inputs_refused(self):
        # every reader checks the path's type before it opens it: a FIFO (whose open blocks until a
        # writer comes), a directory or a device where a file is read is one line, exit 2, at once
        def remove(p):
            os.rmdir(p) if os.path.isdir(p) else os.remove(p)
        for kind, make in (("FIFO", os.mkfifo), ("directory", os.makedirs)):
            with self.subTest(kind):
                ck, out = self.path(kind + ".bin"), self.path("out_" + kind)
                make(ck)
                self.refused(hf_run("export", ck, out, timeout=20), ["checkpoint", ck, kind])
                self.assertFalse(os.path.exists(out))
                # import: config.json, model.safetensors, the shard index, a shard it names
                for f in ("config.json", "model.safetensors"):
                    d = self.edited(f + kind)
                    remove(os.path.join(d, f))
                    make(os.path.join(d, f))
                    self.refuse_quickly(d, [os.path.join(d, f), kind])
                d = self.edited("shards" + kind)
                index, shard = os.path.join(d, "model.safetensors.index.json"), os.path.join(d, "shard.safetensors")
                os.rename(os.path.join(d, "model.safetensors"), shard)
                make(index)
                self.refuse_quickly(d, [index, kind])
                remove(index)
                with open(index, "w") as f:
                    json.dump({"weight_map": {n: "shard.safetensors" for n in read_safetensors(shard)[0]}}, f)
                remove(shard)
                make(shard)
                self.refuse_quickly(d, [shard, kind])
                # encode: tokenizer.json, the --input file, a *.txt of an --input folder
                enc, docs = self.encode_setup()
                env, out = self.fake_tokenizers(FAKE_TOKENIZERS), self.path("enc_out")
                tj, z = os.path.join(enc, "tokenizer.json"), os.path.join(docs, "z.txt")
                remove(tj)
                make(tj)
                self.refused(hf_run("encode", enc, "--input", docs, "--out", out, env=env, timeout=20), [tj, kind])
                remove(tj)
                with open(tj, "w") as f:
                    f.write('{"decoder": {"type": "ByteLevel"}}')
                make(z)
                self.refused(hf_run("encode", enc, "--input", docs, "--out", out, env=env, timeout=20), [z, kind])
                if kind == "FIFO":
                    self.refused(hf_run("encode", enc, "--input", z, "--out", out, env=env, timeout=20), [z, kind])
                remove(z)
                self.assertFalse(os.path.exists(out))
        self.refused(hf_run("export", "/dev/null", self.path("out_null"), timeout=20),
                     ["/dev/null", "character device"])

    def refuse_quickly(self, folder, words):
        ck = self.path(os.path.basename(folder) + ".bin")
        self.refused(hf_run("import", folder, ck, timeout=20), words, ck)

    def test_stale_tmp_fifo_does_not_hang(self):
        # outputs are written to PATH.tmp and renamed; a stale PATH.tmp that is a FIFO (an open for
        # writing would wait for a reader) is replaced, not opened
        ckpt = self.path("w.bin")
        write_checkpoint(ckpt, 64, 16, 2, 4, 2, 32, 8, 10000.0, 1e-5, 63, 0, seed=9)
        out = self.path("hf")
        os.makedirs(out)
        os.mkfifo(os.path.join(out, "model.safetensors.tmp"))
        self.assertEqual(hf_run("export", ckpt, out, timeout=20).returncode, 0)
        back = self.path("back.bin")
        os.mkfifo(back + ".tmp")
        self.assertEqual(hf_run("import", out, back, timeout=20).returncode, 0)
        self.assertEqual(read(back), read(ckpt))
        self.assertEqual(sorted(os.listdir(out)), ["config.json", "model.safetensors"])
        self.assertFalse(os.path.exists(back + ".tmp"))

    # --- gradsink on an imported model -------------------------------------------

    def test_plain_rope_spelled_out(self):
        # rope_scaling of rope_type "default", and a newer config's rope_parameters, are plain RoPE
        a = self.edited("ropedefault", config_edit=lambda c: c.update(rope_scaling={"rope_type": "default"}))
        b = self.edited("ropeparams", config_edit=lambda c: (c.pop("rope_theta"), c.update(
            rope_parameters={"rope_type": "default", "rope_theta": 10000.0})))
        self.assertEqual(self.import_ok(a)[0], read(self.path("w.bin")))
        self.assertEqual(self.import_ok(b)[0], read(self.path("w.bin")))

    def test_gradsink_runs_imported(self):
        cfg_edit = lambda c: c.update(rope_theta=100000.0, rms_norm_eps=1e-6, eos_token_id=[0, 2], bos_token_id=1)
        folder = self.edited("imp", config_edit=cfg_edit)
        _, ck = self.import_ok(folder)
        out = self.path("probe")
        r = run(GRADSINK, "-c", ck, "-p", "1", "-j", self.tokens, "-t", "8", "-b", "2", "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("rope_theta 100000 | rms_norm_eps 1e-06 | eot 0", r.stdout)
        self.assertIn("probe step 0 | loss", r.stdout)
        self.assertEqual(len(read(os.path.join(out, "probes.jsonl")).splitlines()), 1)
        r = run(GRADSINK, "-c", ck, "-x", "1", "-j", self.tokens, "-t", "8", "-b", "2", "-e", "2", "-G", "6", "-o", out)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("val loss", r.stdout)
        self.assertRegex(r.stdout, r"(<\d+>){6}")  # no tokenizer file: sampling prints token ids

    # --- encode ------------------------------------------------------------------

    def fake_tokenizers(self, body):
        d = self.path("fakepkg")
        os.makedirs(d, exist_ok=True)
        with open(os.path.join(d, "tokenizers.py"), "w") as f:
            f.write(body)
        env = dict(os.environ)
        env["PYTHONPATH"] = d
        return env

    def encode_setup(self):
        folder = self.edited("enc", config_edit=lambda c: c.update(eos_token_id=0))
        with open(os.path.join(folder, "tokenizer.json"), "w") as f:
            f.write('{"decoder": {"type": "ByteLevel"}}')
        docs = self.path("docs")
        os.makedirs(docs, exist_ok=True)
        for i, text in enumerate(["hello world", "a b c", "zz", "the end"]):
            with open(os.path.join(docs, "%d.txt" % i), "w") as f:
                f.write(text)
        return folder, docs

    def test_encode_needs_tokenizers(self):
        folder, docs = self.encode_setup()
        env = self.fake_tokenizers("raise ImportError('No module named tokenizers')\n")
        r = hf_run("encode", folder, "--input", docs, "--out", self.path("out"), env=env)
        self.refused(r, ["needs the Python package 'tokenizers'"])

    def test_encode_with_a_tokenizer(self):
        folder, docs = self.encode_setup()
        env = self.fake_tokenizers(FAKE_TOKENIZERS)
        out = self.path("out")
        r = hf_run("encode", folder, "--input", docs, "--out", out, "--val-fraction", "0.3", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        sys.path.insert(0, ROOT)
        import tokenizer as T
        train, val = T.read_tokens_file(os.path.join(out, "train.bin")), T.read_tokens_file(os.path.join(out, "val.bin"))
        enc = lambda s: [ord(c) % 62 + 1 for c in s]
        self.assertEqual(train[0], 0)
        self.assertEqual(sorted(train + val), sorted([0] * 4 + sum((enc(s) for s in
                                                                   ["hello world", "a b c", "zz", "the end"]), [])))
        self.assertIn(enc("hello world"), [train[i:i + 11] for i in range(len(train))] + [val[i:i + 11] for i in range(len(val))])
        tk = read(os.path.join(out, "tokenizer.bin"))
        h = struct.unpack_from("<5i", tk)
        self.assertEqual(h, (20261130, 1, 64, 0, 0))
        pos, entries = 1024, []
        for _ in range(64):
            n = struct.unpack_from("<H", tk, pos)[0]
            entries.append(tk[pos + 2:pos + 2 + n])
            pos += 2 + n
        self.assertEqual(pos, len(tk))
        self.assertEqual((entries[0], entries[1], entries[2], entries[63]), (b"<|endoftext|>", b" ", b"!", b""))
        # gradsink decodes with it
        ck = self.path("enc.bin")
        self.assertEqual(hf_run("import", folder, ck).returncode, 0)
        r = run(GRADSINK, "-c", ck, "-n", "0", "-i", os.path.join(out, "train.bin"), "-j", "", "-t", "8", "-G", "5",
                "-o", self.path("samp"))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotRegex(r.stdout.splitlines()[-1], r"<\d+>")


    def test_encode_val_fraction_zero(self):
        # encode writes with tokenizer.py's rules: --val-fraction 0 writes no val.bin (an earlier one
        # is removed, said in one line), and a split that would give an empty val.bin is refused
        folder, docs = self.encode_setup()
        env, out = self.fake_tokenizers(FAKE_TOKENIZERS), self.path("out")
        os.makedirs(out)
        with open(os.path.join(out, "val.bin"), "wb") as f:
            f.write(b"stale")
        r = hf_run("encode", folder, "--input", docs, "--out", out, "--val-fraction", "0", env=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(os.listdir(out)), ["tokenizer.bin", "train.bin"])
        self.assertIn("no val.bin written; removed the earlier run's %s" % os.path.join(out, "val.bin"), r.stdout)
        tiny = self.path("tiny.txt")
        with open(tiny, "w") as f:
            f.write("a")
        self.refused(hf_run("encode", folder, "--input", tiny, "--out", self.path("never"), env=env),
                     ["val.bin would hold 0 tokens"])
        self.assertFalse(os.path.exists(self.path("never")))

# ---------------------------------------------------------------------------
# a random BF16 Llama of SmolLM-135M's shape, written tensor by tensor (for dev/HF.md)

def write_135m(out, dtype="BF16"):
    C, F, L, H, Hkv, V = 576, 1536, 30, 9, 3, 49152
    D = C // H
    shapes = [("model.embed_tokens.weight", (V, C))]
    for l in range(L):
        p = "model.layers.%d." % l
        shapes += [(p + "self_attn.q_proj.weight", (C, C)), (p + "self_attn.k_proj.weight", (Hkv * D, C)),
                   (p + "self_attn.v_proj.weight", (Hkv * D, C)), (p + "self_attn.o_proj.weight", (C, C)),
                   (p + "mlp.gate_proj.weight", (F, C)), (p + "mlp.up_proj.weight", (F, C)),
                   (p + "mlp.down_proj.weight", (C, F)), (p + "input_layernorm.weight", (C,)),
                   (p + "post_attention_layernorm.weight", (C,))]
    shapes.append(("model.norm.weight", (C,)))
    head, pos = {}, 0
    for name, shape in shapes:
        n = 2 * math.prod(shape)
        head[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [pos, pos + n]}
        pos += n
    h = json.dumps(head).encode()
    os.makedirs(out, exist_ok=True)
    r = random.Random(1)
    # random mantissas and signs, |x| in [2^-7, 2^-6) (BF16) or [2^-8, 2^-7) (F16): N(0, 0.02)-like sizes, all finite
    hi = bytes((b & 0x80) | 0x3c if dtype == "BF16" else (b & 0x83) | 0x1c for b in range(256))
    one = b"\x80\x3f" if dtype == "BF16" else b"\x00\x3c"
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h)
        for name, shape in shapes:
            raw = bytearray(r.randbytes(2 * math.prod(shape)))
            raw[1::2] = raw[1::2].translate(hi)
            if len(shape) == 1:
                raw = bytearray(one * shape[0])  # norm gains 1
            f.write(raw)
    cfg = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": C, "intermediate_size": F,
           "num_hidden_layers": L, "num_attention_heads": H, "num_key_value_heads": Hkv, "vocab_size": V,
           "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "max_position_embeddings": 2048, "tie_word_embeddings": True,
           "torch_dtype": "bfloat16" if dtype == "BF16" else "float16", "bos_token_id": 0, "eos_token_id": 0, "hidden_act": "silu", "rope_scaling": None}
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    print("wrote %s: %d parameters in %s (%d bytes)" % (out, pos // 2, dtype, pos))


if __name__ == "__main__":
    if len(sys.argv) in (3, 4) and sys.argv[1] == "--write-135m":
        write_135m(sys.argv[2], sys.argv[3] if len(sys.argv) == 4 else "BF16")
        sys.exit(0)
    result = unittest.main(verbosity=2, exit=False).result
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    print("%d passed, %d failed" % (result.testsRun - failed - len(result.skipped), failed))
    sys.exit(1 if failed else 0)
