"""Tests for tokenizer.py (stdlib unittest; makes its own data in a temp dir).

Run from the repository root:  python3 -m unittest -v test_tokenizer
"""

import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest
from collections import Counter

import tokenizer as T

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPT = os.path.join(HERE, "tokenizer.py")

TRICKY = [
    "",
    "a",
    "Hello, world!",
    "naïve café, résumé, Ångström, façade",
    "e\u0301 a\u0308 n\u0303 \u0301\u0301 leading combining marks",
    "中文字符和日本語のテキスト、한국어 텍스트",
    "emoji 😀👍🏽 family 👨\u200d👩\u200d👧\u200d👦 flags 🇫🇷🇯🇵 ✨",
    "tabs\tand\tnewlines\nmixed \t \n\r\n  \u00a0\u2003\u3000 spaces",
    "windows\r\nline\r\nendings\r\n\r\n",
    "   leading and trailing   ",
    " " * 1000 + "x" + "\n" * 300 + "\t" * 50,
    "digits 0 12 345 6789 3.14159 1,000,000 ٣٤٥ ²³ ½",
    "punctuation!!! ??? ... --- ;;; ((())) <<>> \"quoted\" 'single' `back`",
    "snake_case __dunder__ a_b_c _ __",
    "don't I'm we're they've you'll he'd IT'S 'quote'",
    "NUL\x00byte and \x01\x02\x7f control chars \x1b[0m",
    "<|endoftext|> is just text here",
    "math ∑∫√∞ ≠ ≤ ≥ and arrows → ← ↔",
    "\U0010ffff\U000e0001 private and tag chars \ue000",
    "mixed123abc___!!!   \t\n",
]


def run_script(args, env_extra=None, cwd=None, text=True, timeout=120):
    """tokenizer.py in a subprocess; a hang past `timeout` fails the test (TimeoutExpired)."""
    env = dict(os.environ)
    env.pop("PYTHONHASHSEED", None)
    if env_extra:
        env.update(env_extra)
    return subprocess.run([sys.executable, SCRIPT] + list(args), capture_output=True,
                          text=text, env=env, cwd=cwd or HERE, timeout=timeout)


# words a sentence cannot end on: a refusal ending on one was cut off
DANGLING = {"a", "an", "the", "is", "are", "of", "to", "and", "or", "with", "for", "in", "at", "by", "from",
            "as", "but", "not", "than", "its", "be"}


def assert_whole(testcase, line):
    """A one-line message that is whole: it does not stop on a dangling word, colon or comma."""
    testcase.assertFalse(line.rstrip().endswith((":", ",")), line)
    testcase.assertNotIn(line.split()[-1].lower(), DANGLING, "message cut off: " + line)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def parse_token_file(testcase, path):
    """Check the llm.c header byte by byte and return the tokens."""
    data = read(path)
    testcase.assertGreaterEqual(len(data), 1024)
    header = struct.unpack("<256i", data[:1024])
    testcase.assertEqual(data[0:4], (20240520).to_bytes(4, "little"))
    testcase.assertEqual(header[0], 20240520)
    testcase.assertEqual(header[1], 1)
    count = header[2]
    testcase.assertEqual(list(header[3:]), [0] * 253)
    testcase.assertEqual(data[12:1024], bytes(1012))
    testcase.assertEqual(len(data), 1024 + 2 * count)
    return list(struct.unpack("<%dH" % count, data[1024:]))


def parse_tokenizer_file(testcase, path):
    """Independent byte-by-byte parse of tokenizer.bin."""
    data = read(path)
    header = struct.unpack("<256i", data[:1024])
    testcase.assertEqual(header[0], 20261130)
    testcase.assertEqual(header[1], 1)
    v, eot, m = header[2], header[3], header[4]
    testcase.assertEqual(eot, v - 1)
    testcase.assertEqual(list(header[5:]), [0] * 251)
    pos = 1024
    vocab = []
    for _ in range(v):
        n = int.from_bytes(data[pos:pos + 2], "little")
        pos += 2
        vocab.append(data[pos:pos + n])
        pos += n
    merges = []
    for _ in range(m):
        a = int.from_bytes(data[pos:pos + 4], "little", signed=True)
        b = int.from_bytes(data[pos + 4:pos + 8], "little", signed=True)
        merges.append((a, b))
        pos += 8
    testcase.assertEqual(pos, len(data), "no bytes may follow the merges")
    return v, eot, m, vocab, merges


