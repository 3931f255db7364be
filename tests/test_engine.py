"""The fast engine equals the reference math (layers.py): float64, tight tolerance, over random shapes."""
import numpy as np
import pytest

import engine
import layers
import lstm
from helpers import tiny_model

TOL = dict(rtol=1e-11, atol=1e-12)


@pytest.fixture(params=[(None, None), (0, 0), (8, 4)], ids=['measured-blocks', 'plain', 'small-blocks'])
def blocks(request, monkeypatch):
    """The engine's column-block widths: measured on this machine, the plain product, and widths small enough for
    the tiny shapes to use them."""
    monkeypatch.setattr(engine, 'FORWARD_BLOCK', request.param[0])
    monkeypatch.setattr(engine, 'BACKWARD_BLOCK', request.param[1])
    return request.param


def random_layer(rng, T, B, D, H):
    return (rng.standard_normal((T, B, D)), rng.standard_normal((B, H)), rng.standard_normal((B, H)),
            rng.standard_normal((D + H, 4 * H)) * 0.5, rng.standard_normal(4 * H) * 0.5)


@pytest.mark.parametrize('T, B, D, H', [(5, 3, 4, 7), (1, 1, 3, 12), (6, 1, 9, 8), (1, 4, 2, 12), (7, 2, 5, 13)])
@pytest.mark.parametrize('one_hot', [False, True])
def test_engine_layer_equals_reference_layer(blocks, T, B, D, H, one_hot):
    rng = np.random.default_rng(T * 100 + B * 10 + H)
    x, h0, c0, W, b = random_layer(rng, T, B, D, H)
    ids = rng.integers(0, D, size=(T, B))
    x_ref = layers.one_hot(ids, D) if one_hot else x
    x_eng = ids if one_hot else x
    dh = rng.standard_normal((T, B, H))
    dcT = rng.standard_normal((B, H))
    h, c, cache = layers.lstm_forward(x_ref, h0, c0, W, b)
    he, ce, cache_e = engine.lstm_forward(x_eng, h0, c0, W, b)
    np.testing.assert_allclose(he, h, **TOL)
    np.testing.assert_allclose(ce, c, **TOL)
    dx, dh0, dc0, dW, db = layers.lstm_backward(dh, dcT, cache)
    dxe, dh0e, dc0e, dWe, dbe = engine.lstm_backward(dh, dcT, cache_e)
    if one_hot:
        assert dxe is None                              # no gradient for indices
    else:
        np.testing.assert_allclose(dxe, dx, **TOL)
    for a, b_ in ((dh0e, dh0), (dc0e, dc0), (dWe, dW), (dbe, db)):
        np.testing.assert_allclose(a, b_, **TOL)


@pytest.mark.parametrize('T, B, V, H, n_layers', [(6, 3, 5, 7, 2), (1, 1, 4, 12, 2), (25, 2, 6, 9, 3),
                                                   (4, 1, 3, 8, 1), (30, 4, 7, 13, 2)])
@pytest.mark.parametrize('dropout, weight_drop, variational', [(0.0, 0.0, False), (0.4, 0.0, False),
                                                                (0.0, 0.3, False), (0.3, 0.5, False), (0.4, 0.2, True)])
@pytest.mark.parametrize('threads', [1, 2])
def test_engine_model_equals_reference_model(blocks, T, B, V, H, n_layers, dropout, weight_drop, variational,
                                             threads):
    rng = np.random.default_rng(T + 7 * B + 31 * H)
    params = tiny_model(rng, V, H, n_layers)
    x = rng.integers(0, V, size=(T, B))
    state = [(rng.standard_normal((B, H)), rng.standard_normal((B, H))) for _ in range(n_layers)]
    dlogits = rng.standard_normal((T, B, V))
    dstate = [(rng.standard_normal((B, H)), rng.standard_normal((B, H))) for _ in range(n_layers)]
    out = []
    for reference in (True, False):                     # the same seed: the same dropout and weight-drop masks
        logits, end, cache = lstm.forward(params, x, state, dropout, np.random.default_rng(9), threads,
                                          weight_drop, reference=reference, variational=variational)
        grads, dstate0 = lstm.backward(dlogits, cache, dstate, threads)
        out.append((logits, end, grads, dstate0))
    (l1, e1, g1, d1), (l2, e2, g2, d2) = out
    np.testing.assert_allclose(l2, l1, **TOL)
    for n in range(n_layers):
        for j in range(2):
            np.testing.assert_allclose(e2[n][j], e1[n][j], **TOL)
            np.testing.assert_allclose(d2[n][j], d1[n][j], **TOL)
    for k in params:
        np.testing.assert_allclose(g2[k], g1[k], **TOL, err_msg=k)


@pytest.mark.parametrize('B', [1, 3])
def test_predictor_equals_reference_forward_in_pieces(blocks, B):
    """The forward-only path (sampling, evaluation, explorer), fed in pieces of any length, equals the reference
    forward over the whole text."""
    rng = np.random.default_rng(4)
    params = tiny_model(rng, 6, 12, 2)
    x = rng.integers(0, 6, size=(23, B))
    logits, _, cache = lstm.forward(params, x, lstm.zero_state(params, B), reference=True)
    model = lstm.Predictor(params, B)
    pieces, hidden, gates = [], [], []
    for t0, t1 in ((0, 1), (1, 9), (9, 10), (10, 23)):
        lg, hid = model(x[t0:t1], keep=True)
        pieces.append(lg)
        hidden.append(hid[1][0])                        # layer 2's h
        gates.append(hid[1][2])                         # layer 2's gates [i, f, o, g]
    np.testing.assert_allclose(np.concatenate(pieces), logits, **TOL)
    h2_reference = cache[1][0][1]                       # reference cache: (caches, masks); layer 2's step caches
    h2 = np.array([step[7] * step[5] for step in h2_reference])     # h = o * tanh(c) from each step's cache
    np.testing.assert_allclose(np.concatenate(hidden), h2, **TOL)
    ifog = np.array([np.concatenate(step[3:7], axis=1) for step in h2_reference])   # the reference's i, f, o, g
    np.testing.assert_allclose(np.concatenate(gates), ifog, **TOL)


def test_best_block_is_one_of_the_candidates_and_remembered():
    bs = engine.best_block(3, 16, 64, np.float64)
    assert bs in engine.BLOCK_CANDIDATES and (bs == 0 or 64 % bs == 0)
    assert engine.best_block(3, 16, 64, np.float64) == bs
    x = np.random.default_rng(0).standard_normal((3, 16))
    M = np.random.default_rng(1).standard_normal((16, 64))
    for width in engine.BLOCK_CANDIDATES:
        out = np.empty((3, 64))
        np.testing.assert_allclose(engine.matmul_blocks(x, engine.column_blocks(M, width), out), x @ M, **TOL)


def test_an_error_in_a_thread_reaches_the_caller(monkeypatch):
    """No deadlock and no silent failure: the exception of a layer's thread is raised by forward()."""
    params = tiny_model(np.random.default_rng(0), 5, 4, 2)
    real = engine.LSTMWindow.forward_steps

    def failing(self, t0, t1, factors=True):
        if self.W is params['lstm2.W']:
            raise FloatingPointError('boom in layer 2')
        return real(self, t0, t1, factors)
    monkeypatch.setattr(engine.LSTMWindow, 'forward_steps', failing)
    x = np.zeros((30, 2), dtype=int)
    with pytest.raises(FloatingPointError, match='boom in layer 2'):
        lstm.forward(params, x, lstm.zero_state(params, 2), threads=2)
