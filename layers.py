"""The reference math of the model, one equation a line: read this file first.

An LSTM step forward and backward, the window forward and backward through time built on the step, the stack
of layers with dropout between them, the dense layer, and the softmax. Every layer is a `*_forward` that
returns its outputs and a cache, and a `*_backward(dout, cache)` that returns the gradients in the order of
the forward's inputs (the CS231n convention; stack_backward gives the initial state's last, after the
weights'); a cache is opaque to everyone but its layer.

Sizes: T time steps, B parallel streams, D inputs, H hidden units, V characters in the vocabulary. Arrays are
time-major: x[t] is one (B, D) block.

The LSTM keeps one fused weight matrix W of shape (D + H, 4H): rows for the layer's input first, then for
h_prev; columns in four blocks of H for the gates i, f, o, g.

This code is written to be read, not to be fast: training runs `engine.py`, which computes these functions,
equal up to rounding, with fused buffers, and the tests hold it to them (tests/test_engine.py).
"""

from typing import NamedTuple

import numpy as np


def sigmoid(x):
    """Logistic sigmoid 1 / (1 + exp(-x)), written through tanh so that it never overflows."""
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def one_hot(ids, V, dtype=np.float64):
    """(...,) integer indices -> (..., V) one-hot vectors: the model's input. Multiplying a one-hot vector by
    a matrix selects one row of the matrix, which is what the engine does instead (a test checks they
    agree)."""
    return np.eye(V, dtype=dtype)[ids]


# --- one LSTM step ------------------------------------------------------------------------------------------


class StepCache(NamedTuple):
    """What lstm_step_backward needs from lstm_step_forward."""

    xh: np.ndarray  # (B, D + H) the step's input and h_prev side by side
    W: np.ndarray  # (D + H, 4H) the weights
    c_prev: np.ndarray  # (B, H) the previous cell state
    i: np.ndarray  # (B, H) each: the activated gates
    f: np.ndarray
    o: np.ndarray
    g: np.ndarray
    tc: np.ndarray  # (B, H) tanh(c)


def lstm_step_forward(x, h_prev, c_prev, W, b):
    """One time step of an LSTM layer.

    Inputs:
    - x: (B, D) inputs; h_prev, c_prev: (B, H) hidden and cell state of the previous step
    - W: (D + H, 4H) weights, rows [input; h_prev], column blocks [i, f, o, g]; b: (4H,) bias

    Returns (h, c, cache): the new hidden and cell state, (B, H) each.
    """
    H = h_prev.shape[1]
    xh = np.concatenate([x, h_prev], axis=1)  # (B, D + H)
    z = xh @ W + b  # (B, 4H): all four gates' pre-activations at once
    i = sigmoid(z[:, :H])  # input gate: how much of g to write
    f = sigmoid(z[:, H : 2 * H])  # forget gate: how much of c_prev to keep
    o = sigmoid(z[:, 2 * H : 3 * H])  # output gate: how much of the cell to show
    g = np.tanh(z[:, 3 * H :])  # the candidate values
    c = f * c_prev + i * g
    tc = np.tanh(c)
    h = o * tc
    return h, c, StepCache(xh, W, c_prev, i, f, o, g, tc)


def lstm_step_backward(dh, dc, cache):
    """Backward of one step.

    Inputs:
    - dh: (B, H) gradient of the loss with respect to this step's h (from the output above and the next step)
    - dc: (B, H) gradient with respect to this step's c coming from the next step (through c_next = f c + ...)
    - cache: from lstm_step_forward

    Returns (dx (B, D), dh_prev (B, H), dc_prev (B, H), dW (D + H, 4H), db (4H,)).
    """
    xh, W, c_prev, i, f, o, g, tc = cache
    H = dh.shape[1]
    dc = dc + dh * o * (1 - tc**2)  # c feeds h = o * tanh(c) as well as the next step
    dz_i = dc * g * i * (1 - i)  # through c = f * c_prev + i * g, then i = sigmoid(z_i)
    dz_f = dc * c_prev * f * (1 - f)
    dz_o = dh * tc * o * (1 - o)  # through h = o * tanh(c)
    dz_g = dc * i * (1 - g**2)  # g = tanh(z_g)
    dz = np.concatenate([dz_i, dz_f, dz_o, dz_g], axis=1)  # (B, 4H)
    dc_prev = dc * f
    dxh = dz @ W.T  # (B, D + H)
    dW = xh.T @ dz  # (D + H, 4H)
    db = dz.sum(axis=0)
    return dxh[:, :-H], dxh[:, -H:], dc_prev, dW, db


