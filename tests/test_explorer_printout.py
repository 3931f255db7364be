"""What _visualize.py prints and draws: the neurons it finds, the position profiles (also of texts with little
in them), every analysis on a model of a non-Latin text, progress on a terminal only, and one line for unknown
characters, a neuron it does not have or a page path it cannot write."""

import io
import os
import re
import sys

import pytest

import _visualize
import data
from explorer import analysis
from util.progress import Progress
from util.weights import load_params

from helpers import SAVES, Terminal, assert_one_line_error, run_here, tiny_corpus


def printed_neurons(stdout):
    """{feature: [(layer, state, neuron, 'r' or 'R', score, period or None)]} from --find's printout."""
    out, name = {}, None
    for line in stdout.splitlines():
        head = re.match(r'(\S[^:]*): ', line)
        if head and not line.startswith('neurons that follow'):
            name = head.group(1)
            out[name] = []
        row = re.match(
            r'  layer (\d+) (h|tanh\(c\)) +neuron +(\d+)   (r|R) = ([-+]?[\d.]+)(?:  period (\d+))?$', line
        )
        if row:
            layer, state, k, kind, score, period = row.groups()
            out[name].append(
                (
                    int(layer),
                    'h' if state == 'h' else 'c',
                    int(k),
                    kind,
                    score,
                    None if period is None else int(period),
                )
            )
    return out


def test_find_prints_the_neurons_it_finds():
    """The printout lists, under each feature, the neurons that find_neurons ranks first, with their scores:
    Pearson's r signed, the periodic search's partial correlation R unsigned, with its period."""
    r = run_here('_visualize.py', '--find', '--top', 2)
    assert r.returncode == 0, r.stderr
    text = open(os.path.join(SAVES, 'sample.txt'), encoding='utf-8').read()
    chars = data.load_lookup(os.path.join(SAVES, 'ShakespeareLookup.json'))
    params, _ = load_params(os.path.join(SAVES, 'ShakespeareNet.npz'))
    found = analysis.find_neurons(params, data.encode(text, chars), text, top=2)
    printed = printed_neurons(r.stdout)
    assert list(printed) == list(found)
    for name, f in found.items():
        if name == 'periodic in line':
            expected = [(n, s, k, 'R', f'{v:.3f}', P) for n, s, k, v, P in f['best']]
        else:
            expected = [(n, s, k, 'r', f'{v:+.3f}', None) for n, s, k, v, _ in f['best']]
        assert printed[name] == expected, name
        assert ('(absent from this text)' in r.stdout.split(name + ':')[1].split('\n\n')[0]) == (
            not f['present']
        )
    assert found['quotes/brackets']['present'] is False and found['speaker name']['present'] is True


@pytest.mark.parametrize('mode', ['--find', '--saturation'])
def test_find_and_saturation_show_progress_on_a_terminal_only(
    small_model, tmp_path, monkeypatch, capsys, mode
):
    weights, lookup, _ = small_model
    (tmp_path / 't.txt').write_text(tiny_corpus(5000), encoding='utf-8')
    args = ['--text', str(tmp_path / 't.txt'), '--weights', str(weights), '--lookup', str(lookup), mode]
    if mode == '--saturation':
        args.append(str(tmp_path / 's.svg'))
    monkeypatch.setattr(Progress, 'interval', 0)  # draw at every call
    printed = {}
    for stderr in (Terminal(), io.StringIO()):
        monkeypatch.setattr(sys, 'stderr', stderr)
        assert _visualize.main(args) == 0
        printed[type(stderr)] = stderr.getvalue(), capsys.readouterr().out
    shown, out = printed[Terminal]
    assert 'of 5,000 chars' in shown and shown.rstrip(' ').endswith('\r'), shown  # drawn, then cleared
    assert printed[io.StringIO] == ('', out) and 'layer' in out  # in a file: the result only


def test_find_draws_the_position_profiles(tmp_path):
    r = run_here('_visualize.py', '--find', '--periodic-svg', tmp_path / 'p.svg')
    assert r.returncode == 0, r.stderr
    svg = (tmp_path / 'p.svg').read_text()
    assert svg.count('<polyline') == 3 and 'line position' in svg
    assert 'two cycles or more in a typical line' in r.stdout and 'chance' in r.stdout
    assert_one_line_error(
        run_here('_visualize.py', '--periodic-svg', tmp_path / 'q.svg'), '--periodic-svg goes with'
    )