def split_on(tokens, eot):
    """Split a packed stream into documents; asserts it starts with EOT."""
    docs = []
    for t in tokens:
        if t == eot:
            docs.append([])
        else:
            docs[-1].append(t)
    return docs


def make_corpus(root):
    """A folder of small documents with varied lengths and content."""
    os.makedirs(root)
    rng = random.Random(7)
    words = ("the of and to in government people states congress year nation "
             "law war peace treaty shall would have been united public "
             "naïve café 中文 😀 1776 42 3.5 don't it's").split()
    docs = {}
    for i in range(12):
        n = rng.randint(20, 400)
        parts = []
        for _ in range(n):
            w = rng.choice(words)
            sep = rng.choice([" ", " ", " ", ", ", ". ", "\n", "\r\n", "  "])
            parts.append(w + sep)
        docs["doc_%02d.txt" % i] = "".join(parts)
    docs["doc_00.txt"] = "Short first doc.\r\n"
    for name, text in docs.items():
        with open(os.path.join(root, name), "w", encoding="utf-8", newline="") as f:
            f.write(text)
    with open(os.path.join(root, "ignored.md"), "w") as f:
        f.write("not a .txt file, must be ignored")
    return [docs[k] for k in sorted(docs)]


def naive_train(counts, num_merges):
    """Slow reference trainer: recount all pairs before every merge."""
    words = {w: list(w) for w in counts}
    merges = []
    for _ in range(num_merges):
        pc = Counter()
        for w, f in counts.items():
            ids = words[w]
            for i in range(len(ids) - 1):
                pc[(ids[i], ids[i + 1])] += f
        if not pc:
            break
        best = min(pc, key=lambda p: (-pc[p], p))
        new = 256 + len(merges)
        merges.append(best)
        for w in words:
            ids, out, i = words[w], [], 0
            while i < len(ids):
                if i + 1 < len(ids) and (ids[i], ids[i + 1]) == best:
                    out.append(new)
                    i += 2
                else:
                    out.append(ids[i])
                    i += 1
            words[w] = out
    return merges, words


