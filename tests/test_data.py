"""The corpus: lookup table, encoding, split, chunks and windows."""

import os

import numpy as np
import pytest

import data
import lstm
from util.weights import save_params
from helpers import assert_one_line_error, run_here, tiny_corpus
from util import memory, text_check


def test_lookup_is_sorted_and_encoding_round_trips():
    text = 'hello, wörld!\nFIRST Citizen: €'
    chars = data.build_lookup(text)
    assert chars == sorted(set(text))
    ids = data.encode(text, chars)
    assert ids.dtype == np.uint8
    assert data.decode(ids, chars) == text


def test_unknown_characters_are_named():
    with pytest.raises(data.CorpusError, match="2 characters not in the lookup table: 'x', 'é'"):
        data.encode('abxé', ['a', 'b'])


def test_read_corpus_in_blocks_equals_reading_whole(tmp_path, monkeypatch):
    text = 'To be, or not to be: ça — €uro\n' * 200
    path = tmp_path / 't.txt'
    path.write_text(text, encoding='utf-8')
    monkeypatch.setattr(data, 'BLOCK', 7)  # multi-byte characters cut across blocks
    ids, chars = data.read_corpus(path)
    assert chars == sorted(set(text))
    assert data.decode(ids, chars) == text


def test_split_chunks_and_windows():
    ids = np.arange(1000) % 50
    train, val = data.split(ids, 0.1)
    assert len(train) == 900 and len(val) == 100
    chunked = data.chunks(train, 4)  # 4 chunks of 225
    assert chunked.shape == (4, 225)
    assert data.n_windows(225, 10) == 22
    x, y = data.window(chunked, 10, 3)
    assert x.shape == y.shape == (10, 4)  # time-major
    np.testing.assert_array_equal(x[:, 1], train[225 + 30 : 225 + 40])
    np.testing.assert_array_equal(y[:, 1], train[225 + 31 : 225 + 41])


def test_tiny_shakespeare_split_sizes():
    ids = np.zeros(1115394, dtype=np.uint8)
    train, val = data.split(ids, 0.1)
    assert (len(train), len(val)) == (1003854, 111540)


def test_the_shipped_corpus_is_tiny_shakespeare():
    path = data.tiny_shakespeare()
    assert os.path.samefile(path, os.path.join(os.path.dirname(__file__), '..', 'saves', 'shakespeare.txt'))
    assert data.sha256_file(path) == data.TINY_SHAKESPEARE_SHA256
    ids, chars = data.read_corpus(path)
    assert len(ids) == data.TINY_SHAKESPEARE_CHARS and len(chars) == 65


def test_download_is_checked_by_its_sha256(tmp_path):
    """The download path, run against local file:// URLs (no network in tests)."""
    shipped = data.TINY_SHAKESPEARE_PATH
    bad = tmp_path / 'bad.txt'
    bad.write_text('not Shakespeare', encoding='utf-8')
    with pytest.raises(data.CorpusError, match='SHA-256'):
        data.tiny_shakespeare(tmp_path / 'dl' / 'a.txt', url=bad.as_uri())
    assert not (tmp_path / 'dl').exists()  # a bad download is not kept, nor the folder made for it
    with pytest.raises(data.CorpusError, match='is missing, and it could not be downloaded'):
        data.tiny_shakespeare(tmp_path / 'dl' / 'a.txt', url=(tmp_path / 'missing.txt').as_uri())
    path = data.tiny_shakespeare(tmp_path / 'dl' / 'a.txt', url='file://' + os.path.abspath(shipped))
    assert data.sha256_file(path) == data.TINY_SHAKESPEARE_SHA256
    assert data.tiny_shakespeare(path, url=bad.as_uri()) == path  # present and checked: no second download
    # a damaged copy: kept while no good copy can be had, replaced by a good download
    (tmp_path / 'dl' / 'a.txt').write_text('damaged', encoding='utf-8')
    with pytest.raises(data.CorpusError, match='is damaged'):
        data.tiny_shakespeare(path, url=bad.as_uri())
    assert (tmp_path / 'dl' / 'a.txt').read_text() == 'damaged'
    assert data.tiny_shakespeare(path, url='file://' + os.path.abspath(shipped)) == path
    assert data.sha256_file(path) == data.TINY_SHAKESPEARE_SHA256


ENGLISH = 'to be or not to be, that is the question\n'
RUSSIAN = 'Быть или не быть, вот в чём вопрос.\n'
HINDI = 'होना या न होना, यही प्रश्न है।\n'


@pytest.mark.parametrize(
    'text, encoding, words',
    [
        (ENGLISH, 'utf-16', ['is not UTF-8 text', 'it is UTF-16', 'iconv -f UTF-16 -t UTF-8']),
        (ENGLISH, 'utf-16-le', ['UTF-16 without a byte-order mark', 'iconv -f UTF-16LE -t UTF-8']),
        (ENGLISH, 'utf-16-be', ['UTF-16 without a byte-order mark', 'iconv -f UTF-16BE -t UTF-8']),
        (ENGLISH, 'utf-32-le', ['looks like UTF-32', 'iconv -f UTF-32LE -t UTF-8']),
        (
            ENGLISH,
            'utf-32',
            ['looks like UTF-32', 'iconv -f UTF-32LE -t UTF-8'],
        ),  # its mark begins as UTF-16's
        (RUSSIAN, 'utf-32-be', ['looks like UTF-32', 'iconv -f UTF-32BE -t UTF-8']),
        (
            RUSSIAN,
            'utf-16-le',
            ['UTF-16 without a byte-order mark', 'iconv -f UTF-16LE -t UTF-8'],
        ),  # valid UTF-8
        (HINDI, 'utf-16-be', ['UTF-16 without a byte-order mark', 'iconv -f UTF-16BE -t UTF-8']),
        ('生存还是毁灭\n', 'utf-16-le', ['is not UTF-8 text', 'file -i', 'iconv -f THAT -t UTF-8']),
        ('Café “quoted”\n', 'cp1252', ['is not UTF-8 text', 'file -i', 'iconv -f THAT -t UTF-8']),
    ],
)
def test_a_text_in_another_encoding_is_named_as_such_and_the_fix_given(tmp_path, text, encoding, words):
    (tmp_path / 'u16.txt').write_bytes((text * 4).encode(encoding))
    r = run_here('_training.py', '--corpus', tmp_path / 'u16.txt', '--out', tmp_path / 'run')
    assert_one_line_error(r, *words)
    assert not (tmp_path / 'run').exists()


