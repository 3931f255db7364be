"""The whole model: gradients, state carrying, the optimizer, files, sampling and a short training run."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest

import data
import layers
import lstm
from helpers import numeric_grad, rel_error, tiny_corpus
from optimizer import RMSprop

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_model(V=5, H=4, n_layers=2, seed=0):
    rng = np.random.default_rng(seed)
    params = lstm.init_params(V, H, n_layers, rng, np.float64)
    for k in params:                                    # move off the initial values so every path matters
        params[k] += rng.standard_normal(params[k].shape) * 0.3
    return rng, params


@pytest.mark.parametrize('dropout, weight_drop, threads', [(0.0, 0.0, 1), (0.4, 0.0, 1), (0.4, 0.0, 2),
                                                           (0.0, 0.5, 1), (0.3, 0.5, 2)])
def test_model_gradients_numeric(dropout, weight_drop, threads):
    rng, params = tiny_model()
    T, B = 3, 2
    x = rng.integers(0, 5, size=(T, B))
    y = rng.integers(0, 5, size=(T, B))
    state = [(rng.standard_normal((B, 4)), rng.standard_normal((B, 4))) for _ in range(2)]

    def loss():                                         # the same dropout masks on every call
        logits, _, _ = lstm.forward(params, x, state, dropout, np.random.default_rng(7), 1, weight_drop)
        return layers.softmax_loss(logits, y)[0]
    logits, _, cache = lstm.forward(params, x, state, dropout, np.random.default_rng(7), threads, weight_drop)
    _, dlogits = layers.softmax_loss(logits, y)
    grads, dstate0 = lstm.backward(dlogits, cache, threads=threads)
    for k in params:
        assert rel_error(numeric_grad(loss, params[k]), grads[k]) < 1e-7, k
    for n in range(2):
        for j, name in enumerate('hc'):
            num = numeric_grad(loss, state[n][j])
            assert rel_error(num, dstate0[n][j]) < 1e-7, f'{name}0 of layer {n + 1}'


def test_weight_drop_zeroes_recurrent_weights_only_and_keeps_the_mean():
    rng, params = tiny_model()
    H = 4
    x = rng.integers(0, 5, size=(3, 2))
    state = lstm.zero_state(params, 2)
    _, _, cache = lstm.forward(params, x, state, 0.0, np.random.default_rng(3), 1, 0.5)
    for n in range(2):
        W, used = params[f'lstm{n + 1}.W'], cache[0][n]['W']
        np.testing.assert_array_equal(used[:-H], W[:-H])                 # input rows untouched
        ratio = used[-H:] / W[-H:]
        assert set(np.unique(ratio.round(12))) == {0.0, 2.0}             # dropped, or kept and scaled by 1/keep
    big = lstm.init_params(5, 64, 1, 0)
    _, _, cache = lstm.forward(big, x, lstm.zero_state(big, 2), 0.0, np.random.default_rng(3), 1, 0.25)
    kept = (cache[0][0]['W'][-64:] != 0).mean()
    assert abs(kept - 0.75) < 0.01                                       # 16,384 weights: sd 0.0034


def test_two_windows_equal_one_long_window_for_the_model():
    rng, params = tiny_model()
    x = rng.integers(0, 5, size=(8, 2))
    y = rng.integers(0, 5, size=(8, 2))
    state = lstm.zero_state(params, 2)
    logits, end_state, _ = lstm.forward(params, x, state)
    la, mid, _ = lstm.forward(params, x[:5], state)
    lb, end_b, _ = lstm.forward(params, x[5:], mid)
    np.testing.assert_allclose(np.concatenate([la, lb]), logits, rtol=1e-12, atol=1e-13)
    for (h1, c1), (h2, c2) in zip(end_state, end_b):
        np.testing.assert_allclose(h1, h2, rtol=1e-12, atol=1e-13)
        np.testing.assert_allclose(c1, c2, rtol=1e-12, atol=1e-13)
    # the gradient of the long window's total loss = the second window's, carried back into the first
    loss, dlogits = layers.softmax_loss(logits, y)
    grads, _ = lstm.backward(dlogits * y.size, lstm.forward(params, x, state)[2])
    _, _, cache_b = lstm.forward(params, x[5:], mid)
    _, dlb = layers.softmax_loss(lb, y[5:])
    gb, dmid = lstm.backward(dlb * y[5:].size, cache_b)
    _, _, cache_a = lstm.forward(params, x[:5], state)
    _, dla = layers.softmax_loss(la, y[:5])
    ga, _ = lstm.backward(dla * y[:5].size, cache_a, dstate=dmid)
    for k in params:
        np.testing.assert_allclose(ga[k] + gb[k], grads[k], rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize('n_layers', [2, 3])
def test_pipelined_layers_equal_sequential_layers(n_layers):
    rng, params = tiny_model(V=7, H=6, n_layers=n_layers)
    x = rng.integers(0, 7, size=(45, 3))
    y = rng.integers(0, 7, size=(45, 3))
    state = [(rng.standard_normal((3, 6)), rng.standard_normal((3, 6))) for _ in range(n_layers)]
    dstate = [(rng.standard_normal((3, 6)), rng.standard_normal((3, 6))) for _ in range(n_layers)]
    out = []
    for threads in (1, 2):
        logits, new_state, cache = lstm.forward(params, x, state, 0.3, np.random.default_rng(1), threads)
        _, dlogits = layers.softmax_loss(logits, y)
        out.append((logits, new_state, *lstm.backward(dlogits, cache, dstate, threads)))
    (l1, s1, g1, d1), (l2, s2, g2, d2) = out
    np.testing.assert_allclose(l1, l2, rtol=1e-12, atol=1e-13)
    for k in params:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-10, atol=1e-13)
    for a, b in zip(s1 + d1, s2 + d2):
        np.testing.assert_allclose(a[0], b[0], rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-10, atol=1e-13)


def test_dstate_gradient_numeric():
    """The gradient that flows in from a loss on the final state (used to compose windows)."""
    rng, params = tiny_model()
    x = rng.integers(0, 5, size=(3, 2))
    y = rng.integers(0, 5, size=(3, 2))
    state = lstm.zero_state(params, 2)
    w = [(rng.standard_normal((2, 4)), rng.standard_normal((2, 4))) for _ in range(2)]

    def loss():
        logits, end, _ = lstm.forward(params, x, state)
        return layers.softmax_loss(logits, y)[0] + sum(np.sum(h * a) + np.sum(c * b) for (h, c), (a, b) in
                                                         zip(end, w))
    for threads in (1, 2):
        logits, _, cache = lstm.forward(params, x, state, threads=threads)
        _, dlogits = layers.softmax_loss(logits, y)
        grads, _ = lstm.backward(dlogits, cache, dstate=w, threads=threads)
        for k in params:
            assert rel_error(numeric_grad(loss, params[k]), grads[k]) < 1e-7, (k, threads)


def test_generate_matches_the_window_forward():
    """The one-vector-at-a-time sampler computes the same model as the batched layers: greedy decoding."""
    rng, params = tiny_model(V=6, H=5)
    out = list(lstm.generate(params, [1, 2, 3], 12, temperature=0))
    seq = [1, 2, 3]
    for _ in range(12):
        logits, _, _ = lstm.forward(params, np.array(seq)[:, None], lstm.zero_state(params, 1))
        seq.append(int(np.argmax(logits[-1, 0])))
    assert out == seq[3:]


def test_sampling_with_a_seed_is_reproducible_and_temperature_matters():
    _, params = tiny_model(V=6, H=5)
    a = list(lstm.generate(params, [0], 200, 1.0, np.random.default_rng(3)))
    b = list(lstm.generate(params, [0], 200, 1.0, np.random.default_rng(3)))
    c = list(lstm.generate(params, [0], 200, 1.0, np.random.default_rng(4)))
    assert a == b
    assert a != c
    cold = list(lstm.generate(params, [0], 200, 0.05, np.random.default_rng(3)))
    assert len(set(cold)) < len(set(a))                # a low temperature narrows the choice


def test_rmsprop_matches_its_formula():
    rng = np.random.default_rng(0)
    p = {'w': rng.standard_normal((3, 4))}
    g1, g2 = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    w0 = p['w'].copy()
    opt = RMSprop(p, lr=0.01, rho=0.9, eps=1e-8)
    opt.step(p, {'w': g1})
    opt.step(p, {'w': g2})
    c1 = 0.1 * g1 ** 2
    w1 = w0 - 0.01 * g1 / (np.sqrt(c1) + 1e-8)
    c2 = 0.9 * c1 + 0.1 * g2 ** 2
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
    np.testing.assert_allclose(opt.cache['a'], [0.36, 0.0])     # (3/5)^2: the clipped gradient was used


def test_save_then_load_is_exact(tmp_path):
    _, params = tiny_model()
    params32 = {k: v.astype(np.float32) for k, v in params.items()}
    lstm.save_params(tmp_path / 'w.npz', params32, {'step': 3})
    loaded, meta = lstm.load_params(tmp_path / 'w.npz', V=5)
    assert meta == {'step': 3}
    for k in params32:
        assert loaded[k].dtype == np.float32
        np.testing.assert_array_equal(loaded[k], params32[k])
    opt = RMSprop(params)
    opt.step(params, {k: np.ones_like(v) for k, v in params.items()})
    state = [(np.full((2, 4), 0.5), np.full((2, 4), -0.5)) for _ in range(2)]
    lstm.save_checkpoint(tmp_path / 'c.npz', params, opt, state, {'position': {'step': 1}})
    p2, opt2, state2, meta2, ema2 = lstm.load_checkpoint(tmp_path / 'c.npz', lambda p: RMSprop(p))
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


def test_a_short_training_run_lowers_the_loss():
    text = tiny_corpus(4000)
    chars = data.build_lookup(text)
    ids = data.encode(text, chars)
    chunked = data.chunks(ids, 8)
    T = 20
    rng = np.random.default_rng(0)
    params = lstm.init_params(len(chars), 32, 2, rng)
    opt = RMSprop(params, lr=0.01)
    state = lstm.zero_state(params, 8)
    before = lstm.evaluate(params, ids[:1000])
    losses = []
    for step in range(240):
        k = step % data.n_windows(chunked.shape[1], T)
        if k == 0:
            state = lstm.zero_state(params, 8)
        x, y = data.window(chunked, T, k)
        loss, _, state = lstm.train_step(params, opt, x, y, state)
        losses.append(loss)
    after = lstm.evaluate(params, ids[:1000])
    assert np.mean(losses[-20:]) < 0.6 * np.mean(losses[:5])
    assert after < before - 1.0                         # from ~log(V) = 2.9 nats to well under 2


def test_lookup_table_is_the_same_in_two_processes(tmp_path):
    (tmp_path / 'c.txt').write_text(tiny_corpus(3000) + 'zébra ünïcode €', encoding='utf-8')
    code = ('import sys, json; sys.path.insert(0, sys.argv[1]); import data; '
            'print(json.dumps(data.read_corpus(sys.argv[2])[1]))')
    outs = set()
    for seed in ('1', '2'):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        outs.add(subprocess.run([sys.executable, '-c', code, ROOT, str(tmp_path / 'c.txt')], env=env,
                                capture_output=True, text=True, check=True).stdout)
    assert len(outs) == 1
    chars = json.loads(outs.pop())
    assert chars == sorted(set(tiny_corpus(3000) + 'zébra ünïcode €'))


def test_an_error_in_a_pipeline_thread_reaches_the_caller(monkeypatch):
    """No deadlock and no silent failure: the exception of a layer's thread is raised by forward()."""
    _, params = tiny_model(V=5, H=4)
    real = layers.lstm_forward_steps

    def failing(cache, t0, t1, backward=True):
        if cache['W'] is params['lstm2.W'] and t0 > 0:
            raise FloatingPointError('boom in layer 2')
        return real(cache, t0, t1, backward)
    monkeypatch.setattr(layers, 'lstm_forward_steps', failing)
    x = np.zeros((30, 2), dtype=int)
    with pytest.raises(FloatingPointError, match='boom in layer 2'):
        lstm.forward(params, x, lstm.zero_state(params, 2), threads=2)
