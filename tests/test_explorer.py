"""The neuron explorer: text features, the neuron ranking, the printout, the figures and the tkinter viewer (the
HTML page: test_page.py)."""
import io
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import _visualize
from explorer import analysis
from util import cli
import data
from explorer import figures
from util import files
import lstm
from explorer import viewer
from conftest import ROOT
from helpers import SAVES, assert_one_line_error, script, tiny_corpus


def test_features_of_a_small_text():
    text = 'KING:\nSo "we" go (now)\n'
    f = analysis.features(text)
    pos, _, _ = f['line position']
    assert list(pos[:6]) == [0, 1, 2, 3, 4, 5]         # 'KING:' then its newline
    assert pos[6] == 0 and pos[9] == 3
    speaker, _, _ = f['speaker name']
    assert speaker[:6].tolist() == [1] * 6 and speaker[6:].sum() == 0
    to_end, in_word, _ = f['to word end']
    assert to_end[6:8].tolist() == [1, 0] and not in_word[8]   # 'So'
    inside, _, _ = f['quotes/brackets']
    assert inside[text.index('"we"'):text.index('"we"') + 4].tolist() == [1, 1, 1, 1]
    assert inside[text.index('(now)'):text.index('(now)') + 5].tolist() == [1] * 5
    assert inside[text.index(' go')] == 0


def test_features_in_another_alphabet():
    text = 'ΡΩΜΑΙΟΣ:\nΤο ῥόδον δ\' ἐστί.\nКОРОЛЬ ЛИР:\nнет\n'
    f = analysis.features(text)
    speaker = f['speaker name'][0]
    assert speaker[:9].tolist() == [1] * 9 and speaker[9:text.index('КОРОЛЬ')].sum() == 0
    assert speaker[text.index('КОРОЛЬ'):text.index('КОРОЛЬ') + 12].tolist() == [1] * 12
    to_end, in_word, _ = f['to word end']
    k = text.index('ῥόδον')
    assert to_end[k:k + 5].tolist() == [4, 3, 2, 1, 0] and not in_word[k + 5]


def test_features_of_a_text_with_crlf_line_ends_are_those_of_the_same_text_with_lf():
    """A corpus written on Windows ends its lines with '\\r\\n': its speakers' names, positions in the line and
    line lengths are found as with '\\n' alone."""
    lf = 'KING:\nSo we go now\n\nQUEEN MARGARET:\nNay, stay\nTo be\n'
    crlf = lf.replace('\n', '\r\n')
    f, g = analysis.features(lf), analysis.features(crlf)
    keep = np.array([ch != '\r' for ch in crlf])       # crlf's characters that lf has too
    for name in ('line position', 'speaker name', 'to word end'):
        np.testing.assert_array_equal(g[name][0][keep], f[name][0], err_msg=name)
    assert g['speaker name'][0].sum() == f['speaker name'][0].sum() + 2     # and each name's '\\r'
    assert analysis.line_periods(crlf) == analysis.line_periods(lf)
    chars = data.build_lookup(crlf)
    params = lstm.init_params(len(chars), 8, 1, rng=np.random.default_rng(0), dtype=np.float64)
    found = analysis.find_neurons(params, data.encode(crlf, chars), crlf, top=1)
    assert found['speaker name']['present'] and found['speaker name']['best']


def direct_ranking(params, ids, text):
    """The same statistics computed directly on the whole activation matrix, for comparison."""
    acts = analysis.activations(params, ids)
    _, H, n_layers = lstm.sizes(params)
    A = np.concatenate([acts[(n, s)] for n in range(1, n_layers + 1) for s in 'hc'], axis=1).astype(np.float64)
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
        X = np.concatenate([trend, np.stack([np.sin(2 * np.pi * pos / P), np.cos(2 * np.pi * pos / P)], 1)], 1)
        R = np.maximum(R, np.sqrt(np.clip((base - rss(X)) / base, 0, 1)))
    return r, R


