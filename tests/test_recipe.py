"""recipes/shipped-model.sh, the shipped model's recipe, runs its two stages with the settings the shipped
checkpoint records, and run again (after a stop, or when done) it continues instead of starting over. Here at
a tiny size: PYTHON is a wrapper that adds small sizes and a small corpus to every _training.py command."""

import json
import os
import subprocess
import sys

import numpy as np

from util import npz, runs
from helpers import ROOT, tiny_corpus

SMALL = [
    '--hidden',
    '8',
    '--chunks',
    '4',
    '--window',
    '10',
    '--dtype',
    'float64',
    '--sample-length',
    '0',
    '--quiet',
    '--threads',
    '1',
    '--val-chars',
    '50',
]


def test_the_recipe_trains_the_shipped_settings_in_two_stages_and_continues_when_run_again(tmp_path):
    (tmp_path / 'corpus.txt').write_text(tiny_corpus(600), encoding='utf-8')
    wrapper = tmp_path / 'python'
    wrapper.write_text(
        f'#!{sys.executable}\nimport os, sys\nargs = sys.argv[1:]\n'
        f'if args and args[0].endswith("_training.py"):\n'
        f'    args += {["--corpus", str(tmp_path / "corpus.txt"), *SMALL]!r}\n'
        f'os.execv({sys.executable!r}, [{sys.executable!r}] + args)\n'
    )
    wrapper.chmod(0o755)
    out = tmp_path / 'run'
    env = dict(os.environ, PYTHON=str(wrapper))
    for _ in range(2):  # the second time: nothing left to do, and no error
        r = subprocess.run(
            ['sh', os.path.join(ROOT, 'recipes', 'shipped-model.sh'), str(out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stderr
    _, meta = npz.load(out / runs.CHECKPOINT, 'checkpoint', only_meta=True)
    _, shipped = npz.load(os.path.join(ROOT, 'saves', runs.CHECKPOINT), 'checkpoint', only_meta=True)
    sizes = {'hidden', 'chunks', 'window', 'dtype', 'val_chars', 'corpus'}
    recorded = {'device': 'cpu', **shipped['settings']}  # saved before runs recorded their device: the CPU
    # The settings the record holds.
    assert {k: v for k, v in meta['settings'].items() if k not in sizes} == {
        k: v for k, v in recorded.items() if k not in sizes
    }
    assert meta['position']['epoch'] == 44
    lr = [float(row[4]) for row in meta['log']]
    assert lr[:8] == [0.002] * 8 and np.isclose(lr[36], 0.000452) and np.isclose(lr[40], 0.000452 * 0.95**4)
    assert json.loads((out / runs.LOOKUP).read_text()) == meta['chars']
