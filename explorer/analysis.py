"""What the neurons of a trained model do: features of a text (the position in the line, speakers' names, word
ends, quotes), the neurons whose activations follow them, cells that oscillate with the position in the line,
and how often the gates saturate.

A library like layers.py: nothing here parses arguments or prints; _visualize.py is its command line. Every
analysis runs the model over the text as one stream, a window at a time with the state carried, and keeps only
sums, so any length of text works. Long loops take `progress`, a callable given the characters done so far.
"""

import re

import numpy as np

import lstm

WINDOW = 2000  # characters run through the model at a time


# --- kinds of text ------------------------------------------------------------------------------------------

WORD = re.compile(r"(?:[^\W\d_]|')+")  # letters of any alphabet, and apostrophes


def state_label(state):
    """How a state is named to the reader: 'h', or 'tanh(c)' for the cell state (which is shown squashed)."""
    return 'h' if state == 'h' else 'tanh(c)'


def is_speaker(line):
    """A line of capitals ending with ':', e.g. 'KING RICHARD III:' (in any alphabet that has capitals). A
    line read from a text with CRLF line ends may end in '\\r': it is left out."""
    line = line[:-1] if line.endswith('\r') else line
    name = line[:-1]
    return (
        line.endswith(':')
        and name[:1].isalpha()
        and name == name.upper()
        and name != name.lower()
        and all(ch.isalpha() or ch in " '.,-" for ch in name)
    )


def char_kinds(text):
    """Boolean masks over the characters of text, one per kind: {name: (N,) bool}. A character may be of
    several kinds. Also the distance of each character from the last newline before it, (N,) ints. Lines may
    end with '\n' or '\r\n'."""
    N = len(text)
    alpha = np.array([ch.isalpha() for ch in text])
    prev_alpha = np.concatenate([[False], alpha[:-1]])
    prev_newline = np.array([False] + [ch == '\n' for ch in text[:-1]])
    space = np.array([ch.isspace() for ch in text])
    punct = ~alpha & ~space & ~np.array([ch.isdigit() for ch in text])
    speaker = np.zeros(N, dtype=bool)
    since = np.zeros(N, dtype=np.int64)
    start = 0
    for line in text.split('\n'):
        end = start + len(line)
        since[start : min(end + 1, N)] = np.arange(min(end + 1, N) - start)
        if line.endswith('\r') and end < N:  # '\r\n' ends a line as '\n' alone does: at one position
            since[end] = since[end - 1]
        if is_speaker(line):
            speaker[start : end + 1] = True
        start = end + 1
    kinds = {
        'first letter of a word': alpha & ~prev_alpha,
        'inside a word': alpha & prev_alpha,
        'after a newline': prev_newline,
        "in a speaker's name": speaker[:N],
        'punctuation': punct,
        'space or newline': space,
    }
    return kinds, since


# --- running the model --------------------------------------------------------------------------------------


def stream_states(params, ids, window=WINDOW, progress=None, device=None):
    """Run the model forward over the indices as one stream (lstm.stream), a window at a time with the state
    carried. Yields (t0, [engine.LayerSteps(h, c, gates)] per layer) for the characters t0 .. t0 + n - 1: h
    and c (n, H), gates (n, 4H) the activated [i, f, o, g]. The window changes nothing but memory."""
    for w in lstm.stream(params, ids, window, keep=True, device=device):
        yield w.t0, w.steps
        if progress is not None:
            progress(w.t0 + len(w.logits))


def activations(params, ids, progress=None, device=None):
    """Every activation the explorer shows: {(layer, 'h' or 'c'): (N, H) array}, layers from 1; 'c' holds
    tanh(c), so both lie in [-1, 1]."""
    parts = {}
    for _, hidden in stream_states(params, ids, progress=progress, device=device):
        for n, (h, c, _) in enumerate(hidden, start=1):
            parts.setdefault((n, 'h'), []).append(h)
            parts.setdefault((n, 'c'), []).append(np.tanh(c))
    return {key: np.concatenate(arrays) for key, arrays in parts.items()}


