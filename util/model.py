"""The model a script's --weights and --lookup name: the weights, read once (a pipe works), and their lookup
table, found in this order:
- the file --lookup names, which must fit the weights and be the alphabet they hold, or else the table beside
  them, where there is one;
- the alphabet the weights hold: this repo's training saves it with them;
- the lookup table saved beside the weights (ShakespeareLookup.json in their folder, or in that of the file a
  link leads to): the shipped model's, and a run's from before weights held their alphabet.
Weights that hold none and have none beside them (the original project's .json, a file converted without
--lookup) are refused in one line that says to give --lookup: another table of the same size would give
nonsense without an error."""

import os

import data
from util import files, weights
from util.errors import UserError
from util.run_folder import LOOKUP


def load(path, lookup=None):
    """The weights in the file path and their lookup table (see above). Returns (params, chars); raises a
    UserError with a one-line reason."""
    params, meta = weights.load_params(path)
    V = params['dense.W'].shape[1]
    held, damage = _held_alphabet(meta, V)
    beside = None if held is not None else _beside(path)  # (weights that hold theirs need none)
    if lookup is not None:
        chars = data.load_lookup(lookup)
        if held is not None:  # the weights know their table: the one given must be it
            weights.check_alphabet(held, chars, path)
        elif beside is not None and not files.same_file(beside, lookup) and _read_beside(beside) != chars:
            raise UserError(
                f'the lookup table {lookup} is not the one saved beside weights file {path}, {beside}: leave '
                '--lookup out to read that one'
            )
        _check_size(path, V, chars, f'the lookup table {lookup}', 'give the one saved with these weights')
        return params, chars
    if held is not None:
        return params, held
    if damage:
        raise UserError(
            f'weights file {path}: the lookup table it holds is damaged ({damage}): give it with --lookup'
        )
    if beside is not None:
        chars = _read_beside(beside)
        _check_size(path, V, chars, f'the lookup table beside it, {beside},', 'give theirs with --lookup')
        return params, chars
    raise UserError(
        f'weights file {path} holds no lookup table (the original project\'s format has none, nor a file '
        'converted without --lookup), and none is beside it: give the one saved with it, --lookup FILE'
    )


def _beside(path):
    """The lookup table saved beside the weights file path (in its folder, or in the folder of the file a link
    leads to), or None."""
    for folder in dict.fromkeys((os.path.dirname(path), os.path.dirname(os.path.realpath(path)))):
        table = os.path.join(folder, LOOKUP)
        if os.path.isfile(table) and not files.same_file(table, path):
            return table
    return None


def _read_beside(table):
    """The lookup table in the file table, found beside the weights; a problem says where it was found."""
    try:
        return data.load_lookup(table)
    except data.CorpusError as e:
        raise UserError(
            f'{e} (it lies beside the weights): mend it, or give the right one with --lookup'
        ) from None


def _held_alphabet(meta, V):
    """(the alphabet that weights for V characters hold, or None; what is wrong with it where it is damaged,
    else None)."""
    if 'alphabet' not in meta:
        return None, None
    try:
        chars = data.check_alphabet(meta['alphabet'], 'it')
    except data.CorpusError as e:
        return None, str(e)
    if len(chars) != V:
        return None, f'it has {len(chars)} characters, the weights {V}'
    return chars, None


def _check_size(path, V, chars, table, fix):
    if len(chars) != V:
        raise UserError(f'weights file {path} is for {V} characters but {table} has {len(chars)}: {fix}')
