"""_evaluate.py: the loss of a text, dynamic evaluation, the n-gram model and the comparison by kind of
character, random blocks with their standard error, and progress on a terminal only."""

import os
import pty
import re
import subprocess
import sys

import numpy as np
import pytest

import data
import lstm
from util.weights import load_params

from helpers import (
    ROOT,
    assert_one_line_error,
    model_args,
    read_pty,
    run_here,
    tiny_corpus,
)


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
    one = float(run_here('_evaluate.py', *model[4:], '--ngram', 1).stdout.split('loss ')[1].split()[0])
    three = float(out.split('loss ')[1].split()[0])
    assert three < one  # context helps on a text of repeated words
    assert_one_line_error(run_here('_evaluate.py', *model, '--compare'), '--compare goes with --ngram')
    assert_one_line_error(run_here('_evaluate.py', *model, '--ngram', 0), '--ngram')
    r = run_here('_evaluate.py', *model, '--ngram', 3)  # the model named, and not read
    assert_one_line_error(r, '--weights and --lookup go with the LSTM', 'add --compare')


SCORE = (
    'import sys, _evaluate; from util import cli, progress; progress.Progress.interval = 0; '
    'sys.argv[0] = "_evaluate.py"; '
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
    one = run_here('_evaluate.py', *args, '--num-blocks', 1).stdout.splitlines()
    assert '1 random block of 20 characters' in one[0], one
    assert one[1].endswith('(one block: no standard error)'), one


@pytest.mark.parametrize(
    'args, words',
    [
        (['--blocks', 10, '--dynamic'], ['--blocks', '--dynamic']),
        (['--num-blocks', 10], ['--num-blocks', '--blocks T']),
        (['--blocks', 5000], ['--blocks 5000', 'needs 5,001']),
        (['--dynamic-lr', 0.2], ['--dynamic-lr goes with --dynamic']),  # ignored, they were (the default too)
        (['--dynamic-window', 7, '--dynamic-decay', 0], ['--dynamic-window and --dynamic-decay go with']),
        (['--val-fraction', 0.3], ['--val-fraction splits --corpus', 'with --text']),
    ],
)
def test_evaluate_refuses_options_that_do_not_go_together_or_fit(model_dir, args, words):
    r = run_here('_evaluate.py', '--text', model_dir / 'text.txt', *args, *model_args(model_dir))
    assert_one_line_error(r, *words)


def test_a_dynamic_rate_the_model_cannot_hold_is_refused_and_a_diverging_one_said(small_model, tmp_path):
    weights, lookup, _ = small_model
    (tmp_path / 't.txt').write_text(tiny_corpus(600), encoding='utf-8')
    args = ['--weights', weights, '--lookup', lookup, '--text', tmp_path / 't.txt', '--dynamic']
    assert load_params(weights)[0]['dense.W'].dtype == np.float32
    for lr, words in (('1e300', 'is inf in the model\'s float32'), ('1e-50', 'is 0 in the model\'s float32')):
        r = run_here('_evaluate.py', *args, '--dynamic-lr', lr)
        assert_one_line_error(r, f'--dynamic-lr {float(lr):g}', words, 'give a value in that range')
    big = np.finfo(np.float32).max / 2  # held, but the weights overflow
    r = run_here('_evaluate.py', *args, '--dynamic-lr', big)
    assert_one_line_error(r, 'dynamic evaluation diverged', 'give a smaller --dynamic-lr')


def test_the_ngram_alone_scores_a_text_of_any_alphabet_without_a_model(tmp_path):
    """--ngram alone counts the corpus's own characters: no model, no lookup table is read."""
    (tmp_path / 'mine.txt').write_text('héllo wörld 🙂\n' * 300, encoding='utf-8')
    r = run_here('_evaluate.py', '--ngram', '3', '--corpus', tmp_path / 'mine.txt')
    assert r.returncode == 0, r.stderr
    assert re.search(r'loss 0\.\d{4} nats/char', r.stdout), r.stdout  # a text this regular: near 0
    r = run_here('_evaluate.py', '--ngram', '3', '--compare', '--corpus', tmp_path / 'mine.txt')
    assert_one_line_error(r, "'é'", 'not in the lookup table')
