"""The whole model (lstm.py) and its training: initial weights, the optimizer (RMSprop, weight decay, the
moving average, clipping), weights files saved and loaded exactly, a lookup table the same in every process,
and a short training run that lowers the loss. Gradients are in test_model_gradients.py, sampling and
evaluation in test_model_sampling.py."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import data
import lstm
from optimizer import RMSprop
from util import checkpoint
from util.weights import load_params, save_params

from helpers import ROOT, tiny_corpus
from reference import tiny_model


def test_initial_weights_scale_and_forget_bias():
    V, H = 7, 64
    params = lstm.init_params(V, H, 2, rng=0, dtype=np.float64)
    for n, D in ((1, V), (2, H)):
        W, b = params[f'lstm{n}.W'], params[f'lstm{n}.b']
        scale = 1 / np.sqrt(D + H)
        assert np.abs(W).max() <= scale
        assert W.std() == pytest.approx(scale / np.sqrt(3), rel=0.02)  # uniform(-s, s): sd s / sqrt(3)
        np.testing.assert_array_equal(b[H : 2 * H], 1.0)  # the forget gate's bias
        np.testing.assert_array_equal(np.delete(b, np.s_[H : 2 * H]), 0.0)
    assert np.abs(params['dense.W']).max() <= 1 / np.sqrt(H)
    np.testing.assert_array_equal(params['dense.b'], 0.0)


def test_rmsprop_matches_its_formula():
    rng = np.random.default_rng(0)
    p = {'w': rng.standard_normal((3, 4))}
    g1, g2 = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    w0 = p['w'].copy()
    opt = RMSprop(p, lr=0.01, rho=0.9, eps=1e-8)
    opt.step(p, {'w': g1})
    opt.step(p, {'w': g2})
    c1 = 0.1 * g1**2
    w1 = w0 - 0.01 * g1 / (np.sqrt(c1) + 1e-8)
    c2 = 0.9 * c1 + 0.1 * g2**2
    w2 = w1 - 0.01 * g2 / (np.sqrt(c2) + 1e-8)
    np.testing.assert_allclose(p['w'], w2, rtol=1e-12)
    np.testing.assert_allclose(opt.cache['w'], c2, rtol=1e-12)


def test_weight_decay_shrinks_matrices_not_biases():
    p = {'w': np.array([[2.0, -4.0]]), 'b': np.array([2.0])}
    opt = RMSprop(p, lr=0.1, rho=0.0, eps=0.0, weight_decay=0.5)
    opt.step(p, {'w': np.array([[1.0, -1.0]]), 'b': np.array([1.0])})
    # gradient step: lr * g / |g| = 0.1 * sign(g); decay: lr * 0.5 * p, on the matrix only
    np.testing.assert_allclose(p['w'], [[2.0 - 0.1 - 0.1, -4.0 + 0.1 + 0.2]])
    np.testing.assert_allclose(p['b'], [2.0 - 0.1])


def test_moving_average_of_the_weights():
    from optimizer import update_average

    p = {'w': np.array([1.0, 2.0])}
    avg = {'w': np.array([0.0, 0.0])}
    update_average(avg, p, 0.9)
    update_average(avg, {'w': np.array([3.0, 4.0])}, 0.9)
    np.testing.assert_allclose(avg['w'], 0.9 * np.array([0.1, 0.2]) + 0.1 * np.array([3.0, 4.0]))


def test_clipping_scales_to_the_global_norm():
    p = {'a': np.zeros(2), 'b': np.zeros(1)}
    opt = RMSprop(p, lr=1.0, rho=0.0, eps=1e-8, clip=1.0)
    norm = opt.step(p, {'a': np.array([3.0, 0.0]), 'b': np.array([4.0])})
    assert norm == pytest.approx(5.0)
    np.testing.assert_allclose(opt.cache['a'], [0.36, 0.0])  # (3/5)^2: the clipped gradient was used


def test_save_then_load_is_exact(tmp_path):
    params = tiny_model(np.random.default_rng(0))
    params32 = {k: v.astype(np.float32) for k, v in params.items()}
    save_params(tmp_path / 'w.npz', params32, {'step': 3})
    loaded, meta = load_params(tmp_path / 'w.npz', V=5)
    assert meta == {'step': 3}
    for k in params32:
        assert loaded[k].dtype == np.float32
        np.testing.assert_array_equal(loaded[k], params32[k])
    opt = RMSprop(params)
    opt.step(params, {k: np.ones_like(v) for k, v in params.items()})
    state = [(np.full((2, 4), 0.5), np.full((2, 4), -0.5)) for _ in range(2)]
    checkpoint.save(tmp_path / 'c.npz', params, opt, state, {'position': {'step': 1}})
    p2, opt2, state2, meta2, ema2 = checkpoint.load(tmp_path / 'c.npz', lambda p: RMSprop(p))
    assert meta2 == {'position': {'step': 1}}
    assert ema2 is None
    assert opt2.steps == 1
    for k in params:
        assert p2[k].dtype == np.float64
        np.testing.assert_array_equal(p2[k], params[k])
        np.testing.assert_array_equal(opt2.cache[k], opt.cache[k])
    for (h, c), (h2, c2) in zip(state, state2):
        np.testing.assert_array_equal(h, h2)
        np.testing.assert_array_equal(c, c2)


@pytest.mark.parametrize('extra_chars', [0, 300])  # 300: more than 256 characters, 16-bit indices
def test_a_short_training_run_lowers_the_loss(extra_chars):
    text = tiny_corpus(4000)
    if extra_chars:
        text += ''.join(chr(0x4E00 + k) for k in range(extra_chars)) * 2
    chars = data.build_lookup(text)
    ids = data.encode(text, chars)
    assert ids.dtype == (np.uint16 if extra_chars else np.uint8)
    chunked = data.chunks(ids, 8)
    T = 20
    rng = np.random.default_rng(0)
    params = lstm.init_params(len(chars), 32, 2, rng=rng)
    opt = RMSprop(params, lr=0.01)
    state = lstm.zero_state(params, 8)
    before = lstm.evaluate(params, ids[:1000])
    losses = []
    for step in range(240):
        k = step % data.n_windows(chunked.shape[1], T)
        if k == 0:
            state = lstm.zero_state(params, 8)
        x, y = data.window(chunked, T, k)
        loss, grads, state = lstm.loss_and_grads(params, x, y, state)
        opt.step(params, grads)
        losses.append(loss)
    after = lstm.evaluate(params, ids[:1000])
    assert np.mean(losses[-20:]) < 0.6 * np.mean(losses[:5])
    assert after < before - 1.0  # from ~log(V) nats to well under that
    # and it writes like its text: the sample's pairs of neighbouring characters occur in the text (an
    # untrained model's rarely do: about 10% of them without the extra characters, none with them)
    sampled = data.decode([ix[0] for ix in lstm.sample(params, [0], 200, temperature=0.5, rng=0)], chars)
    pairs = {text[k : k + 2] for k in range(len(text) - 1)}
    assert np.mean([sampled[k : k + 2] in pairs for k in range(len(sampled) - 1)]) > 0.9


def test_lookup_table_is_the_same_in_two_processes(tmp_path):
    (tmp_path / 'c.txt').write_text(tiny_corpus(3000) + 'zébra ünïcode €', encoding='utf-8')
    code = (
        'import sys, json; sys.path.insert(0, sys.argv[1]); import data; '
        'print(json.dumps(data.read_corpus(sys.argv[2])[1]))'
    )
    outs = set()
    for seed in ('1', '2'):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        outs.add(
            subprocess.run(
                [sys.executable, '-c', code, ROOT, str(tmp_path / 'c.txt')],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
    assert len(outs) == 1
    chars = json.loads(outs.pop())
    assert chars == sorted(set(tiny_corpus(3000) + 'zébra ünïcode €'))
