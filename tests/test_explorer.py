"""The neuron explorer: text features, the neuron ranking, the printout, the figures, the tkinter viewer, and
the HTML page in a real (headless) browser: colours, controls, its address, select to find."""

import io
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest

import _visualize
import data
from explorer import analysis, figures, viewer
import lstm
from util import cli
from util.weights import load_params, save_params

from helpers import ROOT, SAVES, assert_one_line_error, run_here, tiny_corpus


def test_features_of_a_small_text():
    text = 'KING:\nSo "we" go (now)\n'
    f = analysis.features(text)
    pos, _, _ = f['line position']
    assert list(pos[:6]) == [0, 1, 2, 3, 4, 5]  # 'KING:' then its newline
    assert pos[6] == 0 and pos[9] == 3
    speaker, _, _ = f['speaker name']
    assert speaker[:6].tolist() == [1] * 6 and speaker[6:].sum() == 0
    to_end, in_word, _ = f['to word end']
    assert to_end[6:8].tolist() == [1, 0] and not in_word[8]  # 'So'
    inside, _, _ = f['quotes/brackets']
    assert inside[text.index('"we"') : text.index('"we"') + 4].tolist() == [1, 1, 1, 1]
    assert inside[text.index('(now)') : text.index('(now)') + 5].tolist() == [1] * 5
    assert inside[text.index(' go')] == 0


def test_features_in_another_alphabet():
    text = 'ΡΩΜΑΙΟΣ:\nΤο ῥόδον δ\' ἐστί.\nКОРОЛЬ ЛИР:\nнет\n'
    f = analysis.features(text)
    speaker = f['speaker name'][0]
    assert speaker[:9].tolist() == [1] * 9 and speaker[9 : text.index('КОРОЛЬ')].sum() == 0
    assert speaker[text.index('КОРОЛЬ') : text.index('КОРОЛЬ') + 12].tolist() == [1] * 12
    to_end, in_word, _ = f['to word end']
    k = text.index('ῥόδον')
    assert to_end[k : k + 5].tolist() == [4, 3, 2, 1, 0] and not in_word[k + 5]


def test_features_of_a_text_with_crlf_line_ends_are_those_of_the_same_text_with_lf():
    """A corpus written on Windows ends its lines with '\\r\\n': its speakers' names, positions in the line and
    line lengths are found as with '\\n' alone."""
    lf = 'KING:\nSo we go now\n\nQUEEN MARGARET:\nNay, stay\nTo be\n'
    crlf = lf.replace('\n', '\r\n')
    f, g = analysis.features(lf), analysis.features(crlf)
    keep = np.array([ch != '\r' for ch in crlf])  # crlf's characters that lf has too
    for name in ('line position', 'speaker name', 'to word end'):
        np.testing.assert_array_equal(g[name][0][keep], f[name][0], err_msg=name)
    assert g['speaker name'][0].sum() == f['speaker name'][0].sum() + 2  # and each name's '\\r'
    assert analysis.line_periods(crlf) == analysis.line_periods(lf)
    chars = data.build_lookup(crlf)
    params = lstm.init_params(len(chars), 8, 1, rng=np.random.default_rng(0), dtype=np.float64)
    found = analysis.find_neurons(params, data.encode(crlf, chars), crlf, top=1)
    assert found['speaker name']['present'] and found['speaker name']['best']


def direct_ranking(params, ids, text):
    """The same statistics computed directly on the whole activation matrix, for comparison."""
    acts = analysis.activations(params, ids)
    _, H, n_layers = lstm.sizes(params)
    A = np.concatenate([acts[(n, s)] for n in range(1, n_layers + 1) for s in 'hc'], axis=1).astype(
        np.float64
    )
    f, mask, _ = analysis.features(text)['line position']
    r = np.array([np.corrcoef(A[mask, j], f[mask])[0, 1] for j in range(A.shape[1])])
    pos = f
    q = pos / 100.0
    trend = np.stack([np.ones(len(pos)), q, q * q], axis=1)

    def rss(X):
        beta = np.linalg.lstsq(X, A, rcond=None)[0]
        return ((A - X @ beta) ** 2).sum(0)

    base = rss(trend)
    R = np.zeros(A.shape[1])
    for P in range(2, analysis.line_periods(text)[1] + 1):
        X = np.concatenate(
            [trend, np.stack([np.sin(2 * np.pi * pos / P), np.cos(2 * np.pi * pos / P)], 1)], 1
        )
        R = np.maximum(R, np.sqrt(np.clip((base - rss(X)) / base, 0, 1)))
    return r, R


