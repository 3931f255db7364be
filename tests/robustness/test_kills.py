"""kill -9 at any moment, and a stress test of kills, signals, full disks and racing starts: the run folder is
always whole, and the run ends as one that was never stopped."""

import os
import signal

import numpy as np
import pytest

import _training
import data
from optimizer import RMSprop
from util import checkpoint, runs
from util.weights import load_params

from helpers import TINY, assert_same_run, assert_whole, load, train
from interrupted import start, start_training, stopped, wait_for, wait_for_rewrites


def test_kill_9_at_any_moment_leaves_a_readable_checkpoint(made, tmp_path):
    """Checkpoint at every step, and kill -9 at random moments: the files are always complete."""
    out = tmp_path / 'run'
    rng = np.random.default_rng(0)
    for k in range(6):
        resume = ['--resume'] if (out / 'ShakespeareOptimizer.npz').exists() else []
        p = start_training(made / 'corpus.txt', out, '--checkpoint-minutes', '0.00001', *resume)
        wait_for(out / 'ShakespeareOptimizer.npz')
        # Then kill it wherever it is.
        wait_for_rewrites(out / 'ShakespeareOptimizer.npz', int(rng.integers(0, 4)))
        p.send_signal(signal.SIGKILL)
        p.wait(timeout=60)
        checkpoint.load(out / 'ShakespeareOptimizer.npz', lambda q: RMSprop(q))
        load_params(out / 'ShakespeareNet.npz')
        data.load_lookup(out / 'ShakespeareLookup.json')
    # A kill in the middle of a write leaves the temporary file of atomic_write behind (never a half file
    # under a real name); the next run in the folder clears them.
    assert (
        _training.main(
            ['--corpus', str(made / 'corpus.txt'), '--out', str(out), '--resume', '--max-steps', '0', *TINY]
        )
        == 0
    )
    left = [f for folder in (out, out / 'best') if folder.exists() for f in os.listdir(folder) if 'tmp' in f]
    assert left == []


@pytest.mark.slow
def test_stress_kills_signals_full_disks_and_racing_starts_then_the_same_run(tmp_path, corpus):
    command = [
        '--corpus',
        corpus,
        '--out',
        tmp_path / 'run',
        '--epochs',
        '6',
        '--checkpoint-minutes',
        '1e-9',
        *TINY,
    ]
    out, rng = tmp_path / 'run', np.random.default_rng(20)
    assert train(*command[:3], tmp_path / 'whole', *command[4:]) == 0
    size = sum(p.stat().st_size for p in (tmp_path / 'whole').iterdir() if p.is_file())
    for _ in range(14):
        action = rng.choice(['signal', 'disk', 'race'])
        if action == 'signal':
            sig = rng.choice([signal.SIGKILL, signal.SIGKILL, signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
            p = start(out, command)
            code = stopped(p, sig, rng.uniform(0.2, 3.0))
            assert code in (0, 128 + sig, -sig) and 'Traceback' not in p.stderr.read()
        elif action == 'disk':
            p = start(out, command, budget=int(rng.integers(0, 3 * size)))
            code, err = p.wait(timeout=300), p.stderr.read().strip().splitlines()
            assert code == 0 or (code == 2 and len(err) == 1 and 'No space left on device' in err[0]), err
        else:
            ps = [start(out, command) for _ in range(3)]
            codes = [stopped(p, signal.SIGKILL, rng.uniform(0.5, 3.0)) for p in ps]
            for p, code in zip(ps, codes):
                err = p.stderr.read().strip().splitlines()
                assert code in (0, -9) or (
                    code == 2
                    and len(err) == 1
                    and ('another training is running' in err[0] or 'already holds a run' in err[0])
                ), err
        if (out / runs.CHECKPOINT).exists():
            load(out)  # always a whole checkpoint
    assert train(*command, '--resume') == 0 if (out / runs.CHECKPOINT).exists() else train(*command) == 0
    assert_same_run(out, tmp_path / 'whole')
    assert_whole(out)
