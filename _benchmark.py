"""Measure training and sampling speed, and the peak memory of training, at the original's shapes.

    python _benchmark.py                       # this repo alone
    .venv-torch/bin/python _benchmark.py       # side by side with PyTorch's nn.LSTM, where torch is installed
    python _benchmark.py --device cuda         # on an NVIDIA GPU, beside PyTorch's cuDNN LSTM if installed

Training: forward, backward and RMSprop over one window of T characters in B chunks (B * T characters), the
median of 3 * --rounds steps; with PyTorch, the two are timed in turn, round after round, so that a change in
the machine's speed falls on both alike. Sampling: --sample-length steps of one character, for 1 sample and
for 32 samples side by side, each timed in 5 parts. It prints the CPU, the OpenBLAS kernel in use and the
thread count (OPENBLAS_NUM_THREADS's, where it is set, as _training.py takes it), and warns when
OPENBLAS_CORETYPE pins the kernel. The last line of stdout is one JSON object with every figure, with the
spread of each between rounds (or parts); where one is over 25%, a warning on stderr says that the figures are
unreliable. Measure on a quiet machine: with another busy process on the cores, OpenBLAS's multi-threaded
products slow down many times over.
"""

import util.startup  # noqa: F401  first: Ctrl-C while the script starts is one line (util/startup.py)
from util import cli
import json
import os
import resource
import time

from util import blas, devices, memory, options
from util.errors import UserError
from util.machine import UNRELIABLE, cpu_model, warn_if_pinned, warn_unreliable
import engine
import lstm


def parse_args(argv):
    p = cli.Parser(
        description='Benchmark training and sampling of the numpy LSTM (and of PyTorch, if present).'
    )
    g = p.add_argument_group('model')
    g.add_argument('--layers', type=cli.positive_int, default=2, help='LSTM layers (default %(default)s)')
    g.add_argument(
        '--hidden', type=cli.positive_int, default=512, help='units per layer (default %(default)s)'
    )
    g.add_argument('--vocab', type=cli.positive_int, default=65, help='characters (default %(default)s)')
    g = p.add_argument_group('measurement')
    g.add_argument(
        '--chunks',
        type=cli.positive_int,
        help='batch of chunks B (default 25; on --device cuda 25, 128 and 512 in turn)',
    )
    g.add_argument('--window', type=cli.positive_int, default=100, help='window T (default %(default)s)')
    g.add_argument(
        '--rounds',
        type=cli.positive_int,
        default=5,
        help='rounds of training steps, each timing 3 '
        'steps of this repo and then 3 of PyTorch, one after the other (on --device cuda 5 steps '
        'each; sampling 3 rounds) (default %(default)s)',
    )
    g.add_argument(
        '--warmup', type=cli.non_negative_int, default=2, help='untimed steps first (default %(default)s)'
    )
    g.add_argument(
        '--sample-length',
        type=cli.positive_int,
        default=1000,
        help='characters sampled (default %(default)s)',
    )
    g.add_argument(
        '--threads',
        type=cli.positive_int,
        help='threads for numpy (2: half of the chunks on each of two threads, '
        'with OpenBLAS at 1 thread) and for PyTorch (default: OPENBLAS_NUM_THREADS where it is set, '
        'as _training.py takes it, else all cores; the CPU only)',
    )
    g.add_argument('--no-torch', action='store_true', help='skip PyTorch even if it is installed')
    g.add_argument(
        '--device',
        type=cli.choice('cpu', 'cuda'),
        default='cpu',
        metavar='{cpu,cuda}',
        help='measure on the CPU or on an NVIDIA GPU through CuPy, beside PyTorch\'s cuDNN LSTM where '
        'PyTorch can use the GPU (default %(default)s)',
    )
    args = p.parse_args(argv)
    if args.device == 'cuda':
        options.refuse_unused(options.given(args, ['threads']), "--device cpu (the CPU's threads)")
    elif args.threads is None:
        args.threads = default_threads()
    return args


def default_threads():
    """OPENBLAS_NUM_THREADS where it is a positive number (so OPENBLAS_NUM_THREADS=1 measures one thread, as
    _training.py then trains on one), up to the number of cores; else every core."""
    text, cores = os.environ.get('OPENBLAS_NUM_THREADS', ''), os.cpu_count() or 1
    return min(int(text), cores) if text.isdigit() and int(text) > 0 else cores


