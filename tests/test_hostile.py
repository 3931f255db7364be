"""A hostile user's cases that are not in the other test files: outputs that are devices, pipes or links into
/proc (never replaced by a rename); outputs that would replace a file the command reads, or a file of
another kind; a pipe or a device where a run folder's file goes; endless streams as inputs; weights through a pipe."""
import os
import stat
import subprocess
import sys

import pytest

from util import files
from util import runs
from conftest import ROOT
from helpers import assert_one_line_error, script, tiny_corpus
from run_folder_helpers import TINY, train


def plot_log(tmp_path):
    """A two-epoch training log to plot."""
    log = tmp_path / 'training_log.csv'
    log.write_text('epoch,step,train_loss,val_loss,lr,seconds,chars_per_s,event\n'
                   '1,67,3.6497,3.3744,0.001,0,36642,best\n2,134,3.3392,3.2371,0.001,0,39364,best\n')
    return log


def test_devices_pipes_and_links_into_proc_are_written_in_place_never_replaced(tmp_path):
    assert files.writes_in_place('/dev/null') and files.writes_in_place('/dev/full')
    os.symlink('/proc/self/fd/1', tmp_path / 'stdout')  # as /dev/stdout is
    assert files.writes_in_place(tmp_path / 'stdout')
    assert not files.writes_in_place(tmp_path / 'new.svg') and not files.writes_in_place(tmp_path)
    fifo = tmp_path / 'fifo'
    os.mkfifo(fifo)
    assert files.writes_in_place(fifo)
    read = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)   # a reader, so that opening it to write does not wait
    try:
        files.write_text(fifo, 'through the pipe')
        assert os.read(read, 100) == b'through the pipe'
    finally:
        os.close(read)
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)       # still the pipe: a rename would have made it a file
    assert sorted(os.listdir(tmp_path)) == ['fifo', 'stdout']    # and no temporary file left beside it


def test_a_figure_to_a_full_device_is_one_line_and_the_device_stays(tmp_path):
    assert files.writes_in_place('/dev/full')           # else the script below (as root) would replace /dev/full
    r = script('_plot.py', plot_log(tmp_path), '--out', '/dev/full')
    assert_one_line_error(r, 'cannot write /dev/full', 'No space left')
    assert stat.S_ISCHR(os.stat('/dev/full').st_mode)
    r = script('_plot.py', plot_log(tmp_path), '--out', '/dev/null')
    assert r.returncode == 0, r.stderr
    assert stat.S_ISCHR(os.stat('/dev/null').st_mode)


def test_a_figure_never_replaces_its_log_or_a_file_of_another_kind(tmp_path):
    log = plot_log(tmp_path)
    before = log.read_bytes()
    assert_one_line_error(script('_plot.py', log, '--out', log), 'also read by this command')
    (tmp_path / 'link.svg').symlink_to(log)             # the same file under another name
    assert_one_line_error(script('_plot.py', log, '--out', tmp_path / 'link.svg'), 'also read by this command')
    model = tmp_path / 'ShakespeareNet.npz'
    model.write_bytes(b'PK\x03\x04 a model')
    assert_one_line_error(script('_plot.py', log, '--out', model), 'is not an SVG figure')
    assert log.read_bytes() == before and model.read_bytes() == b'PK\x03\x04 a model'
    for _ in range(2):                                  # a new figure, then the same figure replaced
        r = script('_plot.py', log, '--out', tmp_path / 'curve.svg')
        assert r.returncode == 0, r.stderr
    assert (tmp_path / 'curve.svg').read_bytes().startswith(b'<svg')
    (tmp_path / 'empty.svg').write_bytes(b'')         # an empty file (touch) holds nothing to lose: replaced
    r = script('_plot.py', log, '--out', tmp_path / 'empty.svg')
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
        for option, path in (('--html', text), ('--html', weights), ('--saturation', lookup), ('--html', template)):
            assert_one_line_error(script('_visualize.py', *args, option, path), 'also read by this command')
    finally:                                            # the repo's own file, whatever happened
        with open(template, 'rb') as f:
            replaced = f.read() != saved[template]
        if replaced:
            with open(template, 'wb') as f:
                f.write(saved[template])
    assert not replaced
    page = tmp_path / 'page.html'
    assert script('_visualize.py', *args, '--html', page).returncode == 0
    assert_one_line_error(script('_visualize.py', *args, '--saturation', page), 'is not an SVG figure')
    assert page.read_bytes().startswith(b'<!DOCTYPE html>')
    assert all(open(p, 'rb').read() == b for p, b in saved.items())


