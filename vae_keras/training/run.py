"""One trained run, loaded once: its configuration, model, sampler, label mix and history.

Every consumer of a trained run (``generate`` in each mode, the labelled export, threat
insertion, ``evaluate``, the gallery, the run's figures) takes a :class:`Run`, so the model is
built and restored, and the sampler (for ``latent``: the diffusion U-Net) loaded, exactly once,
whatever is done with it after. As in diffusers' pipelines, sampling settings are arguments
(of :meth:`Run.open` or :meth:`Run.with_sampler`), never a change to the stored configuration::

    run = open_run("runs/latent", steps=10, guidance=4.0)       # built and restored once
    images = sample_images(run.model, 64, sampler=run.sampler, labels=["knife"])
    export_run(run, 500, "export/", fmt="yolo")                  # the same model and sampler

:meth:`vae_keras.training.trainer.Trainer.fit` returns the same object for the run it trained.
"""
from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional

from vae_keras.config import VAEConfig
from vae_keras.errors import ConfigError
from vae_keras.io.atomic import PathLike
from vae_keras.samplers import LabelPrior, NormalSampler, Sampler, get_sampler
from vae_keras.training.checkpoint import load_history, load_run


@dataclass
class Run:
    """A trained run in memory.

    Attributes:
        run_dir: the run folder. config: its :class:`~vae_keras.config.VAEConfig`.
        model: the trained CVAE. sampler: the latent sampler (:mod:`vae_keras.samplers`).
        label_prior: the training split's label mix, None when its data had no labels.
        history: one dict per trained epoch. notes: what was noticed while opening (e.g. a
            sampler that was never fitted, replaced by the prior).
    """

    run_dir: Path
    config: VAEConfig
    model: Any
    sampler: Sampler
    label_prior: Optional[LabelPrior] = None
    history: list = field(default_factory=list)
    notes: List[str] = field(default_factory=list)

    @classmethod
    def open(cls, path: PathLike, *, sampler: Optional[str] = None, missing_sampler: str = "raise",
             **options) -> "Run":
        """Load the run in ``path``: the model once, the sampler once.

        Args:
            sampler: a sampler's name (default: the configuration's).
            missing_sampler: ``"raise"`` (FileNotFoundError when the sampler was never fitted) or
                ``"prior"`` (use N(0, I) and say so in :attr:`notes`).
            **options: sampling settings of that sampler (``steps``, ``guidance``, ``clip`` for
                ``diffusion``); ``None`` keeps the run's.

        Raises:
            FileNotFoundError: no run, no checkpoint, or (``missing_sampler="raise"``) no fitted sampler.
            ConfigError: an unknown sampler, one that does not fit the run, or an option it does not take.
        """
        path = Path(path)
        config, model = load_run(path)
        label_prior = LabelPrior.load(path)
        run = cls(path, config, model, sampler=None, label_prior=label_prior, history=load_history(path))
        try:
            run.sampler = run._load_sampler(sampler, options)
        except FileNotFoundError as err:
            if missing_sampler != "prior":
                raise
            run.notes.append(f"The run's latent sampler could not be loaded, samples are drawn from the prior: {err}")
            run.sampler = NormalSampler(model)
        return run

    def _load_sampler(self, kind: Optional[str], options: Dict[str, Any]) -> Sampler:
        cls = get_sampler(kind or self.config.sampler, self.config)
        _check_options(cls, options)
        return cls.load(self.run_dir, self.model, label_prior=self.label_prior, **options)

    @property
    def name(self) -> str:
        """The run folder's name (what exports record as their source)."""
        return self.run_dir.name

    @property
    def answers_labels(self) -> bool:
        """Whether the run can be asked for a class: a conditional model, or a sampler conditioned on labels
        or boxes (the diffusion prior, a mixture fitted per label combination)."""
        return bool(self.config.conditional or self.sampler.conditions_on != "nothing")

    def label_mix(self, n: int, seed: int = 0):
        """``n`` lists of classes with the training frequencies for a run that can be asked for a class, else None."""
        if not self.answers_labels or self.label_prior is None:
            return None
        return self.label_prior.mix(n, seed)

    def with_sampler(self, kind: Optional[str] = None, **options) -> "Run":
        """This run with other sampling settings, or another fitted sampler ``kind``; the model is shared.

        The same kind is reconfigured in memory (nothing is loaded again); another kind is loaded.
        """
        if kind is None or kind == self.sampler.name:
            _check_options(type(self.sampler), options)
            return dataclasses.replace(self, sampler=self.sampler.configure(**options))
        return dataclasses.replace(self, sampler=self._load_sampler(kind, options))


def _check_options(cls, options: Dict[str, Any]) -> None:
    given = sorted(k for k, v in options.items() if v is not None)
    unknown = [k for k in given if k not in {opt.name for opt in cls.options}]
    if unknown:
        raise ConfigError(f"the {cls.name} sampler takes no {', '.join(unknown)} "
                          f"(its options: {', '.join(opt.name for opt in cls.options) or 'none'})")


def open_run(path: PathLike, **kwargs) -> Run:
    """:meth:`Run.open`."""
    return Run.open(path, **kwargs)


def as_run(run, **kwargs) -> Run:
    """A :class:`Run` as it is, or a run folder opened (:meth:`Run.open` with ``kwargs``)."""
    return run if isinstance(run, Run) else Run.open(run, **kwargs)


def supported_options(config: VAEConfig, options: Dict[str, Any], kind: Optional[str] = None) -> Dict[str, Any]:
    """The given ``options`` that the run's sampler takes; a note on stderr names the others (dropped)."""
    cls = get_sampler(kind or config.sampler)
    names = {opt.name for opt in cls.options}
    dropped = sorted(k for k, v in options.items() if v is not None and k not in names)
    if dropped:
        print(f"note: {', '.join('--' + k for k in dropped)} only act on a sampler that has them; this run's "
              f"{cls.name} sampler has {', '.join('--' + n for n in sorted(names)) or 'none'}", file=sys.stderr)
    return {k: v for k, v in options.items() if k in names}
