"""_benchmark.py: its table and JSON line, the kernel it names, the threads it takes, and a warning in one
line where its rounds disagree."""

import json
import os

import pytest

import _training
from util import devices

from helpers import (
    TINY_BENCHMARK,
    assert_one_line_error,
    run_here,
    script,
)


def test_benchmark_prints_a_table_and_json():
    r = script(
        '_benchmark.py',
        '--hidden',
        16,
        '--chunks',
        4,
        '--window',
        10,
        '--rounds',
        1,
        '--warmup',
        1,
        '--sample-length',
        50,
        '--no-torch',
        env={'OPENBLAS_CORETYPE': ''},
    )
    assert r.returncode == 0, r.stderr
    warnings = [w for w in r.stderr.splitlines() if not w.startswith('warning: these figures are unreliable')]
    assert warnings == []  # only the load of a busy machine may be warned of
    result = json.loads(r.stdout.strip().splitlines()[-1])
    for key in ('train_chars_per_s', 'sample1_chars_per_s', 'sample32_chars_per_s', 'peak_rss_mb'):
        assert result[key] > 0
    assert result['cpu'] and result['cores'] >= 1 and result['threads'] >= 1
    assert result['openblas_core'] in r.stdout.splitlines()[0]  # the kernel in use is named
    r = script(
        '_benchmark.py',
        *TINY_BENCHMARK,
        env={'OPENBLAS_CORETYPE': 'Haswell'},
    )
    assert r.returncode == 0, r.stderr
    assert 'warning: OPENBLAS_CORETYPE=Haswell' in r.stderr


def test_the_benchmark_honours_openblas_num_threads_as_training_does(monkeypatch):
    import _benchmark

    monkeypatch.setenv('OPENBLAS_NUM_THREADS', '1')
    assert _benchmark.parse_args([]).threads == 1 == _training.default_threads()
    monkeypatch.delenv('OPENBLAS_NUM_THREADS')
    assert _benchmark.parse_args([]).threads == (os.cpu_count() or 1)
    monkeypatch.setenv('OPENBLAS_NUM_THREADS', '99999999999999999999')
    assert _benchmark.parse_args([]).threads == (os.cpu_count() or 1)  # no more than the cores


def test_threads_the_machine_or_the_engine_cannot_run_are_refused():
    cores = os.cpu_count() or 1
    r = run_here('_benchmark.py', '--threads', cores + 1, '--no-torch')
    assert_one_line_error(
        r, f'--threads {cores + 1}: this machine has {cores} core', f'give {cores} or fewer'
    )
    assert_one_line_error(run_here('_training.py', '--threads', 3), '--threads: 3 is not 1 or 2')
    twin = {devices.TWIN_VARIABLE: '1'}  # the GPU's paths, on the kernels' numpy twins
    r = run_here('_benchmark.py', '--device', 'cuda', '--threads', 1, env=twin)
    assert_one_line_error(r, '--threads goes with --device cpu')


def test_the_benchmark_says_when_its_rounds_disagree(monkeypatch, capsys):
    import _benchmark

    assert _benchmark.spread([1.0, 1.1, 1.05]) == pytest.approx(0.1 / 1.05)
    slow = iter([0.0, 1.0] + [0.0, 0.001] * 10_000)  # the first timed step 1000 times the rest: a busy moment
    monkeypatch.setattr(_benchmark.time, 'perf_counter', lambda: next(slow))
    times, spreads = _benchmark.side_by_side([lambda: None], rounds=3, per_round=1)
    assert spreads[0] > _benchmark.UNRELIABLE


def test_the_benchmark_warns_in_one_line_when_figures_are_unreliable(monkeypatch, capsys):
    import _benchmark

    monkeypatch.setattr(_benchmark, 'UNRELIABLE', -1.0)  # every spread counts as too wide
    # (its own warning, where a machine pins the kernel).
    monkeypatch.delenv('OPENBLAS_CORETYPE', raising=False)
    assert (
        _benchmark.main(
            [
                '--hidden',
                '8',
                '--chunks',
                '2',
                '--window',
                '3',
                '--rounds',
                '2',
                '--no-torch',
                '--sample-length',
                '10',
                '--threads',
                '1',
            ]
        )
        == 0
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith('warning: these figures are unreliable: training varied by'), (
        err
    )


def test_the_gpu_benchmark_warns_as_the_cpus_does_when_its_rounds_disagree(monkeypatch, capsys):
    """On the kernels' numpy twins: the same one line on stderr, and the figures named in the JSON."""
    import _benchmark
    from util import devices, gpu_benchmark

    monkeypatch.setenv(devices.TWIN_VARIABLE, '1')
    monkeypatch.setattr(devices, '_opened', {})
    monkeypatch.setattr(gpu_benchmark, 'UNRELIABLE', -1.0)  # every spread counts as too wide
    args = [
        '--device',
        'cuda',
        '--no-torch',
        '--hidden',
        '8',
        '--layers',
        '1',
        '--window',
        '4',
        '--chunks',
        '2',
    ]
    assert _benchmark.main([*args, '--rounds', '2', '--warmup', '0', '--sample-length', '5']) == 0
    out, err = capsys.readouterr()
    result = json.loads(out.splitlines()[-1])
    assert 'sampling N=2 this repo' in result['unreliable'], result
    assert err.count('\n') == 1 and err.startswith('warning: these figures are unreliable: train'), err
    assert 'varied by' in err and 'with more --rounds' in err