@pytest.mark.parametrize('name', [runs.LOG, runs.CHECKPOINT, 'best/' + runs.WEIGHTS])
def test_a_pipe_or_a_device_in_a_run_folder_is_refused_in_one_line_not_waited_on(tmp_path, name):
    """A FIFO where the run reads its log or checkpoint made --resume wait for ever; a link to /dev/null where it
    writes would lose the file. Both are refused before anything is read or written."""
    (tmp_path / 'corpus.txt').write_text(tiny_corpus(1500), encoding='utf-8')
    run = tmp_path / 'run'
    assert train('--corpus', tmp_path / 'corpus.txt', '--out', run, '--epochs', '1', *TINY) == 0
    for make in (os.mkfifo, lambda path: os.symlink(os.devnull, path)):
        os.replace(run / name, tmp_path / 'kept')
        make(run / name)
        r = subprocess.run([sys.executable, os.path.join(ROOT, '_training.py'), '--out', str(run), '--resume',
                            '--epochs', '2'], capture_output=True, text=True, timeout=120)
        assert_one_line_error(r, str(run / name), 'is not a file')
        os.remove(run / name)
        os.replace(tmp_path / 'kept', run / name)
    assert stat.S_ISCHR(os.stat(os.devnull).st_mode)
    assert train('--out', run, '--resume', '--epochs', '2', *TINY) == 0     # the run continues once it is back


def limited_memory():
    """In the child: at most 800 MB of address space, so that reading an endless stream ends soon."""
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (800 << 20, 800 << 20))


def test_endless_streams_as_inputs_are_one_line_never_a_hang_or_a_memory_error(small_model, tmp_path):
    weights, lookup, _ = small_model
    for name, args, words in (('_sample.py', ['--weights', weights, '--lookup', '/dev/zero'], 'larger than 64 MiB'),
                              ('_plot.py', ['/dev/zero', '--out', tmp_path / 'z.svg'], 'larger than 64 MiB'),
                              ('_sample.py', ['--weights', weights, '--lookup', lookup, '--start-file', '/dev/zero'],
                               '/dev/zero')):
        r = subprocess.run([sys.executable, os.path.join(ROOT, name), *map(str, args)], capture_output=True,
                           text=True, timeout=120, preexec_fn=limited_memory)
        assert_one_line_error(r, words)
    assert not (tmp_path / 'z.svg').exists()


def test_weights_through_a_pipe_load_as_the_file_does(small_model):
    weights, lookup, chars = small_model
    start = next(c for c in chars if c.isalpha())
    same = ['--lookup', str(lookup), '--length', '40', '--seed', '0', '--start', start]
    args = [os.path.join(ROOT, '_sample.py'), '--weights', '/dev/stdin', *same]
    with open(weights, 'rb') as f:
        data = f.read()
    piped = subprocess.run([sys.executable, *args], input=data, capture_output=True, timeout=120)
    assert piped.returncode == 0, piped.stderr        # it said: not an .npz file (np.load seeks; a pipe cannot)
    plain = script('_sample.py', '--weights', weights, *same)
    assert piped.stdout.decode('utf-8') == plain.stdout and len(plain.stdout) > 40


def test_the_original_format_through_a_link_to_an_endless_device_is_one_line(small_model, tmp_path):
    """--weights naming a .json link to /dev/zero is refused at its first bytes (it was a MemoryError)."""
    weights, lookup, _ = small_model
    link = tmp_path / 'w.json'
    link.symlink_to('/dev/zero')
    r = subprocess.run([sys.executable, os.path.join(ROOT, '_sample.py'), '--weights', str(link), '--lookup',
                        str(lookup)], capture_output=True, text=True, timeout=120, preexec_fn=limited_memory)
    assert_one_line_error(r, 'w.json', 'not valid JSON')
