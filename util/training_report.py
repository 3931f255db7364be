"""What a training run prints before its first step: what is trained, notes on the corpus that a user may
want to know of, and on --resume where the run continues and what the command line changed."""

import numpy as np

import data
from util import cli
from util.settings import lr_at


def nats(loss):
    """A loss for printing: a cross-entropy is never below zero (-0.0 or -1e-17 is rounding); one that has
    grown huge on its way to diverging is shown in powers of ten, not in hundreds of digits."""
    if loss != loss:  # NaN: said as such (max would make it 0)
        return 'nan'
    loss = max(0.0, loss)
    return f'{loss:.4f}' if loss < 1e6 else f'{loss:.4g}'


def will_train(run, args):
    """Whether a resumed run has steps left to train (else its checkpoint keeps its settings)."""
    p = run.pos
    return p.epoch < run.settings['epochs'] and (args.max_steps is None or p.step < args.max_steps)


def report(run, args, changed, chunked, val_ids, rescored=None):
    """What is trained, and on --resume where it continues and what the command line changed; rescored: the
    best epoch's old and new validation loss, where the validation text changed (run_start.rescore_best)."""
    if args.quiet:
        return
    s, p = run.settings, run.pos
    n_params, V = sum(a.size for a in run.params.values()), len(run.chars)
    cli.write(
        f'corpus {run.corpus_file()}: {run.corpus_chars:,} characters, {V:,} distinct; '
        f'{run.windows * s["chunks"] * s["window"]:,} trained per epoch, {len(val_ids):,} validation\n'
        f'model {s["layers"]}x{s["hidden"]} LSTM, {n_params:,} parameters, '
        f'{s["dtype"]}; {s["chunks"]} chunks x window {s["window"]} = {run.windows:,} steps per epoch\n'
    )
    outer = 5 * s['hidden'] * V + V  # the first layer's input weights and the dense layer: per character
    if V > 256 and outer > n_params / 2:  # an alphabet of thousands (Chinese): the model is mostly those
        cli.write(
            f'note: {outer / n_params:.0%} of the parameters are the input and output weights of the {V:,} '
            'distinct characters\n'
        )
    if not args.resume:  # carriage returns, a byte-order mark: a new run may still leave them out
        for c in (c for c in data.EDITOR_CHARS if c in run.chars):
            cli.write(
                f'note: the corpus has {data.EDITOR_CHARS[c]}: the model learns {data.char_name(c)} as a '
                'character of its own, and a priming text or a text to score must then hold it too; convert '
                'the corpus first to train without it\n'
            )
    read = chunked[:, : run.windows * s['window'] + 1]  # the inputs and targets of an epoch's windows
    trained = np.bincount(read.ravel(), minlength=V) > 0
    unseen = np.unique(val_ids[~trained[val_ids]])
    if len(unseen):
        names = ', '.join(data.char_name(run.chars[i]) for i in unseen[:10]) + (' ...' * (len(unseen) > 10))
        cli.write(
            f'note: the validation text has {cli.count(len(unseen), "character")} that training never sees '
            f'({names}): the model gives {"them" if len(unseen) > 1 else "it"} almost no probability, and '
            'its validation loss counts that\n'
        )
    if args.resume:
        shown = lambda k, v: 'tiny Shakespeare' if k == 'corpus' and v is None else v  # noqa: E731
        changes = ', '.join(f'{k} {shown(k, a)} -> {shown(k, b)}' for k, (a, b) in changed.items())
        if changes and not will_train(run, args):
            changes = (
                f'nothing is left to train, so the checkpoint keeps its settings ({changes} not applied)'
            )
        cli.write(
            f'resuming at epoch {run.epoch():.4f} (epoch {p.epoch}, window {p.window}/{run.windows}), '
            f'step {p.step}; {changes or "no setting changed"}\n'
        )
        old = {**s, **{k: a for k, (a, _) in changed.items()}}
        if will_train(run, args) and lr_at(old, p.epoch) != lr_at(s, p.epoch):
            cli.write(
                f'learning rate {lr_at(old, p.epoch):g} -> {lr_at(s, p.epoch):g} in epoch {p.epoch + 1} (the '
                'schedule is counted from the run\'s first epoch, as if set from the start)\n'
            )
    if rescored:
        cli.write(
            f'the validation text changed: the best epoch so far (best/) scores {nats(rescored[1])} '
            f'nats/char on it ({nats(rescored[0])} on the old one), the loss that later epochs must beat\n'
        )
