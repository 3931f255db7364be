"""Models saved by the original project (see original.py): read here from its .json format, with its gate
blocks and columns in place and its forward pass, written back in it exactly, found by their content whatever
their name, and refused with one line when damaged or holding values at the edge of what a float holds. The
files are written from the format's description (original_files.py); the scripts on them are in
test_original_scripts.py."""

import json
import os
import re
import threading

import numpy as np
import pytest

import layers
import lstm
from util import files, original
from util.weights import load_params, save_params

from original_files import as_json, damaged, huge_model, original_layers, original_probs, write_original


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


def test_a_json_file_under_another_name_is_read_by_its_content(tmp_path, original_model):
    weights, _, chars, layers_ = original_model
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


@pytest.mark.skipif(not hasattr(os, 'mkfifo'), reason='needs named pipes')
def test_a_json_model_from_a_named_pipe_is_read_once(tmp_path, original_model):
    weights, _, chars, layers_ = original_model
    fifo = tmp_path / 'net.json'
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_bytes(weights.read_bytes()))
    writer.start()
    params, _ = load_params(fifo, V=len(chars))
    writer.join()
    np.testing.assert_array_equal(params['lstm2.W'], layers_[1][0].T)


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