@pytest.mark.parametrize(
    'args, said',
    [
        (['--find', '--neuron', '5'], '--neuron goes with the viewer or --html'),
        (['--saturation', 'S', '--layer', '1', '--state', 'c'], '--layer and --state go with the viewer or'),
        (['--find', '--html-chars', '7'], '--html-chars goes with --html'),
        (['--saturation', 'S', '--top', '3'], '--top goes with --find or --html'),
    ],
)
def test_an_option_of_an_output_not_asked_for_is_refused(tmp_path, args, said):
    """It would do nothing: said in one line, before any work."""
    r = run_here('_visualize.py', *[tmp_path / 's.svg' if a == 'S' else a for a in args])
    assert_one_line_error(r, said, 'leave')
    assert r.stdout == '' and list(tmp_path.iterdir()) == []


def test_the_position_profiles_of_texts_with_little_in_them(small_model, tmp_path):
    """Lines of 6 positions or more: periodic cells and a line-position cell. Shorter lines (a text of
    newlines only, or of two characters) fit every R exactly (0 or 1), so there is no periodic cell: the
    line-position cell is drawn alone where there is one, and where there is none one line says so before any
    work: the other outputs asked for are not lost after it."""
    weights, lookup, chars = small_model
    model = ['--weights', weights, '--lookup', lookup, '--find', '--periodic-svg', tmp_path / 'p.svg']
    model += ['--html', tmp_path / 'p.html']
    line = ''.join(ch for ch in chars if ch != '\n')[:7]
    for text, drawn in (((line + '\n') * 3, 3), ((line[:2] + '\n') * 3, 1), ('\n' * 8, 0), (line[:2], 0)):
        (tmp_path / 't.txt').write_text(text, encoding='utf-8')
        r = run_here('_visualize.py', '--text', tmp_path / 't.txt', *model)
        periodic = r.stdout.split('periodic in line:')[-1]
        if drawn:
            assert r.returncode == 0, r.stderr
            assert ('(absent from this text)' in periodic) == (drawn < 3) and 'period 0' not in periodic
            assert (tmp_path / 'p.svg').read_text().count('<polyline') == drawn
        else:
            assert_one_line_error(r, 'has no line of two characters or more', 'several lines')
            assert r.stdout == '' and not (tmp_path / 'p.html').exists()  # said before the --find table
        (tmp_path / 'p.svg').unlink(missing_ok=True)
        (tmp_path / 'p.html').unlink(missing_ok=True)


def test_the_analyses_on_a_model_trained_on_a_non_latin_text(tmp_path):
    """Train a small model on a Greek text through _training.py, then run every analysis on it."""
    latin, greek = 'abcdefghijklmnopqrstuvwxyz', 'αβψδεφγηιξκλμνοπϙρστθωςχυζ'
    table = str.maketrans(latin + latin.upper(), greek + greek.upper())
    lines = tiny_corpus(6000).translate(table).split('\n')
    text = ''.join(f'{("ΡΟΜΕΟ:", "ΚΙΝΓ:")[k % 2]}\n{line}\n' for k, line in enumerate(lines)) + '🎭\n'
    (tmp_path / 'g.txt').write_text(text, encoding='utf-8')
    run = tmp_path / 'run'
    r = run_here(
        '_training.py',
        '--corpus',
        tmp_path / 'g.txt',
        '--out',
        run,
        '--hidden',
        16,
        '--chunks',
        4,
        '--window',
        20,
        '--epochs',
        2,
        '--lr',
        0.01,
        '--quiet',
    )
    assert r.returncode == 0, r.stderr
    model = [
        '--weights',
        run / 'best' / 'ShakespeareNet.npz',
        '--lookup',
        run / 'best' / 'ShakespeareLookup.json',
    ]
    r = run_here(
        '_visualize.py', *model, '--text', tmp_path / 'g.txt', '--find', '--saturation', tmp_path / 's.svg'
    )
    assert r.returncode == 0, r.stderr
    assert (
        'speaker name' in r.stdout
        and "(absent from this text)" not in r.stdout.split('speaker name')[1][:120]
    )
    assert (tmp_path / 's.svg').read_text().count('<circle') == 2 * 3 * 16
    r = run_here('_evaluate.py', *model, '--corpus', tmp_path / 'g.txt', '--ngram', 3, '--compare')
    assert r.returncode == 0, r.stderr
    assert 'first letter of a word' in r.stdout
    r = run_here('_visualize.py', *model, '--text', tmp_path / 'g.txt', '--html', tmp_path / 'g.html')
    assert r.returncode == 0, r.stderr


def test_html_refuses_a_path_it_cannot_write(tmp_path):
    (tmp_path / 'page.html').mkdir()
    assert_one_line_error(run_here('_visualize.py', '--html', tmp_path / 'page.html'), 'is a folder')
    assert os.listdir(tmp_path) == ['page.html']  # no temporary file left behind


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
