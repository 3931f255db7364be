"""The whole model (lstm.py): gradients, state carrying, the optimizer, files, sampling, evaluation (whole,
dynamic, random blocks) and a short training run."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

import data
import engine
import layers
import lstm
from optimizer import RMSprop
from util import checkpoint
from util.weights import load_params, save_params

from helpers import ROOT, tiny_corpus, numeric_grad, rel_error, tiny_model


@pytest.mark.parametrize(
    'dropout, weight_drop, threads, variational',
    [
        (0.0, 0.0, 1, False),
        (0.4, 0.0, 1, False),
        (0.4, 0.0, 2, False),
        (0.0, 0.5, 1, False),
        (0.3, 0.5, 2, False),
        (0.4, 0.0, 1, True),
        (0.3, 0.5, 2, True),
    ],
)
def test_model_gradients_numeric(dropout, weight_drop, threads, variational):
    rng = np.random.default_rng(0)
    params = tiny_model(rng)
    T, B = 3, 2
    x = rng.integers(0, 5, size=(T, B))
    y = rng.integers(0, 5, size=(T, B))
    state = [(rng.standard_normal((B, 4)), rng.standard_normal((B, 4))) for _ in range(2)]

    def loss():  # the same dropout masks on every call
        logits, _, _ = lstm.forward(
            params,
            x,
            state,
            dropout=dropout,
            rng=np.random.default_rng(7),
            weight_drop=weight_drop,
            variational=variational,
        )
        return layers.softmax_loss(logits, y)[0]

    logits, _, cache = lstm.forward(
        params,
        x,
        state,
        dropout=dropout,
        rng=np.random.default_rng(7),
        plan=engine.Plan(threads),
        weight_drop=weight_drop,
        variational=variational,
    )
    _, dlogits = layers.softmax_loss(logits, y)
    grads, dstate0 = lstm.backward(dlogits, cache)
    for k in params:
        assert rel_error(numeric_grad(loss, params[k]), grads[k]) < 1e-7, k
    for n in range(2):
        for j, name in enumerate('hc'):
            num = numeric_grad(loss, state[n][j])
            assert rel_error(num, dstate0[n][j]) < 1e-7, f'{name}0 of layer {n + 1}'


def test_weight_drop_zeroes_recurrent_weights_only_and_keeps_the_mean():
    """forward with weight drop computes the model whose h_prev rows of every W are multiplied by masks drawn
    from rng (in layer order, dropped or scaled by 1 / keep), and whose input rows are untouched."""
    rng = np.random.default_rng(0)
    params = tiny_model(rng, H=64)
    x = rng.integers(0, 5, size=(3, 2))
    state = lstm.zero_state(params, 2)
    logits, _, _ = lstm.forward(params, x, state, rng=np.random.default_rng(3), weight_drop=0.25)
    replay = np.random.default_rng(3)
    dropped = dict(params)
    for n in (1, 2):
        mask = lstm.dropout_mask(replay, (64, 4 * 64), 0.25, np.dtype(np.float64))
        assert set(np.unique(mask)) == {0.0, 4 / 3} and abs((mask != 0).mean() - 0.75) < 0.01  # sd 0.0034
        dropped[f'lstm{n}.W'] = params[f'lstm{n}.W'].copy()
        dropped[f'lstm{n}.W'][-64:] *= mask
    np.testing.assert_allclose(logits, lstm.forward(dropped, x, state)[0], rtol=1e-12, atol=1e-13)
    assert np.abs(logits - lstm.forward(params, x, state)[0]).max() > 1e-3  # the masks did matter


def test_two_windows_equal_one_long_window_for_the_model():
    rng = np.random.default_rng(0)
    params = tiny_model(rng)
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
def test_two_threads_equal_one_thread(n_layers):
    rng = np.random.default_rng(0)
    params = tiny_model(rng, V=7, H=6, n_layers=n_layers)
    x = rng.integers(0, 7, size=(45, 3))
    y = rng.integers(0, 7, size=(45, 3))
    state = [(rng.standard_normal((3, 6)), rng.standard_normal((3, 6))) for _ in range(n_layers)]
    dstate = [(rng.standard_normal((3, 6)), rng.standard_normal((3, 6))) for _ in range(n_layers)]
    out = []
    for threads in (1, 2):
        logits, new_state, cache = lstm.forward(
            params, x, state, dropout=0.3, rng=np.random.default_rng(1), plan=engine.Plan(threads)
        )
        _, dlogits = layers.softmax_loss(logits, y)
        out.append((logits, new_state, *lstm.backward(dlogits, cache, dstate=dstate)))
    (l1, s1, g1, d1), (l2, s2, g2, d2) = out
    np.testing.assert_allclose(l1, l2, rtol=1e-12, atol=1e-13)
    for k in params:
        np.testing.assert_allclose(g1[k], g2[k], rtol=1e-10, atol=1e-13)
    for a, b in zip(s1 + d1, s2 + d2):
        np.testing.assert_allclose(a[0], b[0], rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(a[1], b[1], rtol=1e-10, atol=1e-13)


def test_dstate_gradient_numeric():
    """The gradient that flows in from a loss on the final state (used to compose windows)."""
    rng = np.random.default_rng(0)
    params = tiny_model(rng)
    x = rng.integers(0, 5, size=(3, 2))
    y = rng.integers(0, 5, size=(3, 2))
    state = lstm.zero_state(params, 2)
    w = [(rng.standard_normal((2, 4)), rng.standard_normal((2, 4))) for _ in range(2)]

    def loss():
        logits, end, _ = lstm.forward(params, x, state)
        return layers.softmax_loss(logits, y)[0] + sum(
            np.sum(h * a) + np.sum(c * b) for (h, c), (a, b) in zip(end, w)
        )

    for threads in (1, 2):
        logits, _, cache = lstm.forward(params, x, state, plan=engine.Plan(threads))
        _, dlogits = layers.softmax_loss(logits, y)
        grads, _ = lstm.backward(dlogits, cache, dstate=w)
        for k in params:
            assert rel_error(numeric_grad(loss, params[k]), grads[k]) < 1e-7, (k, threads)


def test_greedy_sampling_matches_the_window_forward():
    """Sampling one step at a time computes the same model as the training forward: greedy decoding."""
    rng = np.random.default_rng(0)
    params = tiny_model(rng, V=6, H=5)
    out = [int(ix[0]) for ix in lstm.sample(params, [1, 2, 3], 12, temperature=0)]
    seq = [1, 2, 3]
    for _ in range(12):
        logits, _, _ = lstm.forward(params, np.array(seq)[:, None], lstm.zero_state(params, 1))
        seq.append(int(np.argmax(logits[-1, 0])))
    assert out == seq[3:]


def test_sampling_with_a_seed_is_reproducible_and_temperature_matters():
    params = tiny_model(np.random.default_rng(0), V=6, H=5)
    draw = lambda seed, T=1.0, N=1: np.array(
        list(lstm.sample(params, [0], 200, temperature=T, rng=np.random.default_rng(seed), num_samples=N))
    )
    a, b, c = draw(3), draw(3), draw(4)
    assert (a == b).all()
    assert (a != c).any()
    assert len(set(draw(3, 0.05).ravel())) < len(set(a.ravel()))  # a low temperature narrows the choice
    batch = draw(3, N=5)
    assert batch.shape == (200, 5)
    assert all((batch[:, k] != batch[:, 0]).any() for k in range(1, 5))  # independent samples
    assert (draw(3, N=5) == batch).all()


def constant_logits_model(logits):
    """A model whose logits are the same whatever it reads: dense.W = 0, dense.b = logits."""
    params = lstm.init_params(len(logits), 4, 1, rng=0, dtype=np.float64)
    params['dense.W'][:] = 0
    params['dense.b'][:] = logits
    return params


def test_sampling_draws_from_softmax_of_logits_over_temperature():
    """4,000 independent first draws against softmax(logits / T): a chi-square test at a fixed seed. softmax of
    the logits themselves (T ignored), or of logits * T, fails it by far."""
    logits = np.array([0.0, 1.0, 2.0, 3.0, 0.5])
    N = 4000
    for T in (0.5, 1.0, 2.0):
        first = next(
            lstm.sample(
                constant_logits_model(logits),
                [0],
                1,
                temperature=T,
                rng=np.random.default_rng(11),
                num_samples=N,
            )
        )
        counts = np.bincount(first, minlength=5)
        expected = N * np.exp(logits / T) / np.exp(logits / T).sum()
        chi2 = ((counts - expected) ** 2 / expected).sum()
        assert chi2 < 18.5, (T, counts, expected)  # chi-square with 4 degrees of freedom: p = 0.001
        wrong = N * np.exp(logits * T) / np.exp(logits * T).sum() if T != 1 else N * np.full(5, 0.2)
        assert ((counts - wrong) ** 2 / wrong).sum() > 100


def test_top_k_and_top_p():
    p = np.array([[0.5, 0.25, 0.125, 0.0625, 0.0625]])
    logits = np.log(p)
    keep = lambda **kw: set(np.flatnonzero(lstm.next_char_probs(logits, **kw)[0]))
    assert keep(top_k=1) == {0}
    assert keep(top_k=3) == {0, 1, 2}
    assert keep(top_p=0.4) == {0}  # 0.5 already reaches 0.4
    assert keep(top_p=0.7) == {0, 1}  # 0.5 + 0.25 reaches 0.7; 0.5 alone does not
    assert keep(top_p=0.76) == {0, 1, 2}
    assert keep(top_p=1.0) == {0, 1, 2, 3, 4}
    assert keep(top_k=2, top_p=0.9) == {0, 1}
    q = lstm.next_char_probs(logits, top_p=0.7)[0]
    np.testing.assert_allclose(q[:2], [2 / 3, 1 / 3], rtol=1e-12)  # renormalised
    # top-k 1 is the most likely character, at any temperature
    rng = np.random.default_rng(0)
    params = tiny_model(rng, V=6, H=5)
    greedy = [int(ix[0]) for ix in lstm.sample(params, [2], 30, temperature=0)]
    top1 = [
        int(ix[0])
        for ix in lstm.sample(params, [2], 30, temperature=1.5, rng=np.random.default_rng(0), top_k=1)
    ]
    assert top1 == greedy


def test_evaluation_is_independent_of_its_window_and_equals_the_training_forward():
    rng = np.random.default_rng(0)
    params = tiny_model(rng, V=6, H=5)
    ids = rng.integers(0, 6, size=400)
    logits, _, _ = lstm.forward(params, ids[:-1, None], lstm.zero_state(params, 1))
    expected = layers.softmax_loss(logits, ids[1:, None])[0]
    for window in (1, 7, 100, 399, 1000):
        assert lstm.evaluate(params, ids, window=window) == pytest.approx(expected, rel=1e-12), window


def test_char_losses_are_each_characters_loss_and_average_to_evaluate():
    """char_losses (which the LSTM-against-n-gram comparison reads) gives -ln p of every character after the
    first under the training forward, and its mean is evaluate's score, whatever the window."""
    rng = np.random.default_rng(1)
    params = tiny_model(rng, V=6, H=5)
    ids = rng.integers(0, 6, size=300)
    logits, _, _ = lstm.forward(params, ids[:-1, None], lstm.zero_state(params, 1))
    p = layers.softmax(logits[:, 0])
    expected = -np.log(p[np.arange(299), ids[1:]])
    for window in (1, 13, 299, 1000):
        losses = lstm.char_losses(params, ids, window=window)
        assert losses.shape == (299,) and losses.dtype == np.float64
        np.testing.assert_allclose(losses, expected, rtol=1e-12)
        assert losses.mean() == pytest.approx(lstm.evaluate(params, ids, window=window), rel=1e-12)
    assert lstm.char_losses(params, ids[:2]).shape == (1,)


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
    # and it writes like its text: the sample's pairs of neighbouring characters occur in the text (an untrained
    # model's rarely do: about 10% of them without the extra characters, none with them)
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


