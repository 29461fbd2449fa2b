"""Property-based: random shapes and configurations to every builder raise only ValueError/TypeError.

Whatever a user passes to `zoo.create`, the zoo either builds a model that runs on an input of
its declared shape, or refuses with a `ValueError`/`TypeError` naming the argument, never a
deep TensorFlow error (issue 13).
"""

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import zoo

NAMES = zoo.list_models()
SMALL_INT = st.one_of(st.integers(-3, 12), st.sampled_from([0.5, 2.0, "4", None, True]))
VALUES = {
    "depth": SMALL_INT,
    "T": st.one_of(st.floats(-2, 20), st.sampled_from([0, "1", None, float("nan"), float("inf")])),
    "width": SMALL_INT,
    "num_classes": SMALL_INT,
    "activation": st.sampled_from(["tanh", "relu", "tanhh", "", None, 3]),
    "lifting": st.sampled_from(["pad", "duplicate", "wrap", None]),
    "image_shape": st.one_of(
        st.tuples(st.integers(-1, 12), st.integers(-1, 12), st.integers(-1, 3)),
        st.sampled_from([(8, 8), (8, 8, 1, 1), "28x28", None]),
    ),
    "momentum_channels": SMALL_INT,
}


def _runs_on_its_input(model):
    shape = tuple(model.input.shape[1:])
    x = np.random.default_rng(0).uniform(0, 1, (2, *shape)).astype("float32")
    logits = np.asarray(model(x))
    assert logits.shape[0] == 2 and np.all(np.isfinite(logits)), logits


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(NAMES),
       overrides=st.dictionaries(st.sampled_from(sorted(VALUES)), st.none(), max_size=3).flatmap(
           lambda keys: st.fixed_dictionaries({k: VALUES[k] for k in keys})))
def test_builders_refuse_bad_configurations_with_value_or_type_errors(name, overrides):
    image = overrides.get("image_shape")
    if isinstance(image, tuple) and len(image) == 3 and all(isinstance(d, int) and d > 0 for d in image):
        if math.prod(image) > 12 * 12 * 3:  # keep the examples small
            return
    try:
        model = zoo.create(name, **overrides)
    except (ValueError, TypeError) as error:
        assert str(error), f"{name}({overrides}) raised an empty message"
        return
    _runs_on_its_input(model)
