"""The corpus: the train/validation split, the parallel chunks and the windows of truncated BPTT (first),
then reading UTF-8 text, the lookup table, encoding, and the download of tiny Shakespeare.

A text of N characters becomes N small integers (uint8 when the alphabet has at most 256 characters), read
and encoded a block at a time, so that no Python object is made per character and a large corpus costs about
one byte per character in memory.
"""

import codecs
import hashlib
import io
import json
import os
import stat
import unicodedata

import numpy as np

from util import cli, files, memory, reading, text_check
from util.errors import CorpusError

TINY_SHAKESPEARE_URL = (
    'https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt'
)
TINY_SHAKESPEARE_SHA256 = '86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed'
TINY_SHAKESPEARE_CHARS = 1115394
# Its fingerprint (encoded with its own 65 characters): the text of runs that name no corpus.
TINY_SHAKESPEARE_FINGERPRINT = 'eafbf6db15b85793ae12e0a3f5c38ae13106463a7cdc6bf859b88693b0b9fe1d'
TINY_SHAKESPEARE_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'saves', 'shakespeare.txt')
MAX_LOOKUP_BYTES = 64 << 20  # a table of every Unicode character is under 20 MiB
# Bytes read and encoded at a time: small, so that the temporaries never pile up in the heap.
BLOCK = 1 << 16


# --- what training reads: the split, the chunks read side by side, the windows of truncated BPTT -------


def split(ids, val_fraction=0.1):
    """The first (1 - val_fraction) of the corpus trains, the rest validates. Returns (train, val) views."""
    n_train = int(len(ids) * (1.0 - val_fraction))
    return ids[:n_train], ids[n_train:]


def chunks(ids, B):
    """Cut the text into B contiguous chunks of equal length, one per parallel stream: a (B, L) view."""
    L = len(ids) // B
    return ids[: B * L].reshape(B, L)


