"""The GPU engine's kernels (CUDA, through CuPy) and their numpy twins.

gpu.py runs the model on a device through one object of ops: `CudaOps` on an NVIDIA GPU, `NumpyOps` anywhere.
Both compute the same few things; NumpyOps says each in a few lines of numpy, so that everything in gpu.py but
the kernels runs and is tested on any machine (tests/test_gpu.py), and on a GPU the kernels are held to their
twins. Everything else gpu.py does is array code that numpy and CuPy both run.

What the ops are, and why they are kernels:
- forward_loop / backward_loop: the time loop of an LSTM layer (layers.lstm_forward / lstm_backward). A step
  is one cuBLAS product and one fused elementwise kernel (the four gates, the cell and h; or the four gates'
  gradients and the cell's). Launched from Python, a CuPy call costs ~25 us, more than the GPU needs for a
  step at small batches; so the loop calls cuBLAS directly with pointers computed in advance (base + t x
  stride), and launches the kernel with a few scalar arguments: ~15 us a step instead of ~60. Up to
  fused_max_b streams a step is one kernel, the product inside it; with `graphs` on, such a loop's T launches
  are captured once per set of buffers as a CUDA graph and replayed, one launch from the host (CuPy refuses
  a cuBLAS call in a capture, as measured: that is why the product is inside).
- softmax_xent: the loss and its gradient (layers.softmax_loss), one thread per row.
- rmsprop: optimizer.RMSprop's update of every parameter in one kernel over one flat buffer, with the clipping
  scale computed on the GPU from the gradients' squared norm (no wait for the host).
"""

import collections
import contextlib
import os

import numpy as np

# The kernels, in CUDA C++: one thread per (stream b, unit j) of a step; REAL is float or double.
with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), 'gpu_kernels.cu'), encoding='utf-8') as _f:
    SOURCE = _f.read()

# Up to this many streams the fused step kernels run the time loop, above it cuBLAS and a kernel per step. A
# first guess, not yet measured: .ci/gpu-check's fused-step probe (fused.log) measures where cuBLAS becomes
# faster.
FUSED_MAX_B = 64
# Whether the fused time loops are replayed as CUDA graphs (a loop's T launches captured once per set of
# buffers, then one launch from the host). Off until fused.log's graph rows show that it pays.
GRAPHS = False
GRAPHS_KEPT = 32  # the graphs kept, the most recently used: a few per layer and window shape
KERNELS = (
    'step_forward',
    'step_backward',
    'step_forward_fused',
    'step_backward_fused',
    'softmax_xent',
    'rmsprop',
)
THREADS = 256  # threads per block
# NVRTC's options for the kernels (CuPy adds its own, -ftz=true among them: float32 denormals flush to zero).
OPTIONS = ('-std=c++14',)


# --- the numpy twins ----------------------------------------------------------------------------------------


def step_forward(G, c_prev, c, h):
    """The kernel step_forward: z (B, 4H) in G -> the activated gates in G; the new c and h, (B, H)."""
    H = c.shape[1]
    G[:, : 3 * H] = 0.5 * (1 + np.tanh(0.5 * G[:, : 3 * H]))  # i, f, o
    G[:, 3 * H :] = np.tanh(G[:, 3 * H :])  # g
    i, f, o, g = G[:, :H], G[:, H : 2 * H], G[:, 2 * H : 3 * H], G[:, 3 * H :]
    c[...] = f * c_prev + i * g
    h[...] = o * np.tanh(c)


def step_backward(dh_out, dh_next, dc_next, G, c_prev, c):
    """The kernel step_backward: the gates in G -> dL/dz; dc_next (dL/dc of the next step) -> dL/dc_prev."""
    H = c.shape[1]
    i, f, o, g = (G[:, k * H : (k + 1) * H].copy() for k in range(4))
    tc = np.tanh(c)
    dh = dh_out + dh_next
    dc = dc_next + dh * o * (1 - tc * tc)
    G[...] = np.concatenate(
        [dc * g * i * (1 - i), dc * c_prev * f * (1 - f), dh * tc * o * (1 - o), dc * i * (1 - g * g)], axis=1
    )
    dc_next[...] = dc * f


def softmax_xent(z, y):
    """The kernel softmax_xent: z (N, V) logits -> dL/dlogits in place; returns ln softmax(z)[y] per row."""
    N = len(z)
    shifted = z - z.max(axis=1, keepdims=True)
    s = np.exp(shifted).sum(axis=1)
    logp_y = (shifted[np.arange(N), y] - np.log(s)).astype(np.float64)
    z[...] = np.exp(shifted) / s[:, None]
    z[np.arange(N), y] -= 1
    z /= N
    return logp_y


