"""Stepping rules with an explicit state: `init`, `step`, `readout`, and `inverse_step`.

An integrator never stores anything on `self` during a step: the state goes in and comes out,
so the depth loop over the stacked `(N, ...)` weights is a plain scan. Integrators see only the
dynamics' interface (`__call__` for one stream, `momentum_rate`/`position_rate` for two).

| integrator     | order | streams | state              | reversible | symplectic |
|----------------|-------|---------|--------------------|------------|------------|
| ForwardEuler   | 1     | 1       | `(Y_j,)`           | no         | no         |
| Leapfrog       | 2     | 1       | `(Y_j, Y_{j-1})`   | yes        | yes        |
| Verlet         | 2*    | 2       | `(Y_j, Z_{j-1/2})` | yes        | yes        |
| FeedForward    | -     | 1       | `(Y_j,)`           | no         | no         |

(*) staggered, i.e. symplectic Euler on the (Y, Z) pair with Z at half steps, as printed in
Haber & Ruthotto 2017, Eq. 4.17 (`Verlet(first="z")`); `Verlet(first="y")` updates Y first, the
order of Chang et al. 2018 / Galimberti et al. 2021's MS3-DNN.

`FeedForward` is not a discretisation: `Y_{j+1} = F(theta_j, Y_j)` with no skip connection and
no `h`, the plain fully connected baseline of Galimberti et al. 2021, Fig. 2.
"""

from __future__ import annotations

from keras import ops

from zoo.operators import _AxisMember, _register, _resolve

__all__ = [
    "Integrator",
    "ForwardEuler",
    "Leapfrog",
    "Verlet",
    "FeedForward",
    "LEAPFROG_STARTS",
    "VERLET_FIRST",
    "get_integrator",
]


class Integrator(_AxisMember):
    order: int
    num_streams: int
    reversible = False

    def init(self, dynamics, y0, momentum_channels=None):
        raise NotImplementedError

    def step(self, dynamics, theta, state, h):
        raise NotImplementedError

    def readout(self, state):
        return state[0]

    def inverse_step(self, dynamics, theta, state, h):
        raise NotImplementedError(f"{type(self).__name__} is not exactly reversible")


@_register
class ForwardEuler(Integrator):
    """`Y_{j+1} = Y_j + h F(theta_j, Y_j)` (H&R 2017, Eq. 2.1). Order 1, one stream."""

    order = 1
    num_streams = 1

    def init(self, dynamics, y0, momentum_channels=None):
        return (y0,)

    def step(self, dynamics, theta, state, h):
        (y,) = state
        return (y + h * dynamics(theta, y),)


LEAPFROG_STARTS = ("printed", "textbook")


@_register
class Leapfrog(Integrator):
    """`Y_{j+1} = 2 Y_j - Y_{j-1} + h^2 F(theta_j, Y_j)` (H&R 2017, Eq. 4.16).

    Discretises `d2Y/dt2 = F(theta, Y)` with `dY/dt(0) = 0`. Order 2, symplectic, exactly
    reversible: `Y_{j-1} = 2 Y_j - Y_{j+1} + h^2 F(theta_j, Y_j)`.

    Args:
        start: `"printed"` (default) takes `Y_{-1} = 0`, so that `Y_1 = 2 Y_0 + h^2 F(Y_0)`
            exactly as Eq. 4.16 is printed and as the authors' code (Meganet `LeapFrogNN`,
            `Yold = 0`) does. `"textbook"` takes `Y_{-1} = Y_0`, the usual discretisation of
            `dY/dt(0) = 0`, giving `Y_1 = Y_0 + h^2 F(Y_0)`.
    """

    order = 2
    num_streams = 1
    reversible = True

    def __init__(self, start="printed"):
        if start not in LEAPFROG_STARTS:
            raise ValueError(f"`start` must be one of {LEAPFROG_STARTS}; Received: start={start!r}")
        self.start = start

    def get_config(self):
        return {"start": self.start}

    def init(self, dynamics, y0, momentum_channels=None):
        previous = ops.zeros_like(y0) if self.start == "printed" else y0
        return (y0, previous)

    def step(self, dynamics, theta, state, h):
        y, y_prev = state
        return (2.0 * y - y_prev + (h * h) * dynamics(theta, y), y)

    def inverse_step(self, dynamics, theta, state, h):
        y_next, y = state
        return (y, 2.0 * y - y_next + (h * h) * dynamics(theta, y))


