"""Streams and devices: an output written to stdout holds the output alone (the status lines go to stderr);
devices, pipes and links into /proc are written in place; a full device, a closed or full stdout, an
unwritable stderr and a console that is not UTF-8 give one line (or the work is kept), never a traceback."""

import os
import stat
import subprocess
import sys

import numpy as np
import pytest

import data
import lstm
from util import files
from util.weights import save_params

from helpers import (
    SHIPPED_CURVE,
    SHIPPED_LOG,
    read_bytes,
    two_epoch_log,
    ROOT,
    TINY_LOUD,
    assert_one_line_error,
    model_args,
    run_here,
    script,
    tiny_corpus,
)


def into_a_file(tmp_path, name, *args):
    """Run a script with its stdout a file (`> out`), in tmp_path: (result, what the file holds)."""
    r = run_here(name, *args, cwd=tmp_path, stdout=tmp_path / 'stdout')
    return r, read_bytes(tmp_path / 'stdout')


def test_plot_to_stdout_writes_the_picture_alone_and_says_so_on_stderr(tmp_path):
    for out in ('/dev/stdout', tmp_path / 'stdout'):
        r, svg = into_a_file(tmp_path, '_plot.py', SHIPPED_LOG, '--out', out)
        assert r.returncode == 0, r.stderr
        assert svg == read_bytes(SHIPPED_CURVE), svg[-200:]
        assert r.stderr.startswith('wrote ')


def test_visualize_to_stdout_writes_the_page_or_figure_alone(small_model, tmp_path):
    weights, lookup, chars = small_model
    (tmp_path / 'long.txt').write_text(''.join(chars) * 40, encoding='utf-8')  # over --html-chars: a note
    model = ['--weights', weights, '--lookup', lookup, '--text', tmp_path / 'long.txt']
    for out in ('/dev/stdout', '-', tmp_path / 'stdout'):
        r, page = into_a_file(tmp_path, '_visualize.py', *model, '--html', out, '--html-chars', 100)
        assert r.returncode == 0, r.stderr
        assert page.startswith(b'<!DOCTYPE html>') and page.endswith(b'</html>\n'), page[-200:]
        assert 'the page shows the first 100' in r.stderr and 'wrote ' in r.stderr
        assert not (tmp_path / '-').exists()  # - is stdout, as for _plot.py --out
        r, svg = into_a_file(tmp_path, '_visualize.py', *model, '--saturation', out)
        assert r.returncode == 0, r.stderr
        assert svg.startswith(b'<svg') and svg.endswith(b'</svg>\n'), svg[-200:]
        assert 'gate saturation over' in r.stderr
        r, svg = into_a_file(tmp_path, '_visualize.py', *model, '--find', '--periodic-svg', out)
        assert r.returncode == 0, r.stderr
        assert svg.startswith(b'<svg') and svg.endswith(b'</svg>\n'), svg[-200:]
        assert 'neurons that follow features' in r.stderr
    r = run_here('_visualize.py', *model, '--html', tmp_path / 'page.html')  # to a file: the lines on stdout
    assert r.returncode == 0 and 'wrote' in r.stdout, r.stderr
    assert '#layer=2&state=c&neuron=15 to its address' in r.stdout  # a neuron the model has (2 x 16)


def test_visualize_refuses_two_outputs_that_are_one_file(small_model, tmp_path):
    weights, lookup, _ = small_model
    model = ['--weights', weights, '--lookup', lookup]
    os.symlink(tmp_path / 'a.svg', tmp_path / 'b.svg')
    for first, second in (('a.svg', 'a.svg'), ('a.svg', './a.svg'), ('a.svg', 'b.svg')):
        r = run_here(
            '_visualize.py',
            *model,
            '--find',
            '--saturation',
            tmp_path / first,
            '--periodic-svg',
            tmp_path / second,
        )
        assert_one_line_error(r, '--saturation and --periodic-svg', 'give two names')
    assert_one_line_error(
        run_here('_visualize.py', *model, '--html', '/dev/stdout', '--saturation', '/dev/fd/1'), 'both name'
    )
    assert sorted(os.listdir(tmp_path)) == ['b.svg']


