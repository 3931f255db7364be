"""Train the character-level LSTM with truncated backpropagation through time, or resume a saved run.

    python _training.py --corpus ../shared/data/tinyshakespeare.txt --out checkpoints
    python _training.py --out checkpoints --resume

The run folder (--out) receives, at every epoch, on Ctrl-C / SIGTERM and every --checkpoint-minutes:
  ShakespeareNet.npz        the latest weights (the format _sample.py reads)
  ShakespeareOptimizer.npz  the full training checkpoint: weights, RMSprop state, carried hidden state, position
                            in the data, random state and settings; --resume continues from it exactly
  ShakespeareLookup.json    the lookup table
  training_log.csv          one line per epoch (and per interruption)
  best/                     the same files for the epoch with the lowest validation loss so far
Every file is written to a temporary file and renamed into place. The shipped model in saves/ is only written
when --out saves is given.
"""
import csv
import os
import signal
import sys
import time

import numpy as np

import cli
import data
import lstm
from optimizer import RMSprop, update_average

WEIGHTS, CHECKPOINT, LOOKUP, LOG = 'ShakespeareNet.npz', 'ShakespeareOptimizer.npz', 'ShakespeareLookup.json', \
    'training_log.csv'

# The original's settings. On --resume, the run's saved settings are used, and the options in RESUMABLE may be
# changed on the command line; the others define the model and the data and cannot change mid-run.
DEFAULTS = dict(
    corpus=None,            # data: UTF-8 text file; None = tiny Shakespeare, downloaded on first use
    val_fraction=0.1,       # data: the last fraction of the corpus validates
    val_chars=0,            # data: validate on at most this many characters of that split (0: all of it)
    layers=2,               # model: LSTM layers
    hidden=512,             # model: units per LSTM layer
    chunks=25,              # optimisation: contiguous chunks trained side by side (the batch)
    window=100,             # optimisation: truncated-BPTT window (k1 = k2)
    lr=0.001,               # optimisation: RMSprop learning rate
    rho=0.95,               # optimisation: RMSprop decay of the mean squared gradient
    eps=1e-8,               # optimisation: RMSprop epsilon
    clip=0.0,               # optimisation: clip the gradient's global norm to this (0: off)
    weight_decay=0.0,       # optimisation: decoupled weight decay of the weight matrices (0: off)
    dropout=0.0,            # optimisation: dropout on the inputs of layers 2.. and of the dense layer (0: off)
    weight_drop=0.0,        # optimisation: DropConnect on the recurrent weights, one mask per window (0: off)
    lr_decay=1.0,           # optimisation: multiply the learning rate by this every epoch after --decay-after
    decay_after=0,          # optimisation: epochs at the full learning rate before the decay starts
    epochs=10,              # optimisation: train until this many epochs are complete
    ema=0.0,                # optimisation: validate and save a moving average of the weights with this decay (0: off)
    dtype='float32',        # optimisation: float32 or float64
    seed=0,                 # optimisation: seed of the initial weights and of the dropout masks
)
RESUMABLE = {'lr', 'rho', 'eps', 'clip', 'weight_decay', 'dropout', 'weight_drop', 'lr_decay', 'decay_after',
             'epochs', 'ema', 'val_chars'}


