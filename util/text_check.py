"""Whether a file is UTF-8 text, from its first bytes: what is not (UTF-16 or UTF-32 with or without a
byte-order mark, another encoding, binary data, NUL bytes) is one line that names it and the command that
converts it."""

import codecs

from util.errors import CorpusError


def check_text_start(block, path, what):
    """Refuse a text whose first bytes are UTF-16 or UTF-32, no UTF-8 text (/dev/urandom), or only NUL bytes
    (/dev/zero, a file of zeros): a stream's first block as it comes, a file's as data._text_blocks reads
    it."""
    check_not_utf16_or_32(block, path, what)
    try:
        codecs.getincrementaldecoder('utf-8')('strict').decode(block)
    except UnicodeDecodeError as e:
        raise not_utf8(path, what, e.start, block) from None
    if not block.strip(b'\0'):
        raise CorpusError(f'{what} {path} starts with NUL bytes only: it is not a text')


UTF16_MARKS = (b'\xff\xfe', b'\xfe\xff')  # UTF-16's byte-order marks, little- and big-endian


def not_utf8(path, what, at, start):
    """The error for a file that is not UTF-8 text: at, the offset of its first bad byte; start, its first
    bytes (a UTF-16 file's byte-order mark is named)."""
    if start[:2] in UTF16_MARKS:
        how = 'it is UTF-16 (it starts with that byte-order mark): convert it, e.g. iconv -f UTF-16 -t UTF-8'
    else:
        how = (
            f'convert it to UTF-8 first (file -i {path} guesses its encoding, iconv -f THAT -t UTF-8 '
            'converts)'
        )
    return CorpusError(f'{what} {path} is not UTF-8 text (bad byte at offset {at}): {how}')


def check_not_utf16_or_32(start, path, what):
    """Refuse a file whose first bytes are UTF-32 (_check_not_utf32), or UTF-16 without a byte-order mark
    that also reads as UTF-8 (marked, not_utf8 names it, as it is no UTF-8 at all). In UTF-16, one
    character of a European, Indian or Middle-Eastern script is a byte of its own and a byte below 32 (NUL
    for ASCII, a space or a newline; 4 for Cyrillic, 9 for Devanagari), so every other byte is a control
    byte, and some are NUL, which no UTF-8 text has (a line of one letter each has newlines every other
    byte, but no NUL). (Chinese or Japanese in UTF-16 is no UTF-8: not_utf8 refuses it.)"""
    even, odd = start[0:4096:2], start[1:4096:2]
    if len(odd) < 8:  # too short to tell
        return
    _check_not_utf32(start[:4096], path, what)  # (its mark begins with UTF-16's)
    if start[:2] in UTF16_MARKS:  # marked: not_utf8 names it
        return
    control = lambda half: sum(byte < 32 for byte in half) / len(half)  # noqa: E731
    for order, high, low in (('LE', odd, even), ('BE', even, odd)):
        if control(high) > 0.9 and high.count(0) >= max(1, len(high) // 50) and control(low) < 0.5:
            raise CorpusError(
                f'{what} {path} looks like UTF-16 without a byte-order mark (every other byte is a control '
                f'byte): convert it, e.g. iconv -f UTF-16{order} -t UTF-8'
            )


def _check_not_utf32(start, path, what):
    """Refuse UTF-32 (with or without its mark): of every four bytes, the two high ones are NUL for every
    character of Unicode's first plane, and the lowest is not."""
    quads = [start[k::4] for k in range(4)]
    nul = lambda part: part.count(0) / max(1, len(part))  # noqa: E731
    for order, high, low in (('LE', (2, 3), 0), ('BE', (0, 1), 3)):
        if all(nul(quads[k]) > 0.95 for k in high) and nul(quads[low]) < 0.5:
            raise CorpusError(
                f'{what} {path} looks like UTF-32 (of every four bytes, two or three NUL): convert it, e.g. '
                f'iconv -f UTF-32{order} -t UTF-8'
            )
