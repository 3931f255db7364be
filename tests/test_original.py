"""Models saved by the original project (see original.py): read here from its .json format, written back in it,
converted by _convert.py, and refused with one line when damaged or mismatched, or holding values at the edge of
what a float holds. The files here are written from the format's description, by the small writer below, not by
the original's code."""

import json
import os
import re
import threading

import numpy as np
import pytest

import data
import layers
import lstm
from util import files, original
from util.weights import load_params, save_params

from helpers import assert_one_line_error, run_here, tiny_corpus
from reference import tiny_model


def original_layers(rng, V, H, n_layers):
    """Weights laid out as the original keeps them, built gate by gate: per LSTM layer w = [[Wix Wih], [Wfx Wfh],
    [Wox Woh], [Wgx Wgh]] (4H, D + H), the input's columns first, and b (4H, 1); then the output layer's
    w (V, H) and b (V, 1). Returns ([(w, b), ...], the gate blocks [(Wx, Wh)] of the first layer)."""
    out, D = [], V
    for n in range(n_layers):
        gates = [(rng.standard_normal((H, D)) * 0.6, rng.standard_normal((H, H)) * 0.6) for _ in 'ifog']
        out.append((np.block([[Wx, Wh] for Wx, Wh in gates]), rng.standard_normal((4 * H, 1)) * 0.3))
        if n == 0:
            first = gates
        D = H
    out.append((rng.standard_normal((V, H)), rng.standard_normal((V, 1))))
    return out, first


def as_json(layers_):
    """The original's file: [[w, b], ..., [[w, b]]], the output layer wrapped once more, float64 numbers."""
    *lstms, (w, b) = layers_
    return [[w_.tolist(), b_.tolist()] for w_, b_ in lstms] + [[[w.tolist(), b.tolist()]]]


def write_original(path, layers_):
    path.write_text(json.dumps(as_json(layers_)))
    return path