def parse_args(argv):
    p = cli.Parser(description='Train the character-level LSTM (truncated BPTT, RMSprop), or resume a run.')
    g = p.add_argument_group('data')
    g.add_argument('--corpus', help='UTF-8 text file to train on (default: tiny Shakespeare, downloaded into '
                                    'data/ on first use and checked by SHA-256)')
    g.add_argument('--val-fraction', type=cli.open_fraction, help='last fraction of the corpus kept for '
                                                                 'validation (default 0.1)')
    g.add_argument('--val-chars', type=cli.non_negative_int, help='validate on at most this many characters '
                   'of the validation split, its first ones (default 0: all; for a large corpus, where reading '
                   'the split one character at a time takes long)')
    g = p.add_argument_group('model')
    g.add_argument('--layers', type=cli.positive_int, help='number of LSTM layers (default 2)')
    g.add_argument('--hidden', type=cli.positive_int, help='units per LSTM layer (default 512)')
    g = p.add_argument_group('optimisation')
    g.add_argument('--chunks', type=cli.positive_int, help='contiguous chunks trained side by side (default 25)')
    g.add_argument('--window', type=cli.positive_int, help='truncated-BPTT window in characters (default 100)')
    g.add_argument('--lr', type=cli.positive_float, help='RMSprop learning rate (default 0.001)')
    g.add_argument('--rho', type=cli.open_fraction, help='RMSprop decay rate (default 0.95)')
    g.add_argument('--eps', type=cli.positive_float, help='RMSprop epsilon (default 1e-8)')
    g.add_argument('--clip', type=cli.non_negative_float, help='clip the gradient global norm (default 0: off)')
    g.add_argument('--weight-decay', type=cli.non_negative_float, help='decoupled weight decay of the weight '
                   'matrices, per step: p -= lr * decay * p (default 0: off)')
    g.add_argument('--dropout', type=cli.fraction, help='dropout probability between layers (default 0: off)')
    g.add_argument('--weight-drop', type=cli.fraction, help='probability of dropping each recurrent weight, '
                   'one mask per window (DropConnect as in AWD-LSTM; default 0: off)')
    g.add_argument('--lr-decay', type=cli.positive_float, help='learning-rate factor per epoch (default 1)')
    g.add_argument('--decay-after', type=cli.non_negative_int, help='epochs before the decay starts (default 0)')
    g.add_argument('--ema', type=cli.fraction, help='keep an exponential moving average of the weights with this '
                   'decay (e.g. 0.999), and validate, sample and save it (default 0: off)')
    g.add_argument('--epochs', type=cli.positive_int, help='train until this many epochs are done (default 10)')
    g.add_argument('--dtype', choices=['float32', 'float64'], help='floating-point type (default float32)')
    g.add_argument('--seed', type=int, help='random seed of weights and dropout (default 0)')
    g.add_argument('--threads', type=cli.positive_int, help='threads: 2 or more run the layers as a pipeline, '
                   'each on its own thread (default: 2 on a multi-core machine, 1 if OPENBLAS_NUM_THREADS=1)')
    g.add_argument('--max-steps', type=cli.non_negative_int, help='stop (with a checkpoint) once this many steps '
                   'are done in all, e.g. for a short trial; 0 saves the untrained model')
    g = p.add_argument_group('output')
    g.add_argument('--out', default='checkpoints', help='run folder for checkpoints and the log (default '
                                                         'checkpoints; saves/ is only written if named here)')
    g.add_argument('--resume', action='store_true', help='continue the run saved in --out exactly where it '
                                                         'stopped')
    g.add_argument('--checkpoint-minutes', type=cli.non_negative_float, default=10.0,
                   help='also checkpoint every this many minutes within an epoch (default 10; 0: only per epoch)')
    g.add_argument('--sample-length', type=cli.non_negative_int, default=200,
                   help='characters of sample printed after each epoch (default 200)')
    g.add_argument('--quiet', action='store_true', help='no progress line')
    return p.parse_args(argv)


def settings_from(args, saved=None):
    """The run's settings: the saved ones on resume (with the resumable options overridden), else defaults
    overridden by the command line."""
    given = {k: v for k, v in vars(args).items() if k in DEFAULTS and v is not None}
    if saved is None:
        return {**DEFAULTS, **given}
    fixed = {k: v for k, v in given.items() if k not in RESUMABLE and k != 'corpus' and saved.get(k) != v}
    if fixed:
        k, v = next(iter(fixed.items()))
        cli.fail(f'--{k.replace("_", "-")} {v} differs from the saved run\'s {saved.get(k)}: it cannot change '
                 'on --resume (start a new run in another --out folder instead)')
    settings = {**DEFAULTS, **saved, **{k: v for k, v in given.items() if k in RESUMABLE}}
    if 'corpus' in given:
        settings['corpus'] = given['corpus']
    return settings


def corpus_path(settings):
    return settings['corpus'] if settings['corpus'] is not None else data.tiny_shakespeare()


def sample_text(params, chars, length, rng):
    """A short sample at temperature 0.5, primed with a newline (or the first character of the table)."""
    prime = chars.index('\n') if '\n' in chars else 0
    return data.decode(list(lstm.generate(params, [prime], length, 0.5, rng)), chars)


class Stopper:
    """Turns Ctrl-C and SIGTERM into a flag that the training loop checks after every step."""

    def __init__(self):
        self.signal = None
        self.previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def handle(self, signum, frame):
        self.signal = signal.Signals(signum).name

    def restore(self):
        for s, h in self.previous.items():
            signal.signal(s, h)


