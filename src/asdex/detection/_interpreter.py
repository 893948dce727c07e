"""The abstract interpreter: walks a jaxpr, applying one rule per equation."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import jax
import numpy as np
from jax.extend import core as jex_core

from ._abstract import Abstract
from ._deps import Deps, vstack

Rule = Callable[["Interpreter", jex_core.JaxprEqn, list[Abstract]], list[Abstract]]

# primitive name -> rule. Filled by the modules in `_rules/`.
RULES: dict[str, Rule] = {}

# primitive name -> interval rule: the `(lo, hi)` bounds of each integer or boolean
# output (or `None`), from the operands' bounds. Filled by `_rules/ranges.py`.
RANGE_RULES: dict[str, Callable] = {}

# Primitives whose outputs are deliberately taken to depend on every element of every
# input (sound, never tight). They get no warning: there is nothing tighter to say.
INTENTIONALLY_CONSERVATIVE: dict[str, str] = {}

# Primitives that must never be evaluated at detection time, even on known inputs.
_NEVER_EVALUATE = {
    "pure_callback",
    "io_callback",
    "debug_callback",
    "debug_print",
    "rng_uniform",
}


def register(*names: str):
    """Register a rule for one or more primitive names."""

    def wrap(rule: Rule) -> Rule:
        for name in names:
            RULES[name] = rule
        return rule

    return wrap


def register_range(*names: str):
    """Register an interval rule for one or more primitive names."""

    def wrap(rule):
        for name in names:
            RANGE_RULES[name] = rule
        return rule

    return wrap


def register_conservative(name: str, reason: str, rule: Rule | None = None) -> None:
    """Declare a primitive as intentionally all-to-all (no warning)."""
    INTENTIONALLY_CONSERVATIVE[name] = reason
    RULES[name] = rule or all_to_all


class UnknownPrimitiveWarning(UserWarning):
    """A primitive has no detection rule, so a conservative dense pattern was used."""


class Interpreter:
    """Holds what a walk needs: the number of tracked inputs and the warnings given."""

    def __init__(self, n_inputs: int, parent: Interpreter | None = None):
        self.n_inputs = n_inputs
        # Nested walks (custom rules) share the warnings and the trace cache.
        self._root = self if parent is None else parent._root
        # The variables read in the jaxpr being walked (see `is_needed`).
        self._needed: set | None = None
        if parent is None:
            self._warned: set[str] = set()
            self._cache: dict = {}

    def cached(self, key, build):
        """Memoise `build()` under `key` for the whole detection (loops re-enter rules)."""
        cache = self._root._cache
        if key not in cache:
            cache[key] = build()
        return cache[key]

    # ------------------------------------------------------------------ walking

    def run(
        self,
        jaxpr: jex_core.Jaxpr,
        consts: Sequence,
        inputs: Sequence[Abstract],
    ) -> list[Abstract]:
        env: dict = {}

        def read(var) -> Abstract:
            if isinstance(var, jex_core.Literal):
                return Abstract.constant(np.asarray(var.val, dtype=var.aval.dtype))
            return env[var]

        for var, const in zip(jaxpr.constvars, consts):
            env[var] = (
                const if isinstance(const, Abstract) else Abstract.constant(const)
            )
        if len(inputs) != len(jaxpr.invars):
            raise AssertionError("jaxpr input count mismatch")
        for var, val in zip(jaxpr.invars, inputs):
            env[var] = val
        live, needed = self.cached(("live", id(jaxpr)), lambda: _liveness(jaxpr))
        outer_needed, self._needed = self._needed, needed
        try:
            for eqn, eqn_live in zip(jaxpr.eqns, live):
                if not eqn_live:
                    continue
                invals = [read(v) for v in eqn.invars]
                outvals = self.apply(eqn, invals)
                for var, val in zip(eqn.outvars, outvals):
                    if not isinstance(var, jex_core.DropVar):
                        env[var] = val
            return [read(v) for v in jaxpr.outvars]
        finally:
            self._needed = outer_needed

    def is_needed(self, var) -> bool:
        """Whether a variable of the jaxpr being walked is read later (or returned)."""
        return self._needed is None or var in self._needed

    def run_closed(
        self, closed: jex_core.ClosedJaxpr, inputs: Sequence[Abstract]
    ) -> list[Abstract]:
        return self.run(closed.jaxpr, closed.consts, inputs)

    def apply(self, eqn: jex_core.JaxprEqn, invals: list[Abstract]) -> list[Abstract]:
        name = eqn.primitive.name
        if all(v.known for v in invals) and name not in _NEVER_EVALUATE:
            outs = evaluate(eqn, invals)
            if outs is not None:
                return outs
        rule = RULES.get(name)
        if rule is None:
            self.warn_unknown(name)
            rule = all_to_all
        outs = rule(self, eqn, invals)
        outs = [_conform(out, var.aval) for out, var in zip(outs, eqn.outvars)]
        range_rule = RANGE_RULES.get(name)
        if range_rule is not None and any(_wants_interval(o) for o in outs):
            intervals = range_rule(self, eqn, invals)
            outs = [
                Abstract(o.shape, o.dtype, None, interval=r)
                if r is not None and _wants_interval(o)
                else o
                for o, r in zip(outs, intervals)
            ]
        return outs

    def warn_unknown(self, name: str) -> None:
        warned = self._root._warned
        if name not in warned:
            warned.add(name)
            warnings.warn(
                f"asdex: no sparsity rule for the primitive `{name}`; assuming every "
                "output element depends on every input element of it. The pattern "
                "stays correct but may be denser than necessary. Please report this "
                "primitive to the asdex issue tracker.",
                UnknownPrimitiveWarning,
                stacklevel=2,
            )


def _wants_interval(v: Abstract) -> bool:
    return v.value is None and v.interval is None and v.deps is None


def _liveness(jaxpr: jex_core.Jaxpr) -> tuple[list[bool], set]:
    """Which equations contribute to the outputs, and which variables are read. Dead
    code (a custom rule's unused primal, effects such as debug prints) is skipped:
    it cannot change a pattern."""
    needed = {v for v in jaxpr.outvars if not isinstance(v, jex_core.Literal)}
    live = [False] * len(jaxpr.eqns)
    for k in range(len(jaxpr.eqns) - 1, -1, -1):
        eqn = jaxpr.eqns[k]
        if any(v in needed for v in eqn.outvars):
            live[k] = True
            needed.update(v for v in eqn.invars if not isinstance(v, jex_core.Literal))
    return live, needed


def bind_equation(eqn: jex_core.JaxprEqn, args: Sequence) -> list:
    """Apply an equation's primitive to `args` (one per invar), as `eval_jaxpr` does."""
    params = eqn.primitive.get_bind_params(eqn.params)
    out = eqn.primitive.bind(*args, **params)
    return list(out) if eqn.primitive.multiple_results else [out]


# Integer and boolean arithmetic on known scalars (loop counters, predicates) is
# evaluated in numpy: it is exact, and far cheaper than dispatching to XLA.
_NUMPY_INTEGER_OPS = {
    "add": np.add,
    "sub": np.subtract,
    "mul": np.multiply,
    "neg": np.negative,
    "lt": np.less,
    "le": np.less_equal,
    "gt": np.greater,
    "ge": np.greater_equal,
    "eq": np.equal,
    "ne": np.not_equal,
    "and": np.bitwise_and,
    "or": np.bitwise_or,
    "not": np.invert,
    "max": np.maximum,
    "min": np.minimum,
    "sign": np.sign,
    "convert_element_type": lambda a: a,
    "select_n": lambda which, *cases: np.choose(np.asarray(which, np.int64), cases),
    "div": lambda a, b: _checked_divide(a, b, _truncated_divide),
    "rem": lambda a, b: _checked_divide(a, b, np.fmod),
}


def _truncated_divide(a, b):
    # `lax.div` rounds integer quotients towards zero, numpy's `//` towards -inf.
    q = np.abs(a) // np.abs(b)
    return np.where((a < 0) != (b < 0), -q, q)


def _checked_divide(a, b, op):
    # Division by zero follows XLA's rules, not numpy's: leave it to XLA. Computing
    # in int64 keeps `abs` exact for a narrow dtype's minimum; the caller's cast
    # back wraps `INT_MIN / -1` round to `INT_MIN`, as XLA does.
    a, b = np.asarray(a), np.asarray(b)
    if np.any(b == 0) or max(_magnitude(a), _magnitude(b)) >= 2.0**62:
        return None
    return op(a.astype(np.int64), b.astype(np.int64))


def _magnitude(a) -> float:
    return float(np.abs(a.astype(np.float64)).max()) if a.size else 0.0


def evaluate(eqn: jex_core.JaxprEqn, invals: list[Abstract]) -> list[Abstract] | None:
    """Run an equation on known inputs, giving known outputs (or `None` if it fails)."""
    args = [v.value for v in invals]
    op = _NUMPY_INTEGER_OPS.get(eqn.primitive.name)
    if op is not None and all(a.dtype.kind in "biu" and a.size <= 1024 for a in args):
        out_aval = eqn.outvars[0].aval
        out = op(*args)
        if out is not None:
            return [Abstract.constant(np.asarray(out).astype(out_aval.dtype))]
    try:
        with jax.ensure_compile_time_eval():
            outs = bind_equation(eqn, args)
        return [Abstract.constant(np.asarray(o)) for o in outs]
    except Exception:  # noqa: BLE001 - evaluation is an optimisation only
        # Some values have no numpy form (PRNG keys); they stay unknown.
        return None


def _conform(out: Abstract, aval) -> Abstract:
    """Give a rule's result the equation's declared shape and dtype."""
    shape = tuple(aval.shape)
    if out.shape != shape or out.dtype != aval.dtype:
        if out.size != int(np.prod(shape, dtype=np.int64)):
            raise AssertionError(
                f"asdex internal error: rule produced shape {out.shape}, expected {shape}"
            )
        interval = out.interval
        if interval is not None:
            interval = tuple(np.reshape(b, shape) for b in interval)
        return Abstract(shape, aval.dtype, out.deps, out.value, interval)
    return out


def outputs_like(
    eqn: jex_core.JaxprEqn, deps_list: Sequence[Deps | None]
) -> list[Abstract]:
    return [
        Abstract(var.aval.shape, var.aval.dtype, deps)
        for var, deps in zip(eqn.outvars, deps_list)
    ]


def union_of_all(invals: Sequence[Abstract]) -> Deps | None:
    """One row: every input index that any element of any operand depends on."""
    parts = [v.deps for v in invals if v.deps is not None]
    if not parts:
        return None
    return vstack(parts).union_all()


def all_to_all(
    interp: Interpreter, eqn: jex_core.JaxprEqn, invals: list[Abstract]
) -> list[Abstract]:
    """Every output element depends on every element of every operand."""
    row = union_of_all(invals)
    outs = []
    for var in eqn.outvars:
        size = int(np.prod(var.aval.shape, dtype=np.int64))
        deps = None if row is None else row.gather(np.zeros(size, dtype=np.int64))
        outs.append(Abstract(var.aval.shape, var.aval.dtype, deps))
    return outs