SAMPLE_WITH_WIDTHS = """
import hashlib, sys
sys.path.insert(0, sys.argv[1])
import numpy as np
import _sample, engine_plan, lstm
from util.weights import load_params
width = int(sys.argv[2])
engine_plan._fastest_width = lambda B, K, N, dtype: width  # as if timing had chosen every width
_sample.main(['--seed', '3', '--length', '60', '--num-samples', '8', '--start', 'KING'])
params, _ = load_params(sys.argv[3])
ids = np.random.default_rng(0).integers(0, 65, size=(20, 8))
print(hashlib.sha256(lstm.Predictor(params, 8)(ids).tobytes()).hexdigest())      # the logits' bits
print(repr(lstm.evaluate(params, ids[:, 0])))
"""


def test_sampling_is_the_same_in_two_processes_whatever_the_measured_widths():
    """Two processes whose timings chose different block widths (the widths change the products' rounding where
    B > 1) sample the same text, and compute the same logits to the bit."""
    weights = os.path.join(ROOT, 'saves', 'ShakespeareNet.npz')
    outs = [
        subprocess.run(
            [sys.executable, '-c', SAMPLE_WITH_WIDTHS, ROOT, str(width), weights],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        for width in (0, 16)
    ]
    for r in outs:
        assert r.returncode == 0 and r.stderr == '', r.stderr
    assert outs[0].stdout.count('=== sample ') == 8
    assert outs[1].stdout == outs[0].stdout


def test_dynamic_evaluation():
    rng = np.random.default_rng(0)
    params = tiny_model(rng, V=6, H=5)
    before = {k: v.copy() for k, v in params.items()}
    ids = np.tile(rng.integers(0, 6, size=23), 20)  # a text that repeats: adapting to it pays
    static = lstm.evaluate(params, ids)
    sums, counts = lstm.evaluate_dynamic(params, ids, lr=0.0, window=17)
    assert sums.sum() / counts.sum() == pytest.approx(static, rel=1e-12)  # no step: the static score
    assert counts.sum() == len(ids) - 1
    sums, counts = lstm.evaluate_dynamic(params, ids, lr=0.5, window=17, decay=1.0)
    assert sums.sum() / counts.sum() == pytest.approx(static, rel=1e-12)  # pulled fully back every step
    sums, counts = lstm.evaluate_dynamic(params, ids, lr=0.5, window=17)
    first = lstm.evaluate(params, ids[:18])
    assert sums[0] / counts[0] == pytest.approx(first, rel=1e-12)  # each window scored before learning
    assert sums.sum() / counts.sum() < static - 0.05  # it learns the repeats
    assert sums[-5:].sum() / counts[-5:].sum() < sums[:5].sum() / counts[:5].sum()
    for k in params:  # the model passed in is not changed
        np.testing.assert_array_equal(params[k], before[k])


def test_variational_dropout_masks_are_the_same_at_every_step():
    """With variational dropout, forward computes the stack whose outputs are multiplied by one mask per stream
    and unit, (1, B, H), drawn from rng in layer order, the same at every step."""
    rng = np.random.default_rng(0)
    params = tiny_model(rng, V=5, H=64)
    x = rng.integers(0, 5, size=(6, 3))
    state = lstm.zero_state(params, 3)
    logits, _, _ = lstm.forward(params, x, state, dropout=0.5, rng=np.random.default_rng(2), variational=True)
    replay = np.random.default_rng(2)
    masks = [lstm.dropout_mask(replay, (1, 3, 64), 0.5, np.dtype(np.float64)) for _ in range(2)]
    for m in masks:
        assert set(np.unique(m)) == {0.0, 2.0}
        assert 0.35 < (m == 0).mean() < 0.65
    top, _, _ = layers.stack_forward(
        layers.one_hot(x, 5),
        state,
        [params['lstm1.W'], params['lstm2.W']],
        [params['lstm1.b'], params['lstm2.b']],
        masks,
    )
    expected, _ = layers.dense_forward(top, params['dense.W'], params['dense.b'])
    np.testing.assert_allclose(logits, expected, rtol=1e-12, atol=1e-13)


def test_block_losses_equal_each_block_read_alone_from_zeros_in_float64():
    rng = np.random.default_rng(1)
    V, T = 7, 12
    params = lstm.init_params(V, 6, 2, rng=rng, dtype=np.float64)
    ids = rng.integers(0, V, size=200)
    starts = rng.integers(0, len(ids) - T, size=9)
    got = lstm.block_losses(params, ids, T, starts, batch=4)  # batches of 4, 4 and 1 blocks
    for s, loss in zip(starts, got):
        x, y = ids[s : s + T], ids[s + 1 : s + T + 1]
        logits, _, _ = lstm.forward(params, x[:, None], lstm.zero_state(params, 1), reference=True)
        z = logits[:, 0] - logits[:, 0].max(axis=1, keepdims=True)
        direct = np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(T), y])
        assert abs(loss - direct) < 1e-12, (loss, direct)
