"""Generate text from a trained model, printing it as it goes.

python _sample.py --temperature 0.5 --length 1000 --start "ROMEO:" --seed 1
python _sample.py --num-samples 4 --top-p 0.9 --stop '\n\n'      # four speeches, drawn side by side
python _sample.py --beam 8 --length 200 --start "ROMEO:" --show-logprob   # the likeliest text the beam finds
"""

import util.startup  # noqa: F401  first: Ctrl-C while the script starts is one line (util/startup.py)
from util import cli, devices, memory, model
import sys

import numpy as np

from extras import beam
import data
import lstm
from util.errors import UserError
from util.progress import Progress, is_terminal


def escapes(text):
    """Read the backslash escapes \\n, \\r, \\t and \\\\ in an option's text (a shell cannot easily pass a
    newline; a model trained on Windows text ends its lines with \\r\\n)."""
    out, k = [], 0
    while k < len(text):
        if text[k] == '\\' and k + 1 < len(text) and text[k + 1] in 'nrt\\':
            out.append({'n': '\n', 'r': '\r', 't': '\t', '\\': '\\'}[text[k + 1]])
            k += 2
        else:
            out.append(text[k])
            k += 1
    return ''.join(out)


def _add_drawing_options(g):
    """How each character is drawn: how many, and from which of the likeliest."""
    g.add_argument(
        '--length',
        type=cli.positive_int,
        default=1000,
        help='characters to generate after the priming text (default %(default)s; with --stop, at most this)',
    )
    g.add_argument(
        '--temperature',
        type=cli.non_negative_float,
        default=0.5,
        help='divides the logits: lower is safer, higher is wilder; 0 always takes the most likely '
        'character (default %(default)s)',
    )
    g.add_argument(
        '--top-k',
        type=cli.non_negative_int,
        default=0,
        help='draw only from the K most likely characters (default 0: all)',
    )
    g.add_argument(
        '--top-p',
        type=cli.above_zero_to_one,
        default=1.0,
        help='draw only from the nucleus: the smallest set of most likely characters whose probability '
        'reaches P (default 1: all)',
    )


def _add_text_options(g):
    """What a sample starts from and where it stops; how many samples, and their seed."""
    g.add_argument(
        '--start',
        default=None,
        help='priming text, printed first; \\n is a newline (default "F", '
        'or the first letter of the model\'s lookup table where it has no "F")',
    )
    g.add_argument(
        '--start-file',
        type=cli.path,
        help='read the priming text from this UTF-8 file instead (default: none, --start)',
    )
    g.add_argument(
        '--stop',
        help='stop a sample once its generated text ends with this text, e.g. \'\\n\\n\' for '
        'one speech (\\n is a newline, \\r a carriage return, \\t a tab; default: none)',
    )
    g.add_argument(
        '--num-samples',
        type=cli.positive_int,
        default=1,
        help='draw this many independent samples side by side, as one batch, printed one after the '
        'other (default %(default)s)',
    )
    g.add_argument(
        '--seed',
        type=cli.non_negative_int,
        default=None,
        help='random seed: the same seed gives the same text (default: a fresh one each run)',
    )


def _add_search_options(g):
    """The likeliest continuation instead of a draw, and the score of a text."""
    g.add_argument(
        '--beam',
        type=cli.positive_int,
        default=None,
        metavar='N',
        help='instead of drawing, print the likeliest continuation found by a beam search that keeps '
        'the N likeliest (by the sum of their characters\' log-probabilities, no temperature); '
        '1 is --temperature 0; with --stop, a short text that ends there often wins, since every character '
        'lowers the sum; draws nothing, so --seed changes nothing (default: draw)',
    )
    g.add_argument(
        '--show-logprob',
        action='store_true',
        help='after the text, print on stderr the mean log-probability of its generated characters '
        'under the model (temperature 1), in nats per character',
    )


def parse_args(argv):
    p = cli.Parser(
        description='Generate text from a trained character-level LSTM: text like the corpus it was '
        'trained on (by default the shipped model, trained on tiny Shakespeare).'
    )
    g = p.add_argument_group('sampling')
    _add_drawing_options(g)
    _add_text_options(g)
    _add_search_options(g)
    cli.add_model_options(p)
    return p.parse_args(argv)


DEFAULT_START = 'F'  # the first letter of tiny Shakespeare


def default_start(chars):
    """The priming text where none is given: DEFAULT_START, or for a model whose lookup table has no such
    character (one trained on another text), the table's first letter (its first character if it has none)."""
    if DEFAULT_START in chars:
        return DEFAULT_START
    return next((ch for ch in chars if ch.isalpha()), chars[0])


def priming_text(args):
    if args.start is not None and args.start_file is not None:
        raise UserError('give either --start or --start-file, not both')
    if args.start_file is None:
        start = DEFAULT_START if args.start is None else escapes(args.start)
        if not start:
            raise UserError('--start is empty: give at least one character to begin with')
        return start
    try:
        ids, chars = data.read_corpus(args.start_file, what='file')
    except data.CorpusError as e:
        raise UserError(f'--start-file: {e}')
    return data.decode(ids, chars)


