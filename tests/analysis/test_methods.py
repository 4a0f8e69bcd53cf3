"""The method table: every method declared once, consistent with its scheme, and generated with its orders."""

import pytest

from seeds.analysis import methods, orders, schemes
from seeds.solvers import _coefficients as generated

ROWS = list(methods.METHODS.values())


@pytest.mark.parametrize("row", [r for r in ROWS if r.kind == methods.EXPONENTIAL], ids=lambda r: r.id)
def test_an_exponential_row_fits_its_scheme(row):
    scheme = schemes.SCHEMES[row.scheme]
    # a singlestep scheme evaluates the model at the start and at every stage but the last
    assert row.nfe_per_step == (1 if scheme.multistep else len(scheme.stages))
    assert len(row.fractions) == (0 if scheme.multistep else len(scheme.parameters))
    assert list(row.fractions) == sorted(row.fractions) and all(0 < c < 1 for c in row.fractions)
    assert row.stochastic == (row.eta > 0)


def test_rows_of_one_name_are_told_apart_by_their_options():
    by_name = {}
    for row in ROWS:
        by_name.setdefault(row.name, []).append(dict(row.selected_by))
    for name, choices in by_name.items():
        assert len(choices) == len({tuple(sorted(c.items())) for c in choices}), name
        assert len(choices) == 1 or all(choices), name


def test_every_row_but_the_churn_sampler_has_predicted_orders():
    assert {row.id for row in ROWS if not row.fresh_noise} == set(orders.METHODS)
    assert [row.id for row in ROWS if row.fresh_noise] == ["edm-churn"]


def test_the_generated_table_is_the_declared_one_with_its_orders():
    assert list(generated.METHOD_TABLE) == [row.id for row in ROWS]
    predicted = orders.predicted_orders()
    for row in ROWS:
        entry = generated.METHOD_TABLE[row.id]
        assert (entry["name"], entry["kind"], entry["prediction"], entry["scheme"]) == (
            row.name,
            row.kind,
            row.prediction,
            row.scheme,
        )
        assert (entry["nfe_per_step"], entry["stochastic"], entry["eta"]) == (
            row.nfe_per_step,
            row.stochastic,
            row.eta,
        )
        assert entry["fractions"] == tuple(float(c) for c in row.fractions)
        if row.fresh_noise:
            assert entry["orders"] is None
        else:
            assert {k: entry["orders"][k] for k in ("strong", "weak")} == predicted[row.id]
            assert {k: entry["orders"][k] for k in ("p1", "p2", "q2")} == orders.local_error_orders(row.id)
