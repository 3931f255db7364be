"""Look inside the model: one neuron's activation on every character of a text, and the neurons that follow
features of the text.

    python _visualize.py                              # the viewer (tkinter) over saves/sample.txt
    python _visualize.py --layer 2 --state c --neuron 17
    python _visualize.py --html neurons.html          # one self-contained page to explore in a browser
    python _visualize.py --find --text valid.txt      # rank neurons by how well they follow text features

The background of each character is the activation of the chosen neuron after reading it: -1 white, 0 pink,
+1 red (newlines stay white). Choose the layer, the hidden state h or the cell state tanh(c), and the neuron by
its index, or step through them with Previous and Next.
"""
import base64
import html
import json
import os

import numpy as np

import cli
import data
import files
import lstm

def parse_args(argv):
    p = cli.Parser(description='Show one neuron\'s activation on every character of a text.')
    g = p.add_argument_group('data')
    g.add_argument('--text', type=cli.path, default=os.path.join(cli.SAVES, 'sample.txt'),
                   help='UTF-8 text to run the model over (default saves/sample.txt)')
    cli.add_model_options(p)
    g = p.add_argument_group('view')
    g.add_argument('--layer', type=cli.positive_int, default=1, help='LSTM layer to show first (default %(default)s)')
    g.add_argument('--state', choices=['h', 'c'], default='h',
                   help='h: hidden state; c: tanh of the cell state (default %(default)s)')
    g.add_argument('--neuron', type=cli.non_negative_int, default=0, help='neuron to show first (default %(default)s)')
    g = p.add_argument_group('output (instead of the viewer)')
    g.add_argument('--html', type=cli.path, metavar='FILE', help='write one self-contained HTML page to explore '
                                                                 'the neurons')
    g.add_argument('--html-chars', type=cli.positive_int, default=3000,
                   help='the page shows at most this many characters of the text (default %(default)s)')
    g.add_argument('--find', action='store_true', help='print the neurons that best follow each feature')
    g.add_argument('--saturation', metavar='SVG', type=cli.path, nargs='?', const='saturation.svg',
                   help='print how often each gate is saturated, and draw it per cell into this SVG file (the '
                        'figure of Karpathy et al., 2015; default file %(const)s)')
    g.add_argument('--periodic-svg', metavar='SVG', type=cli.path, help='with --find: draw the mean activation '
                   'by position in the line of the best periodic cells and of the best line-position cell')
    g.add_argument('--top', type=cli.positive_int, default=5, help='neurons listed per feature (default %(default)s)')
    return p.parse_args(argv)


def activations(params, ids):
    """Run the model over the indices (batch 1) and return {(layer, 'h' or 'c'): (N, H) array}, layers from 1;
    'c' holds tanh(c), so both lie in [-1, 1]."""
    _, hidden = lstm.Predictor(params, 1)(np.asarray(ids)[:, None], keep=True)
    acts = {}
    for n, (h, c, _) in enumerate(hidden, start=1):
        acts[(n, 'h')] = h[:, 0, :]
        acts[(n, 'c')] = np.tanh(c[:, 0, :])
    return acts


def hidden_states(params, ids, window=2000):
    """Run the model over the indices as one stream (batch 1), a window at a time with the state carried, so that
    any length of text works. Yields (t0, [(h, c, gates)] per layer) for the characters t0 .. t0 + n - 1: h and c
    (n, H), gates (n, 4H) the activated [i, f, o, g]."""
    model = lstm.Predictor(params, 1)
    for t0 in range(0, len(ids), window):
        _, hidden = model(np.asarray(ids[t0:t0 + window])[:, None], keep=True)
        yield t0, [(h[:, 0], c[:, 0], gates[:, 0]) for h, c, gates in hidden]


# --- features of the text, and the neurons that follow them ------------------------------------------------------

