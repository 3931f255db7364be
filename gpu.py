"""The GPU engine: the model trained, scored and sampled on an NVIDIA GPU through CuPy (--device cuda).

Read layers.py first: it is the math. This module computes the same functions as engine.py does on the CPU
(each docstring names its function of layers.py or lstm.py), and tests/test_gpu.py holds it to them in
float64. Its array code runs on numpy as well as on CuPy: the few kernels (gpu_kernels.py) have numpy twins,
so that all of it runs and is tested on any machine, and on a GPU the kernels are held to the twins. What
makes it fast:

- The parameters, their gradients and RMSprop's state live on the GPU in flat buffers for the whole run, the
  weight matrices first; every other buffer is allocated once per window shape. The host sees them only at a
  checkpoint (Trainer.to_host).
- Everything that does not depend on the recurrence is one large product per window, as in engine.py: the
  input projection of every layer above the first, every weight gradient, the input gradient, the dense
  layer. The first layer's input projection is a row gather, its weight gradient a product with the one-hot
  vectors.
- Inside the time loop a step is one cuBLAS product and one fused kernel, launched with pointers computed in
  advance (gpu_kernels.py): at small batches Python's cost of a launch, not the GPU, sets the pace.
- The loss, the gradient's norm, the clipping and the update of every parameter (one kernel) stay on the GPU;
  the host waits once per window, for the loss and a check that the weights are finite.
- Dropout masks are drawn on the host by the run's generator in the same order as on the CPU
  (lstm.draw_masks), so that a run moves between the devices with its random stream.
"""

import concurrent.futures

import numpy as np

import lstm

# --- the parameters on the device ---------------------------------------------------------------------------


ALIGN = 256  # bytes: where each array of a Flat starts (cuBLAS's fastest kernels want aligned operands)


