"""Score a saved model: mean cross-entropy in nats and bits per character.

    python _evaluate.py                         # the validation split (last 10%) of tiny Shakespeare
    python _evaluate.py --text some_file.txt    # any UTF-8 text
    python _evaluate.py --blocks 256            # random blocks of 256, each from a zero state (as nanoGPT)

The text is read as one continuous stream (batch 1) with the hidden state carried from character to character,
starting from zeros; the score is the mean of -ln p(next character) over every character but the first. With
--blocks T, random blocks of T + 1 characters are read instead, each from zeros, and the score is the mean
over their last T characters (nanoGPT's measure: a character sees only the characters before it in its block).
"""

import util.startup  # noqa: F401  first: Ctrl-C while the script starts is one line (util/startup.py)
from util import cli, devices, memory, model, options, precision
import os
import time

import numpy as np

from explorer import analysis
import data
import lstm
from util.errors import UserError
from util.progress import Progress
from extras import ngram

# Chosen on the first half of tiny Shakespeare's validation split (RESULTS.md); reported on both halves.
DYNAMIC_LR, DYNAMIC_WINDOW = 0.2, 50
VAL_FRACTION = 0.1
NUM_BLOCKS = 8192  # blocks vary by about 0.27 nats/char: 0.27 / sqrt(8192)
# The options of one mode (their defaults, set once check_modes has seen which were given).
DEFAULTS = {
    'val_fraction': VAL_FRACTION,
    'dynamic_lr': DYNAMIC_LR,
    'dynamic_window': DYNAMIC_WINDOW,
    'dynamic_decay': 0.0,
    'num_blocks': NUM_BLOCKS,
    'seed': 0,
}
MODES = (  # a mode, whether it is on, and the options that go with it
    ('--dynamic', lambda args: args.dynamic, ('dynamic_lr', 'dynamic_window', 'dynamic_decay')),
    ('--blocks T', lambda args: args.blocks is not None, ('num_blocks', 'seed')),
)


def _add_data_options(g):
    """Which text is scored: a validation split, or a whole file."""
    g.add_argument(
        '--corpus',
        type=cli.path,
        help='corpus whose validation split is scored (default: tiny Shakespeare, saves/shakespeare.txt)',
    )
    g.add_argument(
        '--val-fraction',
        type=cli.above_zero_below_one,
        help=f'the validation split is this last fraction of the corpus (default {VAL_FRACTION})',
    )
    g.add_argument(
        '--text',
        type=cli.path,
        help='score this whole UTF-8 file instead of a validation split (default: none)',
    )


def _add_dynamic_options(g):
    """Dynamic evaluation: a gradient step after each window is scored."""
    g.add_argument(
        '--dynamic',
        action='store_true',
        help='score with dynamic evaluation (Krause et al., 2018): '
        'each window is scored, then the model takes one gradient step on it',
    )
    g.add_argument(
        '--dynamic-lr',
        type=cli.positive_float,
        help=f'learning rate of those steps, plain gradient descent (default {DYNAMIC_LR})',
    )
    g.add_argument(
        '--dynamic-window',
        type=cli.positive_int,
        help=f'characters per window: per step (default {DYNAMIC_WINDOW})',
    )
    g.add_argument(
        '--dynamic-decay',
        type=cli.zero_to_below_one,
        help='pull the weights back towards the original ones by this fraction per step '
        f'(default {DEFAULTS["dynamic_decay"]})',
    )


def _add_block_options(g):
    """Random blocks, each from a zero state: nanoGPT's measure."""
    g.add_argument(
        '--blocks',
        type=cli.positive_int,
        metavar='T',
        help='instead of one stream, score random blocks '
        'of T characters (nanoGPT: 256), each read from a zero state, and average over every position '
        'of every block',
    )
    g.add_argument(
        '--num-blocks',
        type=cli.positive_int,
        help=f'with --blocks: how many blocks, drawn uniformly with replacement (default {NUM_BLOCKS}: '
        'a standard error of about 0.003 nats/char)',
    )
    g.add_argument(
        '--seed',
        type=cli.non_negative_int,
        help=f'with --blocks: the seed that draws the blocks (default {DEFAULTS["seed"]})',
    )