class TestPieces(unittest.TestCase):
    def test_pieces_cover_every_code_point(self):
        chars = [chr(c) for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
        for k in range(0, len(chars), 50000):
            s = "".join(chars[k:k + 50000])
            self.assertEqual("".join(T.split_pieces(s)), s)

    def test_gpt2_style_split(self):
        self.assertEqual(T.split_pieces("Hello world, it's 2024!!  ok"),
                         ["Hello", " world", ",", " it", "'s", " 2024", "!!", " ", " ok"])
        # As in GPT-2: the whitespace run leaves its last character alone
        # when a non-space follows.
        self.assertEqual(T.split_pieces("a\r\n\r\nb"), ["a", "\r\n\r", "\n", "b"])
        self.assertEqual(T.split_pieces("a   b"), ["a", "  ", " b"])
        self.assertEqual(T.split_pieces("x__y"), ["x", "__", "y"])


class TestValSplit(unittest.TestCase):
    """pack_and_split on token lists: which tokens go to val."""
    EOT = 9999

    def docs(self, lengths):
        return [[1000 * d + i for i in range(n)] for d, n in enumerate(lengths)]

    def stream(self, docs):
        return [t for d in docs for t in [self.EOT] + d]

    def test_few_long_documents_split_the_stream(self):
        # three novels: any one of them is about a third of the text, far past the 10% share
        docs = self.docs([300, 360, 270])
        train, val, chosen = T.pack_and_split(docs, self.EOT, 0.1, 1)
        whole = self.stream(docs)
        n_val = int((len(whole) - 1) * 0.1)
        self.assertEqual(chosen, [])
        self.assertEqual(val, [self.EOT] + whole[len(whole) - n_val:])
        self.assertEqual(train, whole[:len(whole) - n_val])

    def test_a_long_document_is_passed_over(self):
        # one document longer than twice the share stays in train, whatever the seed;
        # the short ones fill val to between one and two shares
        docs = self.docs([400] + [10] * 60)
        total = sum(len(d) + 1 for d in docs)
        for seed in range(20):
            train, val, chosen = T.pack_and_split(docs, self.EOT, 0.1, seed)
            self.assertNotIn(0, chosen)
            self.assertGreaterEqual(len(val), 0.1 * total)
            self.assertLessEqual(len(val), 0.2 * total)
            self.assertEqual(val, self.stream([docs[i] for i in chosen]))
            self.assertEqual(train, self.stream([d for i, d in enumerate(docs) if i not in chosen]))

    def test_documents_that_fit_are_taken_whole(self):
        docs = self.docs([50] * 20)
        train, val, chosen = T.pack_and_split(docs, self.EOT, 0.1, 3)
        self.assertEqual(len(chosen), 2)
        self.assertEqual(val, self.stream([docs[i] for i in chosen]))


class TestTrainer(unittest.TestCase):
    def test_tie_break_smallest_pair(self):
        # (c,d) and (a,b) both occur 3 times: the smaller ids win.
        merges = T.train_bpe({b"cd": 3, b"ab": 3, b"xy": 2}, 2)
        self.assertEqual(merges, [(97, 98), (99, 100)])

    def test_overlapping_pair(self):
        merges = T.train_bpe({b"aaaa": 1}, 2)
        self.assertEqual(merges, [(97, 97), (256, 256)])

    def test_matches_naive_reference(self):
        rng = random.Random(3)
        for trial in range(6):
            counts = {}
            for _ in range(rng.randint(5, 60)):
                w = bytes(rng.choice(b"abcde ") for _ in range(rng.randint(1, 12)))
                counts[w] = counts.get(w, 0) + rng.randint(1, 5)
            fast = T.train_bpe(counts, 40)
            slow, slow_words = naive_train(counts, 40)
            self.assertEqual(fast, slow, "trial %d" % trial)
            tok = T.Tokenizer.from_merges(fast)
            for w in counts:  # encoding a training piece = training's result
                self.assertEqual(tok.encode_piece(w), slow_words[w])

    def test_runs_out_of_pairs(self):
        merges = T.train_bpe({b"ab": 1}, 10)
        self.assertEqual(merges, [(97, 98)])


class TestRoundTrip(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        corpus = "\n".join(TRICKY[2:]) * 3 + " the quick brown fox " * 50
        counts = Counter(T.to_bytes(p) for p in T.split_pieces(corpus))
        cls.tok = T.Tokenizer.from_merges(T.train_bpe(counts, 300))
        cls.plain = T.Tokenizer.from_merges([])

    def test_trained_has_merges(self):
        self.assertGreater(len(self.tok.merges), 100)

    def test_tricky_strings(self):
        for tok in (self.tok, self.plain):
            for s in TRICKY:
                ids = tok.encode(s)
                self.assertNotIn(tok.eot, ids)
                self.assertEqual(tok.decode(ids), s, repr(s[:40]))
        self.assertEqual(self.tok.encode(""), [])
        self.assertEqual(self.tok.decode([]), "")

    def test_compresses(self):
        s = " the quick brown fox"
        self.assertLess(len(self.tok.encode(s)), len(s.encode()))

    def test_random_strings(self):
        rng = random.Random(11)
        pools = [" \t\r\n", "abcXYZ", "0123456789", "!?.,;'_-", "éüñ中文😀\u0301\x00"]
        for _ in range(300):
            s = "".join(rng.choice(rng.choice(pools)) for _ in range(rng.randint(0, 40)))
            self.assertEqual(self.tok.decode(self.tok.encode(s)), s)

    def test_save_load_same_encoding(self):
        data = self.tok.to_file_bytes()
        again = T.Tokenizer.from_file_bytes(data)
        self.assertTrue(again.byte_level)
        self.assertEqual(again.vocab, self.tok.vocab)
        self.assertEqual(again.merges, self.tok.merges)
        for s in TRICKY:
            self.assertEqual(again.encode(s), self.tok.encode(s))


class TestCommandLine(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="test_tokenizer_")
        cls.corpus = os.path.join(cls.tmp, "corpus")
        cls.docs = make_corpus(cls.corpus)
        cls.single = os.path.join(cls.tmp, "single.txt")
        with open(cls.single, "w", encoding="utf-8", newline="") as f:
            f.write("".join(cls.docs))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def prep(self, out, *extra, env=None):
        out = os.path.join(self.tmp, out)
        r = run_script(list(extra) + ["--out", out], env_extra=env)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("Traceback", r.stderr)
        return out

    def load(self, out):
        """tokenizer, train tokens, val tokens (None: no val.bin)"""
        tok = T.Tokenizer.load(os.path.join(out, "tokenizer.bin"))
        train = parse_token_file(self, os.path.join(out, "train.bin"))
        has_val = os.path.exists(os.path.join(out, "val.bin"))
        val = parse_token_file(self, os.path.join(out, "val.bin")) if has_val else None
        return tok, train, val

    def test_determinism_across_hash_seeds(self):
        a = self.prep("det_a", "--input", self.corpus, "--vocab-size", "400",
                      env={"PYTHONHASHSEED": "0"})
        b = self.prep("det_b", "--input", self.corpus, "--vocab-size", "400",
                      env={"PYTHONHASHSEED": "987654"})
        c = self.prep("det_c", "--input", self.corpus, "--vocab-size", "400",
                      env={"PYTHONHASHSEED": "random"})
        for name in ("train.bin", "val.bin", "tokenizer.bin"):
            first = read(os.path.join(a, name))
            self.assertEqual(first, read(os.path.join(b, name)), name)
            self.assertEqual(first, read(os.path.join(c, name)), name)

    def test_token_file_headers(self):
        out = self.prep("hdr", "--input", self.corpus, "--vocab-size", "400")
        tok, train, val = self.load(out)
        self.assertGreater(len(train), 0)
        self.assertGreater(len(val), 0)
        self.assertTrue(all(0 <= t < tok.vocab_size for t in train + val))

    def test_tokenizer_file_layout(self):
        out = self.prep("layout", "--input", self.corpus, "--vocab-size", "400")
        v, eot, m, vocab, merges = parse_tokenizer_file(self, os.path.join(out, "tokenizer.bin"))
        self.assertEqual(v, 400)
        self.assertEqual(eot, 399)
        self.assertEqual(m, 400 - 257)
        for i in range(256):
            self.assertEqual(vocab[i], bytes([i]))
        self.assertEqual(vocab[eot], b"<|endoftext|>")
        for i, (a, b) in enumerate(merges):
            self.assertLess(a, 256 + i)
            self.assertLess(b, 256 + i)
            self.assertEqual(vocab[256 + i], vocab[a] + vocab[b])
        tok = T.Tokenizer.load(os.path.join(out, "tokenizer.bin"))
        self.assertEqual(tok.vocab, vocab)
        self.assertEqual([tuple(x) for x in tok.merges], merges)

    def test_packing_eot_positions(self):
        out = self.prep("pack", "--input", self.corpus, "--vocab-size", "400",
                        "--val-fraction", "0")
        tok, train, val = self.load(out)
        self.assertIsNone(val)  # --val-fraction 0: no val.bin
        encoded = [tok.encode(d) for d in self.docs]
        expected_eot, pos = [], 0
        for e in encoded:
            expected_eot.append(pos)
            pos += 1 + len(e)
        self.assertEqual([i for i, t in enumerate(train) if t == tok.eot], expected_eot)
        self.assertEqual(len(train), pos)
        expected = []
        for e in encoded:
            expected += [tok.eot] + e
        self.assertEqual(train, expected)
        self.assertEqual(tok.decode(train[1:1 + len(encoded[0])]), self.docs[0])

    def test_val_split_whole_documents(self):
        out = self.prep("split", "--input", self.corpus, "--vocab-size", "400",
                        "--val-fraction", "0.3", "--seed", "5")
        tok, train, val = self.load(out)
        encoded = [tok.encode(d) for d in self.docs]
        self.assertEqual(train[0], tok.eot)
        self.assertEqual(val[0], tok.eot)
        val_docs = split_on(val, tok.eot)
        train_docs = split_on(train, tok.eot)
        # Each val segment is one whole document; val + train = all, in order.
        idx = [encoded.index(d) for d in val_docs]
        self.assertEqual(idx, sorted(idx))
        rest = [e for i, e in enumerate(encoded) if i not in idx]
        self.assertEqual(train_docs, rest)
        self.assertEqual(val, [t for i in idx for t in [tok.eot] + encoded[i]])
        total = len(train) + len(val)
        self.assertGreaterEqual(len(val), 0.3 * total)
        self.assertLess(len(val), 0.3 * total + max(len(e) + 1 for e in encoded))
        self.assertEqual(idx, T.choose_val_docs([len(e) for e in encoded], 0.3, 5))
        other = T.choose_val_docs([len(e) for e in encoded], 0.3, 6)
        self.assertNotEqual(idx, other, "the seed should matter")

    def test_single_file_last_tenth(self):
        out = self.prep("single", "--input", self.single, "--vocab-size", "400")
        tok, train, val = self.load(out)
        whole = tok.encode("".join(self.docs))
        n_val = int(len(whole) * 0.1)
        self.assertGreater(n_val, 0)
        self.assertEqual(val, [tok.eot] + whole[len(whole) - n_val:])
        self.assertEqual(train, [tok.eot] + whole[:len(whole) - n_val])

    def test_plain_bytes(self):
        out = self.prep("bytes", "--input", self.corpus, "--vocab-size", "256",
                        "--val-fraction", "0")
        v, eot, m, vocab, merges = parse_tokenizer_file(self, os.path.join(out, "tokenizer.bin"))
        self.assertEqual((v, eot, m, merges), (257, 256, 0, []))
        self.assertEqual(len(read(os.path.join(out, "tokenizer.bin"))),
                         1024 + 256 * 3 + 2 + 13)
        train = parse_token_file(self, os.path.join(out, "train.bin"))
        expected = []
        for d in self.docs:
            expected += [256] + list(d.encode("utf-8"))
        self.assertEqual(train, expected)
        self.assertFalse(os.path.exists(os.path.join(out, "val.bin")))

    def test_dataset_uses_existing_file(self):
        data_dir = os.path.join(self.tmp, "dl")
        os.makedirs(data_dir, exist_ok=True)
        with open(os.path.join(data_dir, "tinyshakespeare.txt"), "w") as f:
            f.write("First Citizen:\nBefore we proceed any further, hear me speak.\n" * 20)
        out = self.prep("ts", "--dataset", "tinyshakespeare", "--data-dir", data_dir,
                        "--vocab-size", "300")
        tok, train, val = self.load(out)
        self.assertEqual(tok.decode(train[1:] + val[1:]),
                         "First Citizen:\nBefore we proceed any further, hear me speak.\n" * 20)

    def test_encode_decode_options(self):
        out = self.prep("cli", "--input", self.corpus, "--vocab-size", "400")
        tb = os.path.join(out, "tokenizer.bin")
        text = "naïve café\r\n 😀 the people"
        r = run_script(["--tokenizer", tb, "--encode", text])
        self.assertEqual(r.returncode, 0, r.stderr)
        ids = [int(x) for x in r.stdout.split()]
        self.assertEqual(ids, T.Tokenizer.load(tb).encode(text))
        r = run_script(["--tokenizer", tb, "--decode", ",".join(map(str, ids))], text=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout, (text + "\n").encode("utf-8"))

    def assert_rejected(self, args, *needles, timeout=120):
        r = run_script(args, timeout=timeout)
        self.assertEqual(r.returncode, 2, (args, r.stdout, r.stderr))
        self.assertNotIn("Traceback", r.stderr)
        lines = r.stderr.strip().splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        for needle in needles:
            self.assertIn(needle, lines[0])
        self.assertTrue(lines[0].startswith("tokenizer.py: error: "), lines[0])
        assert_whole(self, lines[0])

    def test_rejections(self):
        empty = os.path.join(self.tmp, "empty_dir")
        os.makedirs(empty, exist_ok=True)
        blank = os.path.join(self.tmp, "blank_docs")
        os.makedirs(blank, exist_ok=True)
        for n in ("a.txt", "b.txt"):
            open(os.path.join(blank, n), "w").close()
        out = ["--out", os.path.join(self.tmp, "never")]
        self.assert_rejected(["--input", os.path.join(self.tmp, "missing.txt")] + out,
                             "missing.txt")
        self.assert_rejected(["--input", empty] + out, "no .txt files")
        self.assert_rejected(["--input", blank] + out, "empty")
        self.assert_rejected(["--input", self.corpus, "--vocab-size", "255"] + out, "--vocab-size")
        self.assert_rejected(["--input", self.corpus, "--vocab-size", "65536"] + out,
                             "--vocab-size")
        self.assert_rejected(["--input", self.corpus, "--vocab-size", "many"] + out,
                             "--vocab-size")
        self.assert_rejected(["--input", self.corpus, "--no-such-option"] + out,
                             "--no-such-option")
        self.assert_rejected(["--input", self.corpus, "--val-fraction", "1.5"] + out,
                             "--val-fraction")
        self.assert_rejected([], "nothing to do")
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "never")))

    def test_nonregular_inputs_refused(self):
        # every reader checks the path's type before it opens it: a FIFO (whose open would block
        # forever), a directory or a device given where a file is read is one line, exit 2, at once
        d = os.path.join(self.tmp, "nonregular")
        os.makedirs(d)
        fifo, adir = os.path.join(d, "q.txt"), os.path.join(d, "adir")
        os.mkfifo(fifo)
        os.makedirs(adir)
        with_fifo, with_dir = os.path.join(d, "docs_fifo"), os.path.join(d, "docs_dir")
        for folder, make in ((with_fifo, os.mkfifo), (with_dir, os.makedirs)):
            os.makedirs(folder)
            with open(os.path.join(folder, "a.txt"), "w") as f:
                f.write("a real document")
            make(os.path.join(folder, "b.txt"))  # a *.txt that is not a file: refused, not skipped
        ds_fifo, ds_dir = os.path.join(d, "ds_fifo"), os.path.join(d, "ds_dir")
        os.makedirs(ds_fifo)
        os.mkfifo(os.path.join(ds_fifo, "tinyshakespeare.txt"))
        os.makedirs(os.path.join(ds_dir, "tinyshakespeare.txt"))
        out = os.path.join(d, "never")
        cases = [
            (["--input", fifo, "--out", out], [fifo, "FIFO"]),
            (["--input", "/dev/null", "--out", out], ["/dev/null", "character device"]),
            (["--input", with_fifo, "--out", out], [os.path.join(with_fifo, "b.txt"), "FIFO"]),
            (["--input", with_dir, "--out", out], [os.path.join(with_dir, "b.txt"), "directory"]),
            (["--tokenizer", fifo, "--encode", "x"], ["--tokenizer " + fifo, "FIFO"]),
            (["--tokenizer", adir, "--decode", "1"], ["--tokenizer " + adir, "directory"]),
            (["--input", self.corpus, "--tokenizer", fifo, "--out", out], ["--tokenizer " + fifo, "FIFO"]),
            (["--dataset", "tinyshakespeare", "--data-dir", ds_fifo, "--out", out], ["tinyshakespeare.txt", "FIFO"]),
            (["--dataset", "tinyshakespeare", "--data-dir", ds_dir, "--out", out],
             ["tinyshakespeare.txt", "directory"]),
        ]
        for args, needles in cases:
            with self.subTest(args=args):
                self.assert_rejected(args, *needles, timeout=20)
        self.assertFalse(os.path.exists(out))
        with self.assertRaises(T.UserError):
            T.read_tokens_file(fifo)

    def test_stale_tmp_fifo_does_not_hang(self):
        # outputs go to PATH.tmp and are renamed; a stale PATH.tmp (here a FIFO, which an open for
        # writing would wait on) is replaced, and no .tmp is left behind
        out = os.path.join(self.tmp, "stale_tmp")
        os.makedirs(out)
        os.mkfifo(os.path.join(out, "train.bin.tmp"))
        r = run_script(["--input", self.corpus, "--vocab-size", "300", "--out", out], timeout=20)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(sorted(os.listdir(out)), ["tokenizer.bin", "train.bin", "val.bin"])
        tok, train, val = self.load(out)
        self.assertEqual(len(train) + len(val), sum(len(tok.encode(d)) + 1 for d in self.docs))

    def test_val_fraction_zero_writes_no_val(self):
        # no 0-token val.bin (gradsink refuses one): none at all, said in one line, and an earlier
        # run's val.bin in that folder is removed (it belongs to other data)
        out = os.path.join(self.tmp, "nval")
        os.makedirs(out)
        with open(os.path.join(out, "val.bin"), "wb") as f:
            f.write(b"stale")
        for args in (["--input", self.corpus, "--vocab-size", "300"], ["--input", self.single, "--vocab-size", "256"],
                     ["--synthetic", "--num-tokens", "5000"]):
            with self.subTest(args=args):
                r = run_script(args + ["--val-fraction", "0", "--out", out])
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertEqual(sorted(os.listdir(out)), ["tokenizer.bin", "train.bin"])
                notes = [l for l in r.stdout.splitlines() if "no val.bin" in l]
                self.assertEqual(len(notes), 1, r.stdout)
                self.assertNotIn("val.bin", r.stdout.splitlines()[-1])  # "wrote ..." lists what was written
                self.assertGreaterEqual(len(parse_token_file(self, os.path.join(out, "train.bin"))), 2)
            with open(os.path.join(out, "val.bin"), "wb") as f:
                f.write(b"stale")
        self.assertIn("removed the earlier run's " + os.path.join(out, "val.bin"), notes[0])

    def test_tiny_split_refused(self):
        # a split that would give a token file gradsink cannot use (fewer than 2 tokens, an empty
        # val.bin above all) is refused before anything is written
        tiny = os.path.join(self.tmp, "tiny.txt")
        with open(tiny, "w") as f:
            f.write("hi")
        tiny_docs = os.path.join(self.tmp, "tiny_docs")
        os.makedirs(tiny_docs)
        for n, text in (("a.txt", "x"), ("b.txt", "y")):
            with open(os.path.join(tiny_docs, n), "w") as f:
                f.write(text)
        out = os.path.join(self.tmp, "tiny_out")
        for args in (["--input", tiny], ["--input", tiny, "--val-fraction", "0.3"], ["--input", tiny_docs],
                     ["--synthetic", "--num-tokens", "300"],
                     ["--synthetic", "--num-tokens", "2", "--val-fraction", "0.5"]):
            with self.subTest(args=args):
                self.assert_rejected(args + ["--out", out], "val.bin would hold", "--val-fraction 0")
        self.assertFalse(os.path.exists(out))
        # the same data without a val.bin is fine
        self.prep("tiny_ok", "--input", tiny, "--val-fraction", "0")
        self.prep("tiny_syn", "--synthetic", "--num-tokens", "2", "--val-fraction", "0")
        with self.assertRaises(T.UserError):
            T.check_split([5], [], 0)  # one token cannot make an input and its target

    def test_options_without_effect_refused(self):
        # an option the chosen mode does not use is refused naming both, never ignored; --vocab-size
        # beside --tokenizer only at the tokenizer's own size
        base = self.prep("noeffect", "--input", self.corpus, "--vocab-size", "300")
        tb = os.path.join(base, "tokenizer.bin")
        plain = os.path.join(self.prep("noeffect_bytes", "--input", self.corpus, "--vocab-size", "256"),
                             "tokenizer.bin")
        out = ["--out", os.path.join(self.tmp, "never_noeffect")]
        cases = [
            (["--input", self.corpus, "--tokenizer", tb, "--vocab-size", "512"] + out,
             ["--vocab-size 512", "--tokenizer"]),
            (["--input", self.corpus, "--tokenizer", plain, "--vocab-size", "300"] + out,
             ["--vocab-size 300", "--tokenizer"]),
            (["--tokenizer", tb, "--encode", "x", "--vocab-size", "2048"], ["--vocab-size 2048", "--tokenizer"]),
            (["--input", self.corpus, "--num-tokens", "5000"] + out, ["--num-tokens", "--input"]),
            (["--input", self.corpus, "--data-dir", self.tmp] + out, ["--data-dir", "--input"]),
            (["--synthetic", "--data-dir", self.tmp] + out, ["--data-dir", "--synthetic"]),
            (["--synthetic", "--tokenizer", tb] + out, ["--tokenizer", "--synthetic"]),
            (["--tokenizer", tb, "--encode", "x"] + out, ["--out", "--encode"]),
            (["--tokenizer", tb, "--decode", "1", "--val-fraction", "0.2"], ["--val-fraction", "--decode"]),
            (["--tokenizer", tb, "--encode", "x", "--seed", "3"], ["--seed", "--encode"]),
            (["--tokenizer", tb, "--decode", "1", "--num-tokens", "9"], ["--num-tokens", "--decode"]),
        ]
        for args, needles in cases:
            with self.subTest(args=args):
                self.assert_rejected(args, *needles)
        self.assertFalse(os.path.exists(out[1]))
        # the value agrees: accepted
        self.prep("agree", "--input", self.corpus, "--tokenizer", tb, "--vocab-size", "300")
        self.prep("agree_bytes", "--input", self.corpus, "--tokenizer", plain, "--vocab-size", "256")
        r = run_script(["--tokenizer", tb, "--encode", "the", "--vocab-size", "300"])
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_int32_header_fields(self):
        # every number bound for an int32 header field is checked before anything is written
        out = ["--out", os.path.join(self.tmp, "never_int32")]
        for n in ("3000000000", "2147483648", "1", "-5"):
            with self.subTest(n=n):
                self.assert_rejected(["--synthetic", "--num-tokens", n] + out, "--num-tokens", "int32")
        for bad in (["--val-fraction", "nan"], ["--val-fraction", "inf"], ["--val-fraction", "-0.1"],
                    ["--vocab-size", "7"], ["--vocab-size", "65536"]):
            with self.subTest(bad=bad):
                self.assert_rejected(["--synthetic"] + bad + out, bad[0])
        self.assertFalse(os.path.exists(out[1]))
        with self.assertRaisesRegex(T.UserError, "token count 2147483648 does not fit"):
            T.int32_header([("magic", T.DATA_MAGIC), ("token count", 2**31)], "train.bin")
        self.assertEqual(len(T.int32_header([("magic", 1), ("n", T.INT32_MAX)], "x")), 1024)


