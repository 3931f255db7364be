"""The scripts' --device option where CuPy or a GPU is missing or broken: one line and nothing written; its
errors, its help, and the GPU benchmark's sizes no machine holds (on the GPU's numpy twins)."""

import sys
import types

import pytest

import gpu
import gpu_kernels
from util import devices
from gpu_helpers import TWIN, run_without_cupy
from helpers import TINY, assert_one_line_error, run_here, script


@pytest.mark.parametrize(
    'name,args',
    [
        ('_sample.py', ['--length', '10']),
        ('_evaluate.py', ['--blocks', '64']),
        ('_visualize.py', ['--find']),
        ('_training.py', ['--out', 'OUT', '--max-steps', '1']),
    ],
)
def test_without_cupy_one_line_and_nothing_written(tmp_path, name, args):
    args = [str(tmp_path / 'run') if a == 'OUT' else a for a in args]
    r = run_without_cupy(name, *args, '--device', 'cuda')
    assert_one_line_error(r, 'CuPy', 'pip install cupy-cuda12x', '--device cpu')
    assert list(tmp_path.iterdir()) == []


def test_open_device_names_the_missing_piece(monkeypatch):
    monkeypatch.setitem(sys.modules, 'cupy', None)
    monkeypatch.delenv(devices.TWIN_VARIABLE, raising=False)
    monkeypatch.delenv(devices.CUBLAS_WORKSPACE[0], raising=False)  # put back after, as it was
    monkeypatch.setattr(devices, '_opened', {})
    assert devices.open_device('cpu') is None
    with pytest.raises(devices.DeviceError, match='not installed'):
        devices.open_device('cuda')


def test_bad_input_on_the_gpu_path_is_one_line(tmp_path):
    r = run_here('_training.py', '--out', tmp_path / 'r', '--device', 'cuda', '--lr', '-1', env=TWIN)
    assert_one_line_error(r, '--lr')
    r = run_here('_training.py', '--out', tmp_path / 'r', '--device', 'gpu')
    assert_one_line_error(r, '--device')
    r = run_here('_sample.py', '--device', 'cuda', '--weights', tmp_path / 'none.npz', env=TWIN)
    assert_one_line_error(r, 'none.npz')
    assert not (tmp_path / 'r').exists()


def test_a_broken_cupy_is_not_called_missing(tmp_path):
    """CuPy raises ImportError when its CUDA libraries do not load: that is a broken installation, not
    none."""
    (tmp_path / 'cupy').mkdir()
    (tmp_path / 'cupy' / '__init__.py').write_text('raise ImportError("CuPy is not correctly installed")\n')
    r = script('_sample.py', '--device', 'cuda', env={'PYTHONPATH': str(tmp_path), devices.TWIN_VARIABLE: ''})
    assert_one_line_error(r, 'CuPy does not load', 'not correctly installed', 'reinstall')


def test_without_cupy_no_output_folder_is_made(tmp_path):
    r = run_without_cupy(
        '_visualize.py', '--html', str(tmp_path / 'new' / 'sub' / 'page.html'), '--device', 'cuda'
    )
    assert_one_line_error(r, 'CuPy')
    assert list(tmp_path.iterdir()) == []


def test_help_names_the_devices_and_the_ngram_alone_takes_none():
    for name in ('_training.py', '_sample.py', '_evaluate.py', '_visualize.py', '_benchmark.py'):
        assert '{cpu,cuda}' in run_here(name, '--help').stdout, name
    r = run_without_cupy('_evaluate.py', '--ngram', '2', '--device', 'cuda')
    assert_one_line_error(r, '--device goes with the LSTM', 'add --compare')


def test_the_gpu_benchmark_refuses_sizes_no_machine_holds_in_one_line():
    r = run_here(
        '_benchmark.py',
        '--device',
        'cuda',
        '--hidden',
        '100000',
        '--chunks',
        '100000',
        '--no-torch',
        env=TWIN,
    )
    assert_one_line_error(r, 'needs about', 'choose smaller sizes')


