"""Peer samplers run side by side with ours, in the same process (benchmarks and agreement tests only; never
a runtime dependency).

k-diffusion's package `__init__` imports every submodule (torchvision, clip, wandb, ...), none of which its
samplers need. `k_diffusion_sampling()` registers a bare `k_diffusion` package whose path is the installed
folder, so `k_diffusion.sampling` imports without running that `__init__`; the one torchvision name its
`utils` imports (image helpers only) is stubbed during that import when torchvision is absent. Install the peers without
dependencies (torch must stay the local CPU build): `make peers`.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

PEER_PACKAGES = ("k-diffusion==0.1.1.post1", "torchsde==0.2.6", "torchdiffeq==0.2.5", "trampoline==0.1.2")
INSTALL = "pip install --no-deps " + " ".join(f'"{p}"' for p in PEER_PACKAGES) + "   (or: make peers)"


def k_diffusion_sampling():
    """The `k_diffusion.sampling` module of the installed k-diffusion wheel."""
    if "k_diffusion.sampling" in sys.modules:
        return sys.modules["k_diffusion.sampling"]
    spec = importlib.util.find_spec("k_diffusion")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"k-diffusion is not installed: {INSTALL}")
    package = types.ModuleType("k_diffusion")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["k_diffusion"] = package
    if importlib.util.find_spec("torchvision") is not None:
        return importlib.import_module("k_diffusion.sampling")
    stubs = _torchvision_stubs()
    sys.modules.update(stubs)
    try:
        return importlib.import_module("k_diffusion.sampling")
    finally:
        # k_diffusion.utils keeps its reference; other libraries (diffusers) probe for a real torchvision
        for name in stubs:
            sys.modules.pop(name, None)


def _torchvision_stubs() -> dict:
    functional = types.ModuleType("torchvision.transforms.functional")
    transforms = types.ModuleType("torchvision.transforms")
    transforms.functional = functional
    torchvision = types.ModuleType("torchvision")
    torchvision.transforms = transforms
    return {
        "torchvision": torchvision,
        "torchvision.transforms": transforms,
        "torchvision.transforms.functional": functional,
    }
