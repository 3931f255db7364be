"""_visualize.py --find and --html on a text of one long line: memory that grows with the length, not with its
square (the search for periodic cells once asked for sums the size of the square of the longest line)."""
import os
import resource
import subprocess
import sys

import numpy as np

from explorer import analysis
import data
from util import files
import lstm
from conftest import ROOT

MEMORY = 1200 << 20                                     # address space for the script: numpy and a tiny model fit


def tiny(tmp_path, chars):
    params = lstm.init_params(len(chars), 8, 2, rng=np.random.default_rng(0))
    files.save_params(tmp_path / 'w.npz', params)
    data.save_lookup(tmp_path / 'l.json', chars)
    return ['--weights', tmp_path / 'w.npz', '--lookup', tmp_path / 'l.json']


def within_memory(*args):
    """Run _visualize.py with at most MEMORY of address space: a quadratic need ends in a MemoryError."""
    env = dict(os.environ, OPENBLAS_NUM_THREADS='1')
    return subprocess.run([sys.executable, os.path.join(ROOT, '_visualize.py'), *map(str, args)],
                          capture_output=True, text=True, timeout=600, env=env,
                          preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY)))


def test_the_periods_searched_are_bounded_whatever_the_length_of_the_lines():
    periods, two_cycles = analysis.line_periods('ab ' * 40000)
    assert periods[-1] == analysis.MAX_PERIOD and two_cycles <= periods[-1]
    assert analysis.line_periods('to be or not\n' * 100) == (range(2, 13), 6)      # short lines: as they were
    assert analysis.line_periods('') == (range(2, 9), 4)


def test_find_and_the_page_on_one_long_line_fit_in_little_memory(tmp_path):
    text = ('to be or not to be, that is the question: ' * 500)[:20000]      # one line, no newline
    (tmp_path / 'line.txt').write_text(text, encoding='utf-8')
    model = tiny(tmp_path, data.build_lookup(text))
    r = within_memory(*model, '--text', tmp_path / 'line.txt', '--find', '--periodic-svg', tmp_path / 'p.svg')
    assert r.returncode == 0, r.stderr[-2000:]
    assert f'periods 2 to {analysis.MAX_PERIOD}' in r.stdout and (tmp_path / 'p.svg').exists()
    r = within_memory(*model, '--text', tmp_path / 'line.txt', '--html', tmp_path / 'page.html', '--html-chars',
                      6000)
    assert r.returncode == 0, r.stderr[-2000:]
    assert (tmp_path / 'page.html').read_text(encoding='utf-8').startswith('<!DOCTYPE html>')