def test_a_text_in_russian_or_hindi_is_no_utf16():
    for text in (RUSSIAN, HINDI, ENGLISH, '\n' * 100, 'a\nb\nc\n', '1\n2\n3\n', 'x\ty\tz\n', '\na\nb\nc'):
        text_check.check_not_utf16_or_32((text * 40).encode('utf-8'), 't.txt', 'corpus')  # raises nothing


def test_a_corpus_larger_than_the_machines_memory_is_one_line_before_any_reading(tmp_path, monkeypatch):
    big = tmp_path / 'big.txt'
    if memory.machine_bytes() is None:
        pytest.skip('this system does not say how much memory it has')
    with open(big, 'wb') as f:  # sparse: no disk is used
        f.write(b'to be or not to be\n')
        try:
            f.truncate(memory.machine_bytes() + 1)
        except OSError as e:  # a file system with a size cap
            pytest.skip(f'no file of that size here: {e}')
    assert_one_line_error(
        run_here('_evaluate.py', '--ngram', 2, '--corpus', big), 'big.txt', 'use a part of it'
    )


def test_memory_that_runs_out_beyond_the_checks_is_one_line(tmp_path, monkeypatch):
    """Where the machine has the memory but the process may not take it (ulimit -v, other programs)."""
    (tmp_path / 'c.txt').write_text(tiny_corpus(3000), encoding='utf-8')

    def no_memory(*args, **kwargs):
        raise MemoryError('Unable to allocate 3.42 GiB for an array with shape (3670016000,)')

    monkeypatch.setattr(data, 'read_corpus', no_memory)
    r = run_here('_training.py', '--corpus', tmp_path / 'c.txt', '--out', tmp_path / 'run', '--hidden', 8)
    assert_one_line_error(r, 'out of memory (Unable to allocate 3.42 GiB', 'use smaller inputs or sizes')
    assert not (tmp_path / 'run').exists()


def test_characters_a_model_lacks_are_named_with_what_they_usually_mean(tmp_path):
    chars = ['\n', ' ', 'a', 'b']
    params = lstm.init_params(len(chars), 4, 1, rng=np.random.default_rng(0))
    save_params(tmp_path / 'w.npz', params)
    data.save_lookup(tmp_path / 'l.json', chars)
    model = ['--weights', tmp_path / 'w.npz', '--lookup', tmp_path / 'l.json']
    for text, words in (
        ('ab\r\nba\r\n', ['1 character not', 'U+000D (CARRIAGE RETURN)', 'dos2unix']),
        ('\ufeffab\nba\n', ['U+FEFF', 'byte-order mark']),
        (
            'a\tb\x01\x7f\n',
            ['3 characters not', 'U+0009 (TAB)', 'U+0001 (a control character)', 'U+007F (DELETE)'],
        ),
    ):
        (tmp_path / 't.txt').write_text(text, encoding='utf-8', newline='')
        assert_one_line_error(run_here('_evaluate.py', *model, '--text', tmp_path / 't.txt'), *words)
    # with no text given, the default one is named, and how to give the model's own
    assert_one_line_error(
        run_here('_evaluate.py', *model), 'tiny Shakespeare is the text read by default', '--corpus'
    )
    assert_one_line_error(run_here('_visualize.py', *model, '--find'), 'the text read by default', '--text')


@pytest.mark.parametrize(
    'raw, at',
    [(b'a' * 5000 + b'\xc3', 5000), (b'a' * 70000 + b'\xff' + b'b', 70000), (b'a' * 65535 + b'\xc3(', 65535)],
)
def test_the_first_bad_byte_is_named_where_it_is(tmp_path, raw, at):
    """At the end of the file, in a later block, and in a character cut between two blocks."""
    (tmp_path / 't.txt').write_bytes(raw)
    with pytest.raises(data.CorpusError, match=f'bad byte at offset {at}\\)'):
        data.read_corpus(tmp_path / 't.txt')


def test_tiny_shakespeares_fingerprint_is_its_texts():
    """The fingerprint a run that names no corpus (the shipped model's, saved before checkpoints held one)
    is checked against on --resume."""
    ids, _ = data.read_corpus(data.TINY_SHAKESPEARE_PATH)
    assert data.fingerprint(ids) == data.TINY_SHAKESPEARE_FINGERPRINT


def test_a_file_of_nul_bytes_is_no_text(tmp_path):
    (tmp_path / 'zeros.txt').write_bytes(bytes(100_000))
    with pytest.raises(data.CorpusError, match='starts with NUL bytes only: it is not a text'):
        data.read_corpus(tmp_path / 'zeros.txt')
