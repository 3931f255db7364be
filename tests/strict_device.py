"""numpy dressed as CuPy, for running the GPU paths on any machine as strictly as a GPU would.

The numpy twins (gpu_kernels.NumpyOps) compute on numpy arrays, which mix freely with the host's: a host array
handed to a device function, or a device array handed to numpy, works there and fails on a GPU. Here device
arrays are DeviceArray, a wrapper of a numpy array that does what CuPy's ndarray does with the host's:
- a function of the device module (StrictXp) or an operator takes device arrays and Python or numpy scalars,
  and refuses a numpy array (CuPy: "Unsupported type <class 'numpy.ndarray'>");
- numpy refuses to turn a device array into one of its own (CuPy: "Implicit conversion to a NumPy array is not
  allowed"): asnumpy and asarray are the only ways between the two;
- reductions give 0-d device arrays, not numpy scalars; float() and bool() of one read it back.
StrictOps is NumpyOps on these arrays: the kernels' twins on what the arrays wrap.
"""

import numpy as np

import gpu_kernels


class HostArrayOnDevice(TypeError):
    """A numpy array where the device takes only its own (what CuPy raises)."""


def _inner(value, where):
    """The numpy array inside a device value (and scalars as they are); a host array is refused."""
    if isinstance(value, DeviceArray):
        return value.a
    if isinstance(value, np.ndarray):
        raise HostArrayOnDevice(f'{where}: a numpy array {value.shape} where the device takes only its own')
    if isinstance(value, (list, tuple)):
        return type(value)(_inner(v, where) for v in value)
    if isinstance(value, dict):
        return {k: _inner(v, where) for k, v in value.items()}
    return value


def _outer(value):
    """A result as the device gives it: arrays and numpy scalars as device arrays."""
    if isinstance(value, (np.ndarray, np.generic)):
        return DeviceArray(np.asarray(value))
    if isinstance(value, (list, tuple)):
        return type(value)(_outer(v) for v in value)
    return value


class DeviceArray(np.lib.mixins.NDArrayOperatorsMixin):
    """An array on the pretend device: a numpy array inside, CuPy's manners outside."""

    __slots__ = ('a',)

    def __init__(self, a):
        self.a = a

    def __array__(self, dtype=None, copy=None):
        raise TypeError('Implicit conversion to a NumPy array is not allowed (a device array): use asnumpy')

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get('out')
        result = getattr(ufunc, method)(*_inner(inputs, ufunc.__name__), **_inner(kwargs, ufunc.__name__))
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _outer(result)

    def __array_function__(self, func, types, args, kwargs):
        raise TypeError(f'numpy.{func.__name__} of a device array: use the device module (xp) or asnumpy')

    # what CuPy's ndarray has of numpy's, as gpu.py uses it
    shape = property(lambda self: self.a.shape)
    dtype = property(lambda self: self.a.dtype)
    size = property(lambda self: self.a.size)
    ndim = property(lambda self: self.a.ndim)
    itemsize = property(lambda self: self.a.itemsize)
    T = property(lambda self: DeviceArray(self.a.T))

    def __len__(self):
        return len(self.a)

    def __iter__(self):
        return (DeviceArray(row) for row in self.a)

    def __getitem__(self, index):
        return _outer(self.a[_inner(index, 'indexing')])

    def __setitem__(self, index, value):
        self.a[_inner(index, 'indexing')] = _inner(value, 'assignment')

    def __float__(self):
        return float(self.a)

    def __bool__(self):
        return bool(self.a)

    def __int__(self):
        return int(self.a)

    def __repr__(self):
        return f'DeviceArray({self.a!r})'

    def reshape(self, *shape):
        return DeviceArray(self.a.reshape(*shape))

    def copy(self):
        return DeviceArray(self.a.copy())

    def fill(self, value):
        self.a.fill(_inner(value, 'fill'))

    def astype(self, dtype, copy=True):
        return DeviceArray(self.a.astype(dtype, copy=copy))

    def sum(self, *args, **kwargs):
        return _outer(self.a.sum(*args, **_inner(kwargs, 'sum')))

    def mean(self, *args, **kwargs):
        return _outer(self.a.mean(*args, **kwargs))

    def all(self, *args, **kwargs):
        return _outer(self.a.all(*args, **kwargs))

    def max(self, *args, **kwargs):
        return _outer(self.a.max(*args, **kwargs))


class StrictXp:
    """The device module: numpy's functions on device arrays only; asarray and asnumpy move between host and
    device."""

    def __getattr__(self, name):
        attr = getattr(np, name)
        if not callable(attr) or isinstance(attr, type):  # dtypes, constants, numpy.float32
            return attr

        def on_device(*args, **kwargs):
            return _outer(attr(*_inner(args, name), **_inner(kwargs, name)))

        return on_device

    @staticmethod
    def asarray(a, dtype=None):
        """Host to device (a copy), or a device array as it is (converted to dtype)."""
        if isinstance(a, DeviceArray):
            return a if dtype is None else a.astype(dtype, copy=False)
        return DeviceArray(np.array(a, dtype))

    @staticmethod
    def asnumpy(a):
        """Device to host: a copy, as from a GPU."""
        return a.a.copy() if isinstance(a, DeviceArray) else np.asarray(a)


class StrictOps(gpu_kernels.NumpyOps):
    """The twins on device arrays: each op takes only device arrays, and computes on what they wrap."""

    xp = StrictXp()
    name = 'numpy'

    @staticmethod
    def asnumpy(a):
        return StrictXp.asnumpy(a)

    def forward_loop(self, *arrays):
        super().forward_loop(*_inner(arrays, 'forward_loop'))

    def backward_loop(self, *arrays):
        super().backward_loop(*_inner(arrays, 'backward_loop'))

    def softmax_xent(self, z, y):
        return _outer(super().softmax_xent(*_inner((z, y), 'softmax_xent')))

    def rmsprop(self, p, g, cache, norm2, *scalars):
        super().rmsprop(*_inner((p, g, cache, norm2), 'rmsprop'), *scalars)
