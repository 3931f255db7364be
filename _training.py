"""Train the character-level LSTM with truncated backpropagation through time, or resume a saved run.

    python _training.py --out runs/shakespeare              # a new run on tiny Shakespeare (saves/shakespeare.txt)
    python _training.py --out runs/shakespeare --resume     # continue it exactly where it stopped

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
import cli  # first: from here on, Ctrl-C (even while numpy loads) ends with one line
import csv
import fcntl
import os
import signal
import time

import numpy as np

import data
import engine
import files
import lstm
from blas import set_threads as set_blas_threads
from optimizer import RMSprop, update_average

WEIGHTS, CHECKPOINT, LOOKUP, LOG = 'ShakespeareNet.npz', 'ShakespeareOptimizer.npz', 'ShakespeareLookup.json', \
    'training_log.csv'

# The run's settings: (group, name, default, type, help). The defaults are the original's. They are saved in the
# checkpoint; on --resume the saved ones hold, and only those marked resumable may be changed on the command line.
SETTINGS = [
    ('data', 'corpus', None, cli.path, 'UTF-8 text file to train on (default: tiny Shakespeare, '
                                       'saves/shakespeare.txt)'),
    ('data', 'val_fraction', 0.1, cli.above_zero_below_one, 'last fraction of the corpus kept for validation'),
    ('data', 'val_chars', 0, cli.non_negative_int, 'validate on at most this many characters of the '
                                                   'validation split, its first ones (0: all)'),
    ('model', 'layers', 2, cli.positive_int, 'number of LSTM layers'),
    ('model', 'hidden', 512, cli.positive_int, 'units per LSTM layer'),
    ('optimisation', 'chunks', 25, cli.positive_int, 'contiguous chunks trained side by side (the batch)'),
    ('optimisation', 'window', 100, cli.positive_int, 'truncated-BPTT window in characters (k1 = k2)'),
    ('optimisation', 'lr', 0.001, cli.positive_float, 'RMSprop learning rate'),
    ('optimisation', 'rho', 0.95, cli.above_zero_below_one, 'RMSprop decay of the mean squared gradient'),
    ('optimisation', 'eps', 1e-8, cli.positive_float, 'RMSprop epsilon'),
    ('optimisation', 'clip', 0.0, cli.non_negative_float, 'clip the gradient\'s global norm to this (0: off)'),
    ('optimisation', 'weight_decay', 0.0, cli.non_negative_float, 'decoupled weight decay of the weight '
                                                                  'matrices, p -= lr * decay * p per step (0: off)'),
    ('optimisation', 'dropout', 0.0, cli.zero_to_below_one, 'dropout on the inputs of layers 2.. and of the '
                                                            'dense layer'),
    ('optimisation', 'variational', False, cli.boolean, 'dropout masks time-locked: one per chunk and window, the '
                                                        'same at every step (Gal and Ghahramani, 2016), not one per '
                                                        'step: true or false'),
    ('optimisation', 'weight_drop', 0.0, cli.zero_to_below_one, 'DropConnect on the recurrent weights, one mask '
                                                                'per window (as in AWD-LSTM)'),
    ('optimisation', 'lr_decay', 1.0, cli.positive_float, 'multiply the learning rate by this every epoch '
                                                          'after --decay-after'),
    ('optimisation', 'decay_after', 0, cli.non_negative_int, 'epochs at the full learning rate before the decay'),
    ('optimisation', 'epochs', 10, cli.positive_int, 'train until this many epochs are done'),
    ('optimisation', 'ema', 0.0, cli.zero_to_below_one, 'validate, sample and save a moving average of the '
                                                        'weights with this decay, e.g. 0.999 (0: off)'),
    ('optimisation', 'dtype', 'float32', cli.choice('float32', 'float64'), 'floating-point type'),
    ('optimisation', 'seed', 0, cli.non_negative_int, 'seed of the initial weights and of the dropout masks'),
]
DEFAULTS = {name: default for _, name, default, _, _ in SETTINGS}
RESUMABLE = {'lr', 'rho', 'eps', 'clip', 'weight_decay', 'dropout', 'variational', 'weight_drop', 'lr_decay',
             'decay_after', 'epochs', 'ema', 'val_chars', 'corpus'}


def parse_args(argv):
    p = cli.Parser(description='Train the character-level LSTM (truncated BPTT, RMSprop), or resume a run.')
    groups = {}
    for group, name, default, kind, text in SETTINGS:
        if group not in groups:
            groups[group] = p.add_argument_group(group)
        shown = '' if name == 'corpus' else f' (default {default})'
        groups[group].add_argument('--' + name.replace('_', '-'), type=kind, help=text + shown)
    g = groups['optimisation']
    g.add_argument('--threads', type=cli.positive_int, help='threads: 2 runs half of the chunks on each of two '
                   'cores (default: 2 on a multi-core machine, 1 if OPENBLAS_NUM_THREADS=1)')
    g.add_argument('--max-steps', type=cli.non_negative_int, help='stop (with a checkpoint) once this many steps '
                   'are done in all, e.g. for a short trial; 0 saves the untrained model')
    g = p.add_argument_group('output')
    g.add_argument('--out', type=cli.path, default='checkpoints', help='run folder for checkpoints and the log '
                   '(default %(default)s; saves/ is only written if named here)')
    g.add_argument('--resume', action='store_true', help='continue the run saved in --out exactly where it '
                                                         'stopped')
    g.add_argument('--checkpoint-minutes', type=cli.non_negative_float, default=10.0,
                   help='also checkpoint every this many minutes within an epoch (default %(default)s; 0: only '
                        'per epoch)')
    g.add_argument('--sample-length', type=cli.non_negative_int, default=200,
                   help='characters of sample printed after each epoch (default %(default)s)')
    g.add_argument('--quiet', action='store_true', help='print only errors: no progress line, no epoch report '
                                                        'and no sample')
    return p.parse_args(argv)


def settings_from(args, saved=None):
    """The run's settings: the defaults overridden by the command line, or on resume the saved ones with the
    resumable options overridden. Refuses (one line) a change of a setting that defines the run."""
    given = {k: v for k, v in vars(args).items() if k in DEFAULTS and v is not None}
    if saved is None:
        return {**DEFAULTS, **given}
    fixed = {k: v for k, v in given.items() if k not in RESUMABLE and saved.get(k, DEFAULTS[k]) != v}
    if fixed:
        k, v = next(iter(fixed.items()))
        cli.fail(f'--{k.replace("_", "-")} {v} differs from the saved run\'s {saved.get(k)}: it cannot change '
                 'on --resume (start a new run in another --out folder instead)')
    return {**DEFAULTS, **saved, **{k: v for k, v in given.items() if k in RESUMABLE}}


def lr_at(settings, epoch):
    """The learning rate of an epoch (counted from 0): lr until decay_after, then x lr_decay per epoch."""
    return settings['lr'] * settings['lr_decay'] ** max(0, epoch - settings['decay_after'])


def is_best(val_loss, best_so_far):
    """Whether an epoch's validation loss goes into best/: strictly lower than every earlier epoch's."""
    return best_so_far is None or val_loss < best_so_far


# --- the run: new or resumed -------------------------------------------------------------------------------------

class Run:
    """Everything a checkpoint holds: settings, weights, optimizer, carried state, average, position, random
    state; and the lookup table."""

    def __init__(self, settings, chars=None, params=None, opt=None, state=None, ema=None, pos=None, rng=None,
                 corpus_chars=None):
        self.settings, self.chars, self.params, self.opt = settings, chars, params, opt
        self.state, self.ema, self.pos, self.rng = state, ema, pos, rng
        self.corpus_chars = corpus_chars                # the length of the corpus a resumed run was trained on

    def model(self):
        """The weights to validate, sample and save: the average where one is kept."""
        return self.params if self.ema is None else self.ema

    def save(self, folder, kind, n_windows, corpus_chars):
        meta = dict(settings=self.settings, position=self.pos, rng=self.rng.bit_generator.state, saved=kind,
                    corpus_chars=int(corpus_chars), block_widths=engine.block_widths())
        files.save_checkpoint(os.path.join(folder, CHECKPOINT), self.params, self.opt, self.state, meta, self.ema)
        files.save_params(os.path.join(folder, WEIGHTS), self.model(),
                          dict(step=self.pos['step'], epoch=self.pos['epoch'] + self.pos['window'] / n_windows,
                               val_loss=self.pos.get('val_loss')))
        data.save_lookup(os.path.join(folder, LOOKUP), self.chars)


def new_run(args, out):
    if os.path.exists(os.path.join(out, CHECKPOINT)):
        cli.fail(f'{out} already holds a run: continue it with --resume, or choose another --out folder')
    settings = settings_from(args)
    settings['corpus'] = stored_corpus(settings['corpus'])
    return Run(settings, pos=dict(epoch=0, window=0, step=0, best_val=None, seconds=0.0))


def make_optimizer(params, settings):
    return RMSprop(params, lr=settings['lr'], rho=settings['rho'], eps=settings['eps'], clip=settings['clip'],
                   weight_decay=settings['weight_decay'])


def resumed_run(args, out):
    path = os.path.join(out, CHECKPOINT)
    if not os.path.exists(path):
        cli.fail(f'cannot resume: {out} holds no run ({CHECKPOINT} is missing); start one without --resume')
    try:
        _, meta = files.load_npz(path, 'checkpoint', only_meta=True)
        if 'settings' not in meta or 'position' not in meta or 'rng' not in meta:
            cli.fail(f'cannot resume: {path} has no training position (it was not written by _training.py)')
        settings = settings_from(args, meta['settings'])
        chars = data.load_lookup(os.path.join(out, LOOKUP))
        params, opt, state, meta, ema = files.load_checkpoint(path, lambda p: make_optimizer(p, settings))
    except (files.ModelFileError, data.CorpusError) as e:
        cli.fail(f'cannot resume from {out}: {e}')
    rng = np.random.default_rng()
    rng.bit_generator.state = meta['rng']
    try:
        engine.set_block_widths(meta.get('block_widths', []))  # the same products as before: bit for bit
    except ValueError as e:
        cli.fail(f'cannot resume from {out}: {path}: {e}')
    if args.corpus is not None:
        settings['corpus'] = stored_corpus(args.corpus)
    return Run(settings, chars, params, opt, state, ema, meta['position'], rng, meta.get('corpus_chars'))


def stored_corpus(path):
    """How a checkpoint names its corpus, so that a clone anywhere resumes: None for the shipped tiny Shakespeare,
    a path relative to the repo for a file inside it, else the absolute path."""
    if path is None:
        return None
    path = os.path.abspath(path)
    if os.path.exists(path) and os.path.exists(data.TINY_SHAKESPEARE_PATH) and \
            os.path.samefile(path, data.TINY_SHAKESPEARE_PATH):
        return None
    inside = os.path.relpath(path, cli.ROOT)
    return path if inside.startswith('..') else inside


def corpus_path(run):
    """The corpus file: the one the run names (relative paths are inside the repo), else the shipped tiny
    Shakespeare, checked by its SHA-256. A checkpoint that names a tiny Shakespeare file which is not here (as one
    written in another folder may) resumes on the shipped copy."""
    path = run.settings['corpus']
    if path is not None:
        path = os.path.join(cli.ROOT, path)             # an absolute path stays as it is
        if not os.path.exists(path) and run.corpus_chars == data.TINY_SHAKESPEARE_CHARS and \
                'shakespeare' in os.path.basename(path).lower():
            path = None
    return path if path is not None else data.tiny_shakespeare()


def load_data(run):
    """Read the corpus; make the model on a new run. Returns (chunked training text (B, L), validation ids,
    windows per epoch, characters in the corpus)."""
    s = run.settings
    try:
        ids, run.chars = data.read_corpus(corpus_path(run), run.chars)
    except data.CorpusError as e:
        cli.fail(str(e))
    train_ids, val_ids = data.split(ids, s['val_fraction'])
    if s['val_chars']:
        val_ids = val_ids[:s['val_chars']]
    chunked = data.chunks(train_ids, s['chunks'])
    n_windows = data.n_windows(chunked.shape[1], s['window'])
    if n_windows == 0:
        cli.fail(f'the training text ({len(train_ids):,} characters) is too short for {s["chunks"]} chunks of more '
                 f'than {s["window"]} characters: use a longer corpus, or lower --chunks or --window')
    if len(val_ids) < 2:
        cli.fail('the validation text is shorter than 2 characters: use a longer corpus or a larger --val-fraction')
    if run.params is None:                              # a new run: the model is made from the lookup table
        run.rng = np.random.default_rng(s['seed'])
        run.params = lstm.init_params(len(run.chars), s['hidden'], s['layers'], run.rng, np.dtype(s['dtype']))
        run.opt = make_optimizer(run.params, s)
        run.state = lstm.zero_state(run.params, s['chunks'])
    elif run.state[0][0].shape[0] != s['chunks'] or len(run.chars) != lstm.sizes(run.params)[0]:
        cli.fail('the checkpoint does not match its settings or lookup table')
    elif run.corpus_chars not in (None, len(ids)):
        cli.fail(f'the corpus has {len(ids):,} characters but the run was trained on one of '
                 f'{run.corpus_chars:,}: resume with the same --corpus')
    if not s['ema']:
        run.ema = None
    elif run.ema is None:                               # an average starts from the current weights
        run.ema = {k: v.copy() for k, v in run.params.items()}
    return chunked, val_ids, n_windows, len(ids)


# --- training --------------------------------------------------------------------------------------------------

def train_window(run, chunked, threads):
    """One step of truncated BPTT on the next window of every chunk: forward, backward, RMSprop, average."""
    s = run.settings
    x, y = data.window(chunked, s['window'], run.pos['window'])
    with np.errstate(all='ignore'):                     # overflow is caught below, with a clear message
        loss, grads, run.state = lstm.loss_and_grads(run.params, x, y, run.state, dropout=s['dropout'], rng=run.rng,
                                                     threads=threads, weight_drop=s['weight_drop'],
                                                     variational=s['variational'])
        run.opt.step(run.params, grads)
    if run.ema is not None:
        update_average(run.ema, run.params, s['ema'])
    if not np.isfinite(loss) or not all(np.isfinite(p).all() for p in run.params.values()):
        cli.fail(f'the loss became non-finite (loss {loss:.4g}, or weights overflowed) at step '
                 f'{run.pos["step"] + 1}: training stopped, and the last good checkpoint is kept; resume it with '
                 'a lower --lr or with --clip')
    run.pos['window'] += 1
    run.pos['step'] += 1
    return loss


def sample_text(params, chars, length, seed):
    """A short sample at temperature 0.5, primed with a newline (or the first character of the table)."""
    prime = chars.index('\n') if '\n' in chars else 0
    return data.decode([ix[0] for ix in lstm.sample(params, [prime], length, temperature=0.5, rng=seed)], chars)


class Log:
    """training_log.csv: one row per epoch and per interruption."""

    def __init__(self, path):
        self.path = path

    def write(self, run, n_windows, train_loss, val_loss, chars_per_s, event):
        new = not os.path.exists(self.path)
        p = run.pos
        with open(self.path, 'a', newline='') as f:
            w = csv.writer(f)
            if new:
                w.writerow(['epoch', 'step', 'train_loss', 'val_loss', 'lr', 'seconds', 'chars_per_s', 'event'])
            epoch = p['epoch'] if p['window'] == 0 else f'{p["epoch"] + p["window"] / n_windows:.4f}'
            w.writerow([epoch, p['step'], '' if train_loss is None else f'{train_loss:.4f}',
                        '' if val_loss is None else f'{val_loss:.4f}',
                        f'{run.opt.lr:.6g}', f'{p["seconds"]:.0f}', '' if chars_per_s is None else f'{chars_per_s:.0f}',
                        event])


class Progress:
    """The progress line (step, epoch, smoothed loss, speed, time left), at most twice a second; the speed and
    the training time of the run."""

    def __init__(self, quiet):
        self.quiet, self.shown, self.smooth = quiet, 0.0, None
        self.restart()

    def restart(self):
        self.t0, self.chars, self.loss_sum, self.n = time.time(), 0, 0.0, 0

    def add(self, loss, chars):
        self.chars += chars
        self.loss_sum += loss
        self.n += 1
        self.smooth = loss if self.smooth is None else 0.98 * self.smooth + 0.02 * loss

    def rate(self):
        return self.chars / max(time.time() - self.t0, 1e-9)

    def show(self, run, n_windows, steps_left):
        if self.quiet or time.time() - self.shown < 0.5:
            return
        self.shown = time.time()
        s, p = run.settings, run.pos
        left = steps_left * s['chunks'] * s['window'] / self.rate()
        cli.write(f'\rstep {p["step"]:6d}  epoch {p["epoch"] + p["window"] / n_windows:6.3f}  loss '
                  f'{self.smooth:.4f}  {self.rate():6.0f} chars/s  {left / 60:6.1f} min left ')


def end_epoch(run, out, val_ids, n_windows, corpus_chars, progress, log, say, sample_length):
    """Validate, sample, checkpoint, and keep the best epoch in best/."""
    rate = progress.rate()                              # training speed, before validation
    val = lstm.evaluate(run.model(), val_ids)
    p = run.pos
    p['epoch'], p['window'], p['val_loss'] = p['epoch'] + 1, 0, val
    run.state = lstm.zero_state(run.params, run.settings['chunks'])   # the next epoch starts at the chunks' heads
    p['seconds'] += time.time() - progress.t0
    train_loss = progress.loss_sum / max(progress.n, 1)
    improved = is_best(val, p['best_val'])
    if improved:
        p['best_val'] = val
    run.save(out, 'epoch', n_windows, corpus_chars)
    if improved:
        run.save(os.path.join(out, 'best'), 'best', n_windows, corpus_chars)
    log.write(run, n_windows, train_loss, val, rate, 'best' if improved else 'epoch')
    say(f'\nepoch {p["epoch"]}: train loss {train_loss:.4f}, validation loss {val:.4f} nats/char '
        f'({val / np.log(2):.4f} bits/char){" (best so far)" if improved else ""}')
    if sample_length:
        say('--- sample (temperature 0.5) ---\n' + sample_text(run.model(), run.chars, sample_length, p['step'])
            + '\n---')
    progress.restart()


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


def lock_folder(out):
    """Hold an exclusive lock on the run folder for the life of the process (the system drops it when the
    process ends, however it ends), and clear temporary files that a killed run left. Returns the lock's file."""
    try:
        files.check_folder(out, '--out folder')
        f = open(os.path.join(out, '.lock'), 'a+')
    except (files.ModelFileError, OSError) as e:
        cli.fail(str(e) if isinstance(e, files.ModelFileError) else f'--out folder {out}: {e.strerror or e}')
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        cli.fail(f'another training is running in {out}: wait for it to end, or choose another --out folder')
    for folder in (out, os.path.join(out, 'best')):
        if os.path.isdir(folder):
            for name in os.listdir(folder):
                if name.startswith('.') and name.endswith('.tmp'):
                    os.remove(os.path.join(folder, name))
    return f


