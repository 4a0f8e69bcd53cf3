"""Elementwise maths that works the same on Python floats, numpy arrays and torch tensors.

The generated coefficient functions in `_coefficients.py` are written against these names only, so one
generated source serves every backend. Torch inputs are evaluated in float64 (where the device has it) and
cast back, so a float32 caller gets a correctly rounded float32 answer rather than float32 cancellation.
"""

from __future__ import annotations

import functools
import math

import numpy as np

try:
    import torch
except ImportError:  # torch is a dependency, but the symbolic side must not need it
    torch = None


def _is_tensor(x) -> bool:
    return torch is not None and isinstance(x, torch.Tensor)


def _pick(x, scalar, array, tensor):
    if _is_tensor(x):
        return tensor
    if isinstance(x, np.ndarray) or isinstance(x, np.generic):
        return array
    return scalar


def exp(x):
    return _pick(x, math.exp, np.exp, torch and torch.exp)(x)


def expm1(x):
    return _pick(x, math.expm1, np.expm1, torch and torch.expm1)(x)


def log(x):
    return _pick(x, math.log, np.log, torch and torch.log)(x)


def log1p(x):
    return _pick(x, math.log1p, np.log1p, torch and torch.log1p)(x)


def sqrt(x):
    return _pick(x, math.sqrt, np.sqrt, torch and torch.sqrt)(x)


def asinh(x):
    return _pick(x, math.asinh, np.arcsinh, torch and torch.asinh)(x)


def atan(x):
    return _pick(x, math.atan, np.arctan, torch and torch.atan)(x)


def tan(x):
    return _pick(x, math.tan, np.tan, torch and torch.tan)(x)


def absolute(x):
    return _pick(x, abs, np.abs, torch and torch.abs)(x)


def where(condition, if_true, if_false):
    if _is_tensor(condition) or _is_tensor(if_true) or _is_tensor(if_false):
        return torch.where(condition, if_true, if_false)
    return np.where(condition, if_true, if_false)


def _float64_device(device) -> bool:
    return device.type != "mps"


def elementwise(function):
    """Run `function` in float64 and hand back the caller's type, dtype and device.

    Python ints and floats give a Python float (computed with numpy float64); numpy inputs give float64
    arrays; torch inputs are promoted
    to a common floating dtype, evaluated in float64 and cast back to that dtype. Results always take the
    broadcast shape of the arguments, also where the formula does not depend on all of them.
    """

    @functools.lru_cache(maxsize=4096)
    def on_scalars(*args):
        # Python scalars go through numpy too: `where` evaluates both branches, and numpy lets the
        # discarded one be inf/nan where math would raise. Memoised: a solver on a uniform grid asks for
        # the same coefficients at every step.
        with np.errstate(all="ignore"):
            return float(function(*[np.float64(a) for a in args]))

    @functools.wraps(function)
    def wrapper(*args):
        tensors = [a for a in args if _is_tensor(a)]
        if tensors:
            out_dtype = functools.reduce(torch.promote_types, [t.dtype for t in tensors])
            if not out_dtype.is_floating_point:
                out_dtype = torch.get_default_dtype()
            device = tensors[0].device
            work_dtype = torch.float64 if _float64_device(device) else torch.float32
            converted = [
                a.to(device=device, dtype=work_dtype)
                if _is_tensor(a)
                else torch.as_tensor(a, dtype=work_dtype, device=device)
                for a in args
            ]
            result = torch.as_tensor(function(*converted), dtype=work_dtype, device=device)
            return result.expand(torch.broadcast_shapes(*(t.shape for t in converted))).to(out_dtype)
        if not any(isinstance(a, (np.ndarray, np.generic)) for a in args):
            return on_scalars(*(float(a) for a in args))
        arrays = [np.asarray(a, dtype=np.float64) for a in args]
        with np.errstate(all="ignore"):
            result = np.broadcast_to(
                function(*arrays), np.broadcast_shapes(*(a.shape for a in arrays))
            ).copy()
        return result

    return wrapper
