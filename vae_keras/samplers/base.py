"""The sampler protocol and its registry: one class per way of drawing a run's latents.

As in pythae's ``BaseSampler``, a sampler is a separate object that takes a trained model. Each
one is a subclass of :class:`Sampler` registered by name with :func:`register`; everything
else (the trainer, ``Run.open``, ``generate`` and ``evaluate``'s options) looks it up here, so
adding a sampler is one new module::

    @register
    class MySampler(Sampler):
        name = "mine"
        options = (SamplerOption("steps", int, "denoising steps", "ddim_steps"),)

        @classmethod
        def fit(cls, model, data, run_dir, **context): ...      # -> a fitted MySampler, saved
        @classmethod
        def load(cls, run_dir, model, label_prior=None, **options): ...
        def sample(self, n, temperature=1.0, seed=0, labels=None, **options): ...

A sampler declares what it can be conditioned on (:attr:`Sampler.conditions_on`: nothing,
labels or boxes) and which command-line options it adds (:attr:`Sampler.options`), and holds
its sampling settings itself: :meth:`Sampler.configure` returns a copy with other settings,
never a change to the run's stored configuration.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Dict, Optional, Tuple, Type

import numpy as np

from vae_keras.errors import ConfigError

#: What a sampler can be asked for: nothing, a class (labels), or classes at places (boxes).
CONDITIONS = ("nothing", "labels", "boxes")


@dataclass(frozen=True)
class SamplerOption:
    """One sampling setting a sampler accepts, and the command-line option ``--NAME`` it adds.

    Attributes:
        name: the keyword of :meth:`Sampler.configure` / :func:`load_sampler` and ``--name`` on the CLI.
        type: ``int`` or ``float``.
        help: the option's ``--help`` text.
        config_field: the :class:`~vae_keras.config.VAEConfig` field whose value is the default.
        minimum: the smallest value allowed.
    """

    name: str
    type: type
    help: str
    config_field: str
    minimum: float = 0

    def check(self, value):
        """``value`` as ``type``, or :class:`ConfigError` when it is below ``minimum``."""
        value = self.type(value)
        if value < self.minimum:
            raise ConfigError(f"{self.name} must be >= {self.minimum}, got {value}")
        return value


@dataclass
class FitData:
    """What a sampler is fitted on: the run's training split.

    Attributes:
        images: (n, S, S, 1) uint8.
        labels: (n, C) multi-hot float32.
        conditions: what a conditional model is conditioned on, when not ``labels`` (a layout
            model's (n, S/4, S/4, C) uint8 maps); None: the labels.
        boxes: a layout model's boxes, one list of ``{"label", "box"}`` per image; None otherwise.
        init_from: a trained run whose fitted sampler starts this one (fine-tuning, ``train --init-from``):
            a learned sampler starts from its weights rather than from scratch; None: from scratch.
    """

    images: np.ndarray
    labels: np.ndarray
    conditions: Optional[np.ndarray] = None
    boxes: Optional[list] = None
    init_from: Optional[str] = None


class Sampler:
    """Base class of the latent samplers. Subclasses set :attr:`name` and implement the methods.

    Attributes:
        name: the registry key, the value of ``VAEConfig.sampler``.
        options: the sampling settings it accepts (:class:`SamplerOption`).
        conditions_on: ``"nothing"``, ``"labels"`` or ``"boxes"`` (an instance may narrow it, e.g. a
            mixture fitted without labels conditions on nothing).
        history: one dict per training epoch of a sampler that is trained (empty otherwise).
    """

    name: ClassVar[str] = ""
    options: ClassVar[Tuple[SamplerOption, ...]] = ()
    conditions_on: str = "nothing"

    def __init__(self, model):
        self.model = model
        self.latent_dim = int(model.latent_dim)
        self.history: list = []

    # -- the protocol --------------------------------------------------------------------------
    @classmethod
    def check_config(cls, config) -> None:
        """Raise :class:`ConfigError` when this sampler cannot serve a run of ``config`` (default: any)."""

    @classmethod
    def fit(cls, model, data: FitData, run_dir, *, resume: bool = False, minutes: Optional[float] = None,
            progress: bool = True, strategy=None, label_prior=None) -> "Sampler":
        """Fit to ``data`` with the trained ``model``, save into ``run_dir``; returns the fitted sampler.

        ``resume`` continues an interrupted fit, ``minutes`` caps its time, ``strategy`` is the
        run's ``tf.distribute`` strategy; samplers that need none of them ignore them.
        """
        raise NotImplementedError

    @classmethod
    def load(cls, run_dir, model, label_prior=None, **options) -> "Sampler":
        """The sampler fitted for ``run_dir`` (FileNotFoundError when it was never fitted)."""
        raise NotImplementedError

    def save(self, run_dir) -> Optional[Path]:
        """Write the fitted state into ``run_dir`` (atomically); None when there is nothing to keep."""
        return None

    def sample(self, n: int, temperature: float = 1.0, seed: int = 0, labels=None, **options) -> np.ndarray:
        """``n`` latents (n, latent_dim) float32; ``labels`` (n, C) multi-hot where it conditions on them;
        ``options``: this call's settings (see :attr:`options`)."""
        raise NotImplementedError

    # -- shared behaviour ----------------------------------------------------------------------
    def fallbacks(self, labels) -> np.ndarray:
        """Which rows of ``labels`` (n, C) got a latent that need not hold them -> (n,) bool (default: none)."""
        return np.zeros(0 if labels is None else len(labels), bool)

    def settings(self) -> Dict[str, Any]:
        """The current sampling settings by their configuration field (recorded with metrics)."""
        return {opt.config_field: getattr(self, opt.name) for opt in self.options}

    def configure(self, **options) -> "Sampler":
        """A copy with other sampling settings (``None`` values keep the current one); shares the fitted state.

        Raises:
            ConfigError: an option this sampler does not have, or a value out of range.
        """
        known = {opt.name: opt for opt in self.options}
        unknown = sorted(k for k, v in options.items() if v is not None and k not in known)
        if unknown:
            raise ConfigError(f"the {self.name} sampler has no option(s) {unknown}; it takes "
                              f"{sorted(known) or 'none'}")
        other = copy.copy(self)
        for key, value in options.items():
            if value is not None:
                setattr(other, key, known[key].check(value))
        return other

    def _settings_from(self, config, options: dict) -> None:
        """Set each option from ``options`` or, when None/missing, from ``config``'s field (validated)."""
        for opt in self.options:
            value = options.get(opt.name)
            setattr(self, opt.name, opt.check(getattr(config, opt.config_field) if value is None else value))

    def _call_settings(self, options: dict) -> dict:
        """This call's settings: the sampler's own, overridden by the non-None ``options``."""
        return {opt.name: (getattr(self, opt.name) if options.get(opt.name) is None else opt.check(options[opt.name]))
                for opt in self.options}


# -- the registry -----------------------------------------------------------------------------------
_REGISTRY: Dict[str, Type[Sampler]] = {}


def register(cls: Type[Sampler]) -> Type[Sampler]:
    """Class decorator: make ``cls`` available under ``cls.name``."""
    if not cls.name or cls.name in _REGISTRY:
        raise ValueError(f"a sampler needs a new, non-empty name; got {cls.name!r}")
    if isinstance(cls.conditions_on, str) and cls.conditions_on not in CONDITIONS:   # (a property may decide per instance)
        raise ValueError(f"conditions_on must be one of {CONDITIONS}, got {cls.conditions_on!r}")
    _REGISTRY[cls.name] = cls
    return cls


def sampler_names() -> Tuple[str, ...]:
    """The registered samplers' names, in registration order."""
    return tuple(_REGISTRY)


def get_sampler(name: str, config=None) -> Type[Sampler]:
    """The sampler class registered as ``name``, checked against ``config`` when given.

    Raises:
        ConfigError: no such sampler, or it cannot serve a run of ``config``.
    """
    if name not in _REGISTRY:
        raise ConfigError(f"sampler must be one of {', '.join(map(repr, _REGISTRY))}, got {name!r}")
    cls = _REGISTRY[name]
    if config is not None:
        cls.check_config(config)
    return cls


def sampler_options() -> Tuple[SamplerOption, ...]:
    """Every registered sampler's options, each name once (the ``generate``/``evaluate`` flags)."""
    seen: Dict[str, SamplerOption] = {}
    for cls in _REGISTRY.values():
        for opt in cls.options:
            seen.setdefault(opt.name, opt)
    return tuple(seen.values())


def load_sampler(run_dir, model, kind: Optional[str] = None, label_prior=None, **options) -> Sampler:
    """The run's fitted sampler: ``kind`` (default: the configuration's ``sampler``) with ``options``.

    Example:
        >>> z = load_sampler("runs/latent", model, steps=10).sample(500)   # (500, latent_dim)
    """
    config = getattr(model, "config", None)          # stand-in encoders (tests, tools) have none
    if kind is None and config is None:
        raise ConfigError("load_sampler needs kind= for a model without a configuration")
    cls = get_sampler(kind or config.sampler, config)
    return cls.load(run_dir, model, label_prior=label_prior, **options)