class TestSynthetic(unittest.TestCase):
    N = 30000

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="test_tokenizer_syn_")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def gen(self, name, *extra):
        out = os.path.join(self.tmp, name)
        r = run_script(["--synthetic", "--num-tokens", str(self.N), "--out", out] + list(extra))
        self.assertEqual(r.returncode, 0, r.stderr)
        train = parse_token_file(self, os.path.join(out, "train.bin"))
        val = parse_token_file(self, os.path.join(out, "val.bin"))
        return out, train, val

    def test_stream_rules(self):
        out, train, val = self.gen("rules")
        v, eot, m, vocab, merges = parse_tokenizer_file(self, os.path.join(out, "tokenizer.bin"))
        self.assertEqual((v, eot, m), (64, 63, 0))
        self.assertEqual(vocab[eot], b"<|endoftext|>")
        self.assertEqual(len(set(vocab)), v)
        self.assertEqual(len(train) + len(val), self.N)
        self.assertGreater(len(val), 0)
        triggers = range(T.SYNTH_TRIGGERS)
        n_trig = 0
        for stream in (train, val):
            self.assertEqual(stream[0], eot)
            docs = split_on(stream, eot)
            for d in docs:
                self.assertGreaterEqual(len(d), 1)
                self.assertNotIn(d[0], triggers)
                self.assertNotIn(d[-1], triggers)
                for i, t in enumerate(d):
                    self.assertTrue(0 <= t < eot)
                    if t in triggers:
                        n_trig += 1
                        self.assertNotIn(d[i - 1], triggers)
                        self.assertEqual(d[i + 1], d[i - 1], "copy rule")
            # EOT positions follow from the document lengths.
            pos, expect = 0, []
            for d in docs:
                expect.append(pos)
                pos += 1 + len(d)
            self.assertEqual([i for i, t in enumerate(stream) if t == eot], expect)
        self.assertGreater(n_trig, 0.03 * self.N)
        tok = T.Tokenizer.load(os.path.join(out, "tokenizer.bin"))
        self.assertFalse(tok.byte_level)
        self.assertTrue(tok.decode(train[:5]).startswith("<|endoftext|><t"))

    def test_determinism_and_seed(self):
        a, _, _ = self.gen("a")
        b, _, _ = self.gen("b")
        c, _, _ = self.gen("c", "--seed", "2")
        for name in ("train.bin", "val.bin", "tokenizer.bin"):
            self.assertEqual(read(os.path.join(a, name)), read(os.path.join(b, name)), name)
        self.assertNotEqual(read(os.path.join(a, "train.bin")), read(os.path.join(c, "train.bin")))

    def test_vocab_option(self):
        out, train, val = self.gen("v20", "--vocab-size", "20")
        v, eot, m, vocab, _ = parse_tokenizer_file(self, os.path.join(out, "tokenizer.bin"))
        self.assertEqual((v, eot, m), (20, 19, 0))
        self.assertEqual(max(train + val), 19)


if __name__ == "__main__":
    # run verbosely, then print the harness's summary line
    result = unittest.main(verbosity=2, exit=False).result
    failed = len(result.failures) + len(result.errors) + len(result.unexpectedSuccesses)
    print("%d passed, %d failed" % (result.testsRun - failed - len(result.skipped), failed))
    sys.exit(1 if failed else 0)
