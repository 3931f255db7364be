"""The model's two kinds of layer: an LSTM run over a whole window, and a dense layer with a softmax loss.

Every layer is a `*_forward` that returns its outputs and a cache, and a `*_backward(dout, cache)` that returns
the gradients in the order of the forward's inputs (the CS231n convention).

Arrays are time-major: `x[t]` is one contiguous (B, D) block. Sizes: T time steps, B parallel streams, D inputs,
H hidden units, V characters in the vocabulary.

The LSTM keeps one fused weight matrix W of shape (D + H, 4H): rows for the layer's input first, then for
h_prev; columns in four blocks of H for the gates i, f, o, g. For one time step

    z = [x, h_prev] W + b
    i, f, o = sigmoid(z_i), sigmoid(z_f), sigmoid(z_o);  g = tanh(z_g)
    c = f * c_prev + i * g
    h = o * tanh(c)

Speed: everything that does not depend on the recurrence is one large product per window (the input projection,
the weight gradients). Only h_prev @ W_h and its transpose stay inside the time loop, and the forward loop also
computes, while the step's numbers are in cache, the factors that the backward loop needs, so that the backward
loop is a handful of elementwise operations and one product per step.
"""
import numpy as np


def sigmoid(x, out=None):
    """Logistic sigmoid, written through tanh so that it never overflows: sigmoid(x) = (1 + tanh(x / 2)) / 2."""
    out = np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def lstm_forward(x, h0, c0, W, b):
    """Run an LSTM layer over a window of T time steps.

    Inputs:
    - x: (T, B, D) inputs, or (T, B) integer indices that stand for one-hot vectors of size D
    - h0, c0: (B, H) initial hidden and cell state
    - W: (D + H, 4H) fused weights, rows [input; h_prev], columns gate blocks [i, f, o, g]
    - b: (4H,) bias

    Returns a tuple of:
    - h: (T, B, H) hidden states; h[-1] is the state to carry into the next window
    - c: (T, B, H) cell states; c[-1] is carried likewise
    - cache: what lstm_backward needs
    """
    T, B = x.shape[:2]
    H = h0.shape[1]
    D = W.shape[0] - H
    Wx, Wh = W[:D], W[D:]                               # views: rows of a C-ordered matrix stay contiguous
    if x.ndim == 2:
        # A one-hot vector times Wx selects one row of Wx, so the input projection is a row gather.
        a = np.take(Wx, x, axis=0)                      # (T, B, 4H)
    else:
        a = (x.reshape(T * B, D) @ Wx).reshape(T, B, 4 * H)
    a += b                                              # a holds z's input part; the loop completes it in place

    h = np.empty((T, B, H), dtype=W.dtype)
    c = np.empty((T, B, H), dtype=W.dtype)
    F = np.empty((T, B, 4 * H), dtype=W.dtype)          # dL/dz = [dc, dc, dh, dc] * F, gate by gate
    K = np.empty((T, B, H), dtype=W.dtype)              # dL/dc gets dh * K from h = o * tanh(c)
    hz = np.empty((B, 4 * H), dtype=W.dtype)            # h_prev @ Wh
    tc = np.empty((B, H), dtype=W.dtype)                # tanh(c)
    tmp = np.empty((B, H), dtype=W.dtype)

    h_prev, c_prev = h0, c0
    for t in range(T):
        at = a[t]                                       # (B, 4H)
        np.matmul(h_prev, Wh, out=hz)
        at += hz                                        # z = x Wx + h_prev Wh + b
        sigmoid(at[:, :3 * H], out=at[:, :3 * H])      # i, f, o
        np.tanh(at[:, 3 * H:], out=at[:, 3 * H:])      # g
        i, f, o, g = at[:, :H], at[:, H:2 * H], at[:, 2 * H:3 * H], at[:, 3 * H:]
        np.multiply(f, c_prev, out=c[t])
        np.multiply(i, g, out=tmp)
        c[t] += tmp                                     # c = f * c_prev + i * g
        np.tanh(c[t], out=tc)
        np.multiply(o, tc, out=h[t])                    # h = o * tanh(c)

        # The backward pass's factors, computed now while this step's numbers are in cache.
        Ft = F[t]
        np.subtract(1.0, at[:, :3 * H], out=Ft[:, :3 * H])
        Ft[:, :3 * H] *= at[:, :3 * H]                  # sigmoid' = s (1 - s) for i, f, o
        Ft[:, :H] *= g                                  # dz_i = dc * g * i (1 - i)
        Ft[:, H:2 * H] *= c_prev                        # dz_f = dc * c_prev * f (1 - f)
        Ft[:, 2 * H:3 * H] *= tc                        # dz_o = dh * tanh(c) * o (1 - o)
        np.multiply(g, g, out=Ft[:, 3 * H:])
        np.subtract(1.0, Ft[:, 3 * H:], out=Ft[:, 3 * H:])
        Ft[:, 3 * H:] *= i                              # dz_g = dc * i * (1 - g^2)
        np.multiply(tc, tc, out=K[t])
        np.subtract(1.0, K[t], out=K[t])
        K[t] *= o                                       # dh/dc = o * (1 - tanh(c)^2)
        h_prev, c_prev = h[t], c[t]

    cache = (x, h0, c0, W, a, h, c, F, K)
    return h, c, cache


