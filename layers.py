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


# OpenBLAS has a faster kernel for small products than the one it picks for (25 x 512) @ (512 x 2048): cutting the
# weight into blocks of columns and doing one batched product over the blocks runs about 1.3x faster on one thread
# (see _benchmark.py and the README). The block sizes were measured: 32 columns forward, 16 backward.
FORWARD_BLOCK, BACKWARD_BLOCK = 32, 16


def column_blocks(M, bs):
    """M (K, N) as C-ordered blocks of bs columns, (N / bs, K, bs), for matmul_blocks; M itself if bs does not
    divide N."""
    K, N = M.shape
    if N % bs:
        return M
    return np.ascontiguousarray(M.reshape(K, N // bs, bs).transpose(1, 0, 2))


def matmul_blocks(x, Mb, out):
    """out = x @ M for M given by column_blocks: (B, K) @ (K, N) -> out (B, N)."""
    if Mb.ndim == 2:
        return np.matmul(x, Mb, out=out)
    nb, _, bs = Mb.shape
    np.matmul(x, Mb, out=out.reshape(out.shape[0], nb, bs).transpose(1, 0, 2))
    return out


def lstm_forward(x, h0, c0, W, b, backward=True):
    """Run an LSTM layer over a window of T time steps.

    Inputs:
    - x: (T, B, D) inputs, or (T, B) integer indices that stand for one-hot vectors of size D
    - h0, c0: (B, H) initial hidden and cell state
    - W: (D + H, 4H) fused weights, rows [input; h_prev], columns gate blocks [i, f, o, g]
    - b: (4H,) bias
    - backward: False skips what only the backward pass needs (for evaluation and sampling)

    Returns a tuple of:
    - h: (T, B, H) hidden states; h[-1] is the state to carry into the next window
    - c: (T, B, H) cell states; c[-1] is carried likewise
    - cache: what lstm_backward needs
    """
    T = x.shape[0]
    cache = lstm_forward_start(x, h0, c0, W, b)
    lstm_project(cache, 0, T)
    lstm_forward_steps(cache, 0, T, backward)
    return cache['h'], cache['c'], cache


def lstm_forward_start(x, h0, c0, W, b):
    """Allocate a window's buffers. Then lstm_project and lstm_forward_steps run the steps, in one go or a time
    range at a time (the model's pipeline runs layer 2 on one range while layer 1 computes the next).

    One (T, B, 4H) buffer G serves the whole life of a step, to keep memory (and memory traffic) low: it holds
    z's input part, then z, then the gate activations [i, f, o, g], then the factors F with
    dL/dz = [dc, dc, dh, dc] * F that the backward pass needs, and in the backward pass dL/dz itself.
    """
    T, B = x.shape[:2]
    H = h0.shape[1]
    dt = W.dtype
    hs = np.empty((T + 1, B, H), dt)                    # [h0, h[0], ..., h[T - 1]]: hs[t] is h_prev of step t
    cs = np.empty((T + 1, B, H), dt)
    hs[0], cs[0] = h0, c0
    return dict(x=x, W=W, b=b, D=W.shape[0] - H,
                Whb=column_blocks(W[W.shape[0] - H:], FORWARD_BLOCK),     # h_prev's weights, in blocks
                G=np.empty((T, B, 4 * H), dt),          # z -> gates -> factors F -> (backward) dz
                hs=hs, cs=cs, h=hs[1:], c=cs[1:],
                f=np.empty((T, B, H), dt),              # the forget gate, for dc_prev = dc * f
                K=np.empty((T, B, H), dt))              # dL/dc gets dh * K from h = o * tanh(c)


def lstm_project(cache, t0, t1):
    """The input part of z, x Wx + b, for time steps t0 <= t < t1: one product for the range, not one per step.
    (x[t0:t1] must be ready.)"""
    x, W, D, G = cache['x'], cache['W'], cache['D'], cache['G']
    if x.ndim == 2:
        # A one-hot vector times Wx selects one row of Wx, so the input projection is a row gather.
        np.take(W[:D], x[t0:t1], axis=0, out=G[t0:t1])
    else:
        np.matmul(x[t0:t1].reshape(-1, D), W[:D], out=G[t0:t1].reshape(-1, G.shape[2]))
    G[t0:t1] += cache['b']


def lstm_forward_steps(cache, t0, t1, backward=True):
    """Run time steps t0 <= t < t1: the recurrence (the steps before t0 and lstm_project of t0:t1 done).
    backward=False skips the factors that only the backward pass needs."""
    W, Whb = cache['W'], cache['Whb']
    G, hs, cs, f_, K = cache['G'], cache['hs'], cache['cs'], cache['f'], cache['K']
    B, H = hs.shape[1:]

    hz = np.empty((B, 4 * H), dtype=W.dtype)            # h_prev @ Wh
    tc = np.empty((B, H), dtype=W.dtype)                # tanh(c)
    tmp = np.empty((B, H), dtype=W.dtype)
    tmp3 = np.empty((B, 3 * H), dtype=W.dtype)
    for t in range(t0, t1):
        h_prev, c_prev, h, c = hs[t], cs[t], hs[t + 1], cs[t + 1]
        Gt = G[t]                                       # (B, 4H), holds z's input part
        matmul_blocks(h_prev, Whb, out=hz)
        Gt += hz                                        # z = x Wx + h_prev Wh + b
        sigmoid(Gt[:, :3 * H], out=Gt[:, :3 * H])      # i, f, o
        np.tanh(Gt[:, 3 * H:], out=Gt[:, 3 * H:])      # g
        i, f, o, g = Gt[:, :H], Gt[:, H:2 * H], Gt[:, 2 * H:3 * H], Gt[:, 3 * H:]
        np.multiply(f, c_prev, out=c)
        np.multiply(i, g, out=tmp)
        c += tmp                                        # c = f * c_prev + i * g
        np.tanh(c, out=tc)
        np.multiply(o, tc, out=h)                       # h = o * tanh(c)

        if not backward:
            continue
        # The backward pass's factors, computed now while this step's numbers are in cache, over the gates in
        # G[t] (in an order that reads each gate before it is overwritten).
        f_[t] = f
        np.multiply(tc, tc, out=K[t])
        np.subtract(1.0, K[t], out=K[t])
        K[t] *= o                                       # dh/dc = o * (1 - tanh(c)^2)
        np.multiply(g, g, out=tmp)
        np.subtract(1.0, tmp, out=tmp)
        tmp *= i                                        # i * (1 - g^2), for dz_g
        np.subtract(1.0, Gt[:, :3 * H], out=tmp3)
        Gt[:, :3 * H] *= tmp3                           # sigmoid' = s (1 - s) for i, f, o
        Gt[:, :H] *= g                                  # dz_i = dc * g * i (1 - i)
        Gt[:, H:2 * H] *= c_prev                        # dz_f = dc * c_prev * f (1 - f)
        Gt[:, 2 * H:3 * H] *= tc                        # dz_o = dh * tanh(c) * o (1 - o)
        Gt[:, 3 * H:] = tmp                             # dz_g = dc * i * (1 - g^2)
    if t1 == len(G):
        del cache['Whb']                                # the window is done: let the copy of Wh go


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
    T = dh.shape[0]
    lstm_backward_start(cache, dcT)
    lstm_backward_steps(cache, dh, 0, T)
    return (lstm_input_grad(cache, 0, T),) + lstm_backward_finish(cache)


def lstm_backward_start(cache, dcT=None):
    """Set up the backward pass. Then lstm_backward_steps runs the steps from the last backwards, lstm_input_grad
    gives the gradient of the inputs, and lstm_backward_finish the weights'. The backward pass turns the cache's
    factors into dL/dz in place: run it once per forward pass."""
    W, h = cache['W'], cache['h']
    B, H = h.shape[1:]
    cache['WhTb'] = None                                # made by the first backward step, to keep the peak low
    cache['dh_next'] = np.zeros((B, H), dtype=W.dtype)  # gradient flowing into h[t] from step t + 1
    cache['dc_next'] = np.zeros((B, H), dtype=W.dtype) if dcT is None else dcT.astype(W.dtype, copy=True)


def lstm_backward_steps(cache, dh, t0, t1):
    """Run the backward steps t1 - 1 down to t0 (the steps from t1 on must be done), turning G[t] into dL/dz.
    dh[t] is the gradient with respect to h[t] for t0 <= t < t1 (the whole window's dh, or this range's)."""
    G, f, K, W = cache['G'], cache['f'], cache['K'], cache['W']
    if cache['WhTb'] is None:
        cache['WhTb'] = column_blocks(W[cache['D']:].T, BACKWARD_BLOCK)   # Wh^T (4H, H) as C-ordered blocks
    dh_next, dc_next, WhTb = cache['dh_next'], cache['dc_next'], cache['WhTb']
    B, H = dh_next.shape
    off = t0 if dh.shape[0] == t1 - t0 else 0           # dh's own index of step t is t - off
    dht = np.empty((B, H), dtype=W.dtype)
    dc = np.empty((B, H), dtype=W.dtype)
    for t in range(t1 - 1, t0 - 1, -1):
        np.add(dh[t - off], dh_next, out=dht)           # h[t] feeds the output and the next step
        np.multiply(dht, K[t], out=dc)
        dc += dc_next                                   # c[t] feeds h[t] and the next step's cell
        dz = G[t]                                       # the factors F become dL/dz = [dc, dc, dh, dc] * F
        dz4 = dz.reshape(B, 4, H)                       # a view: G[t] is contiguous
        dz4[:, :2] *= dc[:, None, :]                    # dz_i, dz_f
        dz4[:, 2] *= dht                                # dz_o
        dz4[:, 3] *= dc                                 # dz_g
        np.multiply(dc, f[t], out=dc_next)              # dc_prev = dc * f
        matmul_blocks(dz, WhTb, out=dh_next)            # dh_prev = dz Wh^T


def lstm_input_grad(cache, t0, t1):
    """The gradient with respect to the inputs x[t0:t1], dz Wx^T as one product (the backward steps of the
    range done), or None when the inputs were indices."""
    if cache['x'].ndim == 2:
        return None
    W, D, dz = cache['W'], cache['D'], cache['G']
    if 'WxT' not in cache:
        cache['WxT'] = np.ascontiguousarray(W[:D].T)
    return (dz[t0:t1].reshape(-1, dz.shape[2]) @ cache['WxT']).reshape(t1 - t0, dz.shape[1], D)


def lstm_backward_finish(cache):
    """After every backward step: (dh0, dc0, dW, db). The weight gradient is a few products over the whole
    window: dW = [x, h_prev]^T dz, the input rows and the h_prev rows each one product."""
    x, W, D, dz = cache['x'], cache['W'], cache['D'], cache['G']
    T, B, H = cache['h'].shape
    dz2 = dz.reshape(T * B, 4 * H)
    dW = np.empty_like(W)
    if x.ndim == 2:                                     # the one-hot vectors themselves, (T B, D)
        xs = np.zeros((T * B, D), dtype=W.dtype)
        xs[np.arange(T * B), x.reshape(-1)] = 1
    else:
        xs = x.reshape(T * B, D)
    np.matmul(xs.T, dz2, out=dW[:D])
    np.matmul(cache['hs'][:-1].reshape(-1, H).T, dz2, out=dW[D:])
    db = dz2.sum(axis=0)
    return cache['dh_next'], cache['dc_next'], dW, db


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
