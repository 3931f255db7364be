"""The fast engine equals the reference math (layers.py): float64, tight tolerance, over random shapes."""

import numpy as np
import pytest

import engine
import engine_plan
import layers
import lstm
from reference import reference_model, tiny_model

TOL = dict(rtol=1e-11, atol=1e-12)


@pytest.fixture(params=[(None, None), (0, 0), (8, 4)], ids=['measured-blocks', 'plain', 'small-blocks'])
def plan(request):
    """Plans of the engine (given the threads): the column-block widths measured on this machine, the plain
    product, and widths small enough for the tiny shapes to use them."""
    forward, backward = request.param
    return lambda threads=1: engine.Plan(threads, forward=forward, backward=backward)


def random_layer(rng, T, B, D, H):
    return (
        rng.standard_normal((T, B, D)),
        rng.standard_normal((B, H)),
        rng.standard_normal((B, H)),
        rng.standard_normal((D + H, 4 * H)) * 0.5,
        rng.standard_normal(4 * H) * 0.5,
    )


@pytest.mark.parametrize(
    'T, B, D, H', [(5, 3, 4, 7), (1, 1, 3, 12), (6, 1, 9, 8), (1, 4, 2, 12), (7, 2, 5, 13)]
)
@pytest.mark.parametrize('one_hot', [False, True])
def test_engine_layer_equals_reference_layer(plan, T, B, D, H, one_hot):
    rng = np.random.default_rng(T * 100 + B * 10 + H)
    x, h0, c0, W, b = random_layer(rng, T, B, D, H)
    ids = rng.integers(0, D, size=(T, B))
    x_ref = layers.one_hot(ids, D) if one_hot else x
    x_eng = ids if one_hot else x
    dh = rng.standard_normal((T, B, H))
    dcT = rng.standard_normal((B, H))
    h, c, cache = layers.lstm_forward(x_ref, h0, c0, W, b)
    window = engine.LSTMWindow(x_eng, h0, c0, W, b, plan())  # layers.lstm_forward, and its cache
    he, ce = window.h, window.c
    np.testing.assert_allclose(he, h, **TOL)
    np.testing.assert_allclose(ce, c, **TOL)
    dx, dh0, dc0, dW, db = layers.lstm_backward(dh, dcT, cache)
    dxe, dh0e, dc0e, dWe, dbe = window.backward(dh, dcT)  # layers.lstm_backward
    if one_hot:
        assert dxe is None  # no gradient for indices
    else:
        np.testing.assert_allclose(dxe, dx, **TOL)
    for a, b_ in ((dh0e, dh0), (dc0e, dc0), (dWe, dW), (dbe, db)):
        np.testing.assert_allclose(a, b_, **TOL)


@pytest.mark.parametrize(
    'T, B, V, H, n_layers',
    [(6, 3, 5, 7, 2), (1, 1, 4, 12, 2), (25, 2, 6, 9, 3), (4, 1, 3, 8, 1), (30, 4, 7, 13, 2)],
)
@pytest.mark.parametrize(
    'dropout, weight_drop, variational',
    [(0.0, 0.0, False), (0.4, 0.0, False), (0.0, 0.3, False), (0.3, 0.5, False), (0.4, 0.2, True)],
)
@pytest.mark.parametrize('threads', [1, 2])
def test_engine_model_equals_reference_model(
    plan, T, B, V, H, n_layers, dropout, weight_drop, variational, threads
):
    rng = np.random.default_rng(T + 7 * B + 31 * H)
    params = tiny_model(rng, V, H, n_layers)
    x = rng.integers(0, V, size=(T, B))
    state = [(rng.standard_normal((B, H)), rng.standard_normal((B, H))) for _ in range(n_layers)]
    dlogits = rng.standard_normal((T, B, V))
    dstate = [(rng.standard_normal((B, H)), rng.standard_normal((B, H))) for _ in range(n_layers)]
    out = []
    for reference in (True, False):  # the same seed: the same dropout and weight-drop masks
        logits, end, cache = lstm.forward(
            params,
            x,
            state,
            dropout=dropout,
            rng=np.random.default_rng(9),
            plan=plan(threads),
            weight_drop=weight_drop,
            reference=reference,
            variational=variational,
        )
        grads, dstate0 = lstm.backward(dlogits, cache, dstate=dstate)
        out.append((logits, end, grads, dstate0))
    (l1, e1, g1, d1), (l2, e2, g2, d2) = out
    np.testing.assert_allclose(l2, l1, **TOL)
    for n in range(n_layers):
        for j in range(2):
            np.testing.assert_allclose(e2[n][j], e1[n][j], **TOL)
            np.testing.assert_allclose(d2[n][j], d1[n][j], **TOL)
    for k in params:
        np.testing.assert_allclose(g2[k], g1[k], **TOL, err_msg=k)


