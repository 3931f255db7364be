"""The scripts on models of the original project: _sample.py and _evaluate.py / _visualize.py follow the
original's model and lookup table, _convert.py converts both ways exactly (and refuses to overwrite, to take
what is not a model, or to write float32 that would not load), and mismatched or swapped files are one
line."""

import json
import os
import shutil

import numpy as np
import pytest

from util import original
from util.weights import load_params

from original_files import damaged, huge_model, original_probs
from helpers import assert_one_line_error, run_here, tiny_corpus
from reference import tiny_model


def test_sample_greedy_follows_the_originals_model_and_lookup(original_model):
    weights, lookup, chars, layers_ = original_model
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


def test_evaluate_and_explore_the_originals_model(original_model, tmp_path):
    weights, lookup, chars, layers_ = original_model
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


def test_scripts_refuse_mismatched_and_swapped_files_with_one_line(original_model, tmp_path, small_model):
    weights, lookup, chars, _ = original_model
    npz, npz_lookup, _ = small_model
    r = run_here('_sample.py', '--weights', weights, '--length', 5)  # its table is its own: never a default
    assert_one_line_error(
        r, 'holds no lookup table (the original project\'s format has none', '--lookup FILE'
    )
    (tmp_path / 'short.json').write_text(json.dumps(chars[:-1]))
    r = run_here('_sample.py', '--weights', weights, '--lookup', tmp_path / 'short.json', '--length', 5)
    assert_one_line_error(
        r,
        f'is for {len(chars)} characters but the lookup table {tmp_path / "short.json"} has {len(chars) - 1}',
    )
    r = run_here('_sample.py', '--weights', lookup, '--lookup', lookup, '--length', 5)
    assert_one_line_error(r, 'holds a lookup table (a list of characters), not a model\'s weights')
    r = run_here('_evaluate.py', '--weights', weights, '--lookup', weights)
    assert_one_line_error(r, 'lookup table', 'holds a model\'s weights (lists of numbers), not characters')
    r = run_here('_visualize.py', '--weights', weights, '--lookup', npz, '--find')
    assert_one_line_error(r, 'lookup table', 'is an .npz file (weights?)')
    (tmp_path / 'w.json').write_text(json.dumps(damaged('ragged')))
    r = run_here('_visualize.py', '--weights', tmp_path / 'w.json', '--lookup', lookup, '--find')
    assert_one_line_error(r, "layer 1's w is ragged")


def test_convert_round_trips_are_exact_both_ways(tmp_path, original_model, small_model):
    npz, _, _ = small_model
    r = run_here('_convert.py', npz, tmp_path / 'a.json')
    assert r.returncode == 0, r.stderr
    assert 'wrote' in r.stdout and '2 LSTM layers of 16 units' in r.stdout
    assert "holds no lookup table (the original's format has none): give the scripts --lookup" in r.stdout
    r = run_here('_convert.py', tmp_path / 'a.json', tmp_path / 'b.npz')
    assert r.returncode == 0 and 'holds no lookup table (--lookup stores one)' in r.stdout, r.stdout
    r = run_here('_convert.py', tmp_path / 'a.json', tmp_path / 'with.npz', '--lookup', small_model[1])
    assert r.returncode == 0 and 'lookup table' not in r.stdout, r.stdout  # stored: nothing to say
    before, after = np.load(npz), np.load(tmp_path / 'b.npz')
    for k in ('lstm1.W', 'lstm1.b', 'lstm2.W', 'lstm2.b', 'dense.W', 'dense.b'):
        assert after[k].dtype == before[k].dtype == np.float32  # came back as it went out
        np.testing.assert_array_equal(after[k], before[k])
    weights = original_model[0]  # the original's float64 model, there and back
    assert run_here('_convert.py', weights, tmp_path / 'c.npz').returncode == 0
    assert np.load(tmp_path / 'c.npz')['lstm1.W'].dtype == np.float64
    assert run_here('_convert.py', tmp_path / 'c.npz', tmp_path / 'd.json').returncode == 0
    assert json.loads((tmp_path / 'd.json').read_text()) == json.loads(weights.read_text())
    assert (tmp_path / 'd.json').read_text() == weights.read_text()  # json.dump's own layout, too
    assert run_here('_convert.py', weights, tmp_path / 'e.npz', '--float32').returncode == 0
    e = np.load(tmp_path / 'e.npz')['lstm1.W']
    assert e.dtype == np.float32
    np.testing.assert_array_equal(e, np.load(tmp_path / 'c.npz')['lstm1.W'].astype(np.float32))


def test_convert_refuses_an_existing_output_unless_forced_and_forced_replaces_only_weights(
    tmp_path, small_model
):
    npz, lookup, _ = small_model
    assert run_here('_convert.py', npz, tmp_path / 'a.json').returncode == 0
    r = run_here('_convert.py', npz, tmp_path / 'a.json')
    assert_one_line_error(r, 'a.json exists', '--force')
    r = run_here('_convert.py', npz, tmp_path / 'a.json', '--force')
    assert r.returncode == 0, r.stderr
    assert load_params(tmp_path / 'a.json')[0]['dense.W'].shape == (16, np.load(npz)['dense.W'].shape[1])
    shutil.copy(lookup, tmp_path / 'lookup.json')
    (tmp_path / 'notes.json').write_text('keep me')
    for name, words in (('notes.json', 'not valid JSON'), ('lookup.json', 'lookup table')):
        before = (tmp_path / name).read_bytes()
        r = run_here('_convert.py', npz, tmp_path / name, '--force')
        assert_one_line_error(r, words, '--force replaces only weights')
        assert (tmp_path / name).read_bytes() == before


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


def test_convert_with_lookup_stores_the_alphabet_so_that_another_table_is_refused(tmp_path, original_model):
    weights, lookup, chars, _ = original_model
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
