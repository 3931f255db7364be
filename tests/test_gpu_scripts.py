"""Every script's --device cuda gives what --device cpu gives: the same sample for a seed, the same scores in
every mode of _evaluate.py, the same activations in every output of _visualize.py, the same trained weights.

The GPU is the numpy twins of its kernels on arrays as strict as CuPy's (tests/strict_device.py), so that a
host array handed to the device, or a device array handed to numpy, fails as it would on a GPU; and where CuPy
finds one, the GPU itself. The model is float64, so that the CPU and the GPU agree to every printed digit."""

import re

import numpy as np
import pytest

import data
import lstm
import strict_device
from util import devices
from util.weights import save_params
from gpu_helpers import CUDA, NO_CUDA
from helpers import TINY, TINY_BENCHMARK, run_here, tiny_corpus


@pytest.fixture(params=['strict-twins', 'cuda'])
def strict_gpu(request, monkeypatch):
    """--device cuda opens the strict twins; or the GPU, where there is one."""
    if request.param == 'cuda' and CUDA is None:
        pytest.skip(f'needs an NVIDIA GPU with CuPy: {NO_CUDA}')
    ops = strict_device.StrictOps() if request.param == 'strict-twins' else CUDA
    monkeypatch.setattr(devices, '_open_cuda', lambda: ops)


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    """A float64 model of 2 layers of 12 units, its lookup table and a text: the options naming them."""
    d = tmp_path_factory.mktemp('model64')
    text = tiny_corpus(2500)
    chars = data.build_lookup(text)
    params = lstm.init_params(len(chars), 12, 2, rng=np.random.default_rng(1), dtype=np.float64)
    for v in params.values():  # larger weights than at the start, for activations far from 0
        v *= 4
    save_params(d / 'w.npz', params)
    data.save_lookup(d / 'l.json', chars)
    (d / 'text.txt').write_text(text, encoding='utf-8')
    return d, ['--weights', d / 'w.npz', '--lookup', d / 'l.json']


def both(name, *args):
    """The script's run on the CPU and on the (strict) GPU: their stdouts, the seconds taken left out; each
    must succeed."""
    out = []
    for device in ('cpu', 'cuda'):
        r = run_here(name, *args, '--device', device)
        assert r.returncode == 0, (device, r.stderr)
        out.append(re.sub(r' in \d+ s\b', ' in ... s', r.stdout))
    return out


def test_a_seeded_sample_is_the_same_text(strict_gpu, model):
    _, weights = model
    cpu, gpu = both('_sample.py', *weights, '--seed', '3', '--length', '300', '--num-samples', '3')
    assert cpu == gpu and len(cpu) > 300
    cpu, gpu = both('_sample.py', *weights, '--seed', '3', '--length', '80', '--top-k', '5', '--top-p', '0.9')
    assert cpu == gpu


@pytest.mark.parametrize(
    'mode',
    [[], ['--blocks', '40', '--num-blocks', '9', '--seed', '2'], ['--dynamic', '--dynamic-window', '30']],
    ids=['stream', 'blocks', 'dynamic'],
)
def test_every_evaluation_mode_gives_the_same_score(strict_gpu, model, mode):
    folder, weights = model
    cpu, gpu = both('_evaluate.py', *weights, '--text', folder / 'text.txt', *mode)
    assert cpu == gpu and 'loss' in cpu


def test_the_neurons_found_are_the_same(strict_gpu, model):
    folder, weights = model
    text = ['--text', folder / 'text.txt', *weights]
    for what in (['--find', '--top', '4'], ['--find']):
        cpu, gpu = both('_visualize.py', *text, *what)
        assert cpu == gpu and cpu.strip(), what


def test_the_page_and_the_pictures_are_the_same(strict_gpu, model, tmp_path):
    folder, weights = model
    text = ['--text', folder / 'text.txt', *weights]
    names = ('page.html', 'saturation.svg', 'periodic.svg')
    for device in ('cpu', 'cuda'):
        (tmp_path / device).mkdir()
        page, svg, periodic = (tmp_path / device / name for name in names)
        r = run_here(
            '_visualize.py', *text, '--html', page, '--saturation', svg, '--device', device, '--neuron', '3'
        )
        assert r.returncode == 0, r.stderr
        r = run_here('_visualize.py', *text, '--find', '--periodic-svg', periodic, '--device', device)
        assert r.returncode == 0, r.stderr
    for name in names:
        assert (tmp_path / 'cpu' / name).read_bytes() == (tmp_path / 'cuda' / name).read_bytes(), name


def test_training_with_every_regulariser_ends_where_the_cpu_ends(strict_gpu, tmp_path):
    corpus = tmp_path / 'corpus.txt'
    corpus.write_text(tiny_corpus(2000), encoding='utf-8')
    options = [*TINY, '--dropout', '0.3', '--variational', 'true', '--weight-drop', '0.2', '--ema', '0.9']
    options += ['--weight-decay', '0.1', '--clip', '0.5', '--epochs', '2', '--corpus', corpus]
    for device in ('cpu', 'cuda'):
        r = run_here('_training.py', '--out', tmp_path / device, *options, '--device', device)
        assert r.returncode == 0, (device, r.stderr)
    for name in ('ShakespeareNet.npz', 'ShakespeareOptimizer.npz'):
        with np.load(tmp_path / 'cpu' / name) as a, np.load(tmp_path / 'cuda' / name) as b:
            for k in a.files:
                if k != 'meta':
                    assert np.allclose(b[k], a[k], rtol=1e-9, atol=1e-12), (name, k)


def test_the_gpu_benchmark_runs_its_rounds(strict_gpu):
    r = run_here('_benchmark.py', *TINY_BENCHMARK, '--device', 'cuda')
    assert r.returncode == 0, r.stderr
    assert devices.device_name(devices.Device(devices._open_cuda())) in r.stdout
    assert 'training B=2' in r.stdout and 'sampling N=1' in r.stdout
    line = next(line for line in r.stdout.splitlines() if 'training B=2' in line)
    assert line.endswith('one round'), line  # --rounds 1: no spread to show (sampling times 3 rounds)
