"""Where and how the scripts write: a default output beside the run, never over the repository's own files nor
over an input of the same command or a file of another kind; devices, pipes and links into /proc written in place;
a full device, a closed or full stdout, an unwritable stderr, a console that is not UTF-8, a path that cannot be
made: one line (or the work kept); titles and help that speak of the model and its corpus; status lines never
inside an output written to stdout."""

import os
import shutil
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
    ROOT,
    SAVES,
    TINY,
    TINY_LOUD,
    assert_one_line_error,
    model_args,
    run_here,
    script,
    tiny_corpus,
)


LOG = os.path.join(SAVES, 'training_log.csv')


SHIPPED_CURVE = os.path.join(ROOT, 'images', 'learning_curve.svg')


def read(path):
    with open(path, 'rb') as f:
        return f.read()


def run_folder(tmp_path, settings=None, meta=None):
    """A run folder holding the shipped log and, unless settings and meta are None, a checkpoint whose metadata
    holds those settings (the arrays are not needed for a title)."""
    run = tmp_path / 'runs' / 'mytext'
    run.mkdir(parents=True)
    shutil.copy(LOG, run / 'training_log.csv')
    if settings is not None or meta is not None:
        files.save_npz(
            run / 'ShakespeareOptimizer.npz', {}, dict(settings=settings) if meta is None else meta
        )
    return run


def title(svg_path):
    svg = svg_path.read_text(encoding='utf-8')
    return svg.split('font-size="14">', 1)[1].split('</text>', 1)[0]


