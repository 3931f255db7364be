"""The GPU engine (gpu.py) against layers.py and the CPU engine.

Everything runs on the numpy twins of the kernels on any machine, on numpy arrays and on arrays as strict as
CuPy's; on the CUDA kernels compiled for the CPU; and where CuPy finds a GPU, on it too (the `ops` fixture). A
run moves between the CPU and the GPU, and a resumed run continues bit for bit (on the twins where there is no
GPU); on a GPU, a sample with a seed is the same text in every process. The kernels themselves are held to
their twins in test_gpu_kernels.py; what --device says where CuPy or a GPU is missing is in
test_device_option.py. .ci/gpu-check runs these on a GPU.
"""

import os

import numpy as np
import pytest

import cuda_on_cpu
import strict_device
import gpu
import gpu_kernels
from util import devices
import layers
import lstm
from gpu_helpers import CUDA, NO_CUDA, TWIN, cuda, fused_up_to, run_without_cupy
from helpers import assert_one_line_error, run_here, script, tiny_corpus
from optimizer import RMSprop, update_average


@pytest.fixture(
    params=[
        'numpy',
        'strict',
        'cpu-fused',
        'cpu-graph',
        'cpu-cublas',
        'cuda-fused',
        'cuda-graph',
        'cuda-cublas',
    ]
)
def ops(request):
    """The engine's ops: the numpy twins, on numpy arrays and on arrays as strict as CuPy's
    (tests/strict_device.py); the CUDA kernels compiled for the CPU (tests/cuda_on_cpu.py), with
    the fused steps (small batches; launched, or replayed as CUDA graphs) and with cuBLAS in the time loop
    (large batches); the same on a GPU, if any."""
    device, loop = request.param.split('-') if '-' in request.param else (request.param, None)
    if device in ('numpy', 'strict'):
        yield gpu_kernels.NumpyOps() if device == 'numpy' else strict_device.StrictOps()
        return
    ops = CUDA if device == 'cuda' else cuda_on_cpu.OPS
    if ops is None:
        pytest.skip(f'needs an NVIDIA GPU with CuPy: {NO_CUDA}' if device == 'cuda' else 'needs g++ (C++20)')
    with fused_up_to(ops, 0 if loop == 'cublas' else 1 << 30, graphs=loop == 'graph'):
        yield ops


def host(ops, a):
    return ops.asnumpy(a)


# --- the engine against layers.py, float64 ------------------------------------------------------------------

SHAPES = [  # V, H, layers, T, B, dropout, variational, weight_drop
    (7, 5, 1, 4, 1, 0.0, False, 0.0),
    (9, 33, 2, 5, 3, 0.3, False, 0.25),
    (6, 4, 3, 3, 2, 0.2, True, 0.0),
    (11, 8, 2, 6, 4, 0.0, False, 0.5),
]


def _random_shapes(n, seed=2026):
    """n more shapes drawn at random (the same ones at every run): H up to 70, past the kernels' tiles."""
    rng = np.random.default_rng(seed)
    return [
        (
            int(rng.integers(2, 30)),
            int(rng.integers(1, 71)),
            int(rng.integers(1, 4)),
            int(rng.integers(1, 8)),
            int(rng.integers(1, 40)),
            float(rng.choice([0.0, 0.3])),
            bool(rng.integers(2)),
            float(rng.choice([0.0, 0.2])),
        )
        for _ in range(n)
    ]


SHAPES += _random_shapes(4)


def _window(V, H, L, T, B, seed):
    rng = np.random.default_rng(seed)
    params = lstm.init_params(V, H, L, rng=rng, dtype=np.float64)
    for v in params.values():  # biases away from their initial values too
        v += rng.uniform(-0.2, 0.2, v.shape)
    x, y = rng.integers(0, V, (T, B)), rng.integers(0, V, (T, B))
    state = [(rng.standard_normal((B, H)) * 0.5, rng.standard_normal((B, H)) * 0.5) for _ in range(L)]
    return params, x, y, state


# Every shape with the numpy twins and on a GPU; with the kernels emulated on the CPU (each launch starts OS
# threads: slow), one shape per time loop: the fused steps with three layers and variational dropout, cuBLAS
# with H = 33 (not a multiple of 8), dropout and weight drop.
ENGINE_CASES = [(o, s) for o in ('numpy', 'strict', 'cuda-fused', 'cuda-cublas') for s in SHAPES] + [
    ('cpu-fused', SHAPES[2]),
    ('cpu-cublas', SHAPES[1]),
]


