"""The character-level language model: one-hot characters -> LSTM -> ... -> LSTM -> dense -> softmax.

Parameters are a flat dict of named numpy arrays, the same names as in the weights file:
`lstm1.W` (V + H, 4H), `lstm1.b` (4H,), `lstm2.W` (H + H, 4H), `lstm2.b`, ..., `dense.W` (H, V), `dense.b` (V,).
The hidden state carried between windows is a list with one (h, c) pair of (B, H) arrays per LSTM layer.
"""
import ctypes
import json
import os
import tempfile
import threading

import numpy as np

import layers

_UMASK = os.umask(0)
os.umask(_UMASK)


class ModelFileError(ValueError):
    """A weights, optimizer or lookup file that cannot be used; the message says what is wrong."""


def init_params(V, H=512, n_layers=2, rng=None, dtype=np.float32):
    """Fresh parameters: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights, zero biases but the forget gate's 1."""
    rng = np.random.default_rng(rng)
    params = {}
    D = V
    for n in range(1, n_layers + 1):
        scale = 1.0 / np.sqrt(D + H)
        params[f'lstm{n}.W'] = rng.uniform(-scale, scale, size=(D + H, 4 * H)).astype(dtype)
        b = np.zeros(4 * H, dtype=dtype)
        b[H:2 * H] = 1.0                                # forget gate open at the start: remember by default
        params[f'lstm{n}.b'] = b
        D = H
    scale = 1.0 / np.sqrt(H)
    params['dense.W'] = rng.uniform(-scale, scale, size=(H, V)).astype(dtype)
    params['dense.b'] = np.zeros(V, dtype=dtype)
    return params


def sizes(params):
    """(V, H, number of LSTM layers) read off the parameters' shapes."""
    H, V = params['dense.W'].shape
    n_layers = sum(1 for k in params if k.startswith('lstm') and k.endswith('.W'))
    return V, H, n_layers


def zero_state(params, B):
    """The initial hidden state: zeros for h and c of every layer, each (B, H)."""
    _, H, n_layers = sizes(params)
    dtype = params['dense.W'].dtype
    return [(np.zeros((B, H), dtype), np.zeros((B, H), dtype)) for _ in range(n_layers)]


def forward(params, x, state, dropout=0.0, rng=None, threads=1, weight_drop=0.0):
    """Run the model over a window.

    Inputs:
    - x: (T, B) integer character indices
    - state: list of (h0, c0) per layer
    - dropout: probability of zeroing each input of layers 2.. and of the dense layer (inverted dropout;
      0 at evaluation), with masks drawn from rng
    - threads: 1 runs the layers one after the other; more runs them as a pipeline over time ranges, each
      layer on its own thread (layer 2 on one range while layer 1 computes the next); the same results, up to
      rounding
    - weight_drop: probability of zeroing each recurrent weight (the h_prev rows of every LSTM's W) for the
      whole window, the same for every chunk and step (DropConnect, as in AWD-LSTM; inverted; 0 at evaluation),
      with masks drawn from rng after the dropout masks

    Returns (logits (T, B, V), the final state to carry, cache).
    """
    _, _, n_layers = sizes(params)
    T, B = x.shape
    dtype = params['dense.W'].dtype
    masks = [None] * n_layers
    if dropout > 0.0:                                   # drawn here, in layer order, whatever the threads
        for n in range(n_layers):
            masks[n] = _dropout_mask(rng, (T, B, params['dense.W'].shape[0]), dropout, dtype)
    weights = [params[f'lstm{n + 1}.W'] for n in range(n_layers)]
    weight_masks = [None] * n_layers
    if weight_drop > 0.0:
        for n, W in enumerate(weights):
            H = W.shape[1] // 4
            weight_masks[n] = _dropout_mask(rng, (H, 4 * H), weight_drop, dtype)
            weights[n] = W.copy()
            weights[n][-H:] *= weight_masks[n]
    caches, inputs = [], [x]
    for n in range(n_layers):
        h0, c0 = state[n]
        caches.append(layers.lstm_forward_start(inputs[n], h0, c0, weights[n], params[f'lstm{n + 1}.b']))
        h = caches[n]['h']
        inputs.append(h if masks[n] is None else np.empty_like(h))     # the next layer's input, h * mask

    def run(n, t0, t1):
        # The input projection of a layer's range is shared between the thread of the layer below (first half)
        # and its own (second half): the lower layer's steps are cheaper, so this balances the pipeline.
        tm = (t0 + t1 + 1) // 2
        layers.lstm_project(caches[n], t0 if n == 0 else tm, t1)
        layers.lstm_forward_steps(caches[n], t0, t1)
        if masks[n] is not None:
            np.multiply(caches[n]['h'][t0:t1], masks[n][t0:t1], out=inputs[n + 1][t0:t1])
        if n + 1 < n_layers:
            layers.lstm_project(caches[n + 1], t0, tm)
    _pipeline(run, n_layers, T, threads, reverse=False)

    new_state = [(cache['h'][-1].copy(), cache['c'][-1].copy()) for cache in caches]
    logits, dense_cache = layers.dense_forward(inputs[-1], params['dense.W'], params['dense.b'])
    return logits, new_state, (caches, masks, weight_masks, dense_cache)


