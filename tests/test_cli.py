"""What every script shares (util/cli.py), run as a user runs it: it stops quietly when its reader goes away,
draws its progress line on a terminal only, estimates the memory of a model before any work, and takes an
option by its whole name only."""

import io
import os
import pty
import re
import subprocess
import sys

import pytest

import lstm
from util import memory, progress
from util.weights import load_params

from helpers import (
    ROOT,
    TINY_BENCHMARK,
    Terminal,
    TINY_LOUD,
    assert_one_line_error,
    in_parallel,
    into_a_closed_pipe,
    read_pty,
    run_here,
    tiny_corpus,
    train,
)


def without_pin_warning(stderr):
    """stderr less the lines _benchmark.py prints where OPENBLAS_CORETYPE is set (some machines set it) and
    where its rounds disagree (on a busy machine, or with the few characters of a quick test)."""
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
        ('_visualize.py', '--html', '/dev/stdout', '--text', text, *model),  # the page itself into the pipe
        (
            '_benchmark.py',
            *TINY_BENCHMARK,
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


def test_progress_shows_done_rate_and_time_left_on_a_terminal_and_clears_the_line(monkeypatch):
    clock = [100.0]
    monkeypatch.setattr(progress.time, 'monotonic', lambda: clock[0])
    out = Terminal()
    p = progress.Progress('scoring', 1000, stream=out)
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
    monkeypatch.setattr(progress.time, 'monotonic', lambda: clock[0])
    with open(tmp_path / 'f', 'w') as f:
        with progress.Progress('x', 10, stream=f) as p:
            for k in range(10):
                clock[0] += 10
                p(k)
    assert (tmp_path / 'f').read_text() == ''


def test_the_memory_estimate_counts_the_weights_of_every_layer():
    params = lstm.init_params(65, 32, 3)
    weights = sum(a.size for a in params.values())
    assert memory.model_bytes(65, 32, 3, 0, 0) == 2 * 4 * weights  # the weights and their prepared copy
    assert memory.model_bytes(65, 32, 3, 0, 0, itemsize=8, training=True) == 4 * 8 * weights
    assert memory.in_words(299 * 2**30) == '299 GiB' and memory.in_words(512) == '512 bytes'


@pytest.mark.parametrize(
    'name,args,whole',
    [
        ('_training.py', ['--lr-d', '0.9'], 'whole name: --lr-decay'),
        ('_sample.py', ['--len=10'], 'whole name: --length'),
        ('_evaluate.py', ['--dynamic-l', '0.1'], 'whole name: --dynamic-lr'),
        ('_visualize.py', ['--s'], 'whole name: --saturation or --state'),
        ('_sample.py', ['--bogus', '3'], ''),
    ],
)
def test_an_option_is_its_whole_name(name, args, whole):
    """No abbreviations: an option added later would make them ambiguous, or change what they mean; the line
    names the option (or options) meant."""
    r = run_here(name, *args)
    assert_one_line_error(r, f'unrecognized arguments: {args[0]}', whole, '--help')
    assert whole or 'whole name' not in r.stderr


def test_training_in_a_terminal_draws_its_progress_line(tmp_path, corpus):
    """stdout a terminal, as in the README's first training: the progress line is drawn and cleared."""
    master, slave = pty.openpty()
    args = [sys.executable, '_training.py', '--corpus', corpus, '--out', tmp_path / 'run', *TINY_LOUD]
    p = subprocess.Popen(
        [*map(str, args), '--max-steps', '3'], cwd=ROOT, stdout=slave, stderr=subprocess.PIPE
    )
    os.close(slave)
    shown = read_pty(master)
    assert p.wait(60) == 0, p.stderr.read().decode()
    os.close(master)
    assert re.search(r'\rstep +\d+  epoch +[\d.]+  loss [\d.]+ +\d+ chars/s +[\d.]+ min left', shown), shown
    assert '--max-steps 3 reached' in shown


def test_no_progress_line_in_a_file_and_a_sample_primed_with_a_line_of_the_validation_text(tmp_path):
    corpus = tmp_path / 'indented.txt'
    corpus.write_text(
        ''.join(f'        line {k} of an indented text\n' for k in range(120)), encoding='utf-8'
    )
    args = list(TINY_LOUD)
    args[args.index('--sample-length') + 1] = '60'
    r = run_here('_training.py', '--corpus', corpus, '--out', tmp_path / 'run', '--epochs', 2, *args)
    assert r.returncode == 0, r.stderr
    assert '\r' not in r.stdout and '\n\n' not in r.stdout  # no progress line, no blank line left by one
    assert (
        "--- sample (temperature 0.5) after '        line 109 of an indented text\\n', from the validation "
        "text ---" in r.stdout
    )
    sample = r.stdout.split('from the validation text ---\n')[1].split('\n---')[0]
    assert all(line.startswith('| ') or line == '| ' for line in sample.split('\n'))  # a blank line shows


def test_training_notes_unseen_validation_characters_windows_line_ends_and_an_alphabet_that_is_most_of_it(
    tmp_path, capsys
):
    text = tiny_corpus(4000)
    (tmp_path / 'c.txt').write_text(text + 'Æ§' * 100, encoding='utf-8')  # only in the validation split
    assert train('--corpus', tmp_path / 'c.txt', '--out', tmp_path / 'a', '--max-steps', '0', *TINY_LOUD) == 0
    out = capsys.readouterr().out
    assert "the validation text has 2 characters that training never sees ('§', 'Æ')" in out, out
    assert 'of the parameters are the input and output weights' not in out and 'byte-order' not in out
    (tmp_path / 'w.txt').write_text('\ufeff' + text.replace('\n', '\r\n'), encoding='utf-8')  # Notepad's
    assert train('--corpus', tmp_path / 'w.txt', '--out', tmp_path / 'w', '--max-steps', '0', *TINY_LOUD) == 0
    out = capsys.readouterr().out
    assert 'note: the corpus has carriage returns (Windows line endings: dos2unix FILE' in out, out
    assert (
        'note: the corpus has a byte-order mark (save it as UTF-8 without one): the model learns U+FEFF'
        in out
    )
    (tmp_path / 'zh.txt').write_text(''.join(chr(0x4E00 + i % 400) for i in range(8000)), encoding='utf-8')
    assert (
        train('--corpus', tmp_path / 'zh.txt', '--out', tmp_path / 'b', '--max-steps', '0', *TINY_LOUD) == 0
    )
    out = capsys.readouterr().out
    assert 'of the parameters are the input and output weights of the 400 distinct characters' in out, out
    assert 'training never sees' not in out


def test_a_progress_line_fits_a_narrow_terminal(monkeypatch):
    """A line wider than the screen would wrap, and each redraw would leave a row behind: it is cut to fit."""
    import fcntl
    import struct
    import termios

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack('HHHH', 24, 30, 0, 0))  # 30 columns
    monkeypatch.setattr(progress.Progress, 'interval', 0)
    with os.fdopen(slave, 'w') as screen:
        line = progress.Progress('scoring a long text', 10**6, stream=screen)
        for done in (1, 2, 3):
            line(done * 1000)
        line.close()
        assert progress.fit('x' * 100, screen) == 'x' * 29
    shown = os.read(master, 65536).decode()
    os.close(master)
    assert shown.count('scoring') == 3 and max(len(row) for row in shown.split('\r')) <= 29, shown
    assert progress.fit('x' * 100, io.StringIO()) == 'x' * 100  # not a terminal: whole
