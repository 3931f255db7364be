"""RMSprop, with optional clipping of the gradient by its global norm and optional weight decay.

For every parameter p with gradient g:

    cache = rho * cache + (1 - rho) * g^2
    p    -= lr * g / (sqrt(cache) + eps)      (- lr * weight_decay * p for weight matrices, if set)

The state (one cache per parameter, and the step count) is plain arrays, so it is saved and restored exactly.
"""

import numpy as np


def global_norm(grads):
    """The L2 norm of all the gradients taken together."""
    return float(np.sqrt(sum(float(np.vdot(g, g)) for g in grads.values())))


class RMSprop:
    """RMSprop over a dict of named parameters.

    - lr: learning rate; rho: decay of the running mean of squared gradients; eps: added to its square root
    - clip: if > 0, gradients whose global norm exceeds clip are scaled down to norm clip before the update
    - weight_decay: if > 0, every weight matrix (not the biases) also shrinks by lr * weight_decay * p per
      step, decoupled from the gradient (as in AdamW)
    """

    def __init__(self, params, lr=0.001, rho=0.95, eps=1e-8, clip=0.0, weight_decay=0.0):
        self.lr, self.rho, self.eps, self.clip, self.weight_decay = lr, rho, eps, clip, weight_decay
        self.cache = {k: np.zeros_like(p) for k, p in params.items()}
        self.steps = 0

    def step(self, params, grads):
        """Update params in place. Returns the gradients' global norm before clipping."""
        norm = global_norm(grads)
        scale = 1.0
        if self.clip > 0 and norm > self.clip:
            scale = self.clip / norm
        for k, p in params.items():
            g = grads[k]
            if scale != 1.0:
                g = g * p.dtype.type(scale)
            cache = self.cache[k]
            cache *= self.rho
            cache += (1.0 - self.rho) * (g * g)
            update = np.sqrt(cache)
            update += self.eps
            np.divide(g, update, out=update)
            update *= self.lr
            if self.weight_decay and p.ndim > 1:
                update += (self.lr * self.weight_decay) * p
            p -= update
        self.steps += 1
        return norm

    def state_arrays(self):
        """The state as named arrays, for saving."""
        arrays = {f'cache.{k}': v for k, v in self.cache.items()}
        arrays['steps'] = np.array(self.steps, dtype=np.int64)
        return arrays

    def load_state_arrays(self, arrays):
        """Restore the state saved by state_arrays. Raises ValueError if it does not match the parameters."""
        for k, c in self.cache.items():
            key = f'cache.{k}'
            if key not in arrays:
                raise ValueError(f'the optimizer state has no {key}')
            a = arrays[key]
            if a.shape != c.shape:
                raise ValueError(f'the optimizer state {key} has shape {a.shape}, the model needs {c.shape}')
            if a.dtype.kind != 'f' or not np.all(np.isfinite(a)) or np.any(a < 0):
                raise ValueError(f'the optimizer state {key} is not finite non-negative floats')
            self.cache[k] = np.array(a, dtype=c.dtype)
        if 'steps' not in arrays or arrays['steps'].shape != () or arrays['steps'].dtype.kind not in 'iu':
            raise ValueError('the optimizer state has no valid step count')
        self.steps = int(arrays['steps'])


def update_average(average, params, decay):
    """The exponential moving average of the weights, in place: average = decay * average + (1 - decay) *
    params. Evaluating with the average of the last ~1 / (1 - decay) steps' weights smooths out the
    optimizer's noise."""
    for k, p in params.items():
        a = average[k]
        a *= decay
        a += (1.0 - decay) * p
