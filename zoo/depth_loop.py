"""The depth loop: a fold (or scan, when the states are wanted) over stacked `(N, ...)` weights.

On TensorFlow the loop is `tf.scan` / `tf.foldl` rather than `keras.ops.scan`: Keras' TF scan
builds its while-loop without `maximum_iterations`, so its gradient cannot be compiled by XLA
("XLA compilation requires a fixed tensor list size"), and XLA is what makes a dense N = 1024
block train in milliseconds (DESIGN.md section 3).

For vector states (dense steps) the gradient of the TF fold is written as the discrete adjoint
method (Haber & Ruthotto 2017, Sec. 4.4: back-propagation "is nothing but a particular
implementation of the adjoint method"): the forward pass stores the state entering every chunk
of `STEPS_PER_ITERATION` steps, the backward pass runs the chunks in reverse and takes each
chunk's vector-Jacobian product with a local tape over its steps.
It is the exact gradient of the discrete network, and measured 2x faster than TF's generic
while-loop gradient under XLA (N = 1024, width 2: 7.2 ms vs 14.3 ms a step on 2 cores), whose
per-iteration accumulators dominate for tiny steps. For image states (a convolution per step)
it is the other way round: the adjoint's recomputed forward step costs a convolution, and TF's
own gradient, which stores every step's intermediates, was faster on 2 cores: 92 ms against
132 ms a training step for the H&R MNIST network (batch 128), 254 ms against 300 ms for the
R&H parabolic CNN (batch 125). Other backends use `ops.scan` and their own autodiff.
"""

from __future__ import annotations

import keras
from keras import ops

__all__ = ["fold_steps", "fold_steps_reversible"]


def fold_steps(step, state, weights, return_states=False, reverse=False, recompute=None):
    """Apply `state = step(state, weights_j)` for j = 0..N-1 (N-1..0 if `reverse`).

    `state` is a tuple of tensors and `weights` a dict of `(N, ...)` tensors. Returns the final
    state, or `(final_state, states)` where `states` stacks the state after each step along a
    new leading axis (in loop order). `recompute` picks the TensorFlow gradient of the forward
    fold: the adjoint that recomputes each step (True) or TF's own (False); None: the adjoint
    for vector states, TF's own for image states (see the module docstring).
    """
    if keras.backend.backend() != "tensorflow":
        def body(carry, weights_j):
            new = step(carry, weights_j)
            return new, (new if return_states else None)

        final, states = ops.scan(body, state, weights, reverse=reverse)
        return (final, states) if return_states else final

    import tensorflow as tf

    if return_states:
        states = tf.scan(step, weights, initializer=state, reverse=reverse)
        final = tf.nest.map_structure(lambda s: s[0] if reverse else s[-1], states)
        return final, states
    if reverse:
        return tf.foldr(step, weights, initializer=state)
    if recompute is None:
        recompute = all(len(s.shape) <= 2 for s in tf.nest.flatten(state))
    if not recompute:
        return tf.foldl(step, weights, initializer=state)
    return _fold_with_adjoint(step, state, weights)


def _flatten(state, weights):
    """Flat tensor lists of `state` and `weights`, and `unpack(flat) -> (state, weights)`.

    Variables are read here, outside the custom-gradient function, which must see tensors.
    """
    import tensorflow as tf

    flat_state = [tf.convert_to_tensor(s) for s in tf.nest.flatten(state)]
    flat_weights = [tf.convert_to_tensor(w) for w in tf.nest.flatten(weights)]
    num_state = len(flat_state)

    def unpack(flat):
        return (
            tf.nest.pack_sequence_as(state, list(flat[:num_state])),
            tf.nest.pack_sequence_as(weights, list(flat[num_state:])),
        )

    return flat_state, flat_weights, unpack


