"""The reference math (layers.py) against numeric gradients (float64, centred differences) and a naive
LSTM."""

import numpy as np
import pytest

import layers
from reference import naive_lstm, numeric_grad, rel_error


def make_lstm(T=4, B=3, D=5, H=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((T, B, D))
    h0 = rng.standard_normal((B, H))
    c0 = rng.standard_normal((B, H))
    W = rng.standard_normal((D + H, 4 * H)) * 0.5
    b = rng.standard_normal(4 * H) * 0.5
    return rng, x, h0, c0, W, b


def test_lstm_matches_naive_per_gate_lstm():
    _, x, h0, c0, W, b = make_lstm()
    h, c, _ = layers.lstm_forward(x, h0, c0, W, b)
    hn, cn, _ = naive_lstm(x, h0, c0, W, b)
    np.testing.assert_allclose(h, hn, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(c, cn, rtol=1e-12, atol=1e-14)


def test_step_gradients_numeric():
    rng, x, h0, c0, W, b = make_lstm(T=1)
    dh, dc = rng.standard_normal((2, 3, 6))

    def loss():  # a random linear function of the step's outputs
        h, c, _ = layers.lstm_step_forward(x[0], h0, c0, W, b)
        return np.sum(h * dh) + np.sum(c * dc)

    _, _, cache = layers.lstm_step_forward(x[0], h0, c0, W, b)
    dx, dh_prev, dc_prev, dW, db = layers.lstm_step_backward(dh, dc, cache)
    for name, analytic, wrt in (
        ('x', dx, x),
        ('h_prev', dh_prev, h0),
        ('c_prev', dc_prev, c0),
        ('W', dW, W),
        ('b', db, b),
    ):
        assert (
            rel_error(numeric_grad(loss, wrt)[0] if wrt is x else numeric_grad(loss, wrt), analytic) < 1e-8
        ), name


def test_window_gradients_numeric():
    rng, x, h0, c0, W, b = make_lstm()
    dh = rng.standard_normal((4, 3, 6))
    dcT = rng.standard_normal((3, 6))

    def loss():  # the window's outputs and its last cell state
        h, c, _ = layers.lstm_forward(x, h0, c0, W, b)
        return np.sum(h * dh) + np.sum(c[-1] * dcT)

    _, _, cache = layers.lstm_forward(x, h0, c0, W, b)
    dx, dh0, dc0, dW, db = layers.lstm_backward(dh, dcT, cache)
    for name, analytic, wrt in (('x', dx, x), ('h0', dh0, h0), ('c0', dc0, c0), ('W', dW, W), ('b', db, b)):
        assert rel_error(numeric_grad(loss, wrt), analytic) < 1e-8, name


def test_stack_gradients_numeric_with_dropout_masks():
    rng = np.random.default_rng(1)
    T, B, D, H = 3, 2, 4, 5
    x = rng.standard_normal((T, B, D))
    state = [(rng.standard_normal((B, H)), rng.standard_normal((B, H))) for _ in range(2)]
    Ws = [rng.standard_normal((D + H, 4 * H)) * 0.5, rng.standard_normal((2 * H, 4 * H)) * 0.5]
    bs = [rng.standard_normal(4 * H) * 0.5 for _ in range(2)]
    masks = [(rng.random((T, B, H)) < 0.6) / 0.6, None]
    dtop = rng.standard_normal((T, B, H))
    dstate = [(rng.standard_normal((B, H)), rng.standard_normal((B, H))) for _ in range(2)]

    def loss():
        top, end, _ = layers.stack_forward(x, state, Ws, bs, masks)
        return np.sum(top * dtop) + sum(np.sum(h * a) + np.sum(c * d) for (h, c), (a, d) in zip(end, dstate))

    _, _, cache = layers.stack_forward(x, state, Ws, bs, masks)
    dx, dWs, dbs, dstate0 = layers.stack_backward(dtop, cache, dstate)
    assert rel_error(numeric_grad(loss, x), dx) < 1e-8
    for n in range(2):
        assert rel_error(numeric_grad(loss, Ws[n]), dWs[n]) < 1e-8
        assert rel_error(numeric_grad(loss, bs[n]), dbs[n]) < 1e-8
        assert rel_error(numeric_grad(loss, state[n][0]), dstate0[n][0]) < 1e-8
        assert rel_error(numeric_grad(loss, state[n][1]), dstate0[n][1]) < 1e-8


def test_dense_and_softmax_gradients_numeric():
    rng = np.random.default_rng(2)
    h = rng.standard_normal((3, 2, 4))
    W = rng.standard_normal((4, 5))
    b = rng.standard_normal(5)
    y = rng.integers(0, 5, size=(3, 2))

    def loss():
        return layers.softmax_loss(layers.dense_forward(h, W, b)[0], y)[0]

    logits, cache = layers.dense_forward(h, W, b)
    _, dlogits = layers.softmax_loss(logits, y)
    dh, dW, db = layers.dense_backward(dlogits, cache)
    for name, analytic, wrt in (('h', dh, h), ('W', dW, W), ('b', db, b)):
        assert rel_error(numeric_grad(loss, wrt), analytic) < 1e-8, name


def test_softmax_loss_value_and_softmax_with_temperature():
    logits = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    loss, _ = layers.softmax_loss(logits, np.array([2, 0]))
    expected = -(np.log(np.exp(3) / np.exp([1, 2, 3]).sum()) + np.log(1 / 3)) / 2
    assert loss == pytest.approx(expected, rel=1e-12)
    p = layers.softmax(logits, temperature=0.5)
    np.testing.assert_allclose(p[0], np.exp([2, 4, 6]) / np.exp([2, 4, 6]).sum(), rtol=1e-12)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, rtol=1e-15)
    assert np.isfinite(layers.softmax(np.array([1e4, 0.0]), 0.01)).all()


def test_sigmoid_is_stable_and_exact():
    x = np.linspace(-30, 30, 601)
    exact = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(layers.sigmoid(x), exact, rtol=1e-12, atol=1e-15)
    assert np.isfinite(layers.sigmoid(np.array([-1e4, 1e4]))).all()


def test_step_by_step_equals_whole_window():
    _, x, h0, c0, W, b = make_lstm()
    h, c, _ = layers.lstm_forward(x, h0, c0, W, b)
    hp, cp = h0, c0
    for t in range(4):
        hp, cp, _ = layers.lstm_step_forward(x[t], hp, cp, W, b)
        np.testing.assert_array_equal(hp, h[t])
        np.testing.assert_array_equal(cp, c[t])


def test_two_windows_with_carried_state_equal_one_long_window():
    rng, x, h0, c0, W, b = make_lstm(T=8)
    dh = rng.standard_normal((8, 3, 6))
    h, c, cache = layers.lstm_forward(x, h0, c0, W, b)
    dx, dh0, dc0, dW, db = layers.lstm_backward(dh, None, cache)
    ha, ca, cache_a = layers.lstm_forward(x[:4], h0, c0, W, b)
    hb, cb, cache_b = layers.lstm_forward(x[4:], ha[-1], ca[-1], W, b)
    np.testing.assert_allclose(np.concatenate([ha, hb]), h, rtol=1e-13)
    dxb, dhm, dcm, dWb, dbb = layers.lstm_backward(dh[4:], None, cache_b)
    dha = dh[:4].copy()
    dha[-1] += dhm  # the carried state's gradient enters the earlier window
    dxa, dh0a, dc0a, dWa, dba = layers.lstm_backward(dha, dcm, cache_a)
    np.testing.assert_allclose(np.concatenate([dxa, dxb]), dx, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(dWa + dWb, dW, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(dh0a, dh0, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(dc0a, dc0, rtol=1e-10, atol=1e-13)
