"""_benchmark.py --device cuda: this repo's GPU engine (gpu.py) beside PyTorch's cuDNN nn.LSTM on the same
GPU.

For each batch B of chunks: training (forward, backward and RMSprop over one window of T characters in B
chunks, float32, the loss brought back to the host every window as training does) and sampling (N samples side
by side, a character at a time: N = 1 and N = B). The two are timed in turn, round after round, so that a
change in the machine's speed falls on both alike; PyTorch runs in plain float32 (TF32 off, as this repo
computes), and once more with TF32 on for reference. Each figure is the median of the rounds; the spread
between rounds is printed beside it (and in the JSON) and flagged when above 25%, as _benchmark.py flags its
own.
"""

import time
from types import SimpleNamespace

import numpy as np

from util import devices
from util.machine import UNRELIABLE, warn_unreliable
import lstm
from optimizer import RMSprop


def our_trainer(device, args, B):
    """One training window of this repo on the GPU, as _training.py runs it (gpu.Trainer.step)."""
    rng = np.random.default_rng(0)
    params = lstm.init_params(args.vocab, args.hidden, args.layers, rng=rng)
    run = SimpleNamespace(
        params=params, opt=RMSprop(params), state=lstm.zero_state(params, B), ema=None, rng=None
    )
    trainer = device.trainer(run)
    x = rng.integers(0, args.vocab, size=(args.window, B))
    y = rng.integers(0, args.vocab, size=(args.window, B))
    return lambda: trainer.step(x, y, run.opt), params


