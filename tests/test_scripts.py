"""Each script's command-line behaviour, run as a user runs it: output, help, progress on a terminal only,
scoring random blocks, the benchmark, the memory estimate, and one-line errors for bad input."""

import io
import json
import os
import pty
import re
import select
import subprocess
import sys

import numpy as np
import pytest

import _training
import data
import lstm
from util import cli
from util.weights import load_params

from helpers import (
    ROOT,
    SAVES,
    TINY_LOUD,
    assert_one_line_error,
    in_parallel,
    into_a_closed_pipe,
    model_args,
    run_here,
    script,
    tiny_corpus,
)
from reference import reference_model


CORPUS = os.path.join(SAVES, 'shakespeare.txt')


def test_sample_with_the_shipped_model_is_reproducible():
    a = script('_sample.py', '--length', 200, '--seed', 5)  # a fresh process; the others in this one
    b = run_here('_sample.py', '--length', 200, '--seed', 5, '--start', 'F')
    assert a.returncode == 0, a.stderr
    assert a.stdout == b.stdout
    assert a.stdout.startswith('F') and len(a.stdout) == 1 + 200 + 1
    c = run_here('_sample.py', '--length', 200, '--seed', 6)
    assert c.stdout != a.stdout


def test_sample_temperature_zero_is_deterministic():
    a = run_here('_sample.py', '--length', 50, '--temperature', 0, '--seed', 1)
    b = run_here('_sample.py', '--length', 50, '--temperature', 0, '--seed', 2)
    assert a.returncode == 0 and a.stdout == b.stdout


def test_sample_options_stop_start_file_batch_and_top_k(tmp_path):
    (tmp_path / 'prime.txt').write_text('JULIET:\nO Romeo', encoding='utf-8')
    r, a, b, c, d, f, g, h, k = (
        run_here('_sample.py', *args)
        for args in [
            ['--seed', 3, '--start', 'ROMEO:\\n', '--stop', '\\n\\n', '--length', 2000],
            ['--seed', 4, '--length', 100, '--start-file', tmp_path / 'prime.txt'],
            ['--seed', 4, '--length', 100, '--start', 'JULIET:\\nO Romeo'],
            ['--seed', 5, '--length', 80, '--num-samples', 3, '--start', 'KING'],
            ['--seed', 5, '--length', 80, '--num-samples', 3, '--start', 'KING'],
            ['--seed', 6, '--length', 60, '--top-k', 1, '--temperature', 1.5],
            ['--seed', 7, '--length', 60, '--temperature', 0],
            ['--length', 5, '--top-k', 66],
            ['--length', 5, '--start', 'A', '--start-file', tmp_path / 'prime.txt'],
        ]
    )
    # --stop: each sample ends right after the stop text, which is never cut
    assert r.returncode == 0, r.stderr
    text = r.stdout  # no newline added after the stop text's own
    assert (
        text.startswith('ROMEO:\n') and text.endswith('\n\n') and text[len('ROMEO:\n') :].count('\n\n') == 1
    )
    # --start-file primes like --start with the same text
    assert a.returncode == 0 and a.stdout == b.stdout and a.stdout.startswith('JULIET:\nO Romeo')
    # --num-samples: N samples, one after the other, reproducible, different from each other
    assert c.returncode == 0 and c.stdout == d.stdout
    parts = c.stdout.split('=== sample ')[1:]
    assert len(parts) == 3 and len({p.split('\n', 1)[1] for p in parts}) == 3
    assert all(p.split('\n', 1)[1].startswith('KING') for p in parts)
    # --top-k 1 is greedy, whatever the temperature and seed
    assert f.returncode == 0 and f.stdout == g.stdout
    assert_one_line_error(h, '--top-k 66', '65 characters')
    assert_one_line_error(k, 'either --start or --start-file')


@pytest.mark.parametrize(
    'args, words',
    [
        (['--start', 'Zé€'], ['--start', "'é'", "'€'", 'not in the lookup table']),
        (['--length', '0'], ['--length', 'positive']),
        (['--length', '-5'], ['--length']),
        (['--temperature', '-1'], ['--temperature']),
        (['--temperature', 'nan'], ['--temperature']),
        (['--start', ''], ['--start', 'empty']),
        (['--weights', 'no/such.npz'], ['does not exist']),
        (['--lookup', 'no/such.json'], ['does not exist']),
    ],
)
def test_sample_refuses_bad_input(args, words):
    assert_one_line_error(run_here('_sample.py', *args), *words)