@pytest.mark.parametrize(
    'ops, shape', ENGINE_CASES, indirect=['ops'], ids=[f'{o}-shape{SHAPES.index(s)}' for o, s in ENGINE_CASES]
)
def test_engine_equals_layers_in_float64(ops, shape):
    """Loss, every gradient and the carried state of a window, with dropout and weight drop."""
    V, H, L, T, B, p, variational, wd = shape
    params, x, y, state = _window(V, H, L, T, B, seed=V + H)
    kw = dict(dropout=p, variational=variational, weight_drop=wd)
    logits, new_state, cache = lstm.forward(
        params, x, state, rng=np.random.default_rng(5), reference=True, **kw
    )
    loss, dlogits = layers.softmax_loss(logits, y)
    grads, _ = lstm.backward(dlogits, cache)
    masks, weight_masks = lstm.draw_masks(np.random.default_rng(5), T, B, H, L, np.float64, **kw)
    xp = ops.xp
    m = gpu.Model(ops, params)
    m.set_state(state)
    dev = [None if a is None else xp.asarray(a) for a in masks]
    wdev = [None if a is None else xp.asarray(a) for a in weight_masks]
    got = float(m.loss_and_grads(xp.asarray(x, np.int32), xp.asarray(y, np.int32), dev, wdev))
    assert abs(got - loss) < 1e-12 * max(1.0, loss)
    for k, g in grads.items():
        assert np.allclose(host(ops, m.grads.view[k]), g, rtol=1e-10, atol=1e-13), k
    for (h, c), (h2, c2) in zip(new_state, m.host_state()):
        assert np.allclose(h2, h, atol=1e-13) and np.allclose(c2, c, atol=1e-13)


def test_the_flat_buffer_has_one_layout_aligned_whatever_the_order_of_the_names():
    """A resumed run's parameters come in another order than a new run's: the buffer (and the sum that is the
    gradient's norm) must be laid out alike."""
    params = lstm.init_params(7, 5, 2, rng=np.random.default_rng(0))
    a = gpu.Flat(np, {k: v.shape for k, v in params.items()}, np.float32)
    b = gpu.Flat(np, {k: params[k].shape for k in reversed(list(params))}, np.float32)
    assert a.names == b.names and a.offset == b.offset and a.n_decay == b.n_decay
    assert all(offset * 4 % gpu.ALIGN == 0 for offset in a.offset.values())
    matrices = [k for k in a.names if params[k].ndim == 2]
    assert (
        a.names[: len(matrices)] == matrices
        and a.n_decay == a.offset[matrices[-1]] + params[matrices[-1]].size
    )
    a.load(params)
    stored = {k: np.zeros_like(v) for k, v in params.items()}
    a.store(stored, np.asarray)
    assert all(np.array_equal(stored[k], params[k]) for k in params)
    assert np.count_nonzero(a.buf) == sum(np.count_nonzero(v) for v in params.values())


def test_trainer_step_is_cpu_training_step(ops):
    """loss_and_grads, RMSprop with clipping and weight decay, and the moving average, as _training.py
    does."""
    V, H, L, T, B = 8, 6, 2, 5, 3
    params, x, y, state = _window(V, H, L, T, B, seed=3)
    opt_cpu = RMSprop(params, lr=0.01, rho=0.9, eps=1e-6, clip=0.05, weight_decay=0.1)
    opt_cpu.cache = {k: np.abs(np.random.default_rng(4).standard_normal(v.shape)) for k, v in params.items()}
    ema_cpu = {k: v + 0.01 for k, v in params.items()}

    class Run:  # what gpu.Trainer reads of a runs.Run
        pass

    run = Run()
    run.params = {k: v.copy() for k, v in params.items()}
    run.opt = RMSprop(run.params, lr=0.01, rho=0.9, eps=1e-6, clip=0.05, weight_decay=0.1)
    run.opt.cache = {k: v.copy() for k, v in opt_cpu.cache.items()}
    run.ema = {k: v.copy() for k, v in ema_cpu.items()}
    run.state = state
    run.rng = None  # no dropout: no masks drawn
    trainer = gpu.Trainer(ops, run)
    for _ in range(2):
        loss, grads, state = lstm.loss_and_grads(params, x, y, state)
        opt_cpu.step(params, grads)
        update_average(ema_cpu, params, 0.9)
        got, finite = trainer.step(x, y, run.opt, ema=0.9)
        assert finite and abs(got - loss) < 1e-12
    trainer.to_host(run)
    assert run.opt.steps == opt_cpu.steps == 2
    for k in params:
        assert np.allclose(run.params[k], params[k], atol=1e-12), k
        assert np.allclose(run.opt.cache[k], opt_cpu.cache[k], atol=1e-12), k
        assert np.allclose(run.ema[k], ema_cpu[k], atol=1e-12), k
    for (h, c), (h2, c2) in zip(state, run.state):
        assert np.allclose(h2, h, atol=1e-12) and np.allclose(c2, c, atol=1e-12)