# Steps per loop iteration of the adjoint fold (a chunk). A dense step is a handful of tiny ops,
# and each iteration of an XLA CPU while loop costs about as much again (its condition, counter
# and slicing run as separate kernels): four steps an iteration took 18% off a width-8, N = 256
# forward and adjoint (2 cores); eight gained under 2% more and compiled twice as long. Only the
# state entering each chunk is stored, and the adjoint pass re-runs the chunk under its tape (it
# re-ran every step before too): N / 4 stored states, 6% off the width-8 antisymmetric training
# step at N = 256 and 12% at N = 1,024 in paired runs (the stored states left the 1 MB L2 cache).
# The steps and their order are unchanged: the compiled results are bit for bit those of one step
# an iteration at batch 32, and within float32 round-off at batch 1, where XLA fuses the 1-row
# matmuls of a chunk differently (tested).
STEPS_PER_ITERATION = 4


def steps_per_iteration(depth):
    """The largest of `STEPS_PER_ITERATION`, 2 and 1 that divides `depth`."""
    return next(u for u in (STEPS_PER_ITERATION, 2, 1) if depth % u == 0)


def _fold_with_adjoint(step, state, weights):
    import tensorflow as tf

    flat_state, flat_weights, unpack = _flatten(state, weights)
    num_state = len(flat_state)
    depth = flat_weights[0].shape[0]
    u = steps_per_iteration(depth)

    def chunks(t):  # (N, ...) -> (N / u, u, ...)
        return tf.reshape(t, tf.concat([[depth // u, u], tf.shape(t)[1:]], 0))

    def unchunk(t):  # (N / u, u, ...) -> (N, ...)
        return tf.reshape(t, tf.concat([[depth], tf.shape(t)[2:]], 0))

    def run_chunk(current, weight_slices):
        """The `u` steps of one chunk from the flat state `current`; `weight_slices[i]` is step
        `i`'s flat weights."""
        for weights_i in weight_slices:
            current = tf.nest.flatten(step(*unpack(list(current) + list(weights_i))))
        return current

    @tf.custom_gradient
    def run(*flat):
        flat_state0 = list(flat[:num_state])
        chunked = [chunks(w) for w in flat[num_state:]]
        # Only the state entering each chunk is stored (N / u states, not N): the adjoint pass
        # runs each chunk's steps again under a tape anyway, for their vector-Jacobian products.
        leaving = tf.scan(
            lambda current, chunk: run_chunk(current, [[w[i] for w in chunk] for i in range(u)]),
            chunked, initializer=flat_state0,
        )
        entering = [tf.concat([s0[None], s[:-1]], axis=0) for s0, s in zip(flat_state0, leaving)]
        final = [s[-1] for s in leaving]

        def grad(*upstream):
            upstream = [
                tf.zeros_like(f) if g is None else g for g, f in zip(upstream, final)
            ]

            def backward_chunk(carry, elems):
                adjoint_state, _ = carry
                entry, chunk = elems
                weight_slices = [[w[i] for w in chunk] for i in range(u)]
                sources = list(entry) + [w for weights_i in weight_slices for w in weights_i]
                with tf.GradientTape() as tape:
                    tape.watch(sources)
                    out = run_chunk(entry, weight_slices)
                grads = tape.gradient(out, sources, output_gradients=adjoint_state)
                grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, sources)]
                per_step = [grads[num_state + i * len(chunk): num_state + (i + 1) * len(chunk)]
                            for i in range(u)]
                return grads[:num_state], [tf.stack(g) for g in zip(*per_step)]

            init = (upstream, [tf.zeros_like(w[0]) for w in chunked])
            adjoints, weight_grads = tf.scan(
                backward_chunk, (entering, chunked),
                initializer=init, reverse=True,
            )
            return [a[0] for a in adjoints] + [unchunk(g) for g in weight_grads]

        return final, grad

    final = run(*(flat_state + flat_weights))
    return tf.nest.pack_sequence_as(state, list(final))


def fold_steps_reversible(step, inverse_step, state, weights, on_reconstruction=None):
    """`fold_steps` whose gradient stores no states: it runs `inverse_step` backwards instead.

    Memory-free backpropagation for an exactly invertible integrator (Verlet, leapfrog; Chang
    et al. 2018, Ruthotto & Haber 2018 Sec. 3.2): the forward pass keeps only the final state;
    the backward pass rebuilds `state_j = inverse_step(state_{j+1}, weights_j)` step by step from
    the output and takes each step's vector-Jacobian product at the rebuilt state. Activation
    memory is then independent of `N` (the per-step weight gradients, the size of the weights,
    are the only `(N, ...)` buffers). Round-off makes the rebuilt states drift from the stored
    ones; `on_reconstruction(error)` receives the relative error of the rebuilt initial state
    against the true one, `||s - s*|| / ||s*||` over all streams, in every backward pass.

    TensorFlow only (`tf.custom_gradient`); other backends raise NotImplementedError.
    """
    if keras.backend.backend() != "tensorflow":
        raise NotImplementedError("Reversible backpropagation is implemented for the TensorFlow backend")
    import tensorflow as tf

    flat_state, flat_weights, unpack = _flatten(state, weights)
    num_state = len(flat_state)

    @tf.custom_gradient
    def run(*flat):
        state0, stacked = unpack(flat)
        # One iteration in flight (the default 10 keeps up to 10 steps' buffers alive at once,
        # which made the memory of a reversible block grow with N up to N = 10).
        final = tf.nest.flatten(tf.foldl(step, stacked, initializer=state0, parallel_iterations=1))

        def grad(*upstream):
            upstream = [tf.zeros_like(f) if g is None else g for g, f in zip(upstream, final)]
            weights_flat = list(flat[num_state:])
            num_steps = int(weights_flat[0].shape[0])
            # A while loop (not a scan) so that only the per-step weight gradients are stacked:
            # a scan would stack its carry, i.e. every rebuilt state.
            arrays = [tf.TensorArray(w.dtype, size=num_steps, element_shape=w.shape[1:]) for w in weights_flat]

            def body(j, state_next, adjoint_state, arrays):
                weights_j = [w[j] for w in weights_flat]
                state_j = tf.nest.flatten(inverse_step(*unpack(list(state_next) + weights_j)))
                with tf.GradientTape() as tape:
                    tape.watch(state_j + weights_j)
                    out = step(*unpack(state_j + weights_j))
                grads = tape.gradient(
                    tf.nest.flatten(out), state_j + weights_j, output_gradients=list(adjoint_state)
                )
                grads = [tf.zeros_like(v) if g is None else g for g, v in zip(grads, state_j + weights_j)]
                arrays = [a.write(j, g) for a, g in zip(arrays, grads[num_state:])]
                return j - 1, state_j, grads[:num_state], arrays

            _, rebuilt, adjoints, arrays = tf.while_loop(
                lambda j, *_: j >= 0, body, (tf.constant(num_steps - 1), final, upstream, arrays),
                maximum_iterations=num_steps, parallel_iterations=1,
            )
            if on_reconstruction is not None:
                # Over the whole state: a stream that starts at zero (Verlet's Z) has no scale.
                error = tf.add_n([tf.reduce_sum(tf.square(r - s)) for r, s in zip(rebuilt, flat[:num_state])])
                scale = tf.add_n([tf.reduce_sum(tf.square(s)) for s in flat[:num_state]])
                on_reconstruction(tf.cast(tf.sqrt(error / tf.maximum(scale, tf.cast(1e-300, scale.dtype)
                                                                      if scale.dtype == tf.float64
                                                                      else tf.cast(1e-30, scale.dtype))), "float32"))
            return list(adjoints) + [a.stack() for a in arrays]

        return final, grad

    final = run(*(flat_state + flat_weights))
    return tf.nest.pack_sequence_as(state, list(final))
