"""The model's gradients and state (lstm.py): numeric gradients with dropout, weight drop and threads, the
gradient of the carried state, weight drop and variational dropout masks, two windows as one long window, two
threads as one."""

import numpy as np
import pytest

import engine
import layers
import lstm

from reference import numeric_grad, rel_error, tiny_model


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


def test_variational_dropout_masks_are_the_same_at_every_step():
    """With variational dropout, forward computes the stack whose outputs are multiplied by one mask per
    stream and unit, (1, B, H), drawn from rng in layer order, the same at every step."""
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
