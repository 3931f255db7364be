"""Cases found by trying the original's format, _convert.py and the samplers as a hostile user would: values at
the edge of what a float holds."""
import json
import os

import numpy as np
import pytest

from util import files
from util import original
from helpers import assert_one_line_error, script, tiny_model


def huge_model(tmp_path, value):
    """A tiny model in the original's format (as original.write writes it), every value a float32 value but one
    dense weight set to value."""
    params = {k: v.astype(np.float32).astype(np.float64)
              for k, v in tiny_model(np.random.default_rng(0), V=5, H=3).items()}
    params['dense.W'][0, 0] = value
    path = tmp_path / 'huge.json'
    original.write(path, params)
    return path


def test_a_float64_value_beyond_float32_keeps_float64_quietly(tmp_path):
    path = huge_model(tmp_path, 1e308)
    with np.errstate(over='raise'):                     # own_dtype's probe must not overflow (it warned)
        params, _ = files.load_params(path)
    assert params['dense.W'].dtype == np.float64 and params['dense.W'][0, 0] == 1e308


@pytest.mark.parametrize('value', [1e308, -3.5e38])
def test_loading_as_float32_refuses_a_value_float32_cannot_hold(tmp_path, value):
    path = huge_model(tmp_path, value)
    with pytest.raises(files.ModelFileError, match='too large for float32'):
        files.load_params(path, dtype='float32')
    npz = tmp_path / 'huge.npz'                         # the same from an .npz saved in float64
    files.save_params(npz, files.load_params(path)[0])
    with pytest.raises(files.ModelFileError, match='dense.W holds values too large for float32'):
        files.load_params(npz, dtype='float32')


def test_convert_float32_refuses_rather_than_write_an_unloadable_npz(tmp_path):
    path = huge_model(tmp_path, 1e308)
    out = tmp_path / 'out.npz'
    r = script('_convert.py', path, out, '--float32')
    assert_one_line_error(r, 'too large for float32', 'float64')
    assert not os.path.exists(out)
    r = script('_convert.py', path, out)                # kept in float64: written, and loads back equal
    assert r.returncode == 0 and r.stderr == '', r.stderr
    assert files.load_params(out)[0]['dense.W'][0, 0] == 1e308
    assert json.loads(path.read_text())[-1][0][0][0][0] == 1e308


def test_weights_whose_sums_can_overflow_are_refused_with_one_line(tmp_path):
    params = {k: v.astype(np.float64) for k, v in tiny_model(np.random.default_rng(1), V=5, H=8).items()}
    for k in ('lstm1.W', 'lstm2.W'):                    # h W: inf - inf = NaN in h and in the logits (it sampled
        params[k] = np.sign(params[k]) * 1e308          # character 0 over and over, with warnings on stderr)
    path = tmp_path / 'overflow.json'
    original.write(path, params)
    lookup = tmp_path / 'lookup.json'
    lookup.write_text(json.dumps(list('abcde')))
    for name, *args in (('_sample.py', '--length', 5, '--start', 'ab'), ('_evaluate.py', '--text', lookup)):
        r = script(name, '--weights', path, '--lookup', lookup, *args)
        assert_one_line_error(r, 'lstm1.W', 'can overflow float64')
    for k in ('lstm1.W', 'lstm2.W'):                    # 1e304: the sums fit, the model loads
        params[k] = np.sign(params[k]) * 1e304
    original.write(path, params)
    assert files.load_params(path)[0]['lstm2.W'].max() == 1e304
