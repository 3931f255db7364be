"""The HTML page of _visualize.py --html in a real (headless) browser: colours, controls, its address, every
character of any text, and select to find with a real mouse selection."""

import os
import shutil
import struct
import zlib

import numpy as np
import pytest

import data
from explorer import analysis
import lstm
from util.weights import load_params, save_params

from helpers import SAVES, run_here


CHROMIUM = shutil.which('chromium') or shutil.which('chromium-browser')


def launch(playwright):
    """Headless Chromium, kept off the network."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=[
            '--no-sandbox',
            '--disable-gpu',
            '--disable-quic',
            '--no-first-run',
            '--disable-background-networking',
            '--disable-component-update',
            '--disable-sync',
        ],
    )


@pytest.fixture(scope='module')
def browser():
    """One headless Chromium for the tests of this file; each test opens a page of its own (a new context)."""
    if CHROMIUM is None:
        pytest.skip('Chromium is not installed (.ci/run installs it)')
    playwright = pytest.importorskip('playwright.sync_api')
    with playwright.sync_playwright() as p:
        chromium = launch(p)
        yield chromium
        chromium.close()


def read_png(raw):
    """Decode an 8-bit RGB or RGBA PNG (what Chromium writes) into an (h, w, channels) array."""
    assert raw[:8] == b'\x89PNG\r\n\x1a\n'
    pos, idat = 8, b''
    while pos < len(raw):
        n, kind = struct.unpack('>I4s', raw[pos : pos + 8])
        body = raw[pos + 8 : pos + 8 + n]
        if kind == b'IHDR':
            w, h, depth, ctype = struct.unpack('>IIBB', body[:10])
        elif kind == b'IDAT':
            idat += body
        pos += 12 + n
    assert depth == 8 and ctype in (2, 6)
    ch = 3 if ctype == 2 else 4
    rows = zlib.decompress(idat)
    out = np.zeros((h, w * ch), dtype=np.int32)
    prev = np.zeros(w * ch, dtype=np.int32)
    stride = w * ch + 1
    for y in range(h):
        ftype, line = (
            rows[y * stride],
            np.frombuffer(rows[y * stride + 1 : (y + 1) * stride], np.uint8).astype(np.int32),
        )
        cur = np.zeros(w * ch, dtype=np.int32)
        for x in range(w * ch):
            a = cur[x - ch] if x >= ch else 0
            b = prev[x]
            c = prev[x - ch] if x >= ch else 0
            if ftype == 0:
                p = 0
            elif ftype == 1:
                p = a
            elif ftype == 2:
                p = b
            elif ftype == 3:
                p = (a + b) // 2
            else:
                pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
                p = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
            cur[x] = (line[x] + p) & 255
        out[y] = cur
        prev = cur
    return out.reshape(h, w, ch)


@pytest.mark.skipif(CHROMIUM is None, reason='Chromium is not installed (.ci/run installs it)')
def test_html_page_in_headless_chromium(browser, tmp_path):
    page_path = tmp_path / 'neurons.html'
    r = run_here('_visualize.py', '--html', page_path, '--layer', 2, '--state', 'c', '--neuron', 5)
    assert r.returncode == 0, r.stderr
    html = page_path.read_text(encoding='utf-8')
    assert 'http://' not in html and 'https://' not in html and 'src=' not in html  # nothing remote
    page = browser.new_page(viewport={'width': 900, 'height': 700})
    errors = []
    page.on('pageerror', lambda e: errors.append(str(e)))
    page.goto(page_path.as_uri())
    assert page.input_value('#neuron') == '5'
    assert page.input_value('#layer') == '2' and page.input_value('#state') == 'c'

    def colours():
        return page.eval_on_selector_all('#text span', 'spans => spans.map(s => s.style.background)')

    before = colours()
    assert len(before) == len(open(os.path.join(SAVES, 'sample.txt'), encoding='utf-8').read())
    assert any(c.startswith('rgb(255') for c in before)
    page.click('#next')  # a real click on the button
    assert page.input_value('#neuron') == '6'
    after = colours()
    assert after != before
    page.click('#prev')
    assert page.input_value('#neuron') == '5' and colours() == before
    page.click('#found .pick >> nth=0')  # a neuron from the list
    assert 'neuron' in page.inner_text('#info')
    page.select_option('#state', 'h')
    assert 'h neuron' in page.inner_text('#info')
    page.evaluate("location.hash = '#layer=1&state=c&neuron=17'")  # the address, edited
    page.wait_for_function(
        "document.getElementById('info').textContent.startsWith('layer 1 tanh(c) neuron 17:')"
    )
    assert (page.input_value('#layer'), page.input_value('#state'), page.input_value('#neuron')) == (
        '1',
        'c',
        '17',
    )
    page.evaluate("location.hash = '#neuron=300'")  # the rest stays as it was
    page.wait_for_function("document.getElementById('neuron').value === '300'")
    assert page.inner_text('#info').startswith('layer 1 tanh(c) neuron 300:')
    shot = read_png(page.screenshot())
    page.close()
    assert not errors, errors
    red = (shot[..., 0] > 200) & (shot[..., 1] < 150) & (shot[..., 2] < 150)
    assert red.sum() > 500  # the colouring is visible


TEXTS = {
    # Characters outside the Basic Multilingual Plane are one character each in the page, as in Python (a page
    # indexing UTF-16 units shifts the colours after the first emoji).
    'emoji': 'To be 🎭 or not 😀😀 to be:\nthat is 𝄞 the question — 日本 🙂!\n' * 3,
    # Text that HTML would read as the end of the script, or as a comment that hides its end; and the
    # template's own placeholders.
    'markup': 'To be <!--<script> or not </script> to be:\n</SCRIPT><!-- __TITLE__ & __DATA__ "q" \'a\' -->\n'
    * 3,
}


@pytest.mark.skipif(CHROMIUM is None, reason='Chromium is not installed (.ci/run installs it)')
@pytest.mark.parametrize('kind', list(TEXTS))
def test_html_page_colours_every_character_of_any_text(browser, tmp_path, kind):
    """Every character of the text is shown, as it is, with its own activation, and the page runs no matter
    what the text holds."""
    text = TEXTS[kind]
    chars = data.build_lookup(text)
    params = lstm.init_params(len(chars), 16, 2, rng=np.random.default_rng(1))
    params['lstm1.W'] *= 8  # strong, varied activations
    save_params(tmp_path / 'w.npz', params)
    data.save_lookup(tmp_path / 'l.json', chars)
    (tmp_path / 't.txt').write_text(text, encoding='utf-8')
    page_path = tmp_path / 'page.html'
    r = run_here(
        '_visualize.py',
        '--weights',
        tmp_path / 'w.npz',
        '--lookup',
        tmp_path / 'l.json',
        '--text',
        tmp_path / 't.txt',
        '--html',
        page_path,
        '--layer',
        '1',
        '--state',
        'h',
        '--neuron',
        '3',
    )
    assert r.returncode == 0, r.stderr
    acts = analysis.activations(params, data.encode(text, chars))[(1, 'h')][:, 3]
    q = np.clip(np.round(acts * 127), -127, 127) / 127  # the page's 8-bit activations
    gb = np.round(255 * (1 - (q + 1) / 2)).astype(int)
    expected = ['' if ch == '\n' else f'rgb(255, {g}, {g})' for ch, g in zip(text, gb)]
    page = browser.new_page()
    errors = []
    page.on('pageerror', lambda e: errors.append(str(e)))
    page.goto(page_path.as_uri())
    spans = page.eval_on_selector_all(
        '#text span', 'spans => spans.map(s => [s.textContent, s.style.background])'
    )
    title, info = page.title(), page.inner_text('#info')
    page.close()
    assert not errors, errors
    assert [s[0] for s in spans] == list(text)  # one span per character, emoji whole
    assert [s[1] for s in spans] == expected
    assert len(set(expected)) > 10
    assert title == f'LSTM neurons ({len(text)} characters)' and info.startswith('layer 1 h neuron 3:')


def expected_selection(acts_q, a, b, thr, pre):
    """The page's rule in Python, on the page's 8-bit activations acts_q (K, N): cells on (>= thr) at every
    character of a .. b and not on in the pre characters before; ranked by the margin."""
    t = thr * 127
    lo = acts_q[:, a : b + 1].min(axis=1)
    before = acts_q[:, max(0, a - pre) : a]
    hi = before.max(axis=1) if before.shape[1] else np.full(len(acts_q), -127)
    ok = (lo >= t) & ~((pre > 0) & (a - pre >= 0) & (hi >= t))
    score = (lo - hi) / 127
    order = [int(k) for k in np.argsort(-score, kind='stable') if ok[k]]
    return order, ok.sum()


@pytest.mark.skipif(CHROMIUM is None, reason='Chromium is not installed (.ci/run installs it)')
def test_select_to_find_with_a_real_mouse_selection(browser, tmp_path):
    page_path = tmp_path / 'neurons.html'
    r = run_here('_visualize.py', '--html', page_path)
    assert r.returncode == 0, r.stderr
    text = open(os.path.join(SAVES, 'sample.txt'), encoding='utf-8').read()
    a = text.index('OPHELIA:')
    b = a + len('OPHELIA:') - 1
    params, _ = load_params(os.path.join(SAVES, 'ShakespeareNet.npz'))
    chars = data.load_lookup(os.path.join(SAVES, 'ShakespeareLookup.json'))
    acts = analysis.activations(params, data.encode(text, chars))
    q = np.concatenate([np.clip(np.round(acts[(n, s)].T * 127), -127, 127) for n in (1, 2) for s in 'hc'])
    page = browser.new_page(viewport={'width': 1000, 'height': 900})
    page.goto(page_path.as_uri())
    first = page.locator('#text span').nth(a).bounding_box()
    last = page.locator('#text span').nth(b).bounding_box()
    page.mouse.move(first['x'] + 1, first['y'] + first['height'] / 2)  # a real drag with the mouse
    page.mouse.down()
    page.mouse.move(last['x'] + last['width'] - 1, last['y'] + last['height'] / 2, steps=10)
    page.mouse.up()
    assert page.evaluate('window.getSelection().toString()') == 'OPHELIA:'
    info = page.inner_text('#selinfo')
    buttons = page.eval_on_selector_all('#selcells button', 'bs => bs.map(b => b.dataset.cell)')
    chosen = page.eval_on_selector_all('#text span.chosen', 'ss => ss.length')
    matched = page.eval_on_selector_all('#text span.match', 'ss => ss.map(s => s.textContent).join("")')
    page.click('#selcells button >> nth=0')  # shows the best cell
    shown = (page.input_value('#layer'), page.input_value('#state'), page.input_value('#neuron'))
    page.close()
    order, count = expected_selection(q, a, b, 0.3, 3)
    H = 512
    names = [f'{k // (2 * H) + 1}{"hc"[(k // H) % 2]}{k % H}' for k in order[:5]]
    assert f'characters {a} to {b}: {count} cells' in info
    assert buttons == names and len(names) > 0
    assert chosen == len('OPHELIA:')
    assert 'HAMLET' in matched.replace('\n', '')  # the other speaker's name lights the same cells
    k = order[0]
    assert shown == (str(k // (2 * H) + 1), 'hc'[(k // H) % 2], str(k % H))