def torch_trainer(torch, args, B, tf32):
    """The same window in PyTorch on the GPU: nn.LSTM (cuDNN), Linear, cross-entropy, RMSprop."""
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    torch.manual_seed(0)
    V, H, T, dev = args.vocab, args.hidden, args.window, 'cuda'
    rnn = torch.nn.LSTM(V, H, num_layers=args.layers).to(dev)
    dense = torch.nn.Linear(H, V).to(dev)
    opt = torch.optim.RMSprop(
        list(rnn.parameters()) + list(dense.parameters()), lr=0.001, alpha=0.95, eps=1e-8
    )
    x = torch.randint(0, V, (T, B), device=dev)
    y = torch.randint(0, V, (T, B), device=dev)
    state = [None]

    def train():
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
        out, (h, c) = rnn(torch.nn.functional.one_hot(x, V).float(), state[0])
        loss = torch.nn.functional.cross_entropy(dense(out).reshape(T * B, V), y.reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        state[0] = (h.detach(), c.detach())
        loss.item()  # the loss on the host every window, as this repo's training brings it back

    return train, (rnn, dense)


def torch_sampler(torch, modules, args, N):
    """N samples side by side in PyTorch, a character at a time, everything on the GPU."""
    rnn, dense = modules
    V = args.vocab

    def sample(length):
        with torch.no_grad():
            ix = torch.zeros(1, N, dtype=torch.long, device='cuda')
            hc = None
            for _ in range(length):
                out, hc = rnn(torch.nn.functional.one_hot(ix, V).float(), hc)
                p = torch.softmax(dense(out[0]), dim=1)
                ix = torch.multinomial(p, 1).view(1, N)

    return sample


def our_sampler(params, device, N):
    def sample(length):
        for _ in lstm.sample(params, [0], length, rng=np.random.default_rng(0), num_samples=N, device=device):
            pass

    return sample


def rounds(fns, sync, n_rounds, per_round):
    """Each function run per_round times in turn, round after round (one untimed call first, in each round).
    Returns per function (median seconds per call, spread: (slowest - fastest round) / median; None for one
    round, which has no spread)."""
    times = [[] for _ in fns]
    for _ in range(n_rounds):
        for k, fn in enumerate(fns):
            fn()
            sync()
            t = time.perf_counter()
            for _ in range(per_round):
                fn()
            sync()
            times[k].append((time.perf_counter() - t) / per_round)
    out = []
    for ts in times:
        med = sorted(ts)[len(ts) // 2]
        out.append((med, (max(ts) - min(ts)) / med if len(ts) > 1 else None))
    return out


def measure(device, args, torch):
    """Every figure, as a dict for the JSON line; rows for the table."""

    def sync_all():
        """Wait for the GPU's work: this repo's (CuPy's stream) and PyTorch's."""
        if device.ops.name == 'cuda':
            device.ops.xp.cuda.get_current_stream().synchronize()
        if torch is not None:
            torch.cuda.synchronize()

    result, rows = {}, []
    for B in args.batches:
        train, params = our_trainer(device, args, B)
        fns, names = [train], ['this repo']
        if torch is not None:
            for tf32 in (False, True):
                t_train, modules = torch_trainer(torch, args, B, tf32)
                fns.append(t_train)
                names.append('PyTorch cuDNN' + (' TF32' if tf32 else ''))
        for fn in fns:
            for _ in range(args.warmup):
                fn()
        timed = rounds(fns, sync_all, args.rounds, 5)
        chars = B * args.window
        for name, (sec, spread) in zip(names, timed):
            key = name.replace(' ', '_').replace('this_repo', 'repo')
            result[f'train_B{B}_{key}_chars_per_s'] = chars / sec
            result[f'train_B{B}_{key}_spread'] = spread
            rows.append((f'training B={B}', name, chars / sec, sec, spread))
        for N in sorted({1, B}) if B == args.batches[0] else [B]:
            samplers = [our_sampler(params, device, N)]
            if torch is not None:
                torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
                samplers.append(torch_sampler(torch, modules, args, N))
            timed = rounds([lambda s=s: s(args.sample_length) for s in samplers], sync_all, 3, 1)
            for name, (sec, spread) in zip(names, timed):
                key = name.replace(' ', '_').replace('this_repo', 'repo')
                result[f'sample_N{N}_{key}_chars_per_s'] = N * args.sample_length / sec
                result[f'sample_N{N}_{key}_spread'] = spread
                rows.append((f'sampling N={N}', name, N * args.sample_length / sec, sec, spread))
    return result, rows


def main(args, torch):
    """Measure and print; called by _benchmark.py with its arguments and torch (or None)."""
    device = devices.open_device('cuda')
    ops, cp = device.ops, device.ops.xp
    result = dict(
        shape=f'{args.layers}x{args.hidden} LSTM, V={args.vocab}, T={args.window}, float32',
        gpu=devices.device_name(device),
        cupy_version=cp.__version__ if ops.name == 'cuda' else None,
    )
    if torch is not None:
        result.update(torch_version=torch.__version__, cudnn_version=torch.backends.cudnn.version())
    figures, rows = measure(device, args, torch)
    result.update(figures)
    rng = np.random.default_rng(0)
    params = lstm.init_params(args.vocab, args.hidden, args.layers, rng=rng)
    draws = lstm.sample(params, [0], args.sample_length + 10, rng=rng)
    for _ in range(10):  # the CPU's batch-1 sampling, for comparison
        next(draws)
    t = time.perf_counter()
    for _ in draws:
        pass
    result['sample_N1_cpu_chars_per_s'] = args.sample_length / (time.perf_counter() - t)
    return result, rows


def report(result, rows):
    """The table, one row per figure, with the spread between rounds."""
    import json

    print(
        f'{result["gpu"]}; CuPy {result["cupy_version"]}'
        + (
            f', PyTorch {result["torch_version"]} (cuDNN {result["cudnn_version"]})'
            if 'torch_version' in result
            else ''
        )
    )
    print(result['shape'])
    varied = []  # (the figure, its spread) beyond UNRELIABLE
    for what, name, rate, sec, spread in rows:
        flag = ''
        if (spread or 0) > UNRELIABLE:
            varied.append((f'{what} {name}', spread))
            flag = f'  UNRELIABLE: rounds differ by more than {UNRELIABLE:.0%}'
        apart = 'one round' if spread is None else f'spread {spread:5.1%}'
        print(f'  {what:<16} {name:<20} {rate:>14,.0f} chars/s  {sec * 1e3:9.2f} ms  {apart}{flag}')
    print(
        f'  {"sampling N=1":<16} {"this repo, CPU":<20} {result["sample_N1_cpu_chars_per_s"]:>14,.0f} chars/s'
    )
    result['unreliable'] = [what for what, _ in varied]
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}))
    warn_unreliable(
        varied,
        'other work on the GPU or the host, or clocks that drift',
        'measure again on a quiet machine, or with more --rounds',
    )