def n_windows(L, T):
    """How many windows of T inputs (and T shifted targets) fit in a chunk of length L."""
    return max(0, (L - 1) // T)


def window(chunked, T, k):
    """Window k of the chunks: inputs x and targets y, each (T, B) time-major integer arrays."""
    start = k * T
    x = np.ascontiguousarray(chunked[:, start : start + T].T).astype(np.intp)
    y = np.ascontiguousarray(chunked[:, start + 1 : start + T + 1].T).astype(np.intp)
    return x, y


# --- reading a text: UTF-8, a block at a time, and refusing what is no text ------------------------------


def _codepoints(s):
    """The Unicode code points of a str, as a uint32 array."""
    return np.frombuffer(s.encode('utf-32-le', 'surrogatepass'), dtype='<u4')


def _open_text(path, what='corpus'):
    """Open a text file to be read twice (its length first, then its characters). A pipe, a FIFO or another
    stream that cannot be read twice (`--corpus /dev/stdin`, `<(cat t.txt)`) is read once, into memory, by the
    one bounded reader (reading.read_bytes: up to a quarter of the machine's memory, and an endless stream of
    no text refused at its first bytes). Raises CorpusError if it is missing or unreadable."""
    try:
        f = open(path, 'rb')
    except OSError as e:
        raise CorpusError(reading.read_error(e, path, what, ': check the path')) from None
    if stat.S_ISREG(os.fstat(f.fileno()).st_mode):
        return f
    first = lambda block: block and text_check.check_text_start(block, path, what)
    raw = reading.read_bytes(path, what, error=CorpusError, hint=': check the path', first=first, opened=f)
    return io.BytesIO(raw)


def _text_blocks(f, path, what='corpus'):
    """Yield the text of an open UTF-8 file, from its start, a block at a time. Raises CorpusError if it is
    not UTF-8 or cannot be read."""
    decoder = codecs.getincrementaldecoder('utf-8')('strict')
    offset, start = 0, b''
    try:
        f.seek(0)
        while True:
            raw = f.read(BLOCK)
            if offset == 0:
                start = raw
                if raw:  # (an empty file is said by read_corpus)
                    text_check.check_text_start(start, path, what)
            pending = len(decoder.getstate()[0])  # the bytes of a character cut by the last block
            try:
                s = decoder.decode(raw, final=not raw)
            except UnicodeDecodeError as e:  # e.start counts from the pending bytes
                raise text_check.not_utf8(path, what, offset - pending + e.start, start) from None
            offset += len(raw)
            if s:
                yield s
            if not raw:
                return
    except OSError as e:
        raise CorpusError(f'{what} {path} cannot be read: {e.strerror or e}') from None


def build_lookup(text):
    """The sorted list of distinct characters of a str: the same list on every run and in every process
    (read_corpus builds the same list from a file, a block at a time)."""
    return [chr(c) for c in np.unique(_codepoints(text))]


def encode(text, chars):
    """Encode a str as indices into the lookup table chars. Raises CorpusError naming any unknown
    characters."""
    table = _Table(chars)
    return table.encode(_codepoints(text))


def decode(ids, chars):
    """The str whose characters are chars[i] for every index i."""
    return ''.join(chars[i] for i in np.asarray(ids).reshape(-1))


class _Table:
    """Maps code points to lookup-table indices with a binary search."""

    def __init__(self, chars):
        cps = np.array([ord(ch) for ch in chars], dtype=np.uint32)
        self.order = np.argsort(cps, kind='stable')
        self.sorted = cps[self.order]
        self.dtype = index_dtype(len(chars))

    def encode(self, cps):
        pos = np.searchsorted(self.sorted, cps)
        pos_c = np.minimum(pos, len(self.sorted) - 1)
        unknown = self.sorted[pos_c] != cps
        if unknown.any():
            bad = np.unique(cps[unknown])
            names = ', '.join(char_name(chr(c)) for c in bad[:10]) + (' ...' if len(bad) > 10 else '')
            hints = ''.join(hint for c, hint in FOREIGN_HINTS.items() if ord(c) in bad)
            them = 'them' if len(bad) > 1 else 'it'
            raise CorpusError(
                f'{cli.count(len(bad), "character")} not in the lookup table: {names}; {hints}remove {them} '
                f'or use a model trained on a corpus that has {them}'
            )
        return self.order[pos_c].astype(self.dtype)


# Characters that a text rarely means to hold, what they are and the fix: named where a model lacks one (said
# before the general fix), and where a training corpus has one.
EDITOR_CHARS = {
    '\r': 'carriage returns (Windows line endings: dos2unix FILE; old Mac ones: mac2unix)',
    '\ufeff': 'a byte-order mark (save it as UTF-8 without one)',
}
FOREIGN_HINTS = {c: f'the text has {what}; ' for c, what in EDITOR_CHARS.items()}
# The names of the control characters, which Unicode's database leaves out.
CONTROL_NAMES = {
    '\0': 'NUL',
    '\a': 'BELL',
    '\b': 'BACKSPACE',
    '\t': 'TAB',
    '\n': 'LINE FEED',
    '\v': 'LINE TABULATION',
    '\f': 'FORM FEED',
    '\r': 'CARRIAGE RETURN',
    '\x1b': 'ESCAPE',
    '\x7f': 'DELETE',
    '\x85': 'NEXT LINE',
}


def char_name(ch):
    """A character as a message shows it: quoted, with its code point where it would not show by itself (a
    combining accent, a space or control character, a lone surrogate): 'a', U+0301 (COMBINING ACUTE
    ACCENT)."""
    if unicodedata.category(ch)[0] in 'MZC' and ch != ' ':
        control = unicodedata.category(ch) == 'Cc'
        name = CONTROL_NAMES.get(ch) or unicodedata.name(ch, 'a control character' if control else 'no name')
        return f'U+{ord(ch):04X} ({name})'
    return repr(ch)


def index_dtype(V):
    """The smallest unsigned integer type that holds V indices."""
    return np.uint8 if V <= 256 else np.uint16 if V <= 65536 else np.uint32


def read_corpus(path, chars=None, what='corpus'):
    """Read and encode a UTF-8 text file.

    chars: the lookup table to encode with; None builds it from the file (sorted distinct characters). what:
    how error messages name the file ('corpus', 'text', ...). Returns (ids, chars): ids a 1-D array of
    indices. Raises CorpusError on a missing, unreadable, non-UTF-8 or empty file, or on characters outside a
    given table.
    """
    n, seen = 0, np.zeros(0, dtype=np.uint32)
    with _open_text(path, what) as f:
        size = 0 if isinstance(f, io.BytesIO) else os.fstat(f.fileno()).st_size  # (a stream: read already)
        memory.check_fits(size, f'{what} {path} (one byte or two per character)', 'use a part of it')
        for s in _text_blocks(f, path, what):  # first pass: the length (and the alphabet, if not given)
            n += len(s)
            if chars is None:
                seen = np.union1d(seen, np.unique(_codepoints(s)))
        if chars is None:
            chars = [chr(c) for c in seen]
        table = _Table(chars)
        if n == 0:
            raise CorpusError(f'{what} {path} is empty: give a text file with some text in it')
        ids = np.empty(n, dtype=table.dtype)
        pos = 0
        for s in _text_blocks(f, path, what):  # second pass: encode into one preallocated array
            if pos + len(s) > n:
                break
            try:
                ids[pos : pos + len(s)] = table.encode(_codepoints(s))
            except CorpusError as e:
                raise CorpusError(f'{path}: {e}') from None
            pos += len(s)
    if pos != n:
        raise CorpusError(f'{what} {path} changed while it was read: read it again once nothing writes to it')
    return ids, chars


def fingerprint(ids):
    """A text's fingerprint: the SHA-256 of its character indices (little-endian), in hex. Two texts encoded
    with one lookup table have the same fingerprint only if they are the same text."""
    return hashlib.sha256(np.ascontiguousarray(ids, ids.dtype.newbyteorder('<')).tobytes()).hexdigest()


def save_lookup(path, chars):
    """Write the lookup table as a JSON list of characters (index = position), atomically."""
    files.write_text(path, json.dumps(chars, ensure_ascii=True))


def load_lookup(path):
    """Read and check a lookup table written by save_lookup. Raises CorpusError on any problem."""
    raw = reading.read_bytes(
        path,
        'lookup table',
        MAX_LOOKUP_BYTES,
        error=CorpusError,
        hint=': give the one saved with the weights (--lookup)',
    )
    if raw[:2] == b'PK':
        raise CorpusError(
            f'lookup table {path} is an .npz file (weights?), not a JSON list of characters: give the '
            'weights with --weights and their lookup table with --lookup'
        )
    try:
        chars = json.loads(raw.decode('utf-8'))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise CorpusError(f'lookup table {path} is not valid JSON: it should be a list of characters')
    if isinstance(chars, list) and chars and isinstance(chars[0], list):
        raise CorpusError(
            f'lookup table {path} holds a model\'s weights (lists of numbers), not characters: give '
            'it with --weights, and its lookup table with --lookup'
        )
    return check_alphabet(chars, f'lookup table {path}')


def check_alphabet(chars, what):
    """chars, checked to be a lookup table (a non-empty list of distinct single characters, none a lone
    surrogate); what: the words for where it comes from. Raises CorpusError."""
    if not isinstance(chars, list) or not chars:
        raise CorpusError(f'{what} should be a non-empty JSON list of characters')
    if not all(isinstance(ch, str) and len(ch) == 1 for ch in chars):
        raise CorpusError(f'{what} should hold single characters only')
    if len(set(chars)) != len(chars):
        raise CorpusError(f'{what} lists a character twice')
    lone = [k for k, ch in enumerate(chars) if '\ud800' <= ch <= '\udfff']
    if lone:
        raise CorpusError(
            f'{what} holds a lone surrogate, U+{ord(chars[lone[0]]):04X}, at position '
            f'{lone[0]}: no UTF-8 text holds one, so it is not a table this repo wrote'
        )
    return chars


def first_line(ids, chars, most=80):
    """A priming text that a user recognises, for a sample of a model of this text: the first whole line of
    ids (after its first newline) that holds more than whitespace, with its newline, at most `most`
    characters; where there is none, the text's first non-blank characters."""
    text = decode(ids[: 200 * most], chars)
    for line in text.split('\n')[1:-1]:  # the whole lines: each between two newlines
        if line.strip():
            return line[:most] + ('\n' if len(line) <= most else '')
    start = len(text) - len(text.lstrip())
    return text[start : start + most] or text[:most]


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, 'rb') as f:
        for block in iter(lambda: f.read(BLOCK), b''):
            h.update(block)
    return h.hexdigest()