@pytest.mark.parametrize('threads', [1, 2])
def test_the_plain_plan_equals_the_reference_model(threads):
    """engine.Plan.plain() (dynamic evaluation: the plain product, forward and backward) computes the same
    model."""
    rng = np.random.default_rng(8)
    params = tiny_model(rng, 5, 16, 2)
    x = rng.integers(0, 5, size=(7, 3))
    state = lstm.zero_state(params, 3)
    dlogits = rng.standard_normal((7, 3, 5))
    out = []
    for reference in (True, False):
        logits, _, cache = lstm.forward(
            params, x, state, plan=engine.Plan.plain(threads), reference=reference
        )
        out.append((logits, lstm.backward(dlogits, cache)[0]))
    np.testing.assert_allclose(out[1][0], out[0][0], **TOL)
    for k in params:
        np.testing.assert_allclose(out[1][1][k], out[0][1][k], **TOL, err_msg=k)


@pytest.mark.parametrize('threads', [1, 2])
def test_engine_stack_equals_reference_stack_with_its_input_gradient(plan, threads):
    """engine.stack_backward returns what layers.stack_backward does, dx included (for inputs that are
    vectors)."""
    rng = np.random.default_rng(3)
    T, B, D, H = 5, 3, 4, 6
    x = rng.standard_normal((T, B, D))
    Ws = [rng.standard_normal((D + H, 4 * H)) * 0.5, rng.standard_normal((2 * H, 4 * H)) * 0.5]
    bs = [rng.standard_normal(4 * H) * 0.5 for _ in Ws]
    state = [(rng.standard_normal((B, H)), rng.standard_normal((B, H))) for _ in Ws]
    masks = [lstm.dropout_mask(rng, (T, B, H), 0.3, np.dtype(np.float64)), None]
    dtop = rng.standard_normal((T, B, H))
    dstate = [(rng.standard_normal((B, H)), rng.standard_normal((B, H))) for _ in Ws]
    top, end, cache = layers.stack_forward(x, state, Ws, bs, masks)
    top_e, end_e, cache_e = engine.stack_forward(x, state, Ws, bs, masks, plan(threads))
    np.testing.assert_allclose(top_e, top, **TOL)
    expected = layers.stack_backward(dtop, cache, dstate)
    got = engine.stack_backward(dtop, cache_e, dstate)
    flat = lambda dx, dWs, dbs, dstate0: [dx, *dWs, *dbs, *(a for pair in dstate0 for a in pair)]
    for a, b_ in zip(flat(*got), flat(*expected), strict=True):  # dx first
        np.testing.assert_allclose(a, b_, **TOL)
    for a, b_ in zip(flat(0, [], [], end_e), flat(0, [], [], end), strict=True):  # the final state
        np.testing.assert_allclose(a, b_, **TOL)


@pytest.mark.parametrize('B', [1, 3])
def test_predictor_equals_reference_forward_in_pieces(B):
    """The forward-only path (sampling, evaluation, explorer), fed in pieces of any length, equals the naive
    per-gate LSTM over the whole text: logits, and every layer's h, c and gates."""
    rng = np.random.default_rng(4)
    params = tiny_model(rng, 6, 12, 2)
    x = rng.integers(0, 6, size=(23, B))
    logits, reference = reference_model(params, x)
    model = lstm.Predictor(params, B)
    pieces = [model(x[t0:t1], keep=True) for t0, t1 in ((0, 1), (1, 9), (9, 10), (10, 23))]
    np.testing.assert_allclose(np.concatenate([lg for lg, _ in pieces]), logits, **TOL)
    for n, expected in enumerate(reference):
        for name in ('h', 'c', 'gates'):
            got = np.concatenate([getattr(steps[n], name) for _, steps in pieces])
            np.testing.assert_allclose(got, getattr(expected, name), **TOL, err_msg=f'layer {n + 1} {name}')


