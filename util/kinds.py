"""The kinds of file the scripts write over an existing one: an SVG figure, an HTML page. An output that
exists is replaced only if it is of the kind written (files.check_writable), so that a log, a text or a model
given as the output by mistake is never lost; a figure or a page written by another tool is still one.

A file is of a kind if it is empty, or if its first element (after what may come before it: a byte-order
mark, white space, an XML declaration, comments, an SVG doctype, also one with an internal subset as
Illustrator writes) is one of the kind's tags, and it ends with the kind's closing tag."""

import os
import re
from typing import NamedTuple

HEAD_BYTES = 65536  # what is read of the start of an existing output: its prolog and first tag
TAIL_BYTES = 1024  # and of its end: its closing tag


class Kind(NamedTuple):
    """A kind of file: the tags its first element may start with (lower case), its closing tag, its name, the
    endings of its file names (the usual one first)."""

    starts: tuple
    end: bytes
    name: str
    suffixes: tuple


SVG = Kind((b'<svg',), b'</svg>', 'an SVG figure', ('.svg',))
HTML = Kind((b'<!doctype html', b'<html'), b'</html>', 'an HTML page', ('.html', '.htm'))
# Endings that name another format: a file of one kind under such a name (curve.png) opens in no program.
FORMATS = (
    *('.png', '.jpg', '.jpeg', '.gif', '.bmp', '.webp', '.tif', '.tiff', '.pdf', '.eps', '.ps'),
    *('.svg', '.html', '.htm', '.json', '.csv', '.npz', '.txt'),
)

_PROLOG = re.compile(
    rb'(?:\xef\xbb\xbf|\s+|<\?xml[^>]*\?>|<!--.*?-->|<!DOCTYPE\s+svg(?:[^>\[]|\[[^\]]*\])*>)*', re.S | re.I
)
_AFTER_TAG = (b' ', b'\t', b'\r', b'\n', b'>', b'/')  # what may follow a tag's name


def misnamed(path, kind):
    """What is wrong with path as the name of a file of the kind, where its ending names another format
    (curve.png for an SVG figure, which no picture viewer would then open), else None: a name without an
    ending, or with one of no known format, is the user's choice."""
    stem, suffix = os.path.splitext(os.fspath(path))
    if suffix.lower() not in FORMATS or suffix.lower() in kind.suffixes:
        return None
    right = stem if os.path.splitext(stem)[1].lower() in kind.suffixes else stem + kind.suffixes[0]
    return f'the file written is {kind.name}, not {suffix[1:].upper()}: name it {right}'


def of_kind(size, first, last, kind):
    """Whether a file of size bytes, whose first and last bytes are first and last, is of the kind."""
    if size == 0:
        return True
    rest = first[_PROLOG.match(first).end() :].lower()
    opens = any(rest.startswith(tag) and rest[len(tag) : len(tag) + 1] in _AFTER_TAG for tag in kind.starts)
    return opens and last.rstrip().lower().endswith(kind.end)
