#!/usr/bin/env python3
"""Byte-level BPE tokenizer and data preparer for gradsink.

Trains a byte-level BPE vocabulary on a text corpus, encodes the corpus into
llm.c-style train.bin / val.bin token files and writes tokenizer.bin, the
vocabulary file that gradsink.c reads.  A --synthetic mode writes a
Markov-chain-with-copy-rule token stream instead (no BPE).

Standard library only.  All outputs are deterministic: the same input and
options give byte-identical files, whatever PYTHONHASHSEED is.
"""

import argparse
import array
import heapq
import os
import random
import re
import stat
import struct
import sys
import time
import urllib.request

# ---------------------------------------------------------------------------
# File formats
# ---------------------------------------------------------------------------

DATA_MAGIC = 20240520       # llm.c token file magic
DATA_VERSION = 1
TOK_MAGIC = 20261130        # gradsink tokenizer file magic
TOK_VERSION = 1
HEADER_INTS = 256           # both headers are 256 little-endian int32
INT32_MAX = 2**31 - 1       # every header field is an int32
MIN_TOKENS = 2              # a token file gradsink can use: one input and its target (B = T = 1)
EOT_BYTES = b"<|endoftext|>"
MAX_VOCAB = 65535           # token ids must fit in uint16

DEFAULT_BPE_VOCAB = 2048
DEFAULT_SYNTH_VOCAB = 64
DEFAULT_SEED = 1337
DEFAULT_VAL_FRACTION = 0.1
DEFAULT_NUM_TOKENS = 2_000_000
DEFAULT_DATA_DIR = "data"

TINYSHAKESPEARE_URL = ("https://raw.githubusercontent.com/karpathy/char-rnn/"
                       "master/data/tinyshakespeare/input.txt")

# Synthetic stream parameters (fixed; documented in dev/TOKENIZER.md).
SYNTH_TRIGGERS = 4          # ids 0..3 are trigger tokens
SYNTH_P_TRIGGER = 0.08      # chance that the next token is a trigger
SYNTH_SUCCESSORS = 8        # each token has at most this many likely successors
SYNTH_DOC_MIN = 200
SYNTH_DOC_MAX = 2000

# GPT-2-style pre-tokenisation with the standard `re` module:
# contractions, letters with an optional leading space, digits with an
# optional leading space, runs of other symbols with an optional leading
# space, whitespace not followed by a non-space, any other whitespace.
# [^\W\d_] is "word character that is not a digit or underscore", i.e.
# letters; (?!\s)[\W_] is "not whitespace, not letter, not digit".
# Every character falls into one of these classes, so the pieces always
# concatenate back to the input.
PIECE_PATTERN = re.compile(
    r"""'(?:[sdmt]|ll|ve|re)"""
    r"""| ?[^\W\d_]+"""
    r"""| ?\d+"""
    r"""| ?(?:(?!\s)[\W_])+"""
    r"""|\s+(?!\S)"""
    r"""|\s+""")


class UserError(Exception):
    """An error caused by the command line or the input: reported in one line."""


def not_regular(mode):
    """What a file of this st_mode is, when it is not a regular file (else None)."""
    for test, kind in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return None if stat.S_ISREG(mode) else "not a regular file"


def read_regular(path, what):
    """The bytes of a user-given file; every reader of this script comes here. The path's type is
    checked before it is opened, since opening a FIFO or a device can block forever: anything but a
    regular file is refused in one line. The open is non-blocking and its type checked again, so a
    FIFO put in its place between the two cannot hang it either."""
    try:
        kind = not_regular(os.stat(path).st_mode)
        if kind is None:
            with os.fdopen(os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0)), "rb") as f:
                kind = not_regular(os.fstat(f.fileno()).st_mode)
                if kind is None:
                    return f.read()
    except OSError as e:
        raise UserError("cannot read %s %s: %s" % (what, path, e.strerror or e))
    raise UserError("cannot read %s %s: it is %s, not a regular file" % (what, path, kind))


def split_pieces(text):
    """Split text into pre-tokenisation pieces (strings)."""
    return PIECE_PATTERN.findall(text)


def to_bytes(s):
    # surrogateescape: text read from a file that was not valid UTF-8 keeps
    # its original bytes (they come back as U+DC80..U+DCFF).
    return s.encode("utf-8", "surrogateescape")


# ---------------------------------------------------------------------------
# BPE training
# ---------------------------------------------------------------------------

