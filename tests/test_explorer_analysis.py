"""The neuron explorer's analyses (explorer/analysis.py, figures.py): text features, the neuron ranking
against a direct computation, the periodic search, gate saturation of gates with known values, the activations
(the naive LSTM's) and their colours, and progress reported in characters."""

import os

import numpy as np
import pytest

import data
from explorer import analysis, figures
import lstm
from util.weights import load_params

from helpers import SAVES, run_here, tiny_corpus
from reference import reference_model


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
    """A corpus written on Windows ends its lines with '\\r\\n': its speakers' names, positions in the line
    and line lengths are found as with '\\n' alone."""
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


def test_gate_saturation_of_gates_with_known_values(tmp_path):
    """Biases that pin each gate: the forget gate always open (right-saturated), the input gate always closed
    (left-saturated), the output gate at 0.5 (neither); and one cell whose input gate is open half of the
    time."""
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


def test_visualize_activations_and_colours(small_model):
    from explorer import analysis
    from explorer import viewer

    weights, lookup, chars = small_model
    params, _ = load_params(weights)
    ids = data.encode('to be or not', chars)
    acts = analysis.activations(params, ids)
    assert set(acts) == {(1, 'h'), (1, 'c'), (2, 'h'), (2, 'c')}
    assert acts[(2, 'h')].shape == (len(ids), 16)
    # the activations are the naive LSTM's h and tanh(c) of every step
    _, reference = reference_model(params, ids[:, None])
    for n in (1, 2):
        np.testing.assert_allclose(acts[(n, 'h')], reference[n - 1].h[:, 0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(acts[(n, 'c')], np.tanh(reference[n - 1].c[:, 0]), rtol=1e-5, atol=1e-6)
    assert viewer.colour(-1) == '#ffffff'
    assert viewer.colour(1) == '#ff0000'
    assert viewer.colour(5) == '#ff0000'
    assert viewer.colour(0) == '#ff8080'