def _add_ngram_options(g):
    """The n-gram baseline, scored on the same text."""
    g.add_argument(
        '--ngram',
        type=cli.positive_int,
        metavar='N',
        help='instead of the LSTM, score a character '
        'N-gram model (interpolated Witten-Bell) counted on the training split (N - 1 characters of '
        'context) over the corpus\'s own characters, on the CPU; no model is read, so --weights, --lookup '
        'and --device go with --compare only (default: none, the LSTM)',
    )
    g.add_argument(
        '--compare',
        action='store_true',
        help='with --ngram: the LSTM and the n-gram side by side, by '
        'kind of character and by distance from the last newline; the n-gram then spreads its '
        'probability over the model\'s alphabet, as the LSTM does (its score may differ from --ngram '
        'alone\'s in the last digits)',
    )


def parse_args(argv):
    p = cli.Parser(description='Print the loss of a saved model on the validation split or on any text file.')
    g = p.add_argument_group('data')
    _add_data_options(g)
    g = p.add_argument_group('dynamic evaluation (the weights adapt to the text as it is read)')
    _add_dynamic_options(g)
    g = p.add_argument_group('random blocks (the score nanoGPT reports)')
    _add_block_options(g)
    g = p.add_argument_group('the n-gram baseline')
    _add_ngram_options(g)
    cli.add_model_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    check_modes(args)
    args.device = cli.open_device(args.device)  # the ops: None for the CPU
    if args.blocks is not None:
        memory.check_fits(16 * args.num_blocks, f'--num-blocks {args.num_blocks}')  # starts and losses
    chars = params = None  # the n-gram alone counts the corpus's own characters, and needs no model
    if not args.ngram or args.compare:
        params, chars = model.load(args.weights, args.lookup)
    train_ids = None
    if args.text is not None:
        ids, _ = data.read_corpus(args.text, chars, 'text')
        what = args.text
    else:
        path = args.corpus if args.corpus is not None else data.tiny_shakespeare()
        try:
            ids, chars = data.read_corpus(path, chars)
        except data.CorpusError as e:
            if args.corpus is not None or chars is None:
                raise
            raise UserError(
                f'{e} (tiny Shakespeare is the text read by default: give this model\'s own with '
                '--corpus or --text)'
            ) from None
        train_ids, ids = data.split(ids, args.val_fraction)
        what = f'the validation split of {path} (last {args.val_fraction:g})'
    if len(ids) < 2:
        raise UserError(
            f'{what} has fewer than 2 characters: there is nothing to predict; give a longer text'
        )
    if args.blocks is not None and args.blocks > len(ids) - 1:
        raise UserError(
            f'{what} has {cli.count(len(ids), "character")}: a block of --blocks {args.blocks} needs '
            f'{args.blocks + 1:,} (give --blocks {len(ids) - 1} or less)'
        )
    check_sizes(args, params, ids, train_ids)
    if args.ngram:
        return score_ngram(args, params, chars, train_ids, ids, what)
    if args.blocks is not None:
        return score_blocks(args, params, ids, what)
    if args.dynamic:
        return score_dynamic(args, params, ids, what)
    t = time.time()
    with Progress('scoring', len(ids) - 1) as progress:
        loss = lstm.evaluate(params, ids, progress=progress, device=args.device)
    print(f'{what}: {cli.count(len(ids) - 1, "character")} predicted in {time.time() - t:.0f} s')
    print(f'loss {loss:.4f} nats/char = {loss / np.log(2):.4f} bits/char')
    return 0