def _dropout_mask(rng, shape, p, dtype):
    """An inverted-dropout mask: 0 with probability p, else 1 / (1 - p), so that the mean is kept."""
    keep = 1.0 - p
    mask = (rng.random(shape, dtype=np.float32) < keep).astype(dtype)
    mask /= dtype.type(keep)
    return mask


def backward(dlogits, cache, dstate=None, threads=1):
    """Gradients of the loss with respect to every parameter and to the initial state.

    Inputs: dlogits (T, B, V); the cache from forward; dstate, an optional list of (dhT, dcT) per layer for a
    loss that also depends on the final state (None: the window's loss does not); threads as in forward.
    Returns (grads, a dict named like params; dstate0, a list of (dh0, dc0) per layer).
    The backward pass uses the cache up (it turns the forward's buffers into gradients and frees them): run it
    once per forward pass.
    """
    caches, masks, weight_masks, dense_cache = cache
    n_layers = len(caches)
    T = dlogits.shape[0]
    grads = {}
    dh_top, grads['dense.W'], grads['dense.b'] = layers.dense_backward(dlogits, dense_cache)
    dhs = [np.empty_like(c['h']) for c in caches[:-1]] + [dh_top]   # gradient with respect to each layer's h
    if masks[-1] is not None:
        dh_top *= masks[-1]
    for n in range(n_layers):
        dcT = None
        if dstate is not None:
            dhT, dcT = dstate[n]
            if n < n_layers - 1:
                dhs[n][-1] = dhT                        # added to by the layer above, in run() below
            else:
                dh_top[-1] += dhT
        layers.lstm_backward_start(caches[n], dcT)
    results = [None] * n_layers

    def run(n, t0, t1):
        # This layer's dh for the range comes from the layer above's dz, computed here (not in the thread above)
        # to balance the pipeline; then the backward steps; after the last range, the weight gradient. A layer's
        # buffers are let go as soon as they are used up, which keeps the peak memory low.
        if n + 1 < n_layers:
            dx = layers.lstm_input_grad(caches[n + 1], t0, t1)
            if t0 == 0:
                caches[n + 1].clear()
            if masks[n] is not None:
                dx *= masks[n][t0:t1]
            if dstate is not None and t1 == T:
                dx[-1] += dhs[n][-1]
            dhs[n][t0:t1] = dx
        layers.lstm_backward_steps(caches[n], dhs[n], t0, t1)
        if t0 == 0:
            results[n] = layers.lstm_backward_finish(caches[n])
            keep = ('x', 'W', 'D', 'G') if n > 0 else ()        # what the layer below still reads
            for key in [k for k in caches[n] if k not in keep]:
                del caches[n][key]
            dhs[n] = None
    _pipeline(run, n_layers, T, threads, reverse=True)

    dstate0 = []
    for n in range(n_layers):
        dh0, dc0, grads[f'lstm{n + 1}.W'], grads[f'lstm{n + 1}.b'] = results[n]
        if weight_masks[n] is not None:                 # the gradient reaches a dropped weight through its mask
            grads[f'lstm{n + 1}.W'][-weight_masks[n].shape[0]:] *= weight_masks[n]
        dstate0.append((dh0, dc0))
    return grads, dstate0