def test_convert_to_stdout_writes_the_weights_alone(small_model, tmp_path):
    weights, lookup, _ = small_model
    os.symlink('/dev/stdout', tmp_path / 'out.json')
    r, written = into_a_file(tmp_path, '_convert.py', weights, 'out.json')
    assert r.returncode == 0 and r.stderr.startswith('wrote out.json'), r.stderr
    assert run_here('_convert.py', weights, tmp_path / 'W.json').returncode == 0
    assert written == read_bytes(tmp_path / 'W.json')


def test_devices_pipes_and_links_into_proc_are_written_in_place_never_replaced(tmp_path):
    assert files.writes_in_place('/dev/null') and files.writes_in_place('/dev/full')
    os.symlink('/proc/self/fd/1', tmp_path / 'stdout')  # as /dev/stdout is
    assert files.writes_in_place(tmp_path / 'stdout')
    assert not files.writes_in_place(tmp_path / 'new.svg') and not files.writes_in_place(tmp_path)
    fifo = tmp_path / 'fifo'
    os.mkfifo(fifo)
    assert files.writes_in_place(fifo)
    read = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)  # a reader, so that opening it to write does not wait
    try:
        files.write_text(fifo, 'through the pipe')
        assert os.read(read, 100) == b'through the pipe'
    finally:
        os.close(read)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)  # still the pipe: a rename would have made it a file
    assert sorted(os.listdir(tmp_path)) == ['fifo', 'stdout']  # and no temporary file left beside it


def test_a_figure_to_a_full_device_is_one_line_and_the_device_stays(tmp_path):
    assert files.writes_in_place('/dev/full')  # else the script below (as root) would replace /dev/full
    r = run_here('_plot.py', two_epoch_log(tmp_path), '--out', '/dev/full')
    assert_one_line_error(r, 'cannot write /dev/full', 'No space left')
    assert stat.S_ISCHR(os.stat('/dev/full').st_mode)
    r = run_here('_plot.py', two_epoch_log(tmp_path), '--out', '/dev/null')
    assert r.returncode == 0, r.stderr
    assert stat.S_ISCHR(os.stat('/dev/null').st_mode)


