"""Where the scripts write and what they never write over: a default output beside the run, titled by its
corpus and size, never among the repository's own files nor over an input of the same command or a file of
another kind; a path that cannot be made refused before any work; titles and help that speak of the model and
its corpus."""

import os
import shutil
import subprocess

import pytest

from util import npz

from helpers import (
    SHIPPED_CURVE,
    SHIPPED_LOG,
    read_bytes,
    two_epoch_log,
    ROOT,
    TINY,
    assert_one_line_error,
    run_here,
)


def run_folder(tmp_path, settings=None, meta=None):
    """A run folder holding the shipped log and, unless settings and meta are None, a checkpoint whose
    metadata holds those settings (the arrays are not needed for a title)."""
    run = tmp_path / 'runs' / 'mytext'
    run.mkdir(parents=True)
    shutil.copy(SHIPPED_LOG, run / 'training_log.csv')
    if settings is not None or meta is not None:
        npz.save(run / 'ShakespeareOptimizer.npz', {}, dict(settings=settings) if meta is None else meta)
    return run


def title(svg_path):
    svg = svg_path.read_text(encoding='utf-8')
    return svg.split('font-size="14">', 1)[1].split('</text>', 1)[0]


def test_plot_without_out_writes_beside_the_runs_log_titled_by_its_corpus_and_size(tmp_path):
    run = run_folder(tmp_path, dict(layers=3, hidden=256, corpus='/somewhere/mytext.txt'))
    before = read_bytes(SHIPPED_CURVE)
    r = run_here('_plot.py', run / 'training_log.csv', cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert (run / 'learning_curve.svg').exists() and not (tmp_path / 'images').exists()
    assert title(run / 'learning_curve.svg') == '3x256 LSTM on mytext.txt'
    assert 'Shakespeare' not in (run / 'learning_curve.svg').read_text()
    r = run_here('_plot.py', 'runs/mytext/training_log.csv', cwd=tmp_path)  # a relative path: the same
    assert r.returncode == 0 and r.stdout.startswith('wrote runs/mytext/learning_curve.svg'), (
        r.stdout + r.stderr
    )
    assert read_bytes(SHIPPED_CURVE) == before


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
    before = read_bytes(SHIPPED_CURVE)
    r = run_here('_plot.py', SHIPPED_LOG, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert read_bytes(tmp_path / 'learning_curve.svg') == before  # titled from saves/'s checkpoint
    assert os.listdir(tmp_path) == ['learning_curve.svg']
    assert_one_line_error(run_here('_plot.py', SHIPPED_LOG, cwd=os.path.join(ROOT, 'images')), '--out')
    assert read_bytes(SHIPPED_CURVE) == before


def test_the_commands_of_the_readme_and_results_draw_the_shipped_pictures_again(tmp_path):
    for name, args in (
        ('learning_curve.svg', [SHIPPED_LOG]),
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
        assert read_bytes(tmp_path / name) == read_bytes(os.path.join(ROOT, 'images', name)), name


def test_saturation_without_a_name_says_where_and_never_lands_among_the_repositorys_files(
    small_model, tmp_path
):
    weights, lookup, chars = small_model
    assert 'saturation.svg in the current folder' in ' '.join(
        run_here('_visualize.py', '--help').stdout.split()
    )
    (tmp_path / 'text.txt').write_text(''.join(chars) * 3, encoding='utf-8')
    model = ['--weights', weights, '--lookup', lookup, '--text', tmp_path / 'text.txt']
    before = read_bytes(os.path.join(ROOT, 'images', 'saturation.svg'))
    r = run_here('_visualize.py', *model, '--saturation', cwd=os.path.join(ROOT, 'images'))
    assert_one_line_error(r, '--saturation', 'file name')
    assert read_bytes(os.path.join(ROOT, 'images', 'saturation.svg')) == before
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
    kept = {name: read_bytes(tmp_path / name) for name in ('W.npz', 'L.json', 'W.json')}
    for args in (
        ['W.npz', 'L.json', '--lookup', 'L.json', '--force'],
        ['W.npz', 'L.json', '--lookup', 'L.json'],
        ['W.json', 'same.npz', '--force'],
    ):
        assert_one_line_error(run_here('_convert.py', *args, cwd=tmp_path), 'is also read by this command')
    assert {name: read_bytes(tmp_path / name) for name in kept} == kept


def test_sample_speaks_of_the_model_and_its_corpus_and_starts_any_model(small_model):
    weights, lookup, chars = small_model
    assert 'F' not in chars
    help_text = ' '.join(run_here('_sample.py', '--help').stdout.split())
    assert 'Shakespeare-like' not in help_text and 'trained character-level LSTM' in help_text
    r = run_here('_sample.py', '--weights', weights, '--lookup', lookup, '--length', 20, '--seed', 1)
    first = next(ch for ch in chars if ch.isalpha())
    assert r.returncode == 0 and r.stdout.startswith(first), r.stderr
    assert 21 <= len(r.stdout) <= 22  # the priming letter, 20 characters (and a newline)


def test_a_figure_never_replaces_its_log_or_a_file_of_another_kind(tmp_path):
    log = two_epoch_log(tmp_path)
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


def test_a_figure_of_another_tool_is_a_figure_and_a_file_of_another_kind_is_not(tmp_path):
    """An SVG may start with an XML declaration, comments and a doctype (Inkscape, matplotlib, Illustrator's
    with its internal subset); a file that only looks like one at its start is another kind of file."""
    log = two_epoch_log(tmp_path)
    inkscape = b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<!-- Created with Inkscape -->\n'
    illustrator = b'<?xml version="1.0"?>\n<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "svg11.dtd" [\n'
    illustrator += b'  <!ENTITY ns_extend "http://ns.adobe.com/Extensibility/1.0/">\n]>\n'
    long_comment = b'<!-- ' + b'x' * 10000 + b' -->\n'
    for n, start in enumerate((inkscape, illustrator, long_comment, b'\xef\xbb\xbf  ')):
        figure = tmp_path / f'figure{n}.svg'
        figure.write_bytes(start + b'<svg xmlns="http://www.w3.org/2000/svg">\n</svg>\n')
        r = run_here('_plot.py', log, '--out', figure)
        assert r.returncode == 0, r.stderr
        assert figure.read_bytes().startswith(b'<svg')
    others = [
        b'<?xml version="1.0"?>\n<notes><note>keep me</note></notes>\n',
        b'<svgfoo>keep me</svgfoo>\n',  # another tag
        b'<svg is the format I use, keep me\n',  # a note: no closing tag
        b' ' * 5000 + b'keep me',  # blank for longer than a glance
        b'\xef\xbb\xbf',  # nothing but a byte-order mark: not empty
    ]
    for n, text in enumerate(others):
        other = tmp_path / f'other{n}.svg'
        other.write_bytes(text)
        assert_one_line_error(run_here('_plot.py', log, '--out', other), 'is not an SVG figure')
        assert other.read_bytes() == text


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
            r = run_here(
                '_visualize.py', *args, option, path, '--overwrite-repo-files'
            )  # (the template's folder)
            assert_one_line_error(r, 'also read by this command')
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


def chattr(flag, path):
    """chattr where the file system and the user allow it (root on ext4, ...); else the test is skipped."""
    r = subprocess.run(['chattr', flag, str(path)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f'chattr {flag} is not possible here: {r.stderr.strip()}')


def test_an_append_only_output_is_refused_before_the_work(tmp_path):
    out = tmp_path / 'a.svg'
    out.write_bytes(b'<svg')
    chattr('+a', out)
    try:
        r = run_here('_plot.py', SHIPPED_LOG, '--out', out)
    finally:
        chattr('-a', out)
    assert_one_line_error(r, 'cannot be replaced', 'chattr -a')
    assert out.read_bytes() == b'<svg'


@pytest.mark.parametrize('flag, name', [('a', 'append-only'), ('i', 'immutable')])
def test_an_append_only_or_immutable_folder_is_refused_before_the_work(made, tmp_path, flag, name):
    """A file can be created in an append-only folder, but never renamed over another nor removed: every
    output (written beside, then renamed) would fail after the work and leave its temporary behind."""
    folder = tmp_path / 'kept'
    folder.mkdir()
    chattr('+' + flag, folder)
    try:
        for r in (
            run_here('_plot.py', SHIPPED_LOG, '--out', folder / 'c.svg'),
            run_here('_training.py', '--corpus', made / 'corpus.txt', '--out', folder, *TINY),
        ):
            assert_one_line_error(r, f'is {name} (chattr +{flag})', f'chattr -{flag}')
        assert list(folder.iterdir()) == []
        if flag == 'a':  # a folder made in it has no flag: its files are replaced as anywhere
            r = run_here('_plot.py', SHIPPED_LOG, '--out', folder / 'new' / 'c.svg')
            assert r.returncode == 0, r.stderr
    finally:
        chattr('-' + flag, folder)


def test_a_link_output_writes_its_target_and_a_path_through_a_missing_folder_is_written_where_it_names(
    tmp_path,
):
    plain, link, real = tmp_path / 'plain.svg', tmp_path / 'link.svg', tmp_path / 'real.svg'
    assert run_here('_plot.py', SHIPPED_LOG, '--out', plain).returncode == 0
    link.symlink_to('real.svg')  # to nothing yet
    assert run_here('_plot.py', SHIPPED_LOG, '--out', link).returncode == 0
    assert link.is_symlink() and real.read_bytes() == plain.read_bytes()
    r = run_here('_plot.py', SHIPPED_LOG, '--out', tmp_path / 'nodir' / '..' / 'c.svg')
    assert r.returncode == 0, r.stderr
    assert (tmp_path / 'c.svg').read_bytes() == plain.read_bytes() and not (tmp_path / 'nodir').exists()


def test_a_link_loop_or_a_folders_name_as_the_output_is_refused(tmp_path):
    (tmp_path / 'loop.svg').symlink_to('loop.svg')
    assert_one_line_error(
        run_here('_plot.py', SHIPPED_LOG, '--out', tmp_path / 'loop.svg'), 'leads back to itself'
    )
    assert (tmp_path / 'loop.svg').is_symlink()
    r = run_here('_plot.py', SHIPPED_LOG, '--out', f'{tmp_path / "newdir"}/')
    assert_one_line_error(r, 'names a folder')
    assert sorted(os.listdir(tmp_path)) == ['loop.svg']


def test_a_page_written_by_hand_is_a_page_to_replace_and_a_name_too_long_says_so(small_model, tmp_path):
    weights, lookup, _ = small_model
    page = tmp_path / 'page.html'
    page.write_text('<html><body>my own page</body></html>\n')
    (tmp_path / 't.txt').write_text('to be or not to be', encoding='utf-8')
    args = ['--weights', weights, '--lookup', lookup, '--text', tmp_path / 't.txt']
    r = run_here('_visualize.py', *args, '--html', page)
    assert r.returncode == 0, r.stderr
    assert page.read_text().startswith('<!DOCTYPE html>')
    r = run_here('_visualize.py', *args, '--html', tmp_path / ('p' * 250 + '.html'))
    assert_one_line_error(r, 'path too long', 'its name is', 'choose a shorter path')


def test_an_output_named_for_another_format_is_refused_and_the_right_name_given(model_dir, tmp_path):
    log = two_epoch_log(tmp_path)
    r = run_here('_plot.py', log, '--out', tmp_path / 'curve.PNG')
    assert_one_line_error(
        r, 'the file written is an SVG figure, not PNG', f'name it {tmp_path / "curve.svg"}'
    )
    r = run_here('_visualize.py', '--html', tmp_path / 'page.svg', '--text', model_dir / 'text.txt')
    assert_one_line_error(r, 'an HTML page, not SVG', 'page.html')
    r = run_here('_plot.py', log, '--out', tmp_path / 'curve.svg.png')
    assert_one_line_error(r, f'name it {tmp_path / "curve.svg"}')  # not curve.svg.svg
    assert sorted(p.name for p in tmp_path.iterdir()) == ['training_log.csv']
    for name in ('curve', 'curve.htm.svg', 'curve.v2'):  # no ending, its own, or one of no known format
        assert run_here('_plot.py', log, '--out', tmp_path / name).returncode == 0