def test_find_neurons_matches_a_direct_computation():
    text = tiny_corpus(1500)
    chars = data.build_lookup(text)
    ids = data.encode(text, chars)
    params = lstm.init_params(len(chars), 12, 2, rng=np.random.default_rng(0), dtype=np.float64)
    found = analysis.find_neurons(params, ids, text, top=4, window=333)  # windows: the sums are streamed
    r, R = direct_ranking(params, ids, text)
    H = 12
    keys = [(n, s) for n in (1, 2) for s in 'hc']
    best = found['line position']['best']
    assert [abs(b[3]) for b in best] == pytest.approx(sorted(np.abs(r), reverse=True)[:4], rel=1e-6)
    for layer, state, k, rr, _ in best:
        assert rr == pytest.approx(r[keys.index((layer, state)) * H + k], rel=1e-6)
    per = found['periodic in line']['best']
    assert per[0][3] == pytest.approx(R.max(), rel=1e-6)
    assert found['quotes/brackets']['present'] is False
    assert 0 < found['periodic in line']['control'] < 0.5


def test_periodic_search_finds_a_known_period_and_not_a_ramp_or_a_shuffled_signal():
    rng = np.random.default_rng(0)
    lines = [rng.integers(20, 60) for _ in range(800)]
    pos = np.concatenate([np.arange(n + 1) for n in lines]).astype(float)  # positions in lines, newline last
    N = len(pos)
    wave = np.sin(2 * np.pi * pos / 7 + 1.3)
    # A long period.
    A = np.stack(
        [
            wave + 0.5 * rng.standard_normal(N),  # period 7, any phase, noisy
            np.tanh(pos / 30) + 0.05 * rng.standard_normal(N),  # a line-position ramp
            rng.permutation(wave) + 0.5 * rng.standard_normal(N),  # the wave, shuffled in time
            np.sin(2 * np.pi * pos / 23) + 0.5 * rng.standard_normal(N),
        ],
        axis=1,
    )
    search = analysis.PeriodicSearch(pos, range(2, 61))
    for t0 in range(0, N, 1000):  # streamed in blocks
        search.add(t0, A[t0 : t0 + 1000])
    found = search.result()
    R, period = found['real']
    assert period[0] == 7 and R[0] > 0.8
    assert period[3] == 23 and R[3] > 0.7  # (a long wave shares a little with the trend)
    control = found['control'][0]
    assert R[1] < 0.15 and R[2] < 0.1  # the ramp and the shuffled wave: no period
    assert control.max() < 0.1  # shuffled positions: chance level


def printed_neurons(stdout):
    """{feature: [(layer, state, neuron, 'r' or 'R', score, period or None)]} from --find's printout."""
    out, name = {}, None
    for line in stdout.splitlines():
        head = re.match(r'(\S[^:]*): ', line)
        if head and not line.startswith('neurons that follow'):
            name = head.group(1)
            out[name] = []
        row = re.match(
            r'  layer (\d+) (h|tanh\(c\)) +neuron +(\d+)   (r|R) = ([-+]?[\d.]+)(?:  period (\d+))?$', line
        )
        if row:
            layer, state, k, kind, score, period = row.groups()
            out[name].append(
                (
                    int(layer),
                    'h' if state == 'h' else 'c',
                    int(k),
                    kind,
                    score,
                    None if period is None else int(period),
                )
            )
    return out


