"""Generate text from a trained model, printing it as it goes.

    python _sample.py --temperature 0.5 --length 1000 --start "ROMEO:" --seed 1
"""
import sys

import numpy as np

import cli
import data
import lstm

def parse_args(argv):
    p = cli.Parser(description='Generate Shakespeare-like text from the trained character-level LSTM.')
    g = p.add_argument_group('sampling')
    g.add_argument('--length', type=cli.positive_int, default=1000, help='characters to generate (default 1000)')
    g.add_argument('--temperature', type=cli.non_negative_float, default=0.5,
                   help='divides the logits: lower is safer, higher is wilder; 0 always takes the most likely '
                        'character (default 0.5)')
    g.add_argument('--start', default='F', help='priming text, printed first (default "F")')
    g.add_argument('--seed', type=int, default=None, help='random seed: the same seed gives the same text '
                                                          '(default: a fresh one each run)')
    cli.add_model_options(p)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if not args.start:
        cli.fail('--start is empty: give at least one character to begin with')
    try:
        chars = data.load_lookup(args.lookup)
        params, _ = lstm.load_params(args.weights, V=len(chars))
    except (lstm.ModelFileError, data.CorpusError) as e:
        cli.fail(str(e))
    try:
        prime = data.encode(args.start, chars)
    except data.CorpusError as e:
        cli.fail(f'--start: {e}')
    out = sys.stdout
    try:
        out.write(args.start)
        for ix in lstm.generate(params, prime, args.length, args.temperature, np.random.default_rng(args.seed)):
            out.write(chars[ix])
            out.flush()
        out.write('\n')
        out.flush()
    except BrokenPipeError:                             # e.g. piped into head: stop quietly
        sys.stderr.close()
    return 0


if __name__ == '__main__':
    sys.exit(main())