def set_blas_threads(n):
    """Set the number of threads of the OpenBLAS that numpy uses, at run time. Returns the previous number,
    or None where that OpenBLAS cannot be found (then nothing changes). The pipeline of forward/backward
    wants 1: each of its threads then runs its products alone, and OpenBLAS's idle threads do not spin on
    the other core."""
    try:
        with open('/proc/self/maps') as f:
            paths = sorted({line.split()[-1] for line in f if 'openblas' in line.lower() and '/' in line})
    except OSError:
        return None
    for path in paths:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for prefix, suffix in (('scipy_openblas', '64_'), ('openblas', '64_'), ('scipy_openblas', ''),
                               ('openblas', '')):
            get = getattr(lib, f'{prefix}_get_num_threads{suffix}', None)
            put = getattr(lib, f'{prefix}_set_num_threads{suffix}', None)
            if get is not None and put is not None:
                previous = int(get())
                put(ctypes.c_int(n))
                return previous
    return None


PIPELINE_RANGES = 20                                    # time ranges a window is cut into for the pipeline


def _pipeline(run, n_layers, T, threads, reverse):
    """Call run(n, t0, t1) for every layer n and time range, each layer's ranges in time order (reversed for
    the backward pass), and a range of layer n only after the same range of the layer that feeds it (n - 1
    forward, n + 1 backward). threads = 1: one layer after the other. More: one thread per layer; numpy
    releases the GIL inside its kernels, so the layers overlap."""
    order = list(range(n_layers))[::-1] if reverse else list(range(n_layers))
    if threads <= 1 or n_layers == 1:
        for n in order:
            run(n, 0, T)
        return
    bounds = np.linspace(0, T, min(PIPELINE_RANGES, T) + 1).astype(int)
    ranges = list(zip(bounds[:-1], bounds[1:]))
    if reverse:
        ranges = ranges[::-1]
    done = {n: [threading.Event() for _ in ranges] for n in order}
    errors = []

    def work(k, n):
        try:
            for j, (t0, t1) in enumerate(ranges):
                if k > 0:
                    done[order[k - 1]][j].wait()
                if errors:
                    return
                run(n, t0, t1)
                done[n][j].set()
        except BaseException as e:                      # re-raised by the caller's thread below
            errors.append(e)
        finally:
            for event in done[n]:                       # never leave the next layer waiting
                event.set()
    workers = [threading.Thread(target=work, args=(k, n), name=f'layer{n + 1}') for k, n in enumerate(order)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    if errors:
        raise errors[0]


def loss_and_grads(params, x, y, state, dropout=0.0, rng=None, threads=1, weight_drop=0.0):
    """One truncated-BPTT window: the mean loss over x -> y, its gradients, and the state to carry on."""
    logits, new_state, cache = forward(params, x, state, dropout, rng, threads, weight_drop)
    loss, dlogits = layers.softmax_loss(logits, y)
    grads, _ = backward(dlogits, cache, threads=threads)
    return loss, grads, new_state


def train_step(params, optimizer, x, y, state, dropout=0.0, rng=None, threads=1, weight_drop=0.0):
    """Forward and backward over one window, then one optimizer update of params in place.

    Returns (loss in nats/char, gradient norm before clipping, the state to carry into the next window).
    """
    loss, grads, new_state = loss_and_grads(params, x, y, state, dropout, rng, threads, weight_drop)
    norm = optimizer.step(params, grads)
    return loss, norm, new_state


def step_state(params, ids, state):
    """Advance the model over a (T, B) block of indices without a backward pass.

    Returns (logits (T, B, V), state after the block, per-layer (h, c) arrays of shape (T, B, H)).
    """
    _, _, n_layers = sizes(params)
    inp = ids
    new_state, hidden = [], []
    for n in range(1, n_layers + 1):
        h0, c0 = state[n - 1]
        h, c, _ = layers.lstm_forward(inp, h0, c0, params[f'lstm{n}.W'], params[f'lstm{n}.b'], backward=False)
        new_state.append((h[-1].copy(), c[-1].copy()))
        hidden.append((h, c))
        inp = h
    logits, _ = layers.dense_forward(inp, params['dense.W'], params['dense.b'])
    return logits, new_state, hidden


def evaluate(params, ids, window=1000):
    """Mean cross-entropy in nats/char of predicting ids[1:] from ids[:-1], read as one stream (batch 1)
    with the state carried from window to window."""
    ids = np.asarray(ids)
    state = zero_state(params, 1)
    total, count = 0.0, 0
    for start in range(0, len(ids) - 1, window):
        x = ids[start:start + window]
        y = ids[start + 1:start + window + 1]
        x = x[:len(y)]
        logits, state, _ = step_state(params, x[:, None], state)
        loss, _ = layers.softmax_loss(logits, y[:, None])
        total += loss * len(y)
        count += len(y)
    return total / count


def generate(params, prime, length, temperature=1.0, rng=None):
    """Yield `length` sampled character indices, one at a time, after reading the indices in `prime`.

    The next character is drawn from softmax(logits / temperature); temperature 0 takes the most likely one.
    """
    rng = np.random.default_rng(rng)
    V, H, n_layers = sizes(params)
    Ws = [params[f'lstm{n}.W'] for n in range(1, n_layers + 1)]
    bs = [params[f'lstm{n}.b'] for n in range(1, n_layers + 1)]
    Wd, bd = params['dense.W'], params['dense.b']
    dtype = Wd.dtype
    # Layer n > 0 reads xh[n] = [h of layer n - 1, its own h_prev], so that one product xh[n] W gives z; layer 1
    # reads a one-hot vector, so its input part is a row of W. own[n] is layer n's h (for n > 0, a view of xh[n]).
    xh = [None] + [np.zeros(2 * H, dtype) for _ in range(1, n_layers)]
    own = [np.zeros(H, dtype)] + [v[H:] for v in xh[1:]]
    cs = [np.zeros(H, dtype) for _ in range(n_layers)]
    z = np.empty(4 * H, dtype)
    tmp = np.empty(H, dtype)
    Wh1 = Ws[0][V:]

    def step(ix):
        for n in range(n_layers):
            if n == 0:
                np.matmul(own[0], Wh1, out=z)
                np.add(z, Ws[0][ix], out=z)             # one-hot input: row ix of Wx
            else:
                np.matmul(xh[n], Ws[n], out=z)
            np.add(z, bs[n], out=z)
            layers.sigmoid(z[:3 * H], out=z[:3 * H])
            np.tanh(z[3 * H:], out=z[3 * H:])
            c = cs[n]
            c *= z[H:2 * H]                             # c = f * c_prev + i * g
            np.multiply(z[:H], z[3 * H:], out=tmp)
            c += tmp
            np.tanh(c, out=tmp)
            np.multiply(z[2 * H:3 * H], tmp, out=own[n])   # h = o * tanh(c)
            if n + 1 < n_layers:
                xh[n + 1][:H] = own[n]
        return own[-1] @ Wd + bd

    ids = list(prime)
    if not ids:
        raise ValueError('the priming text is empty: give at least one character')
    for ix in ids:
        logits = step(ix)
    for _ in range(length):
        if temperature == 0:
            ix = int(np.argmax(logits))
        else:
            z64 = logits.astype(np.float64) / temperature
            p = np.exp(z64 - z64.max())
            cdf = np.cumsum(p)
            ix = int(np.searchsorted(cdf, rng.random() * cdf[-1], side='right'))
            ix = min(ix, V - 1)
        yield ix
        logits = step(ix)


# ---------------------------------------------------------------------------------------------------------------
# Files. Arrays go in .npz files read with allow_pickle=False; metadata is a JSON string stored as a 0-d unicode
# array named 'meta'. Every file is written to a temporary file in the same folder, flushed to disk, and renamed
# into place, so a crash at any moment leaves either the old file or the new one, never half of one.

def atomic_write(path, write):
    """Call write(f) on a temporary binary file beside path, fsync it, and rename it to path."""
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix='.' + os.path.basename(path) + '.', suffix='.tmp')
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)                  # mkstemp makes 0600; give the file the usual mode
        with os.fdopen(fd, 'wb') as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    try:                                                # make the rename itself durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def save_npz(path, arrays, meta=None):
    """Write named arrays (and a JSON-able dict `meta`) to path atomically."""
    arrays = dict(arrays)
    if meta is not None:
        arrays['meta'] = np.array(json.dumps(meta))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def load_npz(path, what):
    """Read every array of an .npz file without ever running pickle. Returns (arrays, meta dict)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise ModelFileError(f'{what} file {path} does not exist')
    except IsADirectoryError:
        raise ModelFileError(f'{what} file {path} is a folder, not a file')
    except PermissionError:
        raise ModelFileError(f'{what} file {path} cannot be read: permission denied')
    except ValueError as e:
        if 'pickle' in str(e):
            raise ModelFileError(f'{what} file {path} holds pickled objects, which are never loaded: '
                                 'save plain arrays instead')
        raise ModelFileError(f'{what} file {path} is corrupt or not an .npz file ({e})')
    except Exception as e:                              # zipfile, EOF, OSError, ...: anything unreadable
        raise ModelFileError(f'{what} file {path} is corrupt or not an .npz file ({type(e).__name__}: {e})')
    meta = {}
    if 'meta' in arrays:
        m = arrays.pop('meta')
        try:
            meta = json.loads(str(m[()])) if m.shape == () and m.dtype.kind == 'U' else None
        except (ValueError, RecursionError):
            meta = None
        if not isinstance(meta, dict):
            raise ModelFileError(f'{what} file {path} has unreadable metadata')
    return arrays, meta


def save_params(path, params, meta=None):
    """Save the weights, named lstm1.W, lstm1.b, ..., dense.W, dense.b, in their dtype (float32 by default)."""
    save_npz(path, params, meta)


def load_params(path, V=None, dtype=np.float32):
    """Load and check weights saved by save_params. V, if given, is the lookup table's size.

    Returns (params in the given dtype, meta). Raises ModelFileError with a one-line reason on any problem.
    """
    arrays, meta = load_npz(path, 'weights')
    return _check_params(arrays, path, V, dtype), meta


def _check_params(arrays, path, V, dtype):
    """Check that named arrays form a model of this repo; return them as contiguous arrays of dtype."""
    for key in ('dense.W', 'dense.b', 'lstm1.W', 'lstm1.b'):
        if key not in arrays:
            raise ModelFileError(f'weights file {path} has no array {key}: it is not a model of this repo')
    n_layers = 0
    while f'lstm{n_layers + 1}.W' in arrays:
        n_layers += 1
    expected = {'dense.W', 'dense.b'} | {f'lstm{n}.{p}' for n in range(1, n_layers + 1) for p in 'Wb'}
    extra = sorted(set(arrays) - expected)
    if extra:
        raise ModelFileError(f'weights file {path} has unexpected arrays {extra}')
    Wd = arrays['dense.W']
    if Wd.ndim != 2:
        raise ModelFileError(f'weights file {path}: dense.W should be 2-D (H, V), not {Wd.shape}')
    H, Vw = Wd.shape
    shapes = {'dense.W': (H, Vw), 'dense.b': (Vw,)}
    D = Vw
    for n in range(1, n_layers + 1):
        shapes[f'lstm{n}.W'] = (D + H, 4 * H)
        shapes[f'lstm{n}.b'] = (4 * H,)
        D = H
    for key, shape in shapes.items():
        a = arrays[key]
        if a.shape != shape:
            raise ModelFileError(f'weights file {path}: {key} has shape {a.shape}, expected {shape}')
        if a.dtype.kind != 'f':
            raise ModelFileError(f'weights file {path}: {key} has dtype {a.dtype}, expected floats')
        if not np.all(np.isfinite(a)):
            raise ModelFileError(f'weights file {path}: {key} holds NaN or infinite values')
    if V is not None and V != Vw:
        raise ModelFileError(f'weights file {path} is for {Vw} characters but the lookup table has {V}: '
                             'use the lookup table saved with these weights')
    return {k: np.ascontiguousarray(arrays[k], dtype=dtype) for k in shapes}


def save_checkpoint(path, params, optimizer, state, meta, ema=None):
    """Everything a resumed run needs, in one file: the weights in their training dtype, the optimizer's state,
    the hidden state carried into the next window (h1, c1, h2, c2, ...), the running average of the weights if
    one is kept (ema), and `meta` (position, settings, random state) as JSON. One file, so that a crash can never
    leave weights and optimizer state out of step."""
    arrays = {f'weights.{k}': v for k, v in params.items()}
    if ema is not None:
        arrays.update({f'ema.{k}': v for k, v in ema.items()})
    arrays.update(optimizer.state_arrays())
    for n, (h, c) in enumerate(state, start=1):
        arrays[f'state.h{n}'] = h
        arrays[f'state.c{n}'] = c
    save_npz(path, arrays, meta)


def load_checkpoint(path, optimizer_factory):
    """Read a checkpoint written by save_checkpoint.

    optimizer_factory(params) makes the optimizer whose state is then restored.
    Returns (params, optimizer, state, meta, ema); ema is None where the checkpoint keeps no average.
    Raises ModelFileError with a one-line reason on any problem.
    """
    arrays, meta = load_npz(path, 'checkpoint')
    weights = {k[len('weights.'):]: v for k, v in arrays.items() if k.startswith('weights.')}
    if not weights:
        raise ModelFileError(f'checkpoint {path} holds no weights: it is not a training checkpoint of this repo')
    dtypes = {v.dtype for v in weights.values()}
    if len(dtypes) != 1 or dtypes.pop() not in (np.float32, np.float64):
        raise ModelFileError(f'checkpoint {path}: the weights are not all float32 or all float64')
    dtype = next(iter(weights.values())).dtype
    params = _check_params(weights, str(path), None, dtype)
    optimizer = optimizer_factory(params)
    try:
        optimizer.load_state_arrays(arrays)
    except ValueError as e:
        raise ModelFileError(f'checkpoint {path}: {e}')
    _, H, n_layers = sizes(params)
    state = []
    for n in range(1, n_layers + 1):
        h, c = arrays.get(f'state.h{n}'), arrays.get(f'state.c{n}')
        if h is None or c is None or h.ndim != 2 or h.shape != c.shape or h.shape[1] != H:
            raise ModelFileError(f'checkpoint {path} has no valid carried state for layer {n}')
        state.append((h.astype(dtype), c.astype(dtype)))
    ema = None
    if any(k.startswith('ema.') for k in arrays):
        ema = _check_params({k[len('ema.'):]: v for k, v in arrays.items() if k.startswith('ema.')},
                            f'{path} (its average weights)', None, dtype)
        if any(ema[k].shape != params[k].shape for k in params):
            raise ModelFileError(f'checkpoint {path}: the average weights do not match the weights')
    return params, optimizer, state, meta, ema
