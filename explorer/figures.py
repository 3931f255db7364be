"""The explorer's pictures, drawn from what analysis.py computes: the gate saturation and the mean activation
by position in the line as SVG, and the self-contained HTML page (the template explorer.html, filled in)."""

import base64
import html
import json
import os
import re

import numpy as np

from explorer import analysis, svg

TEMPLATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'explorer.html')
GATE_COLOURS = {'input': '#1f77b4', 'forget': '#2ca02c', 'output': '#d62728'}


def saturation_svg(sat, title, size=220, pad=44):
    """The figure of Karpathy et al. (2015): one panel per layer (rows) and gate (columns), each cell a dot at
    (fraction of steps left-saturated, fraction right-saturated). sat: what analysis.gate_saturation
    returns."""
    layers_ = sorted({n for n, _ in sat})
    gates = list(GATE_COLOURS)
    width, height = pad + len(gates) * (size + pad), 40 + len(layers_) * (size + pad)
    out = svg.document(width, height, title, 20)
    for r, n in enumerate(layers_):
        for c, g in enumerate(gates):
            x0, y0 = pad + c * (size + pad), 40 + r * (size + pad)
            out.append(svg.element('rect', x=x0, y=y0, width=size, height=size, fill='none', stroke='black'))
            # The diagonal x + y = 1.
            out.append(svg.element('line', x1=x0, y1=y0, x2=x0 + size, y2=y0 + size, stroke='#ccc'))
            out.append(svg.text(x0 + size / 2, y0 - 6, f'layer {n}, {g} gate', text_anchor='middle'))
            out.append(
                svg.text(
                    x0 + size / 2,
                    y0 + size + 16,
                    'fraction left-saturated (< 0.1)',
                    text_anchor='middle',
                    font_size=10,
                )
            )
            out.append(
                svg.text(
                    x0 - 8,
                    y0 + size / 2,
                    'fraction right-saturated (> 0.9)',
                    text_anchor='middle',
                    font_size=10,
                    transform=f'rotate(-90 {x0 - 8} {y0 + size / 2})',
                )
            )
            for v in (0, 1):
                out.append(svg.text(x0 + v * size, y0 + size + 28, str(v), text_anchor='middle', font_size=9))
            left, right = sat[(n, g)]
            for a, b in zip(left, right):
                out.append(
                    svg.element(
                        'circle',
                        cx=x0 + a * size,
                        cy=y0 + (1 - b) * size,
                        r=2,
                        fill=GATE_COLOURS[g],
                        fill_opacity='0.5',
                    )
                )
    return svg.finish(out)


def position_profile_svg(means, counts, cells, title, max_pos=60):
    """One panel per cell (layer, 'h' or 'c', index, label): its mean activation at each position in the line,
    0 .. max_pos (means, counts: what analysis.position_profile returns). A sine cell shows a wave; a counter,
    a ramp."""
    w, h, pad = 300, 170, 40
    width, height = pad + len(cells) * (w + pad), h + 90
    out = svg.document(width, height, title, 18)
    for j, (layer, state, k, label) in enumerate(cells):
        x0, y0 = pad + j * (w + pad), 40
        lo, hi = float(means[j].min()), float(means[j].max())
        span = max(hi - lo, 1e-9)
        pairs = [
            (x0 + q / max_pos * w, y0 + (hi - v) / span * h) for q, v in enumerate(means[j]) if counts[q]
        ]
        out.append(svg.element('rect', x=x0, y=y0, width=w, height=h, fill='none', stroke='black'))
        out.append(
            svg.element(
                'polyline', points=svg.points(pairs), fill='none', stroke='#d62728', stroke_width='1.5'
            )
        )
        out.append(
            svg.text(
                x0 + w / 2,
                y0 - 6,
                f'layer {layer} {analysis.state_label(state)} {k}: {label}',
                text_anchor='middle',
            )
        )
        out.append(
            svg.text(
                x0 + w / 2,
                y0 + h + 30,
                f'position in the line (0 to {max_pos})',
                text_anchor='middle',
                font_size=10,
            )
        )
        out.append(svg.text(x0 - 4, y0 + 10, f'{hi:+.2f}', text_anchor='end', font_size=9))
        out.append(svg.text(x0 - 4, y0 + h, f'{lo:+.2f}', text_anchor='end', font_size=9))
    return svg.finish(out)


def _script_data(value):
    """value as JSON that can stand inside a <script> element: every '<' escaped, so that no text (not
    '</script>', not '<!--<script>') can end the script or change how the browser reads it."""
    return json.dumps(value).replace('<', '\\u003c')


def explorer_page(text, acts, H, n_layers, found, start):
    """The self-contained page: the text coloured by a neuron, its controls, and the best neurons per feature.
    acts: what analysis.activations returns; found: what analysis.find_neurons returns; start: (layer, state,
    neuron) shown first."""
    keys = [(n, s) for n in range(1, n_layers + 1) for s in 'hc']
    # activations as int8 (-127..127 for -1..1), layout [layer][state][neuron][character], base64
    q = np.stack([np.clip(np.round(acts[k].T * 127), -127, 127) for k in keys]).astype(np.int8)
    payload = dict(
        text=text,
        H=H,
        layers=n_layers,
        acts=base64.b64encode(q.tobytes()).decode('ascii'),
        found={
            name: dict(
                description=f['description'],
                present=f['present'],
                best=[
                    dict(layer=n, state=s, neuron=k, r=round(r, 3), period=P) for n, s, k, r, P in f['best']
                ],
            )
            for name, f in found.items()
        },
        start=dict(layer=start[0], state=start[1], neuron=start[2]),
    )
    values = {
        '__DATA__': _script_data(payload),
        '__TITLE__': html.escape(f'LSTM neurons ({len(text)} characters)'),
    }
    with open(TEMPLATE, encoding='utf-8') as f:
        template = f.read()
    # One pass, so that nothing filled in is read again.
    return re.sub('__DATA__|__TITLE__', lambda m: values[m.group(0)], template)
