"""Stability diagnostics for blocks: Lemma 1, antisymmetry residual, state norms over steps.

All functions take a built `ODEBlock` and numpy-compatible inputs and return numpy arrays.
"""

from __future__ import annotations

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