def check_modes(args):
    """Refuse options that do not go together, before any work."""
    if args.text is not None and args.corpus is not None:
        raise UserError(
            'give either --text (score a whole file) or --corpus (score its validation split), not both'
        )
    if args.ngram and (args.text is not None or args.dynamic):
        raise UserError(
            '--ngram scores the validation split of --corpus, counted on its training split: it does not go '
            'with --text or --dynamic'
        )
    if args.compare and not args.ngram:
        raise UserError('--compare goes with --ngram N')
    if args.ngram and not args.compare:
        options.refuse_unused(
            named_model(args),
            'the LSTM, which --ngram N alone does not run (it counts on the CPU)',
            instead='add --compare to score the LSTM beside the n-gram model',
        )
    if args.blocks is not None and (args.dynamic or args.ngram):
        raise UserError(
            '--blocks scores the LSTM on blocks read from a zero state: it does not go with --dynamic or '
            '--ngram'
        )
    for mode, on, names in MODES:
        if not on(args):
            options.refuse_unused(options.given(args, names), mode)
    if args.text is not None and args.val_fraction is not None:
        raise UserError('--val-fraction splits --corpus: with --text the whole file is scored')
    options.fill_defaults(args, DEFAULTS)


def named_model(args):
    """The options that name a model other than the shipped one, or a GPU to run it on."""
    named = ['--weights'] * (os.path.abspath(args.weights) != os.path.abspath(cli.MODEL_DEFAULTS['weights']))
    return named + ['--lookup'] * (args.lookup is not None) + ['--device'] * (args.device != 'cpu')


def check_sizes(args, params, ids, train_ids):
    """Refuse, before the scoring, sizes that no machine's memory holds."""
    if args.ngram:  # per order: its counts, kept; numbers for every position
        memory.check_fits(
            32 * args.ngram * len(train_ids) + 64 * (len(train_ids) + len(ids)), f'--ngram {args.ngram}'
        )
        return
    V, H, layers = lstm.sizes(params)
    if args.blocks is not None:  # blocks of T run BLOCK_BATCH at a time, logits in float64
        N = lstm.BLOCK_BATCH
        devices.check_memory(
            args.device,
            memory.model_bytes(V, H, layers, N, args.blocks) + N * args.blocks * V * 24,
            f'--blocks {args.blocks}',
        )
    elif args.dynamic:
        T = min(args.dynamic_window, len(ids))
        needed = memory.model_bytes(V, H, layers, 1, T, training=True)
        devices.check_memory(args.device, needed, f'--dynamic-window {T}')
        dtype = params['dense.W'].dtype
        held = precision.as_held(args.dynamic_lr, dtype)
        if not 0 < held < np.inf:
            raise UserError(
                f'--dynamic-lr {args.dynamic_lr:g} is {held:g} in the '
                f'model\'s {dtype} ({precision.held(dtype)}): give a value in that range'
            )


def score_blocks(args, params, ids, what):
    """The mean loss over random blocks, each read from a zero state, as nanoGPT measures its score."""
    T, n = args.blocks, args.num_blocks
    t = time.time()
    starts = np.random.default_rng(args.seed).integers(0, len(ids) - T, size=n)  # block: ids[s:s + T + 1]
    with Progress(f'scoring blocks of {T}', n, 'blocks') as progress:
        losses = lstm.block_losses(params, ids, T, starts, progress=progress, device=args.device)
    loss = losses.mean()
    error = (
        f'standard error {losses.std(ddof=1) / np.sqrt(n):.4f} nats/char'
        if n > 1
        else 'one block: no standard error'
    )
    print(
        f'{what}: {cli.count(n, "random block")} of {cli.count(T, "character")} (seed {args.seed}), each '
        f'read from a zero state: {cli.count(n * T, "character")} predicted in {time.time() - t:.0f} s'
    )
    print(f'loss {loss:.4f} nats/char = {loss / np.log(2):.4f} bits/char ({error})')
    print(
        'the mean over every position of every block, each character predicted from '
        + (f'the 0 to {T - 1} before it in its block' if T > 1 else 'a zero state alone')
        + ' (as nanoGPT scores); the whole-split score carries the state through the text instead'
    )
    return 0


