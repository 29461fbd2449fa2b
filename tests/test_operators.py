"""Contract tests for the operator axis: adjoints, parametrisation structure (H&R 2017)."""

import numpy as np
import pytest
from keras import ops

from zoo.operators import (
    Antisymmetric,
    Conv2DOperator,
    DenseOperator,
    Free,
    NegativeSemidefinite,
    get_operator,
    get_parametrization,
)

# (operator, input shape without batch, out channels)
ALL_OPERATORS = [
    (DenseOperator(), (5,), 5),
    (DenseOperator(), (3,), 7),
    (Conv2DOperator(), (6, 5, 4), 4),
    (Conv2DOperator(), (7, 7, 3), 6),
]
TOLERANCE = {"float32": 1e-5, "float64": 1e-12}


def _random_kernel(rng, op, in_shape, out, dtype, stack=()):
    return rng.standard_normal((*stack, *op.kernel_shape(in_shape[-1], out))).astype(dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("op,in_shape,out", ALL_OPERATORS)
def test_operator_adjoint_dot_product(rng, op, in_shape, out, dtype):
    """<K x, y> = <x, K^T y> (relative 1e-5 float32, 1e-12 float64)."""
    kernel = _random_kernel(rng, op, in_shape, out, dtype)
    x = rng.standard_normal((3, *in_shape)).astype(dtype)
    y = rng.standard_normal((3, *in_shape[:-1], out)).astype(dtype)
    kx = ops.convert_to_numpy(op.apply(kernel, x))
    kty = ops.convert_to_numpy(op.adjoint(kernel, y))
    lhs, rhs = np.sum(kx * y, dtype=np.float64), np.sum(x * kty, dtype=np.float64)
    assert abs(lhs - rhs) <= TOLERANCE[dtype] * max(abs(lhs), np.linalg.norm(kx) * np.linalg.norm(y))


@pytest.mark.parametrize("op,in_shape,out", ALL_OPERATORS)
def test_adjoint_kernel_applies_the_adjoint(rng, op, in_shape, out):
    kernel = _random_kernel(rng, op, in_shape, out, "float64")
    z = rng.standard_normal((2, *in_shape[:-1], out))
    np.testing.assert_allclose(
        op.apply(op.adjoint_kernel(kernel), z), op.adjoint(kernel, z), rtol=1e-12, atol=1e-12
    )


@pytest.mark.parametrize("op,shape", [(DenseOperator(), (4,)), (Conv2DOperator(), (5, 5, 3))])
def test_identity_kernel_is_identity(rng, op, shape):
    x = rng.standard_normal((2, *shape))
    np.testing.assert_allclose(op.apply(op.identity_kernel(shape[-1], "float64"), x), x, atol=1e-14)


def _operator_matrix(op, param, kernel, shape):
    """Dense matrix of x -> param.apply(op, kernel, x) on one example of `shape` (column form)."""
    size = int(np.prod(shape))
    basis = np.eye(size).reshape(size, *shape)
    columns = ops.convert_to_numpy(param.apply(op, kernel, basis)).reshape(size, -1)
    return columns.T


@pytest.mark.parametrize("gamma", [0.0, 0.01, 0.5])
@pytest.mark.parametrize("op,shape", [(DenseOperator(), (6,)), (Conv2DOperator(), (4, 4, 3))])
def test_hr17_eq4_12_antisymmetric_effective_operator(rng, op, shape, gamma):
    """A = (K - K^T - gamma I)/2 satisfies A + A^T = -gamma I to round-off; Re(lambda) = -gamma/2."""
    param = Antisymmetric(gamma)
    raw = rng.standard_normal((3, *op.kernel_shape(shape[-1], shape[-1])))  # stacked (N, ...)
    effective = ops.convert_to_numpy(param.effective_kernel(op, raw))
    for j in range(3):
        a = _operator_matrix(op, param, effective[j], shape)
        np.testing.assert_allclose(a + a.T, -gamma * np.eye(a.shape[0]), atol=1e-13)
        np.testing.assert_allclose(np.linalg.eigvals(a).real, -gamma / 2, atol=1e-12)


@pytest.mark.parametrize("op,shape", [(DenseOperator(), (5,)), (Conv2DOperator(), (4, 4, 2))])
def test_hr17_eq4_14_negative_semidefinite_operator(rng, op, shape):
    """-C^T C is symmetric with eigenvalues <= 0, also at the zero-padded image border."""
    param = NegativeSemidefinite()
    c = rng.standard_normal(op.kernel_shape(shape[-1], shape[-1]))
    m = _operator_matrix(op, param, param.effective_kernel(op, c), shape)
    np.testing.assert_allclose(m, m.T, atol=1e-12)
    assert np.linalg.eigvalsh(m).max() <= 1e-10


def test_free_parametrisation_is_identity_map(rng):
    raw = rng.standard_normal((2, 3, 3))
    np.testing.assert_array_equal(Free().effective_kernel(DenseOperator(), raw), raw)


def test_lookup_by_name_and_errors():
    assert get_operator("dense") == DenseOperator()
    assert get_operator("conv") == Conv2DOperator(3)
    assert get_parametrization("antisymmetric") == Antisymmetric()
    with pytest.raises(ValueError, match="Unknown operator 'fft'"):
        get_operator("fft")
    with pytest.raises(ValueError, match="gamma"):
        Antisymmetric(-1.0)
    with pytest.raises(ValueError, match="kernel_size"):
        Conv2DOperator(4)
