"""Sampling and evaluation (lstm.py): greedy, seeded and temperature sampling, top-k and top-p, the same
sample in every process whatever the measured widths; evaluation independent of its window, each character's
loss, dynamic evaluation and random blocks."""

import os
import subprocess
import sys

import numpy as np
import pytest

import layers
import lstm

from helpers import ROOT
from reference import tiny_model


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
    """4,000 independent first draws against softmax(logits / T): a chi-square test at a fixed seed. softmax
    of the logits themselves (T ignored), or of logits * T, fails it by far."""
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
    """Two processes whose timings chose different block widths (the widths change the products' rounding
    where B > 1) sample the same text, and compute the same logits to the bit."""
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


def test_a_priming_text_is_read_once_a_window_at_a_time_and_every_sample_starts_from_it():
    params = tiny_model(np.random.default_rng(2), V=7, H=5)
    prime = np.random.default_rng(3).integers(0, 7, 40)
    whole = lstm.Predictor(params, 3)
    expected = whole(np.repeat(prime[:, None], 3, axis=1))[-1]  # every stream reads the whole text at once
    model, logits = lstm.primed(params, prime, 3, window=7)
    assert np.allclose(logits, expected, atol=1e-12)
    for (h, c), (h2, c2) in zip(model.state, whole.state):
        assert h.shape == (3, 5) and np.allclose(h, h2, atol=1e-12) and np.allclose(c, c2, atol=1e-12)
    assert np.allclose(model(np.array([[1, 2, 3]]))[0], whole(np.array([[1, 2, 3]]))[0], atol=1e-12)
