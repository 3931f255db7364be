"""The layers against numeric gradients (float64, centred differences) and against naive references."""
import numpy as np
import pytest

import layers
from helpers import numeric_grad, rel_error


def make_lstm(T=4, B=3, D=5, H=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((B, H))
    c0 = rng.standard_normal((B, H))
    W = rng.standard_normal((D + H, 4 * H)) * 0.5
    b = rng.standard_normal(4 * H) * 0.5
    return rng, x, h0, c0, W, b


def naive_lstm(x, h0, c0, W, b):
    """One gate at a time, one step at a time, with explicit weight blocks."""
    T = x.shape[0]
    H = h0.shape[1]
    D = W.shape[0] - H
    sig = lambda v: 1 / (1 + np.exp(-v))
    Wi, Wf, Wo, Wg = (W[:, k * H:(k + 1) * H] for k in range(4))
    bi, bf, bo, bg = (b[k * H:(k + 1) * H] for k in range(4))
    h, c = h0, c0
    hs, cs = [], []
    for t in range(T):
        i = sig(x[t] @ Wi[:D] + h @ Wi[D:] + bi)
        f = sig(x[t] @ Wf[:D] + h @ Wf[D:] + bf)
        o = sig(x[t] @ Wo[:D] + h @ Wo[D:] + bo)
        g = np.tanh(x[t] @ Wg[:D] + h @ Wg[D:] + bg)
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h)
        cs.append(c)
    return np.array(hs), np.array(cs)


@pytest.mark.parametrize('H', [6, 16])                  # 16: the products in column blocks
def test_lstm_matches_naive_reference(H):
    _, x, h0, c0, W, b = make_lstm(H=H)
    h, c, _ = layers.lstm_forward(x, h0, c0, W, b)
    hn, cn = naive_lstm(x, h0, c0, W, b)
    np.testing.assert_allclose(h, hn, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(c, cn, rtol=1e-12, atol=1e-12)


def test_row_gather_equals_one_hot_product():
    rng, _, h0, c0, W, b = make_lstm(D=7)
    ids = rng.integers(0, 7, size=(4, 3))
    onehot = np.eye(7)[ids]                             # (T, B, D)
    h1, c1, _ = layers.lstm_forward(ids, h0, c0, W, b)
    h2, c2, _ = layers.lstm_forward(onehot, h0, c0, W, b)
    np.testing.assert_allclose(h1, h2, rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(c1, c2, rtol=1e-12, atol=1e-13)
    # ... and the gradients agree too, the weight gradient's input rows included
    dh = rng.standard_normal(h1.shape)
    dcT = rng.standard_normal(c0.shape)
    g1 = layers.lstm_backward(dh, dcT, layers.lstm_forward(ids, h0, c0, W, b)[2])
    g2 = layers.lstm_backward(dh, dcT, layers.lstm_forward(onehot, h0, c0, W, b)[2])
    assert g1[0] is None
    for a, b_ in zip(g1[1:], g2[1:]):
        np.testing.assert_allclose(a, b_, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('one_hot, H', [(False, 6), (True, 6), (False, 16)])
def test_lstm_gradients_numeric(one_hot, H):
    rng, x, h0, c0, W, b = make_lstm(H=H)
    if one_hot:
        x = rng.integers(0, 5, size=(4, 3))
    dh = rng.standard_normal((4, 3, H))
    dcT = rng.standard_normal((3, H))

    def f():                                            # a scalar whose gradient is (dh, dcT)
        h, c, _ = layers.lstm_forward(x, h0, c0, W, b)
        return np.sum(h * dh) + np.sum(c[-1] * dcT)
    _, _, cache = layers.lstm_forward(x, h0, c0, W, b)
    dx, dh0, dc0, dW, db = layers.lstm_backward(dh, dcT, cache)
    inputs = [('h0', h0, dh0), ('c0', c0, dc0), ('W', W, dW), ('b', b, db)]
    if not one_hot:
        inputs.append(('x', x, dx))
    for name, arr, grad in inputs:
        num = numeric_grad(f, arr)
        assert rel_error(num, grad) < 1e-7, name


def test_dense_and_softmax_gradients_numeric():
    rng = np.random.default_rng(1)
    h = rng.standard_normal((3, 2, 4))
    W = rng.standard_normal((4, 5))
    b = rng.standard_normal(5)
    y = rng.integers(0, 5, size=(3, 2))

    def loss():
        return layers.softmax_loss(layers.dense_forward(h, W, b)[0], y)[0]
    logits, cache = layers.dense_forward(h, W, b)
    _, dlogits = layers.softmax_loss(logits, y)
    dh, dW, db = layers.dense_backward(dlogits, cache)
    for name, arr, grad in [('h', h, dh), ('W', W, dW), ('b', b, db)]:
        assert rel_error(numeric_grad(loss, arr), grad) < 1e-7, name


def test_softmax_loss_value():
    logits = np.log(np.array([[0.2, 0.3, 0.5], [0.7, 0.2, 0.1]]))
    loss, _ = layers.softmax_loss(logits, np.array([2, 0]))
    assert loss == pytest.approx(-(np.log(0.5) + np.log(0.7)) / 2, rel=1e-12)


def test_sigmoid_is_stable_and_exact():
    x = np.array([-1000.0, -3.0, 0.0, 2.5, 1000.0])
    exact = 1 / (1 + np.exp(-np.clip(x, -700, 700)))
    np.testing.assert_allclose(layers.sigmoid(x.copy()), exact, rtol=1e-12, atol=1e-15)


def test_step_by_step_equals_whole_window():
    rng, x, h0, c0, W, b = make_lstm(T=6)
    h, c, _ = layers.lstm_forward(x, h0, c0, W, b)
    hp, cp = h0, c0
    for t in range(6):
        hs, cs, _ = layers.lstm_forward(x[t:t + 1], hp, cp, W, b)
        np.testing.assert_allclose(hs[0], h[t], rtol=1e-13, atol=1e-14)
        hp, cp = hs[0], cs[0]


def test_two_windows_with_carried_state_equal_one_long_window():
    rng, x, h0, c0, W, b = make_lstm(T=8)
    dh = rng.standard_normal((8, 3, 6))
    h, c, cache = layers.lstm_forward(x, h0, c0, W, b)
    dx, dh0, dc0, dW, db = layers.lstm_backward(dh, None, cache)
    # forward in two halves, carrying the state; backward from the second half into the first
    ha, ca, cache_a = layers.lstm_forward(x[:4], h0, c0, W, b)
    hb, cb, cache_b = layers.lstm_forward(x[4:], ha[-1], ca[-1], W, b)
    np.testing.assert_allclose(np.concatenate([ha, hb]), h, rtol=1e-13, atol=1e-14)
    dxb, dhm, dcm, dWb, dbb = layers.lstm_backward(dh[4:], None, cache_b)
    dha = dh[:4].copy()
    dha[-1] += dhm
    dxa, dh0a, dc0a, dWa, dba = layers.lstm_backward(dha, dcm, cache_a)
    np.testing.assert_allclose(np.concatenate([dxa, dxb]), dx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dWa + dWb, dW, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dba + dbb, db, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dh0a, dh0, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dc0a, dc0, rtol=1e-10, atol=1e-12)


def test_forward_without_backward_factors_is_the_same_forward():
    _, x, h0, c0, W, b = make_lstm(H=16)
    h1, c1, _ = layers.lstm_forward(x, h0, c0, W, b)
    h2, c2, _ = layers.lstm_forward(x, h0, c0, W, b, backward=False)
    np.testing.assert_array_equal(h1, h2)
    np.testing.assert_array_equal(c1, c2)
