"""The fast engine: the functions of layers.py computed with fused buffers, blocked products and two threads.

Read layers.py first: it is the math. This module computes the same functions (each docstring names the one),
and tests/test_engine.py holds it to them in float64 over random shapes. What makes it fast:

- Everything that does not depend on the recurrence is one large product per window: the input projection
  x Wx + b of every step (a row gather for one-hot inputs), every weight gradient, the input gradient. Only
  h_prev Wh and its transpose stay inside the time loop.
- Those in-loop products are small, and OpenBLAS runs them faster with the weight cut into blocks of columns
  and done as one batched product (column_blocks / matmul_blocks).
- One (T, B, 4H) buffer G per layer serves the whole life of a step: it holds z's input part, then z, then
  the gates, then the factors F with dL/dz = [dc, dc, dh, dc] * F, computed in the forward loop while the
  step's numbers are in cache, and in the backward loop dL/dz itself. The backward loop is then a handful of
  elementwise operations and one product per step.
- On two threads (stack_forward / stack_backward), each thread runs half of the B streams through every layer;
  numpy releases the GIL inside its kernels, so the two overlap, and the halves' weight gradients are added.
"""
import threading
import time

import numpy as np

# OpenBLAS runs the small in-loop products, (B x H) @ (H x 4H) forward and (B x 4H) @ (4H x H) backward, faster
# with the weight cut into blocks of columns and done as one batched product; which width is fastest depends on
# the CPU, the OpenBLAS kernel and B, so best_block measures it on the machine at hand. FORWARD_BLOCK and
# BACKWARD_BLOCK, when set (0: the plain product), fix the widths instead (the tests use this).
FORWARD_BLOCK = BACKWARD_BLOCK = None


def sigmoid(x, out):
    """layers.sigmoid, in place into out: (1 + tanh(x / 2)) / 2."""
    np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


