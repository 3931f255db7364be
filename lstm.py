"""The character-level language model: one-hot characters -> LSTM -> ... -> LSTM -> dense -> softmax.

Parameters are a flat dict of named numpy arrays, the same names as in the weights file: `lstm1.W` (V + H,
4H), `lstm1.b` (4H,), `lstm2.W` (H + H, 4H), `lstm2.b`, ..., `dense.W` (H, V), `dense.b` (V,). The hidden
state carried between windows is a list with one (h, c) pair of (B, H) arrays per LSTM layer.

The math is in layers.py. Training on the CPU runs parts of it directly: the dense layer (dense_forward,
dense_backward) and the loss (softmax_loss); sampling's softmax too (on a GPU, gpu.py computes them all). The
LSTM layers it runs through engine.py, which computes layers.py's stack_forward and stack_backward fast;
`forward(..., reference=True)` runs layers.py's own, which the tests compare with the engine.

Forward only (evaluation, sampling, the explorer), two wrappers: Predictor runs B streams side by side, any
number of steps at a time, with the state carried from call to call (sampling feeds it one step at a time);
stream reads one text as a stream a window at a time (evaluation, the explorer). Both give the same output
for the same input in every process (engine.Plan.plain()), and so does evaluate_dynamic.
"""

from typing import NamedTuple

import numpy as np

import engine
import layers

BLOCK_BATCH = 128  # block_losses runs this many blocks side by side


def init_params(V, H=512, n_layers=2, *, rng=None, dtype=np.float32):
    """Fresh parameters: uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) weights, zero biases but the forget gate's
    1."""
    rng = np.random.default_rng(rng)
    params = {}
    D = V
    for n in range(1, n_layers + 1):
        scale = 1.0 / np.sqrt(D + H)
        params[f'lstm{n}.W'] = rng.uniform(-scale, scale, size=(D + H, 4 * H)).astype(dtype)
        b = np.zeros(4 * H, dtype=dtype)
        b[H : 2 * H] = 1.0  # forget gate open at the start: remember by default
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


def dropout_mask(rng, shape, p, dtype):
    """An inverted-dropout mask: 0 with probability p, else 1 / (1 - p), so that the mean is kept."""
    keep = 1.0 - p
    mask = (rng.random(shape, dtype=np.float32) < keep).astype(dtype)
    mask /= dtype.type(keep)
    return mask


def draw_masks(rng, T, B, H, n_layers, dtype, *, dropout=0.0, variational=False, weight_drop=0.0):
    """forward's random masks, drawn from rng in one order on every device: per layer a dropout mask of its
    output ((1 if variational else T, B, H), or None without dropout), then per layer a weight-drop mask of
    its recurrent weights ((H, 4H), or None). Returns (masks, weight_masks)."""
    dtype = np.dtype(dtype)
    masks = [None] * n_layers
    if dropout > 0.0:
        masks = [dropout_mask(rng, (1 if variational else T, B, H), dropout, dtype) for _ in range(n_layers)]
    weight_masks = [None] * n_layers
    if weight_drop > 0.0:
        weight_masks = [dropout_mask(rng, (H, 4 * H), weight_drop, dtype) for _ in range(n_layers)]
    return masks, weight_masks


class Cache(NamedTuple):
    """What backward needs from forward."""

    reference: bool  # the LSTM layers ran in layers.py (True) or engine.py
    stack: object  # their stack_forward cache (layers.StackCache or engine's)
    weight_masks: list  # per layer, the weight-drop mask of its h_prev rows, or None
    dense: tuple  # layers.dense_forward's cache


