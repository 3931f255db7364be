"""The settings of a training run, in one table that both the command line (_training.py's options) and the
checkpoint (its metadata, checked on --resume) read: each setting's group, name, default, parser and help.
The defaults are the original's."""

import os

import data
from util import cli, precision
from util.errors import UserError

# (group, name, default, type): they are saved in the checkpoint; on --resume the saved ones hold, and only
# those in RESUMABLE may be changed on the command line. Each one's help is in HELP below.
SETTINGS = [
    ('data', 'corpus', None, cli.path),
    ('data', 'val_fraction', 0.1, cli.above_zero_below_one),
    ('data', 'val_chars', 0, cli.non_negative_int),
    ('model', 'layers', 2, cli.positive_int),
    ('model', 'hidden', 512, cli.positive_int),
    ('optimisation', 'chunks', 25, cli.positive_int),
    ('optimisation', 'window', 100, cli.positive_int),
    ('optimisation', 'lr', 0.001, cli.positive_float),
    ('optimisation', 'rho', 0.95, cli.above_zero_below_one),
    ('optimisation', 'eps', 1e-8, cli.positive_float),
    ('optimisation', 'clip', 0.0, cli.non_negative_float),
    ('optimisation', 'weight_decay', 0.0, cli.non_negative_float),
    ('optimisation', 'dropout', 0.0, cli.zero_to_below_one),
    ('optimisation', 'variational', False, cli.boolean),
    ('optimisation', 'weight_drop', 0.0, cli.zero_to_below_one),
    ('optimisation', 'lr_decay', 1.0, cli.above_zero_to_one),
    ('optimisation', 'decay_after', 0, cli.non_negative_int),
    ('optimisation', 'epochs', 10, cli.positive_int),
    ('optimisation', 'ema', 0.0, cli.zero_to_below_one),
    ('optimisation', 'dtype', 'float32', cli.choice('float32', 'float64')),
    ('optimisation', 'seed', 0, cli.non_negative_int),
    ('device', 'device', 'cpu', cli.choice('cpu', 'cuda')),
]
HELP = {
    'corpus': 'UTF-8 text file to train on (default: tiny Shakespeare, saves/shakespeare.txt)',
    'val_fraction': 'last fraction of the corpus kept for validation',
    'val_chars': 'validate on at most this many characters of the validation split, its first ones (0: all)',
    'layers': 'number of LSTM layers',
    'hidden': 'units per LSTM layer',
    'chunks': (
        'contiguous chunks trained side by side (the batch). On a GPU 128 or 512 are meant to train '
        'many times more characters a second (PyTorch\'s cuDNN LSTM trains 5 times as many at 128 as at '
        '25); each step then averages its gradient over more text, so an epoch has 5 or 20 times fewer '
        'steps and learns less: at 128 chunks use --lr 0.004 (four times the default, twice the 0.002 of '
        'the recipes), --ema 0.995, about 1.6 times the epochs and a later --decay-after (measured in '
        'RESULTS.md); on a CPU 25 chunks learn faster'
    ),
    'window': 'truncated-BPTT window in characters (k1 = k2)',
    'lr': 'RMSprop learning rate',
    'rho': 'RMSprop decay of the mean squared gradient',
    'eps': 'RMSprop epsilon',
    'clip': 'clip the gradient\'s global norm to this (0: off)',
    'weight_decay': 'decoupled weight decay of the weight matrices, p -= lr * decay * p per step (0: off)',
    'dropout': 'dropout on the inputs of layers 2.. and of the dense layer',
    'variational': (
        'dropout masks time-locked: one per chunk and window, the same at every step (Gal and Ghahramani, '
        '2016), not one per step: true or false'
    ),
    'weight_drop': 'DropConnect on the recurrent weights, one mask per window (as in AWD-LSTM)',
    'lr_decay': 'multiply the learning rate by this every epoch once the decay starts (--decay-after)',
    'decay_after': 'N: the first N + 1 epochs are at the full learning rate, the decay starts in epoch N + 2 '
    '(7: in epoch 9)',
    'epochs': 'train until this many epochs are done',
    'ema': 'validate, sample and save a moving average of the weights with this decay, e.g. 0.999 (0: off)',
    'dtype': 'floating-point type',
    'seed': 'seed of the initial weights and of the dropout masks',
    'device': (
        'train on the CPU or on an NVIDIA GPU through CuPy (a checkpoint moves between them with --resume); '
        'on a GPU larger --chunks train faster: see --chunks'
    ),
}
DEFAULTS = {name: default for _, name, default, _ in SETTINGS}
KINDS = {name: kind for _, name, _, kind in SETTINGS}  # each one's parser, which checks it
RESUMABLE = {
    'lr',
    'rho',
    'eps',
    'clip',
    'weight_decay',
    'dropout',
    'variational',
    'weight_drop',
    'lr_decay',
    'decay_after',
    'epochs',
    'ema',
    'val_chars',
    'corpus',
    'device',
}


def settings_from(args, saved=None):
    """The run's settings: the defaults overridden by the command line, or on resume the saved ones with the
    resumable options overridden. Refuses (one line) a change of a setting that defines the run."""
    given = {k: v for k, v in vars(args).items() if k in DEFAULTS and v is not None}
    if 'corpus' in given:
        given['corpus'] = stored_corpus(given['corpus'])
    if saved is None:
        return checked({**DEFAULTS, **given})
    fixed = {k: v for k, v in given.items() if k not in RESUMABLE and saved.get(k, DEFAULTS[k]) != v}
    if fixed:
        k, v = next(iter(fixed.items()))
        raise UserError(
            f'{cli.option_name(k)} {v} differs from the saved run\'s {saved.get(k)}: it cannot '
            'change on --resume (start a new run in another --out folder instead)'
        )
    return checked({**DEFAULTS, **saved, **{k: v for k, v in given.items() if k in RESUMABLE}}, resumed=True)


def checked(settings, resumed=False):
    """The settings, unless the run's dtype cannot hold one of them (0 or infinite there): then one line,
    which on --resume says that the saved settings (with the command line's changes) are the ones refused."""
    why = precision.problem(settings, lr_at, resumed)
    if why is not None:
        raise UserError(f'the saved run\'s settings with this command line\'s: {why}' if resumed else why)
    return settings


def lr_at(settings, epoch):
    """The learning rate of an epoch (counted from 0): lr up to epoch decay_after, then x lr_decay per epoch
    (decay_after 7: epochs 0 to 7 at lr, epoch 8, the ninth, at lr x lr_decay)."""
    return settings['lr'] * settings['lr_decay'] ** max(0, epoch - settings['decay_after'])


def stored_corpus(path):
    """How a checkpoint names its corpus, so that a clone anywhere resumes: None for the shipped tiny
    Shakespeare, a path relative to the repo for a file inside it, else the absolute path."""
    if path is None:
        return None
    path = os.path.abspath(path)
    if (
        os.path.exists(path)
        and os.path.exists(data.TINY_SHAKESPEARE_PATH)
        and os.path.samefile(path, data.TINY_SHAKESPEARE_PATH)
    ):
        return None
    inside = os.path.relpath(path, cli.ROOT)
    return path if inside.startswith('..') else inside