VERLET_FIRST = ("z", "y")


@_register
class Verlet(Integrator):
    """Staggered Verlet (H&R 2017, Eq. 4.17), `Z_{-1/2} = 0`:

        Z_{j+1/2} = Z_{j-1/2} + h F_z(theta_j, Y_j)        (F_z = -sigma(Y K_j + b_j))
        Y_{j+1}   = Y_j       + h F_y(theta_j, Z_{j+1/2})  (F_y =  sigma(Z K_j^T + b_j))

    Two shears, so every step has Jacobian determinant 1 and is exactly invertible. Order 2 as
    a staggered scheme, symplectic, two streams.

    Args:
        first: `"z"` (default) updates the momentum `Z` first from `Y_j`, then `Y` from the new
            `Z`, as above (H&R 2017, Eq. 4.17; Galimberti et al. 2021's MS1-DNN). `"y"` updates
            `Y` first from `Z_j`, then `Z` from `Y_{j+1}`:
            `Y_{j+1} = Y_j + h F_y(theta_j, Z_j)`, `Z_{j+1} = Z_j + h F_z(theta_j, Y_{j+1})`,
            the order printed for the MS3-DNN of Galimberti et al. 2021 (Chang et al. 2018).
            Both are compositions of two shears.
    """

    order = 2
    num_streams = 2
    reversible = True

    def __init__(self, first="z"):
        if first not in VERLET_FIRST:
            raise ValueError(f"`first` must be one of {VERLET_FIRST}; Received: first={first!r}")
        self.first = first

    def get_config(self):
        return {"first": self.first}

    def init(self, dynamics, y0, momentum_channels=None):
        channels = y0.shape[-1] if momentum_channels is None else momentum_channels
        return (y0, dynamics.initial_momentum(y0, channels))

    def step(self, dynamics, theta, state, h):
        y, z = state
        if self.first == "y":
            y = y + h * dynamics.position_rate(theta, z)
            z = z + h * dynamics.momentum_rate(theta, y)
            return (y, z)
        z = z + h * dynamics.momentum_rate(theta, y)
        y = y + h * dynamics.position_rate(theta, z)
        return (y, z)

    def inverse_step(self, dynamics, theta, state, h):
        y, z = state
        if self.first == "y":
            z = z - h * dynamics.momentum_rate(theta, y)
            y = y - h * dynamics.position_rate(theta, z)
            return (y, z)
        y = y - h * dynamics.position_rate(theta, z)
        z = z - h * dynamics.momentum_rate(theta, y)
        return (y, z)


@_register
class FeedForward(Integrator):
    """`Y_{j+1} = F(theta_j, Y_j)`: a plain feed-forward chain, no skip connection, no `h`.

    Not an ODE discretisation; the fully connected network (FCNN) Galimberti et al. (2021,
    Sec. 4.3, Fig. 2) compare with, in the authors' code `y_{j+1} = tanh(K_j' y_j + b_j)`
    (`SingleLayer` dynamics). Its layer Jacobians `diag(sigma') K^T` shrink gradients when
    `tanh` saturates. One stream; not reversible.
    """

    order = 0
    num_streams = 1

    def init(self, dynamics, y0, momentum_channels=None):
        return (y0,)

    def step(self, dynamics, theta, state, h):
        (y,) = state
        return (dynamics(theta, y),)


_INTEGRATORS = {
    "forward_euler": ForwardEuler,
    "leapfrog": Leapfrog,
    "verlet": Verlet,
    "feed_forward": FeedForward,
}


def get_integrator(value):
    """`"forward_euler"`, `"leapfrog"`, `"verlet"`, `"feed_forward"`, an `Integrator` or config."""
    return _resolve(value, _INTEGRATORS, Integrator, "integrator")