def original_probs(layers_, ids, temperature=1.0):
    """The original's forward pass as its description reads: column vectors, the state starting at zero,
    z = w [x; h_prev] + b, i, f, o = sigmoid, g = tanh, c = f c_prev + i g, h = o tanh(c), and the softmax of the
    logits divided by the temperature. Returns (T, V) probabilities of the next character."""
    *lstms, (wd, bd) = layers_
    V = wd.shape[0]
    state = [(np.zeros((w.shape[0] // 4, 1)), np.zeros((w.shape[0] // 4, 1))) for w, _ in lstms]
    out = []
    for ix in ids:
        x = np.zeros((V, 1))
        x[ix] = 1.0
        for n, (w, b) in enumerate(lstms):
            H = w.shape[0] // 4
            h, c = state[n]
            z = w @ np.concatenate([x, h]) + b
            i, f, o = (1 / (1 + np.exp(-z[k * H : (k + 1) * H])) for k in range(3))
            c = f * c + i * np.tanh(z[3 * H :])
            h = o * np.tanh(c)
            state[n] = (h, c)
            x = h
        z = (wd @ x + bd)[:, 0] / temperature
        p = np.exp(z - z.max())
        out.append(p / p.sum())
    return np.array(out)


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    """A tiny model of the original, float64, with an unsorted lookup table: (weights, lookup, chars, layers)."""
    d = tmp_path_factory.mktemp('original')
    chars = data.build_lookup(tiny_corpus(2000))
    np.random.default_rng(3).shuffle(chars)  # the original's own order: whatever it found first
    assert chars != sorted(chars)
    layers_, _ = original_layers(np.random.default_rng(0), len(chars), 6, 2)
    (d / 'lookup.json').write_text(json.dumps(chars))
    return write_original(d / 'net.json', layers_), d / 'lookup.json', chars, layers_


def test_read_back_equal_gate_blocks_and_columns_in_place(tmp_path):
    V, H = 5, 3
    layers_, gates = original_layers(np.random.default_rng(1), V, H, 3)
    params, meta = load_params(write_original(tmp_path / 'w.json', layers_), V=V)
    assert meta == {} and sorted(params) == ['dense.W', 'dense.b'] + [
        f'lstm{n}.{p}' for n in (1, 2, 3) for p in 'Wb'
    ]
    for n, (w, b) in enumerate(layers_[:-1], start=1):
        assert params[f'lstm{n}.W'].dtype == np.float64  # the original's values, not rounded
        np.testing.assert_array_equal(params[f'lstm{n}.W'], w.T)
        np.testing.assert_array_equal(params[f'lstm{n}.b'], b[:, 0])
    for k, (Wx, Wh) in enumerate(gates):  # rows [input; h_prev], column blocks i, f, o, g
        np.testing.assert_array_equal(params['lstm1.W'][:V, k * H : (k + 1) * H], Wx.T)
        np.testing.assert_array_equal(params['lstm1.W'][V:, k * H : (k + 1) * H], Wh.T)
    np.testing.assert_array_equal(params['dense.W'], layers_[-1][0].T)
    np.testing.assert_array_equal(params['dense.b'], layers_[-1][1][:, 0])


@pytest.mark.parametrize('V, H, n_layers', [(4, 2, 1), (7, 5, 2), (3, 4, 3)])
def test_forward_equals_the_originals_on_the_transposed_weights(tmp_path, V, H, n_layers):
    layers_, _ = original_layers(np.random.default_rng(V), V, H, n_layers)
    params, _ = load_params(write_original(tmp_path / 'w.json', layers_))
    ids = np.random.default_rng(1).integers(0, V, 12)
    expected = original_probs(layers_, ids)
    logits, _, _ = lstm.forward(params, ids[:, None], lstm.zero_state(params, 1), reference=True)
    np.testing.assert_allclose(layers.softmax(logits[:, 0]), expected, rtol=1e-12, atol=1e-15)
    fast = lstm.Predictor(params, 1)(ids[:, None])[:, 0]  # the path the scripts run
    np.testing.assert_allclose(layers.softmax(fast), expected, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(
        layers.softmax(fast, 0.5), original_probs(layers_, ids, 0.5), rtol=1e-10, atol=1e-15
    )


def test_written_in_the_originals_layout_and_read_back_exactly(tmp_path):
    layers_, _ = original_layers(np.random.default_rng(2), 6, 4, 2)
    params = original.read(write_original(tmp_path / 'a.json', layers_))
    original.write(tmp_path / 'b.json', params)
    assert json.loads((tmp_path / 'b.json').read_text()) == as_json(layers_)
    params32 = lstm.init_params(6, 4, 2, rng=np.random.default_rng(0))  # float32, as trained here
    original.write(tmp_path / 'c.json', params32)
    back, _ = load_params(tmp_path / 'c.json')
    for k in params32:  # every float32 value is exact in float64
        assert back[k].dtype == np.float32
        np.testing.assert_array_equal(back[k], params32[k])


def test_a_json_file_under_another_name_is_read_by_its_content(tmp_path, model):
    weights, _, chars, layers_ = model
    (tmp_path / 'ShakespeareNet-07-loss_1.2-acc_0.6.nn').write_bytes(weights.read_bytes())
    (tmp_path / 'weights.bin').write_bytes(weights.read_bytes())
    (tmp_path / 'bom.json').write_bytes(b'\xef\xbb\xbf' + weights.read_bytes())  # saved by an editor
    for path in (
        tmp_path / 'ShakespeareNet-07-loss_1.2-acc_0.6.nn',
        tmp_path / 'weights.bin',
        tmp_path / 'bom.json',
    ):
        params, _ = load_params(path, V=len(chars))
        np.testing.assert_array_equal(params['dense.W'], layers_[-1][0].T)


def test_sample_greedy_follows_the_originals_model_and_lookup(model):
    weights, lookup, chars, layers_ = model
    r = run_here(
        '_sample.py',
        '--weights',
        weights,
        '--lookup',
        lookup,
        '--temperature',
        0,
        '--length',
        25,
        '--start',
        'to be',
    )
    assert r.returncode == 0, r.stderr
    text = 'to be'
    for _ in range(25):  # greedy by the original's own forward pass
        p = original_probs(layers_, [chars.index(ch) for ch in text])[-1]
        text += chars[int(np.argmax(p))]
    assert r.stdout.rstrip('\n') == text.rstrip('\n')


def test_evaluate_and_explore_the_originals_model(model, tmp_path):
    weights, lookup, chars, layers_ = model
    text = tiny_corpus(300, seed=4)
    (tmp_path / 't.txt').write_text(text, encoding='utf-8')
    r = run_here('_evaluate.py', '--weights', weights, '--lookup', lookup, '--text', tmp_path / 't.txt')
    assert r.returncode == 0, r.stderr
    ids = [chars.index(ch) for ch in text]
    p = original_probs(layers_, ids[:-1])
    expected = -np.mean(np.log(p[np.arange(len(ids) - 1), ids[1:]]))
    assert abs(float(r.stdout.split('loss ')[1].split()[0]) - expected) <= 5.1e-5  # printed to 4 places
    r = run_here(
        '_visualize.py',
        '--weights',
        weights,
        '--lookup',
        lookup,
        '--text',
        tmp_path / 't.txt',
        '--html',
        tmp_path / 'n.html',
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / 'n.html').stat().st_size > 1000


def damaged(kind):
    """The tiny model's JSON value with one thing wrong."""
    good, _ = original_layers(np.random.default_rng(0), 4, 2, 2)
    j = as_json(good)
    if kind == 'a dict':
        return {'layers': j}
    if kind == 'the optimizer':
        return {'n': 4, 'cache': j[:-1] + j[-1]}
    if kind == 'one entry':
        return j[-1:]
    if kind == 'output not wrapped':
        return j[:-1] + [j[-1][0]]
    if kind == 'a triple':
        j[0].append([[0.0]])
    elif kind == 'ragged':
        j[0][0][1] = j[0][0][1][:-1]
    elif kind == 'a string':
        j[1][0][0][0] = '0.5'
    elif kind == 'true':
        j[1][0][0][0] = True
    elif kind == 'null':
        j[0][1][0][0] = None
    elif kind == 'too deep':
        j[0][0][0][0] = [0.5]
    elif kind == 'flat bias':
        j[0][1] = [row[0] for row in j[0][1]]
    elif kind == 'rows not 4H':
        j[0][0] = j[0][0][:-1]
        j[0][1] = j[0][1][:-1]
    elif kind == 'layer 2 wider':
        j[1] = [[[0.1] * 5 for _ in range(12)], [[0.0]] * 12]
    elif kind == 'bias short':
        j[1][1] = j[1][1][:-1]
    elif kind == 'output V':
        j[-1][0][0] = j[-1][0][0][:-1]
    elif kind == 'output H':
        j[-1][0][0] = [row + [0.0] for row in j[-1][0][0]]
    elif kind == 'empty row':
        j[0][0][0] = []
    return j


@pytest.mark.parametrize(
    'kind, words',
    [
        ('a dict', 'not a model saved by the original'),
        ('the optimizer', "holds the original's optimizer state"),
        ('one entry', 'not a model saved by the original'),
        ('output not wrapped', 'wrapped once more'),
        ('a triple', "layer 1 should be a pair [w, b]"),
        ('ragged', "layer 1's w is ragged"),
        ('a string', "layer 2's w holds something that is not a number"),
        ('true', 'not a number'),
        ('null', "layer 1's b holds something that is not a number"),
        ('too deep', 'not a number'),
        ('flat bias', "layer 1's b should be a list of rows"),
        ('rows not 4H', 'not (4H, D + H)'),
        ('layer 2 wider', 'layer 2 has 3 units where layer 1 has 2'),
        ('bias short', "layer 2's b has shape (7, 1), expected (8, 1)"),
        ('output V', "the output layer's w has shape (3, 2), expected (4, 2)"),
        ('output H', "the output layer's w has shape (4, 3), expected (4, 2)"),
        ('empty row', 'non-empty list'),
    ],
)
def test_damaged_files_are_refused(tmp_path, kind, words):
    path = tmp_path / 'w.json'
    path.write_text(json.dumps(damaged(kind)))
    with pytest.raises(files.ModelFileError, match=re.escape(str(path)) + '.*' + re.escape(words)):
        load_params(path)


@pytest.mark.parametrize(
    'raw, words',
    [
        ('', 'not valid JSON'),
        ('[[[[0.5,', 'not valid JSON'),
        ('\xff', 'not valid JSON'),
        ('NaN', 'not a model'),
        ('"weights"', 'not a model'),
        ('[]', 'not a model'),
    ],
)
def test_files_that_are_not_json_models_are_refused(tmp_path, raw, words):
    (tmp_path / 'w.json').write_bytes(raw.encode('latin-1'))
    with pytest.raises(files.ModelFileError, match=words):
        load_params(tmp_path / 'w.json')


@pytest.mark.parametrize('number', ['NaN', 'Infinity', '-Infinity', '1e999', '1' + '0' * 400])
def test_non_finite_numbers_are_refused(tmp_path, number):
    text = json.dumps(as_json(original_layers(np.random.default_rng(0), 4, 2, 1)[0]))
    first = text[4:].split(',')[0]  # the first number of layer 1's w
    (tmp_path / 'w.json').write_text(text.replace(first, number, 1))
    with pytest.raises(files.ModelFileError, match="layer 1's w holds NaN or infinite values"):
        load_params(tmp_path / 'w.json')


def test_scripts_refuse_mismatched_and_swapped_files_with_one_line(model, tmp_path, small_model):
    weights, lookup, chars, _ = model
    npz, npz_lookup, _ = small_model
    (tmp_path / 'short.json').write_text(json.dumps(chars[:-1]))
    r = run_here('_sample.py', '--weights', weights, '--lookup', tmp_path / 'short.json', '--length', 5)
    assert_one_line_error(r, f'is for {len(chars)} characters but the lookup table has {len(chars) - 1}')
    r = run_here('_sample.py', '--weights', lookup, '--lookup', lookup, '--length', 5)
    assert_one_line_error(r, 'holds a lookup table (a list of characters), not a model\'s weights')
    r = run_here('_evaluate.py', '--weights', weights, '--lookup', weights)
    assert_one_line_error(r, 'lookup table', 'holds a model\'s weights (lists of numbers), not characters')
    r = run_here('_visualize.py', '--weights', weights, '--lookup', npz, '--find')
    assert_one_line_error(r, 'lookup table', 'is an .npz file (weights?)')
    (tmp_path / 'w.json').write_text(json.dumps(damaged('ragged')))
    r = run_here('_visualize.py', '--weights', tmp_path / 'w.json', '--lookup', lookup, '--find')
    assert_one_line_error(r, "layer 1's w is ragged")


def test_convert_round_trips_are_exact_both_ways(tmp_path, model, small_model):
    npz, _, _ = small_model
    r = run_here('_convert.py', npz, tmp_path / 'a.json')
    assert r.returncode == 0, r.stderr
    assert 'wrote' in r.stdout and '2 LSTM layers of 16 units' in r.stdout
    assert run_here('_convert.py', tmp_path / 'a.json', tmp_path / 'b.npz').returncode == 0
    before, after = np.load(npz), np.load(tmp_path / 'b.npz')
    for k in ('lstm1.W', 'lstm1.b', 'lstm2.W', 'lstm2.b', 'dense.W', 'dense.b'):
        assert after[k].dtype == before[k].dtype == np.float32  # came back as it went out
        np.testing.assert_array_equal(after[k], before[k])
    weights = model[0]  # the original's float64 model, there and back
    assert run_here('_convert.py', weights, tmp_path / 'c.npz').returncode == 0
    assert np.load(tmp_path / 'c.npz')['lstm1.W'].dtype == np.float64
    assert run_here('_convert.py', tmp_path / 'c.npz', tmp_path / 'd.json').returncode == 0
    assert json.loads((tmp_path / 'd.json').read_text()) == json.loads(weights.read_text())
    assert (tmp_path / 'd.json').read_text() == weights.read_text()  # json.dump's own layout, too
    assert run_here('_convert.py', weights, tmp_path / 'e.npz', '--float32').returncode == 0
    e = np.load(tmp_path / 'e.npz')['lstm1.W']
    assert e.dtype == np.float32
    np.testing.assert_array_equal(e, np.load(tmp_path / 'c.npz')['lstm1.W'].astype(np.float32))


def test_convert_refuses_an_existing_output_unless_forced(tmp_path, small_model):
    npz, _, _ = small_model
    (tmp_path / 'a.json').write_text('keep me')
    r = run_here('_convert.py', npz, tmp_path / 'a.json')
    assert_one_line_error(r, 'a.json exists', '--force')
    assert (tmp_path / 'a.json').read_text() == 'keep me'
    r = run_here('_convert.py', npz, tmp_path / 'a.json', '--force')
    assert r.returncode == 0, r.stderr
    assert load_params(tmp_path / 'a.json')[0]['dense.W'].shape == (16, np.load(npz)['dense.W'].shape[1])


@pytest.mark.parametrize(
    'make, out, words',
    [
        (lambda d: d / 'missing.npz', 'o.json', 'does not exist'),
        (lambda d: d / 'lookup.json', 'o.npz', 'holds a lookup table'),
        (lambda d: d / 'other.npz', 'o.json', 'has no array dense.W: it is not a model of this repo'),
        (lambda d: d / 'text.txt', 'o.npz', 'the input should end in .npz'),
        (lambda d: d / 'w.npz', 'o.npz', '.npz converts to .json'),
        (lambda d: d / 'w.json', 'o.txt', '.json converts to .npz'),
        (lambda d: d / 'w.npz', 'o.json --float32', '--float32 is for .json -> .npz'),
        (lambda d: d / 'bad.json', 'o.npz', 'is not valid JSON'),
    ],
)
def test_convert_refuses_what_is_not_a_model_with_one_line(tmp_path, small_model, make, out, words):
    npz, lookup, _ = small_model
    (tmp_path / 'w.npz').write_bytes(npz.read_bytes())
    (tmp_path / 'lookup.json').write_bytes(lookup.read_bytes())
    np.savez(tmp_path / 'other.npz', a=np.zeros(3))
    (tmp_path / 'text.txt').write_text('hello')
    (tmp_path / 'bad.json').write_text('[[[[0.1, ')
    assert run_here('_convert.py', tmp_path / 'w.npz', tmp_path / 'w.json').returncode == 0
    out, *extra = out.split()
    r = run_here('_convert.py', make(tmp_path), tmp_path / out, *extra)
    assert_one_line_error(r, words)
    assert not (tmp_path / out).exists()


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='needs named pipes')
def test_a_json_model_from_a_named_pipe_is_read_once(tmp_path, model):
    weights, _, chars, layers_ = model
    fifo = tmp_path / 'net.json'
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(weights.read_bytes()))
    writer.start()
    params, _ = load_params(fifo, V=len(chars))
    writer.join()
    np.testing.assert_array_equal(params['lstm2.W'], layers_[1][0].T)


def test_convert_with_lookup_stores_the_alphabet_so_that_another_table_is_refused(tmp_path, model):
    weights, lookup, chars, _ = model
    r = run_here('_convert.py', weights, tmp_path / 'w.npz', '--lookup', lookup)
    assert r.returncode == 0, r.stderr
    _, meta = load_params(tmp_path / 'w.npz')
    assert meta['alphabet'] == chars  # in the original's own order
    swapped = chars[1:2] + chars[:1] + chars[2:]
    (tmp_path / 'swapped.json').write_text(json.dumps(swapped))
    r = run_here(
        '_sample.py', '--weights', tmp_path / 'w.npz', '--lookup', tmp_path / 'swapped.json', '--length', 5
    )
    assert_one_line_error(r, 'trained with another lookup table')
    (tmp_path / 'short.json').write_text(json.dumps(chars[:-1]))
    r = run_here('_convert.py', weights, tmp_path / 'x.npz', '--lookup', tmp_path / 'short.json')
    assert_one_line_error(r, f'is for {len(chars)} characters but the lookup table has {len(chars) - 1}')
    assert not (tmp_path / 'x.npz').exists()


def huge_model(tmp_path, value):
    """A tiny model in the original's format (as original.write writes it), every value a float32 value but one
    dense weight set to value."""
    params = {
        k: v.astype(np.float32).astype(np.float64)
        for k, v in tiny_model(np.random.default_rng(0), V=5, H=3).items()
    }
    params['dense.W'][0, 0] = value
    path = tmp_path / 'huge.json'
    original.write(path, params)
    return path


def test_a_float64_value_beyond_float32_keeps_float64_quietly(tmp_path):
    path = huge_model(tmp_path, 1e308)
    with np.errstate(over='raise'):  # own_dtype's probe must not overflow (it warned)
        params, _ = load_params(path)
    assert params['dense.W'].dtype == np.float64 and params['dense.W'][0, 0] == 1e308


@pytest.mark.parametrize('value', [1e308, -3.5e38])
def test_loading_as_float32_refuses_a_value_float32_cannot_hold(tmp_path, value):
    path = huge_model(tmp_path, value)
    with pytest.raises(files.ModelFileError, match='too large for float32'):
        load_params(path, dtype='float32')
    npz = tmp_path / 'huge.npz'  # the same from an .npz saved in float64
    save_params(npz, load_params(path)[0])
    with pytest.raises(files.ModelFileError, match='dense.W holds values too large for float32'):
        load_params(npz, dtype='float32')


def test_convert_float32_refuses_rather_than_write_an_unloadable_npz(tmp_path):
    path = huge_model(tmp_path, 1e308)
    out = tmp_path / 'out.npz'
    r = run_here('_convert.py', path, out, '--float32')
    assert_one_line_error(r, 'too large for float32', 'float64')
    assert not os.path.exists(out)
    r = run_here('_convert.py', path, out)  # kept in float64: written, and loads back equal
    assert r.returncode == 0 and r.stderr == '', r.stderr
    assert load_params(out)[0]['dense.W'][0, 0] == 1e308
    assert json.loads(path.read_text())[-1][0][0][0][0] == 1e308


def test_weights_whose_sums_can_overflow_are_refused_with_one_line(tmp_path):
    params = {k: v.astype(np.float64) for k, v in tiny_model(np.random.default_rng(1), V=5, H=8).items()}
    for k in ('lstm1.W', 'lstm2.W'):  # h W: inf - inf = NaN in h and in the logits (it sampled
        params[k] = np.sign(params[k]) * 1e308  # character 0 over and over, with warnings on stderr)
    path = tmp_path / 'overflow.json'
    original.write(path, params)
    lookup = tmp_path / 'lookup.json'
    lookup.write_text(json.dumps(list('abcde')))
    for name, *args in (('_sample.py', '--length', 5, '--start', 'ab'), ('_evaluate.py', '--text', lookup)):
        r = run_here(name, '--weights', path, '--lookup', lookup, *args)
        assert_one_line_error(r, 'lstm1.W', 'can overflow float64')
    for k in ('lstm1.W', 'lstm2.W'):  # 1e304: the sums fit, the model loads
        params[k] = np.sign(params[k]) * 1e304
    original.write(path, params)
    assert load_params(path)[0]['lstm2.W'].max() == 1e304