def spread(values):
    """How far apart repeated measurements are: (largest - smallest) / median."""
    values = sorted(values)
    return (values[-1] - values[0]) / values[len(values) // 2]


WHAT = {'train': 'training', 'sample1': 'sampling (batch 1)', 'sample32': 'sampling (batch 32)'}


def side_by_side(fns, rounds, per_round=3):
    """Time each function in turn, round after round, so that a change in the machine's speed (another
    process, a noisy neighbour) falls on all of them alike. In each round a function runs once untimed (the
    other's threads settle) and then per_round times. Returns the median time of each, in seconds, and the
    spread of the rounds' medians."""
    times = [[] for _ in fns]
    for _ in range(rounds):
        for k, fn in enumerate(fns):
            fn()
            for _ in range(per_round):
                t = time.perf_counter()
                fn()
                times[k].append(time.perf_counter() - t)
    medians = [sorted(ts)[len(ts) // 2] for ts in times]
    return medians, [
        spread([sorted(ts[r : r + per_round])[per_round // 2] for r in range(0, len(ts), per_round)])
        for ts in times
    ]


def numpy_trainer(args):
    """One training step of this repo (forward, backward, RMSprop) at the benchmark's shapes, as a
    function."""
    import numpy as np
    from optimizer import RMSprop

    rng = np.random.default_rng(0)
    params = lstm.init_params(args.vocab, args.hidden, args.layers, rng=rng)
    opt = RMSprop(params)
    B, T = args.chunks, args.window
    x = rng.integers(0, args.vocab, size=(T, B))
    y = rng.integers(0, args.vocab, size=(T, B))
    state = [lstm.zero_state(params, B)]
    threads = min(args.threads, 2)
    if blas.set_threads(1 if threads > 1 else args.threads) is None:
        threads = 1  # OpenBLAS not found: let its own threads do the work
    plan = engine.Plan(threads)  # widths measured here, as training does

    def train():
        _, grads, state[0] = lstm.loss_and_grads(params, x, y, state[0], plan=plan)
        opt.step(params, grads)

    return train, params


def numpy_sampling(params, args):
    import numpy as np

    rng = np.random.default_rng(0)
    blas.set_threads(args.threads)  # sampling: OpenBLAS's own threads
    result = {}
    for N in (1, 32):
        rates = [sample_speed(params, N, max(args.sample_length // 5, 1), rng) for _ in range(5)]
        result.update({f'sample{N}_chars_per_s': sorted(rates)[2], f'sample{N}_spread': spread(rates)})
    blas.set_threads(1 if args.threads > 1 else args.threads)
    return result


def sample_speed(params, N, length, rng):
    """Characters per second of lstm.sample drawing N samples side by side (N characters per step)."""
    gen = lstm.sample(params, [0], length + 10, temperature=1.0, rng=rng, num_samples=N)
    for _ in range(10):
        next(gen)
    t = time.perf_counter()
    for _ in range(length):
        next(gen)
    return N * length / (time.perf_counter() - t)


def torch_trainer(args):
    """The same training step in PyTorch: nn.LSTM (oneDNN's RNN primitive on the CPU), Linear, cross-entropy,
    RMSprop with the same settings."""
    import torch

    torch.manual_seed(0)
    V, H, B, T = args.vocab, args.hidden, args.chunks, args.window
    rnn = torch.nn.LSTM(V, H, num_layers=args.layers)
    dense = torch.nn.Linear(H, V)
    params = list(rnn.parameters()) + list(dense.parameters())
    opt = torch.optim.RMSprop(params, lr=0.001, alpha=0.95, eps=1e-8)
    x = torch.randint(0, V, (T, B))
    y = torch.randint(0, V, (T, B))
    state = [None]

    def train():
        onehot = torch.nn.functional.one_hot(x, V).float()
        out, (h, c) = rnn(onehot, state[0])
        loss = torch.nn.functional.cross_entropy(dense(out).reshape(T * B, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        state[0] = (h.detach(), c.detach())

    def sampling():
        with torch.no_grad():
            torch.backends.mkldnn.enabled = False  # oneDNN is slower than plain for batch-1 steps
            ix = torch.zeros(1, 1, dtype=torch.long)
            hc = None
            for k in range(args.sample_length + 10):
                if k == 10:
                    t = time.perf_counter()
                out, hc = rnn(torch.nn.functional.one_hot(ix, V).float(), hc)
                p = torch.softmax(dense(out[0, 0]), dim=0)
                ix = torch.multinomial(p, 1).view(1, 1)
            torch.backends.mkldnn.enabled = True
            return args.sample_length / (time.perf_counter() - t)

    return train, sampling


def report(result, args, pinned):
    """Print the measurements as a table, then as one line of JSON."""
    has_torch = 'torch_version' in result
    rows = [
        (
            'training',
            f'{result["train_chars_per_s"]:,.0f} chars/s',
            f'{result["train_step_ms"]:.0f} ms per window of {args.chunks * args.window} chars',
        ),
        (
            'sampling, batch 1',
            f'{result["sample1_chars_per_s"]:,.0f} chars/s',
            'one sample, a character at a time',
        ),
        (
            'sampling, batch 32',
            f'{result["sample32_chars_per_s"]:,.0f} chars/s',
            f'32 samples side by side '
            f'({result["sample32_chars_per_s"] / result["sample1_chars_per_s"]:.1f}x batch 1)',
        ),
        ('peak memory of training', f'{result["peak_rss_mb"]:.0f} MB', 'max resident set size'),
    ]
    if has_torch:
        rows += [
            (
                f'PyTorch {result["torch_version"]} training',
                f'{result["torch_train_chars_per_s"]:,.0f} chars/s',
                f'this repo is {result["train_vs_torch"]:.2f}x',
            ),
            (
                f'PyTorch {result["torch_version"]} sampling',
                f'{result["torch_sample_chars_per_s"]:,.0f} chars/s',
                f'batch 1; this repo is {result["sample_vs_torch"]:.2f}x',
            ),
        ]
    print(
        f'{result["cpu"]}, {result["cores"]} cores; numpy {result["numpy_version"]}, OpenBLAS kernel '
        f'{result["openblas_core"]}{" (pinned by OPENBLAS_CORETYPE)" if pinned else ""}; '
        f'{cli.count(result["threads"], "thread")}'
    )
    print(result['shape'])
    for name, value, note in rows:
        print(f'  {name:<28} {value:>16}   {note}')
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in result.items()}))
    warn_unreliable(
        [(WHAT[name], result[name + '_spread']) for name in result['unreliable']],
        'another process is using the cores, or the machine\'s speed drifts',
        'measure again on a quiet machine, with OPENBLAS_NUM_THREADS=1 beside other work, or with more '
        '--rounds',
    )


def gpu_main(args):
    """--device cuda: this repo's GPU engine beside PyTorch's cuDNN LSTM (gpu_benchmark.py)."""
    from util import gpu_benchmark

    device = cli.open_device('cuda')  # one line if there is no GPU
    args.batches = [args.chunks] if args.chunks else [25, 128, 512]
    need, what = measured_size(args, max(args.batches))
    memory.check_fits(need, what)
    devices.check_fits(device, need, what)
    torch = None
    if not args.no_torch:
        try:
            import torch

            if not torch.cuda.is_available():
                torch = None
        except ImportError:
            pass
    result, rows = gpu_benchmark.main(args, torch)
    gpu_benchmark.report(result, rows)
    return 0


def measured_size(args, B):
    """The memory that training the model measured on B chunks needs, for each copy (this repo's, and
    PyTorch's unless --no-torch), and the words for it."""
    copies = 1 if args.no_torch else 2
    need = copies * memory.model_bytes(args.vocab, args.hidden, args.layers, B, args.window, training=True)
    return need, (
        f'training --layers {args.layers} --hidden {args.hidden} --vocab {args.vocab} on '
        f'--chunks {B} x --window {args.window}{" (this repo and PyTorch)" * (copies == 2)}'
    )


def check_size(args):
    """Refuse a model that the copies measured would not fit in the machine's memory, and more threads than
    the machine has cores."""
    memory.check_fits(*measured_size(args, args.chunks))
    cores = os.cpu_count() or 1
    if args.threads > cores:
        raise UserError(
            f'--threads {args.threads}: this machine has {cli.count(cores, "core")}; give {cores} or fewer'
        )


def import_torch(args):
    """PyTorch with the benchmark's threads, or None (not installed, or --no-torch)."""
    if args.no_torch:
        return None
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(args.threads)
    return torch


def main(argv=None):
    args = parse_args(argv)
    if args.device == 'cuda':
        return gpu_main(args)
    args.chunks = args.chunks or 25
    check_size(args)
    import numpy as np

    pinned = warn_if_pinned()
    result = dict(
        shape=f'{args.layers}x{args.hidden} LSTM, V={args.vocab}, B={args.chunks}, T={args.window}, float32',
        cpu=cpu_model(),
        cores=os.cpu_count(),
        openblas_core=blas.core_name(),
        openblas_coretype_env=pinned,
        numpy_version=np.__version__,
        threads=args.threads,
    )
    train_numpy, params = numpy_trainer(args)
    for _ in range(args.warmup + 2):
        train_numpy()
    # numpy's alone, before torch is imported (KiB on Linux)
    result['peak_rss_mb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    torch = import_torch(args)
    fns = [train_numpy]
    if torch is not None:
        train_torch, sample_torch = torch_trainer(args)
        for _ in range(args.warmup):
            train_torch()
        fns.append(train_torch)
        result.update(torch_version=torch.__version__, torch_threads=torch.get_num_threads())
    times, spreads = side_by_side(fns, args.rounds)
    B, T = args.chunks, args.window
    result.update(train_chars_per_s=B * T / times[0], train_step_ms=1e3 * times[0], train_spread=spreads[0])
    result.update(numpy_sampling(params, args))
    if torch is not None:
        result.update(
            torch_train_chars_per_s=B * T / times[1],
            torch_train_step_ms=1e3 * times[1],
            torch_sample_chars_per_s=sample_torch(),
        )
        result['train_vs_torch'] = result['train_chars_per_s'] / result['torch_train_chars_per_s']
        result['sample_vs_torch'] = result['sample1_chars_per_s'] / result['torch_sample_chars_per_s']
    result['unreliable'] = [
        k[: -len('_spread')] for k, v in result.items() if k.endswith('_spread') and v > UNRELIABLE
    ]
    report(result, args, pinned)
    return 0


if __name__ == '__main__':
    cli.run(main)
