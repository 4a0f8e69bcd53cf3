"""`seeds coefficients` (`make coefficients`): regenerate solvers/_coefficients.py from the derivations
(docs/derivations.md). The only job that needs sympy, imported when it runs."""

from __future__ import annotations


def run() -> int:
    from seeds.analysis import codegen

    return codegen.main()
