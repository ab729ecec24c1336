"""The "healthy" VAE: MONAI's ``VarAutoEncoder`` with encode/decode exposed for TorchScript.

Trained on healthy volumes only, its decoder can produce only healthy-looking anatomy; it is
what the counterfactual baselines (:mod:`medattr.baselines.counterfactual`) are built from.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from medattr.errors import ModelError
from medattr.generative._files import open_scripted, spec_of
from medattr.models import ModelSpec
from medattr.models.loading import file_sha256

__all__ = ["HealthyVAE", "LoadedVAE", "load_vae"]


class HealthyVAE(torch.nn.Module):
    """A 3D VAE with ``encode(x) -> (mu, logvar)`` and ``decode(z) -> x``.

    Parameters
    ----------
    in_shape
        ``(C, D, H, W)`` of the model-grid input.
    latent_size
        Dimension of the latent vector.
    channels, strides
        Encoder widths and strides (the decoder mirrors them).
    use_sigmoid
        Squash the output to [0, 1] (for inputs normalised to that range).
    num_res_units
        Residual units per level (0 keeps CPU training affordable).

    Examples
    --------
    >>> vae = HealthyVAE((1, 16, 16, 16), latent_size=8, channels=(4, 8), strides=(2, 2)).eval()
    >>> mu, logvar = vae.encode(torch.rand(2, 1, 16, 16, 16))
    >>> vae.decode(mu).shape
    torch.Size([2, 1, 16, 16, 16])
    """

    def __init__(
        self,
        in_shape: Sequence[int],
        latent_size: int = 128,
        channels: Sequence[int] = (16, 32, 64, 64),
        strides: Sequence[int] = (2, 2, 2, 2),
        use_sigmoid: bool = True,
        num_res_units: int = 0,
    ) -> None:
        super().__init__()
        from monai.networks.nets import VarAutoEncoder

        self.net = VarAutoEncoder(
            spatial_dims=len(in_shape) - 1,
            in_shape=tuple(in_shape),
            out_channels=int(in_shape[0]),
            latent_size=latent_size,
            channels=tuple(channels),
            strides=tuple(strides),
            num_res_units=num_res_units,
            norm="batch",
            use_sigmoid=use_sigmoid,
            use_mean_at_inference=True,
        )
        self.use_sigmoid = use_sigmoid

    @torch.jit.export
    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior mean and log-variance of the latent code.

        MONAI's ``encode_forward`` with ``reshape`` in place of ``view``, so that channels-last
        inputs (faster 3D convolutions on CPU) work too.
        """
        h = self.net.intermediate(self.net.encode(x))
        h = h.reshape(h.shape[0], -1)
        return self.net.mu(h), self.net.logvar(h)

    @torch.jit.export
    def decode(self, z: Tensor) -> Tensor:
        return self.net.decode_forward(z, self.use_sigmoid)

    def forward(self, x: Tensor) -> Tensor:
        """Reconstruction from the posterior mean (deterministic)."""
        mu, _ = self.encode(x)
        return self.decode(mu)

    def training_forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Reconstruction from a sampled latent, with ``mu`` and ``logvar`` (for the ELBO)."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return self.decode(z), mu, logvar


@dataclass
class LoadedVAE:
    """A VAE ready for counterfactuals: its module, grid contract and identity."""

    module: Any
    spec: ModelSpec
    path: str
    sha256: str

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.module.encode(x)

    def decode(self, z: Tensor) -> Tensor:
        return self.module.decode(z)

    def describe(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "sha256": self.sha256,
            "name": self.spec.name,
            "latent_size": self.spec.extra.get("latent_size"),
        }


def load_vae(path: str | os.PathLike[str], device: str | torch.device = "cpu") -> LoadedVAE:
    """Load a VAE saved as TorchScript exposing ``encode`` and ``decode`` (``builtin:NAME`` for
    a shipped one). MONAI ``VarAutoEncoder`` exports (``encode_forward`` /
    ``decode_forward``) are accepted too.

    Raises
    ------
    ModelError
        If the file is missing, not TorchScript, or has no encode/decode methods.
    """
    module, meta, file = open_scripted(path, "VAE", "vae.ts", device)
    if not hasattr(module, "encode") and hasattr(module, "encode_forward"):
        module = _MonaiVAEAdapter(module)
    if not (hasattr(module, "encode") and hasattr(module, "decode")):
        raise ModelError(
            "the TorchScript module has no encode/decode methods; it is not a VAE", file
        )
    for prm in module.parameters():
        prm.requires_grad_(False)
    return LoadedVAE(module, spec_of(meta, file), str(file), file_sha256(file))


class _MonaiVAEAdapter:
    def __init__(self, module: Any) -> None:
        self.module = module

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.module.encode_forward(x)

    def decode(self, z: Tensor) -> Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return self.module.decode_forward(z, True)

    def parameters(self) -> Any:
        return self.module.parameters()

    def eval(self) -> _MonaiVAEAdapter:
        self.module.eval()
        return self
