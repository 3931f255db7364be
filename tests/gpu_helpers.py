"""Helpers of the GPU's tests: the GPU itself where CuPy finds one (CUDA, or why there is none: NO_CUDA), the
environment of a run on the kernels' numpy twins (TWIN), the fused kernels for a while (fused_up_to), and a
script run as if CuPy were not installed."""

import contextlib
import os
import sys

import pytest

from util import devices
from helpers import run_here


def cuda_ops():
    """CudaOps if CuPy and a GPU are here, else the reason there are none."""
    os.environ.setdefault(*devices.CUBLAS_WORKSPACE)  # before cuBLAS loads, as --device cuda sets it
    try:
        import cupy
    except ImportError:
        return None, 'CuPy is not installed'
    try:
        if cupy.cuda.runtime.getDeviceCount() < 1:
            return None, 'no GPU'
        return devices.open_device('cuda').ops, None
    except Exception as e:  # no driver
        return None, f'no usable GPU ({type(e).__name__})'


CUDA, NO_CUDA = cuda_ops()
cuda = pytest.mark.skipif(CUDA is None, reason=f'needs an NVIDIA GPU with CuPy: {NO_CUDA}')
TWIN = {devices.TWIN_VARIABLE: '1'}  # the environment of a run on the GPU's numpy twins


@contextlib.contextmanager
def fused_up_to(ops, B, graphs=False):
    """A CudaOps's time loops (on a GPU, or emulated on the CPU) with the fused step kernels up to B streams,
    replayed as CUDA graphs or not, for a while."""
    saved = ops.fused_max_b, ops.graphs
    ops.fused_max_b, ops.graphs = B, graphs
    try:
        yield
    finally:
        ops.fused_max_b, ops.graphs = saved


def run_without_cupy(name, *args):
    """run_here, as if CuPy were not installed: its import is refused while the script runs."""
    missing = object()
    saved = sys.modules.get('cupy', missing)
    sys.modules['cupy'] = None
    try:
        return run_here(name, *args)
    finally:
        if saved is missing:
            del sys.modules['cupy']
        else:
            sys.modules['cupy'] = saved