# --- an LSTM layer over a window of T steps: backpropagation through time -----------------------------------


def lstm_forward(x, h0, c0, W, b):
    """Run an LSTM layer over a window of T steps.

    Inputs: x (T, B, D); h0, c0 (B, H) the state carried in from the previous window; W, b as for one step.
    Returns (h (T, B, H), c (T, B, H), cache); h[-1], c[-1] is the state to carry into the next window. The
    cache is the list of the T steps' StepCache.
    """
    T, B = x.shape[:2]
    H = h0.shape[1]
    h, c = np.empty((T, B, H), W.dtype), np.empty((T, B, H), W.dtype)
    caches = []
    h_prev, c_prev = h0, c0
    for t in range(T):
        h_prev, c_prev, cache = lstm_step_forward(x[t], h_prev, c_prev, W, b)
        h[t], c[t] = h_prev, c_prev
        caches.append(cache)
    return h, c, caches


def lstm_backward(dh, dcT, cache):
    """Backpropagation through time over one window, from the last step to the first.

    Inputs:
    - dh: (T, B, H) gradient of the loss with respect to every h[t], from the layer above
    - dcT: (B, H) gradient with respect to the last cell state c[-1] (from beyond the window), or None for
      zero
    - cache: from lstm_forward

    Returns (dx (T, B, D), dh0, dc0 (B, H) the gradients of the carried-in state, dW, db).
    """
    T, B, H = dh.shape
    W = cache[0].W
    dx = np.empty((T, B, W.shape[0] - H), W.dtype)
    dW, db = np.zeros_like(W), np.zeros(W.shape[1], W.dtype)
    dh_next = np.zeros((B, H), W.dtype)  # what h[t] gets from step t + 1
    dc_next = np.zeros((B, H), W.dtype) if dcT is None else dcT  # what c[t] gets from step t + 1
    for t in reversed(range(T)):
        dx[t], dh_next, dc_next, dW_t, db_t = lstm_step_backward(dh[t] + dh_next, dc_next, cache[t])
        dW += dW_t  # the same W at every step: the gradients add up
        db += db_t
    return dx, dh_next, dc_next, dW, db


# --- the stack of LSTM layers, with dropout between them ----------------------------------------------------


class StackCache(NamedTuple):
    """What stack_backward needs from stack_forward."""

    layers: list  # per layer, its lstm_forward cache
    masks: list  # per layer, the dropout mask of its output, or None


def stack_forward(x, state, Ws, bs, masks):
    """LSTM layers one on top of the other over a window.

    Inputs:
    - x: (T, B, D) the first layer's inputs (one-hot vectors)
    - state: [(h0, c0)] per layer; Ws, bs: each layer's W and b
    - masks: per layer, None or an inverted-dropout mask multiplied into its output h (which is the input of
      the layer above, or of the dense layer): (T, B, H), or (1, B, H) for the same mask at every step

    Returns (the top layer's output (T, B, H), the final state [(h[-1], c[-1])] per layer, cache).
    """
    caches, new_state = [], []
    inp = x
    for (h0, c0), W, b, mask in zip(state, Ws, bs, masks):
        h, c, cache = lstm_forward(inp, h0, c0, W, b)
        caches.append(cache)
        new_state.append((h[-1], c[-1]))
        inp = h if mask is None else h * mask
    return inp, new_state, StackCache(caches, masks)


