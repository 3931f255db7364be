"""Which device a script runs the model on (--device cpu|cuda): None for the CPU, or a Device, the GPU engine
(gpu.py) with its ops, opened once and checked before any work. Every problem is one DeviceError line saying
what is missing and how to install it. The model (lstm.py) asks a Device for what it needs and never imports
the GPU engine, which builds on it."""

import ctypes
import os

import numpy as np

import gpu
import gpu_kernels
from util import memory
from util.errors import UserError

DEVICES = ('cpu', 'cuda')
INSTALL = (
    'pip install cupy-cuda12x (CUDA 12 drivers) or cupy-cuda13x (CUDA 13; nvidia-smi shows the '
    'driver\'s CUDA version)'
)
# Tests set this to run every --device cuda path on the numpy twins of the kernels, on machines without a GPU.
TWIN_VARIABLE = 'CHAR_LSTM_GPU_TWIN'
# cuBLAS gives the same bits at every run only while one stream is active, unless each stream has its own
# workspace (cuBLAS's guide, "Results reproducibility"); the engine runs products on two streams (gpu.py) with
# CuPy's one handle, so it asks for fixed workspaces (8 of 4 MiB) before cuBLAS starts, unless the user chose.
CUBLAS_WORKSPACE = ('CUBLAS_WORKSPACE_CONFIG', ':4096:8')


class DeviceError(UserError):
    """The device asked for cannot be used; the message says why and what to do."""


class Device:
    """A GPU to run the model on: its ops (gpu_kernels.CudaOps, or the numpy twins in tests) and the GPU
    engine's entry points (gpu.py) for the model and the training loop."""

    def __init__(self, ops):
        self.ops = ops

    def predictor(self, params, B=1):
        """lstm.Predictor on this device."""
        return gpu.Predictor(self.ops, params, B)

    def evaluate_dynamic(self, params, ids, **options):
        """lstm.evaluate_dynamic on this device."""
        return gpu.evaluate_dynamic(self.ops, params, ids, **options)

    def trainer(self, run):
        """A run's training windows on this device (gpu.Trainer)."""
        return gpu.Trainer(self.ops, run)


_opened = {}  # 'cuda' -> its Device, once tried


def open_device(name):
    """What --device name runs on: None for the CPU (engine.py), a Device for 'cuda' (opened once a process).
    Raises DeviceError, in one line, if CuPy or a GPU it can use is missing."""
    if name == 'cpu':
        return None
    if name not in _opened:
        _opened[name] = Device(_open_cuda())
    return _opened[name]


def _open_cuda():
    if os.environ.get(TWIN_VARIABLE) == '1':
        return gpu_kernels.NumpyOps()
    os.environ.setdefault(*CUBLAS_WORKSPACE)
    try:
        import cupy
    except ModuleNotFoundError as e:
        if e.name != 'cupy':  # CuPy is there, but something it needs is not
            raise DeviceError(
                f'--device cuda: CuPy does not load ({_reason(e)}): reinstall it ({INSTALL}), '
                'or use --device cpu'
            ) from None
        raise DeviceError(
            f'--device cuda needs CuPy, which is not installed: {INSTALL}; or use --device cpu'
        ) from None
    except Exception as e:  # a broken installation (its own ImportError too)
        raise DeviceError(
            f'--device cuda: CuPy does not load ({_reason(e)}): reinstall it ({INSTALL}), or use --device cpu'
        )
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            raise DeviceError('--device cuda: CuPy finds no GPU on this machine; use --device cpu')
        ops = gpu_kernels.CudaOps(cupy)
        ops.forward_loop(*_probe(cupy))  # compiles the kernels and runs one step
        cupy.cuda.get_current_stream().synchronize()
    except DeviceError:
        raise
    except Exception as e:  # no driver, a driver too old for this CuPy, no compiler
        if _no_driver():
            raise DeviceError(
                f'--device cuda: this machine has no NVIDIA driver ({DRIVER} does not load), so CuPy cannot '
                'use a GPU; on a machine with an NVIDIA GPU install its driver, else use --device cpu'
            ) from None
        raise DeviceError(
            f'--device cuda: CuPy cannot use a GPU here ({_reason(e)}): check the NVIDIA driver '
            f'(nvidia-smi) and that the CuPy package matches its CUDA version ({INSTALL}); or use '
            '--device cpu'
        )
    return ops


DRIVER = 'nvcuda.dll' if os.name == 'nt' else 'libcuda.so.1'  # the driver's library, which CUDA loads


def _no_driver():
    """Whether the NVIDIA driver is missing: CUDA then says only that the driver is "insufficient"."""
    try:
        ctypes.CDLL(DRIVER)
    except OSError:
        return True
    return False


def _reason(e):
    return ' '.join(str(e).split())[:200] or type(e).__name__


def _probe(cupy):
    """A one-step layer of 1 stream and 1 unit, to try the GPU before any work."""
    return (
        cupy.zeros((1, 4), np.float32),
        cupy.zeros((2, 1, 1), np.float32),
        cupy.zeros((2, 1, 1), np.float32),
        cupy.zeros((1, 1, 4), np.float32),
    )


def check_memory(device, needed, what):
    """Refuse, in one line, what needs more memory than the machine has, or than the GPU has free where the
    model runs on one (device: a Device, or None for the CPU)."""
    memory.check_fits(needed, what)
    if device is not None:
        check_fits(device, needed, what)


def out_of_memory(e):
    """The line to say for an exception that is CuPy's out-of-memory error (the GPU's memory ran out where
    check_memory's estimate said it would fit), else None."""
    if type(e).__name__ != 'OutOfMemoryError' or not type(e).__module__.startswith('cupy'):
        return None
    return (
        f'the GPU ran out of memory ({_reason(e)}): lower the sizes asked for (--chunks, --hidden, '
        '--num-samples, --blocks, --dynamic-window, a shorter priming text), or use --device cpu'
    )


def check_fits(device, needed, what):
    """Raise DeviceError if the GPU has less free memory than needed (bytes) for what."""
    ops = device.ops
    if ops.name != 'cuda':
        return
    free, total = ops.xp.cuda.runtime.memGetInfo()
    free += ops.xp.get_default_memory_pool().free_bytes()
    if needed > free:
        raise DeviceError(
            f'{what} needs about {memory.in_words(needed)} of GPU memory, but the GPU has '
            f'{memory.in_words(free)} free of {memory.in_words(total)}: choose smaller sizes, or use '
            '--device cpu'
        )


def device_name(device):
    """The GPU's name, e.g. 'NVIDIA H200' (or what runs in its place)."""
    ops = device.ops
    if ops.name != 'cuda':
        return 'numpy twins of the GPU kernels (no GPU)'
    props = ops.xp.cuda.runtime.getDeviceProperties(ops.xp.cuda.Device().id)
    name = props['name']
    return name.decode() if isinstance(name, bytes) else name