@pytest.mark.parametrize('chosen', [None, ':16:8'])
def test_cublas_gets_fixed_workspaces_before_cupy_loads_unless_the_user_chose(tmp_path, chosen):
    """Two streams share CuPy's cuBLAS handle: without fixed workspaces its products may differ from run to
    run. A stand-in CuPy says what it found in the environment as it loaded."""
    (tmp_path / 'cupy').mkdir()
    (tmp_path / 'cupy' / '__init__.py').write_text(
        'import os\nraise ImportError("workspace " + os.environ.get("CUBLAS_WORKSPACE_CONFIG", "unset"))\n'
    )
    env = {'PYTHONPATH': str(tmp_path), devices.TWIN_VARIABLE: '', devices.CUBLAS_WORKSPACE[0]: chosen or ''}
    r = script('_sample.py', '--device', 'cuda', env=env)
    assert_one_line_error(r, f'workspace {chosen or devices.CUBLAS_WORKSPACE[1]}')


@pytest.mark.parametrize('driver', [False, True])
def test_cupy_without_a_driver_says_the_driver_is_missing(monkeypatch, driver):
    """CUDA calls a missing driver "insufficient": the line says which it is."""

    def refuse():
        raise RuntimeError('cudaErrorInsufficientDriver: CUDA driver version is insufficient')

    fake = types.SimpleNamespace(
        cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(getDeviceCount=refuse))
    )
    monkeypatch.setitem(sys.modules, 'cupy', fake)
    monkeypatch.delenv(devices.TWIN_VARIABLE, raising=False)
    monkeypatch.delenv(devices.CUBLAS_WORKSPACE[0], raising=False)  # put back after, as it was
    monkeypatch.setattr(devices, '_opened', {})
    monkeypatch.setattr(devices, '_no_driver', lambda: not driver)
    with pytest.raises(devices.DeviceError) as e:
        devices.open_device('cuda')
    if driver:
        assert 'insufficient' in str(e.value) and 'check the NVIDIA driver' in str(e.value)
    else:
        assert 'no NVIDIA driver' in str(e.value) and '--device cpu' in str(e.value)


class SmallGpu(gpu_kernels.NumpyOps):
    """The twins, on a GPU said to have 1 MiB free of 2."""

    name = 'cuda'
    xp = types.SimpleNamespace(
        cuda=types.SimpleNamespace(runtime=types.SimpleNamespace(memGetInfo=lambda: (2**20, 2**21))),
        get_default_memory_pool=lambda: types.SimpleNamespace(free_bytes=lambda: 0),
    )


@pytest.mark.parametrize(
    'name, args, words',
    [
        ('_sample.py', ['--num-samples', '200'], '--num-samples 200'),
        ('_evaluate.py', ['--blocks', '500'], '--blocks 500'),
        ('_evaluate.py', ['--dynamic', '--dynamic-window', '5000'], '--dynamic-window'),
        ('_training.py', ['--out', 'OUT', '--max-steps', '1'], 'training --layers 2 --hidden 512'),
    ],
)
def test_what_the_gpu_cannot_hold_is_refused_before_any_work(monkeypatch, tmp_path, name, args, words):
    monkeypatch.setattr(devices, '_open_cuda', SmallGpu)
    args = [str(tmp_path / 'run') if a == 'OUT' else a for a in args]
    r = run_here(name, *args, '--device', 'cuda')
    assert_one_line_error(
        r, words, 'of GPU memory', '1 MiB free of 2 MiB', 'choose smaller sizes', '--device cpu'
    )
    assert list(tmp_path.iterdir()) == []


def test_the_gpu_running_out_of_memory_is_one_line_and_a_new_run_leaves_no_folder(monkeypatch, tmp_path):
    """Where the estimate falls short, CuPy's own error is said in one line too."""
    OutOfMemoryError = type('OutOfMemoryError', (MemoryError,), {'__module__': 'cupy.cuda.memory'})

    def out_of_memory(*args, **kwargs):
        raise OutOfMemoryError('Out of memory allocating 1,024 bytes (allocated so far: 0 bytes).')

    monkeypatch.setattr(gpu.Model, 'forward', out_of_memory)
    r = run_here('_sample.py', '--device', 'cuda', '--length', '10', env=TWIN)
    assert_one_line_error(
        r, 'the GPU ran out of memory (Out of memory allocating 1,024 bytes', '--device cpu'
    )
    r = run_here('_training.py', '--out', tmp_path / 'run', *TINY, '--device', 'cuda', env=TWIN)
    assert_one_line_error(r, 'the GPU ran out of memory')
    assert list(tmp_path.iterdir()) == []
