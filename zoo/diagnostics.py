"""Stability diagnostics for blocks: Lemma 1, antisymmetry residual, state norms over steps,
the backward sensitivities `||dY_N/dY_l||_2` of Galimberti et al. (2021, Eq. 14), and
`check_stability`, the pre-training warning when a step size violates its integrator's
stability condition.

All functions take a built `ODEBlock` and numpy-compatible inputs and return numpy arrays.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import ops

from zoo.dynamics import SingleLayer
from zoo.integrators import ForwardEuler

__all__ = [
    "lemma1_amplification",
    "antisymmetry_residual",
    "state_norms",
    "full_trajectory",
    "state_gradients",
    "state_gradient_norms",
    "state_jacobians",
    "sensitivity_function",
    "backward_sensitivity",
    "SENSITIVITY_AGGREGATES",
    "StabilityWarning",
    "check_stability",
]


def full_trajectory(block, inputs):
    """Every integrator state `(s_0, ..., s_N)`: a tuple of arrays `(N + 1, batch, ...)`."""
    import tensorflow as tf

    # Compiled once per call: eager op-by-op execution of a 5,000-step scan takes seconds.
    @tf.function
    def run(x):
        state0 = block.initial_state(x)
        _, states = block.propagate(state0, return_states=True)
        return state0, states

    state0, states = run(ops.convert_to_tensor(inputs, dtype=block.compute_dtype))
    return tuple(
        np.concatenate([ops.convert_to_numpy(s0)[None], ops.convert_to_numpy(s)], axis=0)
        for s0, s in zip(state0, states)
    )


def state_norms(block, inputs):
    """`||s_j||` over steps j = 0..N for every example, all streams together: `(N + 1, batch)`."""
    streams = full_trajectory(block, inputs)
    squares = sum(np.sum(s.reshape(s.shape[0], s.shape[1], -1) ** 2, axis=-1) for s in streams)
    return np.sqrt(squares)


def lemma1_amplification(block, inputs):
    """`max_i |1 + h lambda_i(J_j)|` per step j on a batch (H&R 2017, Lemma 1, Eq. 3.9).

    `J_j` is the Jacobian of the right-hand side at the state entering step j, evaluated for
    every example; the maximum is over eigenvalues and examples. Returns shape `(N,)`; values
    <= 1 mean forward Euler is stable at that step. Defined for forward-Euler blocks with a
    `SingleLayer` dynamics. The Jacobian, `diag(sigma'(Y K + b)) K^T` in the paper's column form
    (Eq. 3.7), is taken by autodiff per example, so convolution blocks work too on small images
    (the eigenproblem has size H*W*C).
    """
    if not (isinstance(block.integrator, ForwardEuler) and isinstance(block.dynamics, SingleLayer)):
        raise ValueError("Lemma 1 is stated for forward Euler on sigma(K Y + b) blocks")
    import tensorflow as tf

    (ys,) = full_trajectory(block, inputs)
    theta = block.effective_weights()
    dynamics = block.dynamics
    out = np.empty(block.depth)
    for j in range(block.depth):
        theta_j = {k: v[j] for k, v in theta.items()}
        y = tf.convert_to_tensor(ys[j])
        with tf.GradientTape() as tape:
            tape.watch(y)
            f = dynamics(theta_j, y)
        jac = tape.batch_jacobian(f, y).numpy()  # (batch, *shape, *shape)
        size = int(np.prod(ys.shape[2:]))
        jac = jac.reshape(jac.shape[0], size, size)
        eig = np.linalg.eigvals(jac.astype(np.float64))
        out[j] = np.max(np.abs(1.0 + block.h * eig))
    return out


def antisymmetry_residual(operator, kernel, gamma=0.0):
    """`max |K + K^T + gamma I|` for an effective kernel (0 to round-off if antisymmetric).

    `kernel` may carry leading stack axes; the adjoint is the operator's (for convolutions the
    flipped, channel-swapped kernel), so this checks the operator, not just the array.
    """
    kernel = ops.convert_to_tensor(kernel)
    channels = kernel.shape[-1]
    residual = kernel + operator.adjoint_kernel(kernel)
    if gamma:
        residual = residual + gamma * operator.identity_kernel(channels, dtype=kernel.dtype)
    return float(np.max(np.abs(ops.convert_to_numpy(residual))))


def state_gradients(block, block_inputs, loss_of_output):
    """`dL/dY_j` for j = 0..N (readout stream), by perturbing every state with a zero probe.

    `loss_of_output` maps the block's output to a scalar loss (e.g. head + cross-entropy).
    Returns a tuple `(gradients, loss)` with `gradients` of shape `(N + 1, batch, ...)`.
    Adding a probe `e_j = 0` to the state entering step j and differentiating with respect to
    it gives exactly the adjoint state of the discrete network (H&R 2017, Sec. 4.4).
    """
    import tensorflow as tf

    from zoo.depth_loop import fold_steps

    y0 = tf.convert_to_tensor(block_inputs, dtype=block.compute_dtype)
    state0 = block.initial_state(y0)
    probes = tf.zeros((block.depth, *state0[0].shape), dtype=y0.dtype)
    h = block.h

    def step(carry, elems):
        theta_j, probe_j = elems
        carry = (carry[0] + probe_j, *carry[1:])
        return block.integrator.step(block.dynamics, theta_j, carry, h)

    with tf.GradientTape() as tape:
        tape.watch(probes)
        final = fold_steps(step, tuple(state0), (block.effective_weights(), probes))
        output = block.final_output(final)
        tape.watch(output)
        loss = loss_of_output(output)
    probe_grads, final_grad = tape.gradient(loss, [probes, output])
    if block.carry_momentum:
        final_grad = final_grad[..., : state0[0].shape[-1]]
    return tf.concat([probe_grads, final_grad[None]], axis=0).numpy(), float(loss)


def state_gradient_norms(block, block_inputs, loss_of_output):
    """`||dL/dY_j||` (Frobenius over the batch) for j = 0..N: shape `(N + 1,)`."""
    grads, _ = state_gradients(block, block_inputs, loss_of_output)
    return np.sqrt(np.sum(grads.reshape(grads.shape[0], -1) ** 2, axis=1))


# === Backward sensitivity (Galimberti et al. 2021, Eq. 14 and Fig. 2) ===

SENSITIVITY_AGGREGATES = ("mean", "min", "max", "median", "mean_jacobian", None)


def _flat_state(state):
    """Integrator state (tuple of streams) -> `(batch, D)`: all streams, channels concatenated."""
    return ops.concatenate([ops.reshape(s, (ops.shape(s)[0], -1)) for s in state], axis=-1)


def _check_layers(block, layers):
    if layers is None:
        return tuple(range(block.depth + 1))
    layers = tuple(int(l) for l in np.atleast_1d(layers))
    bad = [l for l in layers if not 0 <= l <= block.depth]
    if bad or not layers:
        raise ValueError(
            f"`layers` must be state indices in 0..N = 0..{block.depth}; Received: layers={layers}"
        )
    return layers


def _probed_run(block, state0, probes):
    """Final state of the `N` steps with `probes[j]` added to the state entering step j."""
    from zoo.depth_loop import fold_steps

    h = block.h

    def step(carry, elems):
        theta_j, probe_j = elems
        carry = tuple(c + p for c, p in zip(carry, probe_j))
        return block.integrator.step(block.dynamics, theta_j, carry, h)

    return fold_steps(step, tuple(state0), (block.effective_weights(), tuple(probes)))


def _exact_jacobians(block, state0, layers):
    """Per-example `dS_N/dS_l`, `(L, batch, D, D)`: one backward pass on D copies of the batch.

    Copy k of the batch back-propagates the unit vector e_k from the final state, so the
    gradient with respect to zero probes added to every state gives row k of every example's
    Jacobian at every step at once (examples are independent).
    """
    import tensorflow as tf

    batch = tf.shape(state0[0])[0]
    dim = int(sum(np.prod(s.shape[1:]) for s in state0))
    copies = tuple(tf.tile(s, [dim] + [1] * (len(s.shape) - 1)) for s in state0)
    probes = tuple(
        tf.zeros(tf.concat([[block.depth, dim * batch], tf.shape(s)[1:]], 0), s.dtype)
        for s in state0
    )
    upstream = tf.repeat(tf.eye(dim, dtype=state0[0].dtype), batch, axis=0)  # (D * batch, D)
    with tf.GradientTape() as tape:
        tape.watch(probes)
        out = _flat_state(_probed_run(block, copies, probes))
    grads = tape.gradient(out, probes, output_gradients=upstream)
    flat = tf.concat(
        [tf.reshape(g, [block.depth, dim * batch, -1]) for g in grads], axis=-1
    )  # (N, D * batch, D_in): row k * batch + b is e_k^T dS_N[b]/dS_j[b]
    jac = tf.transpose(tf.reshape(flat, [block.depth, dim, batch, dim]), [0, 2, 1, 3])
    eye = tf.broadcast_to(tf.eye(dim, dtype=jac.dtype), [1, batch, dim, dim])
    jac = tf.concat([jac, eye], axis=0)  # l = N: the identity
    return tf.gather(jac, list(layers), axis=0)


def _power_norms(block, state0, layers, iterations):
    """Per-example `||dS_N/dS_l||_2` by power iteration on `J^T J` with JVPs and VJPs.

    For large states (convolutions) where the Jacobian cannot be formed. For each `l` the steps
    `l..N-1` are traced once as a Python loop (compile time grows with `N - l`) into a function
    `v -> J^T J v` (`tf.autodiff.ForwardAccumulator` for `J v`, a tape for `J^T u`); the
    iterations run eagerly. The estimate `sqrt(v^T J^T J v)` increases monotonically to the
    norm; 20 iterations give a few digits unless the top singular values are close.
    """
    import tensorflow as tf

    h = block.h
    shapes = [s.shape[1:] for s in state0]
    sizes = [int(np.prod(shape)) for shape in shapes]

    def split(flat):
        parts = tf.split(flat, sizes, axis=-1)
        return tuple(tf.reshape(p, [-1, *shape]) for p, shape in zip(parts, shapes))

    def run(state, start, stop, theta):
        for j in range(start, stop):
            state = block.integrator.step(block.dynamics, {k: w[j] for k, w in theta.items()}, state, h)
        return state

    @tf.function(reduce_retracing=True)
    def advance(state, start, stop):
        return run(state, start, stop, block.effective_weights())

    @tf.function(reduce_retracing=True)
    def jtj(start_state, v, l):
        theta = block.effective_weights()
        with tf.autodiff.ForwardAccumulator(start_state, split(v)) as acc:
            out = _flat_state(run(start_state, l, block.depth, theta))
        jv = acc.jvp(out)
        with tf.GradientTape() as tape:
            tape.watch(start_state)
            out = _flat_state(run(start_state, l, block.depth, theta))
        return _flat_state(tape.gradient(out, start_state, output_gradients=jv))

    norms, state, position = [], tuple(state0), 0
    for l in sorted(set(layers)):
        if l == block.depth:
            norms.append((l, tf.ones([tf.shape(state0[0])[0]], state0[0].dtype)))
            continue
        if l > position:
            state, position = advance(state, position, l), l
        v = tf.random.stateless_normal(tf.shape(_flat_state(state)), [l, 0], dtype=state[0].dtype)
        v = v / tf.norm(v, axis=-1, keepdims=True)
        for _ in range(iterations):
            w = jtj(state, v, l)
            sigma = tf.sqrt(tf.maximum(tf.reduce_sum(v * w, axis=-1), 0.0))
            v = w / tf.maximum(tf.norm(w, axis=-1, keepdims=True), 1e-30)
        norms.append((l, sigma))
    by_layer = dict(norms)
    return tf.stack([by_layer[l] for l in layers])


def state_jacobians(block, block_inputs, layers=None):
    """Per-example Jacobians `dS_N/dS_l` of the full integrator state: `(L, batch, D, D)`.

    `S_l` is the state entering step l (`S_0` from the block input, `S_N` the final state),
    all streams concatenated along channels and flattened (for `carry_momentum` two-stream
    blocks this is the block's `[Y, Z]`; for a leapfrog block `(Y_l, Y_{l-1})`). In the paper's
    column layout this is the transpose of Eq. 14's `dy_N/dy_l`; norms and determinants agree.
    Exact (autodiff); meant for small widths (`D` copies of the batch are propagated).
    """
    import tensorflow as tf

    layers = _check_layers(block, layers)
    x = tf.convert_to_tensor(block_inputs, dtype=block.compute_dtype)
    # Compiled: an eager 64-step scan with its adjoint takes seconds op by op.
    run = tf.function(lambda x: _exact_jacobians(block, tuple(block.initial_state(x)), layers))
    return run(x).numpy()


def _aggregate(per_example, aggregate):
    if aggregate is None:
        return per_example
    reduce = {"mean": np.mean, "min": np.min, "max": np.max, "median": np.median}[aggregate]
    return reduce(per_example, axis=-1)


def sensitivity_function(block, layers=None, pre=None, method="auto", iterations=20,
                         jit_compile=False):
    """A compiled `x -> (per-example ||dS_N/dS_l||_2 (L, batch), ||mean_b dS_N/dS_l||_2 (L,))`.

    `pre` (optional) maps `x` to the block input (e.g. the model's lifting); the function reads
    the block's current weights at every call, so it can be reused during training. `method`:
    `"exact"` forms the per-example Jacobians (small widths), `"power"` runs power iteration with
    JVPs and VJPs (large states; the mean-Jacobian norm is then NaN), `"auto"` picks `"exact"` up
    to a state size of 64.
    """
    import tensorflow as tf

    layers = _check_layers(block, layers)
    if method not in ("auto", "exact", "power"):
        raise ValueError(f"`method` must be 'auto', 'exact' or 'power'; Received: method={method!r}")

    def block_input(x):
        return tf.cast(pre(x) if pre is not None else x, block.compute_dtype)

    @tf.function(jit_compile=jit_compile, reduce_retracing=True)
    def exact(x):
        jac = _exact_jacobians(block, tuple(block.initial_state(block_input(x))), layers)
        per_example = tf.linalg.svd(jac, compute_uv=False)[..., 0]
        mean_jacobian = tf.linalg.svd(tf.reduce_mean(jac, axis=1), compute_uv=False)[..., 0]
        return per_example, mean_jacobian

    def power(x):
        state0 = tuple(block.initial_state(block_input(x)))
        per_example = _power_norms(block, state0, layers, iterations)
        return per_example, tf.fill([len(layers)], tf.constant(np.nan, per_example.dtype))

    def run(x):
        x = tf.convert_to_tensor(x)
        if method == "exact":
            return exact(x)
        if method == "power":
            return power(x)
        size = _state_size(block, x if pre is None else pre(x[:1]))
        return exact(x) if size <= 64 else power(x)

    return run


def _state_size(block, block_inputs):
    state = block.initial_state(ops.convert_to_tensor(block_inputs, dtype=block.compute_dtype))
    return int(sum(np.prod(s.shape[1:]) for s in state))


def backward_sensitivity(model_or_block, x, layers=None, aggregate="mean", method="auto",
                         block_name="block", iterations=20):
    """`||dy_N/dy_l||_2` for the chosen `l` on a batch (Galimberti et al. 2021, Eq. 14, Fig. 2).

    `model_or_block` is an `ODEBlock` (then `x` is its input) or a `keras.Model` containing
    the block `block_name` (then `x` is the model's input, mapped to the block input by the
    layers before it). `y_l` is the full integrator state entering step l (`l = 0..N`; all
    streams, see `state_jacobians`), and `dy_N/dy_l` is taken per example: the Jacobian of one
    example's final state with respect to the same example's state at step l.

    Aggregation over the batch (`aggregate`): the spectral norm of each example's Jacobian,
    then `"mean"` (default), `"min"`, `"max"` or `"median"` over the batch, or None for the
    per-example values `(L, batch)`; `"mean_jacobian"` is instead the spectral norm of the
    batch-averaged Jacobian, what the authors' code plots (`method="exact"` only). The
    non-vanishing bound `||dy_N/dy_l||_2 >= 1` of H1/H2/MS1-MS3 (forward-Euler steps with
    eigenvalues `1 + i h w`, Verlet steps with determinant 1: `det >= 1` forces the largest
    singular value to be >= 1) holds for every example, hence for `"min"` and `"mean"`; it is
    not a theorem for `"mean_jacobian"` (an average of such matrices can be small).

    Computation: exact per-example Jacobians by autodiff for states of size <= 64 (`D` copies
    of the batch, one backward pass), power iteration on `J^T J` (JVP + VJP, `iterations`)
    otherwise (`method` forces either). Returns a numpy array `(L,)` or `(L, batch)`.
    """
    from zoo.blocks import ODEBlock

    if aggregate not in SENSITIVITY_AGGREGATES:
        raise ValueError(
            f"`aggregate` must be one of {SENSITIVITY_AGGREGATES}; Received: aggregate={aggregate!r}"
        )
    if isinstance(model_or_block, ODEBlock):
        block, pre = model_or_block, None
    else:
        block = model_or_block.get_layer(block_name)
        pre = keras.Model(model_or_block.input, block.input)
    if aggregate == "mean_jacobian" and method == "power":
        raise ValueError("`aggregate='mean_jacobian'` needs the exact Jacobians (method='exact')")
    fn = sensitivity_function(block, layers, pre, method, iterations)
    per_example, mean_jacobian = fn(ops.convert_to_tensor(x))
    if aggregate == "mean_jacobian":
        return mean_jacobian.numpy()
    return _aggregate(per_example.numpy(), aggregate)


# === Pre-training stability check (issue 13) ===


class StabilityWarning(UserWarning):
    """A block's step size `h` violates its integrator's stability condition (`check_stability`)."""


def _walk_blocks(layer):
    from zoo.blocks import ODEBlock

    if isinstance(layer, ODEBlock):
        yield layer
        return
    for child in getattr(layer, "layers", None) or ():
        yield from _walk_blocks(child)


DENSE_EIG_LIMIT = 256  # per-example state size up to which spectra are exact (full eigensolve)


def _jacobian_function(fn):
    """Compiled `(theta_j, x) -> per-example Jacobians of fn(theta_j, x) w.r.t. x`, `(batch, D_out, D_in)`.

    Traced once per block and reused for every step: in eager mode `batch_jacobian` re-traces
    its vectorisation at every call (0.3-1 s per step on 2 cores), too slow for N = 1024.
    """
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def jacobian(theta_j, x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            f = fn(theta_j, x)
        jac = tape.batch_jacobian(f, x)
        return tf.reshape(jac, [tf.shape(jac)[0], -1, tf.reduce_prod(tf.shape(x)[1:])])

    def run(theta_j, x):
        return jacobian(theta_j, tf.convert_to_tensor(x)).numpy().astype(np.float64)

    return run


def _jvp_function(fn):
    """Compiled `(theta_j, x, v) -> J v` (forward mode) for one example's state `x` (batch 1)."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def jvp(theta_j, x, v):
        with tf.autodiff.ForwardAccumulator(x, v) as acc:
            f = fn(theta_j, x)
        return acc.jvp(f)

    def run(theta_j, x, v):
        x = tf.convert_to_tensor(x)
        v = tf.convert_to_tensor(np.reshape(v, x.shape), dtype=x.dtype)
        return jvp(theta_j, x, v).numpy().astype(np.float64).ravel()

    return run


def _ritz_values(matvec, dim, steps=40, seed=0):
    """Eigenvalue estimates of a `dim x dim` operator from `steps` Arnoldi steps (no restart).

    The Ritz values of the Krylov space approximate the outermost eigenvalues first, so the
    largest magnitude is an estimate of the spectral radius from `steps` matrix-vector
    products (here Jacobian-vector products), for states too large to form the Jacobian.
    """
    m = min(int(steps), dim)
    basis = np.zeros((m + 1, dim))
    hessenberg = np.zeros((m + 1, m))
    start = np.random.default_rng(seed).standard_normal(dim)
    basis[0] = start / np.linalg.norm(start)
    size = m
    for k in range(m):
        w = matvec(basis[k])
        for _ in range(2):  # Gram-Schmidt twice: keeps the basis orthogonal in floating point
            coefficients = basis[: k + 1] @ w
            w = w - coefficients @ basis[: k + 1]
            hessenberg[: k + 1, k] += coefficients
        hessenberg[k + 1, k] = np.linalg.norm(w)
        if hessenberg[k + 1, k] <= 1e-10 * max(1.0, np.abs(hessenberg[: k + 2, : k + 1]).max()):
            size = k + 1  # an invariant subspace: its Ritz values are exact eigenvalues
            break
        basis[k + 1] = w / hessenberg[k + 1, k]
    return np.linalg.eigvals(hessenberg[:size, :size])


def _spectra(block, x, kind):
    """Per step `j`, the eigenvalues (exact, or Ritz estimates) the integrator's condition needs.

    kind `"euler"`: of `I + h J_j`; `"leapfrog"`: of `J_j`; `"verlet"`: of `B_j A_j`. `x` are
    block inputs; each example's linearisation is separate (blocks act per example).
    """
    h = block.h
    theta = block.effective_weights()
    states = full_trajectory(block, x)
    dynamics, first = block.dynamics, getattr(block.integrator, "first", "z")
    dim = int(np.prod(states[0].shape[2:]))
    exact = dim <= DENSE_EIG_LIMIT
    if kind == "verlet":
        fns = (dynamics.momentum_rate, dynamics.position_rate)
    else:
        fns = (dynamics,)
    jac = [(_jacobian_function if exact else _jvp_function)(fn) for fn in fns]
    for j in range(block.depth):
        theta_j = {k: v[j] for k, v in theta.items()}
        if kind == "verlet":
            ys, zs = states
            y_at, z_at = (ys[j], zs[j + 1]) if first == "z" else (ys[j + 1], zs[j])
        else:
            y_at = states[0][j]
        if exact:
            if kind == "verlet":
                mats = jac[1](theta_j, z_at) @ jac[0](theta_j, y_at)
            else:
                mats = jac[0](theta_j, y_at)
                if kind == "euler":
                    mats = np.eye(dim) + h * mats
            yield np.linalg.eigvals(mats).ravel()
            continue
        values = []
        for b in range(len(y_at)):
            if kind == "verlet":
                def matvec(v, b=b):
                    dz = jac[0](theta_j, y_at[b: b + 1], v)
                    return jac[1](theta_j, z_at[b: b + 1], dz)
            elif kind == "euler":
                def matvec(v, b=b):
                    return v + h * jac[0](theta_j, y_at[b: b + 1], v)
            else:
                def matvec(v, b=b):
                    return jac[0](theta_j, y_at[b: b + 1], v)
            values.append(_ritz_values(matvec, dim, seed=j))
        yield np.concatenate(values)


def _measure(block, x, tolerance):
    """`(quantity, value, limit, details)` of one block on block inputs `x` (None: not measured)."""
    from zoo.integrators import Leapfrog, Verlet

    h = block.h
    if isinstance(block.integrator, ForwardEuler):
        # Lemma 1 (Eq. 3.9): `lemma1_amplification`'s quantity, for any one-stream dynamics.
        mu = np.concatenate(list(_spectra(block, x, "euler")))
        lam = (mu - 1.0) / h
        details = {"max_abs_lambda": float(np.max(np.abs(lam))), "max_re_lambda": float(np.max(lam.real))}
        return "max_j max_i |1 + h lambda_i(J_j)| (Lemma 1)", float(np.max(np.abs(mu))), 1.0 + tolerance, details
    if isinstance(block.integrator, Leapfrog):
        # Y'' = F(Y) linearised: Y'' = J Y; leapfrog is stable iff every h^2 mu(J) is real in [-4, 0].
        rho = float(max(np.max(np.abs(e)) for e in _spectra(block, x, "leapfrog")))
        return "h sqrt(rho(J)) (leapfrog)", float(h * np.sqrt(rho)), 2.0, {"rho_J": rho}
    if isinstance(block.integrator, Verlet):
        # y' = F_y(z), z' = F_z(y) linearised: y'' = B A y with A = dF_z/dy, B = dF_y/dz; the
        # staggered (symplectic Euler) step is stable iff every h^2 mu(B A) is real in [-4, 0].
        rho = float(max(np.max(np.abs(e)) for e in _spectra(block, x, "verlet")))
        return "h sqrt(rho(dF_y/dZ dF_z/dY)) (Verlet)", float(h * np.sqrt(rho)), 2.0, {"rho": rho}
    return None


def check_stability(model, inputs=None, *, tolerance=0.05, max_examples=None, warn=True):
    """Warn before training when a block's `h` violates its integrator's stability condition.

    For every `ODEBlock` of `model` (or `model` itself if it is a block) the right-hand side is
    linearised along the trajectory of `inputs` (a batch of *model* inputs, mapped to the block
    input by the layers before it; at most `max_examples` are used, by default 64 feature vectors
    or 2 images) and the integrator's condition
    is measured on the spectrum of the Jacobians `J_j` at every step `j`:

    | integrator | measured | stable when |
    |---|---|---|
    | forward Euler | `max_j max_i |1 + h lambda_i(J_j)|` (H&R 2017 Lemma 1, Eq. 3.9) | `<= 1 + tolerance` |
    | leapfrog | `h sqrt(rho(J_j))`, `J = dF/dY` of `Y'' = F(Y)` | `<= 2` |
    | Verlet | `h sqrt(rho(B_j A_j))`, `A = dF_z/dY`, `B = dF_y/dZ` | `<= 2` |

    Forward Euler needs every `h lambda` in the disc `|1 + z| <= 1`. An imaginary spectrum
    (antisymmetric kernels with `gamma = 0`, H-DNNs) sits on its boundary and is amplified by
    `sqrt(1 + h^2 omega^2)` per step, which vanishes as `h -> 0`: `tolerance` (default 5% per
    step, `h omega <~ 0.32`) accepts that consistent, small-`h` growth and flags a step that is
    too large for the spectrum, or a spectrum with `Re lambda > 0` (features that grow with
    any `h`, the paper's unstable ResNet). Leapfrog and the staggered Verlet step are the
    central-difference / symplectic-Euler schemes of `Y'' = M Y`, stable iff `h^2 mu(M)` is
    real in `[-4, 0]`, i.e. `h sqrt(rho(M)) <= 2` (for `tanh`, `rho <= ||K||^2`: `h ||K|| <= 2`
    suffices). Blocks without a step (`FeedForward`) and other integrators are skipped.

    The forward-Euler value is `lemma1_amplification`'s quantity (the same Jacobians and
    eigenvalues; tests/test_guards.py checks they agree), extended to every one-stream dynamics
    and computed with one compiled Jacobian per block instead of an eager one per step, so a
    1024-step block takes seconds, not minutes. Up to `DENSE_EIG_LIMIT` (256) values per
    example the Jacobians are formed and the spectra are exact; larger states (convolutions on
    whole images) are estimated from 40 Arnoldi steps on Jacobian-vector products (Ritz values,
    which approximate the outermost eigenvalues), per example and step.

    Returns a list with one dict per measured block (`block`, `integrator`, `h`, `depth`,
    `quantity`, `value`, `limit`, `stable`, and spectral details); with `warn=True` (default)
    every unstable block also raises a `StabilityWarning` (a `UserWarning`) naming the block,
    the integrator, `h` and the measured value. A model without `ODEBlock`s gives `[]`.
    """
    import warnings

    from zoo.blocks import ODEBlock
    from zoo.integrators import FeedForward

    if not float(tolerance) >= 0:
        raise ValueError(f"`tolerance` must be >= 0; Received: tolerance={tolerance!r}")
    blocks = list(_walk_blocks(model))
    if not blocks:  # e.g. the Liu-Markowich selection networks: nothing to check
        return []
    if inputs is None:
        shape = model.input_shape if not isinstance(model, ODEBlock) else None
        if shape is None or isinstance(shape, list):
            raise ValueError("`inputs` is needed for this model (a batch of its inputs)")
        inputs = np.random.default_rng(0).standard_normal((8, *shape[1:])).astype("float32")
    inputs = np.asarray(inputs)
    inputs = inputs[: max_examples or (2 if inputs.ndim == 4 else 64)]
    results = []
    for block in blocks:
        if isinstance(block.integrator, FeedForward):
            continue
        if block is model:
            block_inputs = inputs
        else:
            block_inputs = keras.Model(model.input, block.input).predict(inputs, verbose=0)
        measured = _measure(block, np.asarray(block_inputs).astype(block.compute_dtype), float(tolerance))
        if measured is None:
            continue
        quantity, value, limit, extra = measured
        result = {"block": block.name, "integrator": type(block.integrator).__name__, "h": block.h,
                  "depth": block.depth, "T": block.T, "quantity": quantity, "value": value, "limit": limit,
                  "stable": bool(value <= limit), **extra}
        results.append(result)
        if warn and not result["stable"]:
            hint = "use a smaller h (more steps N at the same T)"
            if extra.get("max_re_lambda", -np.inf) * block.h > tolerance:  # not round-off: real growth
                hint += (f"; the linearised ODE itself grows (max Re lambda = {extra['max_re_lambda']:.3g} > 0), "
                         "which no step size fixes (antisymmetric or Hamiltonian blocks avoid it)")
            warnings.warn(
                f"Block {block.name!r} ({result['integrator']}, N = {block.depth}, T = {block.T:g}, "
                f"h = {block.h:g}) violates its integrator's stability condition: {quantity} = "
                f"{value:.4g} > {limit:.4g} on the given inputs; {hint}.",
                StabilityWarning, stacklevel=2,
            )
    return results