def with_streams(name, *args, redirect):
    """Run a script through the shell with a redirection of its streams, e.g. '>/dev/full' or '>&-'."""
    return subprocess.run(
        [
            'sh',
            '-c',
            f'exec "$@" {redirect}',
            'sh',
            sys.executable,
            os.path.join(ROOT, name),
            *map(str, args),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )


@pytest.mark.parametrize('redirect, words', [('>/dev/full', 'No space left'), ('>&-', 'stdout is closed')])
def test_output_that_cannot_be_written_is_one_line_and_status_2(model_dir, redirect, words):
    for name, args in (
        ('_evaluate.py', ['--text', model_dir / 'text.txt']),
        ('_sample.py', ['--start', 't']),
    ):
        r = with_streams(name, *args, *model_args(model_dir), redirect=redirect)
        assert_one_line_error(r, 'cannot write the output', words)


def test_an_unwritable_stderr_keeps_the_exit_status():
    r = with_streams('_sample.py', '--length', '0', redirect='2>/dev/full')
    assert r.returncode == 2
    r = with_streams('_sample.py', '--length', '5', '--seed', '1', redirect='2>/dev/full')
    assert r.returncode == 0 and len(r.stdout) == 7


def test_training_with_an_unwritable_stdout_trains_and_keeps_its_checkpoint(tmp_path):
    (tmp_path / 'c.txt').write_text(tiny_corpus(3000), encoding='utf-8')
    for k, redirect in enumerate(['>/dev/full', '>&-']):
        out = tmp_path / f'run{k}'
        r = with_streams(
            '_training.py',
            '--corpus',
            tmp_path / 'c.txt',
            '--out',
            out,
            *TINY_LOUD,
            '--max-steps',
            '2',
            redirect=redirect,
        )
        assert r.returncode == 0, r.stderr
        assert len(r.stderr.strip().splitlines()) == 1 and 'going on without printing' in r.stderr, r.stderr
        assert (out / 'ShakespeareOptimizer.npz').exists()


def test_a_console_that_is_not_utf8_shows_escapes_not_a_traceback(tmp_path):
    chars = data.build_lookup('caf\u00e9 \u2014 ok')
    params = lstm.init_params(len(chars), 8, 1, rng=np.random.default_rng(0))
    save_params(tmp_path / 'w.npz', params)
    data.save_lookup(tmp_path / 'l.json', chars)
    r = script(  # the console's encoding: read as Python starts
        '_sample.py',
        '--start',
        'caf\u00e9 \u2014',
        '--length',
        20,
        '--seed',
        1,
        '--weights',
        tmp_path / 'w.npz',
        '--lookup',
        tmp_path / 'l.json',
        env={'PYTHONIOENCODING': 'ascii'},
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith('caf\\xe9 \\u2014') and 'Traceback' not in r.stderr


def test_stdout_opened_to_append_is_appended_to_and_never_the_input(tmp_path):
    """`--out - >> file` appends after what the file holds (it was wiped: stdout reopened, truncated); where
    that file is the command's own input, the command is refused and the file kept."""
    log = tmp_path / 'log.csv'
    log.write_bytes(read_bytes(SHIPPED_LOG))
    kept = tmp_path / 'kept.txt'
    kept.write_text('line 1\nline 2\n')
    for out, append_to in (('-', kept), ('/dev/stdout', log)):
        with open(append_to, 'ab') as f:
            r = subprocess.run(
                [sys.executable, os.path.join(ROOT, '_plot.py'), str(log), '--out', out],
                stdout=f,
                stderr=subprocess.PIPE,
                text=True,
                cwd=ROOT,
                timeout=120,
            )
        if append_to == kept:
            assert r.returncode == 0, r.stderr
            assert kept.read_text().startswith('line 1\nline 2\n<svg')
        else:
            assert r.returncode == 2 and 'also read by this command' in r.stderr, r.stderr
            assert log.read_bytes() == read_bytes(SHIPPED_LOG)


def test_an_output_reached_through_stdin_is_checked_as_the_file_or_pipe_it_is(tmp_path):
    """/dev/stdin (or /dev/fd/N) as an output leads to what the shell opened: a file is checked as any file
    (a text is not replaced by a picture), the pipe this command reads from is refused (writing into it would
    wait forever), and a log read from a pipe puts its picture in the current folder."""
    notes = tmp_path / 'notes.txt'
    notes.write_text('mine\n')
    plot = [sys.executable, os.path.join(ROOT, '_plot.py'), SHIPPED_LOG, '--out', '/dev/stdin']
    with open(notes) as f:
        r = subprocess.run(plot, stdin=f, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and 'is not an SVG figure' in r.stderr, r.stderr
    assert notes.read_text() == 'mine\n'
    page = [
        sys.executable,
        os.path.join(ROOT, '_visualize.py'),
        '--text',
        '/dev/stdin',
        '--html',
        '/dev/stdin',
    ]
    r = subprocess.run(page, input='to be or not to be\n', capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and 'is the pipe this command reads as its input' in r.stderr, r.stderr
    # the log a file and stdin a pipe: that pipe is no output either
    r = subprocess.run(plot, input='x' * 10, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and 'is the pipe this command reads as its input' in r.stderr, r.stderr
    with open(SHIPPED_LOG) as f:
        r = subprocess.run(
            [sys.executable, os.path.join(ROOT, '_plot.py'), '/dev/stdin'], stdin=f, cwd=tmp_path, timeout=60
        )
    assert r.returncode == 0 and (tmp_path / 'learning_curve.svg').read_bytes().startswith(b'<svg')
    shipped = read_bytes(SHIPPED_CURVE)
    with open(SHIPPED_LOG) as f:  # from images/: its own learning_curve.svg is the repository's
        r = subprocess.run(
            [sys.executable, os.path.join(ROOT, '_plot.py'), '/dev/stdin'],
            stdin=f,
            cwd=os.path.dirname(SHIPPED_CURVE),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert r.returncode == 2 and 'is read from a pipe' in r.stderr and '--out' in r.stderr, r.stderr
    assert read_bytes(SHIPPED_CURVE) == shipped
