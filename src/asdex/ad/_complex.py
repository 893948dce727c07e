"""Complex inputs and outputs: JAX's rules for Jacobians, and the modes they allow.

A complex function `f: ℂⁿ → ℂᵐ` has one Jacobian `J = ∂f/∂z` only if it is
holomorphic. Then a JVP with a real seed column `s` gives `J s`, and a VJP with
a real seed row gives `sᵀ J` (JAX's pullback of a holomorphic function does not
conjugate), so every mode computes the same `J`: `jax.jacfwd(f,
holomorphic=True)` and `jax.jacrev(f, holomorphic=True)` agree.

Without that promise (`holomorphic=False`, the default), JAX differentiates only
what its real-valued rules define:

- real inputs, complex outputs: `jax.jacfwd` gives `∂f/∂x`, complex. A VJP of
  such an `f` returns the real part of `cᵀ J` only, so `jax.jacrev` raises, and a
  row coloring would silently drop the imaginary parts. Forward mode is the
  answer;
- complex inputs, real outputs: `jax.jacrev` gives JAX's gradient convention,
  `∂f/∂x − i ∂f/∂y` per entry, and `jax.jacfwd` raises. Reverse mode is the
  answer;
- complex inputs and outputs: both raise.

asdex returns what the JAX function that accepts `f` returns, whatever the mode
heuristic would have picked, and raises where both JAX functions raise.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

_MODE_WORDS = {
    "fwd": "JVPs (`mode='fwd'`)",
    "rev": "VJPs (`mode='rev'`)",
    "bidirectional": "JVPs and VJPs (`mode='bidirectional'`)",
}


def _is_complex(aval) -> bool:
    return jnp.issubdtype(aval.dtype, jnp.complexfloating)


def _is_inexact(aval) -> bool:
    return jnp.issubdtype(aval.dtype, jnp.inexact)


def _names(avals) -> str:
    return ", ".join(sorted({np.dtype(a.dtype).name for a in avals}))


def complex_mode(
    in_avals: Sequence[jax.ShapeDtypeStruct],
    out_avals: Sequence[jax.ShapeDtypeStruct],
    holomorphic: bool,
    mode: str | None,
    caller: str,
    mode_argument: str = "mode",
) -> str | None:
    """The Jacobian mode to use given the dtypes: `mode`, or the only mode that
    gives JAX's answer when `mode` is `None`.

    Raises `TypeError` where `jax.jacfwd` and `jax.jacrev` both raise, and where
    `mode` cannot give JAX's answer. `mode_argument` names the argument that set
    `mode` in the error (`"mode"`, or `"coloring"` for a given coloring).
    """
    if not isinstance(holomorphic, bool):
        raise TypeError(
            f"`{caller}(holomorphic={holomorphic!r})` must be `True` or `False`."
        )
    outs = [a for a in out_avals if _is_inexact(a)]
    complex_in = any(_is_complex(a) for a in in_avals)
    complex_out = any(_is_complex(a) for a in outs)
    if holomorphic:
        real_in = [a for a in in_avals if not _is_complex(a)]
        real_out = [a for a in outs if not _is_complex(a)]
        if real_in or real_out:
            where = "inputs" if real_in else "outputs"
            raise TypeError(
                f"`{caller}(holomorphic=True)` needs complex {where}, as "
                f"`jax.jacfwd(f, holomorphic=True)` does, but `f` has {where} of "
                f"dtype {_names(real_in or real_out)}. Cast them to a complex dtype "
                "(e.g. `x.astype(jnp.complex64)`), or pass `holomorphic=False` for "
                "the Jacobian of a real function."
            )
        return mode
    if complex_in and complex_out:
        raise TypeError(
            f"`{caller}`: `f` has complex inputs and complex outputs, whose Jacobian "
            "`∂f/∂z` exists only if `f` is holomorphic (`jax.jacfwd` and "
            "`jax.jacrev` raise here too). If `f` is holomorphic (built from "
            "complex-differentiable operations, without `conj`, `abs`, `real` or "
            "`imag`), pass `holomorphic=True`. Otherwise differentiate the real map: "
            "split the inputs and outputs into real and imaginary parts (e.g. "
            "`jnp.concatenate([z.real, z.imag])`)."
        )
    if complex_out:
        return _only(
            "fwd",
            mode,
            caller,
            mode_argument,
            "real inputs and complex outputs: VJPs of such a function keep only "
            "the real part of each product (`jax.jacrev` raises here), while JVPs "
            "give the complex Jacobian, as `jax.jacfwd` does",
        )
    if complex_in:
        return _only(
            "rev",
            mode,
            caller,
            mode_argument,
            "complex inputs and real outputs: their VJPs give JAX's gradient "
            "convention `∂f/∂x − i ∂f/∂y`, as `jax.jacrev` does, while JVPs with "
            "real seeds see only `∂f/∂x` (`jax.jacfwd` raises here)",
        )
    return mode


def _only(needed: str, mode, caller: str, mode_argument: str, why: str) -> str:
    if mode is None or mode == needed:
        return needed
    if mode_argument == "coloring":
        fix = (
            f"color for {_MODE_WORDS[needed]}, e.g. "
            f"`asdex.jacobian_coloring(f, ..., mode={needed!r})`"
        )
        got = f"a coloring for {_MODE_WORDS.get(mode, repr(mode))}"
    else:
        fix = f"pass `mode={needed!r}`, or `mode=None`, which picks it"
        got = f"`mode={mode!r}`"
    raise TypeError(
        f"`{caller}` got {got}, but `f` has {why}. To get that Jacobian, {fix}; or "
        "split the complex values into real and imaginary parts for the Jacobian "
        "of the real map."
    )


def complex_dtype(dtype) -> np.dtype:
    """The complex dtype of `dtype`'s precision."""
    dtype = np.dtype(dtype)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        return dtype
    return np.dtype(jnp.complex128 if dtype.itemsize >= 8 else jnp.complex64)


def check_real_hessian(in_avals, caller: str) -> None:
    """`jax.hessian` raises for complex inputs without `holomorphic=True`; asdex's
    Hessians are of real scalar functions of real inputs."""
    complex_in = [a for a in in_avals if _is_complex(a)]
    if complex_in:
        raise TypeError(
            f"`{caller}` needs real inputs, but `f` has inputs of dtype "
            f"{_names(complex_in)} (`jax.hessian` raises here too, without "
            "`holomorphic=True`, which asdex's Hessians do not support). Split each "
            "complex input into its real and imaginary parts (e.g. "
            "`f(x[0] + 1j * x[1])` of a real `x` of shape `(2, ...)`): the Hessian "
            "of that real function is the one Newton's method and trust regions use."
        )