def _merge_word(word, a, b, new_id):
    """Replace every non-overlapping (a, b) in word, left to right."""
    out = []
    i = 0
    n = len(word)
    while i < n:
        if i + 1 < n and word[i] == a and word[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(word[i])
            i += 1
    return out


def train_bpe(piece_counts, num_merges):
    """Learn up to num_merges merges from {piece bytes: frequency}.

    Works on unique pieces only.  Pair counts are kept incrementally: a merge
    touches only the pieces that contain the merged pair (found through an
    index pair -> set of piece numbers), and the most frequent pair is taken
    from a heap with lazy deletion.  Ties go to the smallest (left, right)
    pair of ids.  Returns the list of merges [(left, right), ...]; merge i
    produces id 256 + i.  Fewer merges are returned if no pair is left.
    """
    items = sorted((bytes(k), int(v)) for k, v in piece_counts.items() if v > 0)
    words = [list(k) for k, _ in items]
    freqs = [v for _, v in items]

    pair_counts = {}
    where = {}
    for wi, word in enumerate(words):
        f = freqs[wi]
        for pair in zip(word, word[1:]):
            pair_counts[pair] = pair_counts.get(pair, 0) + f
            s = where.get(pair)
            if s is None:
                where[pair] = {wi}
            else:
                s.add(wi)

    # Heap entries (-count, left, right); an entry is current only if its
    # count equals pair_counts[pair].  Every count change pushes a new entry.
    heap = [(-c, p[0], p[1]) for p, c in pair_counts.items()]
    heapq.heapify(heap)

    merges = []
    while len(merges) < num_merges and heap:
        negc, a, b = heapq.heappop(heap)
        pair = (a, b)
        if pair_counts.get(pair, 0) != -negc:
            continue  # stale entry
        new_id = 256 + len(merges)
        merges.append(pair)
        delta = {}
        for wi in sorted(where.pop(pair, ())):
            word = words[wi]
            new_word = _merge_word(word, a, b, new_id)
            if len(new_word) == len(word):
                continue  # index entry outlived the pair in this piece
            f = freqs[wi]
            for p in zip(word, word[1:]):
                delta[p] = delta.get(p, 0) - f
            for p in zip(new_word, new_word[1:]):
                delta[p] = delta.get(p, 0) + f
                s = where.get(p)
                if s is None:
                    where[p] = {wi}
                else:
                    s.add(wi)
            words[wi] = new_word
        for p, d in delta.items():
            if d == 0:
                continue
            c = pair_counts.get(p, 0) + d
            if c > 0:
                pair_counts[p] = c
                heapq.heappush(heap, (-c, p[0], p[1]))
            else:
                pair_counts.pop(p, None)
                where.pop(p, None)
        pair_counts.pop(pair, None)
    return merges


# ---------------------------------------------------------------------------
# Tokenizer object
# ---------------------------------------------------------------------------

class Tokenizer:
    """A vocabulary (list of byte strings, last one EOT) plus BPE merges.

    byte_level is True for trained/plain-byte tokenizers (ids 0..255 are the
    raw bytes and text can be encoded); a --synthetic vocabulary only decodes.
    """

    def __init__(self, vocab, merges, byte_level=True):
        self.vocab = list(vocab)
        self.merges = [tuple(m) for m in merges]
        self.byte_level = byte_level
        self.eot = len(self.vocab) - 1
        self.ranks = {m: 256 + i for i, m in enumerate(self.merges)}
        self._cache = {}

    @classmethod
    def from_merges(cls, merges):
        vocab = [bytes([i]) for i in range(256)]
        for a, b in merges:
            vocab.append(vocab[a] + vocab[b])
        vocab.append(EOT_BYTES)
        return cls(vocab, merges, True)

    @property
    def vocab_size(self):
        return len(self.vocab)

    def clear_cache(self):
        self._cache = {}

    def encode_piece(self, piece_bytes):
        """BPE-encode one piece: repeatedly merge the lowest-ranked pair."""
        ids = list(piece_bytes)
        ranks = self.ranks
        while len(ids) > 1:
            best = None
            for pair in zip(ids, ids[1:]):
                r = ranks.get(pair)
                if r is not None and (best is None or r < best):
                    best = r
            if best is None:
                break
            a, b = self.merges[best - 256]
            ids = _merge_word(ids, a, b, best)
        return ids

    def encode(self, text):
        """Encode a str to a list of ids (never produces EOT)."""
        if not self.byte_level:
            raise ValueError("this vocabulary is not byte-level; it can only decode")
        cache = self._cache
        out = []
        for piece in PIECE_PATTERN.findall(text):
            ids = cache.get(piece)
            if ids is None:
                ids = self.encode_piece(to_bytes(piece))
                cache[piece] = ids
            out.extend(ids)
        return out

    def decode_bytes(self, ids):
        vocab = self.vocab
        return b"".join(vocab[i] for i in ids)

    def decode(self, ids, errors="strict"):
        return self.decode_bytes(ids).decode("utf-8", errors)

    # --- tokenizer.bin -----------------------------------------------------

    def to_file_bytes(self):
        return tokenizer_file_bytes(self.vocab, self.merges, len(self.vocab) - 1)

    def save(self, path):
        write_file(path, self.to_file_bytes())

    @classmethod
    def load(cls, path):
        return cls.from_file_bytes(read_regular(path, "--tokenizer"), path)

    @classmethod
    def from_file_bytes(cls, data, name="tokenizer"):
        hsize = 4 * HEADER_INTS
        if len(data) < hsize:
            raise UserError("%s: too short for a tokenizer file" % name)
        header = struct.unpack_from("<%di" % HEADER_INTS, data, 0)
        if header[0] != TOK_MAGIC or header[1] != TOK_VERSION:
            raise UserError("%s: not a tokenizer file (magic %d, version %d)"
                            % (name, header[0], header[1]))
        v, eot, m = header[2], header[3], header[4]
        if not (2 <= v <= MAX_VOCAB) or eot != v - 1 or m < 0:
            raise UserError("%s: bad header (vocab %d, eot %d, merges %d)" % (name, v, eot, m))
        pos = hsize
        vocab = []
        try:
            for _ in range(v):
                (n,) = struct.unpack_from("<H", data, pos)
                pos += 2
                if pos + n > len(data):
                    raise struct.error("truncated")
                vocab.append(bytes(data[pos:pos + n]))
                pos += n
            merges = []
            for _ in range(m):
                merges.append(struct.unpack_from("<ii", data, pos))
                pos += 8
        except struct.error:
            raise UserError("%s: truncated tokenizer file" % name)
        if pos != len(data):
            raise UserError("%s: %d trailing bytes after the merges" % (name, len(data) - pos))
        byte_level = (v >= 257 and m == v - 257
                      and all(vocab[i] == bytes([i]) for i in range(256)))
        if byte_level:
            for i, (a, b) in enumerate(merges):
                if not (0 <= a < 256 + i and 0 <= b < 256 + i) or vocab[256 + i] != vocab[a] + vocab[b]:
                    raise UserError("%s: merge %d does not match the vocabulary" % (name, i))
        elif m:
            raise UserError("%s: merges given but ids 0..255 are not the raw bytes" % name)
        return cls(vocab, merges, byte_level)


# ---------------------------------------------------------------------------
# Token files, documents, split
# ---------------------------------------------------------------------------

def write_files(files, remove=()):
    """Write each (path, bytes) atomically: all of them to PATH.tmp first (fsync'ed), then the paths
    in `remove` are deleted and the files renamed into place. A kill leaves every file whole (the old
    or the new one, never a half-written one that looks complete), and old and new files can only
    mix if it lands between the last few renames. A stale PATH.tmp is removed and created anew
    (O_EXCL), never opened: if it were a FIFO, the open would block."""
    tmps = []
    try:
        for path, data in files:
            tmp = path + ".tmp"
            if os.path.lexists(tmp):
                os.remove(tmp)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            tmps.append(tmp)
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        for path in remove:
            os.remove(path)
        for (path, _), tmp in zip(files, tmps):
            os.replace(tmp, path)
    except BaseException:
        for tmp in tmps:  # no temporary file outlives a failed write
            if os.path.lexists(tmp):
                os.remove(tmp)
        raise


def write_file(path, data):
    write_files([(path, data)])


def int32_header(fields, what):
    """The 256-int32 header with `fields` (name, value) first; a value that does not fit is refused
    here, before any file is written (the callers build every file's bytes before writing one)."""
    for name, v in fields:
        if not 0 <= v <= INT32_MAX:
            raise UserError("%s: %s %d does not fit its int32 header field (at most %d)" % (what, name, v, INT32_MAX))
    values = [v for _, v in fields] + [0] * (HEADER_INTS - len(fields))
    return struct.pack("<%di" % HEADER_INTS, *values)


def tokenizer_file_bytes(vocab, merges, eot):
    """tokenizer.bin: header (magic, version, vocab size, eot id, merge count), each token's bytes
    (uint16 length, then the bytes), then the merges as int32 pairs"""
    parts = [int32_header([("magic", TOK_MAGIC), ("version", TOK_VERSION), ("vocab size", len(vocab)),
                           ("end-of-text id", eot), ("merge count", len(merges))], "tokenizer.bin")]
    for tok in vocab:
        if len(tok) > 0xFFFF:
            raise UserError("a token is %d bytes long; tokenizer.bin allows at most "
                            "65535" % len(tok))
        parts.append(struct.pack("<H", len(tok)))
        parts.append(tok)
    for a, b in merges:
        parts.append(struct.pack("<ii", a, b))
    return b"".join(parts)


def tokens_file_bytes(tokens, what="token file"):
    header = int32_header([("magic", DATA_MAGIC), ("version", DATA_VERSION), ("token count", len(tokens))], what)
    arr = array.array("H", tokens)
    if sys.byteorder == "big":
        arr.byteswap()
    return header + arr.tobytes()


def read_tokens_file(path):
    """Read an llm.c token file; returns the list of ids (used by the tests)."""
    data = read_regular(path, "token file")
    header = struct.unpack_from("<%di" % HEADER_INTS, data, 0)
    if header[0] != DATA_MAGIC or header[1] != DATA_VERSION:
        raise ValueError("%s: not a token file" % path)
    arr = array.array("H")
    arr.frombytes(data[4 * HEADER_INTS:])
    if sys.byteorder == "big":
        arr.byteswap()
    if len(arr) != header[2]:
        raise ValueError("%s: header says %d tokens, file has %d" % (path, header[2], len(arr)))
    return arr.tolist()


def read_documents(path, what="--input", folder_ok=True):
    """Return [(name, text)]: one file, or (folder_ok) every *.txt in a folder by name. Each is read
    through read_regular, so a FIFO, device or folder named *.txt is refused, not skipped or waited on."""
    try:
        is_dir = folder_ok and stat.S_ISDIR(os.stat(path).st_mode)
        names = sorted(n for n in os.listdir(path) if n.endswith(".txt")) if is_dir else None
    except OSError as e:
        raise UserError("cannot read %s %s: %s" % (what, path, e.strerror or e))
    if is_dir and not names:
        raise UserError("no .txt files in %s folder %s" % (what, path))
    files = [(n, os.path.join(path, n)) for n in names] if is_dir else [(os.path.basename(path), path)]
    docs = [(name, read_regular(fpath, what).decode("utf-8", "surrogateescape")) for name, fpath in files]
    if not any(text for _, text in docs):
        raise UserError("corpus is empty: %s" % path)
    return docs


def choose_val_docs(lengths, val_fraction, seed):
    """Pick whole documents for validation.

    lengths are token counts per document (without EOT).  Documents are
    visited in an order shuffled by random.Random(seed) and taken until the
    chosen ones (each counted with its EOT) reach val_fraction of all tokens.
    A document that would take val past twice that share is passed over, so
    a few long documents (three novels) do not put a third of the text in
    val.  At least one document always stays in train.  Returns a sorted
    list; it holds less than half the share when no document fits (the
    caller then splits the stream instead).
    """
    n = len(lengths)
    total = sum(lengths) + n
    target = val_fraction * total
    order = list(range(n))
    random.Random(seed).shuffle(order)
    chosen = []
    got = 0
    for d in order:
        if got >= target or len(chosen) >= n - 1:
            break
        if got + lengths[d] + 1 > 2 * target:
            continue
        chosen.append(d)
        got += lengths[d] + 1
    return sorted(chosen)


def split_stream(stream, eot, val_fraction):
    """val is the last floor(val_fraction * n) tokens of a stream that begins
    with EOT, itself preceded by an EOT; train is the rest."""
    n_val = int((len(stream) - 1) * val_fraction)
    cut = len(stream) - n_val
    return stream[:cut], ([eot] + stream[cut:] if n_val > 0 else [])


def pack_and_split(doc_tokens, eot, val_fraction, seed):
    """Pack documents (EOT before each) into train and val streams.

    Several documents: whole documents go to val (choose_val_docs); both
    streams keep the documents' order.  One document, or documents too long
    for whole ones to make half the val share: val is the last
    floor(val_fraction * n) tokens of the packed stream, preceded by an EOT.
    Returns (train, val, val_doc_indices).
    """
    stream_of = lambda docs: [t for toks in docs for t in [eot] + toks]
    if len(doc_tokens) == 1:
        train, val = split_stream(stream_of(doc_tokens), eot, val_fraction)
        return train, val, []
    lengths = [len(t) for t in doc_tokens]
    chosen = choose_val_docs(lengths, val_fraction, seed)
    if sum(lengths[i] + 1 for i in chosen) < 0.5 * val_fraction * (sum(lengths) + len(lengths)):
        train, val = split_stream(stream_of(doc_tokens), eot, val_fraction)
        return train, val, []
    chosen_set = set(chosen)
    train = stream_of(t for i, t in enumerate(doc_tokens) if i not in chosen_set)
    val = stream_of(t for i, t in enumerate(doc_tokens) if i in chosen_set)
    return train, val, chosen


def check_split(train, val, val_fraction):
    """Refuse, before anything is written, a split that would give a token file gradsink cannot use:
    fewer than MIN_TOKENS (it refuses a file that cannot fill one batch). With val_fraction 0 there
    is no val.bin at all, so only train counts."""
    for name, toks in (("train.bin", train), ("val.bin", val if val_fraction else None)):
        if toks is not None and len(toks) < MIN_TOKENS:
            raise UserError("%s would hold %d token%s (gradsink needs at least %d): the data is too small for "
                            "--val-fraction %g; give more text (or tokens), or --val-fraction 0 for no val.bin"
                            % (name, len(toks), "" if len(toks) == 1 else "s", MIN_TOKENS, val_fraction))


def write_outputs(out_dir, train, val, tok_bytes, val_fraction):
    """Write train.bin, val.bin and tokenizer.bin (tok_bytes) into out_dir. With val_fraction 0 no
    val.bin is written, and an earlier run's val.bin there is removed: it belongs to other data. All
    bytes are built, so every header field checked, before the first file is written.
    Returns (the paths written, one line about val.bin or None)."""
    check_split(train, val, val_fraction)
    path = lambda name: os.path.join(out_dir, name)
    files = [(path("train.bin"), tokens_file_bytes(train, "train.bin"))]
    if val_fraction:
        files.append((path("val.bin"), tokens_file_bytes(val, "val.bin")))
    files.append((path("tokenizer.bin"), tok_bytes))
    stale = [] if val_fraction or not os.path.lexists(path("val.bin")) else [path("val.bin")]
    try:
        os.makedirs(out_dir, exist_ok=True)
        write_files(files, remove=stale)
    except OSError as e:
        raise UserError("cannot write to --out %s: %s" % (out_dir, e.strerror or e))
    note = None
    if not val_fraction:
        note = "val: none (--val-fraction 0): no val.bin written%s" % (
            "; removed the earlier run's %s" % stale[0] if stale else "")
    return [p for p, _ in files], note


# ---------------------------------------------------------------------------
# Synthetic stream
# ---------------------------------------------------------------------------

def synthetic_names(vocab_size):
    """Readable byte strings: <T0>..<T3> triggers, <t4>.. normal, then EOT."""
    names = []
    for i in range(vocab_size - 1):
        tag = "T" if i < SYNTH_TRIGGERS else "t"
        names.append(("<%s%d>" % (tag, i)).encode("ascii"))
    names.append(EOT_BYTES)
    return names


def generate_synthetic(vocab_size, num_tokens, seed):
    """Documents of a bigram Markov chain with a copy rule.

    Ids 0..3 are triggers, 4..V-2 normal tokens, V-1 EOT.  Each normal
    token has up to 8 likely successors with weights 1, 1/2, 1/4, ...;
    with probability 0.08 the next token is instead a trigger (uniform).
    The token after a trigger is a copy of the token just before it.  A
    document never starts or ends with a trigger.  Returns a list of
    documents (lists of ids, without EOT) whose lengths plus one EOT each
    add up to exactly num_tokens.
    """
    rng = random.Random(seed)
    normals = list(range(SYNTH_TRIGGERS, vocab_size - 1))
    k = min(SYNTH_SUCCESSORS, len(normals))

    def make_row():
        succ = rng.sample(normals, k)
        cum = []
        acc = 0.0
        for j in range(k):
            acc += 0.5 ** j
            cum.append(acc)
        return succ, cum

    rows = {t: make_row() for t in normals}
    start = make_row()

    def draw(row):
        succ, cum = row
        x = rng.random() * cum[-1]
        for j, c in enumerate(cum):
            if x < c:
                return succ[j]
        return succ[-1]

    docs = []
    remaining = num_tokens
    while remaining > 0:
        length = rng.randint(SYNTH_DOC_MIN, SYNTH_DOC_MAX)
        if remaining - 1 - length < SYNTH_DOC_MIN + 1:
            length = remaining - 1  # last document takes the rest
        doc = []
        if length > 0:
            doc.append(draw(start))
        while len(doc) < length:
            prev = doc[-1]
            if prev < SYNTH_TRIGGERS:
                doc.append(doc[-2])  # copy rule
            elif len(doc) < length - 1 and rng.random() < SYNTH_P_TRIGGER:
                doc.append(rng.randrange(SYNTH_TRIGGERS))
            else:
                doc.append(draw(rows[prev]))
        docs.append(doc)
        remaining -= length + 1
    return docs


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

class Parser(argparse.ArgumentParser):
    def error(self, message):
        raise UserError("%s (see -h)" % message)


def build_parser():
    p = Parser(
        prog="tokenizer.py",
        description="Train a byte-level BPE tokenizer on a corpus and write "
                    "train.bin, val.bin (llm.c token files) and tokenizer.bin "
                    "for gradsink; or write a synthetic token stream; or "
                    "encode/decode text with an existing tokenizer.bin.",
        epilog="Examples:\n"
               "  python3 tokenizer.py --input /path/to/corpus_dir --out data/corpus\n"
               "  python3 tokenizer.py --dataset tinyshakespeare --vocab-size 512\n"
               "  python3 tokenizer.py --synthetic --out data/synthetic\n"
               "  python3 tokenizer.py --tokenizer data/corpus/tokenizer.bin --encode 'Hello'\n"
               "  python3 tokenizer.py --tokenizer data/corpus/tokenizer.bin --decode '72 101 108 108 111'\n"
               "\n"
               "Output: train.bin and val.bin (llm.c token files: 256 int32 header,\n"
               "magic 20240520, version 1, token count; then uint16 ids) and tokenizer.bin\n"
               "(header magic 20261130, version 1, V, EOT id = V-1, merges M; then V\n"
               "records of a uint16 length and its bytes; then M int32 pairs). Ids 0..255\n"
               "are bytes, 256..V-2 merges in learned order, V-1 is end-of-text (EOT).\n"
               "Documents are packed with an EOT before each. Validation takes whole\n"
               "documents (shuffled by --seed; none that would take val past twice its\n"
               "share) until they hold --val-fraction of the tokens, or, for a single\n"
               "document or a few long ones, the last tokens. Same input and options\n"
               "give byte-identical files. --val-fraction 0 writes no val.bin (and removes\n"
               "an earlier one in --out). A token file is never written with fewer than 2\n"
               "tokens: a split that would give one is refused. Every file is written to a\n"
               "temporary name and renamed. The whole reference (pre-tokenisation, merges,\n"
               "the synthetic stream, timings): dev/TOKENIZER.md.\n"
               "\n"
               "Errors print one line on stderr and exit with status 2, among them an\n"
               "input that is not a regular file (a FIFO, a device, a folder where a file\n"
               "is wanted) and an option that has no effect in the chosen mode.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    src = p.add_argument_group("input (choose one)")
    src.add_argument("--input", metavar="PATH",
                     help="a text file (one document) or a folder whose *.txt files "
                          "are the documents, taken in sorted name order; files are "
                          "read as UTF-8 (invalid bytes are kept as they are)")
    src.add_argument("--dataset", choices=["tinyshakespeare"],
                     help="use a named dataset: tinyshakespeare is downloaded once "
                          "to DATA_DIR/tinyshakespeare.txt (skipped if that file exists)")
    src.add_argument("--synthetic", action="store_true",
                     help="write a synthetic Markov-chain token stream with a copy "
                          "rule after trigger tokens (no BPE, no input)")
    p.add_argument("--data-dir", metavar="DIR",
                   help="--dataset only: where its files are downloaded (default: data)")
    p.add_argument("--out", metavar="DIR",
                   help="output folder, created if missing (default: data/NAME, NAME "
                        "being the input's name without .txt, the dataset name, or "
                        "'synthetic')")
    p.add_argument("--vocab-size", metavar="N", type=int,
                   help="total number of token ids including the end-of-text token, "
                        "which is the last id N-1; 256..65535 (default 2048). "
                        "256 means plain bytes: 256 byte ids + EOT = 257 ids. "
                        "With --synthetic: 8..65535 (default 64). With --tokenizer: "
                        "only its own size (the tokenizer keeps its vocabulary)")
    p.add_argument("--val-fraction", metavar="F", type=float,
                   help="share of tokens for val.bin, 0 <= F < 1 (default 0.1): whole "
                        "documents when there are several, else the last F of the tokens; "
                        "0 writes no val.bin (and removes an earlier one in --out)")
    p.add_argument("--seed", metavar="S", type=int,
                   help="seed for choosing validation documents and for --synthetic "
                        "(default 1337)")
    p.add_argument("--num-tokens", metavar="N", type=int,
                   help="--synthetic only: total tokens in train.bin + val.bin, "
                        "EOTs included, 2..2147483647 (default 2000000)")
    p.add_argument("--tokenizer", metavar="FILE",
                   help="an existing tokenizer.bin: with --input/--dataset, encode "
                        "with it instead of training; needed by --encode/--decode")
    p.add_argument("--encode", metavar="TEXT",
                   help="print the ids of TEXT (space-separated) using --tokenizer")
    p.add_argument("--decode", metavar="IDS",
                   help="print the text of IDS (comma- or space-separated) using "
                        "--tokenizer; invalid UTF-8 is shown as U+FFFD")
    return p


def default_out(name):
    return os.path.join("data", name)


def fetch_tinyshakespeare(data_dir):
    path = os.path.join(data_dir, "tinyshakespeare.txt")
    if os.path.lexists(path):
        return path  # read_regular refuses it if it is not a regular file
    try:
        os.makedirs(data_dir, exist_ok=True)
        with urllib.request.urlopen(TINYSHAKESPEARE_URL, timeout=30) as r:
            data = r.read()
    except Exception as e:  # no network, DNS failure, HTTP error, ...
        reason = getattr(e, "reason", None) or e
        raise UserError("cannot download tinyshakespeare (%s); pass a local copy "
                        "instead: --input path/to/tinyshakespeare.txt" % reason)
    try:
        write_file(path, data)
    except OSError as e:
        raise UserError("cannot write %s: %s" % (path, e.strerror or e))
    print("downloaded %s (%d bytes)" % (path, len(data)))
    return path


def check_vocab(n, lo):
    if n < lo or n > MAX_VOCAB:
        raise UserError("--vocab-size must be between %d and %d, got %d" % (lo, MAX_VOCAB, n))


def load_tokenizer(args):
    """--tokenizer, and --vocab-size beside it only when it agrees: a loaded tokenizer keeps its own
    vocabulary (256 asks for plain bytes, which are 257 ids)."""
    tok = Tokenizer.load(args.tokenizer)
    v = args.vocab_size
    if v is not None and v != tok.vocab_size and not (v == 256 and tok.vocab_size == 257):
        raise UserError("--vocab-size %d disagrees with --tokenizer %s, which has %d ids (a loaded tokenizer "
                        "keeps its vocabulary): leave --vocab-size out" % (v, args.tokenizer, tok.vocab_size))
    return tok


def report_outputs(written, note):
    if note:
        print(note)
    print("wrote %s" % ", ".join(written))


def run_prepare(args):
    t0 = time.perf_counter()
    if args.tokenizer:  # loaded first: a bad one is refused before any download or encoding
        tok = load_tokenizer(args)
        if not tok.byte_level:
            raise UserError("%s is not a byte-level tokenizer" % args.tokenizer)
    if args.dataset:
        path = fetch_tinyshakespeare(args.data_dir)
        name = args.dataset
    else:
        path = args.input
        name = os.path.basename(os.path.normpath(path))
        if name.endswith(".txt"):
            name = name[:-4]
    out_dir = args.out or default_out(name or "corpus")
    docs = read_documents(path, "--dataset file", False) if args.dataset else read_documents(path)

    if args.tokenizer:
        train_s = 0.0
        how = "loaded %s" % args.tokenizer
    else:
        v = DEFAULT_BPE_VOCAB if args.vocab_size is None else args.vocab_size
        want = max(0, v - 257)
        counts = {}
        for _, text in (docs if want else ()):
            for piece in PIECE_PATTERN.findall(text):
                counts[piece] = counts.get(piece, 0) + 1
        byte_counts = {}
        for piece, c in counts.items():
            b = to_bytes(piece)
            byte_counts[b] = byte_counts.get(b, 0) + c
        merges = train_bpe(byte_counts, want)
        tok = Tokenizer.from_merges(merges)
        train_s = time.perf_counter() - t0
        if want:
            how = "trained in %.2f s on %d unique pieces" % (train_s, len(byte_counts))
        else:
            how = "plain bytes, nothing to train"
        if len(merges) < want:
            print("note: the corpus only allows %d merges; vocab size is %d, not %d"
                  % (len(merges), tok.vocab_size, v))

    t1 = time.perf_counter()
    tok.clear_cache()
    doc_tokens = [tok.encode(text) for _, text in docs]
    enc_s = time.perf_counter() - t1
    nbytes = sum(len(to_bytes(text)) for _, text in docs)

    train, val, chosen = pack_and_split(doc_tokens, tok.eot, args.val_fraction, args.seed)
    written, note = write_outputs(out_dir, train, val, tok.to_file_bytes(), args.val_fraction)

    n_val_docs = len(chosen)
    if not args.val_fraction:
        print("documents: %d (all in train)" % len(docs))
    elif len(docs) == 1:
        print("documents: 1 (a single document: val is the last %g%% of its tokens)"
              % (100 * args.val_fraction))
    elif n_val_docs == 0 and val:
        print("documents: %d, too long for whole ones to make val: val is the last %g%% of their tokens"
              % (len(docs), 100 * args.val_fraction))
    else:
        print("documents: %d (train %d, val %d)"
              % (len(docs), len(docs) - n_val_docs, n_val_docs))
    print("tokens: train %d, val %d" % (len(train), len(val)))
    print("vocab: %d ids = 256 bytes + %d merges + EOT (id %d)"
          % (tok.vocab_size, len(tok.merges), tok.eot))
    print("tokenizer: %s" % how)
    print("encoding: %.2f MB in %.2f s = %.2f MB/s (%.2f bytes/token)" % (
        nbytes / 1e6, enc_s, nbytes / 1e6 / max(enc_s, 1e-9),
        nbytes / max(1, sum(len(t) for t in doc_tokens))))
    report_outputs(written, note)


def run_synthetic(args):
    v = DEFAULT_SYNTH_VOCAB if args.vocab_size is None else args.vocab_size
    out_dir = args.out or default_out("synthetic")
    t0 = time.perf_counter()
    docs = generate_synthetic(v, args.num_tokens, args.seed)
    eot = v - 1
    if len(docs) == 1:  # too few tokens for two documents: no val (refused below unless F is 0)
        chosen = []
        train = [eot] + docs[0]
        val = []
    else:
        train, val, chosen = pack_and_split(docs, eot, args.val_fraction, args.seed)
    tok = Tokenizer(synthetic_names(v), [], byte_level=False)
    written, note = write_outputs(out_dir, train, val, tok.to_file_bytes(), args.val_fraction)
    print("synthetic: %d documents (train %d, val %d), %d triggers, generated in %.2f s"
          % (len(docs), len(docs) - len(chosen), len(chosen), SYNTH_TRIGGERS,
             time.perf_counter() - t0))
    print("tokens: train %d, val %d" % (len(train), len(val)))
    print("vocab: %d ids (triggers 0..%d, EOT id %d)" % (v, SYNTH_TRIGGERS - 1, eot))
    report_outputs(written, note)


def run_encode_decode(args):
    if not args.tokenizer:
        raise UserError("--encode/--decode need --tokenizer FILE")
    tok = load_tokenizer(args)
    if args.encode is not None:
        if not tok.byte_level:
            raise UserError("%s is a --synthetic vocabulary: it can decode but not encode"
                            % args.tokenizer)
        print(" ".join(str(i) for i in tok.encode(args.encode)))
    if args.decode is not None:
        try:
            ids = [int(x) for x in re.split(r"[,\s]+", args.decode.strip()) if x]
        except ValueError:
            raise UserError("--decode wants integers separated by commas or spaces")
        for i in ids:
            if not 0 <= i < tok.vocab_size:
                raise UserError("--decode: id %d is outside 0..%d" % (i, tok.vocab_size - 1))
        sys.stdout.write(tok.decode(ids, errors="replace") + "\n")


# Options that have an effect in some modes only: (option, attribute, the modes that use it). Given
# in any other mode, an option is refused in one line naming both, never silently ignored.
# --vocab-size with --tokenizer is accepted only at the tokenizer's own size (load_tokenizer).
PREPARE = ("--input", "--dataset", "--synthetic")
MODE_OPTIONS = [
    ("--data-dir", "data_dir", ("--dataset",)),
    ("--out", "out", PREPARE),
    ("--val-fraction", "val_fraction", PREPARE),
    ("--seed", "seed", PREPARE),
    ("--num-tokens", "num_tokens", ("--synthetic",)),
    ("--vocab-size", "vocab_size", PREPARE + ("--encode", "--decode")),
    ("--tokenizer", "tokenizer", ("--input", "--dataset", "--encode", "--decode")),
]


def main(argv=None):
    args = build_parser().parse_args(argv)
    given = [m for m, on in (("--input", args.input is not None), ("--dataset", args.dataset is not None),
                             ("--synthetic", args.synthetic)) if on]
    if len(given) > 1:
        raise UserError("give only one of --input, --dataset, --synthetic")
    if given and (args.encode is not None or args.decode is not None):
        raise UserError("--encode/--decode cannot be combined with --input, "
                        "--dataset or --synthetic")
    mode = given[0] if given else "--encode" if args.encode is not None else \
        "--decode" if args.decode is not None else None
    if mode is None:
        raise UserError("nothing to do: give --input, --dataset, --synthetic, "
                        "--encode or --decode (see -h)")
    for option, attr, modes in MODE_OPTIONS:
        if getattr(args, attr) is not None and mode not in modes:
            raise UserError("%s has no effect with %s (it is for %s only): leave it out"
                            % (option, mode, ", ".join(modes)))
    # range checks, before anything is read or written
    if args.val_fraction is not None and not 0.0 <= args.val_fraction < 1.0:
        raise UserError("--val-fraction must be >= 0 and < 1, got %g" % args.val_fraction)
    if args.vocab_size is not None:
        check_vocab(args.vocab_size, SYNTH_TRIGGERS + 4 if args.synthetic else 256)
    if args.num_tokens is not None and not 2 <= args.num_tokens <= INT32_MAX:
        raise UserError("--num-tokens must be between 2 and %d (the token file's int32 header), got %d"
                        % (INT32_MAX, args.num_tokens))
    for attr, default in (("data_dir", DEFAULT_DATA_DIR), ("val_fraction", DEFAULT_VAL_FRACTION),
                          ("seed", DEFAULT_SEED), ("num_tokens", DEFAULT_NUM_TOKENS)):
        if getattr(args, attr) is None:
            setattr(args, attr, default)
    if mode in ("--encode", "--decode"):
        run_encode_decode(args)
    elif mode == "--synthetic":
        run_synthetic(args)
    else:
        run_prepare(args)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except UserError as e:  # one line, whatever a path in it holds
        sys.stderr.write("tokenizer.py: error: %s\n" % " ".join(str(e).splitlines()))
        sys.exit(2)
    except KeyboardInterrupt:
        sys.stderr.write("tokenizer.py: interrupted\n")
        sys.exit(130)
