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

How it computes is a Plan: the threads, and the widths of the in-loop products' column blocks, measured where
training runs and saved in its checkpoint. The forward-only path (stack_forward_only: sampling, evaluation,
the explorer) runs the same forward loop without the backward's factors, with the recurrent weights prepared
once, with the plain product (Plan.plain()), so that it gives the same output in every process; dynamic
evaluation runs stack_forward and stack_backward with the plain plan too.
"""

import threading
from typing import NamedTuple

import numpy as np

from engine_plan import Plan, column_blocks, matmul_blocks


def sigmoid(x, out):
    """layers.sigmoid, in place into out: (1 + tanh(x / 2)) / 2."""
    np.multiply(x, 0.5, out=out)
    np.tanh(out, out=out)
    out *= 0.5
    out += 0.5
    return out


class LSTMWindow:
    """One LSTM layer run over one whole window: layers.lstm_forward, and its cache; backward() is
    lstm_backward.

    Making it runs the forward pass: the input projection x Wx + b of every step as one product, then the
    steps. With factors=True (training) each step also leaves the factors of its gate gradients in G, and
    backward() turns them into dL/dz and returns the gradients; it uses the window up, so run it once. With
    factors=False (the forward-only path) G ends up holding every step's activated gates [i, f, o, g].
    """

    def __init__(self, x, h0, c0, W, b, plan=None, Whb=None, factors=True, keep_c=True):
        """x: (T, B, D) inputs or (T, B) indices of one-hot vectors; h0, c0 (B, H); W (D + H, 4H); b (4H,);
        plan: the widths of the in-loop products (a Plan; None: Plan.plain()); Whb: h_prev's weights W[D:]
        already in column blocks (the forward-only path prepares them once), or None to cut them here;
        factors: compute what backward() needs; keep_c: keep every step's cell state in self.c. The backward
        pass does not read it (only the factors), so training keeps just the last two steps' (self.c is then
        None); c_last is the final state either way."""
        T, B = x.shape[:2]
        H = h0.shape[1]
        dt = W.dtype
        self.plan = plan if plan is not None else Plan.plain()
        self.x, self.W, self.b, self.D = x, W, b, W.shape[0] - H
        if Whb is None:
            Whb = column_blocks(W[self.D :], self.plan.width('forward', B, H, 4 * H, dt))
        self.hs = np.empty((T + 1, B, H), dt)  # [h0, h[0], ..., h[T - 1]]: hs[t] is h_prev of step t
        self.cs = np.empty((T + 1 if keep_c else 2, B, H), dt)  # all of c, or the last two steps' in turn
        self.hs[0], self.cs[0] = h0, c0
        self.h = self.hs[1:]  # (T, B, H) view
        self.c = self.cs[1:] if keep_c else None
        self.c_last = self.cs[T % len(self.cs)]  # (B, H) view: the cell state after the last step
        self.G = np.empty((T, B, 4 * H), dt)  # z -> gates -> factors F -> (backward) dz
        self.f = np.empty((T, B, H), dt) if factors else None  # the forget gate, for dc_prev = dc * f
        self.K = np.empty((T, B, H), dt) if factors else None  # dL/dc gets dh * K from h = o * tanh(c)
        self._project()
        self._forward_steps(Whb)

    # --- forward ---

    def _project(self):
        """The input part of z, x Wx + b, for every step: one product for the window."""
        x, W, D, G = self.x, self.W, self.D, self.G
        if x.ndim == 2:
            # A one-hot vector times Wx selects one row of Wx, so the input projection is a row gather.
            np.take(W[:D], x, axis=0, out=G)
        else:
            np.matmul(x.reshape(-1, D), W[:D], out=G.reshape(-1, G.shape[2]))
        G += self.b

    def _forward_steps(self, Whb):
        """lstm_step_forward for every step, in order; with the factors if self.f is there."""
        G, hs, cs, f_, K = self.G, self.hs, self.cs, self.f, self.K
        T, B, H = self.h.shape
        dt = G.dtype
        hz = np.empty((B, 4 * H), dt)  # h_prev @ Wh
        tc = np.empty((B, H), dt)  # tanh(c)
        tmp = np.empty((B, H), dt)
        tmp3 = np.empty((B, 3 * H), dt)
        ring = len(cs)  # T + 1, or 2 where only the last two are kept
        for t in range(T):
            h_prev, c_prev, h, c = hs[t], cs[t % ring], hs[t + 1], cs[(t + 1) % ring]
            Gt = G[t]  # (B, 4H), holds z's input part
            matmul_blocks(h_prev, Whb, out=hz)
            Gt += hz  # z = x Wx + h_prev Wh + b
            sigmoid(Gt[:, : 3 * H], out=Gt[:, : 3 * H])  # i, f, o
            np.tanh(Gt[:, 3 * H :], out=Gt[:, 3 * H :])  # g
            i, f, o, g = Gt[:, :H], Gt[:, H : 2 * H], Gt[:, 2 * H : 3 * H], Gt[:, 3 * H :]
            np.multiply(f, c_prev, out=c)
            np.multiply(i, g, out=tmp)
            c += tmp  # c = f * c_prev + i * g
            np.tanh(c, out=tc)
            np.multiply(o, tc, out=h)  # h = o * tanh(c)
            if f_ is None:
                continue
            # The factors of lstm_step_backward's gate gradients, computed now while this step's numbers are
            # in cache, over the gates in G[t] (in an order that reads each gate before it is overwritten).
            f_[t] = f
            np.multiply(tc, tc, out=K[t])
            np.subtract(1.0, K[t], out=K[t])
            K[t] *= o  # dh/dc = o * (1 - tanh(c)^2)
            np.multiply(g, g, out=tmp)
            np.subtract(1.0, tmp, out=tmp)
            tmp *= i  # i * (1 - g^2), for dz_g
            np.subtract(1.0, Gt[:, : 3 * H], out=tmp3)
            Gt[:, : 3 * H] *= tmp3  # sigmoid' = s (1 - s) for i, f, o
            Gt[:, :H] *= g  # dz_i = dc * g * i (1 - i)
            Gt[:, H : 2 * H] *= c_prev  # dz_f = dc * c_prev * f (1 - f)
            Gt[:, 2 * H : 3 * H] *= tc  # dz_o = dh * tanh(c) * o (1 - o)
            Gt[:, 3 * H :] = tmp  # dz_g = dc * i * (1 - g^2)

    # --- backward ---

    def backward(self, dh, dcT=None):
        """layers.lstm_backward: dh (T, B, H) the gradient of every h[t]; dcT (B, H) that of the last cell
        state, or None for zero. Returns (dx (T, B, D), or None for indices; dh0, dc0 (B, H); dW; db). The
        window must have been made with factors=True; this uses it up (G becomes dL/dz)."""
        dh0, dc0 = self._backward_steps(dh, dcT)
        dx = self._input_grad()
        dW, db = self._weight_grads()
        return dx, dh0, dc0, dW, db

    def _backward_steps(self, dh, dcT):
        """lstm_step_backward for steps T - 1 down to 0, turning G[t] into dL/dz. Returns (dh0, dc0)."""
        G, f, K = self.G, self.f, self.K
        B, H = self.h.shape[1:]
        dt = G.dtype
        WhTb = column_blocks(self.W[self.D :].T, self.plan.width('backward', B, 4 * H, H, dt))  # Wh^T
        dh_next = np.zeros((B, H), dt)  # the gradient flowing into h[t] from step t + 1
        dc_next = np.zeros((B, H), dt) if dcT is None else dcT.astype(dt, copy=True)
        dht = np.empty((B, H), dt)
        dc = np.empty((B, H), dt)
        for t in range(len(G) - 1, -1, -1):
            np.add(dh[t], dh_next, out=dht)  # h[t] feeds the output and the next step
            np.multiply(dht, K[t], out=dc)
            dc += dc_next  # c[t] feeds h[t] and the next step's cell
            dz = G[t]  # the factors F become dL/dz = [dc, dc, dh, dc] * F
            dz4 = dz.reshape(B, 4, H)  # a view: G[t] is contiguous
            dz4[:, :2] *= dc[:, None, :]  # dz_i, dz_f
            dz4[:, 2] *= dht  # dz_o
            dz4[:, 3] *= dc  # dz_g
            np.multiply(dc, f[t], out=dc_next)  # dc_prev = dc * f
            matmul_blocks(dz, WhTb, out=dh_next)  # dh_prev = dz Wh^T
        return dh_next, dc_next

    def _input_grad(self):
        """dx = dz Wx^T as one product for the window (after the backward steps); None for indices."""
        if self.x.ndim == 2:
            return None
        dz = self.G
        WxT = np.ascontiguousarray(self.W[: self.D].T)
        return (dz.reshape(-1, dz.shape[2]) @ WxT).reshape(dz.shape[0], dz.shape[1], self.D)

    def _weight_grads(self):
        """(dW, db) after the backward steps. The weight gradient is two products over the whole window,
        dW = [x, h_prev]^T dz: the input rows and the h_prev rows."""
        x, W, D, dz = self.x, self.W, self.D, self.G
        T, B, H = self.h.shape
        dz2 = dz.reshape(T * B, 4 * H)
        dW = np.empty_like(W)
        if x.ndim == 2:  # the one-hot vectors themselves, (T B, D)
            xs = np.zeros((T * B, D), dtype=W.dtype)
            xs[np.arange(T * B), x.reshape(-1)] = 1
        else:
            xs = x.reshape(T * B, D)
        np.matmul(xs.T, dz2, out=dW[:D])
        np.matmul(self.hs[:-1].reshape(-1, H).T, dz2, out=dW[D:])
        return dW, dz2.sum(axis=0)

    def release(self):
        """Let the buffers go (stack_backward does, as soon as a layer's backward is done)."""
        self.x = self.hs = self.cs = self.h = self.c = self.c_last = self.G = self.f = self.K = None


# --- the stack of layers, on one thread or two --------------------------------------------------------------


class StackCache(NamedTuple):
    """What stack_backward needs from stack_forward."""

    parts: list  # the streams each thread ran: [slice(0, B)], or two halves
    windows: list  # per part, each layer's LSTMWindow
    masks: list  # per part, each layer's dropout mask (its streams) or None


def stack_forward(x, state, Ws, bs, masks, plan):
    """layers.stack_forward for (T, B) indices x, computed as the Plan says. plan.threads = 1 runs the layers
    one after the other; 2 (or more) splits the B streams into two halves, each run through every layer on its
    own thread (numpy releases the GIL inside its kernels, so the two overlap), and stack_backward adds the
    halves' weight gradients: the same results up to rounding. Returns (top output (T, B, H), final state,
    StackCache)."""
    B = x.shape[1]
    parts = [slice(0, (B + 1) // 2), slice((B + 1) // 2, B)] if plan.threads > 1 and B > 1 else [slice(0, B)]
    part_masks = [[None if m is None else m[:, s] for m in masks] for s in parts]
    results = _on_threads(
        [
            (lambda s=s, m=m: _stack_forward(x[:, s], [(h[s], c[s]) for h, c in state], Ws, bs, m, plan))
            for s, m in zip(parts, part_masks)
        ]
    )
    top = _join([r[0] for r in results], axis=1)
    new_state = [
        (_join([r[1][n][0] for r in results]), _join([r[1][n][1] for r in results])) for n in range(len(Ws))
    ]
    return top, new_state, StackCache(parts, [r[2] for r in results], part_masks)


def stack_backward(dtop, cache, dstate=None):
    """layers.stack_backward: (dx, [dW], [db], [(dh0, dc0)] per layer), dx None for indices. Uses the cache
    up, freeing each layer's buffers as soon as they are used, on the threads the forward pass ran on."""
    parts = cache.parts
    results = _on_threads(
        [
            (
                lambda s=s, w=w, m=m: _stack_backward(
                    dtop[:, s], w, m, None if dstate is None else [(h[s], c[s]) for h, c in dstate]
                )
            )
            for s, w, m in zip(parts, cache.windows, cache.masks)
        ]
    )
    dxs, dWs, dbs, dstate0 = results[0]
    for _, dWs1, dbs1, _ in results[1:]:
        for a, b in zip(dWs + dbs, dWs1 + dbs1):
            a += b  # the two halves' gradients of the shared weights
    dx = None if dxs is None else _join([r[0] for r in results], axis=1)
    dstate0 = [
        (_join([r[3][n][0] for r in results]), _join([r[3][n][1] for r in results])) for n in range(len(dWs))
    ]
    return dx, dWs, dbs, dstate0


def _join(arrays, axis=0):
    """The parts' arrays side by side: the array itself when there is one part."""
    return arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=axis)


def _on_threads(jobs):
    """Run each job, on its own thread when there are several; return their results in order (re-raising the
    first error)."""
    if len(jobs) == 1:
        return [jobs[0]()]
    results, errors = [None] * len(jobs), []

    def work(k):
        try:
            results[k] = jobs[k]()
        except BaseException as e:  # re-raised by the caller's thread below
            errors.append(e)

    workers = [threading.Thread(target=work, args=(k,)) for k in range(len(jobs))]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise errors[0]
    return results


def _stack_forward(x, state, Ws, bs, masks, plan):
    """The layers one after the other, each over the whole window: (top output, final state, the windows)."""
    inp, windows = x, []
    for (h0, c0), W, b, mask in zip(state, Ws, bs, masks):
        window = LSTMWindow(inp, h0, c0, W, b, plan, keep_c=False)
        windows.append(window)
        inp = window.h if mask is None else window.h * mask  # the next layer's input
    new_state = [(w.h[-1].copy(), w.c_last.copy()) for w in windows]
    return inp, new_state, windows


def _stack_backward(dtop, windows, masks, dstate=None):
    """The layers from the top down; each layer's buffers are let go as soon as they are used up."""
    dout = dtop
    dWs, dbs, dstate0 = [], [], []
    for n in reversed(range(len(windows))):
        dh = dout if masks[n] is None else dout * masks[n]
        dcT = None
        if dstate is not None:
            dh = dh.copy() if dh is dout else dh
            dh[-1] += dstate[n][0]
            dcT = dstate[n][1]
        dout, dh0, dc0, dW, db = windows[n].backward(dh, dcT)
        windows[n].release()
        dWs.insert(0, dW)
        dbs.insert(0, db)
        dstate0.insert(0, (dh0, dc0))
    return dout, dWs, dbs, dstate0


# --- forward only: sampling, evaluation, the explorer -------------------------------------------------------


class LayerSteps(NamedTuple):
    """Every step of one layer, as the forward-only path returns them."""

    h: np.ndarray  # (T, B, H) the hidden state
    c: np.ndarray  # (T, B, H) the cell state
    gates: np.ndarray  # (T, B, 4H) the activated gates [i, f, o, g]


def recurrent_blocks(W):
    """h_prev's weights of an LSTM's W (D + H, 4H) as Plan.plain() uses them: made once for
    stack_forward_only, which uses them at every call."""
    H = W.shape[1] // 4
    return column_blocks(W[-H:], 0)


def stack_forward_only(x, state, Ws, bs, Whbs, keep=False):
    """layers.stack_forward without dropout, through the same forward steps as training without the backward's
    factors. x: (T, B) indices; state: [(h0, c0)] per layer; Whbs: recurrent_blocks of each W.
    Returns (top output (T, B, H), the final state, and if keep a LayerSteps per layer, else None)."""
    inp, steps, new_state = x, [], []
    for (h0, c0), W, b, Whb in zip(state, Ws, bs, Whbs):
        window = LSTMWindow(inp, h0, c0, W, b, Whb=Whb, factors=False, keep_c=keep)
        new_state.append((window.h[-1], window.c_last.copy()))  # h: of the output, kept anyway; c: its own
        if keep:  # without the factors, G holds the gates after each step
            steps.append(LayerSteps(window.h, window.c, window.G))
        inp = window.h
    return inp, new_state, (steps if keep else None)