class PeriodicSearch:
    """Which activations oscillate with the position in the line: for every period P from 2 up to the longest
    common line length and any phase, the partial correlation R of an activation with sin and cos of
    2 pi * position / P once the position's trend (1, position, position^2) is taken out. Without that, a period
    near the line length fits the steady rise of a line-position cell as well as any sine. The same search on the
    positions shuffled among the characters is the control: the R that chance alone gives. Sums are gathered a
    block of characters at a time (add), so any length of text works."""

    def __init__(self, pos, periods, seed=0):
        self.pos = np.asarray(pos, dtype=np.float64)
        self.periods = np.asarray(list(periods), dtype=np.float64)
        self.control = np.random.default_rng(seed).permutation(self.pos)
        self.sums = {}

    def _design(self, p):
        q = p / 100.0                                   # scaled, so that the trend's columns are of order 1
        trend = np.stack([np.ones_like(q), q, q * q], axis=1)
        angle = 2 * np.pi * p[:, None] / self.periods[None, :]
        waves = np.concatenate([np.sin(angle), np.cos(angle)], axis=1)    # (n, 2 periods): sines, then cosines
        return np.concatenate([trend, waves], axis=1)

    def add(self, t0, A):
        """A: (n, M) activations of the characters t0 .. t0 + n - 1."""
        for name, p in (('real', self.pos), ('control', self.control)):
            X = self._design(p[t0:t0 + len(A)])
            XX, XA = X.T @ X, X.T @ A
            if name not in self.sums:
                self.sums[name] = [XX, XA, (A * A).sum(axis=0)]
            else:
                for acc, new in zip(self.sums[name], (XX, XA, (A * A).sum(axis=0))):
                    acc += new

    def result(self, max_period=None):
        """{'real' or 'control': (best partial R per activation (M,), its period (M,))}, over the periods up to
        max_period (None: all)."""
        nP = len(self.periods)
        out = {}
        for name, (XX, XA, aa) in self.sums.items():
            def rss(columns):
                G, b = XX[np.ix_(columns, columns)], XA[columns]
                beta = np.linalg.lstsq(G, b, rcond=None)[0]
                return aa - (beta * b).sum(axis=0)
            base = rss([0, 1, 2])                       # the trend alone
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