def test_find_neurons_matches_a_direct_computation():
    text = tiny_corpus(1500)
    chars = data.build_lookup(text)
    ids = data.encode(text, chars)
    params = lstm.init_params(len(chars), 12, 2, rng=np.random.default_rng(0), dtype=np.float64)
    found = analysis.find_neurons(params, ids, text, top=4, window=333)    # windows: the sums are streamed
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
    pos = np.concatenate([np.arange(n + 1) for n in lines]).astype(float)   # positions in lines, newline last
    N = len(pos)
    wave = np.sin(2 * np.pi * pos / 7 + 1.3)
    A = np.stack([wave + 0.5 * rng.standard_normal(N),                        # period 7, any phase, noisy
                  np.tanh(pos / 30) + 0.05 * rng.standard_normal(N),         # a line-position ramp
                  rng.permutation(wave) + 0.5 * rng.standard_normal(N),      # the wave, shuffled in time
                  np.sin(2 * np.pi * pos / 23) + 0.5 * rng.standard_normal(N)], axis=1)   # a long period
    search = analysis.PeriodicSearch(pos, range(2, 61))
    for t0 in range(0, N, 1000):                        # streamed in blocks
        search.add(t0, A[t0:t0 + 1000])
    found = search.result()
    R, period = found['real']
    assert period[0] == 7 and R[0] > 0.8
    assert period[3] == 23 and R[3] > 0.7              # (a long wave shares a little with the trend)
    control = found['control'][0]
    assert R[1] < 0.15 and R[2] < 0.1                   # the ramp and the shuffled wave: no period
    assert control.max() < 0.1                          # shuffled positions: chance level


def printed_neurons(stdout):
    """{feature: [(layer, state, neuron, 'r' or 'R', score, period or None)]} from --find's printout."""
    out, name = {}, None
    for line in stdout.splitlines():
        head = re.match(r'(\S[^:]*): ', line)
        if head and not line.startswith('neurons that follow'):
            name = head.group(1)
            out[name] = []
        row = re.match(r'  layer (\d+) (h|tanh\(c\)) +neuron +(\d+)   (r|R) = ([-+]?[\d.]+)(?:  period (\d+))?$', line)
        if row:
            layer, state, k, kind, score, period = row.groups()
            out[name].append((int(layer), 'h' if state == 'h' else 'c', int(k), kind, score,
                              None if period is None else int(period)))
    return out