def rmsprop(p, g, cache, norm2, clip, lr, rho, eps, weight_decay, n_decay):
    """The kernel rmsprop, on flat arrays: optimizer.RMSprop.step with the clipping scale from norm2."""
    norm = float(np.sqrt(norm2))
    if clip > 0 and norm > clip:
        g = g * p.dtype.type(clip / norm)
    cache *= p.dtype.type(rho)
    cache += p.dtype.type(1.0 - rho) * (g * g)
    u = g / (np.sqrt(cache) + p.dtype.type(eps)) * p.dtype.type(lr)
    u[:n_decay] += p.dtype.type(lr * weight_decay) * p[:n_decay]
    p -= u


class NumpyOps:
    """The ops on numpy arrays, through the twins: gpu.py runs on these on any machine."""

    xp = np
    name = 'numpy'

    @staticmethod
    def asnumpy(a):
        return np.asarray(a)

    def forward_loop(self, Wh, hs, cs, G):
        """layers.lstm_forward's loop. G (T, B, 4H) holds x Wx + b of each step; hs, cs (T + 1, B, H) hold h0,
        c0 at [0]. Fills hs[1:], cs[1:]; leaves the activated gates in G."""
        for t in range(len(G)):
            G[t] += hs[t] @ Wh  # cuBLAS: C = A B + 1 C
            step_forward(G[t], cs[t], cs[t + 1], hs[t + 1])

    def backward_loop(self, Wh, cs, G, dh, dh_next, dc_next):
        """layers.lstm_backward's loop: dh (T, B, H) from above; dh_next, dc_next (B, H) the gradients from
        beyond the window (become those of h0 and c0). Turns the gates in G into dL/dz."""
        for t in range(len(G) - 1, -1, -1):
            step_backward(dh[t], dh_next, dc_next, G[t], cs[t], cs[t + 1])
            np.matmul(G[t], Wh.T, out=dh_next)  # dh_prev = dz Wh^T

    def softmax_xent(self, z, y):
        return softmax_xent(z, y)

    def side(self):
        """A block of work that may run beside what follows (on a GPU: on a second stream)."""
        return contextlib.nullcontext()

    def join(self):
        """Wait for the work of side() blocks."""

    def rmsprop(self, p, g, cache, norm2, clip, lr, rho, eps, weight_decay, n_decay):
        rmsprop(p, g, cache, norm2, clip, lr, rho, eps, weight_decay, n_decay)


