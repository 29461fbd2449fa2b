"""Bad input everywhere a user can give it gets a clear error (issue 13; catalogue in bad_inputs.py)."""

import os
import re

import pytest
from bad_inputs import CASES, run_case
from markers import needs_fashion_mnist

DOC = os.path.join(os.path.dirname(__file__), os.pardir, "docs", "reliability.md")


def _marks(case):
    return [needs_fashion_mnist] if case.id.startswith("fmnist") else []


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=_marks(c)) for c in CASES])
def test_bad_input(case, tmp_path):
    outcome, message = run_case(case, tmp_path)
    if case.exit_code is not None:
        assert outcome == case.exit_code, message
    else:
        assert isinstance(outcome, case.raises), f"{case.id}: got {outcome!r}"
    assert re.search(case.match, message, re.S), f"{case.id}: {message!r} does not match {case.match!r}"


def test_catalogue_covers_every_area_and_the_document_lists_every_case():
    assert len(CASES) >= 30 and len({c.id for c in CASES}) == len(CASES)
    assert {c.area for c in CASES} >= {"builders", "data", "registry", "hub", "export", "artefacts", "command line"}
    with open(DOC) as f:
        text = f.read()
    missing = [c.id for c in CASES if f"test_bad_input[{c.id}]" not in text]
    assert not missing, f"docs/reliability.md is stale (run python scripts/reliability_report.py): {missing}"
