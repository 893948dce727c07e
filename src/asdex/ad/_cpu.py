"""The choices made for XLA's CPU backend, in one table, with the measurement
behind each.

XLA compiles the same products differently on CPU and on GPUs. On CPU, batched
shifts and pads run slowly, a fused gather recomputes what it reads, and compile
times grow with unrolling, so the compressed-AD engine (`_compressed.py`) and the
call from Python (`_sparse_derivative.py`) pick their programs by size, with
`jax.lax.platform_dependent` where the platform is only known when compiling.
The figures are from the 2-core CPU machine the benchmarks ran on
(`benchmarks/call_sites.py`, `benchmarks/jacobians.py`), each pair measured side
by side in one process; GPUs take the other branch of each choice.

| threshold | value | what it decides |
|---|---|---|
| `UNROLL` | 8 | products unrolled; more run in a `lax.map` |
| `HOST_SWEEP_FROM_BLOCKS` | 4 | acyclic substitution sweeps of this many blocks run on the host |
| `MAX_CONSTANT_SEEDS` | 2²³ | seed entries built as program constants in a caller's `jit` |
| `MAX_CONSTANT_SEEDS_IN_SOLVERS` | 2²⁰ | the same, for the operators that solvers build |
| `DISPATCH_FROM` | 5 | products from which a call from Python runs one program each… |
| `DISPATCH_FROM_SIZE` | 2¹⁷ | …when the derivative has at least this many rows or columns |

Tests change these through this module (`monkeypatch.setattr(_cpu, ...)`); the
code reads them at call time.
"""

# XLA's CPU code for batched slices, pads and concatenations (shifted stencils and
# their transposes) runs 5-10x slower than the same ops unbatched: a
# forward-over-reverse Rosenbrock HVP over 2 seeds takes 6.6 ms batched and 1.0 ms
# unrolled at n = 10⁶, and 12 JVPs of the 512² Brusselator take ~110 t_f batched
# against ~38 t_f one after the other. Unrolled is faster still than a loop (the 5
# HVPs of the 512² Bratu energy: 1.2 against 2.2 ms; the 12 JVPs of the 128²
# Brusselator: 0.7 against 1.9 ms), but its compile time grows with the number of
# products (those 12 JVPs: 1.3 s, and 0.3 s as a loop).
UNROLL = 8

# XLA compiles each block of a substitution sweep's prefix sums in about 10 ms,
# and runs a sweep faster than a host callback, which costs ~0.1 ms a call: a
# chained Rosenbrock plan (one block) takes 83 against 183 µs a Hessian at
# n = 1,000, and 1.9 against 2.6 ms at n = 300,000, with the same compile time.
HOST_SWEEP_FROM_BLOCKS = 4

# Constant seeds let XLA fold what the products compute from the seed alone: in a
# caller's `jit`, the 5 HVPs of the 512² Bratu energy take 1.1 t_grad with
# constant seeds against 3.7 with seeds computed from the colors, and the 12 JVPs
# of the 512² Brusselator 10.7 against 23.9 t_f; compiling costs more (3.8
# against 1.8 s for that Brusselator). See `_compressed.constant_seeds`.
MAX_CONSTANT_SEEDS = 2**23

# Solvers compile their loop once per solve and run a few steps: the 512²
# Brusselator operator compiled in 4.9 s with constant seeds against 0.7 s
# without (4.2 against 45 ms a call), and a Newton solve of the 1000² Bratu
# problem took 10.7 against 6.7 s. At 128² constant seeds still pay: the
# Brusselator operator 0.35 against 2.7 ms a call, compiled in 0.35 against
# 0.25 s.
MAX_CONSTANT_SEEDS_IN_SOLVERS = 2**20

# Many JVPs in one program run slower on CPU than the same products compiled one
# per program: the 12 JVPs of the 512² Brusselator take 36 t_f as one program and
# 21 t_f as one program per product. Smaller calls lose more to dispatching than
# they gain (at the 128² Brusselator, 28 t_f against 17). See
# `_sparse_derivative.dispatch_per_product`.
DISPATCH_FROM = 5
DISPATCH_FROM_SIZE = 2**17