class Flat:
    """Named arrays in one flat device buffer, each name a view into it: the weight matrices first (RMSprop's
    weight decay takes the first n_decay numbers), then the vectors, each group by name, so that the layout is
    the same however the names came (a new run, a resume): the gradient's norm is one sum over the buffer, the
    same bits only over the same layout. Each array starts ALIGN bytes from the last; the gaps hold zeros."""

    def __init__(self, xp, shapes, dtype):
        self.xp, self.shapes = xp, shapes
        self.names = sorted(shapes, key=lambda k: (len(shapes[k]) < 2, k))
        sizes = {k: int(np.prod(shapes[k])) for k in self.names}
        step = max(1, ALIGN // np.dtype(dtype).itemsize)
        self.offset, start = {}, 0
        for k in self.names:
            self.offset[k] = start
            start += -(-sizes[k] // step) * step  # on to the next ALIGN bytes
        matrices = [k for k in self.names if len(shapes[k]) > 1]
        self.n_decay = self.offset[matrices[-1]] + sizes[matrices[-1]] if matrices else 0
        self.buf = xp.zeros(start, dtype)
        self.view = {
            k: self.buf[self.offset[k] : self.offset[k] + sizes[k]].reshape(shapes[k]) for k in self.names
        }

    def load(self, arrays):
        """Copy host arrays (a dict with these names) in."""
        host = np.zeros(self.buf.shape, self.buf.dtype)
        for k in self.names:
            a = np.asarray(arrays[k], self.buf.dtype).ravel()
            host[self.offset[k] : self.offset[k] + a.size] = a
        self.buf[...] = self.xp.asarray(host)

    def store(self, arrays, asnumpy):
        """Copy into host arrays (a dict with these names), in place."""
        host = asnumpy(self.buf)
        for k in self.names:
            a = arrays[k]
            a[...] = host[self.offset[k] : self.offset[k] + a.size].reshape(a.shape)


class Window:
    """The buffers of one window of T steps over B streams, allocated once per shape."""

    def __init__(self, xp, T, B, H, V, n_layers, dtype, training):
        self.T, self.B = T, B
        self.hs = [xp.zeros((T + 1, B, H), dtype) for _ in range(n_layers)]  # [h0, h[0], ..., h[T - 1]]
        self.cs = [xp.zeros((T + 1, B, H), dtype) for _ in range(n_layers)]
        self.G = [xp.empty((T, B, 4 * H), dtype) for _ in range(n_layers)]  # z -> gates -> dL/dz
        self.logits = xp.empty((T * B, V), dtype)
        if training:
            self.dh_next, self.dc_next = xp.zeros((B, H), dtype), xp.zeros((B, H), dtype)
            self.onehot = xp.zeros((T * B, V), dtype)
            self.rows = xp.arange(T * B)


class Model:
    """The model's parameters on a device, and lstm.forward / lstm.backward of a window (the state carried in
    self.state from window to window: [(h, c)] per layer, device arrays of (B, H)).

    ops: gpu_kernels.CudaOps or NumpyOps; params: the host dict of lstm.init_params; training: keep gradient
    buffers too."""

    def __init__(self, ops, params, training=True):
        self.ops, self.xp = ops, ops.xp
        self.V, self.H, self.n_layers = lstm.sizes(params)
        self.dtype = params['dense.W'].dtype
        shapes = {k: v.shape for k, v in params.items()}
        self.params = Flat(self.xp, shapes, self.dtype)
        self.params.load(params)
        self.grads = Flat(self.xp, shapes, self.dtype) if training else None
        self.windows = {}
        self.state = None

    def zero_state(self, B):
        xp = self.xp
        self.state = [
            (xp.zeros((B, self.H), self.dtype), xp.zeros((B, self.H), self.dtype))
            for _ in range(self.n_layers)
        ]

    def set_state(self, state):
        """The state from host arrays [(h, c)] per layer."""
        self.state = [(self.xp.asarray(h, self.dtype), self.xp.asarray(c, self.dtype)) for h, c in state]

    def host_state(self):
        return [(self.ops.asnumpy(h), self.ops.asnumpy(c)) for h, c in self.state]

    def _window(self, T, B):
        key = (T, B)
        if key not in self.windows:
            if len(self.windows) > 4:  # a few shapes (sampling, a text's last window)
                self.windows.clear()
            self.windows[key] = Window(
                self.xp, T, B, self.H, self.V, self.n_layers, self.dtype, training=self.grads is not None
            )
        return self.windows[key]

    def forward(self, x, masks=None, weights=None):
        """lstm.forward (layers.stack_forward, then layers.dense_forward) of x (T, B) device indices from
        self.state, with dropout masks (device arrays or None per layer) and the recurrent weights as dropped
        (weights: a W per layer, or None for the parameters'). Moves self.state on.
        Returns (w, inputs): the window's buffers w, which hold the logits (T B, V) in w.logits, and each
        layer's input."""
        xp, p = self.xp, self.params.view
        T, B = x.shape
        w = self._window(T, B)
        masks = masks or [None] * self.n_layers
        inputs, inp = [], None
        for n in range(self.n_layers):
            W = weights[n] if weights else p[f'lstm{n + 1}.W']
            D = W.shape[0] - self.H
            hs, cs, G = w.hs[n], w.cs[n], w.G[n]
            hs[0], cs[0] = self.state[n]
            if n == 0:
                xp.take(W[:D], x, axis=0, out=G)  # a one-hot vector times Wx selects a row of Wx
            else:
                xp.matmul(inp.reshape(T * B, D), W[:D], out=G.reshape(T * B, 4 * self.H))
            G += p[f'lstm{n + 1}.b']
            self.ops.forward_loop(W[D:], hs, cs, G)
            inputs.append(inp)
            inp = hs[1:] if masks[n] is None else hs[1:] * masks[n]
        self.state = [(hs[T].copy(), cs[T].copy()) for hs, cs in zip(w.hs, w.cs)]
        xp.matmul(inp.reshape(T * B, self.H), p['dense.W'], out=w.logits)
        w.logits += p['dense.b']
        inputs.append(inp)
        return w, inputs

    def loss_and_grads(self, x, y, masks=None, weight_masks=None):
        """lstm.loss_and_grads of one window: the mean loss over x -> y (device (T, B) indices), a device
        float64 scalar; the gradients in self.grads. self.state moves on."""
        xp, p, g = self.xp, self.params.view, self.grads.view
        weights = None
        if weight_masks and any(m is not None for m in weight_masks):
            weights = []
            for n, m in enumerate(weight_masks):
                W = p[f'lstm{n + 1}.W'].copy()
                if m is not None:
                    W[-self.H :] *= m
                weights.append(W)
        w, inputs = self.forward(x, masks, weights)
        T, B = x.shape
        logp_y = self.ops.softmax_xent(w.logits, y.reshape(-1))  # w.logits becomes dL/dlogits
        loss = -logp_y.mean()
        dl, top = w.logits, inputs[-1].reshape(T * B, self.H)
        with self.ops.side():
            xp.matmul(top.T, dl, out=g['dense.W'])
            xp.sum(dl, axis=0, out=g['dense.b'])
        dtop = xp.matmul(dl, p['dense.W'].T).reshape(T, B, self.H)
        self._stack_backward(w, x, dtop, inputs, masks, weights, weight_masks)
        self.ops.join()
        return loss

    def _stack_backward(self, w, x, dtop, inputs, masks, weights, weight_masks):
        """layers.stack_backward into self.grads, from the top layer down."""
        xp, p = self.xp, self.params.view
        T, B = x.shape
        H = self.H
        for n in reversed(range(self.n_layers)):
            W = weights[n] if weights else p[f'lstm{n + 1}.W']
            D = W.shape[0] - H
            dh = dtop if not masks or masks[n] is None else dtop * masks[n]
            w.dh_next.fill(0)
            w.dc_next.fill(0)
            self.ops.backward_loop(W[D:], w.cs[n], w.G[n], xp.ascontiguousarray(dh), w.dh_next, w.dc_next)
            dz = w.G[n].reshape(T * B, 4 * H)
            with self.ops.side():  # beside the next layer's time loop
                self._weight_grads(w, x, n, D, inputs, weight_masks)
            if n > 0:
                dtop = xp.matmul(dz, W[:D].T).reshape(T, B, D)

    def _weight_grads(self, w, x, n, D, inputs, weight_masks):
        """Layer n's dW = [x, h_prev]^T dz and db, from its dz in w.G[n]: products over the whole window."""
        xp, g = self.xp, self.grads.view
        T, B = x.shape
        H = self.H
        dz = w.G[n].reshape(T * B, 4 * H)
        dW = g[f'lstm{n + 1}.W']
        if n == 0:  # the one-hot vectors themselves, (T B, V)
            w.onehot.fill(0)
            w.onehot[w.rows, x.reshape(-1)] = 1
            xp.matmul(w.onehot.T, dz, out=dW[:D])
        else:
            xp.matmul(inputs[n].reshape(T * B, D).T, dz, out=dW[:D])
        xp.matmul(w.hs[n][:-1].reshape(T * B, H).T, dz, out=dW[D:])
        xp.sum(dz, axis=0, out=g[f'lstm{n + 1}.b'])
        if weight_masks and weight_masks[n] is not None:
            dW[D:] *= weight_masks[n]  # the gradient reaches a dropped weight through its mask


# --- training -----------------------------------------------------------------------------------------------


class Trainer:
    """A run trained on the device: the weights, RMSprop's state, the carried state and the moving average
    live there between checkpoints. step() is _training.py's window (lstm.loss_and_grads, RMSprop.step,
    update_average); to_host() and from_host() move all of it to and from the run's host arrays."""

    def __init__(self, ops, run):
        self.ops, self.xp = ops, ops.xp
        self.model = Model(ops, run.params)
        shapes = {k: v.shape for k, v in run.params.items()}
        self.cache = Flat(self.xp, shapes, self.model.dtype)
        self.ema = None
        # The next window's dropout masks, drawn ahead by another thread (step), with the generator's state
        # before them.
        self.ahead = None
        self._drawer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix='masks')
        self.from_host(run)

    def from_host(self, run):
        """Take the run's weights, RMSprop state, carried state and moving average (a resume, a new epoch)."""
        self._give_back()
        self.rng = run.rng  # the masks' generator
        self.newer = False  # whether the device holds steps the host has not seen
        self.model.params.load(run.params)
        self.cache.load(run.opt.cache)
        self.model.set_state(run.state)
        if run.ema is None:
            self.ema = None
        else:
            if self.ema is None:
                self.ema = Flat(self.xp, self.cache.shapes, self.model.dtype)
            self.ema.load(run.ema)

    def to_host(self, run):
        """Write everything back into the run's host arrays, for a checkpoint, validation or a sample; nothing
        if no step was taken since the last from_host or to_host. The masks drawn ahead are given back first,
        so that the run's generator is where the CPU's would be."""
        self._give_back()
        if not self.newer:
            return
        self.newer = False
        asnumpy = self.ops.asnumpy
        self.model.params.store(run.params, asnumpy)
        self.cache.store(run.opt.cache, asnumpy)
        run.state = self.model.host_state()
        if self.ema is not None and run.ema is not None:
            self.ema.store(run.ema, asnumpy)

    def step(self, x, y, opt, draw=None, ema=0.0):
        """One window: forward, backward, RMSprop (opt holds lr, rho, eps, clip, weight_decay; its step count
        moves on) and the moving average with decay ema. x, y: host (T, B) indices; draw: draws a window's
        dropout masks from the run's generator (a function of no argument returning lstm.draw_masks's
        (masks, weight_masks)), or None for none. While the window is queued and computed, another thread
        draws the next window's masks (a few ms of the host's, which the GPU would otherwise wait for);
        to_host gives them back if they are not used. Returns (loss, whether every weight is finite)."""
        masks, weight_masks = self._masks(x.shape, draw)
        if draw is None:
            return self._window(x, y, opt, masks, weight_masks, ema)
        state = self.rng.bit_generator.state
        ahead = self._drawer.submit(draw)  # numpy's generator leaves the lock to Python while it draws
        try:
            return self._window(x, y, opt, masks, weight_masks, ema)
        finally:
            self.ahead = (state, x.shape, ahead.result())

    def _window(self, x, y, opt, masks, weight_masks, ema):
        xp, m = self.xp, self.model
        dev = [None if a is None else xp.asarray(a) for a in (masks or [])]
        wdev = [None if a is None else xp.asarray(a) for a in (weight_masks or [])]
        loss = m.loss_and_grads(xp.asarray(x, np.int32), xp.asarray(y, np.int32), dev or None, wdev or None)
        grad = m.grads.buf
        norm2 = xp.asarray(xp.sum(xp.square(grad), dtype=np.float64))  # on the device (numpy: a 0-d array)
        self.ops.rmsprop(
            m.params.buf,
            grad,
            self.cache.buf,
            norm2,
            opt.clip,
            opt.lr,
            opt.rho,
            opt.eps,
            opt.weight_decay,
            m.params.n_decay,
        )
        opt.steps += 1
        self.newer = True
        if self.ema is not None:
            self.ema.buf *= ema
            self.ema.buf += (1.0 - ema) * m.params.buf
        finite = xp.isfinite(m.params.buf).all()
        loss, ok = self.ops.asnumpy(xp.stack([loss, finite.astype(np.float64)]))
        return float(loss), bool(ok)

    def _masks(self, shape, draw):
        """The masks of a window of this shape: drawn ahead by the last step, or drawn now."""
        if draw is None:
            return None, None
        if self.ahead is not None and self.ahead[1] == shape:
            masks, self.ahead = self.ahead[2], None
            return masks
        self._give_back()
        return draw()

    def _give_back(self):
        """Undraw the masks drawn ahead: the generator as it was before them."""
        if self.ahead is not None:
            self.rng.bit_generator.state = self.ahead[0]
            self.ahead = None


# --- forward only: evaluation, sampling, the explorer -------------------------------------------------------


class Predictor:
    """lstm.Predictor on the device: B streams side by side, any number of steps at a time, the state carried
    from call to call. self.state is the host's view of it (reading and setting it copies)."""

    def __init__(self, ops, params, B=1):
        self.model = Model(ops, params, training=False)
        self.model.zero_state(B)
        self.ops = ops

    @property
    def state(self):
        return self.model.host_state()

    @state.setter
    def state(self, state):
        self.model.set_state(state)

    def __call__(self, ids, keep=False):
        """ids: (T, B) host indices. Returns host logits (T, B, V); if keep, also per layer (h, c (T, B, H),
        the activated gates (T, B, 4H)) as host arrays."""
        ids = np.asarray(ids)
        T, B = ids.shape
        w, _ = self.model.forward(self.model.xp.asarray(ids, np.int32))
        logits = self.ops.asnumpy(w.logits).reshape(T, B, -1)
        if not keep:
            return logits
        asnumpy = self.ops.asnumpy
        return logits, [
            (asnumpy(w.hs[n][1:]), asnumpy(w.cs[n][1:]), asnumpy(w.G[n])) for n in range(self.model.n_layers)
        ]


def evaluate_dynamic(ops, params, ids, *, lr, window, decay, progress=None):
    """lstm.evaluate_dynamic on the device: each window scored, then one step of gradient descent on it."""
    m = Model(ops, params)
    xp, p = ops.xp, m.params.buf
    p0 = p.copy()
    m.zero_state(1)
    dev_ids = xp.asarray(np.asarray(ids), np.int32)
    sums, counts = [], []
    for start in range(0, len(ids) - 1, window):
        n = min(window, len(ids) - 1 - start)
        x, y = dev_ids[start : start + n, None], dev_ids[start + 1 : start + n + 1, None]
        loss = m.loss_and_grads(x, y)
        p -= p.dtype.type(lr) * m.grads.buf
        if decay:
            p += p.dtype.type(decay) * (p0 - p)
        sums.append(float(loss) * n)
        counts.append(n)
        if progress is not None:
            progress(start + n)
    return np.array(sums), np.array(counts)