def stack_backward(dtop, cache, dstate=None):
    """Backward of stack_forward.

    Inputs: dtop (T, B, H) gradient of the top output; cache; dstate: None, or [(dhT, dcT)] per layer, the
    gradient with respect to the final state (for a loss that reads it).
    Returns (dx (T, B, D), [dW] per layer, [db] per layer, [(dh0, dc0)] per layer).
    """
    caches, masks = cache.layers, cache.masks
    n_layers = len(caches)
    dWs, dbs, dstate0 = [None] * n_layers, [None] * n_layers, [None] * n_layers
    dout = dtop
    for n in reversed(range(n_layers)):
        dh = dout if masks[n] is None else dout * masks[n]
        dcT = None
        if dstate is not None:
            dh = dh.copy()
            dh[-1] += dstate[n][0]
            dcT = dstate[n][1]
        dout, dh0, dc0, dWs[n], dbs[n] = lstm_backward(dh, dcT, caches[n])
        dstate0[n] = (dh0, dc0)
    return dout, dWs, dbs, dstate0


# --- the output: a dense layer at every step, and the softmax -----------------------------------------------


def dense_forward(h, W, b):
    """The same dense layer at every time step. Inputs: h (T, B, H), W (H, V), b (V,).
    Returns (logits (T, B, V), cache): the cache is the pair (h, W)."""
    T, B, H = h.shape
    logits = (h.reshape(T * B, H) @ W).reshape(T, B, -1)
    logits += b
    return logits, (h, W)


def dense_backward(dlogits, cache):
    """Inputs: dlogits (T, B, V) and the cache. Returns dh (T, B, H), dW (H, V), db (V,)."""
    h, W = cache
    T, B, H = h.shape
    d2 = dlogits.reshape(T * B, -1)
    dh = (d2 @ np.ascontiguousarray(W.T)).reshape(T, B, H)
    dW = h.reshape(T * B, H).T @ d2
    db = d2.sum(axis=0)
    return dh, dW, db


def softmax(logits, temperature=1.0):
    """The distribution over the next character, softmax(logits / temperature), along the last axis, computed
    in float64. (temperature > 0; the shift by the maximum leaves it unchanged and keeps exp from
    overflowing.)"""
    z = np.asarray(logits, dtype=np.float64)
    with np.errstate(over='ignore', invalid='ignore'):
        scaled = z / temperature
        if not np.isfinite(scaled).all():  # a tiny temperature (1e-320): shift first, then divide
            scaled = (z - z.max(axis=-1, keepdims=True)) / temperature
    p = np.exp(scaled - scaled.max(axis=-1, keepdims=True))
    return p / p.sum(axis=-1, keepdims=True)


def log_softmax(logits):
    """ln softmax(logits) along the last axis, computed in float64 (the shift by the maximum keeps exp from
    overflowing). -log_softmax(logits)[..., y] is the loss of target y."""
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def softmax_loss(logits, y):
    """Mean cross-entropy of the softmax of the logits against the target characters, -mean(ln p[y]).

    Inputs: logits (..., V), y (...) integer targets.
    Returns (loss in nats per character, dlogits with the shape of logits): dL/dlogits = (p - onehot(y)) / N.
    (The arithmetic stays in the logits' dtype, for speed; only the mean is taken in float64.)
    """
    V = logits.shape[-1]
    z = logits.reshape(-1, V)
    yy = y.reshape(-1)
    N = z.shape[0]
    shifted = z - z.max(axis=1, keepdims=True)
    p = np.exp(shifted)
    s = p.sum(axis=1, keepdims=True)
    logp_y = shifted[np.arange(N), yy] - np.log(s[:, 0])  # ln softmax(z)[y]
    loss = -float(logp_y.mean(dtype=np.float64))
    p /= s  # softmax probabilities
    p[np.arange(N), yy] -= 1.0  # dL/dz = p - onehot(y), over N
    p /= N
    return loss, p.reshape(logits.shape)