def test_stream_equals_the_predictor_whatever_its_window():
    rng = np.random.default_rng(5)
    params = tiny_model(rng, 6, 8, 2)
    ids = rng.integers(0, 6, size=40)
    logits, steps = lstm.Predictor(params, 1)(ids[:, None], keep=True)
    for window in (1, 7, 40, 100):
        parts = list(lstm.stream(params, ids, window, keep=True))
        assert [p.t0 for p in parts] == list(range(0, 40, window))
        np.testing.assert_allclose(np.concatenate([p.logits for p in parts]), logits[:, 0], **TOL)
        for n in range(2):
            np.testing.assert_allclose(np.concatenate([p.steps[n].c for p in parts]), steps[n].c[:, 0], **TOL)
        assert all(p.steps is None for p in lstm.stream(params, ids, window))


def test_the_forward_only_path_never_measures_a_width(monkeypatch):
    """Sampling, evaluation (dynamic too) and the explorer's stream never time the products (whose widths
    change the rounding), so that they give the same output in every process; training's forward pass does."""

    def measure(*shape):
        raise AssertionError(f'measured {shape}')

    monkeypatch.setattr(engine_plan, '_fastest_width', measure)
    params = tiny_model(np.random.default_rng(6), 7, 32, 2)
    ids = np.random.default_rng(7).integers(0, 7, size=(30, 3))
    lstm.Predictor(params, 3)(ids, keep=True)
    list(lstm.sample(params, [1, 2], 5, rng=0, num_samples=3))
    lstm.evaluate(params, ids[:, 0])
    list(lstm.stream(params, ids[:, 0], 7, keep=True))
    lstm.evaluate_dynamic(params, ids[:, 0], window=7)
    with pytest.raises(AssertionError, match='measured'):
        lstm.forward(params, ids, lstm.zero_state(params, 3), plan=engine.Plan())


def test_a_plan_measures_a_width_once_and_keeps_every_width_it_used():
    """Plan(): each shape's width is one of the candidates that divides N and is below it, measured once and
    kept in its table; Plan(widths=table) uses a saved table without measuring; fixed widths are kept in it
    too."""
    plan = engine.Plan()
    width = plan.width('forward', 3, 16, 64, np.float64)
    assert width in (0, 16, 32) and plan.width('forward', 3, 16, 64, np.float64) == width
    assert plan.widths() == [[3, 16, 64, '<f8', width]]
    again = engine.Plan(widths=[[3, 16, 64, 'float64', 16]], forward=0)
    assert again.width('forward', 3, 16, 64, np.float64) == 16  # the saved width, not the fixed
    assert again.width('forward', 3, 16, 128, np.float64) == 0  # a new shape: the fixed width
    assert again.widths() == [[3, 16, 64, '<f8', 16], [3, 16, 128, '<f8', 0]]
    x = np.random.default_rng(0).standard_normal((3, 16))
    M = np.random.default_rng(1).standard_normal((16, 64))
    for w in engine_plan.BLOCK_CANDIDATES:  # every width computes the product
        out = np.empty((3, 64))
        np.testing.assert_allclose(
            engine_plan.matmul_blocks(x, engine_plan.column_blocks(M, w), out), x @ M, **TOL
        )


@pytest.mark.parametrize(
    'table, words',
    [
        ({'3': 16}, 'a dict, not a list'),
        ([[3, 16, 64, '<f8', 32], [3, 16, 64, '<f8', 24]], 'entry 1'),  # not a candidate width
        ([[3, 16, 64, '<f8']], 'entry 0'),
        ([[3, -16, 64, '<f8', 32]], 'entry 0'),
        ([[3, 16, 64, 'no such type', 32]], 'entry 0'),
        ([[3, 16, 64, '<i8', 32]], 'entry 0'),
        ([[3, 16.5, 64, '<f8', 32]], 'entry 0'),
        ([[True, 16, 64, '<f8', 32]], 'entry 0'),
        (['3, 16, 64'], 'entry 0'),
    ],
)
def test_a_damaged_table_of_widths_is_refused_in_one_line(table, words):
    with pytest.raises(ValueError, match=words) as e:
        engine.Plan(widths=table)
    assert '\n' not in str(e.value)


@pytest.mark.parametrize('column', [0, 1])
def test_an_error_in_a_thread_reaches_the_caller(column):
    """No deadlock and no silent failure: with two threads (each computes half of the batch), an error in
    either half (here a character index beyond the alphabet in one column of the batch) is raised by
    forward()."""
    params = tiny_model(np.random.default_rng(0), 5, 4, 2)
    x = np.zeros((30, 2), dtype=int)
    x[7, column] = 99
    with pytest.raises(IndexError, match='99'):
        lstm.forward(params, x, lstm.zero_state(params, 2), plan=engine.Plan.plain(2))
