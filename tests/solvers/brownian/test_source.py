"""Every noise source answers the NoiseSource protocol, and the package keeps its modules' privates private."""

from __future__ import annotations

import ast
import math
from pathlib import Path

import pytest
import torch

import seeds.solvers.brownian as package
from seeds.solvers.brownian import (
    AdaptiveBrownianPath,
    BrownianPath,
    IndependentPieces,
    M,
    NoiseSource,
    PartitionPath,
)

SIGMA, SIGMA_NEXT = 3.0, 2.9
PACKAGE = "seeds.solvers.brownian"
ALLOWED_OUTSIDE = {"seeds.solvers._coefficients", "seeds.solvers._backend", "seeds.solvers.coefficients"}
MODULES = sorted(Path(package.__file__).parent.glob("*.py"))


def like():
    return torch.zeros(500, 2, 20, dtype=torch.float32)


SOURCES = {
    "BrownianPath": lambda x: BrownianPath(x, 0.002, 80.0, seed=1, dtype=x.dtype),
    "AdaptiveBrownianPath": lambda x: AdaptiveBrownianPath(x, 0.002, 80.0, seed=1, dtype=x.dtype),
    "PartitionPath": lambda x: PartitionPath(
        x, [-math.log(s) for s in (80.0, SIGMA, SIGMA_NEXT, 0.002)], seed=1, dtype=x.dtype
    ),
    "IndependentPieces": lambda x: IndependentPieces(x, generator=torch.Generator().manual_seed(1)),
}


@pytest.mark.parametrize("name", SOURCES)
def test_every_source_is_a_noise_source_and_samples_noise_like_x(name):
    """The noise_sampler call gives a finite tensor like x whose entries look standard normal (moments
    within 5 standard errors: deterministic, as every source is seeded)."""
    x = like()
    source = SOURCES[name](x)
    assert isinstance(source, NoiseSource)
    noise = source(SIGMA, SIGMA_NEXT)
    assert noise.shape == x.shape and noise.dtype == x.dtype and noise.device == x.device
    assert torch.isfinite(noise).all()
    values = noise.double().numpy().ravel()
    assert abs(values.mean()) < 5 / math.sqrt(values.size)
    assert abs(values.var() - 1) < 5 * math.sqrt(2 / values.size)


def test_independent_pieces_sample_noise_as_they_draw_their_pieces():
    x = torch.zeros(4, 3, dtype=torch.float64)
    lam, lam_next = -math.log(SIGMA), -math.log(SIGMA_NEXT)
    pieces = IndependentPieces(x, generator=torch.Generator().manual_seed(7))
    sampler = IndependentPieces(x, generator=torch.Generator().manual_seed(7))
    spread = math.sqrt(M.clock_increment(lam, lam_next))
    expected = spread * sampler(math.exp(-lam), math.exp(-lam_next))
    assert torch.equal(pieces.increment(M, lam, lam_next), expected)
    path = BrownianPath(x, 0.002, 80.0, seed=3)
    assert torch.equal(IndependentPieces(x, noise_sampler=path)(SIGMA, SIGMA_NEXT), path(SIGMA, SIGMA_NEXT))
    assert IndependentPieces(x).sigma_range is None


def test_a_partition_samples_noise_only_at_its_times():
    x = torch.zeros(2, 3, dtype=torch.float64)
    path = SOURCES["PartitionPath"](x)
    lam, lam_next = -math.log(SIGMA), -math.log(SIGMA_NEXT)
    assert path.sigma_range == pytest.approx((0.002, 80.0))
    standardised = path.increment("B", lam, lam_next) / math.sqrt(lam_next - lam)
    assert torch.allclose(path(SIGMA, SIGMA_NEXT), standardised, rtol=1e-15, atol=0)
    assert torch.equal(path(SIGMA_NEXT, SIGMA), -path(SIGMA, SIGMA_NEXT))
    with pytest.raises(ValueError, match="not a time of this partition"):
        path(SIGMA, 2.0)


def imports_of(module: Path):
    """(imported module, imported name or None, line) for every import, relative ones resolved."""
    for node in ast.walk(ast.parse(module.read_text())):
        if isinstance(node, ast.Import):
            yield from ((alias.name, None, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = PACKAGE.rsplit(".", node.level - 1)[0]
                base = f"{parent}.{base}" if base else parent
            yield from ((base, alias.name, node.lineno) for alias in node.names)


@pytest.mark.parametrize("module", MODULES, ids=lambda path: path.name)
def test_no_module_imports_a_private_name_of_another(module):
    """Names other modules of the package use are public: an underscore import, or an underscore attribute
    of an imported package module, would tie a module to another's internals."""
    module_aliases = set()
    for source, name, line in imports_of(module):
        if source.startswith(PACKAGE):
            assert name is None or not name.startswith("_"), f"{module.name}:{line} imports {source}.{name}"
            if source == PACKAGE and name is not None:
                module_aliases.add(name)
    tree = ast.parse(module.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.alias) and node.name.startswith(PACKAGE + "."):
            module_aliases.add(node.asname or node.name)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in module_aliases and node.attr.startswith("_"):
                raise AssertionError(f"{module.name}:{node.lineno} uses {node.value.id}.{node.attr}")


@pytest.mark.parametrize("module", MODULES, ids=lambda path: path.name)
def test_the_package_depends_on_nothing_of_the_solvers_but_the_coefficients(module):
    """No driver, methods or models: the noise sources stand alone."""
    for source, name, line in imports_of(module):
        if not source.startswith("seeds"):
            continue
        target = f"{source}.{name}" if source == "seeds.solvers" else source
        assert target.startswith(PACKAGE) or target in ALLOWED_OUTSIDE, (
            f"{module.name}:{line} imports {target}"
        )


def test_the_package_exports_the_noise_sources_and_functionals():
    assert set(package.__all__) == {
        "B",
        "M",
        "P",
        "EDMFunctional",
        "ExponentialFunctional",
        "functional_for",
        "resolve_functional",
        "IndependentPieces",
        "BrownianPath",
        "AdaptiveBrownianPath",
        "PartitionPath",
        "NoiseSource",
        "TimeIntegralFunctional",
        "covariance",
        "time_integral_functional_for",
    }
    assert all(hasattr(package, name) for name in package.__all__)