class CudaOps:
    """The ops on CuPy arrays, through the CUDA kernels and cuBLAS called directly. Up to fused_max_b streams,
    a step of the time loop is one fused kernel (its product inside); above, a cuBLAS product and a kernel."""

    name = 'cuda'
    fused_max_b = FUSED_MAX_B
    graphs = GRAPHS

    def __init__(self, cupy):
        self.xp = cp = cupy
        self.asnumpy = cp.asnumpy
        from cupy.cuda import cublas

        self._cublas = cublas
        self._handle = cp.cuda.device.get_cublas_handle()
        self._modules = {}
        self._scalars = {}  # host alpha / beta for cuBLAS, kept alive
        self._side = cp.cuda.Stream(non_blocking=True)
        self._capturing = cp.cuda.Stream(non_blocking=True)  # CuPy captures on a stream of its own
        self._graphs = collections.OrderedDict()

    @contextlib.contextmanager
    def side(self):
        """Work on a second stream, after what the current stream has queued so far: the weight gradients'
        products there fill the GPU while the time loop of the layer below runs its small steps."""
        ready = self.xp.cuda.Event(block=False, disable_timing=True)
        ready.record()
        self._side.wait_event(ready)
        with self._side:
            yield

    def join(self):
        """The current stream waits for the work of side() blocks."""
        self.xp.cuda.get_current_stream().wait_event(self._side.record())

    def _kernels(self, dtype):
        dtype = np.dtype(dtype)
        if dtype not in self._modules:
            real = {'float32': 'float', 'float64': 'double'}[dtype.name]
            module = self.xp.RawModule(code=SOURCE.replace('REAL', real), options=OPTIONS)
            self._modules[dtype] = {name: module.get_function(name) for name in KERNELS}
            self._scalars[dtype] = (np.ones(1, dtype), np.zeros(1, dtype))
        return self._modules[dtype]

    def _gemm(self, dtype):
        """cuBLAS's gemm for the dtype, its host alpha = 1 and beta pointers, on the current stream."""
        self._kernels(dtype)  # makes the scalars
        cb = self._cublas
        cb.setStream(self._handle, self.xp.cuda.get_current_stream().ptr)
        cb.setPointerMode(self._handle, cb.CUBLAS_POINTER_MODE_HOST)
        one, zero = self._scalars[np.dtype(dtype)]
        gemm = cb.sgemm if np.dtype(dtype) == np.float32 else cb.dgemm
        return gemm, one.ctypes.data, zero.ctypes.data

    def forward_loop(self, Wh, hs, cs, G):
        if G.shape[1] <= self.fused_max_b:
            self._launched('forward', G, (Wh, hs, cs, G), lambda: self.forward_steps_fused(Wh, hs, cs, G))
            return
        T, B, H, hstep, gstep, grid = self._loop(G, fused=False)
        H4, n = 4 * H, (np.int32(B), np.int32(H))
        h0, c0, g0, w = self._ptr(hs), self._ptr(cs), self._ptr(G), self._ptr(Wh)
        k = self._kernels(G.dtype)['step_forward']
        gemm, one, _ = self._gemm(G.dtype)
        for t in range(T):
            # row-major G[t] (B, 4H) += hs[t] (B, H) @ Wh (H, 4H): column-major G^T = Wh^T hs^T + G^T
            gemm(self._handle, 0, 0, H4, B, H, one, w, H4, h0 + t * hstep, H, one, g0 + t * gstep, H4)
            k(
                grid,
                (THREADS,),
                (
                    np.uint64(g0 + t * gstep),
                    np.uint64(c0 + t * hstep),
                    np.uint64(c0 + (t + 1) * hstep),
                    np.uint64(h0 + (t + 1) * hstep),
                    *n,
                ),
            )

    def forward_steps_fused(self, Wh, hs, cs, G):
        """forward_loop as one fused kernel a step (its product inside): kernel launches only, which a CUDA
        graph can capture."""
        T, B, H, hstep, gstep, grid = self._loop(G, fused=True)
        h0, c0, g0, w = self._ptr(hs), self._ptr(cs), self._ptr(G), self._ptr(Wh)
        k = self._kernels(G.dtype)['step_forward_fused']
        for t in range(T):
            k(
                grid,
                (THREADS,),
                (
                    np.uint64(g0 + t * gstep),
                    np.uint64(h0 + t * hstep),
                    np.uint64(w),
                    np.uint64(c0 + t * hstep),
                    np.uint64(c0 + (t + 1) * hstep),
                    np.uint64(h0 + (t + 1) * hstep),
                    np.int32(B),
                    np.int32(H),
                ),
            )

    def _launched(self, direction, G, buffers, launches):
        """Run launches(), the kernel launches of a time loop over G and its other buffers (no product, no
        copy): directly, or, where graphs is on, as the CUDA graph captured at the first call with the same
        key, replayed. The key, (direction, G's dtype and shape, every buffer's address), fixes every argument
        of every launch: a graph does what its launches do on whatever the buffers hold then, so one kept
        after its buffers went is still right for the buffers at those addresses."""
        if not self.graphs:
            launches()
            return
        key = (direction, G.dtype.str, G.shape, *map(self._ptr, buffers))
        self._kernels(G.dtype)  # compiled and loaded before a capture, not inside it
        graph = self._graphs.pop(key, None)
        if graph is None:
            graph = self._capture(launches)
        self._graphs[key] = graph  # the most recently used last
        while len(self._graphs) > GRAPHS_KEPT:
            self._graphs.popitem(last=False)
        graph.launch()

    def _capture(self, launches):
        """launches() captured into a CUDA graph, not run: the graph."""
        stream = self._capturing
        with stream:
            stream.begin_capture()
            try:
                launches()
            except BaseException:
                with contextlib.suppress(Exception):  # the capture ends; the first error is the one said
                    stream.end_capture()
                raise
            return stream.end_capture()

    @staticmethod
    def _ptr(a):
        """The device address of an array's first element."""
        return a.data.ptr

    @staticmethod
    def _rows(dtype):
        """TB of the fused kernels: the rows a block computes."""
        return 16 if np.dtype(dtype).itemsize == 8 else 32

    def _loop(self, G, fused):
        """A layer's time loop, from its G (T, B, 4H): T, B, H, the bytes from one step to the next in h and c
        (B, H) and in G (B, 4H), and the grid of its step kernel (fused: a block for TB rows of 8 units; else
        a thread for each stream and unit)."""
        T, B, H4 = G.shape
        H, rows = H4 // 4, self._rows(G.dtype)
        grid = ((H + 7) // 8, (B + rows - 1) // rows) if fused else ((B * H + THREADS - 1) // THREADS,)
        return T, B, H, B * H * G.itemsize, B * H4 * G.itemsize, grid

    def backward_loop(self, Wh, cs, G, dh, dh_next, dc_next):
        gemm, one, zero = self._gemm(G.dtype)
        T, B, H, hstep, gstep, grid = self._loop(G, fused=False)
        H4 = 4 * H
        if B <= self.fused_max_b:
            buffers = (Wh, cs, G, dh, dh_next, dc_next)
            self._launched('backward', G, buffers, lambda: self.backward_steps_fused(*buffers))
            # dh0 = dz[0] Wh^T, the gradient of the carried-in h, as the unfused loop leaves it
            gemm(
                self._handle,
                1,
                0,
                H,
                B,
                H4,
                one,
                self._ptr(Wh),
                H4,
                self._ptr(G),
                H4,
                zero,
                self._ptr(dh_next),
                H,
            )
            return
        n = np.int32(B), np.int32(H)
        c0, g0, d0, w = self._ptr(cs), self._ptr(G), self._ptr(dh), self._ptr(Wh)
        dhn, dcn = np.uint64(self._ptr(dh_next)), np.uint64(self._ptr(dc_next))
        k = self._kernels(G.dtype)['step_backward']
        for t in range(T - 1, -1, -1):
            k(
                grid,
                (THREADS,),
                (
                    np.uint64(d0 + t * hstep),
                    dhn,
                    dcn,
                    np.uint64(g0 + t * gstep),
                    np.uint64(c0 + t * hstep),
                    np.uint64(c0 + (t + 1) * hstep),
                    *n,
                ),
            )
            # row-major dh_next (B, H) = dz (B, 4H) @ Wh^T: column-major dh_next^T = (Wh^T)^T dz^T
            gemm(self._handle, 1, 0, H, B, H4, one, w, H4, g0 + t * gstep, H4, zero, self._ptr(dh_next), H)

    def backward_steps_fused(self, Wh, cs, G, dh, dh_next, dc_next):
        """backward_loop's steps as one fused kernel a step (the product dz_next Wh^T inside), leaving dh_next
        as given (the product for h0 is backward_loop's): kernel launches only, which a CUDA graph can
        capture."""
        T, B, H, hstep, gstep, grid = self._loop(G, fused=True)
        c0, g0, d0, w = self._ptr(cs), self._ptr(G), self._ptr(dh), self._ptr(Wh)
        dhn, dcn = np.uint64(self._ptr(dh_next)), np.uint64(self._ptr(dc_next))
        k = self._kernels(G.dtype)['step_backward_fused']
        for t in range(T - 1, -1, -1):
            last = t == T - 1
            k(
                grid,
                (THREADS,),
                (
                    np.uint64(0 if last else g0 + (t + 1) * gstep),
                    np.uint64(w),
                    np.uint64(d0 + t * hstep),
                    dhn,
                    dcn,
                    np.uint64(g0 + t * gstep),
                    np.uint64(c0 + t * hstep),
                    np.uint64(c0 + (t + 1) * hstep),
                    np.int32(B),
                    np.int32(H),
                    np.int32(last),
                ),
            )

    def softmax_xent(self, z, y):
        N, V = z.shape
        logp_y = self.xp.empty(N, np.float64)
        k = self._kernels(z.dtype)['softmax_xent']
        k(
            ((N + THREADS - 1) // THREADS,),
            (THREADS,),
            (z, y.astype(np.int32, copy=False), logp_y, np.int32(N), np.int32(V)),
        )
        return logp_y

    def rmsprop(self, p, g, cache, norm2, clip, lr, rho, eps, weight_decay, n_decay):
        k = self._kernels(p.dtype)['rmsprop']
        real = p.dtype.type
        n = p.size
        k(
            ((n + THREADS - 1) // THREADS,),
            (THREADS,),
            (
                p,
                g,
                cache,
                norm2,
                np.float64(clip),
                real(lr),
                real(rho),
                real(1.0 - rho),
                real(eps),
                real(lr * weight_decay),
                np.int64(n),
                np.int64(n_decay),
            ),
        )
