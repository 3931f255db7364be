"""The GPU's kernels: their numpy twins against layers.py; the CUDA source compiled by NVIDIA's compiler, on
machines without a GPU too; the CUDA kernels, run on the CPU (tests/cuda_on_cpu.py) and on a GPU where there
is one, held to their twins.

cuda_on_cpu.py runs the kernels' logic with g++, which accepts things CUDA does not and knows nothing of a
GPU's limits. So nvcc also compiles the source with the options CuPy's NVRTC gets (gpu_kernels.OPTIONS, and
CuPy's -ftz=true), for the oldest GPU CUDA 13 supports and for the H200, warnings as errors, and ptxas's
report says that every kernel is there under its own name (CuPy looks them up by it) and that a block of
gpu_kernels.THREADS threads fits: registers and shared memory. Those skip where there is no nvcc.
"""

import collections
import importlib.util
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import cuda_on_cpu
import gpu_kernels
import layers
from gpu_helpers import CUDA, NO_CUDA, fused_up_to
from helpers import ROOT
from util import devices

# --- the twins against layers.py ----------------------------------------------------------------------------


def test_step_twins_compute_layers_steps():
    rng = np.random.default_rng(0)
    B, D, H = 3, 4, 5
    x, h0, c0 = rng.standard_normal((B, D)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    W, b = rng.standard_normal((D + H, 4 * H)), rng.standard_normal(4 * H)
    h, c, cache = layers.lstm_step_forward(x, h0, c0, W, b)
    G = np.concatenate([x, h0], axis=1) @ W + b
    c2, h2 = np.empty_like(c), np.empty_like(h)
    gpu_kernels.step_forward(G, c0, c2, h2)
    assert np.allclose(h2, h, atol=1e-14) and np.allclose(c2, c, atol=1e-14)
    dh, dc, dh_up = rng.standard_normal((B, H)), rng.standard_normal((B, H)), rng.standard_normal((B, H))
    dx, dh_prev, dc_prev, dW, db = layers.lstm_step_backward(dh_up + dh, dc, cache)
    dc_next = dc.copy()
    gpu_kernels.step_backward(dh_up, dh, dc_next, G, c0, c2)  # G now dL/dz
    assert np.allclose(dc_next, dc_prev, atol=1e-13)
    assert np.allclose(G @ W[D:].T, dh_prev, atol=1e-13) and np.allclose(G.sum(axis=0), db, atol=1e-13)


def test_softmax_twin_is_layers_softmax_loss():
    rng = np.random.default_rng(1)
    z, y = rng.standard_normal((7, 5)) * 3, rng.integers(0, 5, 7)
    loss, dz = layers.softmax_loss(z, y)
    logp_y = gpu_kernels.softmax_xent(z, y)
    assert abs(-logp_y.mean() - loss) < 1e-14 and np.allclose(z, dz, atol=1e-15)


# --- the CUDA source compiled by nvcc -----------------------------------------------------------------------


NVCC = shutil.which('nvcc') or next((p for p in ('/usr/local/cuda/bin/nvcc',) if os.access(p, os.X_OK)), None)
REGISTERS_PER_BLOCK = 65536  # every NVIDIA GPU from compute capability 5.0 on
STATIC_SHARED_BYTES = 48 * 1024  # the most a kernel may declare without asking at launch


def ptxas_report(real, arch, folder):
    """Compile the source for REAL = real and sm_arch; ptxas's report, a dict of kernel -> its resources."""
    path = os.path.join(folder, f'kernels_{real}.cu')
    with open(path, 'w', encoding='utf-8') as f:
        f.write(gpu_kernels.SOURCE.replace('REAL', real))
    options = [*gpu_kernels.OPTIONS, '-ftz=true', f'-arch=sm_{arch}', '-cubin', '-Werror', 'all-warnings']
    done = subprocess.run(
        [NVCC, *options, '-Xptxas', '-v', '-o', os.path.join(folder, 'k.cubin'), path],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    kernels, name = {}, None
    for line in done.stderr.splitlines():
        entry = re.search(r"Compiling entry function '(\w+)'", line)
        if entry:
            name = entry.group(1)
            kernels[name] = {'registers': 0, 'smem': 0}
        used = re.search(r'Used (\d+) registers', line)
        if used and name:
            kernels[name]['registers'] = int(used.group(1))
            smem = re.search(r'(\d+) bytes smem', line)
            kernels[name]['smem'] = int(smem.group(1)) if smem else 0
    return kernels


@pytest.mark.skipif(NVCC is None, reason='needs nvcc (the CUDA toolkit) to compile the kernels')
@pytest.mark.parametrize('arch', ['75', '90'])
@pytest.mark.parametrize('real', ['float', 'double'])
def test_kernels_compile_for_the_gpu_and_fit_a_block(real, arch, tmp_path):
    kernels = ptxas_report(real, arch, str(tmp_path))
    assert sorted(kernels) == sorted(gpu_kernels.KERNELS)
    for name, used in kernels.items():
        assert used['registers'] * gpu_kernels.THREADS <= REGISTERS_PER_BLOCK, (name, used)
        assert used['smem'] <= STATIC_SHARED_BYTES, (name, used)


# --- the CUDA kernels against their twins -------------------------------------------------------------------


@pytest.fixture(params=['cpu', 'cuda'])
def kernels(request):
    """The CUDA kernels: compiled for the CPU, and on a GPU if there is one."""
    ops = cuda_on_cpu.OPS if request.param == 'cpu' else CUDA
    if ops is None:
        pytest.skip(
            'needs g++ (C++20)' if request.param == 'cpu' else f'needs an NVIDIA GPU with CuPy: {NO_CUDA}'
        )
    return ops


# Both time loops in both precisions, each with a batch beyond one warp (B = 37 > 32, and H = 37 not a
# multiple of 8), and with one stream or a few: 4 cases, not every combination (an emulated launch starts an
# OS thread per CUDA thread).
@pytest.mark.parametrize(
    'fused, B, dtype',
    [(True, 37, np.float32), (True, 1, np.float64), (False, 37, np.float64), (False, 5, np.float32)],
)
def test_cuda_loops_equal_their_twins(kernels, dtype, B, fused):
    with fused_up_to(kernels, 1 << 30 if fused else 0):
        _cuda_loops_equal_their_twins(kernels, dtype, B)


def _cuda_loops_equal_their_twins(CUDA, dtype, B):
    xp, twin = CUDA.xp, gpu_kernels.NumpyOps()
    rng = np.random.default_rng(8)
    T, H = 4, 37
    tol = 1e-5 if dtype == np.float32 else 1e-13
    Wh = (rng.standard_normal((H, 4 * H)) / np.sqrt(H)).astype(dtype)
    hs, cs = np.zeros((T + 1, B, H), dtype), np.zeros((T + 1, B, H), dtype)
    hs[0], cs[0] = rng.standard_normal((B, H)), rng.standard_normal((B, H))
    G = rng.standard_normal((T, B, 4 * H)).astype(dtype)
    d = [xp.array(a) for a in (Wh, hs, cs, G)]
    twin.forward_loop(Wh, hs, cs, G)
    CUDA.forward_loop(*d)
    for a, b in zip((hs, cs, G), d[1:]):
        assert np.allclose(CUDA.asnumpy(b), a, atol=tol)
    dh = rng.standard_normal((T, B, H)).astype(dtype)
    dhn, dcn = rng.standard_normal((B, H)).astype(dtype), rng.standard_normal((B, H)).astype(dtype)
    e = [xp.array(a) for a in (dh, dhn, dcn)]
    twin.backward_loop(Wh, cs, G, dh, dhn, dcn)
    CUDA.backward_loop(d[0], d[2], d[3], *e)
    for a, b in zip((G, dhn, dcn), (d[3], e[1], e[2])):
        assert np.allclose(CUDA.asnumpy(b), a, atol=tol * 10)


def test_fused_loops_replayed_as_graphs_compute_what_their_launches_do(kernels, monkeypatch):
    """With CudaOps.graphs on, a fused loop is captured at its first call on a set of buffers and replayed at
    the next: on new contents of the same buffers it computes what its launches compute; a set with any one
    buffer another is captured anew (every pointer is in the key), and only the GRAPHS_KEPT most recently
    used are kept."""
    xp, rng, T, B, H = kernels.xp, np.random.default_rng(10), 3, 2, 9
    monkeypatch.setattr(kernels, '_graphs', collections.OrderedDict())
    monkeypatch.setattr(gpu_kernels, 'GRAPHS_KEPT', 4)
    captured, capture = [], kernels._capture
    monkeypatch.setattr(kernels, '_capture', lambda launches: captured.append(1) or capture(launches))

    def same_as_launched(loop, arrays):
        """loop on arrays with graphs on, and on copies of them with graphs off: the same, bit for bit."""
        for a in arrays:
            a[...] = xp.asarray(rng.standard_normal(a.shape))
        copies = [a.copy() for a in arrays]
        for graphs, on in ((False, copies), (True, arrays)):
            monkeypatch.setattr(kernels, 'graphs', graphs)
            loop(*on)
        for a, b in zip(arrays, copies):
            assert np.array_equal(kernels.asnumpy(a), kernels.asnumpy(b))

    forward = [(H, 4 * H), (T + 1, B, H), (T + 1, B, H), (T, B, 4 * H)]  # Wh, hs, cs, G
    backward = [
        (H, 4 * H),
        (T + 1, B, H),
        (T, B, 4 * H),
        (T, B, H),
        (B, H),
        (B, H),
    ]  # Wh, cs, G, dh, dh/dc_next
    with fused_up_to(kernels, 1 << 30):
        for loop, shapes in ((kernels.forward_loop, forward), (kernels.backward_loop, backward)):
            arrays = [xp.zeros(shape) for shape in shapes]
            before = len(captured)
            for _ in range(2):  # captured, then replayed
                same_as_launched(loop, arrays)
            assert len(captured) == before + 1
            for k in range(len(arrays)):  # one buffer another: its own graph
                arrays[k] = xp.zeros(arrays[k].shape)
                same_as_launched(loop, arrays)
                assert len(captured) == before + 2 + k
    assert len(kernels._graphs) == 4


@pytest.mark.parametrize('dtype', [np.float32, np.float64])
def test_cuda_softmax_and_rmsprop_equal_their_twins(kernels, dtype):
    CUDA, xp = kernels, kernels.xp
    rng = np.random.default_rng(9)
    z, y = (rng.standard_normal((50, 65)) * 4).astype(dtype), rng.integers(0, 65, 50)
    zd = xp.array(z)
    logp = CUDA.softmax_xent(zd, xp.array(y, np.int32))
    assert np.allclose(CUDA.asnumpy(logp), gpu_kernels.softmax_xent(z, y), atol=1e-5)
    assert np.allclose(CUDA.asnumpy(zd), z, atol=1e-7)
    for clip in (0.0, 0.5):
        p, g, c = (rng.standard_normal(300).astype(dtype) for _ in range(3))
        c = np.abs(c)
        norm2 = np.float64((g.astype(np.float64) ** 2).sum())
        dev = [xp.array(a) for a in (p, g, c)]
        CUDA.rmsprop(*dev, xp.array(norm2), clip, 0.01, 0.95, 1e-8, 0.1, 200)
        gpu_kernels.rmsprop(p, g, c, norm2, clip, 0.01, 0.95, 1e-8, 0.1, 200)
        assert np.allclose(CUDA.asnumpy(dev[0]), p, atol=1e-6) and np.allclose(
            CUDA.asnumpy(dev[2]), c, rtol=1e-5
        )


def test_the_gpu_probe_times_each_part(kernels, monkeypatch, capsys):
    """.ci/gpu_probe.py, which .ci/gpu-check runs on a GPU to place FUSED_MAX_B and set GRAPHS, gives a row
    for each B, part and way of running the loop, and leaves the ops as they were; a way that fails is a row
    that says why, and the others still come."""
    spec = importlib.util.spec_from_file_location('gpu_probe', os.path.join(ROOT, '.ci', 'gpu_probe.py'))
    probe = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(probe)
    monkeypatch.setattr(devices, '_opened', {})
    monkeypatch.setattr(devices, '_open_cuda', lambda: kernels)
    small = ['--hidden', '8', '--window', '3', '--repeats', '1']
    probe.main(['--batches', '1', '3', *small])
    rows = [line.split()[:3] for line in capsys.readouterr().out.splitlines()[2:]]
    assert sorted(rows) == sorted(
        [str(B), part, path] for B in (1, 3) for path in probe.PATHS for part in probe.PARTS
    )
    assert (kernels.fused_max_b, kernels.graphs) == (gpu_kernels.FUSED_MAX_B, gpu_kernels.GRAPHS)

    def refused(launches):
        raise RuntimeError('capture refused')

    monkeypatch.setattr(kernels, '_graphs', collections.OrderedDict())
    monkeypatch.setattr(kernels, '_capture', refused)
    probe.main(['--batches', '2', *small])
    rows = [line.split()[:3] for line in capsys.readouterr().out.splitlines()[2:]]
    assert ['2', 'graph', 'failed:'] in rows and len(rows) == 1 + 2 * len(probe.PARTS)