def forward(
    params, x, state, *, dropout=0.0, rng=None, weight_drop=0.0, variational=False, plan=None, reference=False
):
    """Run the model over a window of truncated BPTT.

    Inputs:
    - x: (T, B) integer character indices; state: list of (h0, c0) per layer
    - dropout: probability of zeroing each input of layers 2.. and of the dense layer (inverted dropout;
      0 at evaluation), with masks drawn from rng; variational: one mask per stream for the whole window, the
      same at every time step (Gal and Ghahramani, 2016), instead of a new mask at every step
    - weight_drop: probability of zeroing each recurrent weight (the h_prev rows of every LSTM's W) for the
      whole window, the same for every chunk and step (DropConnect, as in AWD-LSTM; inverted; 0 at
      evaluation), with masks drawn from rng after the dropout masks
    - plan: how the engine computes (an engine.Plan: its threads and the widths of its in-loop products,
      measured for training, which keeps its plan in the checkpoint); None for engine.Plan.plain(), the same
      results in every process
    - reference: run layers.py (the plain math, slow) instead of the engine

    Returns (logits (T, B, V), the final state to carry, Cache).
    """
    V, H, n_layers = sizes(params)
    T, B = x.shape
    dtype = params['dense.W'].dtype
    # Drawn here, in layer order, whatever the threads.
    masks, weight_masks = draw_masks(
        rng, T, B, H, n_layers, dtype, dropout=dropout, variational=variational, weight_drop=weight_drop
    )
    Ws = [params[f'lstm{n}.W'] for n in range(1, n_layers + 1)]
    bs = [params[f'lstm{n}.b'] for n in range(1, n_layers + 1)]
    for n, mask in enumerate(weight_masks):
        if mask is not None:
            Ws[n] = Ws[n].copy()
            Ws[n][-H:] *= mask
    if reference:
        top, new_state, stack_cache = layers.stack_forward(layers.one_hot(x, V, dtype), state, Ws, bs, masks)
    else:
        plan = plan if plan is not None else engine.Plan.plain()
        top, new_state, stack_cache = engine.stack_forward(x, state, Ws, bs, masks, plan)
    logits, dense_cache = layers.dense_forward(top, params['dense.W'], params['dense.b'])
    return logits, new_state, Cache(reference, stack_cache, weight_masks, dense_cache)


def backward(dlogits, cache, *, dstate=None):
    """Gradients of the loss with respect to every parameter and to the initial state.

    Inputs: dlogits (T, B, V); the Cache from forward; dstate, an optional list of (dhT, dcT) per layer for a
    loss that also depends on the final state (None: the window's loss does not). Returns (grads, a dict named
    like params; dstate0, a list of (dh0, dc0) per layer). The engine's backward pass uses its cache up (on
    the threads forward ran on): run it once per forward pass.
    """
    grads = {}
    dtop, grads['dense.W'], grads['dense.b'] = layers.dense_backward(dlogits, cache.dense)
    stack_backward = layers.stack_backward if cache.reference else engine.stack_backward
    _, dWs, dbs, dstate0 = stack_backward(dtop, cache.stack, dstate)  # no gradient for the characters
    for n, (dW, db, wmask) in enumerate(zip(dWs, dbs, cache.weight_masks), start=1):
        if wmask is not None:  # the gradient reaches a dropped weight through its mask
            dW[-wmask.shape[0] :] *= wmask
        grads[f'lstm{n}.W'], grads[f'lstm{n}.b'] = dW, db
    return grads, dstate0


def loss_and_grads(
    params, x, y, state, *, dropout=0.0, rng=None, weight_drop=0.0, variational=False, plan=None
):
    """One truncated-BPTT window: the mean loss over x -> y, its gradients, and the state to carry on."""
    logits, new_state, cache = forward(
        params,
        x,
        state,
        dropout=dropout,
        rng=rng,
        plan=plan,
        weight_drop=weight_drop,
        variational=variational,
    )
    loss, dlogits = layers.softmax_loss(logits, y)
    grads, _ = backward(dlogits, cache)
    return loss, grads, new_state


# --- forward only: evaluation, sampling, the explorer -------------------------------------------------------


class Predictor:
    """The model run forward only over B streams side by side, any number of steps at a time, with the state
    carried from call to call (starting from zeros): sampling feeds it one step at a time. The recurrent
    weights are prepared once, for every call. self.state, [(h, c)] per layer of (B, H) arrays, is the state
    the next call starts from; a caller may replace it (beam search moves rows from one stream to another)."""

    def __init__(self, params, B=1):
        _, _, n_layers = sizes(params)
        self.params = params
        self.Ws = [params[f'lstm{n}.W'] for n in range(1, n_layers + 1)]
        self.bs = [params[f'lstm{n}.b'] for n in range(1, n_layers + 1)]
        self.Whbs = [engine.recurrent_blocks(W) for W in self.Ws]
        self.state = zero_state(params, B)

    def __call__(self, ids, *, keep=False):
        """ids: (T, B) indices. Returns the logits (T, B, V); if keep, (logits, an engine.LayerSteps per
        layer: every step's h, c (T, B, H) and activated gates [i, f, o, g] (T, B, 4H)). The state moves
        on."""
        top, self.state, steps = engine.stack_forward_only(
            np.asarray(ids), self.state, self.Ws, self.bs, self.Whbs, keep
        )
        logits, _ = layers.dense_forward(top, self.params['dense.W'], self.params['dense.b'])
        return (logits, steps) if keep else logits