def test_sample_refuses_a_lookup_that_does_not_match(small_model, tmp_path):
    weights, _, _ = small_model
    assert_one_line_error(
        run_here(
            '_sample.py', '--weights', weights, '--lookup', os.path.join(SAVES, 'ShakespeareLookup.json')
        ),
        'lookup table',
    )


def test_shipped_files_are_consistent():
    chars = data.load_lookup(os.path.join(SAVES, 'ShakespeareLookup.json'))
    params, meta = load_params(os.path.join(SAVES, 'ShakespeareNet.npz'), V=len(chars))
    assert lstm.sizes(params) == (65, 512, 2)
    assert params['lstm1.W'].dtype == np.float32
    with np.load(os.path.join(SAVES, 'ShakespeareNet.npz'), allow_pickle=False) as z:
        assert all(z[k].dtype == np.float32 for k in z.files if k != 'meta')
    assert meta['epoch'] >= 1
    text = open(os.path.join(SAVES, 'sample.txt'), encoding='utf-8').read()
    data.encode(text, chars)  # every character of the sample is known


def test_shipped_lookup_is_the_corpus_lookup():
    _, chars = data.read_corpus(CORPUS)
    assert chars == data.load_lookup(os.path.join(SAVES, 'ShakespeareLookup.json'))


def test_evaluate_scores_a_text(small_model, tmp_path):
    weights, lookup, chars = small_model
    (tmp_path / 't.txt').write_text(tiny_corpus(500), encoding='utf-8')
    r = run_here('_evaluate.py', '--text', tmp_path / 't.txt', '--weights', weights, '--lookup', lookup)
    assert r.returncode == 0, r.stderr
    nats = float(r.stdout.split('loss ')[1].split()[0])
    assert abs(nats - np.log(len(chars))) < 0.3  # an untrained model: about log V
    (tmp_path / 'bad.txt').write_text('KING: ¿qué?', encoding='utf-8')
    r = run_here('_evaluate.py', '--text', tmp_path / 'bad.txt', '--weights', weights, '--lookup', lookup)
    assert_one_line_error(r, 'bad.txt', "'¿'", "'é'")


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
        '--hidden',
        8,
        '--chunks',
        2,
        '--window',
        4,
        '--rounds',
        1,
        '--warmup',
        0,
        '--sample-length',
        5,
        '--no-torch',
        env={'OPENBLAS_CORETYPE': 'Haswell'},
    )
    assert r.returncode == 0, r.stderr
    assert 'warning: OPENBLAS_CORETYPE=Haswell' in r.stderr