def test_plot_without_out_writes_beside_the_runs_log_titled_by_its_corpus_and_size(tmp_path):
    run = run_folder(tmp_path, dict(layers=3, hidden=256, corpus='/somewhere/mytext.txt'))
    before = read(SHIPPED_CURVE)
    r = run_here('_plot.py', run / 'training_log.csv', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (run / 'learning_curve.svg').exists() and not (tmp_path / 'images').exists()
    assert title(run / 'learning_curve.svg') == '3x256 LSTM on mytext.txt'
    assert 'Shakespeare' not in (run / 'learning_curve.svg').read_text()
    r = run_here('_plot.py', 'runs/mytext/training_log.csv', cwd=tmp_path)  # a relative path: the same
    assert r.returncode == 0 and r.stdout.startswith('wrote runs/mytext/learning_curve.svg'), (
        r.stdout + r.stderr
    )
    assert read(SHIPPED_CURVE) == before


@pytest.mark.parametrize(
    'meta',
    [
        None,
        dict(settings='x'),
        dict(settings=dict(layers=2, hidden='512')),
        dict(settings=dict(layers=2, hidden=512, corpus=7)),
        dict(other=1),
    ],
)
def test_plot_of_a_log_without_a_readable_checkpoint_has_a_neutral_title(tmp_path, meta):
    run = run_folder(tmp_path, meta=meta) if meta is not None else run_folder(tmp_path)
    r = run_here('_plot.py', run / 'training_log.csv', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert title(run / 'learning_curve.svg') == 'Training and validation loss'


def test_plot_of_a_damaged_checkpoint_or_a_fifo_beside_the_log_has_a_neutral_title(tmp_path):
    run = run_folder(tmp_path)
    (run / 'ShakespeareOptimizer.npz').write_bytes(b'PK\x03\x04 not a zip')
    assert run_here('_plot.py', run / 'training_log.csv', '--out', tmp_path / 'a.svg').returncode == 0
    assert title(tmp_path / 'a.svg') == 'Training and validation loss'
    os.remove(run / 'ShakespeareOptimizer.npz')
    os.mkfifo(run / 'ShakespeareOptimizer.npz')  # never opened: it would wait for a writer for ever
    assert run_here('_plot.py', run / 'training_log.csv', '--out', tmp_path / 'b.svg').returncode == 0
    assert title(tmp_path / 'b.svg') == 'Training and validation loss'


def test_plot_of_the_shipped_log_goes_to_the_current_folder_as_the_shipped_picture(tmp_path):
    before = read(SHIPPED_CURVE)
    r = run_here('_plot.py', LOG, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert read(tmp_path / 'learning_curve.svg') == before  # titled from saves/'s checkpoint
    assert os.listdir(tmp_path) == ['learning_curve.svg']
    assert_one_line_error(run_here('_plot.py', LOG, cwd=os.path.join(ROOT, 'images')), '--out')
    assert read(SHIPPED_CURVE) == before


def test_the_commands_of_the_readme_and_results_draw_the_shipped_pictures_again(tmp_path):
    for name, args in (
        ('learning_curve.svg', [LOG]),
        (
            'run-L-vs-J.svg',
            [
                'logs/run-L-J-variational.csv',
                '--compare',
                'logs/run-J-dropout0.4-weightdrop0.15-weightdecay0.05.csv',
                '--ymax',
                '1.7',
                '--title',
                'Run L (variational dropout) beside run J',
            ],
        ),
    ):
        r = run_here('_plot.py', *args, '--out', tmp_path / name)
        assert r.returncode == 0, r.stderr
        assert read(tmp_path / name) == read(os.path.join(ROOT, 'images', name)), name


def into_a_file(tmp_path, name, *args):
    """Run a script with its stdout a file (`> out`), in tmp_path: (result, what the file holds)."""
    r = run_here(name, *args, cwd=tmp_path, stdout=tmp_path / 'stdout')
    return r, read(tmp_path / 'stdout')


def test_plot_to_stdout_writes_the_picture_alone_and_says_so_on_stderr(tmp_path):
    for out in ('/dev/stdout', tmp_path / 'stdout'):
        r, svg = into_a_file(tmp_path, '_plot.py', LOG, '--out', out)
        assert r.returncode == 0, r.stderr
        assert svg == read(SHIPPED_CURVE), svg[-200:]
        assert r.stderr.startswith('wrote ')


def test_visualize_to_stdout_writes_the_page_or_figure_alone(small_model, tmp_path):
    weights, lookup, chars = small_model
    (tmp_path / 'long.txt').write_text(''.join(chars) * 40, encoding='utf-8')  # over --html-chars: a note
    model = ['--weights', weights, '--lookup', lookup, '--text', tmp_path / 'long.txt', '--html-chars', 100]
    for out in ('/dev/stdout', tmp_path / 'stdout'):
        r, page = into_a_file(tmp_path, '_visualize.py', *model, '--html', out)
        assert r.returncode == 0, r.stderr
        assert page.startswith(b'<!DOCTYPE html>') and page.endswith(b'</html>\n'), page[-200:]
        assert 'the page shows the first 100' in r.stderr and 'wrote ' in r.stderr
        r, svg = into_a_file(tmp_path, '_visualize.py', *model, '--saturation', out)
        assert r.returncode == 0, r.stderr
        assert svg.startswith(b'<svg') and svg.endswith(b'</svg>\n'), svg[-200:]
        assert 'gate saturation over' in r.stderr
        r, svg = into_a_file(tmp_path, '_visualize.py', *model, '--find', '--periodic-svg', out)
        assert r.returncode == 0, r.stderr
        assert svg.startswith(b'<svg') and svg.endswith(b'</svg>\n'), svg[-200:]
        assert 'neurons that follow features' in r.stderr
    r = run_here('_visualize.py', *model, '--html', tmp_path / 'page.html')  # to a file: the lines on stdout
    assert r.returncode == 0 and 'wrote' in r.stdout and '#layer=2&state=c&neuron=240' in r.stdout, r.stderr


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


def test_saturation_without_a_name_says_where_and_never_lands_among_the_repositorys_files(
    small_model, tmp_path
):
    weights, lookup, chars = small_model
    assert 'saturation.svg in the current folder' in ' '.join(
        run_here('_visualize.py', '--help').stdout.split()
    )
    (tmp_path / 'text.txt').write_text(''.join(chars) * 3, encoding='utf-8')
    model = ['--weights', weights, '--lookup', lookup, '--text', tmp_path / 'text.txt']
    before = read(os.path.join(ROOT, 'images', 'saturation.svg'))
    r = run_here('_visualize.py', *model, '--saturation', cwd=os.path.join(ROOT, 'images'))
    assert_one_line_error(r, '--saturation', 'file name')
    assert read(os.path.join(ROOT, 'images', 'saturation.svg')) == before
    (tmp_path / 'here').mkdir()
    r = run_here('_visualize.py', *model, '--saturation', cwd=tmp_path / 'here')
    assert r.returncode == 0 and os.listdir(tmp_path / 'here') == ['saturation.svg'], r.stderr


def test_the_viewer_without_a_display_suggests_the_page(small_model, tmp_path):
    weights, lookup, chars = small_model
    (tmp_path / 'text.txt').write_text(''.join(chars) * 3, encoding='utf-8')
    r = run_here(
        '_visualize.py',
        '--weights',
        weights,
        '--lookup',
        lookup,
        '--text',
        tmp_path / 'text.txt',
        env=dict(DISPLAY='', WAYLAND_DISPLAY=''),
    )
    assert_one_line_error(r, '--html')


def test_convert_never_replaces_its_own_input_or_lookup_table(small_model, tmp_path):
    weights, lookup, _ = small_model
    shutil.copy(weights, tmp_path / 'W.npz')
    shutil.copy(lookup, tmp_path / 'L.json')
    assert run_here('_convert.py', 'W.npz', 'W.json', cwd=tmp_path).returncode == 0
    os.link(tmp_path / 'W.json', tmp_path / 'same.npz')  # another name of the input
    kept = {name: read(tmp_path / name) for name in ('W.npz', 'L.json', 'W.json')}
    for args in (
        ['W.npz', 'L.json', '--lookup', 'L.json', '--force'],
        ['W.npz', 'L.json', '--lookup', 'L.json'],
        ['W.json', 'same.npz', '--force'],
    ):
        assert_one_line_error(run_here('_convert.py', *args, cwd=tmp_path), 'is also read by this command')
    assert {name: read(tmp_path / name) for name in kept} == kept


def test_convert_to_stdout_writes_the_weights_alone(small_model, tmp_path):
    weights, lookup, _ = small_model
    os.symlink('/dev/stdout', tmp_path / 'out.json')
    r, written = into_a_file(tmp_path, '_convert.py', weights, 'out.json')
    assert r.returncode == 0 and r.stderr.startswith('wrote out.json'), r.stderr
    assert run_here('_convert.py', weights, tmp_path / 'W.json').returncode == 0
    assert written == read(tmp_path / 'W.json')


def test_sample_speaks_of_the_model_and_its_corpus_and_starts_any_model(small_model):
    weights, lookup, chars = small_model
    assert 'F' not in chars
    help_text = ' '.join(run_here('_sample.py', '--help').stdout.split())
    assert 'Shakespeare-like' not in help_text and 'trained character-level LSTM' in help_text
    r = run_here('_sample.py', '--weights', weights, '--lookup', lookup, '--length', 20, '--seed', 1)
    first = next(ch for ch in chars if ch.isalpha())
    assert r.returncode == 0 and r.stdout.startswith(first), r.stderr
    assert 21 <= len(r.stdout) <= 22  # the priming letter, 20 characters (and a newline)


def plot_log(tmp_path):
    """A two-epoch training log to plot."""
    log = tmp_path / 'training_log.csv'
    log.write_text(
        'epoch,step,train_loss,val_loss,lr,seconds,chars_per_s,event\n'
        '1,67,3.6497,3.3744,0.001,0,36642,best\n2,134,3.3392,3.2371,0.001,0,39364,best\n'
    )
    return log


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
    r = run_here('_plot.py', plot_log(tmp_path), '--out', '/dev/full')
    assert_one_line_error(r, 'cannot write /dev/full', 'No space left')
    assert stat.S_ISCHR(os.stat('/dev/full').st_mode)
    r = run_here('_plot.py', plot_log(tmp_path), '--out', '/dev/null')
    assert r.returncode == 0, r.stderr
    assert stat.S_ISCHR(os.stat('/dev/null').st_mode)


def test_a_figure_never_replaces_its_log_or_a_file_of_another_kind(tmp_path):
    log = plot_log(tmp_path)
    before = log.read_bytes()
    assert_one_line_error(run_here('_plot.py', log, '--out', log), 'also read by this command')
    (tmp_path / 'link.svg').symlink_to(log)  # the same file under another name
    assert_one_line_error(
        run_here('_plot.py', log, '--out', tmp_path / 'link.svg'), 'also read by this command'
    )
    model = tmp_path / 'ShakespeareNet.npz'
    model.write_bytes(b'PK\x03\x04 a model')
    assert_one_line_error(run_here('_plot.py', log, '--out', model), 'is not an SVG figure')
    assert log.read_bytes() == before and model.read_bytes() == b'PK\x03\x04 a model'
    for _ in range(2):  # a new figure, then the same figure replaced
        r = run_here('_plot.py', log, '--out', tmp_path / 'curve.svg')
        assert r.returncode == 0, r.stderr
    assert (tmp_path / 'curve.svg').read_bytes().startswith(b'<svg')
    (tmp_path / 'empty.svg').write_bytes(b'')  # an empty file (touch) holds nothing to lose: replaced
    r = run_here('_plot.py', log, '--out', tmp_path / 'empty.svg')
    assert r.returncode == 0, r.stderr
    assert (tmp_path / 'empty.svg').read_bytes().startswith(b'<svg')


def test_a_page_or_figure_never_replaces_the_text_the_model_or_the_template(small_model, tmp_path):
    weights, lookup, chars = small_model
    text = tmp_path / 'text.txt'
    text.write_text(''.join(chars) * 3, encoding='utf-8')
    saved = {p: p.read_bytes() for p in (text, weights, lookup)}
    args = ['--weights', weights, '--lookup', lookup, '--text', text]
    template = os.path.join(ROOT, 'explorer', 'explorer.html')
    with open(template, 'rb') as f:
        saved[template] = f.read()
    try:
        for option, path in (
            ('--html', text),
            ('--html', weights),
            ('--saturation', lookup),
            ('--html', template),
        ):
            assert_one_line_error(run_here('_visualize.py', *args, option, path), 'also read by this command')
    finally:  # the repo's own file, whatever happened
        with open(template, 'rb') as f:
            replaced = f.read() != saved[template]
        if replaced:
            with open(template, 'wb') as f:
                f.write(saved[template])
    assert not replaced
    page = tmp_path / 'page.html'
    assert run_here('_visualize.py', *args, '--html', page).returncode == 0
    assert_one_line_error(run_here('_visualize.py', *args, '--saturation', page), 'is not an SVG figure')
    assert page.read_bytes().startswith(b'<!DOCTYPE html>')
    assert all(open(p, 'rb').read() == b for p, b in saved.items())


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


def test_unwritable_outputs_are_refused_before_any_work(made, tmp_path):
    (tmp_path / 'a_file').write_text('x')
    corpus = made / 'corpus.txt'
    for out, words in (
        (tmp_path / 'a_file' / 'run', 'part of its path is a file'),
        ('', '--out'),
        (tmp_path / 'a_file', 'a file of that name is in the way'),
    ):
        r = run_here('_training.py', '--corpus', corpus, '--out', out, *TINY)
        assert_one_line_error(r, *words)
    lookup, weights = made / 'run' / 'ShakespeareLookup.json', made / 'run' / 'ShakespeareNet.npz'
    r = run_here(
        '_visualize.py',
        '--weights',
        weights,
        '--lookup',
        lookup,
        '--text',
        corpus,
        '--html',
        tmp_path / 'a_file' / 'page.html',
    )
    assert_one_line_error(r, 'a_file cannot be made', 'a file')
    r = run_here('_visualize.py', '--weights', weights, '--lookup', lookup, '--text', corpus, '--html', '')
    assert_one_line_error(r, 'empty')
    r = run_here('_plot.py', made / 'run' / 'training_log.csv', '--out', tmp_path / 'a_file' / 'x.svg')
    assert_one_line_error(r, 'a_file cannot be made', 'a file')


@pytest.mark.skipif(os.geteuid() == 0, reason='root writes into read-only folders')
def test_a_read_only_out_folder_is_refused(made, tmp_path):
    ro = tmp_path / 'ro'
    ro.mkdir()
    ro.chmod(0o500)
    r = run_here('_training.py', '--corpus', made / 'corpus.txt', '--out', ro / 'run', *TINY)
    assert_one_line_error(r, 'cannot be')