def predictor(params, B=1, device=None):
    """A Predictor of B streams on the device: None for the CPU, or a util.devices.Device for a GPU."""
    return Predictor(params, B) if device is None else device.predictor(params, B)


PRIME_WINDOW = 1000  # characters of a priming text read at a time


def primed(params, prime, B, device=None, window=PRIME_WINDOW, progress=None):
    """A Predictor of B streams that have all read the indices in prime, and the logits (B, V) after it. The
    text is read once, as one stream a window at a time (any length in bounded memory), and every stream
    starts from the state it leaves. progress: None, or a callable given the number of characters read, after
    each window."""
    reader = predictor(params, 1, device)
    for t0 in range(0, len(prime), window):
        logits = reader(np.asarray(prime[t0 : t0 + window])[:, None])[-1]
        if progress is not None:
            progress(min(t0 + window, len(prime)))
    if B == 1:
        return reader, logits
    model = predictor(params, B, device)
    model.state = [(np.repeat(h, B, axis=0), np.repeat(c, B, axis=0)) for h, c in reader.state]
    return model, np.repeat(logits, B, axis=0)


class StreamWindow(NamedTuple):
    """One window of a text read by stream."""

    t0: int  # the index of its first character in the text
    logits: np.ndarray  # (n, V) for each of its n characters, predicting the next
    # If asked for, an engine.LayerSteps per layer of (n, ...) arrays (h, c (n, H), gates (n, 4H)); else None.
    steps: list


def stream(params, ids, window=1000, *, keep=False, device=None):
    """Read ids as one stream (batch 1) a window of characters at a time, the state carried from window to
    window, so that any length of text works: yields a StreamWindow per window. The window size changes
    nothing but speed and memory. device: as for predictor."""
    ids = np.asarray(ids)
    model = predictor(params, 1, device)
    for t0 in range(0, len(ids), window):
        x = ids[t0 : t0 + window, None]
        if not keep:
            yield StreamWindow(t0, model(x)[:, 0], None)
            continue
        logits, steps = model(x, keep=True)
        yield StreamWindow(
            t0, logits[:, 0], [engine.LayerSteps(*(a[:, 0] for a in layer)) for layer in steps]
        )


def evaluate(params, ids, *, window=1000, progress=None, device=None):
    """Mean cross-entropy in nats/char of predicting ids[1:] from ids[:-1], read as one stream (batch 1)
    with the state carried from window to window (the window size changes nothing but speed). progress: an
    optional callable, called now and then with the number of characters read so far."""
    ids = np.asarray(ids)
    total = 0.0
    for t0, logits, _ in stream(params, ids[:-1], window, device=device):
        loss, _ = layers.softmax_loss(logits, ids[t0 + 1 : t0 + 1 + len(logits)])
        total += loss * len(logits)
        if progress is not None:
            progress(t0 + len(logits))
    return total / (len(ids) - 1)


def char_losses(params, ids, *, window=1000, progress=None, device=None):
    """-ln p(ids[t] | ids[:t]) for every character after the first, read as one stream like evaluate: (N - 1,)
    float64, for analyses of where the model does well. progress as in evaluate."""
    ids = np.asarray(ids)
    out = []
    for t0, logits, _ in stream(params, ids[:-1], window, device=device):
        y = ids[t0 + 1 : t0 + 1 + len(logits)]
        out.append(-layers.log_softmax(logits)[np.arange(len(y)), y])
        if progress is not None:
            progress(t0 + len(y))
    return np.concatenate(out)


def block_losses(params, ids, T, starts, *, batch=BLOCK_BATCH, progress=None, device=None):
    """The score nanoGPT reports: each block ids[s:s + T + 1] (s in starts) is read from a zero state, and its
    mean -ln p of ids[s + 1:s + T + 1], each character predicted from those of its block before it.

    Blocks are run `batch` side by side through Predictor. Returns the mean loss of each block, (len(starts),)
    float64: every block has T characters, so their mean is the mean over every position of every block.
    progress as in evaluate, with the number of blocks done."""
    ids = np.asarray(ids)
    out = np.empty(len(starts))
    for k in range(0, len(starts), batch):
        s = np.asarray(starts[k : k + batch])
        block = ids[s[None, :] + np.arange(T + 1)[:, None]].astype(np.intp)  # (T + 1, B), time-major
        logp = layers.log_softmax(predictor(params, len(s), device)(block[:-1]))  # (T, B, V)
        nll = -np.take_along_axis(logp, block[1:, :, None], axis=2)[:, :, 0]  # (T, B)
        out[k : k + len(s)] = nll.mean(axis=0)
        if progress is not None:
            progress(k + len(s))
    return out


