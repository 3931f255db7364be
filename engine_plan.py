"""How the engine computes (engine.py): a Plan of its threads and of the widths of the column blocks of its
in-loop products, which a training run keeps in its checkpoint.

OpenBLAS runs the small in-loop products, (B x H) @ (H x 4H) forward and (B x 4H) @ (4H x H) backward, faster
with the weight cut into blocks of columns and done as one batched product (column_blocks, matmul_blocks);
which width is fastest depends on the CPU, the OpenBLAS kernel and B, so training measures it where it runs.
"""

import functools
import threading
import time

import numpy as np


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


BLOCK_CANDIDATES = (0, 16, 32, 64, 128)  # 0: the plain product


class Plan:
    """How the engine computes: its threads, and the width of the column blocks of each in-loop product.

    OpenBLAS runs the small in-loop products, (B x H) @ (H x 4H) forward and (B x 4H) @ (4H x H) backward,
    faster with the weight cut into blocks of columns and done as one batched product; which width is fastest
    depends on the CPU, the OpenBLAS kernel and B, so training measures it where it runs, at the first use of
    each shape (a few milliseconds). A width changes the products' rounding: a plan keeps every width it used
    in its table (widths()), a training checkpoint saves it, and Plan(widths=table) uses those again, so that
    a resumed run continues bit for bit. Plan.plain() uses the plain product everywhere, so that the same
    input gives the same output in every process: sampling, evaluation (dynamic too) and the explorer use it.

    threads: 1, or 2 to run half of the streams on each of two threads (stack_forward); forward, backward: a
    width to use for every product of that kind instead of measuring (0: the plain product)."""

    def __init__(self, threads=1, widths=None, forward=None, backward=None):
        self.threads = threads
        self._fixed = {'forward': forward, 'backward': backward}
        self._table = {} if widths is None else read_widths(widths)
        self._lock = threading.Lock()  # two threads may ask for a width at once

    @classmethod
    def plain(cls, threads=1):
        return cls(threads, forward=0, backward=0)

    def width(self, kind, B, K, N, dtype):
        """The width of the column blocks of a (B, K) @ (K, N) product of kind 'forward' or 'backward'."""
        key = (int(B), int(K), int(N), np.dtype(dtype).str)
        with self._lock:
            if key not in self._table:
                fixed = self._fixed[kind]
                self._table[key] = fixed if fixed is not None else _fastest_width(*key)
            return self._table[key]

    def widths(self):
        """The widths used so far, as a JSON-able list of [B, K, N, dtype, width]."""
        with self._lock:
            return [[*key, width] for key, width in sorted(self._table.items())]


@functools.lru_cache(maxsize=None)
def _fastest_width(B, K, N, dtype):
    """The fastest way to compute a (B, K) @ (K, N) product on this machine: the width of the column blocks,
    or 0 for the plain product; the fastest of 5 rounds of 5 calls of each, robust to noise. Measured once a
    process (two runs in one process then compute alike)."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((B, K)).astype(dtype)
    M = rng.standard_normal((K, N)).astype(dtype)
    out = np.empty((B, N), dtype)
    timings = {}
    for bs in BLOCK_CANDIDATES:
        if bs and (N % bs or bs >= N):
            continue
        Mb = column_blocks(M, bs)
        matmul_blocks(x, Mb, out)  # warm up
        best = float('inf')
        for _ in range(5):
            t = time.perf_counter()
            for _ in range(5):
                matmul_blocks(x, Mb, out)
            best = min(best, time.perf_counter() - t)
        timings[bs] = best
    return min(timings, key=timings.get)


def read_widths(table):
    """A table of Plan.widths() (e.g. of a saved run) as the plan's dict. Raises ValueError, naming the first
    wrong entry, if the table is not such a list."""
    if not isinstance(table, list):
        raise ValueError(f'the table of block widths is a {type(table).__name__}, not a list')
    widths = {}
    for k, row in enumerate(table):
        key = _width_key(row)
        if key is None:
            raise ValueError(
                f'entry {k} of the table of block widths is {row!r}, not [B, K, N, float dtype, '
                f'width] with sizes above 0 and a width among {list(BLOCK_CANDIDATES)}'
            )
        widths[key] = row[4]
    return widths


def _width_key(row):
    """The key (B, K, N, dtype) of a row [B, K, N, dtype, width] of Plan.widths(), or None if it is
    damaged."""
    if not isinstance(row, list) or len(row) != 5 or not isinstance(row[3], str):
        return None
    sizes = [row[0], row[1], row[2], row[4]]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in sizes):
        return None
    if min(row[:3]) < 1 or row[4] not in BLOCK_CANDIDATES:
        return None
    try:
        dtype = np.dtype(row[3])
    except TypeError:
        return None
    return (row[0], row[1], row[2], dtype.str) if dtype.kind == 'f' else None