def score_dynamic(args, params, ids, what):
    """The loss with dynamic evaluation, on the first half, the second half and the whole of the text."""
    t = time.time()
    with Progress('scoring with dynamic evaluation', len(ids) - 1) as progress, np.errstate(all='ignore'):
        sums, counts = lstm.evaluate_dynamic(
            params,
            ids,
            lr=args.dynamic_lr,
            window=args.dynamic_window,
            decay=args.dynamic_decay,
            threads=1,
            progress=progress,
            device=args.device,
        )
    if not np.isfinite(sums).all():
        at = int(np.cumsum(counts)[np.argmin(np.isfinite(sums))])
        raise UserError(
            f'dynamic evaluation diverged: the loss became non-finite by character {at:,}, the weights grown '
            f'past what {params["dense.W"].dtype} holds: give a smaller --dynamic-lr than {args.dynamic_lr:g}'
        )
    print(
        f'{what}: {cli.count(len(ids) - 1, "character")} predicted in {time.time() - t:.0f} s, with dynamic '
        'evaluation '
        f'(lr {args.dynamic_lr:g}, windows of {args.dynamic_window}, decay {args.dynamic_decay:g})'
    )
    half = np.searchsorted(np.cumsum(counts), counts.sum() / 2)  # the window holding the middle character
    parts = (
        [('first half', slice(0, half + 1)), ('second half', slice(half + 1, None))]
        if len(counts) > 1
        else []
    )
    for name, part in parts + [('whole', slice(None))]:  # halves of windows: one window has none
        if counts[part].sum():
            loss = sums[part].sum() / counts[part].sum()
            print(
                f'{name:<12} loss {loss:.4f} nats/char = {loss / np.log(2):.4f} bits/char '
                f'({cli.count(counts[part].sum(), "character")})'
            )
    return 0


def score_ngram(args, params, chars, train_ids, ids, what):
    """The n-gram's loss on the validation split; with --compare, beside the LSTM's, by kind of character."""
    t = time.time()
    with Progress(f'counting and scoring the {args.ngram}-gram model', args.ngram, 'orders') as progress:
        ng = ngram.NGram(args.ngram, len(chars)).fit_score(train_ids, ids, progress)
    print(
        f'{what}: {cli.count(len(ids) - 1, "character")} predicted in {time.time() - t:.0f} s by a '
        f'{args.ngram}-gram '
        f'model (interpolated Witten-Bell, counted on the first {1 - args.val_fraction:g} of the corpus)'
    )
    print(f'loss {ng.mean():.4f} nats/char = {ng.mean() / np.log(2):.4f} bits/char')
    if not args.compare:
        return 0
    with Progress('scoring with the LSTM', len(ids) - 1) as progress:
        nn = lstm.char_losses(params, ids, progress=progress, device=args.device)
    print(f'the LSTM on the same characters: {nn.mean():.4f} nats/char')
    kinds, since = analysis.char_kinds(data.decode(ids, chars))
    rows = [(name, mask[1:]) for name, mask in kinds.items()]
    edges = [1, 10, 20, 30, 40, 50, 60]  # characters from the last newline (0: 'after a newline')
    for lo, hi in zip(edges, edges[1:] + [None]):
        label = f'{lo} to {hi - 1} after a newline' if hi else f'{lo} or more after a newline'
        rows.append((label, (since[1:] >= lo) & (since[1:] < (hi or 1 << 62))))
    print(f'{"characters":<28} {"count":>8} {"LSTM":>7} {f"{args.ngram}-gram":>7} {"difference":>10}')
    for name, mask in rows:
        if mask.any():
            a, b = nn[mask].mean(), ng[mask].mean()
            print(f'{name:<28} {int(mask.sum()):>8,} {a:7.3f} {b:7.3f} {a - b:+10.3f}')
    return 0


if __name__ == '__main__':
    cli.run(main)