def default_threads():
    return 1 if os.environ.get('OPENBLAS_NUM_THREADS') == '1' else min(2, os.cpu_count() or 1)


def main(argv=None):
    args = parse_args(argv)
    out = args.out
    if not out:
        cli.fail('--out is empty: give a folder for the run')
    run = resumed_run(args, out) if args.resume else new_run(args, out)
    chunked, val_ids, n_windows, corpus_chars = load_data(run)
    lock = lock_folder(out)                             # noqa: F841  (held until the process ends)
    say = (lambda text: None) if args.quiet else (lambda text: cli.write(text + '\n'))  # a closed stdout: train on
    s, p = run.settings, run.pos
    say(f'corpus {corpus_path(run)}: {corpus_chars:,} characters, {len(run.chars)} distinct; '
        f'{chunked.size:,} train, {len(val_ids):,} validation')
    say(f'model {s["layers"]}x{s["hidden"]} LSTM, {sum(a.size for a in run.params.values()):,} parameters, '
        f'{s["dtype"]}; {s["chunks"]} chunks x window {s["window"]} = {n_windows} steps per epoch')
    if args.resume:
        say(f'resuming at epoch {p["epoch"]}, window {p["window"]}/{n_windows}, step {p["step"]}')
    threads = min(args.threads or default_threads(), 2)
    if threads > 1 and set_blas_threads(1) is None:
        threads = 1                                     # OpenBLAS not found: let its own threads do the work
    max_steps = float('inf') if args.max_steps is None else args.max_steps
    log, progress, stopper = Log(os.path.join(out, LOG)), Progress(args.quiet), Stopper()
    last_checkpoint = time.time()
    try:
        while p['epoch'] < s['epochs'] and p['step'] < max_steps and not stopper.signal:
            run.opt.lr = lr_at(s, p['epoch'])
            if p['window'] == n_windows:
                end_epoch(run, out, val_ids, n_windows, corpus_chars, progress, log, say, args.sample_length)
                continue
            progress.add(train_window(run, chunked, threads), chunked.shape[0] * s['window'])
            steps_left = min((s['epochs'] - p['epoch']) * n_windows - p['window'], max_steps - p['step'])
            progress.show(run, n_windows, steps_left)
            if args.checkpoint_minutes and time.time() - last_checkpoint > 60 * args.checkpoint_minutes:
                p['seconds'] += time.time() - progress.t0
                progress.t0, progress.chars = time.time(), 0
                run.save(out, 'periodic', n_windows, corpus_chars)
                last_checkpoint = time.time()
        if p['epoch'] < s['epochs'] or args.max_steps == p['step']:
            why = f'{stopper.signal} received' if stopper.signal else f'--max-steps {args.max_steps} reached'
            p['seconds'] += time.time() - progress.t0
            run.save(out, 'interrupted' if stopper.signal else 'max-steps', n_windows, corpus_chars)
            if p['step'] > 0:
                trained = progress.loss_sum / progress.n if progress.n else None   # None: stopped before a step
                log.write(run, n_windows, trained, None, None, why)
            say(f'\n{why}: checkpoint saved in {out} at step {p["step"]}; continue with --resume')
            return 0
    except files.ModelFileError as e:                   # e.g. the disk is full: the last complete files stay
        cli.fail(f'{e}; the previous checkpoint in {out} is kept')
    except OSError as e:                                # the log could not be appended to
        cli.fail(f'cannot write {os.path.join(out, LOG)}: {e.strerror or e}; the checkpoint in {out} is kept')
    finally:
        stopper.restore()
    best = 'none' if p['best_val'] is None else f'{p["best_val"]:.4f} nats/char'
    say(f'done: {p["epoch"]} epochs, best validation loss {best}; files in {out}')
    return 0


if __name__ == '__main__':
    cli.run(main)
