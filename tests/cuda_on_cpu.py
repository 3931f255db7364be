"""The GPU engine's CUDA kernels run on the CPU: their source compiled by g++ with a shim that gives each
block one OS thread per CUDA thread (a barrier for __syncthreads), and cuBLAS's gemm computed by numpy from
the same pointers. EmulatedCudaOps is gpu_kernels.CudaOps with only its launches replaced, so that the
kernels' indexing and the launchers' pointers and arguments are tested on any machine with a C++20 compiler;
speed is not."""

import collections
import contextlib
import ctypes
import hashlib
import os
import shutil
import subprocess
import tempfile

import numpy as np

import gpu_kernels

SHIM = r'''
#include <algorithm>
#include <barrier>
#include <cmath>
#include <cstddef>
#include <thread>
#include <vector>
using std::max; using std::min; using std::tanh; using std::exp; using std::log; using std::sqrt;
struct dim3 { unsigned x = 1, y = 1, z = 1; };
static thread_local dim3 threadIdx, blockIdx;
static dim3 blockDim, gridDim;
static std::barrier<>* block_barrier;
#define __global__
#define __device__
#define __shared__ static
static inline void __syncthreads() { block_barrier->arrive_and_wait(); }
'''

LAUNCHER = r'''
template <typename F> static void launch(unsigned gx, unsigned gy, unsigned bx, F f) {
    gridDim = {gx, gy, 1}; blockDim = {bx, 1, 1};
    for (unsigned y = 0; y < gy; y++) for (unsigned x = 0; x < gx; x++) {
        std::barrier<> barrier(bx);
        block_barrier = &barrier;
        std::vector<std::thread> threads;
        for (unsigned t = 0; t < bx; t++)
            threads.emplace_back([=] { threadIdx = {t, 0, 0}; blockIdx = {x, y, 0}; f(); });
        for (auto& th : threads) th.join();
    }
}
extern "C" {
void run_step_forward(unsigned gx, unsigned gy, unsigned bx, REAL* G, const REAL* cp, REAL* c, REAL* h, int B,
                      int H)
    { launch(gx, gy, bx, [=] { step_forward(G, cp, c, h, B, H); }); }
void run_step_backward(unsigned gx, unsigned gy, unsigned bx, const REAL* dho, const REAL* dhn, REAL* dcn,
                       REAL* G, const REAL* cp, const REAL* c, int B, int H)
    { launch(gx, gy, bx, [=] { step_backward(dho, dhn, dcn, G, cp, c, B, H); }); }
void run_step_forward_fused(unsigned gx, unsigned gy, unsigned bx, REAL* G, const REAL* hp, const REAL* Wh,
                            const REAL* cp, REAL* c, REAL* h, int B, int H)
    { launch(gx, gy, bx, [=] { step_forward_fused(G, hp, Wh, cp, c, h, B, H); }); }
void run_step_backward_fused(unsigned gx, unsigned gy, unsigned bx, const REAL* dzn, const REAL* Wh,
                             const REAL* dho, REAL* dhn, REAL* dcn, REAL* G, const REAL* cp, const REAL* c,
                             int B, int H, int last)
    { launch(gx, gy, bx, [=] { step_backward_fused(dzn, Wh, dho, dhn, dcn, G, cp, c, B, H, last); }); }
void run_softmax_xent(unsigned gx, unsigned gy, unsigned bx, REAL* z, const int* y, double* lp, int N, int V)
    { launch(gx, gy, bx, [=] { softmax_xent(z, y, lp, N, V); }); }
void run_rmsprop(unsigned gx, unsigned gy, unsigned bx, REAL* p, const REAL* g, REAL* cache, const double* n2,
                 double clip, REAL lr, REAL rho, REAL omr, REAL eps, REAL lrd, long long n, long long nd)
    { launch(gx, gy, bx, [=] { rmsprop(p, g, cache, n2, clip, lr, rho, omr, eps, lrd, n, nd); }); }
}
'''


def compiler():
    """The C++ compiler, or None (then the tests that need it skip)."""
    return shutil.which('g++')