def test_visualize_activations_and_colours(small_model):
    from explorer import analysis
    from explorer import viewer

    weights, lookup, chars = small_model
    params, _ = load_params(weights)
    ids = data.encode('to be or not', chars)
    acts = analysis.activations(params, ids)
    assert set(acts) == {(1, 'h'), (1, 'c'), (2, 'h'), (2, 'c')}
    assert acts[(2, 'h')].shape == (len(ids), 16)
    # the activations are the naive LSTM's h and tanh(c) of every step
    _, reference = reference_model(params, ids[:, None])
    for n in (1, 2):
        np.testing.assert_allclose(acts[(n, 'h')], reference[n - 1].h[:, 0], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(acts[(n, 'c')], np.tanh(reference[n - 1].c[:, 0]), rtol=1e-5, atol=1e-6)
    assert viewer.colour(-1) == '#ffffff'
    assert viewer.colour(1) == '#ff0000'
    assert viewer.colour(5) == '#ff0000'
    assert viewer.colour(0) == '#ff8080'


def test_visualize_refuses_unknown_characters(small_model, tmp_path):
    weights, lookup, _ = small_model
    (tmp_path / 't.txt').write_text('to be ¡Zz!', encoding='utf-8')
    r = run_here('_visualize.py', '--text', tmp_path / 't.txt', '--weights', weights, '--lookup', lookup)
    assert_one_line_error(r, "'¡'", "'Z'", "'z'")
    (tmp_path / 'ok.txt').write_text('to be', encoding='utf-8')
    r = run_here(
        '_visualize.py',
        '--text',
        tmp_path / 'ok.txt',
        '--weights',
        weights,
        '--lookup',
        lookup,
        '--neuron',
        99,
    )
    assert_one_line_error(r, '--neuron 99')


def test_plot_draws_the_learning_curve(tmp_path):
    log = tmp_path / 'training_log.csv'
    log.write_text(
        'epoch,step,train_loss,val_loss,lr,seconds,chars_per_s,event\n'
        '1,401,2.6,2.0,0.002,300,3000,best\n'
        '1.5,600,1.9,,0.002,400,,SIGTERM received\n'
        '2,802,1.8,1.7,0.002,600,3000,best\n'
    )
    r = run_here('_plot.py', log, '--out', tmp_path / 'c.svg')
    assert r.returncode == 0, r.stderr
    svg = (tmp_path / 'c.svg').read_text()
    assert svg.startswith('<svg') and svg.count('<polyline') == 2
    assert svg.count('<circle') == 4  # two epochs, two curves; the interruption is skipped
    assert '1.7000' in svg  # the best validation loss is labelled
    assert_one_line_error(run_here('_plot.py', tmp_path / 'none.csv'), 'does not exist')
    other = tmp_path / 'run-Q-something.csv'
    other.write_text(
        'epoch,step,train_loss,val_loss,lr,seconds,chars_per_s,event\n'
        '1,401,2.9,2.4,0.002,300,3000,best\n2,802,2.0,1.9,0.002,600,3000,best\n'
    )
    r = run_here('_plot.py', log, '--compare', other, '--ymax', 2.1, '--out', tmp_path / 'd.svg')
    assert r.returncode == 0, r.stderr
    svg = (tmp_path / 'd.svg').read_text()
    assert svg.count('<polyline') == 3 and 'stroke-dasharray' in svg and 'run Q, validation' in svg
    assert svg.count('<circle') == 3  # the training loss of 2.6 is above --ymax: no dot
    assert '>2.00</text>' in svg and '>2.15</text>' not in svg  # the axis stops at 2.1
    assert_one_line_error(run_here('_plot.py', log, '--compare', tmp_path / 'none.csv'), 'does not exist')
    assert_one_line_error(run_here('_plot.py', log, '--ymax', 0), '--ymax')


def test_max_steps_zero_saves_the_untrained_model(tmp_path):
    (tmp_path / 'c.txt').write_text(tiny_corpus(3000), encoding='utf-8')
    r = run_here(
        '_training.py',
        '--corpus',
        tmp_path / 'c.txt',
        '--out',
        tmp_path / 'run',
        '--hidden',
        8,
        '--max-steps',
        0,
    )
    assert r.returncode == 0, r.stderr
    params, meta = load_params(tmp_path / 'run' / 'ShakespeareNet.npz')
    init = lstm.init_params(len(data.build_lookup(tiny_corpus(3000))), 8, 2, rng=np.random.default_rng(0))
    assert meta['step'] == 0
    for k in params:
        np.testing.assert_array_equal(params[k], init[k])


@pytest.mark.slow
def test_shipped_model_validation_loss_is_what_its_file_says():
    """The README's command, on the real validation split: the figure recorded at training is reproduced."""
    r = script('_evaluate.py', '--corpus', CORPUS)
    assert r.returncode == 0, r.stderr
    assert 'the validation split' in r.stdout and '111,539 characters predicted' in r.stdout
    nats = float(r.stdout.split('loss ')[1].split()[0])
    _, meta = load_params(os.path.join(SAVES, 'ShakespeareNet.npz'))
    assert nats == pytest.approx(meta['val_loss'], abs=2e-4)


def test_evaluate_dynamic_reports_both_halves_and_the_whole(small_model, tmp_path):
    weights, lookup, chars = small_model
    (tmp_path / 't.txt').write_text(tiny_corpus(1200), encoding='utf-8')
    r = run_here(
        '_evaluate.py',
        '--weights',
        weights,
        '--lookup',
        lookup,
        '--text',
        tmp_path / 't.txt',
        '--dynamic',
        '--dynamic-lr',
        0.1,
        '--dynamic-window',
        40,
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert 'dynamic evaluation (lr 0.1, windows of 40' in lines[0]
    losses = {line.split()[0]: float(line.split('loss ')[1].split()[0]) for line in lines[1:]}
    assert set(losses) == {'first', 'second', 'whole'}
    assert min(losses['first'], losses['second']) <= losses['whole'] <= max(losses['first'], losses['second'])


def test_evaluate_ngram_and_the_comparison_by_kind(small_model, tmp_path):
    weights, lookup, chars = small_model
    (tmp_path / 'c.txt').write_text(tiny_corpus(3000), encoding='utf-8')
    model = ['--weights', weights, '--lookup', lookup, '--corpus', tmp_path / 'c.txt']
    r = run_here('_evaluate.py', *model, '--ngram', 3, '--compare')
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert '3-gram model (interpolated Witten-Bell' in out and 'the LSTM on the same characters' in out
    for kind in (
        'first letter of a word',
        'inside a word',
        "in a speaker's name",
        '10 to 19 after a newline',
    ):
        assert kind in out
    one = float(run_here('_evaluate.py', *model, '--ngram', 1).stdout.split('loss ')[1].split()[0])
    three = float(out.split('loss ')[1].split()[0])
    assert three < one  # context helps on a text of repeated words
    assert_one_line_error(run_here('_evaluate.py', *model, '--compare'), '--compare goes with --ngram')
    assert_one_line_error(run_here('_evaluate.py', *model, '--ngram', 0), '--ngram')


def without_pin_warning(stderr):
    """stderr less the lines _benchmark.py prints where OPENBLAS_CORETYPE is set (some machines set it) and where
    its rounds disagree (on a busy machine, or with the few characters of a quick test)."""
    return ''.join(
        line
        for line in stderr.splitlines(keepends=True)
        if not line.startswith(('warning: OPENBLAS_CORETYPE=', 'warning: these figures are unreliable'))
    )


def test_every_script_stops_quietly_when_its_reader_goes_away(small_model, tmp_path):
    weights, lookup, _ = small_model
    text = tmp_path / 't.txt'
    text.write_text(tiny_corpus(2000), encoding='utf-8')
    model = ['--weights', weights, '--lookup', lookup]
    log = tmp_path / 'log.csv'
    log.write_text(
        'epoch,step,train_loss,val_loss,lr,seconds,chars_per_s,event\n1,401,2.6,2.0,0.002,300,3000,best\n'
    )
    runs = [
        ('_sample.py', '--length', 100, '--start', 'K', *model),
        ('_sample.py', '--length', 20, '--start', 'K', '--num-samples', 3, *model),
        ('_evaluate.py', '--text', text, *model),
        ('_visualize.py', '--find', '--text', text, *model),
        ('_visualize.py', '--saturation', tmp_path / 's.svg', '--text', text, *model),
        ('_plot.py', log, '--out', tmp_path / 'c.svg'),
        (
            '_benchmark.py',
            '--hidden',
            8,
            '--chunks',
            2,
            '--window',
            4,
            '--rounds',
            1,
            '--warmup',
            0,
            '--sample-length',
            5,
            '--no-torch',
        ),
    ]
    runs += [(name, '--help') for name in sorted({r[0] for r in runs} | {'_training.py'})]
    for (name, *args), r in zip(runs, in_parallel(lambda run: into_a_closed_pipe(*run), runs)):
        assert r.returncode == 0 and without_pin_warning(r.stderr) == '', (name, args, r.stderr)
    assert_one_line_error(into_a_closed_pipe('_sample.py', '--length', 0), '--length')  # errors: status 2
    # a training run goes on when nobody reads its progress, and saves its checkpoint
    corpus = tmp_path / 'c.txt'
    corpus.write_text(tiny_corpus(3000), encoding='utf-8')
    r = into_a_closed_pipe(
        '_training.py',
        '--corpus',
        corpus,
        '--out',
        tmp_path / 'run',
        *TINY_LOUD,
        '--epochs',
        1,
        '--sample-length',
        20,
    )
    assert r.returncode == 0 and r.stderr == '', r.stderr
    _, meta = load_params(tmp_path / 'run' / 'ShakespeareNet.npz')
    assert meta['epoch'] == 1


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_shows_done_rate_and_time_left_on_a_terminal_and_clears_the_line(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(cli.time, 'monotonic', lambda: clock[0])
    out = Terminal()
    p = cli.Progress('scoring', 1000, stream=out)
    clock[0] += 0.1
    p(10)  # too soon after the start: not drawn
    assert out.getvalue() == ''
    clock[0] += 1.9
    p(500)  # 500 chars in 2 s: 250 chars/s, 2 s left
    line = out.getvalue()
    assert line.startswith('\r') and '500 of 1,000 chars (50%)' in line and '250 chars/s' in line, line
    assert '2 s left' in line, line
    p.close()
    assert out.getvalue().endswith('\r') and out.getvalue()[len(line) :].strip() == ''
    clock[0] += 5
    p(900)  # closed: nothing more
    assert out.getvalue().count('\r') == 3


def test_progress_writes_nothing_to_a_pipe_or_a_file(tmp_path, monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(cli.time, 'monotonic', lambda: clock[0])
    with open(tmp_path / 'f', 'w') as f:
        with cli.Progress('x', 10, stream=f) as p:
            for k in range(10):
                clock[0] += 10
                p(k)
    assert (tmp_path / 'f').read_text() == ''


def read_pty(fd):
    chunks = []
    while True:
        ready, _, _ = select.select([fd], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b''.join(chunks).decode('utf-8', 'replace')


SCORE = (
    'import sys, _evaluate; from util import cli; cli.Progress.interval = 0; sys.argv[0] = "_evaluate.py"; '
    'cli.run(lambda: _evaluate.main(sys.argv[1:]))'
)


@pytest.mark.parametrize('extra', [[], ['--dynamic'], ['--ngram', '3', '--compare']])
def test_evaluate_shows_progress_on_a_terminal_only(model_dir, extra):
    text = (
        ['--text', model_dir / 'text.txt']
        if not extra or extra[0] == '--dynamic'
        else ['--corpus', model_dir / 'text.txt']
    )
    args = [sys.executable, '-c', SCORE, *map(str, text + extra + model_args(model_dir))]
    master, slave = pty.openpty()  # stderr a terminal, stdout a pipe
    p = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    shown = read_pty(master)
    out = p.stdout.read()
    assert p.wait(60) == 0
    os.close(master)
    assert 'loss' in out and '\r' not in out  # the result alone on stdout
    assert ' of ' in shown and '/s' in shown and 'left' in shown, shown
    assert shown.rstrip(' ').endswith('\r')  # the line is cleared at the end
    piped = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert piped.returncode == 0 and piped.stderr == ''
    timeless = lambda text: re.sub(r'predicted in \d+ s', 'predicted in N s', text)  # noqa: E731
    assert timeless(piped.stdout) == timeless(out)  # the same figures; only the seconds taken may differ


def test_evaluate_blocks_prints_the_mean_its_error_and_what_it_measures(model_dir):
    args = ['--text', model_dir / 'text.txt', '--blocks', 20, '--num-blocks', 50, *model_args(model_dir)]
    r = run_here('_evaluate.py', *args)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert (
        '50 random blocks of 20 characters (seed 0)' in lines[0] and '1,000 characters predicted' in lines[0]
    )
    assert 'standard error' in lines[1] and 'every position of every block' in lines[2]
    ids, _ = data.read_corpus(model_dir / 'text.txt', data.load_lookup(model_dir / 'l.json'))
    params, _ = load_params(model_dir / 'w.npz')
    starts = np.random.default_rng(0).integers(0, len(ids) - 20, size=50)
    expected = lstm.block_losses(params, ids, 20, starts).mean()
    assert f'loss {expected:.4f} nats/char' in lines[1]
    assert run_here('_evaluate.py', *args).stdout.splitlines()[1] == lines[1]  # a fixed seed
    other = run_here('_evaluate.py', *args, '--seed', 1)
    assert other.returncode == 0 and other.stdout.splitlines()[1] != lines[1]


@pytest.mark.parametrize(
    'args, words',
    [
        (['--blocks', 10, '--dynamic'], ['--blocks', '--dynamic']),
        (['--num-blocks', 10], ['--num-blocks', '--blocks T']),
        (['--blocks', 5000], ['--blocks 5000', 'needs 5,001']),
    ],
)
def test_evaluate_blocks_refuses_what_does_not_fit(model_dir, args, words):
    r = run_here('_evaluate.py', '--text', model_dir / 'text.txt', *args, *model_args(model_dir))
    assert_one_line_error(r, *words)


def test_the_memory_estimate_counts_the_weights_of_every_layer():
    params = lstm.init_params(65, 32, 3)
    weights = sum(a.size for a in params.values())
    assert cli.model_bytes(65, 32, 3, 0, 0) == 2 * 4 * weights  # the weights and their prepared copy
    assert cli.model_bytes(65, 32, 3, 0, 0, itemsize=8, training=True) == 4 * 8 * weights
    assert cli.size(299 * 2**30) == '299 GiB' and cli.size(512) == '512 bytes'


def test_a_temperature_too_small_to_divide_by_takes_the_most_likely_character():
    r = run_here('_sample.py', '--temperature', '1e-320', '--length', 40, '--seed', 1)
    greedy = run_here('_sample.py', '--temperature', 0, '--length', 40, '--seed', 2)
    assert r.returncode == 0 and r.stderr == '' and r.stdout == greedy.stdout


def test_the_benchmark_honours_openblas_num_threads_as_training_does(monkeypatch):
    import _benchmark

    monkeypatch.setenv('OPENBLAS_NUM_THREADS', '1')
    assert _benchmark.parse_args([]).threads == 1 == _training.default_threads()
    monkeypatch.delenv('OPENBLAS_NUM_THREADS')
    assert _benchmark.parse_args([]).threads == (os.cpu_count() or 1)


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