def test_find_prints_the_neurons_it_finds():
    """The printout lists, under each feature, the neurons that find_neurons ranks first, with their scores:
    Pearson's r signed, the periodic search's partial correlation R unsigned, with its period."""
    r = script('_visualize.py', '--find', '--top', 2)
    assert r.returncode == 0, r.stderr
    text = open(os.path.join(SAVES, 'sample.txt'), encoding='utf-8').read()
    chars = data.load_lookup(os.path.join(SAVES, 'ShakespeareLookup.json'))
    params, _ = files.load_params(os.path.join(SAVES, 'ShakespeareNet.npz'))
    found = analysis.find_neurons(params, data.encode(text, chars), text, top=2)
    printed = printed_neurons(r.stdout)
    assert list(printed) == list(found)
    for name, f in found.items():
        if name == 'periodic in line':
            expected = [(l, s, k, 'R', f'{v:.3f}', P) for l, s, k, v, P in f['best']]
        else:
            expected = [(l, s, k, 'r', f'{v:+.3f}', None) for l, s, k, v, _ in f['best']]
        assert printed[name] == expected, name
        assert ('(absent from this text)' in r.stdout.split(name + ':')[1].split('\n\n')[0]) == (not f['present'])
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
    proc = subprocess.Popen(['Xvfb', '-displayfd', str(write), '-screen', '0', '1280x1024x24', '-nolisten', 'tcp'],
                            pass_fds=[write], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    try:
        with os.fdopen(read) as f:
            number = f.readline().strip()              # blocks until the server is ready (or has died)
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
    for run in (lambda p: analysis.find_neurons(params, ids, text, window=1000, progress=p),
                lambda p: analysis.gate_saturation(params, ids, window=1000, progress=p),
                lambda p: analysis.position_profile(params, ids, text, cells, window=1000, progress=p),
                lambda p: analysis.activations(params, ids, progress=p)):
        seen = []
        run(seen.append)
        assert seen[-1] == 2500 and seen == sorted(seen) and len(seen) == len(range(0, 2500, seen[0]))


class Terminal(io.StringIO):
    def isatty(self):
        return True


@pytest.mark.parametrize('mode', ['--find', '--saturation'])
def test_find_and_saturation_show_progress_on_a_terminal_only(small_model, tmp_path, monkeypatch, capsys, mode):
    weights, lookup, _ = small_model
    (tmp_path / 't.txt').write_text(tiny_corpus(5000), encoding='utf-8')
    args = ['--text', str(tmp_path / 't.txt'), '--weights', str(weights), '--lookup', str(lookup), mode]
    if mode == '--saturation':
        args.append(str(tmp_path / 's.svg'))
    monkeypatch.setattr(cli.Progress, 'interval', 0)   # draw at every call
    printed = {}
    for stderr in (Terminal(), io.StringIO()):
        monkeypatch.setattr(sys, 'stderr', stderr)
        assert _visualize.main(args) == 0
        printed[type(stderr)] = stderr.getvalue(), capsys.readouterr().out
    shown, out = printed[Terminal]
    assert 'of 5,000 chars' in shown and shown.rstrip(' ').endswith('\r'), shown    # drawn, then cleared
    assert printed[io.StringIO] == ('', out) and 'layer' in out                  # in a file: the result only


def window_titles(display):
    """The titles of the windows on the display."""
    out = subprocess.run(['xwininfo', '-root', '-tree', '-display', display], capture_output=True, text=True)
    return re.findall(r'"([^"]*)"', out.stdout)


@pytest.mark.skipif(shutil.which('xwininfo') is None, reason='xwininfo (x11-utils) is not installed')
def test_ctrl_c_closes_the_viewer_with_one_line_and_status_130(display, small_model, tmp_path):
    pytest.importorskip('tkinter')
    weights, lookup, _ = small_model
    (tmp_path / 't.txt').write_text(tiny_corpus(300), encoding='utf-8')
    p = subprocess.Popen([sys.executable, os.path.join(ROOT, '_visualize.py'), '--text', tmp_path / 't.txt',
                          '--weights', weights, '--lookup', lookup], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        while 'LSTM neuron viewer' not in window_titles(display):       # wait for the window
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
        b[:H], b[H:2 * H], b[2 * H:3 * H] = -20, 20, 0   # input, forget, output
    params['lstm1.W'][1, 0] = 40                        # input 1 opens input gate 0 of layer 1
    ids = np.array([0, 1] * 50)                         # input 1 at half of the steps
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
    r = script('_visualize.py', '--saturation', tmp_path / 's.svg', '--text', os.path.join(SAVES, 'sample.txt'))
    assert r.returncode == 0, r.stderr
    assert r.stdout.count('forget') == 2 and (tmp_path / 's.svg').read_text().count('<circle') == 2 * 3 * 512


def test_find_draws_the_position_profiles(tmp_path):
    r = script('_visualize.py', '--find', '--periodic-svg', tmp_path / 'p.svg')
    assert r.returncode == 0, r.stderr
    svg = (tmp_path / 'p.svg').read_text()
    assert svg.count('<polyline') == 3 and 'line position' in svg
    assert 'two cycles or more in a typical line' in r.stdout and 'chance' in r.stdout
    assert_one_line_error(script('_visualize.py', '--periodic-svg', tmp_path / 'q.svg'), '--periodic-svg goes with')


def test_the_position_profiles_of_texts_with_little_in_them(small_model, tmp_path):
    """Lines of 6 positions or more: periodic cells and a line-position cell. Shorter lines (a text of newlines
    only, or of two characters) fit every R exactly (0 or 1), so there is no periodic cell: the line-position
    cell is drawn alone where there is one, and where there is none one line says so."""
    weights, lookup, chars = small_model
    model = ['--weights', weights, '--lookup', lookup, '--find', '--periodic-svg', tmp_path / 'p.svg']
    line = ''.join(ch for ch in chars if ch != '\n')[:7]
    for text, drawn in (((line + '\n') * 3, 3), ((line[:2] + '\n') * 3, 1), ('\n' * 8, 0), (line[:2], 0)):
        (tmp_path / 't.txt').write_text(text, encoding='utf-8')
        r = script('_visualize.py', '--text', tmp_path / 't.txt', *model)
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
    r = script('_training.py', '--corpus', tmp_path / 'g.txt', '--out', run, '--hidden', 16, '--chunks', 4,
               '--window', 20, '--epochs', 2, '--lr', 0.01, '--quiet')
    assert r.returncode == 0, r.stderr
    model = ['--weights', run / 'best' / 'ShakespeareNet.npz', '--lookup', run / 'best' / 'ShakespeareLookup.json']
    r = script('_visualize.py', *model, '--text', tmp_path / 'g.txt', '--find', '--saturation', tmp_path / 's.svg')
    assert r.returncode == 0, r.stderr
    assert 'speaker name' in r.stdout and "(absent from this text)" not in r.stdout.split('speaker name')[1][:120]
    assert (tmp_path / 's.svg').read_text().count('<circle') == 2 * 3 * 16
    r = script('_evaluate.py', *model, '--corpus', tmp_path / 'g.txt', '--ngram', 3, '--compare')
    assert r.returncode == 0, r.stderr
    assert 'first letter of a word' in r.stdout
    r = script('_visualize.py', *model, '--text', tmp_path / 'g.txt', '--html', tmp_path / 'g.html')
    assert r.returncode == 0, r.stderr
