"""Generative models of healthy anatomy, for counterfactual baselines."""

from medattr.generative.vae import HealthyVAE, LoadedVAE, load_vae

__all__ = ["HealthyVAE", "LoadedVAE", "load_vae"]