def line_periods(text):
    """Periods 2 .. the longest common line length (the 90th percentile of the lengths of the non-empty lines),
    and the longest period that fits two cycles into a typical line (half the median length)."""
    lengths = [len(line) for line in text.split('\n') if line]
    longest = int(np.percentile(lengths, 90)) if lengths else 8
    two_cycles = max(2, int(np.median(lengths)) // 2) if lengths else 4
    return range(2, max(longest, 3) + 1), two_cycles


def features(text):
    """Features of every character of the text: {name: (values, mask, description)}; the correlation of a
    feature is taken over the characters where mask is True."""
    N = len(text)
    everywhere = np.ones(N, dtype=bool)
    kinds, line_pos = data.char_kinds(text)            # line_pos: characters since the newline (the newline
    line_pos = line_pos.astype(np.float64)              # ends its line: its last position)
    speaker = kinds["in a speaker's name"].astype(np.float64)
    to_end = np.zeros(N)
    in_word = np.zeros(N, dtype=bool)
    for m in data.WORD.finditer(text):
        to_end[m.start():m.end()] = np.arange(m.end() - m.start() - 1, -1, -1)
        in_word[m.start():m.end()] = True
    inside = np.zeros(N)
    depth, quoted = 0, False
    for j, ch in enumerate(text):
        if ch in '([':
            depth += 1
        if ch == '"':
            quoted = not quoted
        inside[j] = 1.0 if (depth > 0 or quoted or ch == '"') else 0.0
        if ch in ')]' and depth > 0:
            depth -= 1
    return {
        'line position': (line_pos, everywhere, 'characters since the last newline'),
        'speaker name': (speaker, everywhere, "inside a speaker's name (a line of capitals ending with ':')"),
        'to word end': (to_end, in_word, 'characters left to the end of the word (inside words)'),
        'quotes/brackets': (inside, everywhere, 'inside double quotes or brackets'),
        'periodic in line': (line_pos, everywhere, 'a sine wave over the position in the line, its trend taken '
                                                   'out (best period, any phase)'),
    }


def find_neurons(params, ids, text, top=5, window=2000):
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
    N = len(ids)
    lin = {k: dict(n=0.0, a=np.zeros(M), aa=np.zeros(M), f=0.0, ff=0.0, af=np.zeros(M))
           for k in feats if k != 'periodic in line'}
    periods, two_cycles = line_periods(text)
    search = PeriodicSearch(feats['periodic in line'][0], periods)
    for t0, hidden in hidden_states(params, ids, window):
        A = np.concatenate([h if s == 'h' else np.tanh(c) for (h, c, _) in hidden for s in 'hc'],
                           axis=1).astype(np.float64)               # (n, M), columns in the order of keys
        t1 = t0 + len(A)
        for name, acc in lin.items():
            f, mask = feats[name][0][t0:t1], feats[name][1][t0:t1]
            Am = A[mask]
            fm = f[mask]
            acc['n'] += len(fm)
            acc['a'] += Am.sum(0)
            acc['aa'] += (Am * Am).sum(0)
            acc['f'] += fm.sum()
            acc['ff'] += (fm * fm).sum()
            acc['af'] += fm @ Am
        search.add(t0, A)

    def best(scores, extra=None):
        order = np.argsort(-np.abs(scores))[:top]
        return [(keys[j // H][0], keys[j // H][1], int(j % H), float(scores[j]),
                 None if extra is None else int(extra[j])) for j in order]

    out = {}
    for name, acc in lin.items():
        n = acc['n']
        var_f = acc['ff'] - acc['f'] ** 2 / max(n, 1)
        var_a = acc['aa'] - acc['a'] ** 2 / max(n, 1)
        present = n > 2 and var_f > 1e-12
        r = np.zeros(M)
        if present:
            cov = acc['af'] - acc['a'] * acc['f'] / n
            ok = var_a > 1e-12
            r[ok] = cov[ok] / np.sqrt(var_a[ok] * var_f)
        out[name] = dict(description=feats[name][2], present=bool(present), best=best(r) if present else [])
    # Ranked over the periods that fit two cycles into a typical line: longer ones fit the steady rise of the
    # line-position cells (what the trend leaves of it) as well as any wave. The longest are reported apart.
    found, every = search.result(two_cycles), search.result()
    R, period = found['real']
    out['periodic in line'] = dict(description=feats['periodic in line'][2], present=N > 2, best=best(R, period),
                                   control=float(found['control'][0].max()),
                                   periods=[int(search.periods[0]), two_cycles, int(search.periods[-1])],
                                   long=best(*every['real'])[:1])
    return out


# --- gate saturation (Karpathy, Johnson and Fei-Fei, 2015) ------------------------------------------------------

GATES = ('input', 'forget', 'output')                   # the column blocks i, f, o of each layer's gates


def gate_saturation(params, ids, low=0.1, high=0.9, window=2000):
    """How often each cell's gates are saturated over the text. Returns {(layer, gate name): (left, right)}: for
    each of the H cells, the fraction of steps with the gate below `low` (left-saturated, nearly closed) and
    above `high` (right-saturated, nearly open). Streamed a window at a time, so any length of text works."""
    _, H, n_layers = lstm.sizes(params)
    counts = {(n, g): [np.zeros(H), np.zeros(H)] for n in range(1, n_layers + 1) for g in GATES}
    for _, hidden in hidden_states(params, ids, window):
        for n, (_, _, gates) in enumerate(hidden, start=1):
            for k, g in enumerate(GATES):
                a = gates[:, k * H:(k + 1) * H]
                counts[(n, g)][0] += (a < low).sum(axis=0)
                counts[(n, g)][1] += (a > high).sum(axis=0)
    N = len(ids)
    return {key: (left / N, right / N) for key, (left, right) in counts.items()}


def print_saturation(sat, where, low=0.1, high=0.9):
    print(f'gate saturation over {where}: the fraction of steps with a gate below {low} (left) or above {high} '
          '(right), averaged over the cells; and how many cells are saturated more than half of the time')
    print(f'{"layer":>5} {"gate":<7} {"left":>6} {"right":>6} {"neither":>8} {"cells mostly left":>17} '
          f'{"cells mostly right":>18}')
    for (n, g), (left, right) in sat.items():
        print(f'{n:>5} {g:<7} {left.mean():6.3f} {right.mean():6.3f} {1 - left.mean() - right.mean():8.3f} '
              f'{int((left > 0.5).sum()):>13} / {len(left)} {int((right > 0.5).sum()):>14} / {len(right)}')


def saturation_svg(sat, title, size=220, pad=44):
    """The paper's figure: one panel per layer (rows) and gate (columns), each cell a dot at (fraction of steps
    left-saturated, fraction right-saturated). Plain SVG, no plotting library."""
    layers_ = sorted({n for n, _ in sat})
    colours = {'input': '#1f77b4', 'forget': '#2ca02c', 'output': '#d62728'}
    width, height = pad + len(GATES) * (size + pad), 40 + len(layers_) * (size + pad)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           'font-size="12">', f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="20" text-anchor="middle" font-size="14">{html.escape(title)}</text>']
    for r, n in enumerate(layers_):
        for c, g in enumerate(GATES):
            x0, y0 = pad + c * (size + pad), 40 + r * (size + pad)
            out.append(f'<rect x="{x0}" y="{y0}" width="{size}" height="{size}" fill="none" stroke="black"/>')
            out.append(f'<line x1="{x0}" y1="{y0}" x2="{x0 + size}" y2="{y0 + size}" stroke="#ccc"/>')  # x + y = 1
            out.append(f'<text x="{x0 + size / 2}" y="{y0 - 6}" text-anchor="middle">layer {n}, {g} gate</text>')
            out.append(f'<text x="{x0 + size / 2}" y="{y0 + size + 16}" text-anchor="middle" font-size="10">'
                       'fraction left-saturated (&lt; 0.1)</text>')
            out.append(f'<text x="{x0 - 8}" y="{y0 + size / 2}" text-anchor="middle" font-size="10" '
                       f'transform="rotate(-90 {x0 - 8} {y0 + size / 2})">fraction right-saturated (&gt; 0.9)</text>')
            for v in (0, 1):
                out.append(f'<text x="{x0 + v * size}" y="{y0 + size + 28}" text-anchor="middle" '
                           f'font-size="9">{v}</text>')
            left, right = sat[(n, g)]
            for a, b in zip(left, right):
                out.append(f'<circle cx="{x0 + a * size:.1f}" cy="{y0 + (1 - b) * size:.1f}" r="2" '
                           f'fill="{colours[g]}" fill-opacity="0.5"/>')
    out.append('</svg>')
    return '\n'.join(out) + '\n'


def position_profile_svg(params, ids, text, cells, title, max_pos=60, window=2000):
    """For each cell (layer, 'h' or 'c', index, label): its mean activation at each position in the line, 0 ..
    max_pos, over the text, as one plain-SVG panel per cell. A sine cell shows a wave; a counter, a ramp."""
    _, pos = data.char_kinds(text)                     # characters since the last newline
    sums = np.zeros((len(cells), max_pos + 1))
    counts = np.bincount(np.minimum(pos, max_pos + 1), minlength=max_pos + 2)[:max_pos + 1]
    for t0, hidden in hidden_states(params, ids, window):
        p = pos[t0:t0 + window]
        keep = p <= max_pos
        for j, (layer, state, k, _) in enumerate(cells):
            h, c, _ = hidden[layer - 1]
            a = h[:, k] if state == 'h' else np.tanh(c[:, k])
            sums[j] += np.bincount(p[keep], weights=a[keep], minlength=max_pos + 1)
    means = sums / np.maximum(counts, 1)
    w, h_, pad = 300, 170, 40
    width, height = pad + len(cells) * (w + pad), h_ + 90
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
           'font-size="12">', f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{width / 2}" y="18" text-anchor="middle" font-size="14">{html.escape(title)}</text>']
    for j, (layer, state, k, label) in enumerate(cells):
        x0, y0 = pad + j * (w + pad), 40
        lo, hi = float(means[j].min()), float(means[j].max())
        span = max(hi - lo, 1e-9)
        X = lambda q: x0 + q / max_pos * w
        Y = lambda v: y0 + (hi - v) / span * h_
        out.append(f'<rect x="{x0}" y="{y0}" width="{w}" height="{h_}" fill="none" stroke="black"/>')
        pts = ' '.join(f'{X(q):.1f},{Y(v):.1f}' for q, v in enumerate(means[j]) if counts[q])
        out.append(f'<polyline points="{pts}" fill="none" stroke="#d62728" stroke-width="1.5"/>')
        out.append(f'<text x="{x0 + w / 2}" y="{y0 - 6}" text-anchor="middle">layer {layer} '
                   f'{"h" if state == "h" else "tanh(c)"} {k}: {html.escape(label)}</text>')
        out.append(f'<text x="{x0 + w / 2}" y="{y0 + h_ + 30}" text-anchor="middle" font-size="10">'
                   f'position in the line (0 to {max_pos})</text>')
        out.append(f'<text x="{x0 - 4}" y="{y0 + 10}" text-anchor="end" font-size="9">{hi:+.2f}</text>')
        out.append(f'<text x="{x0 - 4}" y="{y0 + h_}" text-anchor="end" font-size="9">{lo:+.2f}</text>')
    out.append('</svg>')
    return '\n'.join(out) + '\n'


def colour(a):
    """Background colour of an activation: -1 white, 0 pink, +1 red, as '#rrggbb'."""
    t = (float(np.clip(a, -1.0, 1.0)) + 1.0) / 2.0
    gb = int(round(255 * (1.0 - t)))
    return f'#ff{gb:02x}{gb:02x}'


def load(args):
    """The model, the text and its indices; every problem is a one-line error."""
    try:
        chars = data.load_lookup(args.lookup)
        params, _ = files.load_params(args.weights, V=len(chars))
        ids, _ = data.read_corpus(args.text, chars)
    except (files.ModelFileError, data.CorpusError) as e:
        cli.fail(str(e))
    _, H, n_layers = lstm.sizes(params)
    if args.layer > n_layers:
        cli.fail(f'--layer {args.layer}: the model has {n_layers} layers')
    if args.neuron >= H:
        cli.fail(f'--neuron {args.neuron}: the model has {H} neurons per layer (0 to {H - 1})')
    return params, ids, data.decode(ids, chars)


def print_found(found, where):
    print(f'neurons that follow features of {where} (r: correlation over the text; |r| near 1 is a close match)')
    for name, f in found.items():
        print(f'\n{name}: {f["description"]}')
        if not f['present']:
            print('  (absent from this text)')
        for layer, state, k, r, P in f['best']:
            what = 'h' if state == 'h' else 'tanh(c)'
            period = f'  period {P}' if P is not None else ''
            print(f'  layer {layer} {what:<7} neuron {k:3d}   r = {r:+.3f}{period}')
        if 'control' in f:
            lo, mid, hi = f['periods']
            print(f'  periods {lo} to {mid} (two cycles or more in a typical line); with the line positions shuffled '
                  f'(chance), the best R of any neuron is {f["control"]:.3f}')
            for layer, state, k, r, P in f['long']:
                print(f'  over all periods up to {hi}, the best is layer {layer} {"h" if state == "h" else "tanh(c)"} '
                      f'neuron {k} (R = {r:.3f}, period {P}): a period that long also fits a steady rise in the line')


def write_html(path, text, acts, H, n_layers, found, start):
    """One self-contained page: the text coloured by a neuron, controls, and the best neurons per feature."""
    keys = [(n, s) for n in range(1, n_layers + 1) for s in 'hc']
    # activations as int8 (-127..127 for -1..1), layout [layer][state][neuron][character], base64
    q = np.stack([np.clip(np.round(acts[k].T * 127), -127, 127) for k in keys]).astype(np.int8)
    payload = dict(text=text, H=H, layers=n_layers, acts=base64.b64encode(q.tobytes()).decode('ascii'),
                   found={name: dict(description=f['description'], present=f['present'],
                                     best=[dict(layer=l, state=s, neuron=k, r=round(r, 3), period=P)
                                           for l, s, k, r, P in f['best']]) for name, f in found.items()},
                   start=dict(layer=start[0], state=start[1], neuron=start[2]))
    page = HTML_TEMPLATE.replace('__DATA__', json.dumps(payload).replace('</', '<\\/'))
    page = page.replace('__TITLE__', html.escape(f'LSTM neurons ({len(text)} characters)'))
    files.write_text(path, page)


HTML_TEMPLATE = r"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body { font-family: sans-serif; margin: 1em; }
#bar { position: sticky; top: 0; background: #fff; padding: .4em 0; border-bottom: 1px solid #ddd; }
#bar * { font-size: 14px; margin-right: .3em; }
#text { font-family: monospace; font-size: 14px; white-space: pre-wrap; line-height: 1.35; margin-top: .6em; }
#found { font-size: 13px; margin-top: .5em; }
#found b { display: inline-block; min-width: 10em; }
.pick { cursor: pointer; border: 1px solid #bbb; border-radius: 3px; background: #f6f6f6; margin: 0 .2em; }
#info { color: #444; }
#select { font-size: 13px; margin-top: .4em; color: #333; }
#selcells { margin-top: .2em; }
#text span.match { outline: 2px solid #1f77b4; }
#text span.chosen { outline: 2px solid #2ca02c; }
</style></head><body>
<div id="bar">
  <label>layer <select id="layer"></select></label>
  <label>state <select id="state"><option value="h">h</option><option value="c">tanh(c)</option></select></label>
  <label>neuron <input id="neuron" type="number" min="0" style="width:5em"></label>
  <button id="prev">Previous</button><button id="next">Next</button>
  <span id="info"></span>
  <div id="found"></div>
  <div id="select">select text with the mouse to find the cells that are on across it:
    <label>on above <input id="threshold" type="number" step="0.05" min="-1" max="1" value="0.3" style="width:4em"></label>
    <label>off in the <input id="before" type="number" min="0" max="20" value="3" style="width:3em"> characters before</label>
    <span id="selinfo"></span><div id="selcells"></div>
  </div>
</div>
<div id="text"></div>
<script>
const D = __DATA__;
const TEXT = Array.from(D.text);    // one entry per character (code point), as in Python; D.text.length counts
const N = TEXT.length, H = D.H;     // UTF-16 units, two for a character outside the Basic Multilingual Plane
const raw = atob(D.acts), acts = new Int8Array(raw.length);
for (let j = 0; j < raw.length; j++) { const v = raw.charCodeAt(j); acts[j] = v > 127 ? v - 256 : v; }
const layerSel = document.getElementById('layer'), stateSel = document.getElementById('state');
const neuronBox = document.getElementById('neuron'), info = document.getElementById('info');
for (let n = 1; n <= D.layers; n++) layerSel.add(new Option('layer ' + n, n));
neuronBox.max = H - 1;
const spans = [], box = document.getElementById('text');
for (let j = 0; j < N; j++) {
  const s = document.createElement('span'); s.textContent = TEXT[j]; box.appendChild(s); spans.push(s);
}
function colour(a) {            // -1 white, 0 pink, +1 red: the same as colour() in _visualize.py
  const t = (Math.max(-1, Math.min(1, a)) + 1) / 2, gb = Math.round(255 * (1 - t));
  return 'rgb(255, ' + gb + ', ' + gb + ')';
}
function show() {
  const layer = +layerSel.value, state = stateSel.value;
  let k = Math.max(0, Math.min(H - 1, parseInt(neuronBox.value) || 0));
  neuronBox.value = k;
  const off = (((layer - 1) * 2 + (state === 'h' ? 0 : 1)) * H + k) * N;
  let lo = 1, hi = -1;
  for (let j = 0; j < N; j++) {
    const a = acts[off + j] / 127;
    lo = Math.min(lo, a); hi = Math.max(hi, a);
    spans[j].style.background = TEXT[j] === '\n' ? '' : colour(a);
  }
  info.textContent = 'layer ' + layer + ' ' + (state === 'h' ? 'h' : 'tanh(c)') + ' neuron ' + k +
                     ': min ' + lo.toFixed(2) + ', max ' + hi.toFixed(2);
  history.replaceState(null, '', '#layer=' + layer + '&state=' + state + '&neuron=' + k);
}
function pick(layer, state, k) { layerSel.value = layer; stateSel.value = state; neuronBox.value = k; show(); }
const found = document.getElementById('found');
for (const [name, f] of Object.entries(D.found)) {
  const row = document.createElement('div');
  row.innerHTML = '<b title="' + f.description + '">' + name + '</b>';
  if (!f.present) row.appendChild(document.createTextNode('absent from this text'));
  for (const b of f.best) {
    const btn = document.createElement('button');
    btn.className = 'pick';
    btn.textContent = b.layer + (b.state === 'h' ? 'h' : 'c') + ':' + b.neuron + ' (' +
                      (b.r >= 0 ? '+' : '') + b.r.toFixed(2) + (b.period ? ', P ' + b.period : '') + ')';
    btn.title = 'layer ' + b.layer + ', ' + (b.state === 'h' ? 'h' : 'tanh(c)') + ', neuron ' + b.neuron;
    btn.onclick = () => pick(b.layer, b.state, b.neuron);
    row.appendChild(btn);
  }
  found.appendChild(row);
}
document.getElementById('prev').onclick = () => { neuronBox.value = ((+neuronBox.value || 0) - 1 + H) % H; show(); };
document.getElementById('next').onclick = () => { neuronBox.value = ((+neuronBox.value || 0) + 1) % H; show(); };
layerSel.onchange = stateSel.onchange = neuronBox.onchange = show;
// Select to find (as LSTMVis's select view): the cells that are on (above the threshold) at every character of the
// selected span and off at the characters just before it, ranked by how clearly; then the other places in the
// text where the best of them are on together.
const K = D.layers * 2 * H;                             // every cell: layer, h or tanh(c), neuron
const spanIndex = new Map(spans.map((s, j) => [s, j]));
function charIndex(node) {                              // the character a selection end point lies in
  const el = node.nodeType === 1 ? node : node.parentNode;
  return spanIndex.has(el) ? spanIndex.get(el) : null;
}
function cellName(kk) {
  const n = Math.floor(kk / (2 * H)) + 1, s = Math.floor(kk / H) % 2 ? 'c' : 'h', k = kk % H;
  return [n, s, k];
}
function selectFind(a, b) {                             // characters a .. b inclusive
  const thr = parseFloat(document.getElementById('threshold').value) * 127;
  const pre = Math.max(0, parseInt(document.getElementById('before').value) || 0);
  const scored = [];
  for (let kk = 0; kk < K; kk++) {
    const off = kk * N;
    let lo = 127;
    for (let j = a; j <= b; j++) lo = Math.min(lo, acts[off + j]);
    if (lo < thr) continue;                             // not on across the whole span
    let hi = -127;
    for (let j = Math.max(0, a - pre); j < a; j++) hi = Math.max(hi, acts[off + j]);
    if (a - pre >= 0 && pre > 0 && hi >= thr) continue; // already on before it
    scored.push([(lo - (pre > 0 && a > 0 ? hi : -127)) / 127, kk]);
  }
  scored.sort((x, y) => y[0] - x[0]);
  const best = scored.slice(0, 5).map(x => x[1]);
  for (const s of spans) s.classList.remove('match', 'chosen');
  for (let j = a; j <= b; j++) spans[j].classList.add('chosen');
  let matches = 0;
  const together = best.slice(0, 3);
  if (together.length) {
    for (let j = 0; j < N; j++) {
      if (j >= a && j <= b) continue;
      if (together.every(kk => acts[kk * N + j] >= thr)) { spans[j].classList.add('match'); matches++; }
    }
  }
  const cells = document.getElementById('selcells');
  cells.innerHTML = '';
  for (const [score, kk] of scored.slice(0, 5)) {
    const [n, s, k] = cellName(kk);
    const btn = document.createElement('button');
    btn.className = 'pick sel';
    btn.dataset.cell = n + s + k;
    btn.textContent = n + s + ':' + k + ' (' + score.toFixed(2) + ')';
    btn.onclick = () => pick(n, s, k);
    cells.appendChild(btn);
  }
  document.getElementById('selinfo').textContent = 'characters ' + a + ' to ' + b + ': ' + scored.length +
    ' cells on across it and off before; the best ' + together.length + ' are on together at ' + matches +
    ' other characters (outlined in blue)';
  return {cells: best.map(cellName), matches: matches};
}
function selectedChars() {                             // the selection as characters a .. b, or null
  const sel = window.getSelection();
  if (!sel || sel.isCollapsed || !sel.rangeCount) return null;
  const r = sel.getRangeAt(0), box = document.getElementById('text');
  let a, b;
  if (r.startContainer === box) a = r.startOffset;      // between spans: offsets count children
  else { a = charIndex(r.startContainer); if (a !== null && r.startContainer.nodeType === 3 &&
                                             r.startOffset >= r.startContainer.length) a++; }
  if (r.endContainer === box) b = r.endOffset - 1;
  else { b = charIndex(r.endContainer); if (b !== null && r.endOffset === 0) b--; }
  return a === null || b === null || a > b ? null : [a, Math.min(b, N - 1)];
}
document.getElementById('text').addEventListener('mouseup', () => {
  const ab = selectedChars();
  if (ab) window.lastSelection = selectFind(ab[0], ab[1]);
});
const h = new URLSearchParams(location.hash.slice(1));
pick(h.get('layer') || D.start.layer, h.get('state') || D.start.state, h.get('neuron') || D.start.neuron);
</script></body></html>
"""


def build_viewer(text, acts, H, n_layers, layer, state, neuron):
    """The tkinter window. Returns (root, widgets): the caller runs root.mainloop(); tests drive the widgets."""
    import tkinter as tk
    root = tk.Tk()
    root.title('LSTM neuron viewer')
    bar = tk.Frame(root)
    bar.pack(side=tk.TOP, fill=tk.X)
    layer_var = tk.IntVar(value=layer)
    state_var = tk.StringVar(value=state)
    neuron_var = tk.StringVar(value=str(neuron))
    tk.Label(bar, text='Neuron').pack(side=tk.LEFT)
    entry = tk.Entry(bar, textvariable=neuron_var, width=6)
    entry.pack(side=tk.LEFT)
    previous = tk.Button(bar, text='Previous')
    previous.pack(side=tk.LEFT)
    following = tk.Button(bar, text='Next')
    following.pack(side=tk.LEFT)
    for n in range(1, n_layers + 1):
        tk.Radiobutton(bar, text=f'layer {n}', variable=layer_var, value=n, command=lambda: show()).pack(
            side=tk.LEFT)
    tk.Radiobutton(bar, text='h', variable=state_var, value='h', command=lambda: show()).pack(side=tk.LEFT)
    tk.Radiobutton(bar, text='tanh(c)', variable=state_var, value='c', command=lambda: show()).pack(side=tk.LEFT)
    status = tk.Label(bar, text='')
    status.pack(side=tk.LEFT)
    box = tk.Text(root, wrap=tk.WORD, font=('Courier', 12), width=90, height=40)
    box.pack(side=tk.TOP, fill=tk.BOTH, expand=True)
    box.insert('1.0', text)
    box.configure(state=tk.DISABLED)

    def current():
        try:
            k = int(neuron_var.get())
        except ValueError:
            k = 0
        return min(max(k, 0), H - 1)

    def show(k=None):
        k = current() if k is None else k % H
        neuron_var.set(str(k))
        a = acts[(layer_var.get(), state_var.get())][:, k]
        for tag in box.tag_names():
            if tag != 'sel':
                box.tag_delete(tag)
        for j, ch in enumerate(text):
            if ch == '\n':
                continue
            tag = f't{j}'
            box.tag_add(tag, f'1.0+{j}c')
            box.tag_configure(tag, background=colour(a[j]))
        status.configure(text=f'layer {layer_var.get()} {"h" if state_var.get() == "h" else "tanh(c)"} '
                              f'neuron {k}: min {a.min():+.2f} max {a.max():+.2f}')

    previous.configure(command=lambda: show(current() - 1))
    following.configure(command=lambda: show(current() + 1))
    entry.bind('<Return>', lambda e: show())
    show()
    return root, dict(previous=previous, next=following, entry=entry, neuron=neuron_var, layer=layer_var,
                      state=state_var, status=status, text=box, show=show)


def main(argv=None):
    args = parse_args(argv)
    if args.periodic_svg is not None and not args.find:
        cli.fail('--periodic-svg goes with --find')
    for option, path in (('--html', args.html), ('--saturation', args.saturation),
                         ('--periodic-svg', args.periodic_svg)):
        if path is not None:
            try:
                files.check_writable(path, f'{option} file')
            except files.ModelFileError as e:
                cli.fail(str(e))
    params, ids, text = load(args)
    _, H, n_layers = lstm.sizes(params)
    if args.find:
        found = find_neurons(params, ids, text, args.top)
        print_found(found, f'{args.text} ({len(text):,} characters)')
        if args.periodic_svg:
            per, ramp = found['periodic in line'], found['line position']['best'][0]
            cells = [(l, s, k, f'R {r:.2f} at period {P}') for l, s, k, r, P in per['best'][:2]]
            cells.append((ramp[0], ramp[1], ramp[2], f'line position, r {ramp[3]:+.2f}'))
            try:
                files.write_text(args.periodic_svg, position_profile_svg(
                    params, ids, text, cells, 'Mean activation by position in the line: the best periodic cells, '
                                              'and a line-position cell'))
            except files.ModelFileError as e:
                cli.fail(str(e))
            print(f'wrote {args.periodic_svg}')
    if args.html:
        if len(ids) > args.html_chars:
            print(f'the page shows the first {args.html_chars:,} of {len(ids):,} characters (--html-chars)')
            ids, text = ids[:args.html_chars], text[:args.html_chars]
        found = find_neurons(params, ids, text, args.top)
        try:
            write_html(args.html, text, activations(params, ids), H, n_layers, found,
                       (args.layer, args.state, args.neuron))
        except files.ModelFileError as e:
            cli.fail(str(e))
        print(f'wrote {args.html}: open it in a browser')
    if args.saturation:
        sat = gate_saturation(params, ids)
        print_saturation(sat, f'{args.text} ({len(text):,} characters)')
        try:
            files.write_text(args.saturation, saturation_svg(sat, f'Gate saturation over {os.path.basename(args.text)}'
                                                                  f' ({len(text):,} characters)'))
        except files.ModelFileError as e:
            cli.fail(str(e))
        print(f'wrote {args.saturation}')
    if args.find or args.html or args.saturation:
        return 0
    acts = activations(params, ids)
    try:
        root, _ = build_viewer(text, acts, H, n_layers, args.layer, args.state, args.neuron)
        root.mainloop()
    except ImportError:
        cli.fail('tkinter is not installed: install your system\'s python3-tk package')
    except Exception as e:                              # tkinter.TclError: no display
        if type(e).__name__ == 'TclError':
            cli.fail(f'cannot open a window ({e}): run it on a desktop, or set DISPLAY')
        raise
    return 0


if __name__ == '__main__':
    cli.run(main)