def main(argv=None):
    args = parse_args(argv)
    out = args.out
    ckpt_path = os.path.join(out, CHECKPOINT)

    if args.resume:
        try:
            chars = data.load_lookup(os.path.join(out, LOOKUP))
            params, opt, state, meta, ema = lstm.load_checkpoint(ckpt_path, lambda p: RMSprop(p))
        except (lstm.ModelFileError, data.CorpusError) as e:
            cli.fail(f'cannot resume from {out}: {e}')
        if 'settings' not in meta or 'position' not in meta:
            cli.fail(f'cannot resume: {ckpt_path} has no training position (it was not written by _training.py)')
        settings = settings_from(args, meta['settings'])
        pos = meta['position']
    else:
        settings = settings_from(args)
        chars, pos, ema = None, None, None
        if os.path.exists(ckpt_path):
            cli.fail(f'{out} already holds a run: continue it with --resume, or choose another --out folder')

    try:
        ids, chars = data.read_corpus(corpus_path(settings), chars)
    except data.CorpusError as e:
        cli.fail(str(e))
    train_ids, val_ids = data.split(ids, settings['val_fraction'])
    if settings['val_chars']:
        val_ids = val_ids[:settings['val_chars']]
    B, T = settings['chunks'], settings['window']
    chunked = data.chunks(train_ids, B)
    n_win = data.n_windows(chunked.shape[1], T)
    if n_win == 0:
        cli.fail(f'the training text ({len(train_ids)} characters) is too short for {B} chunks of more than {T} '
                 'characters: use a longer corpus, or lower --chunks or --window')
    if len(val_ids) < 2:
        cli.fail('the validation text is shorter than 2 characters: use a longer corpus or a larger '
                 '--val-fraction')

    dtype = np.dtype(settings['dtype'])
    if pos is None:
        rng = np.random.default_rng(settings['seed'])
        params = lstm.init_params(len(chars), settings['hidden'], settings['layers'], rng, dtype)
        opt = RMSprop(params)
        state = lstm.zero_state(params, B)
        pos = dict(epoch=0, window=0, step=0, best_val=None, seconds=0.0)
    else:
        if state[0][0].shape[0] != B or len(chars) != lstm.sizes(params)[0]:
            cli.fail(f'the checkpoint in {out} does not match its settings or lookup table')
        if meta.get('corpus_chars') not in (None, len(ids)):
            cli.fail(f'the corpus has {len(ids):,} characters but the run in {out} was trained on one of '
                     f'{meta["corpus_chars"]:,}: resume with the same --corpus')
        rng = np.random.default_rng()
        rng.bit_generator.state = meta['rng']
    opt.lr, opt.rho, opt.eps, opt.clip = settings['lr'], settings['rho'], settings['eps'], settings['clip']
    opt.weight_decay = settings['weight_decay']
    if not settings['ema']:
        ema = None
    elif ema is None:                                   # an average starts from the current weights
        ema = {k: v.copy() for k, v in params.items()}

    def model():
        """The weights to validate, sample and save: the average where one is kept."""
        return params if ema is None else ema

    def lr_at(epoch):
        return settings['lr'] * settings['lr_decay'] ** max(0, epoch - settings['decay_after'])

    def save(folder, kind):
        os.makedirs(folder, exist_ok=True)
        meta = dict(settings=settings, position=pos, rng=rng.bit_generator.state, saved=kind,
                    corpus_chars=int(len(ids)))
        lstm.save_checkpoint(os.path.join(folder, CHECKPOINT), params, opt, state, meta, ema)
        lstm.save_params(os.path.join(folder, WEIGHTS), model(),
                         dict(step=pos['step'], epoch=pos['epoch'] + pos['window'] / n_win,
                              val_loss=pos.get('val_loss')))
        data.save_lookup(os.path.join(folder, LOOKUP), chars)

    def log(row):
        path = os.path.join(out, LOG)
        new = not os.path.exists(path)
        with open(path, 'a', newline='') as f:
            w = csv.writer(f)
            if new:
                w.writerow(['epoch', 'step', 'train_loss', 'val_loss', 'lr', 'seconds', 'chars_per_s', 'event'])
            w.writerow(row)

    say = (lambda s: None) if args.quiet else (lambda s: print(s, flush=True))
    say(f'corpus {corpus_path(settings)}: {len(ids):,} characters, {len(chars)} distinct; '
        f'{len(train_ids):,} train, {len(val_ids):,} validation')
    say(f'model {settings["layers"]}x{settings["hidden"]} LSTM, {sum(p.size for p in params.values()):,} '
        f'parameters, {settings["dtype"]}; {B} chunks x window {T} = {n_win} steps per epoch')
    if args.resume:
        say(f'resuming at epoch {pos["epoch"]}, window {pos["window"]}/{n_win}, step {pos["step"]}')

    threads = args.threads
    if threads is None:
        threads = 1 if os.environ.get('OPENBLAS_NUM_THREADS') == '1' else min(2, os.cpu_count() or 1)
    threads = min(threads, settings['layers'])
    if threads > 1 and lstm.set_blas_threads(1) is None:
        threads = 1                                     # OpenBLAS not found: let its own threads do the work
    if args.max_steps is not None and pos['step'] >= args.max_steps:
        save(out, 'max-steps')
        say(f'--max-steps {args.max_steps}: the model at step {pos["step"]} is saved in {out}')
        return 0
    stopper = Stopper()
    last_ckpt = last_shown = time.time()
    t_run = time.time()
    chars_done = 0
    smooth = None
    epoch_loss, epoch_n = 0.0, 0
    try:
        while pos['epoch'] < settings['epochs']:
            opt.lr = lr_at(pos['epoch'])
            while pos['window'] < n_win:
                x, y = data.window(chunked, T, pos['window'])
                with np.errstate(all='ignore'):         # overflow is caught just below, with a clear message
                    loss, norm, state = lstm.train_step(params, opt, x, y, state, settings['dropout'], rng,
                                                        threads, settings['weight_drop'])
                if ema is not None:
                    update_average(ema, params, settings['ema'])
                if not np.isfinite(loss) or not all(np.isfinite(p).all() for p in params.values()):
                    cli.fail(f'the loss became non-finite (loss {loss:.4g}, or weights overflowed) at step '
                             f'{pos["step"] + 1}: training stopped, and the last good checkpoint in {out} is kept; '
                             'resume it with a lower --lr or with --clip')
                pos['window'] += 1
                pos['step'] += 1
                chars_done += x.size
                epoch_loss += loss
                epoch_n += 1
                smooth = loss if smooth is None else 0.98 * smooth + 0.02 * loss
                elapsed = time.time() - t_run
                rate = chars_done / elapsed
                left = ((settings['epochs'] - pos['epoch']) * n_win - pos['window']) * B * T / rate
                if args.max_steps is not None:
                    left = min(left, (args.max_steps - pos['step']) * B * T / rate)
                if not args.quiet and time.time() - last_shown > 0.5:
                    last_shown = time.time()
                    sys.stdout.write(f'\rstep {pos["step"]:6d}  epoch {pos["epoch"] + pos["window"] / n_win:6.3f}'
                                     f'  loss {smooth:.4f}  {rate:6.0f} chars/s  {left / 60:6.1f} min left ')
                    sys.stdout.flush()
                stop = stopper.signal or (args.max_steps is not None and pos['step'] >= args.max_steps)
                if stop or (args.checkpoint_minutes and time.time() - last_ckpt > 60 * args.checkpoint_minutes):
                    pos['seconds'] += time.time() - t_run
                    t_run, chars_done = time.time(), 0
                    save(out, 'interrupted' if stop else 'periodic')
                    last_ckpt = time.time()
                if stop:
                    why = f'{stopper.signal} received' if stopper.signal else f'--max-steps {args.max_steps} reached'
                    log([f'{pos["epoch"] + pos["window"] / n_win:.4f}', pos['step'],
                         f'{epoch_loss / max(epoch_n, 1):.4f}', '', f'{opt.lr:.6g}', f'{pos["seconds"]:.0f}', '', why])
                    say(f'\n{why}: checkpoint saved in {out} at step {pos["step"]}; continue with --resume')
                    return 0

            # end of an epoch: validate, sample, checkpoint
            rate = chars_done / max(time.time() - t_run, 1e-9)           # training speed, before validation
            val = lstm.evaluate(model(), val_ids)
            pos['epoch'] += 1
            pos['window'] = 0
            pos['val_loss'] = val
            state = lstm.zero_state(params, B)              # the next epoch starts again at the chunks' heads
            pos['seconds'] += time.time() - t_run
            t_run, chars_done = time.time(), 0
            train_loss = epoch_loss / max(epoch_n, 1)
            epoch_loss, epoch_n = 0.0, 0
            improved = pos['best_val'] is None or val < pos['best_val']
            if improved:
                pos['best_val'] = val
            save(out, 'epoch')
            if improved:
                save(os.path.join(out, 'best'), 'best')
            last_ckpt = time.time()
            log([pos['epoch'], pos['step'], f'{train_loss:.4f}', f'{val:.4f}', f'{opt.lr:.6g}', f'{pos["seconds"]:.0f}',
                 f'{rate:.0f}', 'best' if improved else 'epoch'])
            say(f'\nepoch {pos["epoch"]}: train loss {train_loss:.4f}, validation loss {val:.4f} nats/char '
                f'({val / np.log(2):.4f} bits/char){" (best so far)" if improved else ""}')
            if args.sample_length:
                sample_rng = np.random.default_rng(pos['step'])
                say('--- sample (temperature 0.5) ---\n' + sample_text(model(), chars, args.sample_length,
                                                                       sample_rng) + '\n---')
    finally:
        stopper.restore()
    best = 'none' if pos['best_val'] is None else f'{pos["best_val"]:.4f} nats/char'
    say(f'done: {pos["epoch"]} epochs, best validation loss {best}; files in {out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