def _library(real):
    """The kernels of gpu_kernels.SOURCE for real ('float' or 'double'), built once per source."""
    source = (SHIM + gpu_kernels.SOURCE + LAUNCHER).replace('REAL', real)
    digest = hashlib.sha256(source.encode()).hexdigest()[:16]
    folder = os.path.join(tempfile.gettempdir(), 'char-lstm-cuda-on-cpu')
    os.makedirs(folder, exist_ok=True)
    lib = os.path.join(folder, f'kernels-{real}-{digest}.so')
    if not os.path.exists(lib):
        src = lib[:-3] + '.cpp'
        with open(src, 'w') as f:
            f.write(source)
        subprocess.run(
            [compiler(), '-std=c++20', '-O1', '-shared', '-fPIC', '-pthread', src, '-o', lib + '.tmp'],
            check=True,
            capture_output=True,
        )
        os.replace(lib + '.tmp', lib)
    return ctypes.CDLL(lib)


def _c(arg):
    """A kernel argument as CudaOps passes it, as ctypes passes it to C."""
    if isinstance(arg, np.ndarray):
        return ctypes.c_void_p(arg.ctypes.data)
    if isinstance(arg, np.uint64):
        return ctypes.c_void_p(int(arg))
    kind = {
        np.int32: ctypes.c_int,
        np.int64: ctypes.c_longlong,
        np.float32: ctypes.c_float,
        np.float64: ctypes.c_double,
    }
    return kind[type(arg)](arg)


class _Kernel:
    def __init__(self, function):
        self.function = function

    def __call__(self, grid, block, args):
        gx, gy = (tuple(grid) + (1,))[:2]
        self.function(ctypes.c_uint(gx), ctypes.c_uint(gy), ctypes.c_uint(block[0]), *map(_c, args))


def _view(ptr, rows, cols, ld, dtype):
    """The column-major matrix (rows, cols) with leading dimension ld at ptr, as a numpy view."""
    size = ld * (cols - 1) + rows
    buf = (ctypes.c_char * (size * np.dtype(dtype).itemsize)).from_address(ptr)
    flat = np.frombuffer(buf, dtype, count=size)
    return np.lib.stride_tricks.as_strided(flat, (rows, cols), (flat.itemsize, ld * flat.itemsize))


def _gemm(dtype):
    def gemm(handle, transa, transb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc):
        a = _view(A, *((m, k) if not transa else (k, m)), lda, dtype)
        b = _view(B, *((k, n) if not transb else (n, k)), ldb, dtype)
        c = _view(C, m, n, ldc, dtype)
        al = np.frombuffer((ctypes.c_char * 8).from_address(alpha), dtype, count=1)[0]
        be = np.frombuffer((ctypes.c_char * 8).from_address(beta), dtype, count=1)[0]
        c[...] = al * ((a.T if transa else a) @ (b.T if transb else b)) + be * c

    return gemm


class _Graph:
    """A CUDA graph as the emulation captures one: the launches recorded, each with its arguments."""

    def __init__(self, launches):
        self.launches = launches

    def launch(self):
        for kernel, grid, block, args in self.launches:
            kernel(grid, block, args)


class EmulatedCudaOps(gpu_kernels.CudaOps):
    """gpu_kernels.CudaOps on numpy arrays, its kernels compiled for the CPU and cuBLAS done by numpy; a CUDA
    graph is the list of its launches."""

    name = 'cuda-on-cpu'

    def __init__(self):  # no CuPy: numpy arrays, and no streams
        self.xp = np
        self.asnumpy = np.asarray
        self._handle = 0
        self._modules = {}
        self._scalars = {}
        self._graphs = collections.OrderedDict()
        self._recording = None  # the launches of a capture, while one runs

    def _kernels(self, dtype):
        dtype = np.dtype(dtype)
        if dtype not in self._modules:
            lib = _library({'float32': 'float', 'float64': 'double'}[dtype.name])
            self._modules[dtype] = {
                name: _Kernel(getattr(lib, 'run_' + name)) for name in gpu_kernels.KERNELS
            }
            self._scalars[dtype] = (np.ones(1, dtype), np.zeros(1, dtype))
        if self._recording is None:
            return self._modules[dtype]
        record = lambda kernel: lambda *launch: self._recording.append((kernel, *launch))  # noqa: E731
        return {name: record(kernel) for name, kernel in self._modules[dtype].items()}

    def _capture(self, launches):
        self._recording = []
        try:
            launches()
            return _Graph(self._recording)
        finally:
            self._recording = None

    def _gemm(self, dtype):
        self._kernels(dtype)
        one, zero = self._scalars[np.dtype(dtype)]
        return _gemm(np.dtype(dtype)), one.ctypes.data, zero.ctypes.data

    @staticmethod
    def _ptr(a):
        return a.ctypes.data

    def side(self):
        return contextlib.nullcontext()

    def join(self):
        pass


OPS = EmulatedCudaOps() if compiler() else None  # the kernels compile at first use