def evaluate_dynamic(params, ids, *, lr=0.2, window=50, decay=0.0, threads=1, progress=None, device=None):
    """Dynamic evaluation (Krause et al., 2018): score ids as one stream while the weights adapt to the text.

    The text is read in windows of `window` characters with the state carried. Each window is scored first,
    and only then does the model learn from it: one step of gradient descent on the window's mean loss, p -=
    lr * dL/dp, and, if decay > 0, a pull back towards the original weights, p += decay * (p0 - p). params is
    not changed. Returns (total loss in nats, characters scored) per window, as two arrays, so that a caller
    can report any part of the text. progress as in evaluate; device as for predictor.
    """
    ids = np.asarray(ids)
    if device is not None:
        return device.evaluate_dynamic(params, ids, lr=lr, window=window, decay=decay, progress=progress)
    plan = engine.Plan.plain(threads)
    p = {k: v.copy() for k, v in params.items()}
    state = zero_state(p, 1)
    sums, counts = [], []
    for start in range(0, len(ids) - 1, window):
        y = ids[start + 1 : start + window + 1]
        x = ids[start : start + len(y)]
        logits, new_state, cache = forward(p, x[:, None], state, plan=plan)
        loss, dlogits = layers.softmax_loss(logits, y[:, None])  # scored before the model learns
        sums.append(loss * len(y))
        counts.append(len(y))
        grads, _ = backward(dlogits, cache)
        for k, w in p.items():
            w -= w.dtype.type(lr) * grads[k]
            if decay:
                w += w.dtype.type(decay) * (params[k] - w)
        state = new_state
        if progress is not None:
            progress(start + len(y))
    return np.array(sums), np.array(counts)


def next_char_probs(logits, *, temperature=1.0, top_k=0, top_p=1.0):
    """The distribution the next character is drawn from: softmax(logits / temperature), restricted to the
    top_k most likely characters (0: all) and to the nucleus, the smallest set of the most likely characters
    whose probability reaches top_p (1: all), and renormalised. logits: (N, V). Returns (N, V) float64."""
    p = layers.softmax(logits, temperature)
    if top_k or top_p < 1.0:
        order = np.argsort(-p, axis=1, kind='stable')  # most likely first
        ranked = np.take_along_axis(p, order, axis=1)
        keep = np.ones_like(ranked, dtype=bool)
        if top_k:
            keep[:, top_k:] = False
        if top_p < 1.0:
            before = np.cumsum(ranked, axis=1) - ranked  # the probability of the more likely characters
            keep &= before < top_p  # keep a character while the set is still short of top_p
        drop = np.zeros_like(keep)
        np.put_along_axis(drop, order, ~keep, axis=1)
        p[drop] = 0.0
        p /= p.sum(axis=1, keepdims=True)
    return p


def sample(
    params,
    prime,
    length,
    *,
    temperature=1.0,
    rng=None,
    num_samples=1,
    top_k=0,
    top_p=1.0,
    device=None,
    prime_progress=None,
):
    """Draw num_samples texts side by side, one batch: yield `length` arrays of num_samples character indices,
    one step at a time, after reading the indices in `prime` (the same priming text for every sample; at the
    first draw, prime_progress told of it as primed's progress).

    Each next character is drawn from next_char_probs(logits, temperature, top_k, top_p); temperature 0 takes
    the most likely one. The samples are independent: each has its own state and its own draws from rng.
    """
    rng = np.random.default_rng(rng)
    prime = np.asarray(prime, dtype=np.intp)
    if prime.size == 0:
        raise ValueError('the priming text is empty: give at least one character')
    N = num_samples
    model, logits = primed(params, prime, N, device, progress=prime_progress)  # logits (N, V) after it
    x = np.empty((1, N), dtype=np.intp)
    for _ in range(length):
        if temperature == 0:
            ix = np.argmax(logits, axis=1)
        else:
            p = next_char_probs(logits, temperature=temperature, top_k=top_k, top_p=top_p)
            cdf = np.cumsum(p, axis=1)
            u = rng.random(N) * cdf[:, -1]
            ix = np.minimum((cdf <= u[:, None]).sum(axis=1), cdf.shape[1] - 1)  # the first cdf above u
        yield ix
        x[0] = ix
        logits = model(x)[0]
