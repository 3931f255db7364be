"""_plot.py on logs that are damaged, diverged or not logs at all: a picture or one line, never a hang."""

import os
import subprocess
import sys

import pytest

from helpers import ROOT, SAVES, assert_one_line_error, run_here

LOG = os.path.join(SAVES, 'training_log.csv')
HEADER = 'epoch,step,train_loss,val_loss,lr,seconds,chars_per_s,event\n'
ROWS = [
    '1,401,3.0012,3.4493,0.002,393,2963,best\n',
    '2,802,2.0704,3.1017,0.002,671,4096,best\n',
    '3,1203,1.9000,2.5000,0.002,900,4000,best\n',
]


def plot(tmp_path, log_text, *args):
    (tmp_path / 'log.csv').write_text(log_text, encoding='utf-8')
    return run_here('_plot.py', tmp_path / 'log.csv', '--out', tmp_path / 'out.svg', *args)


def drawn(tmp_path):
    svg = (tmp_path / 'out.svg').read_text()
    assert 'nan' not in svg and 'inf' not in svg
    assert len(svg) < 20000  # a bounded number of grid lines
    return svg


@pytest.mark.parametrize(
    'rows, args',
    [
        ([ROWS[0], '2,802,1e18,1e18,0.002,671,4096,\n', ROWS[2]], []),  # a loss of 1e18
        (ROWS, ['--ymax', '1e18']),
        (ROWS, ['--ymax', '1e300']),
        # a loss of 1e18 and nothing else
        (
            ['1,401,1e18,1e18,0.002,393,2963,best\n', '2,802,1e18,1e18,0.002,671,4096,\n'],
            [],
        ),
        (['1,401,1.7e308,1.7e308,0.002,393,2963,best\n'], []),
    ],
)
def test_a_huge_loss_or_axis_is_drawn_with_a_few_grid_lines(tmp_path, rows, args):
    r = plot(tmp_path, HEADER + ''.join(rows), *args)
    assert r.returncode == 0, r.stderr
    svg = drawn(tmp_path)
    assert 1 <= svg.count('stroke="#e4e4e4"') <= 12


def test_a_diverged_run_is_drawn_without_its_nan_and_inf_losses(tmp_path):
    r = plot(tmp_path, HEADER + ROWS[0] + '2,802,nan,inf,0.002,671,4096,\n' + ROWS[2])
    assert r.returncode == 0, r.stderr
    svg = drawn(tmp_path)
    assert svg.count('<circle') == 4  # two epochs with finite losses, each train and val
    assert 'best validation loss 2.5000' in r.stdout
    assert_one_line_error(plot(tmp_path, HEADER + '1,401,nan,nan,0.002,393,2963,best\n'), 'inf or nan')


def test_columns_in_another_order_draw_the_same_picture(tmp_path):
    order = [3, 0, 7, 2, 1, 4, 5, 6]
    lines = [HEADER] + ROWS
    reordered = ''.join(','.join(line.rstrip('\n').split(',')[k] for k in order) + '\n' for line in lines)
    assert plot(tmp_path, ''.join(lines)).returncode == 0
    first = (tmp_path / 'out.svg').read_text()
    r = plot(tmp_path, reordered)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / 'out.svg').read_text() == first


@pytest.mark.parametrize(
    'log_text, words',
    [
        (HEADER + 'inf,401,3.0,3.4,0.002,393,2963,best\n', ['line 2', 'epoch is inf']),
        (HEADER + 'nan,401,3.0,3.4,0.002,393,2963,best\n', ['line 2', 'epoch is nan']),
        (HEADER + '-1,401,3.0,3.4,0.002,393,2963,best\n', ['epoch is -1']),
        (HEADER + '1,401,-3.0,3.4,0.002,393,2963,best\n', ['train_loss is -3.0', 'below zero']),
        (HEADER + '1,401,x,3.4,0.002,393,2963,best\n', ['not a training log']),
        ('step,epoch,val_loss\n1,2,3\n', ['not a training log']),
        ('val_loss,epoch,train_loss,step\n3.4,1\n', ['line 2', 'fewer fields']),
        ('First Citizen:\nBefore we proceed any further, hear me speak.\n', ['not a training log']),
        (HEADER, ['no finished epoch']),
    ],
)
def test_a_damaged_log_is_one_line(tmp_path, log_text, words):
    assert_one_line_error(plot(tmp_path, log_text), *words)
    assert not (tmp_path / 'out.svg').exists()


def test_what_is_not_a_log_is_one_line(tmp_path):
    assert_one_line_error(run_here('_plot.py', SAVES, '--out', tmp_path / 'a.svg'), 'is a folder')
    assert_one_line_error(
        run_here('_plot.py', os.path.join(SAVES, 'shakespeare.txt'), '--out', tmp_path / 'a.svg'),
        'not a training log',
    )
    assert_one_line_error(
        run_here('_plot.py', os.path.join(SAVES, 'ShakespeareNet.npz'), '--out', tmp_path / 'a.svg'),
        'not a training log',
    )
    assert os.listdir(tmp_path) == []


def test_the_shipped_learning_curve_is_drawn_again_byte_for_byte(tmp_path):
    r = run_here('_plot.py', LOG, '--out', tmp_path / 'curve.svg')
    assert r.returncode == 0, r.stderr
    with open(os.path.join(SAVES, '..', 'images', 'learning_curve.svg')) as f:
        assert (tmp_path / 'curve.svg').read_text() == f.read()


