"""The LSTM from its equations, to hold the code to: a naive LSTM one gate and one step at a time, the model
built on it, small weights moved off their initial values, and centred-difference gradients."""

from typing import NamedTuple

import numpy as np

import helpers  # noqa: F401  (puts the repository on the import path)
import lstm


def numeric_grad(f, x, h=1e-5):
    """Centred differences of the scalar f() with respect to the array x, changed in place and restored."""
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=['multi_index'])
    for _ in it:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        plus = f()
        x[ix] = old - h
        minus = f()
        x[ix] = old
        grad[ix] = (plus - minus) / (2 * h)
    return grad


def rel_error(a, b):
    """The difference relative to the size of the two arrays (not element by element: a tiny element's
    centred difference carries rounding noise of the order of the loss times 1e-11)."""
    return float(np.linalg.norm(a - b) / max(np.linalg.norm(a) + np.linalg.norm(b), 1e-30))


def tiny_model(rng, V=5, H=4, n_layers=2):
    """Float64 weights of a small model, moved off their initial values (so that every path matters)."""
    params = lstm.init_params(V, H, n_layers, rng=rng, dtype=np.float64)
    for k in params:
        params[k] += rng.standard_normal(params[k].shape) * 0.3
    return params


def naive_lstm(x, h0, c0, W, b):
    """One gate at a time, one step at a time, with explicit weight blocks and the textbook sigmoid: the LSTM
    from its equations, to hold the others to. Returns h, c (T, B, H) and the activated gates [i, f, o, g]
    (T, B, 4H) of every step."""
    T = x.shape[0]
    H = h0.shape[1]
    D = W.shape[0] - H
    sig = lambda v: 1 / (1 + np.exp(-v))
    Wi, Wf, Wo, Wg = (W[:, k * H : (k + 1) * H] for k in range(4))
    bi, bf, bo, bg = (b[k * H : (k + 1) * H] for k in range(4))
    h, c = h0, c0
    hs, cs, gates = [], [], []
    for t in range(T):
        i = sig(x[t] @ Wi[:D] + h @ Wi[D:] + bi)
        f = sig(x[t] @ Wf[:D] + h @ Wf[D:] + bf)
        o = sig(x[t] @ Wo[:D] + h @ Wo[D:] + bo)
        g = np.tanh(x[t] @ Wg[:D] + h @ Wg[D:] + bg)
        c = f * c + i * g
        h = o * np.tanh(c)
        hs.append(h)
        cs.append(c)
        gates.append(np.concatenate([i, f, o, g], axis=1))
    return np.array(hs), np.array(cs), np.array(gates)


class ReferenceSteps(NamedTuple):
    h: np.ndarray
    c: np.ndarray
    gates: np.ndarray


def reference_model(params, ids):
    """The model over ids (T, B) from a zero state, without dropout, built on naive_lstm: (logits (T, B, V),
    per layer ReferenceSteps(h, c, gates) of every step)."""
    V, H, n_layers = lstm.sizes(params)
    inp = np.eye(V)[ids]  # the one-hot vectors
    layers = []
    for n in range(1, n_layers + 1):
        zeros = np.zeros((ids.shape[1], H))
        layers.append(
            ReferenceSteps(*naive_lstm(inp, zeros, zeros, params[f'lstm{n}.W'], params[f'lstm{n}.b']))
        )
        inp = layers[-1].h
    return inp @ params['dense.W'] + params['dense.b'], layers