def main(argv=None):
    args = parse_args(argv)
    check_beam(args)
    device = cli.open_device(args.device)
    start = priming_text(args)
    stop = None if args.stop is None else escapes(args.stop)
    if stop == '':
        raise UserError('--stop is empty: give the text to stop after, e.g. \'\\n\\n\'')
    params, chars = model.load(args.weights, args.lookup)
    if args.start is None and args.start_file is None:
        start = default_start(chars)
    what = '--start-file' if args.start_file else '--start'
    try:
        prime = data.encode(start, chars)
        what = '--stop'
        stop_ids = None if stop is None else list(data.encode(stop, chars))
    except data.CorpusError as e:
        raise UserError(f'{what}: {e}')
    check_sizes(args, params, prime, device)
    if args.top_k > len(chars):
        raise UserError(
            f'--top-k {args.top_k} is more than the {len(chars)} characters of the model\'s alphabet'
        )
    N = args.num_samples
    with (
        Progress('beam search' if args.beam else 'sampling', args.length, 'steps') as steps,
        Progress('reading the priming text', len(prime), 'characters') as reading,
    ):
        draws = draw(
            args, params, prime, stop_ids, device, steps, reading_progress(reading, len(prime), steps)
        )
        texts = write_samples(draws, start, stop_ids, chars, N, steps)
    if args.show_logprob:
        for k, text in enumerate(texts):
            logp = -lstm.char_losses(params, np.concatenate([prime, text]), device=device)[len(prime) - 1 :]
            sys.stderr.write(
                f'{"" if N == 1 else f"sample {k + 1}: "}mean log-probability {logp.mean():.4f} '
                f'nats per character over the {len(text)} generated\n'
            )
    return 0


def draw(args, params, prime, stop_ids, device, steps, reading):
    """The draws, a step at a time, after the priming text: the samples', or the one continuation that the
    beam search found (known only at the end: then printed). steps, reading: the progress of the steps and
    of reading the priming text."""
    if args.beam:
        found, _ = beam.search(
            params,
            prime,
            args.length,
            args.beam,
            stop_ids,
            progress=steps,
            device=device,
            prime_progress=reading,
        )
        steps.close()
        return ([ix] for ix in found)
    draws = lstm.sample(
        params,
        prime,
        args.length,
        temperature=args.temperature,
        rng=np.random.default_rng(args.seed),
        num_samples=args.num_samples,
        top_k=args.top_k,
        top_p=args.top_p,
        device=device,
        prime_progress=reading,
    )
    # One sample on a terminal shows itself as it is drawn; otherwise a line on stderr says how far.
    if args.num_samples == 1 and is_terminal(sys.stdout):
        steps.close()
    return draws


def reading_progress(line, n, steps):
    """What reading a priming text of n characters tells: its progress line, cleared once it is read; the
    progress of the steps then counts from there."""

    def read(done):
        line(done)
        if done >= n:
            line.close()
            steps.restart()

    return read


def write_samples(draws, start, stop_ids, chars, N, progress):
    """Print one sample as it is drawn, or N samples one after the other once all are drawn. Returns the
    samples' generated indices."""
    texts = [[] for _ in range(N)]
    done = np.zeros(N, dtype=bool)
    out = sys.stdout  # a closed pipe (| head) is handled by cli.run
    for step, ix in enumerate(draws, start=1):
        if N == 1 and step == 1:  # the priming text is read now: its progress line is gone
            out.write(start)
        for k in np.flatnonzero(~done):
            texts[k].append(int(ix[k]))
            if stop_ids is not None and texts[k][-len(stop_ids) :] == stop_ids:
                done[k] = True
        if N == 1:
            out.write(chars[texts[0][-1]])
            out.flush()
        progress(step)
        if done.all():
            break
    progress.close()
    if N == 1:
        out.write('' if (start + data.decode(texts[0], chars)).endswith('\n') else '\n')
    else:
        for k, text in enumerate(texts):
            body = start + data.decode(text, chars)
            out.write(
                f'{"" if k == 0 else chr(10)}=== sample {k + 1} of {N} ===\n{body}'
                f'{"" if body.endswith(chr(10)) else chr(10)}'
            )
    out.flush()
    return texts


def check_sizes(args, params, prime, device):
    """Refuse, before any work, a batch or a length that no machine's memory holds: the model over a window of
    the priming text (read once, lstm.primed), then over every sample (or continuation of the beam) side by
    side, and the indices drawn, kept until printed."""
    V, H, layers = lstm.sizes(params)
    N = max(args.num_samples, args.beam or 1)
    reading = memory.model_bytes(V, H, layers, 1, min(len(prime), lstm.PRIME_WINDOW))  # read once, in windows
    needed = reading + memory.model_bytes(V, H, layers, N, 1) + N * (8 * args.length + 32 * V)
    what = f'--beam {args.beam}' if args.beam else f'--num-samples {args.num_samples}'
    primed = f' after a priming text of {cli.count(len(prime), "character")} (--start, --start-file)'
    devices.check_memory(device, needed, f'{what} with --length {args.length}{primed}')


def check_beam(args):
    """--beam ranks by the model's own probabilities, and finds one text: refuse the options it would
    ignore."""
    if not args.beam:
        return
    ignored = [
        name
        for name, given in (
            ('--temperature', args.temperature != 0.5),
            ('--top-k', args.top_k),
            ('--top-p', args.top_p < 1.0),
            ('--num-samples', args.num_samples > 1),
        )
        if given
    ]
    if ignored:
        raise UserError(
            f'--beam ranks continuations by the model\'s own probabilities and prints the likeliest one: '
            f'{" and ".join(ignored)} would do nothing with it; leave '
            f'{"it" if len(ignored) == 1 else "them"} '
            'out'
        )


if __name__ == '__main__':
    cli.run(main)