def tiny_shakespeare(path=TINY_SHAKESPEARE_PATH, url=TINY_SHAKESPEARE_URL):
    """The path of tiny Shakespeare, the repo's default corpus, checked against its SHA-256 every time. The
    repo ships it as saves/shakespeare.txt; a missing or damaged copy is downloaded again from its public
    source (the damaged one is replaced only once a good copy has arrived)."""
    if os.path.exists(path) and sha256_file(path) == TINY_SHAKESPEARE_SHA256:
        return path
    state = 'is damaged (its SHA-256 differs)' if os.path.exists(path) else 'is missing'
    import urllib.request  # here: it costs 7 MB of memory, and is rarely needed

    def download(f):
        digest = hashlib.sha256()
        try:
            with urllib.request.urlopen(url, timeout=60) as r:
                for block in iter(lambda: r.read(BLOCK), b''):
                    digest.update(block)
                    f.write(block)
        except OSError as e:
            raise CorpusError(
                f'tiny Shakespeare {path} {state}, and it could not be downloaded from {url} '
                f'({getattr(e, "reason", None) or e.strerror or e}): restore it with '
                '`git checkout saves/shakespeare.txt`, or give a corpus with --corpus'
            ) from None
        if digest.hexdigest() != TINY_SHAKESPEARE_SHA256:
            raise CorpusError(
                f'tiny Shakespeare {path} {state}, and the copy downloaded from {url} does not have '
                'the expected SHA-256 either: restore it with `git checkout saves/shakespeare.txt`'
            )

    try:
        files.atomic_write(path, download)  # the damaged copy is replaced only by a whole, checked one
    except files.ModelFileError as e:
        raise CorpusError(
            f'tiny Shakespeare {path} {state}, and the download could not be saved ({e})'
        ) from None
    return path
