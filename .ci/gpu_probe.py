"""Where a training window's time goes on the GPU, by the number of chunks B (.ci/gpu-check: fused.log).

For each B, with the fused step kernels (the step's product inside the kernel; "graph": the same, each loop
replayed as a CUDA graph, CudaOps.graphs) and with cuBLAS and a kernel per step:
- window: gpu.Trainer.step, a whole window as _training.py runs it (the best of a few, in ms);
- forward / backward: one layer's time loop alone, the host's time to queue it (Python's launches) and the
  GPU's own time (CUDA events); a loop whose host time is above its GPU time is bound by the launches.
FUSED_MAX_B in gpu_kernels.py belongs where the fused window stops being the faster, GRAPHS on where the graph
rows beat the fused ones. On the kernels emulated on the CPU the same rows come out with host times only
(tests/test_gpu_kernels.py runs it so).

    python .ci/gpu_probe.py [--batches 1 8 25 ...] [--hidden 512]
"""

import argparse
import os
import sys
import time
import types

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..'))

import lstm  # noqa: E402
from optimizer import RMSprop  # noqa: E402
from util import devices  # noqa: E402

PATHS = {'fused': (1 << 30, False), 'graph': (1 << 30, True), 'cublas': (0, False)}  # fused_max_b, graphs
PARTS = ('window', 'forward', 'backward')


class Clock:
    """The host's and the GPU's milliseconds for a call: CUDA events where there is a GPU, else host only."""

    def __init__(self, xp):
        self.cuda = getattr(xp, 'cuda', None)

    def __call__(self, fn):
        if self.cuda is None:
            t = time.perf_counter()
            fn()
            return (time.perf_counter() - t) * 1e3, None
        start, end = self.cuda.Event(), self.cuda.Event()
        self.cuda.get_current_stream().synchronize()
        t = time.perf_counter()
        start.record()
        fn()
        host = (time.perf_counter() - t) * 1e3
        end.record()
        end.synchronize()
        return host, self.cuda.get_elapsed_time(start, end)


def window_ms(device, args, B):
    """The best of args.repeats training windows (each ends by bringing the loss to the host)."""
    params = lstm.init_params(args.vocab, args.hidden, 2, rng=np.random.default_rng(0))
    run = types.SimpleNamespace(
        params=params, opt=RMSprop(params), state=lstm.zero_state(params, B), ema=None, rng=None
    )
    trainer = device.trainer(run)
    x = np.random.default_rng(1).integers(0, args.vocab, (args.window, B))
    for _ in range(2):
        trainer.step(x, x, run.opt)
    best = float('inf')
    for _ in range(args.repeats):
        t = time.perf_counter()
        trainer.step(x, x, run.opt)
        best = min(best, time.perf_counter() - t)
    return best * 1e3


class Layer:
    """One layer's time loop on its own buffers, forward or backward, its inputs reset before each call."""

    def __init__(self, ops, args, B):
        xp, T, H = ops.xp, args.window, args.hidden
        rng = np.random.default_rng(2)
        self.ops, self.xp = ops, xp
        self.Wh = xp.asarray(rng.normal(0, 0.05, (H, 4 * H)).astype(np.float32))
        self.hs, self.cs = xp.zeros((T + 1, B, H), np.float32), xp.zeros((T + 1, B, H), np.float32)
        self.z = xp.asarray(rng.normal(0, 1, (T, B, 4 * H)).astype(np.float32))
        self.G = self.z.copy()
        self.dh = xp.asarray(rng.normal(0, 0.01, (T, B, H)).astype(np.float32))
        self.dh_next, self.dc_next = xp.zeros((B, H), np.float32), xp.zeros((B, H), np.float32)
        self.loop('forward')()
        self.gates = self.G.copy()

    def reset(self, part):
        """The loop's inputs as at the start: z for the forward, the forward's gates for the backward."""
        self.G[...] = self.z if part == 'forward' else self.gates
        self.dh_next.fill(0)
        self.dc_next.fill(0)

    def loop(self, part):
        """The forward or backward loop as a call: ops.forward_loop / backward_loop."""
        if part == 'forward':
            return lambda: self.ops.forward_loop(self.Wh, self.hs, self.cs, self.G)
        return lambda: self.ops.backward_loop(self.Wh, self.cs, self.G, self.dh, self.dh_next, self.dc_next)


def rows(device, args, B):
    """The table's rows for B: (part, path, host ms, GPU ms)."""
    ops = device.ops
    clock = Clock(ops.xp)

    def best(layer, part, fn):
        """The call with the least GPU time (host time without a GPU), inputs reset before each."""
        times = []
        for _ in range(args.repeats + 1):  # the first untimed
            layer.reset(part)
            times.append(clock(fn))
        return min(times[1:], key=lambda t: t[0] if t[1] is None else t[1])

    out, saved = [], (ops.fused_max_b, ops.graphs)
    try:
        for path, (fused_max_b, graphs) in PATHS.items():
            ops.fused_max_b, ops.graphs = fused_max_b, graphs
            try:
                these = [('window', path, window_ms(device, args, B), None)]
                layer = Layer(ops, args, B)
                for part in PARTS[1:]:
                    these.append((part, path, *best(layer, part, layer.loop(part))))
            # A way this GPU refuses (a capture CuPy cannot make) is a row, not the end.
            except Exception as e:
                these = [('failed', path, f'{type(e).__name__}: {e}', None)]
            out.extend(these)
    finally:
        ops.fused_max_b, ops.graphs = saved
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument('--batches', type=int, nargs='+', default=[1, 8, 25, 48, 64, 96, 128, 256])
    parser.add_argument('--hidden', type=int, default=512)
    parser.add_argument('--window', type=int, default=100)
    parser.add_argument('--vocab', type=int, default=65)
    parser.add_argument('--repeats', type=int, default=5)
    args = parser.parse_args(argv)
    device = devices.open_device('cuda')
    print(f'{devices.device_name(device)}; 2x{args.hidden} LSTM, V={args.vocab}, T={args.window}, float32')
    print(f'{"B":>5}  {"part":<9} {"path":<7} {"host ms":>9} {"GPU ms":>9}  chars/s')
    for B in args.batches:
        for part, path, host, gpu in rows(device, args, B):
            if part == 'failed':
                print(f'{B:>5}  {path:<7} failed: {host}', flush=True)
                continue
            gpu_text = '-' if gpu is None else f'{gpu:.3f}'
            rate = f'{B * args.window / host * 1e3:,.0f}' if part == 'window' else ''
            print(f'{B:>5}  {part:<9} {path:<7} {host:>9.3f} {gpu_text:>9}  {rate}', flush=True)


if __name__ == '__main__':
    main()