def lstm_backward(dh, dcT, cache):
    """Backward pass through time of an LSTM layer over one window.

    Inputs:
    - dh: (T, B, H) gradient of the loss with respect to every hidden state h[t]
    - dcT: (B, H) gradient with respect to the last cell state c[-1], or None for zero
    - cache: from lstm_forward

    Returns a tuple of:
    - dx: (T, B, D) gradient with respect to the inputs, or None when they were indices
    - dh0, dc0: (B, H) gradients with respect to the initial state
    - dW: (D + H, 4H), db: (4H,)
    """
    x, h0, c0, W, a, h, c, F, K = cache
    T, B, H = h.shape
    D = W.shape[0] - H
    WhT = np.ascontiguousarray(W[D:].T)                 # (4H, H): a C-ordered copy is faster to read than W.T
    dz = np.empty((T, B, 4 * H), dtype=W.dtype)
    dh_next = np.zeros((B, H), dtype=W.dtype)           # gradient flowing into h[t] from step t + 1
    dc_next = np.zeros((B, H), dtype=W.dtype) if dcT is None else dcT.astype(W.dtype, copy=True)
    dht = np.empty((B, H), dtype=W.dtype)
    dc = np.empty((B, H), dtype=W.dtype)

    for t in reversed(range(T)):
        np.add(dh[t], dh_next, out=dht)                 # h[t] feeds the output and the next step
        np.multiply(dht, K[t], out=dc)
        dc += dc_next                                   # c[t] feeds h[t] and the next step's cell
        dzt = dz[t]
        np.multiply(F[t].reshape(B, 4, H), dc[:, None, :], out=dzt.reshape(B, 4, H))   # dz_i, dz_f, dz_g
        np.multiply(F[t, :, 2 * H:3 * H], dht, out=dzt[:, 2 * H:3 * H])                 # dz_o
        np.multiply(dc, a[t, :, H:2 * H], out=dc_next)  # dc_prev = dc * f
        np.matmul(dzt, WhT, out=dh_next)                # dh_prev = dz Wh^T

    # Weight gradients: one product over the whole window, inputs and h_prev fused as in W.
    dz2 = dz.reshape(T * B, 4 * H)
    xh = np.empty((T, B, D + H), dtype=W.dtype)         # [x, h_prev] for every step
    if x.ndim == 2:
        xh[:, :, :D] = 0
        np.put_along_axis(xh[:, :, :D], x[:, :, None], 1, axis=2)   # the one-hot vectors themselves
        dx = None
    else:
        xh[:, :, :D] = x
        dx = (dz2 @ np.ascontiguousarray(W[:D].T)).reshape(T, B, D)
    xh[0, :, D:] = h0
    xh[1:, :, D:] = h[:-1]
    dW = xh.reshape(T * B, D + H).T @ dz2
    db = dz2.sum(axis=0)
    return dx, dh_next, dc_next, dW, db


def dense_forward(h, W, b):
    """Dense layer applied at every time step.

    Inputs: h (T, B, H), W (H, V), b (V,).
    Returns (logits (T, B, V), cache).
    """
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


def softmax_loss(logits, y):
    """Mean cross-entropy of the softmax of the logits against the target characters.

    Inputs: logits (..., V), y (...) integer targets.
    Returns (loss in nats per character, dlogits with the shape of logits).
    """
    V = logits.shape[-1]
    z = logits.reshape(-1, V)
    yy = y.reshape(-1)
    N = z.shape[0]
    shifted = z - z.max(axis=1, keepdims=True)
    p = np.exp(shifted)
    s = p.sum(axis=1, keepdims=True)
    logp_y = shifted[np.arange(N), yy] - np.log(s[:, 0])
    loss = -float(logp_y.mean(dtype=np.float64))
    p /= s                                              # softmax probabilities
    p[np.arange(N), yy] -= 1.0                          # dL/dz = p - onehot(y), over N
    p /= N
    return loss, p.reshape(logits.shape)