def test_find_prints_the_neurons_it_finds():
    """The printout lists, under each feature, the neurons that find_neurons ranks first, with their scores:
    Pearson's r signed, the periodic search's partial correlation R unsigned, with its period."""
    r = run_here('_visualize.py', '--find', '--top', 2)
    assert r.returncode == 0, r.stderr
    text = open(os.path.join(SAVES, 'sample.txt'), encoding='utf-8').read()
    chars = data.load_lookup(os.path.join(SAVES, 'ShakespeareLookup.json'))
    params, _ = load_params(os.path.join(SAVES, 'ShakespeareNet.npz'))
    found = analysis.find_neurons(params, data.encode(text, chars), text, top=2)
    printed = printed_neurons(r.stdout)
    assert list(printed) == list(found)
    for name, f in found.items():
        if name == 'periodic in line':
            expected = [(n, s, k, 'R', f'{v:.3f}', P) for n, s, k, v, P in f['best']]
        else:
            expected = [(n, s, k, 'r', f'{v:+.3f}', None) for n, s, k, v, _ in f['best']]
        assert printed[name] == expected, name
        assert ('(absent from this text)' in r.stdout.split(name + ':')[1].split('\n\n')[0]) == (
            not f['present']
        )
    assert found['quotes/brackets']['present'] is False and found['speaker name']['present'] is True