# --- features of the text -----------------------------------------------------------------------------------

MAX_PERIOD = 128  # the longest period searched: the search's sums grow with the square of the periods


def line_periods(text):
    """Periods 2 .. the longest common line length (the 90th percentile of the lengths of the non-empty
    lines), at most MAX_PERIOD, and the longest period that fits two cycles into a typical line (half the
    median length), at most the longest period. A line's '\\r' (CRLF line ends) does not count. Without the
    bound, a text of one long line (a paragraph per line, or no newline at all) asked for sums of size the
    square of its length."""
    lengths = [len(line) - line.endswith('\r') for line in text.split('\n') if line.rstrip('\r')]
    longest = max(min(int(np.percentile(lengths, 90)) if lengths else 8, MAX_PERIOD), 3)
    two_cycles = max(2, int(np.median(lengths)) // 2) if lengths else 4
    return range(2, longest + 1), min(two_cycles, longest)


def _to_word_end(text):
    """Characters left to the end of the word (N,), and where the words are (N,) bool."""
    to_end = np.zeros(len(text))
    in_word = np.zeros(len(text), dtype=bool)
    for m in WORD.finditer(text):
        to_end[m.start() : m.end()] = np.arange(m.end() - m.start() - 1, -1, -1)
        in_word[m.start() : m.end()] = True
    return to_end, in_word


def _inside_quotes(text):
    """1.0 for the characters inside double quotes or brackets (the quotes and brackets included), else
    0.0."""
    inside = np.zeros(len(text))
    depth, quoted = 0, False
    for j, ch in enumerate(text):
        if ch in '([':
            depth += 1
        if ch == '"':
            quoted = not quoted
        inside[j] = 1.0 if (depth > 0 or quoted or ch == '"') else 0.0
        if ch in ')]' and depth > 0:
            depth -= 1
    return inside


def line_positions_vary(text):
    """Whether the position in the line (char_kinds) takes more than one value over the text: else
    find_neurons finds neither a line-position cell nor a periodic one (their features are absent)."""
    _, pos = char_kinds(text)
    return len(text) > 2 and np.ptp(pos) > 0


def features(text):
    """Features of every character of the text: {name: (values, mask, description)}; the correlation of a
    feature is taken over the characters where mask is True."""
    everywhere = np.ones(len(text), dtype=bool)
    kinds, line_pos = char_kinds(text)  # line_pos: characters since the newline (the newline
    line_pos = line_pos.astype(np.float64)  # ends its line: its last position)
    speaker = kinds["in a speaker's name"].astype(np.float64)
    to_end, in_word = _to_word_end(text)
    return {
        'line position': (line_pos, everywhere, 'characters since the last newline'),
        'speaker name': (speaker, everywhere, "inside a speaker's name (a line of capitals ending with ':')"),
        'to word end': (to_end, in_word, 'characters left to the end of the word (inside words)'),
        'quotes/brackets': (_inside_quotes(text), everywhere, 'inside double quotes or brackets'),
        'periodic in line': (
            line_pos,
            everywhere,
            'a sine wave over the position in the line, its trend taken out (best period, any phase)',
        ),
    }


# --- the neurons that follow them ---------------------------------------------------------------------------


class PeriodicSearch:
    """Which activations oscillate with the position in the line: for every period P from 2 up to the longest
    common line length and any phase, the partial correlation R of an activation with sin and cos of 2 pi *
    position / P once the position's trend (1, position, position^2) is taken out. Without that, a period near
    the line length fits the steady rise of a line-position cell as well as any sine. The same search on the
    positions shuffled among the characters is the control: the R that chance alone gives. Sums are gathered a
    block of characters at a time (add), so any length of text works."""

    def __init__(self, pos, periods, seed=0):
        self.pos = np.asarray(pos, dtype=np.float64)
        self.periods = np.asarray(list(periods), dtype=np.float64)
        self.control = np.random.default_rng(seed).permutation(self.pos)
        self.sums = {}

    def _design(self, p):
        q = p / 100.0  # scaled, so that the trend's columns are of order 1
        trend = np.stack([np.ones_like(q), q, q * q], axis=1)
        angle = 2 * np.pi * p[:, None] / self.periods[None, :]
        waves = np.concatenate([np.sin(angle), np.cos(angle)], axis=1)  # (n, 2 periods): sines, then cosines
        return np.concatenate([trend, waves], axis=1)

    def add(self, t0, A):
        """A: (n, M) activations of the characters t0 .. t0 + n - 1."""
        for name, p in (('real', self.pos), ('control', self.control)):
            X = self._design(p[t0 : t0 + len(A)])
            XX, XA = X.T @ X, X.T @ A
            if name not in self.sums:
                self.sums[name] = [XX, XA, (A * A).sum(axis=0)]
            else:
                for acc, new in zip(self.sums[name], (XX, XA, (A * A).sum(axis=0))):
                    acc += new

    def result(self, max_period=None):
        """{'real' or 'control': (best partial R per activation (M,), its period (M,))}, over the periods up
        to max_period (None: all)."""
        nP = len(self.periods)
        out = {}
        for name, (XX, XA, aa) in self.sums.items():

            def rss(columns):
                G, b = XX[np.ix_(columns, columns)], XA[columns]
                beta = np.linalg.lstsq(G, b, rcond=None)[0]
                return aa - (beta * b).sum(axis=0)

            base = rss([0, 1, 2])  # the trend alone
            best, period = np.zeros(len(aa)), np.zeros(len(aa))
            for k, P in enumerate(self.periods):
                if max_period is not None and P > max_period:
                    continue
                full = rss([0, 1, 2, 3 + k, 3 + nP + k])
                r = np.sqrt(np.clip((base - full) / np.maximum(base, 1e-300), 0.0, 1.0))
                better = r > best
                best[better], period[better] = r[better], P
            out[name] = (best, period)
        return out


class _Correlation:
    """Pearson's r of every activation with one feature, over the characters its mask keeps, from running
    sums."""

    def __init__(self, M):
        self.n, self.f, self.ff = 0.0, 0.0, 0.0
        self.a, self.aa, self.af = np.zeros(M), np.zeros(M), np.zeros(M)

    def add(self, A, f, mask):
        """A: (n, M) activations; f: (n,) the feature; mask: (n,) bool."""
        Am, fm = A[mask], f[mask]
        self.n += len(fm)
        self.a += Am.sum(0)
        self.aa += (Am * Am).sum(0)
        self.f += fm.sum()
        self.ff += (fm * fm).sum()
        self.af += fm @ Am

    def result(self):
        """(present, r (M,)): present is False where the feature does not vary (then r is all 0)."""
        n = self.n
        var_f = self.ff - self.f**2 / max(n, 1)
        var_a = self.aa - self.a**2 / max(n, 1)
        present = n > 2 and var_f > 1e-12
        r = np.zeros(len(self.a))
        if present:
            cov = self.af - self.a * self.f / n
            ok = var_a > 1e-12
            r[ok] = cov[ok] / np.sqrt(var_a[ok] * var_f)
        return bool(present), r


def find_neurons(params, ids, text, top=5, window=WINDOW, progress=None, device=None):
    """Rank neurons by how well their activation follows each feature of the text.

    Pearson correlation for each feature; for 'periodic in line', the partial correlation R of PeriodicSearch
    for the best period P, and in 'control' the best R of the same search on shuffled positions. Activations
    (h and tanh(c) of every layer) are computed a window at a time with the state carried, and only sums are
    kept, so any length of text works.

    Returns {feature: {'description', 'present', 'best': [(layer, state, neuron, r, P or None), ...]}}.
    """
    feats = features(text)
    _, H, n_layers = lstm.sizes(params)
    keys = [(n, s) for n in range(1, n_layers + 1) for s in 'hc']
    M = len(keys) * H
    lin = {k: _Correlation(M) for k in feats if k != 'periodic in line'}
    periods, two_cycles = line_periods(text)
    search = PeriodicSearch(feats['periodic in line'][0], periods)
    for t0, hidden in stream_states(params, ids, window, progress, device):
        A = np.concatenate(
            [h if s == 'h' else np.tanh(c) for (h, c, _) in hidden for s in 'hc'], axis=1
        ).astype(np.float64)  # (n, M), columns in the order of keys
        for name, acc in lin.items():
            acc.add(A, feats[name][0][t0 : t0 + len(A)], feats[name][1][t0 : t0 + len(A)])
        search.add(t0, A)

    def best(scores, extra=None):
        order = np.argsort(-np.abs(scores))[:top]
        return [
            (
                keys[j // H][0],
                keys[j // H][1],
                int(j % H),
                float(scores[j]),
                None if extra is None else int(extra[j]),
            )
            for j in order
        ]

    out = {}
    for name, acc in lin.items():
        present, r = acc.result()
        out[name] = dict(description=feats[name][2], present=present, best=best(r) if present else [])
    # Ranked over the periods that fit two cycles into a typical line: longer ones fit the steady rise of the
    # line-position cells (what the trend leaves of it) as well as any wave. The longest are reported apart.
    found, every = search.result(two_cycles), search.result()
    # The trend and one wave (5 columns) fit any 5 distinct line positions exactly: with no more than that,
    # every R is 0 or 1 whatever the neuron does, and there is nothing to rank.
    present = len(np.unique(feats['periodic in line'][0])) > 5
    R, period = found['real']
    out['periodic in line'] = dict(
        description=feats['periodic in line'][2],
        present=present,
        best=best(R, period) if present else [],
        control=float(found['control'][0].max()),
        periods=[int(search.periods[0]), two_cycles, int(search.periods[-1])],
        long=best(*every['real'])[:1] if present else [],
    )
    return out


def position_profile(params, ids, text, cells, max_pos=60, window=WINDOW, progress=None, device=None):
    """For each cell (layer, 'h' or 'c', index, ...): its mean activation at each position in the line, 0 ..
    max_pos, over the text. Returns (means (cells, max_pos + 1), counts (max_pos + 1,) characters per
    position)."""
    _, pos = char_kinds(text)  # characters since the last newline
    sums = np.zeros((len(cells), max_pos + 1))
    counts = np.bincount(np.minimum(pos, max_pos + 1), minlength=max_pos + 2)[: max_pos + 1]
    for t0, hidden in stream_states(params, ids, window, progress, device):
        p = pos[t0 : t0 + window]
        keep = p <= max_pos
        for j, (layer, state, k, *_) in enumerate(cells):
            h, c, _ = hidden[layer - 1]
            a = h[:, k] if state == 'h' else np.tanh(c[:, k])
            sums[j] += np.bincount(p[keep], weights=a[keep], minlength=max_pos + 1)
    return sums / np.maximum(counts, 1), counts


# --- gate saturation (Karpathy, Johnson and Fei-Fei, 2015) --------------------------------------------------

GATES = ('input', 'forget', 'output')  # the column blocks i, f, o of each layer's gates


def gate_saturation(params, ids, low=0.1, high=0.9, window=WINDOW, progress=None, device=None):
    """How often each cell's gates are saturated over the text. Returns {(layer, gate name): (left, right)}:
    for each of the H cells, the fraction of steps with the gate below `low` (left-saturated, nearly closed)
    and above `high` (right-saturated, nearly open)."""
    _, H, n_layers = lstm.sizes(params)
    counts = {(n, g): [np.zeros(H), np.zeros(H)] for n in range(1, n_layers + 1) for g in GATES}
    for _, hidden in stream_states(params, ids, window, progress, device):
        for n, (_, _, gates) in enumerate(hidden, start=1):
            for k, g in enumerate(GATES):
                a = gates[:, k * H : (k + 1) * H]
                counts[(n, g)][0] += (a < low).sum(axis=0)
                counts[(n, g)][1] += (a > high).sum(axis=0)
    N = len(ids)
    return {key: (left / N, right / N) for key, (left, right) in counts.items()}