def column_blocks(M, bs):
    """M (K, N) as C-ordered blocks of bs columns, (N / bs, K, bs), for matmul_blocks; M itself (C-ordered) if
    bs is 0 or does not divide N."""
    K, N = M.shape
    if not bs or N % bs:
        return np.ascontiguousarray(M)
    return np.ascontiguousarray(M.reshape(K, N // bs, bs).transpose(1, 0, 2))


def matmul_blocks(x, Mb, out):
    """out = x @ M for M given by column_blocks: (B, K) @ (K, N) -> out (B, N)."""
    if Mb.ndim == 2:
        return np.matmul(x, Mb, out=out)
    nb, _, bs = Mb.shape
    np.matmul(x, Mb, out=out.reshape(out.shape[0], nb, bs).transpose(1, 0, 2))
    return out


BLOCK_CANDIDATES = (0, 16, 32, 64, 128)               # 0: the plain product
_best_blocks = {}                                       # (B, K, N, dtype) -> the fastest width, measured here
_tuning = threading.Lock()


def best_block(B, K, N, dtype):
    """The fastest way to compute a (B, K) @ (K, N) product on this machine: the width of the column blocks, or
    0 for the plain product. Measured at first use for each shape (a few milliseconds), then remembered.
    The widths change the rounding of the products, so a training checkpoint saves them (block_widths) and a
    resumed run reuses them (set_block_widths): it then continues bit for bit."""
    key = (int(B), int(K), int(N), np.dtype(dtype).str)
    with _tuning:
        if key not in _best_blocks:
            _best_blocks[key] = _measure(B, K, N, dtype)
        return _best_blocks[key]


def _measure(B, K, N, dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, K)).astype(dtype)
    M = rng.standard_normal((K, N)).astype(dtype)
    out = np.empty((B, N), dtype)
    timings = {}
    for bs in BLOCK_CANDIDATES:
        if bs and (N % bs or bs >= N):
            continue
        Mb = column_blocks(M, bs)
        matmul_blocks(x, Mb, out)                       # warm up
        best = float('inf')
        for _ in range(5):                              # the fastest of 5 rounds of 5 calls: robust to noise
            t = time.perf_counter()
            for _ in range(5):
                matmul_blocks(x, Mb, out)
            best = min(best, time.perf_counter() - t)
        timings[bs] = best
    return min(timings, key=timings.get)


def block_widths():
    """The widths chosen so far, as a JSON-able list of [B, K, N, dtype, width]."""
    with _tuning:
        return [[*key, width] for key, width in sorted(_best_blocks.items())]


def set_block_widths(table):
    """Use these widths (from block_widths, e.g. of a saved run) instead of measuring those shapes again."""
    with _tuning:
        for row in table if isinstance(table, list) else []:
            try:
                B, K, N, dtype, width = row
                if int(width) in BLOCK_CANDIDATES:
                    _best_blocks[(int(B), int(K), int(N), np.dtype(dtype).str)] = int(width)
            except (TypeError, ValueError):             # a damaged entry: that shape is measured again
                pass


def _width(fixed, B, K, N, dtype):
    return fixed if fixed is not None else best_block(B, K, N, dtype)


class LSTMWindow:
    """One LSTM layer over one window: its buffers, the forward steps and the backward steps.

    The forward (project, then forward_steps) and the backward (backward_start, backward_steps, input_grad,
    backward_finish) run over the whole window, or a time range at a time, in order (the forward-only path
    feeds text in pieces this way). The object is the layer's cache: lstm_backward reads it, and it uses itself
    up (G becomes dL/dz): run the backward once per forward.
    """

    def __init__(self, x, h0, c0, W, b, Whb=None, keep_c=True):
        """x: (T, B, D) inputs or (T, B) indices of one-hot vectors; h0, c0 (B, H); W (D + H, 4H); b (4H,);
        Whb: h_prev's weights W[D:] already in column blocks (for repeated forward-only use), or None;
        keep_c: keep every step's cell state in self.c. The backward pass does not read it (only the factors),
        so training keeps just the last two steps' (self.c is then None, and c_last is the final state)."""
        T, B = x.shape[:2]
        H = h0.shape[1]
        dt = W.dtype
        self.x, self.W, self.b, self.D, self.H = x, W, b, W.shape[0] - H, H
        if Whb is None:                                 # h_prev's weights, in column blocks
            Whb = column_blocks(W[self.D:], _width(FORWARD_BLOCK, B, H, 4 * H, dt))
        self.Whb = Whb
        self.hs = np.empty((T + 1, B, H), dt)          # [h0, h[0], ..., h[T - 1]]: hs[t] is h_prev of step t
        self.cs = np.empty((T + 1 if keep_c else 2, B, H), dt)     # all of c, or the last two steps' in turn
        self.hs[0], self.cs[0] = h0, c0
        self.h = self.hs[1:]                            # (T, B, H) view
        self.c = self.cs[1:] if keep_c else None
        self._done = 0                                  # steps run so far
        self.G = np.empty((T, B, 4 * H), dt)            # z -> gates -> factors F -> (backward) dz
        self.f = self.K = None                          # made by forward_steps(factors=True)

    @property
    def c_last(self):
        """The cell state after the last step run so far."""
        return self.cs[self._done % len(self.cs)]

    # --- forward ---

    def project(self, t0, t1):
        """The input part of z, x Wx + b, for steps t0 <= t < t1: one product for the range (x[t0:t1] ready)."""
        x, W, D, G = self.x, self.W, self.D, self.G
        if x.ndim == 2:
            # A one-hot vector times Wx selects one row of Wx, so the input projection is a row gather.
            np.take(W[:D], x[t0:t1], axis=0, out=G[t0:t1])
        else:
            np.matmul(x[t0:t1].reshape(-1, D), W[:D], out=G[t0:t1].reshape(-1, G.shape[2]))
        G[t0:t1] += self.b

    def forward_steps(self, t0, t1, factors=True):
        """lstm_step_forward for steps t0 <= t < t1, in order (the steps before t0 and project(t0, t1) done).
        factors=False skips what only the backward pass needs (evaluation and sampling)."""
        G, hs, cs, Whb = self.G, self.hs, self.cs, self.Whb
        T, B, H = self.h.shape
        dt = G.dtype
        if factors and self.f is None:
            self.f = np.empty((T, B, H), dt)           # the forget gate, for dc_prev = dc * f
            self.K = np.empty((T, B, H), dt)           # dL/dc gets dh * K from h = o * tanh(c)
        hz = np.empty((B, 4 * H), dt)                   # h_prev @ Wh
        tc = np.empty((B, H), dt)                       # tanh(c)
        tmp = np.empty((B, H), dt)
        tmp3 = np.empty((B, 3 * H), dt) if factors else None
        ring = len(cs)                                  # T + 1, or 2 where only the last two are kept
        for t in range(t0, t1):
            h_prev, c_prev, h, c = hs[t], cs[t % ring], hs[t + 1], cs[(t + 1) % ring]
            Gt = G[t]                                   # (B, 4H), holds z's input part
            matmul_blocks(h_prev, Whb, out=hz)
            Gt += hz                                    # z = x Wx + h_prev Wh + b
            sigmoid(Gt[:, :3 * H], out=Gt[:, :3 * H])  # i, f, o
            np.tanh(Gt[:, 3 * H:], out=Gt[:, 3 * H:])  # g
            i, f, o, g = Gt[:, :H], Gt[:, H:2 * H], Gt[:, 2 * H:3 * H], Gt[:, 3 * H:]
            np.multiply(f, c_prev, out=c)
            np.multiply(i, g, out=tmp)
            c += tmp                                    # c = f * c_prev + i * g
            np.tanh(c, out=tc)
            np.multiply(o, tc, out=h)                   # h = o * tanh(c)
            if not factors:
                continue
            # The factors of lstm_step_backward's gate gradients, computed now while this step's numbers are in
            # cache, over the gates in G[t] (in an order that reads each gate before it is overwritten).
            K, f_ = self.K, self.f
            f_[t] = f
            np.multiply(tc, tc, out=K[t])
            np.subtract(1.0, K[t], out=K[t])
            K[t] *= o                                   # dh/dc = o * (1 - tanh(c)^2)
            np.multiply(g, g, out=tmp)
            np.subtract(1.0, tmp, out=tmp)
            tmp *= i                                    # i * (1 - g^2), for dz_g
            np.subtract(1.0, Gt[:, :3 * H], out=tmp3)
            Gt[:, :3 * H] *= tmp3                       # sigmoid' = s (1 - s) for i, f, o
            Gt[:, :H] *= g                              # dz_i = dc * g * i (1 - i)
            Gt[:, H:2 * H] *= c_prev                    # dz_f = dc * c_prev * f (1 - f)
            Gt[:, 2 * H:3 * H] *= tc                    # dz_o = dh * tanh(c) * o (1 - o)
            Gt[:, 3 * H:] = tmp                         # dz_g = dc * i * (1 - g^2)
        self._done = t1
        if factors and t1 == len(G):
            self.Whb = None                             # the window is done: let the copy of Wh go

    # --- backward ---

    def backward_start(self, dcT=None):
        """Set up the backward pass; dcT (B, H) is the gradient of the last cell state, or None for zero."""
        B, H = self.h.shape[1:]
        dt = self.W.dtype
        self.WhTb = None                                # made by the first backward step, to keep the peak low
        self.dh_next = np.zeros((B, H), dt)             # the gradient flowing into h[t] from step t + 1
        self.dc_next = np.zeros((B, H), dt) if dcT is None else dcT.astype(dt, copy=True)

    def backward_steps(self, dh, t0, t1):
        """lstm_step_backward for steps t1 - 1 down to t0 (the steps from t1 on done), turning G[t] into dL/dz.
        dh[t] is the gradient with respect to h[t] for t0 <= t < t1 (the whole window's dh, or this range's)."""
        G, f, K = self.G, self.f, self.K
        if self.WhTb is None:
            B, H = self.h.shape[1:]                     # Wh^T (4H, H), C-ordered, in column blocks
            self.WhTb = column_blocks(self.W[self.D:].T, _width(BACKWARD_BLOCK, B, 4 * H, H, self.W.dtype))
        dh_next, dc_next, WhTb = self.dh_next, self.dc_next, self.WhTb
        B, H = dh_next.shape
        off = t0 if dh.shape[0] == t1 - t0 else 0       # dh's own index of step t is t - off
        dht = np.empty((B, H), G.dtype)
        dc = np.empty((B, H), G.dtype)
        for t in range(t1 - 1, t0 - 1, -1):
            np.add(dh[t - off], dh_next, out=dht)       # h[t] feeds the output and the next step
            np.multiply(dht, K[t], out=dc)
            dc += dc_next                               # c[t] feeds h[t] and the next step's cell
            dz = G[t]                                   # the factors F become dL/dz = [dc, dc, dh, dc] * F
            dz4 = dz.reshape(B, 4, H)                   # a view: G[t] is contiguous
            dz4[:, :2] *= dc[:, None, :]                # dz_i, dz_f
            dz4[:, 2] *= dht                            # dz_o
            dz4[:, 3] *= dc                             # dz_g
            np.multiply(dc, f[t], out=dc_next)          # dc_prev = dc * f
            matmul_blocks(dz, WhTb, out=dh_next)        # dh_prev = dz Wh^T

    def input_grad(self, t0, t1):
        """dx[t0:t1] = dz Wx^T as one product (the backward steps of the range done); None for indices."""
        if self.x.ndim == 2:
            return None
        if getattr(self, 'WxT', None) is None:
            self.WxT = np.ascontiguousarray(self.W[:self.D].T)
        dz = self.G
        return (dz[t0:t1].reshape(-1, dz.shape[2]) @ self.WxT).reshape(t1 - t0, dz.shape[1], self.D)

    def backward_finish(self):
        """After every backward step: (dh0, dc0, dW, db). The weight gradient is two products over the whole
        window, dW = [x, h_prev]^T dz: the input rows and the h_prev rows."""
        x, W, D, dz = self.x, self.W, self.D, self.G
        T, B, H = self.h.shape
        dz2 = dz.reshape(T * B, 4 * H)
        dW = np.empty_like(W)
        if x.ndim == 2:                                 # the one-hot vectors themselves, (T B, D)
            xs = np.zeros((T * B, D), dtype=W.dtype)
            xs[np.arange(T * B), x.reshape(-1)] = 1
        else:
            xs = x.reshape(T * B, D)
        np.matmul(xs.T, dz2, out=dW[:D])
        np.matmul(self.hs[:-1].reshape(-1, H).T, dz2, out=dW[D:])
        db = dz2.sum(axis=0)
        return self.dh_next, self.dc_next, dW, db

    def release(self, keep_dz=False):
        """Let the buffers go once the backward pass is done with them; keep_dz keeps what input_grad reads."""
        for name in ('hs', 'cs', 'h', 'c', 'f', 'K', 'WhTb', 'dh_next', 'dc_next', 'Whb'):
            setattr(self, name, None)
        if not keep_dz:
            self.G = self.x = self.WxT = None


def lstm_forward(x, h0, c0, W, b):
    """layers.lstm_forward (x may also be (T, B) indices of one-hot vectors). Returns (h, c, cache)."""
    window = LSTMWindow(x, h0, c0, W, b)
    window.project(0, len(window.G))
    window.forward_steps(0, len(window.G))
    return window.h, window.c, window


def lstm_backward(dh, dcT, cache):
    """layers.lstm_backward: (dx or None for indices, dh0, dc0, dW, db). Uses the cache up."""
    T = dh.shape[0]
    cache.backward_start(dcT)
    cache.backward_steps(dh, 0, T)
    return (cache.input_grad(0, T),) + cache.backward_finish()


# --- the stack of layers, on one thread or two ------------------------------------------------------------------

def stack_forward(x, state, Ws, bs, masks, threads=1):
    """layers.stack_forward for (T, B) indices x. threads = 1 runs the layers one after the other; 2 (or more)
    splits the B streams into two halves, each run through every layer on its own thread (numpy releases the
    GIL inside its kernels, so the two overlap), and stack_backward adds the halves' weight gradients: the same
    results up to rounding. Returns (top output (T, B, H), final state, cache)."""
    B = x.shape[1]
    if threads > 1 and B > 1:
        halves = [slice(0, (B + 1) // 2), slice((B + 1) // 2, B)]
        results = _on_threads([
            (lambda s=s: _stack_forward(x[:, s], [(h[s], c[s]) for h, c in state], Ws, bs,
                                        [None if m is None else m[:, s] for m in masks])) for s in halves])
        top = np.concatenate([r[0] for r in results], axis=1)
        new_state = [tuple(np.concatenate([r[1][n][j] for r in results]) for j in range(2)) for n in range(len(Ws))]
        return top, new_state, (halves, [r[2] for r in results])
    top, new_state, cache = _stack_forward(x, state, Ws, bs, masks)
    return top, new_state, (None, [cache])


def stack_backward(dtop, cache, dstate=None, threads=1):
    """layers.stack_backward, without the gradient of the indices: ([dW], [db], [(dh0, dc0)]) per layer.
    Uses the cache up, freeing each layer's buffers as soon as they are used. (threads: as forward ran.)"""
    halves, caches = cache
    if halves is None:
        return _stack_backward(dtop, caches[0], dstate)
    results = _on_threads([
        (lambda s=s, c=c: _stack_backward(dtop[:, s], c, None if dstate is None else [(h[s], d[s]) for h, d in dstate]))
        for s, c in zip(halves, caches)])
    (dWs, dbs, dstate0), (dWs1, dbs1, dstate1) = results
    for a, b in zip(dWs + dbs, dWs1 + dbs1):
        a += b                                          # the two halves' gradients of the shared weights
    return dWs, dbs, [tuple(np.concatenate([p[j], q[j]]) for j in range(2)) for p, q in zip(dstate0, dstate1)]


def _on_threads(jobs):
    """Run each job on its own thread; return their results in order (re-raising the first error)."""
    results, errors = [None] * len(jobs), []

    def work(k):
        try:
            results[k] = jobs[k]()
        except BaseException as e:                      # re-raised by the caller's thread below
            errors.append(e)
    workers = [threading.Thread(target=work, args=(k,)) for k in range(len(jobs))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise errors[0]
    return results


def _stack_forward(x, state, Ws, bs, masks):
    """The layers one after the other, each over the whole window."""
    inp, windows = x, []
    for (h0, c0), W, b, mask in zip(state, Ws, bs, masks):
        window = LSTMWindow(inp, h0, c0, W, b, keep_c=False)
        window.project(0, len(window.G))
        window.forward_steps(0, len(window.G))
        windows.append(window)
        inp = window.h if mask is None else window.h * mask          # the next layer's input
    new_state = [(w.h[-1].copy(), w.c_last.copy()) for w in windows]
    return inp, new_state, (windows, masks)


def _stack_backward(dtop, cache, dstate=None):
    """The layers from the top down; each layer's buffers are let go as soon as they are used up."""
    windows, masks = cache
    dout = dtop
    dWs, dbs, dstate0 = [], [], []
    for n in reversed(range(len(windows))):
        w = windows[n]
        dh = dout if masks[n] is None else dout * masks[n]
        dcT = None
        if dstate is not None:
            dh = dh.copy() if dh is dout else dh
            dh[-1] += dstate[n][0]
            dcT = dstate[n][1]
        T = len(w.G)
        w.backward_start(dcT)
        w.backward_steps(dh, 0, T)
        dout = w.input_grad(0, T)
        dh0, dc0, dW, db = w.backward_finish()
        w.release()
        dWs.insert(0, dW)
        dbs.insert(0, db)
        dstate0.insert(0, (dh0, dc0))
    return dWs, dbs, dstate0


# --- forward only: sampling, evaluation, the explorer -----------------------------------------------------------

class StackRunner:
    """The stack of layers run forward only, for any number of steps at a time, with the state carried from
    call to call: layers.stack_forward without dropout, through the same LSTMWindow forward steps as training
    (without the backward factors). The weights are prepared once, for every call."""

    def __init__(self, Ws, bs, state):
        self.Ws, self.bs, self.state = Ws, bs, state
        self.Whbs = []
        for W, (h0, _) in zip(Ws, state):
            B, H = h0.shape
            self.Whbs.append(column_blocks(W[-H:], _width(FORWARD_BLOCK, B, H, 4 * H, W.dtype)))

    def __call__(self, x, keep=False):
        """Run over x, (T, B) indices. Returns (top output h (T, B, H), and if keep, [(h, c, gates)] per layer:
        h and c (T, B, H), gates (T, B, 4H) the activated [i, f, o, g]; else None). The state moves on to the end
        of x."""
        T = x.shape[0]
        inp, hidden, new_state = x, [], []
        for (h0, c0), W, b, Whb in zip(self.state, self.Ws, self.bs, self.Whbs):
            window = LSTMWindow(inp, h0, c0, W, b, Whb, keep_c=keep)
            window.project(0, T)
            window.forward_steps(0, T, factors=False)
            new_state.append((window.h[-1], window.c_last.copy()))
            if keep:                                    # without the factors, G holds the gates after each step
                hidden.append((window.h, window.c, window.G))
            inp = window.h
        self.state = new_state
        return inp, (hidden if keep else None)
