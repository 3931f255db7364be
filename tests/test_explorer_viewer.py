"""The tkinter viewer, on the desktop's display or a virtual one (Xvfb): its buttons change the colours, and
Ctrl-C closes it with one line and status 130."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import data
from explorer import analysis, viewer
import lstm

from helpers import ROOT, tiny_corpus


@pytest.fixture(scope='module')
def display():
    """A display for tkinter: the desktop's, or a virtual one (Xvfb) where the machine has it, one for the
    module (a process's Tk does not move to another display). Xvfb picks a free display number itself and
    writes it to a pipe once it accepts connections (-displayfd)."""
    if os.environ.get('DISPLAY'):
        yield os.environ['DISPLAY']
        return
    if shutil.which('Xvfb') is None:
        pytest.skip('no display and no Xvfb (.ci/run installs it)')
    read, write = os.pipe()
    proc = subprocess.Popen(
        ['Xvfb', '-displayfd', str(write), '-screen', '0', '1280x1024x24', '-nolisten', 'tcp'],
        pass_fds=[write],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write)
    try:
        with os.fdopen(read) as f:
            number = f.readline().strip()  # blocks until the server is ready (or has died)
        if not number:
            pytest.skip(f'Xvfb did not start (exit status {proc.wait()})')
        with pytest.MonkeyPatch.context() as monkeypatch:
            monkeypatch.setenv('DISPLAY', f':{number}')
            yield f':{number}'
    finally:
        proc.terminate()
        proc.wait()


def test_tk_viewer_buttons_change_the_colours(display):
    tkinter = pytest.importorskip('tkinter')
    text = tiny_corpus(300)
    chars = data.build_lookup(text)
    ids = data.encode(text, chars)
    params = lstm.init_params(len(chars), 8, 2, rng=np.random.default_rng(0))
    acts = analysis.activations(params, ids)
    try:
        root, w = viewer.build_viewer(text, acts, 8, 2, 1, 'h', 3)
    except tkinter.TclError as e:
        pytest.skip(f'no usable display: {e}')
    try:
        j = next(k for k, ch in enumerate(text) if ch != '\n')

        def background():
            return w['background'](j)

        assert background() == viewer.colour(acts[(1, 'h')][j, 3])
        w['next'].invoke()
        assert w['neuron'].get() == '4'
        assert background() == viewer.colour(acts[(1, 'h')][j, 4])
        w['previous'].invoke()
        w['previous'].invoke()
        assert w['neuron'].get() == '2'
        w['layer'].set(2)
        w['state'].set('c')
        w['show']()
        assert background() == viewer.colour(acts[(2, 'c')][j, 2])
        assert 'layer 2 tanh(c) neuron 2' in w['status'].cget('text')
        w['neuron'].set('7')
        w['entry'].event_generate('<Return>')
        root.update()
        assert background() == viewer.colour(acts[(2, 'c')][j, 7])
    finally:
        root.destroy()


def window_titles(display):
    """The titles of the windows on the display."""
    out = subprocess.run(['xwininfo', '-root', '-tree', '-display', display], capture_output=True, text=True)
    return re.findall(r'"([^"]*)"', out.stdout)


@pytest.mark.skipif(shutil.which('xwininfo') is None, reason='xwininfo (x11-utils) is not installed')
def test_ctrl_c_closes_the_viewer_with_one_line_and_status_130(display, small_model, tmp_path):
    pytest.importorskip('tkinter')
    weights, lookup, _ = small_model
    (tmp_path / 't.txt').write_text(tiny_corpus(300), encoding='utf-8')
    p = subprocess.Popen(
        [
            sys.executable,
            os.path.join(ROOT, '_visualize.py'),
            '--text',
            tmp_path / 't.txt',
            '--weights',
            weights,
            '--lookup',
            lookup,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while 'LSTM neuron viewer' not in window_titles(display):  # wait for the window
            assert p.poll() is None, p.communicate()
            time.sleep(0.05)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, err
    assert err.strip().splitlines() == ['_visualize.py: interrupted (Ctrl-C)'], err
    assert 'LSTM neuron viewer' not in window_titles(display)


def test_every_character_shows_its_own_colour_and_a_nul_hides_nothing(display):
    """The colours come as runs of one colour per line: each character still shows its own activation's; a NUL
    (which ends a text in Tk) is shown as a symbol, and what follows it is there; an emoji moves no colour."""
    tkinter = pytest.importorskip('tkinter')
    text = 'ab\x00cd\nefg\U0001f600h\n\nhij klm\nn'
    acts = {(n, s): np.random.default_rng(n).uniform(-1, 1, (len(text), 2)) for n in (1, 2) for s in 'hc'}
    acts[(1, 'h')][3:5, 1] = 0.5  # a run of one colour
    try:
        root, w = viewer.build_viewer(text, acts, 2, 2, 1, 'h', 1)
    except tkinter.TclError as e:
        pytest.skip(f'no usable display: {e}')
    try:
        assert w['text'].get('1.0', 'end-1c') == viewer.shown(text, tkinter.TkVersion)
        assert '\u2400' in viewer.shown(text, 9.0) and '\U0001f600' in viewer.shown(text, 9.0)
        for j, ch in enumerate(text):
            assert w['background'](j) == (None if ch == '\n' else viewer.colour(acts[(1, 'h')][j, 1])), j
        line, column = 1, 0  # where the colours are put: each character at its own place in Tk's count
        for ch in viewer.shown(text, tkinter.TkVersion):
            assert w['text'].get(f'{line}.{column}') == ch, (line, column)
            line, column = (line + 1, 0) if ch == '\n' else (line, column + 1)
    finally:
        root.destroy()
