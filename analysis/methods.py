"""Every sampling method, declared once.

A row says what a method is: the name a user passes (`sample(..., method=name)`), the options that select
this row among the rows of that name (prediction; variant, the slope weight "phi_1" or "phi_2" of SEEDS-2 and
of SDE-DPM-Solver++(2M); churn), the solver class that runs it (`kind`), the model output it uses, eta
(1: the reverse SDE, 0: the probability-flow ODE), the scheme of analysis.schemes and its default stage
fractions (exponential methods), model evaluations per step, and whether it draws noise. `make coefficients`
writes this table, with each method's predicted orders (analysis.orders), into solvers/_coefficients.py;
the solvers build their methods from that generated copy and never import this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import sympy as sp

from seeds.analysis.exact import PARAMETERISATIONS
from seeds.analysis.nonlinear import esra_stage_fraction

# the solver classes of seeds.solvers.methods, by kind
EXPONENTIAL, EULER_MARUYAMA, DDIM, EDM_HEUN = "exponential", "euler-maruyama", "ddim", "edm-heun"

HALF = (sp.Rational(1, 2),)
THIRDS = (sp.Rational(1, 3), sp.Rational(2, 3))


@dataclass(frozen=True)
class MethodRow:
    id: str  # unique; the key of predicted_orders()
    name: str  # what a user passes as method=
    kind: str
    prediction: str  # the model output the method uses: "noise", "data" or "edm"
    eta: int
    nfe_per_step: int
    stochastic: bool
    scheme: str | None = None
    fractions: tuple = ()  # default stage fractions (c2[, c3]) of a singlestep scheme
    selected_by: tuple = ()  # (option, value) pairs that pick this row among the rows of its name
    # draws fresh normals that are no increment of a path functional (EDM churn): the one-step expansion of
    # analysis.orders has no model of it, so it has no predicted orders
    fresh_noise: bool = False
    # sampling refuses a grid with a step that grows the state on a point-mass data law (analysis.stability):
    # ESRA's contract; SEEDS-k and the baselines run such grids as published (docs/esra.md, "Stability")
    refuses_growing_steps: bool = False


def _seeds_rows() -> list[MethodRow]:
    rows = []
    for prediction in PARAMETERISATIONS:
        chosen = (("prediction", prediction),)
        rows.append(
            MethodRow(
                f"seeds-1/{prediction}", "seeds-1", EXPONENTIAL, prediction, 1, 1, True, "seeds-1", (), chosen
            )
        )
        for variant, suffix in (("phi_1", ""), ("phi_2", "/phi_2")):
            rows.append(
                MethodRow(
                    f"seeds-2/{prediction}{suffix}",
                    "seeds-2",
                    EXPONENTIAL,
                    prediction,
                    1,
                    2,
                    True,
                    f"seeds-2/{variant}",
                    HALF,
                    chosen + (("variant", variant),),
                )
            )
        rows.append(
            MethodRow(
                f"seeds-3/{prediction}",
                "seeds-3",
                EXPONENTIAL,
                prediction,
                1,
                3,
                True,
                "seeds-3",
                THIRDS,
                chosen,
            )
        )
    return rows


def _esra_rows() -> list[MethodRow]:
    """ESRA (docs/esra.md) in each parameterisation, at the stage fraction the Ito condition fixes."""
    fraction = (esra_stage_fraction(),)
    return [
        MethodRow(
            f"esra/{prediction}",
            "esra",
            EXPONENTIAL,
            prediction,
            1,
            2,
            True,
            "esra",
            fraction,
            (("prediction", prediction),),
            refuses_growing_steps=True,
        )
        for prediction in PARAMETERISATIONS
    ]


def _exponential(name: str, prediction: str, eta: int, scheme: str, nfe: int, fractions=()) -> MethodRow:
    return MethodRow(name, name, EXPONENTIAL, prediction, eta, nfe, eta > 0, scheme, fractions)


def _baseline_rows() -> list[MethodRow]:
    rows = [
        MethodRow("euler-maruyama", "euler-maruyama", EULER_MARUYAMA, "data", 1, 1, True),
        _exponential("ddpm", "data", 1, "seeds-1", 1),
        _exponential("sde-dpm-solver++-1", "data", 1, "seeds-1", 1),
        *(
            MethodRow(
                f"sde-dpm-solver++-2m{suffix}",
                "sde-dpm-solver++-2m",
                EXPONENTIAL,
                "data",
                1,
                1,
                True,
                f"multistep-2/{variant}",
                selected_by=(("variant", variant),),
            )
            for variant, suffix in (("phi_1", ""), ("phi_2", "/phi_2"))
        ),
    ]
    for prediction, family in (("noise", "dpm-solver"), ("data", "dpm-solver++")):
        rows += [
            _exponential(f"{family}-1", prediction, 0, "seeds-1", 1),
            _exponential(f"{family}-2", prediction, 0, "seeds-2/phi_1", 2, HALF),
            _exponential(f"{family}-3", prediction, 0, "seeds-3", 3, THIRDS),
        ]
    return rows + [
        _exponential("dpm-solver++-2m", "data", 0, "multistep-2/phi_1", 1),
        MethodRow("ddim", "ddim", DDIM, "data", 0, 1, False),
        MethodRow("edm-heun", "edm-heun", EDM_HEUN, "data", 0, 2, False, selected_by=(("churn", False),)),
        MethodRow(
            "edm-churn",
            "edm-heun",
            EDM_HEUN,
            "data",
            0,
            2,
            True,
            selected_by=(("churn", True),),
            fresh_noise=True,
        ),
    ]


METHODS: dict[str, MethodRow] = {row.id: row for row in _seeds_rows() + _esra_rows() + _baseline_rows()}