def test_predictor_equals_cpu_predictor(ops):
    params, x, _, _ = _window(7, 9, 2, 6, 3, seed=5)
    cpu, dev = lstm.Predictor(params, 3), lstm.predictor(params, 3, devices.Device(ops))
    for part in (x[:4], x[4:5], x[5:]):  # the state carried from call to call
        (a, steps_a), (b, steps_b) = cpu(part, keep=True), dev(part, keep=True)
        assert np.allclose(b, a, atol=1e-12)
        for la, lb in zip(steps_a, steps_b):
            for u, v in zip(la, lb):
                assert np.allclose(v, u, atol=1e-12)
    dev.state = cpu.state = [(h[::-1].copy(), c[::-1].copy()) for h, c in cpu.state]  # as beam search does
    assert np.allclose(dev(x[:2]), cpu(x[:2]), atol=1e-12)


def test_dynamic_evaluation_equals_cpu(ops):
    params, _, _, _ = _window(7, 6, 2, 1, 1, seed=6)
    ids = np.random.default_rng(7).integers(0, 7, 13)  # two whole windows of 5, and part of one
    a = lstm.evaluate_dynamic(params, ids, lr=0.3, window=5, decay=0.1)
    b = lstm.evaluate_dynamic(params, ids, lr=0.3, window=5, decay=0.1, device=devices.Device(ops))
    assert np.allclose(b[0], a[0], atol=1e-10) and (b[1] == a[1]).all()


# --- the scripts on the GPU: a run moving between devices, a resume, a sample in every process --------------


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
    """The checkpoint is one format: --resume --device cuda, then --device cpu, continues the same run
    (weights, RMSprop state, carried state, position, random state, average), float64; on the GPU where there
    is one, else on the twins."""
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


def test_a_run_saved_on_the_gpu_names_its_device_where_none_is_here(tmp_path):
    corpus = tmp_path / 'c.txt'
    corpus.write_text(tiny_corpus(2000))
    _train(tmp_path / 'run', corpus, '--max-steps', '2', '--device', 'cuda', env=TWIN)
    r = run_without_cupy('_training.py', '--out', str(tmp_path / 'run'), '--resume', '--max-steps', '3')
    assert_one_line_error(r, 'was trained with --device cuda', '--resume --device cpu')
    _train(tmp_path / 'run', corpus, '--max-steps', '3', '--resume', '--device', 'cpu')


# --- a resume continues bit for bit (on the twins too); on a GPU, the same sample in every process ----------


@pytest.mark.parametrize('dtype', ['float32', 'float64'])
def test_gpu_resume_continues_bit_for_bit(tmp_path, dtype):
    """On the GPU where there is one, else on the twins; the gradient clipped at every step, so that its norm
    (a sum over the flat buffer of every gradient) must be the same sum after a resume."""
    env = None if CUDA is not None else TWIN
    corpus = tmp_path / 'c.txt'
    corpus.write_text(tiny_corpus(3000))
    options = ['--dtype', dtype, '--device', 'cuda', '--clip', '0.05']
    _train(tmp_path / 'one', corpus, '--max-steps', '60', *options, env=env)
    _train(tmp_path / 'two', corpus, '--max-steps', '25', *options, env=env)
    _train(tmp_path / 'two', corpus, '--max-steps', '60', '--resume', *options, env=env)
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
