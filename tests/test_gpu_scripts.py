"""The scripts' --device cuda: one line without CuPy (or with a broken one) and nothing written, its errors,
its help, a run moving between the CPU and the GPU that ends where one run ends; on a GPU, a bit-exact resume and
the same sample in every process (on the numpy twins where there is no GPU)."""

import contextlib
import os
import sys

import numpy as np
import pytest

from util import devices
from helpers import CUDA, TWIN, cuda, assert_one_line_error, run_here, script, tiny_corpus


# --- the scripts: the option, its errors, a run moving between devices -------------------------------------


def _blocked_cupy(name, *args):
    """Run a script as if CuPy were not installed (in-process: its import is refused while the script runs)."""
    saved = sys.modules.get('cupy', contextlib)  # contextlib: none was imported
    sys.modules['cupy'] = None
    try:
        return run_here(name, *args)
    finally:
        if saved is contextlib:
            del sys.modules['cupy']
        else:
            sys.modules['cupy'] = saved


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
    r = _blocked_cupy(name, *args, '--device', 'cuda')
    assert_one_line_error(r, 'CuPy', 'pip install cupy-cuda12x', '--device cpu')
    assert list(tmp_path.iterdir()) == []


def test_open_device_names_the_missing_piece(monkeypatch):
    monkeypatch.setitem(sys.modules, 'cupy', None)
    monkeypatch.delenv(devices.TWIN_VARIABLE, raising=False)
    monkeypatch.setattr(devices, '_opened', {})
    assert devices.open_device('cpu') is None
    with pytest.raises(devices.DeviceError, match='not installed'):
        devices.open_device('cuda')


TINY = [
    '--hidden',
    '12',
    '--chunks',
    '3',
    '--window',
    '8',
    '--val-chars',
    '300',
    '--sample-length',
    '0',
    '--dtype',
    'float64',
    '--dropout',
    '0.2',
    '--weight-drop',
    '0.1',
    '--ema',
    '0.9',
    '--clip',
    '1',
    '--checkpoint-minutes',
    '0',
    '--threads',
    '1',
]


def _train(out, corpus, *args, env=None):
    r = run_here('_training.py', '--out', out, '--corpus', corpus, *TINY, *args, env=env)
    assert r.returncode == 0, r.stderr
    return r


def _checkpoint(folder):
    with np.load(os.path.join(folder, 'ShakespeareOptimizer.npz'), allow_pickle=False) as z:
        return {k: z[k] for k in z.files if k != 'meta'}


def test_a_run_moves_cpu_gpu_cpu_and_ends_where_one_run_ends(tmp_path):
    """The checkpoint is one format: --resume --device cuda, then --device cpu, continues the same run (weights,
    RMSprop state, carried state, position, random state, average), float64; on the GPU where there is one, else
    on the twins."""
    env = None if CUDA is not None else TWIN
    corpus = tmp_path / 'c.txt'
    corpus.write_text(tiny_corpus(3000))
    _train(tmp_path / 'one', corpus, '--max-steps', '120')
    _train(tmp_path / 'moved', corpus, '--max-steps', '40')
    r = _train(tmp_path / 'moved', corpus, '--max-steps', '80', '--resume', '--device', 'cuda', env=env)
    assert 'device cpu -> cuda' in r.stdout
    r = _train(tmp_path / 'moved', corpus, '--max-steps', '120', '--resume', '--device', 'cpu', env=env)
    assert 'device cuda -> cpu' in r.stdout
    a, b = _checkpoint(tmp_path / 'one'), _checkpoint(tmp_path / 'moved')
    assert a.keys() == b.keys()
    for k in a:
        assert np.allclose(b[k], a[k], rtol=1e-9, atol=1e-12), k


def test_bad_input_on_the_gpu_path_is_one_line(tmp_path):
    r = run_here('_training.py', '--out', tmp_path / 'r', '--device', 'cuda', '--lr', '-1', env=TWIN)
    assert_one_line_error(r, '--lr')
    r = run_here('_training.py', '--out', tmp_path / 'r', '--device', 'gpu')
    assert_one_line_error(r, '--device')
    r = run_here('_sample.py', '--device', 'cuda', '--weights', tmp_path / 'none.npz', env=TWIN)
    assert_one_line_error(r, 'none.npz')
    assert not (tmp_path / 'r').exists()


# --- on a GPU: bit-exact resume, the same sample in every process ---------------------------------------------


@cuda
def test_gpu_resume_continues_bit_for_bit(tmp_path):
    corpus = tmp_path / 'c.txt'
    corpus.write_text(tiny_corpus(3000))
    f32 = ['--dtype', 'float32', '--device', 'cuda']
    _train(tmp_path / 'one', corpus, '--max-steps', '60', *f32)
    _train(tmp_path / 'two', corpus, '--max-steps', '25', *f32)
    _train(tmp_path / 'two', corpus, '--max-steps', '60', '--resume', *f32)
    a, b = _checkpoint(tmp_path / 'one'), _checkpoint(tmp_path / 'two')
    for k in a:
        assert np.array_equal(a[k], b[k]), k


@cuda
def test_gpu_sample_with_a_seed_is_the_same_text_in_every_process():
    runs = [
        script('_sample.py', '--device', 'cuda', '--seed', '7', '--length', '300', '--num-samples', '3')
        for _ in range(2)
    ]
    assert runs[0].returncode == 0, runs[0].stderr
    assert runs[0].stdout == runs[1].stdout and len(runs[0].stdout) > 300


def test_a_broken_cupy_is_not_called_missing(tmp_path):
    """CuPy raises ImportError when its CUDA libraries do not load: that is a broken installation, not none."""
    (tmp_path / 'cupy').mkdir()
    (tmp_path / 'cupy' / '__init__.py').write_text('raise ImportError("CuPy is not correctly installed")\n')
    r = script('_sample.py', '--device', 'cuda', env={'PYTHONPATH': str(tmp_path), devices.TWIN_VARIABLE: ''})
    assert_one_line_error(r, 'CuPy does not load', 'not correctly installed', 'reinstall')


def test_without_cupy_no_output_folder_is_made(tmp_path):
    r = _blocked_cupy(
        '_visualize.py', '--html', str(tmp_path / 'new' / 'sub' / 'page.html'), '--device', 'cuda'
    )
    assert_one_line_error(r, 'CuPy')
    assert list(tmp_path.iterdir()) == []


def test_help_names_the_devices_and_the_ngram_alone_needs_none():
    for name in ('_training.py', '_sample.py', '_evaluate.py', '_visualize.py', '_benchmark.py'):
        assert '{cpu,cuda}' in run_here(name, '--help').stdout, name
    r = _blocked_cupy('_evaluate.py', '--ngram', '2', '--device', 'cuda')
    assert r.returncode == 0 and 'loss' in r.stdout, r.stderr


def test_a_run_saved_on_the_gpu_names_its_device_where_none_is_here(tmp_path):
    corpus = tmp_path / 'c.txt'
    corpus.write_text(tiny_corpus(2000))
    _train(tmp_path / 'run', corpus, '--max-steps', '2', '--device', 'cuda', env=TWIN)
    r = _blocked_cupy('_training.py', '--out', str(tmp_path / 'run'), '--resume', '--max-steps', '3')
    assert_one_line_error(r, 'was trained with --device cuda', '--resume --device cpu')
    _train(tmp_path / 'run', corpus, '--max-steps', '3', '--resume', '--device', 'cpu')


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