def plot_within(tmp_path, log_text, *args, seconds=30):
    """plot(), but a hang (an endless loop of grid lines, its memory growing) fails the test in seconds."""

    (tmp_path / 'log.csv').write_text(log_text, encoding='utf-8')
    try:
        return subprocess.run(
            [
                sys.executable,
                os.path.join(ROOT, '_plot.py'),
                tmp_path / 'log.csv',
                '--out',
                tmp_path / 'out.svg',
                *args,
            ],
            capture_output=True,
            text=True,
            timeout=seconds,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f'_plot.py {" ".join(args)} still running after {seconds} s')


BIGGEST = '1.7976931348623157e308'  # the largest float


@pytest.mark.parametrize(
    'rows, args',
    [
        (ROWS, ['--ymax', BIGGEST]),
        (ROWS, ['--ymax', '1.7e308']),
        ([f'1,401,{BIGGEST},{BIGGEST},0.002,393,2963,best\n'], []),
        ([ROWS[0], f'2,802,{BIGGEST},1.5,0.002,671,4096,\n'], []),
        ([f'1,401,{BIGGEST},0.5,0.002,393,2963,best\n', f'2,802,0,{BIGGEST},0.002,671,4096,\n'], []),
        (['1,401,5e-324,5e-324,0.002,393,2963,best\n'], ['--ymax', '1e-300']),
    ],
)
def test_the_largest_float_as_a_loss_or_a_bound_is_drawn_with_a_few_grid_lines(tmp_path, rows, args):
    r = plot_within(tmp_path, HEADER + ''.join(rows), *args)
    assert r.returncode == 0, r.stderr
    svg = drawn(tmp_path)
    assert svg.count('stroke="#e4e4e4"') <= 12  # (none where every loss is the largest float: no span)
    assert 'best validation loss' in r.stdout


@pytest.mark.parametrize(
    'rows, words',
    [
        ([f'{BIGGEST},401,3.0,2.0,0.002,393,2963,best\n'], 'not a number of epochs'),  # no run has that many
        (['2,401,3.0,2.0,0.002,393,2963,best\n', '1,802,2.0,1.9,0.002,671,4096,best\n'], 'does not follow'),
        (['1,401,3.0,2.0,0.002,393,2963,best\n', '1,802,2.0,1.9,0.002,671,4096,best\n'], 'does not follow'),
    ],
)
def test_a_log_whose_epochs_no_run_writes_is_one_line(tmp_path, rows, words):
    log = tmp_path / 'log.csv'
    log.write_text(HEADER + ''.join(rows))
    assert_one_line_error(run_here('_plot.py', log, '--out', tmp_path / 'c.svg'), words)
    assert not (tmp_path / 'c.svg').exists()


def test_control_characters_in_a_title_still_make_valid_svg(tmp_path):
    import xml.dom.minidom

    out = tmp_path / 'c.svg'
    assert (
        run_here(
            '_plot.py', os.path.join(SAVES, 'training_log.csv'), '--out', out, '--title', 'x\x01y <&>'
        ).returncode
        == 0
    )
    xml.dom.minidom.parse(str(out))  # an XML parser reads it


def test_out_dash_writes_the_picture_to_stdout(tmp_path):
    (tmp_path / 'here').mkdir()
    stdout = tmp_path / 'stdout'
    r = run_here(
        '_plot.py',
        os.path.join(SAVES, 'training_log.csv'),
        '--out',
        '-',
        cwd=tmp_path / 'here',
        stdout=stdout,
    )
    assert r.returncode == 0 and stdout.read_bytes().startswith(b'<svg') and 'wrote' in r.stderr
    assert list((tmp_path / 'here').iterdir()) == []  # no file named '-'


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


def test_a_ymax_below_every_loss_is_one_line_and_a_log_saved_with_a_bom_is_read(tmp_path):
    r = plot(tmp_path, HEADER + ''.join(ROWS), '--ymax', '0.1')
    assert_one_line_error(r, '--ymax 0.1 is below every loss drawn', 'give a larger one')
    assert plot(tmp_path, HEADER + ''.join(ROWS)).returncode == 0
    plain = drawn(tmp_path)
    r = plot(tmp_path, '\ufeff' + HEADER + ''.join(ROWS))  # a spreadsheet's UTF-8 byte-order mark
    assert r.returncode == 0, r.stderr
    assert drawn(tmp_path) == plain


@pytest.mark.parametrize('encoding', ['utf-16', 'utf-16-le'])
def test_a_log_saved_as_utf16_is_named_as_such(tmp_path, encoding):
    (tmp_path / 'log.csv').write_bytes((HEADER + ''.join(ROWS)).encode(encoding))
    r = run_here('_plot.py', tmp_path / 'log.csv', '--out', tmp_path / 'out.svg')
    assert_one_line_error(r, 'training log', 'UTF-16', 'iconv')
    assert not (tmp_path / 'out.svg').exists()


def test_a_constant_loss_gets_an_axis_of_its_own(tmp_path):
    """A corpus of one character trains to a loss of 0 at once: the axis still spans a tenth."""
    r = plot(tmp_path, HEADER + '1,401,0.0000,0.0000,0.002,393,2963,best\n')
    assert r.returncode == 0, r.stderr
    assert 'wrote' in r.stdout + r.stderr and '1 epoch,' in r.stdout + r.stderr
    svg = drawn(tmp_path)
    assert '>0.00</text>' in svg and '>0.10</text>' in svg
