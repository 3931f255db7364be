"""The CUDA kernels (gpu_kernels.cu) compile with NVIDIA's compiler, on machines without a GPU too.

tests/cuda_on_cpu.py runs the kernels' logic on the CPU with g++, which accepts things CUDA does not and
knows nothing of a GPU's limits. Here nvcc compiles the same source with the options CuPy's NVRTC gets
(gpu_kernels.OPTIONS, and CuPy's -ftz=true) for the oldest GPU CUDA 13 supports and for the H200, warnings as
errors, and ptxas's report says that every kernel is there under its own name (CuPy looks them up by it) and
that a block of gpu_kernels.THREADS threads fits: registers and shared memory. Skips where there is no nvcc.
"""

import os
import re
import shutil
import subprocess

import pytest

import gpu_kernels

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