@pytest.fixture
def display(monkeypatch):
    """A display for tkinter: the desktop's, or a virtual one (Xvfb) where the machine has it. Xvfb picks a free
    display number itself and writes it to a pipe once it accepts connections (-displayfd)."""
    if os.environ.get('DISPLAY'):
        yield os.environ['DISPLAY']
        return
    if shutil.which('Xvfb') is None:
        pytest.skip('no display and no Xvfb (.ci/run installs it)')
    read, write = os.pipe()
    proc = subprocess.Popen(
        ['Xvfb', '-displayfd', str(write), '-screen', '0', '1280x1024x24', '-nolisten', 'tcp'],
        pass_fds=[write],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    try:
        with os.fdopen(read) as f:
            number = f.readline().strip()  # blocks until the server is ready (or has died)
        if not number:
            pytest.skip(f'Xvfb did not start (exit status {proc.wait()})')
        monkeypatch.setenv('DISPLAY', f':{number}')
        yield f':{number}'
    finally:
        proc.terminate()
        proc.wait()


def test_tk_viewer_buttons_change_the_colours(display):
    tkinter = pytest.importorskip('tkinter')
    text = tiny_corpus(300)
    chars = data.build_lookup(text)
    ids = data.encode(text, chars)
    params = lstm.init_params(len(chars), 8, 2, rng=np.random.default_rng(0))
    acts = analysis.activations(params, ids)
    try:
        root, w = viewer.build_viewer(text, acts, 8, 2, 1, 'h', 3)
    except tkinter.TclError as e:
        pytest.skip(f'no usable display: {e}')
    try:
        j = next(k for k, ch in enumerate(text) if ch != '\n')

        def background():
            return w['text'].tag_cget(f't{j}', 'background')

        assert background() == viewer.colour(acts[(1, 'h')][j, 3])
        w['next'].invoke()
        assert w['neuron'].get() == '4'
        assert background() == viewer.colour(acts[(1, 'h')][j, 4])
        w['previous'].invoke()
        w['previous'].invoke()
        assert w['neuron'].get() == '2'
        w['layer'].set(2)
        w['state'].set('c')
        w['show']()
        assert background() == viewer.colour(acts[(2, 'c')][j, 2])
        assert 'layer 2 tanh(c) neuron 2' in w['status'].cget('text')
        w['neuron'].set('7')
        w['entry'].event_generate('<Return>')
        root.update()
        assert background() == viewer.colour(acts[(2, 'c')][j, 7])
    finally:
        root.destroy()


def test_the_analyses_report_their_progress_in_characters():
    text = tiny_corpus(2500)
    chars = data.build_lookup(text)
    ids = data.encode(text, chars)
    params = lstm.init_params(len(chars), 8, 2, rng=np.random.default_rng(0))
    cells = [(1, 'h', 0, ''), (2, 'c', 1, '')]
    for run in (
        lambda p: analysis.find_neurons(params, ids, text, window=1000, progress=p),
        lambda p: analysis.gate_saturation(params, ids, window=1000, progress=p),
        lambda p: analysis.position_profile(params, ids, text, cells, window=1000, progress=p),
        lambda p: analysis.activations(params, ids, progress=p),
    ):
        seen = []
        run(seen.append)
        assert seen[-1] == 2500 and seen == sorted(seen) and len(seen) == len(range(0, 2500, seen[0]))


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize('mode', ['--find', '--saturation'])
def test_find_and_saturation_show_progress_on_a_terminal_only(
    small_model, tmp_path, monkeypatch, capsys, mode
):
    weights, lookup, _ = small_model
    (tmp_path / 't.txt').write_text(tiny_corpus(5000), encoding='utf-8')
    args = ['--text', str(tmp_path / 't.txt'), '--weights', str(weights), '--lookup', str(lookup), mode]
    if mode == '--saturation':
        args.append(str(tmp_path / 's.svg'))
    monkeypatch.setattr(cli.Progress, 'interval', 0)  # draw at every call
    printed = {}
    for stderr in (Terminal(), io.StringIO()):
        monkeypatch.setattr(sys, 'stderr', stderr)
        assert _visualize.main(args) == 0
        printed[type(stderr)] = stderr.getvalue(), capsys.readouterr().out
    shown, out = printed[Terminal]
    assert 'of 5,000 chars' in shown and shown.rstrip(' ').endswith('\r'), shown  # drawn, then cleared
    assert printed[io.StringIO] == ('', out) and 'layer' in out  # in a file: the result only


def window_titles(display):
    """The titles of the windows on the display."""
    out = subprocess.run(['xwininfo', '-root', '-tree', '-display', display], capture_output=True, text=True)
    return re.findall(r'"([^"]*)"', out.stdout)


@pytest.mark.skipif(shutil.which('xwininfo') is None, reason='xwininfo (x11-utils) is not installed')
def test_ctrl_c_closes_the_viewer_with_one_line_and_status_130(display, small_model, tmp_path):
    pytest.importorskip('tkinter')
    weights, lookup, _ = small_model
    (tmp_path / 't.txt').write_text(tiny_corpus(300), encoding='utf-8')
    p = subprocess.Popen(
        [
            sys.executable,
            os.path.join(ROOT, '_visualize.py'),
            '--text',
            tmp_path / 't.txt',
            '--weights',
            weights,
            '--lookup',
            lookup,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while 'LSTM neuron viewer' not in window_titles(display):  # wait for the window
            assert p.poll() is None, p.communicate()
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert err.strip().splitlines() == ['_visualize.py: interrupted (Ctrl-C)'], err
    assert 'LSTM neuron viewer' not in window_titles(display)


def test_gate_saturation_of_gates_with_known_values(tmp_path):
    """Biases that pin each gate: the forget gate always open (right-saturated), the input gate always closed
    (left-saturated), the output gate at 0.5 (neither); and one cell whose input gate is open half of the time."""
    H, V = 4, 3
    params = lstm.init_params(V, H, 2, rng=np.random.default_rng(0), dtype=np.float64)
    for n in (1, 2):
        W, b = params[f'lstm{n}.W'], params[f'lstm{n}.b']
        W[:] = 0
        b[:H], b[H : 2 * H], b[2 * H : 3 * H] = -20, 20, 0  # input, forget, output
    params['lstm1.W'][1, 0] = 40  # input 1 opens input gate 0 of layer 1
    ids = np.array([0, 1] * 50)  # input 1 at half of the steps
    sat = analysis.gate_saturation(params, ids, window=7)
    for n in (1, 2):
        left, right = sat[(n, 'forget')]
        np.testing.assert_array_equal(left, 0)
        np.testing.assert_array_equal(right, 1)
        left, right = sat[(n, 'output')]
        np.testing.assert_array_equal(left, 0)
        np.testing.assert_array_equal(right, 0)
        left, right = sat[(n, 'input')]
        expected_left = np.ones(H)
        expected_right = np.zeros(H)
        if n == 1:
            expected_left[0] = expected_right[0] = 0.5
        np.testing.assert_array_equal(left, expected_left)
        np.testing.assert_array_equal(right, expected_right)
    svg = figures.saturation_svg(sat, 'test')
    assert svg.count('<circle') == 2 * 3 * H
    r = run_here(
        '_visualize.py', '--saturation', tmp_path / 's.svg', '--text', os.path.join(SAVES, 'sample.txt')
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.count('forget') == 2 and (tmp_path / 's.svg').read_text().count('<circle') == 2 * 3 * 512


def test_find_draws_the_position_profiles(tmp_path):
    r = run_here('_visualize.py', '--find', '--periodic-svg', tmp_path / 'p.svg')
    assert r.returncode == 0, r.stderr
    svg = (tmp_path / 'p.svg').read_text()
    assert svg.count('<polyline') == 3 and 'line position' in svg
    assert 'two cycles or more in a typical line' in r.stdout and 'chance' in r.stdout
    assert_one_line_error(
        run_here('_visualize.py', '--periodic-svg', tmp_path / 'q.svg'), '--periodic-svg goes with'
    )


def test_the_position_profiles_of_texts_with_little_in_them(small_model, tmp_path):
    """Lines of 6 positions or more: periodic cells and a line-position cell. Shorter lines (a text of newlines
    only, or of two characters) fit every R exactly (0 or 1), so there is no periodic cell: the line-position
    cell is drawn alone where there is one, and where there is none one line says so."""
    weights, lookup, chars = small_model
    model = ['--weights', weights, '--lookup', lookup, '--find', '--periodic-svg', tmp_path / 'p.svg']
    line = ''.join(ch for ch in chars if ch != '\n')[:7]
    for text, drawn in (((line + '\n') * 3, 3), ((line[:2] + '\n') * 3, 1), ('\n' * 8, 0), (line[:2], 0)):
        (tmp_path / 't.txt').write_text(text, encoding='utf-8')
        r = run_here('_visualize.py', '--text', tmp_path / 't.txt', *model)
        periodic = r.stdout.split('periodic in line:')[-1]
        assert ('(absent from this text)' in periodic) == (drawn < 3) and 'period 0' not in periodic, r.stdout
        if drawn:
            assert r.returncode == 0, r.stderr
            assert (tmp_path / 'p.svg').read_text().count('<polyline') == drawn
        else:
            assert_one_line_error(r, 'too short')
        (tmp_path / 'p.svg').unlink(missing_ok=True)


def test_the_analyses_on_a_model_trained_on_a_non_latin_text(tmp_path):
    """Train a small model on a Greek text through _training.py, then run every analysis on it."""
    latin, greek = 'abcdefghijklmnopqrstuvwxyz', 'αβψδεφγηιξκλμνοπϙρστθωςχυζ'
    table = str.maketrans(latin + latin.upper(), greek + greek.upper())
    lines = tiny_corpus(6000).translate(table).split('\n')
    text = ''.join(f'{("ΡΟΜΕΟ:", "ΚΙΝΓ:")[k % 2]}\n{line}\n' for k, line in enumerate(lines)) + '🎭\n'
    (tmp_path / 'g.txt').write_text(text, encoding='utf-8')
    run = tmp_path / 'run'
    r = run_here(
        '_training.py',
        '--corpus',
        tmp_path / 'g.txt',
        '--out',
        run,
        '--hidden',
        16,
        '--chunks',
        4,
        '--window',
        20,
        '--epochs',
        2,
        '--lr',
        0.01,
        '--quiet',
    )
    assert r.returncode == 0, r.stderr
    model = [
        '--weights',
        run / 'best' / 'ShakespeareNet.npz',
        '--lookup',
        run / 'best' / 'ShakespeareLookup.json',
    ]
    r = run_here(
        '_visualize.py', *model, '--text', tmp_path / 'g.txt', '--find', '--saturation', tmp_path / 's.svg'
    )
    assert r.returncode == 0, r.stderr
    assert (
        'speaker name' in r.stdout
        and "(absent from this text)" not in r.stdout.split('speaker name')[1][:120]
    )
    assert (tmp_path / 's.svg').read_text().count('<circle') == 2 * 3 * 16
    r = run_here('_evaluate.py', *model, '--corpus', tmp_path / 'g.txt', '--ngram', 3, '--compare')
    assert r.returncode == 0, r.stderr
    assert 'first letter of a word' in r.stdout
    r = run_here('_visualize.py', *model, '--text', tmp_path / 'g.txt', '--html', tmp_path / 'g.html')
    assert r.returncode == 0, r.stderr


CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')


def launch(playwright):
    """Headless Chromium, kept off the network."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            '--no-sandbox',
            '--disable-gpu',
            '--disable-quic',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
        ],
    )


def test_html_refuses_a_path_it_cannot_write(tmp_path):
    (tmp_path / 'page.html').mkdir()
    assert_one_line_error(run_here('_visualize.py', '--html', tmp_path / 'page.html'), 'is a folder')
    assert os.listdir(tmp_path) == ['page.html']  # no temporary file left behind


def read_png(raw):
    """Decode an 8-bit RGB or RGBA PNG (what Chromium writes) into an (h, w, channels) array."""
    assert raw[:8] == b'\x89PNG\r\n\x1a\n'
    pos, idat = 8, b''
    while pos < len(raw):
        n, kind = struct.unpack('>I4s', raw[pos : pos + 8])
        body = raw[pos + 8 : pos + 8 + n]
        if kind == b'IHDR':
            w, h, depth, ctype = struct.unpack('>IIBB', body[:10])
        elif kind == b'IDAT':
            idat += body
        pos += 12 + n
    assert depth == 8 and ctype in (2, 6)
    ch = 3 if ctype == 2 else 4
    rows = zlib.decompress(idat)
    out = np.zeros((h, w * ch), dtype=np.int32)
    prev = np.zeros(w * ch, dtype=np.int32)
    stride = w * ch + 1
    for y in range(h):
        ftype, line = (
            rows[y * stride],
            np.frombuffer(rows[y * stride + 1 : (y + 1) * stride], np.uint8).astype(np.int32),
        )
        cur = np.zeros(w * ch, dtype=np.int32)
        for x in range(w * ch):
            a = cur[x - ch] if x >= ch else 0
            b = prev[x]
            c = prev[x - ch] if x >= ch else 0
            if ftype == 0:
                p = 0
            elif ftype == 1:
                p = a
            elif ftype == 2:
                p = b
            elif ftype == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[x] = (line[x] + p) & 255
        out[y] = cur
        prev = cur
    return out.reshape(h, w, ch)


@pytest.mark.skipif(CHROMIUM is None, reason='Chromium is not installed (.ci/run installs it)')
def test_html_page_in_headless_chromium(tmp_path):
    playwright = pytest.importorskip('playwright.sync_api')
    page_path = tmp_path / 'neurons.html'
    r = run_here('_visualize.py', '--html', page_path, '--layer', 2, '--state', 'c', '--neuron', 5)
    assert r.returncode == 0, r.stderr
    html = page_path.read_text(encoding='utf-8')
    assert 'http://' not in html and 'https://' not in html and 'src=' not in html  # nothing remote
    with playwright.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={'width': 900, 'height': 700})
        errors = []
        page.on('pageerror', lambda e: errors.append(str(e)))
        page.goto(page_path.as_uri())
        assert page.input_value('#neuron') == '5'
        assert page.input_value('#layer') == '2' and page.input_value('#state') == 'c'

        def colours():
            return page.eval_on_selector_all('#text span', 'spans => spans.map(s => s.style.background)')

        before = colours()
        assert len(before) == len(open(os.path.join(SAVES, 'sample.txt'), encoding='utf-8').read())
        assert any(c.startswith('rgb(255') for c in before)
        page.click('#next')  # a real click on the button
        assert page.input_value('#neuron') == '6'
        after = colours()
        assert after != before
        page.click('#prev')
        assert page.input_value('#neuron') == '5' and colours() == before
        page.click('#found .pick >> nth=0')  # a neuron from the list
        assert 'neuron' in page.inner_text('#info')
        page.select_option('#state', 'h')
        assert 'h neuron' in page.inner_text('#info')
        page.evaluate("location.hash = '#layer=1&state=c&neuron=17'")  # the address, edited
        page.wait_for_function(
            "document.getElementById('info').textContent.startsWith('layer 1 tanh(c) neuron 17:')"
        )
        assert (page.input_value('#layer'), page.input_value('#state'), page.input_value('#neuron')) == (
            '1',
            'c',
            '17',
        )
        page.evaluate("location.hash = '#neuron=300'")  # the rest stays as it was
        page.wait_for_function("document.getElementById('neuron').value === '300'")
        assert page.inner_text('#info').startswith('layer 1 tanh(c) neuron 300:')
        shot = read_png(page.screenshot())
        browser.close()
    assert not errors, errors
    red = (shot[..., 0] > 200) & (shot[..., 1] < 150) & (shot[..., 2] < 150)
    assert red.sum() > 500  # the colouring is visible


TEXTS = {
    # Characters outside the Basic Multilingual Plane are one character each in the page, as in Python (a page
    # indexing UTF-16 units shifts the colours after the first emoji).
    'emoji': 'To be 🎭 or not 😀😀 to be:\nthat is 𝄞 the question — 日本 🙂!\n' * 3,
    # Text that HTML would read as the end of the script, or as a comment that hides its end; and the template's
    # own placeholders.
    'markup': 'To be <!--<script> or not </script> to be:\n</SCRIPT><!-- __TITLE__ & __DATA__ "q" \'a\' -->\n'
    * 3,
}


@pytest.mark.skipif(CHROMIUM is None, reason='Chromium is not installed (.ci/run installs it)')
@pytest.mark.parametrize('kind', list(TEXTS))
def test_html_page_colours_every_character_of_any_text(tmp_path, kind):
    """Every character of the text is shown, as it is, with its own activation, and the page runs no matter what
    the text holds."""
    playwright = pytest.importorskip('playwright.sync_api')
    text = TEXTS[kind]
    chars = data.build_lookup(text)
    params = lstm.init_params(len(chars), 16, 2, rng=np.random.default_rng(1))
    params['lstm1.W'] *= 8  # strong, varied activations
    save_params(tmp_path / 'w.npz', params)
    data.save_lookup(tmp_path / 'l.json', chars)
    (tmp_path / 't.txt').write_text(text, encoding='utf-8')
    page_path = tmp_path / 'page.html'
    r = run_here(
        '_visualize.py',
        '--weights',
        tmp_path / 'w.npz',
        '--lookup',
        tmp_path / 'l.json',
        '--text',
        tmp_path / 't.txt',
        '--html',
        page_path,
        '--layer',
        '1',
        '--state',
        'h',
        '--neuron',
        '3',
    )
    assert r.returncode == 0, r.stderr
    acts = analysis.activations(params, data.encode(text, chars))[(1, 'h')][:, 3]
    q = np.clip(np.round(acts * 127), -127, 127) / 127  # the page's 8-bit activations
    gb = np.round(255 * (1 - (q + 1) / 2)).astype(int)
    expected = ['' if ch == '\n' else f'rgb(255, {g}, {g})' for ch, g in zip(text, gb)]
    with playwright.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page()
        errors = []
        page.on('pageerror', lambda e: errors.append(str(e)))
        page.goto(page_path.as_uri())
        spans = page.eval_on_selector_all(
            '#text span', 'spans => spans.map(s => [s.textContent, s.style.background])'
        )
        title, info = page.title(), page.inner_text('#info')
        browser.close()
    assert not errors, errors
    assert [s[0] for s in spans] == list(text)  # one span per character, emoji whole
    assert [s[1] for s in spans] == expected
    assert len(set(expected)) > 10
    assert title == f'LSTM neurons ({len(text)} characters)' and info.startswith('layer 1 h neuron 3:')


def expected_selection(acts_q, a, b, thr, pre):
    """The page's rule in Python, on the page's 8-bit activations acts_q (K, N): cells on (>= thr) at every
    character of a .. b and not on in the pre characters before; ranked by the margin."""
    t = thr * 127
    lo = acts_q[:, a : b + 1].min(axis=1)
    before = acts_q[:, max(0, a - pre) : a]
    hi = before.max(axis=1) if before.shape[1] else np.full(len(acts_q), -127)
    ok = (lo >= t) & ~((pre > 0) & (a - pre >= 0) & (hi >= t))
    score = (lo - hi) / 127
    order = [int(k) for k in np.argsort(-score, kind='stable') if ok[k]]
    return order, ok.sum()


@pytest.mark.skipif(CHROMIUM is None, reason='Chromium is not installed (.ci/run installs it)')
def test_select_to_find_with_a_real_mouse_selection(tmp_path):
    playwright = pytest.importorskip('playwright.sync_api')
    page_path = tmp_path / 'neurons.html'
    r = run_here('_visualize.py', '--html', page_path)
    assert r.returncode == 0, r.stderr
    text = open(os.path.join(SAVES, 'sample.txt'), encoding='utf-8').read()
    a = text.index('OPHELIA:')
    b = a + len('OPHELIA:') - 1
    params, _ = load_params(os.path.join(SAVES, 'ShakespeareNet.npz'))
    chars = data.load_lookup(os.path.join(SAVES, 'ShakespeareLookup.json'))
    acts = analysis.activations(params, data.encode(text, chars))
    q = np.concatenate([np.clip(np.round(acts[(n, s)].T * 127), -127, 127) for n in (1, 2) for s in 'hc'])
    with playwright.sync_playwright() as p:
        browser = launch(p)
        page = browser.new_page(viewport={'width': 1000, 'height': 900})
        page.goto(page_path.as_uri())
        first = page.locator('#text span').nth(a).bounding_box()
        last = page.locator('#text span').nth(b).bounding_box()
        page.mouse.move(first['x'] + 1, first['y'] + first['height'] / 2)  # a real drag with the mouse
        page.mouse.down()
        page.mouse.move(last['x'] + last['width'] - 1, last['y'] + last['height'] / 2, steps=10)
        page.mouse.up()
        assert page.evaluate('window.getSelection().toString()') == 'OPHELIA:'
        info = page.inner_text('#selinfo')
        buttons = page.eval_on_selector_all('#selcells button', 'bs => bs.map(b => b.dataset.cell)')
        chosen = page.eval_on_selector_all('#text span.chosen', 'ss => ss.length')
        matched = page.eval_on_selector_all('#text span.match', 'ss => ss.map(s => s.textContent).join("")')
        page.click('#selcells button >> nth=0')  # shows the best cell
        shown = (page.input_value('#layer'), page.input_value('#state'), page.input_value('#neuron'))
        browser.close()
    order, count = expected_selection(q, a, b, 0.3, 3)
    H = 512
    names = [f'{k // (2 * H) + 1}{"hc"[(k // H) % 2]}{k % H}' for k in order[:5]]
    assert f'characters {a} to {b}: {count} cells' in info
    assert buttons == names and len(names) > 0
    assert chosen == len('OPHELIA:')
    assert 'HAMLET' in matched.replace('\n', '')  # the other speaker's name lights the same cells
    k = order[0]
    assert shown == (str(k // (2 * H) + 1), 'hc'[(k // H) % 2], str(k % H))
