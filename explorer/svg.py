"""Plain SVG written by hand, for the pictures of _plot.py and _visualize.py: no plotting library is needed,
and the files show in any browser and on GitHub.

A picture is a list of elements: start it with document(), append element(...) and text(...), end it with
finish(). Attribute values: an int is written as it is, a float with one decimal, anything else as text
(escaped); a float that is not finite is refused, so that no picture says x="nan".
"""

import html
import math
import numbers


def _value(v):
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        if not math.isfinite(v):
            raise ValueError(f'cannot draw at {v}')
        return f'{v:.1f}'
    return _xml(str(v))


def _attributes(attrs):
    """' name="value" ...', with name_with_underscores written name-with-hyphens (text_anchor:
    text-anchor)."""
    return ''.join(f' {name.rstrip("_").replace("_", "-")}="{_value(v)}"' for name, v in attrs.items())


def element(name, **attrs):
    """An empty element: element('line', x1=0, y1=0.5, stroke='black') is <line x1="0" y1="0.5"
    stroke="black"/>."""
    return f'<{name}{_attributes(attrs)}/>'


def _xml(s):
    """Text escaped for SVG (XML): <, >, & and quotes escaped; control characters, which XML cannot hold at
    all (a title read from a file name may have one), shown as U+FFFD."""
    return html.escape(''.join('\ufffd' if ord(ch) < 32 and ch not in '\t\n\r' else ch for ch in s))


def text(x, y, body, **attrs):
    """A <text> element at (x, y) holding body (escaped)."""
    return f'<text{_attributes(dict(x=x, y=y, **attrs))}>{_xml(body)}</text>'


def points(pairs):
    """The points="..." of a polyline through the (x, y) pairs, one decimal each."""
    pairs = list(pairs)
    for x, y in pairs:
        _value(float(x)), _value(float(y))  # refuses what is not finite
    return ' '.join(f'{x:.1f},{y:.1f}' for x, y in pairs)


def document(width, height, title, title_y, *defs):
    """The start of a picture: its size, a white background, any definitions (a clip path), and the title
    centred at the top, its baseline at title_y."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" '
        'font-size="12">',
        element('rect', width=width, height=height, fill='white'),
        *defs,
        text(width / 2, title_y, title, text_anchor='middle', font_size=14),
    ]


def finish(elements):
    """The picture as one string, closed."""
    return '\n'.join(elements + ['</svg>']) + '\n'
