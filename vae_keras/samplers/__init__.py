"""Where a trained run's latents come from: one sampler class per way, registered by name.

Owns the sampler protocol and its registry (:mod:`.base`: :class:`Sampler`, :func:`register`,
:func:`get_sampler`, :func:`load_sampler`), the run's label mix (:mod:`.labels`), and the
samplers: :mod:`.normal` (the prior N(0, I)), :mod:`.gmm` (a Gaussian mixture fitted to the
training codes, one per label combination), :mod:`.diffusion` (a ``latent`` run's learned
prior; its training stage is :mod:`.diffusion_training`) and :mod:`.box_diffusion` (that prior
conditioned on box maps too). A new sampler is one new module
registered here. May import :mod:`vae_keras.models`, :mod:`vae_keras.data`, :mod:`vae_keras.io`
and the config; the trainer (:mod:`vae_keras.training`) and everything above it import this.

Importing it does not load TensorFlow (the command line builds ``generate``'s and ``evaluate``'s
sampler options from the registry, and ``--help`` must stay fast): the samplers import their
TensorFlow parts inside the methods that use them.
"""
from vae_keras.samplers.base import (FitData, Sampler, SamplerOption, get_sampler, load_sampler, register,
                                     sampler_names, sampler_options)
from vae_keras.samplers.labels import (FALLBACK_NOTE, LABELS_FILE, LabelPrior, fallback_notes, label_vectors,
                                       per_sample_labels, sample_label_mix, sample_label_prior, save_label_prior)
from vae_keras.samplers.normal import NormalSampler
from vae_keras.samplers.gmm import GMM_FILE, GMMSampler, RareLabelsWarning, fit_gmm
from vae_keras.samplers.diffusion import DiffusionSampler
from vae_keras.samplers.box_diffusion import BoxDiffusionSampler

__all__ = ["FitData", "Sampler", "SamplerOption", "get_sampler", "load_sampler", "register", "sampler_names",
           "sampler_options", "FALLBACK_NOTE", "LABELS_FILE", "LabelPrior", "fallback_notes", "label_vectors",
           "per_sample_labels", "sample_label_mix", "sample_label_prior", "save_label_prior", "NormalSampler",
           "GMM_FILE", "GMMSampler", "RareLabelsWarning", "fit_gmm", "DiffusionSampler",
           "BoxDiffusionSampler"]
