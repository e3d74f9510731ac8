"""What each key of ``RUN/metrics.json`` means and how to show it: the one registry of the measures.

:func:`vae_keras.evaluation.evaluate.evaluate_run` writes the keys; everything that shows them reads
their metadata here: the ``evaluate`` command's table (:func:`format_table`), the gallery's
explanations (:mod:`vae_keras.viz.gallery`) and the benchmarks' tables and plots
(``benchmarks/quality.py``, ``quality_budget.py``, ``transfer.py``). A benchmark chooses *which*
measures it shows and sets its own goals; their titles, number formats and directions come from
here, so a new measure is one :class:`Measure` in :data:`MEASURES`.

Pure Python (no numpy, no TensorFlow): a benchmark that only draws a table stays fast to import.

Example:
    >>> MEASURES["c2st_accuracy"].label
    'two-sample accuracy (0.5 = real)'
    >>> MEASURES["recon_psnr"].format(28.8932)
    '28.89'
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

#: Which value is best: ``lower``, ``higher``, ``one`` (a generated / real ratio, 1 is ideal) or
#: ``half`` (a two-sample accuracy, 0.5 is ideal: a coin toss). ``None``: not a quality, a fact of
#: the evaluation (its settings, counts and times).
BETTER = ("lower", "higher", "one", "half")
_IDEAL = {"one": "1 = real", "half": "0.5 = real"}
_ARROW = {"lower": " ↓", "higher": " ↑"}


@dataclass(frozen=True)
class Measure:
    """One key of ``metrics.json``.

    Args:
        key: the key in ``metrics.json``.
        title: the short column title of the tables (``"2-sample acc."``).
        fmt: a ``str.format`` pattern for one value (``"{:.3f}"``).
        better: one of :data:`BETTER`, or None for a setting, count or time of the evaluation.
        explanation: one sentence for a reader who has not seen the measure before.
        name: the full name for prose, plot axes and goals (default: ``title``).
        unit: the unit, given in :attr:`label` when the ideal value is not.

    Example:
        >>> Measure("sharpness_ratio", "sharpness ratio", "{:.3f}", "one", "Edge energy, generated / real.").label
        'sharpness ratio (1 = real)'
    """

    key: str
    title: str
    fmt: str
    better: Optional[str]
    explanation: str
    name: str = ""
    unit: str = ""

    def __post_init__(self):
        if self.better is not None and self.better not in BETTER:
            raise ValueError(f"Measure {self.key!r}: better must be one of {BETTER} or None, got {self.better!r}")
        if "{" not in self.fmt:
            raise ValueError(f"Measure {self.key!r}: fmt must be a str.format pattern such as '{{:.3f}}', "
                             f"got {self.fmt!r}")
        if not self.explanation.strip():
            raise ValueError(f"Measure {self.key!r}: explanation must say what the measure means, got nothing")

    @property
    def full_name(self) -> str:
        """The name for prose and goals (``"two-sample accuracy"``)."""
        return self.name or self.title

    @property
    def label(self) -> str:
        """The full name with the ideal value or the unit, for a plot axis or a column that stands alone."""
        note = _IDEAL.get(self.better, self.unit)
        return f"{self.full_name} ({note})" if note else self.full_name

    @property
    def arrow(self) -> str:
        """``" ↓"`` (lower is better), ``" ↑"`` (higher is better) or ``""`` (an ideal value in between)."""
        return _ARROW.get(self.better, "")

    def format(self, value) -> str:
        """``value`` in this measure's format; ``"-"`` for a value not recorded (None or NaN)."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return "-"
        return self.fmt.format(value)


def _registry(*measures: Measure) -> dict:
    keys = [m.key for m in measures]
    if len(set(keys)) != len(keys):
        raise ValueError(f"two measures share a key: {sorted(k for k in keys if keys.count(k) > 1)}")
    return {m.key: m for m in measures}


#: Every key ``evaluate_run`` writes, in the order it writes them: the facts of the evaluation
#: (``better=None``), then the measures of quality.
MEASURES = _registry(
    # -- what was evaluated, and how ---------------------------------------------------------------
    Measure("run", "run", "{}", None, "The run folder that was evaluated."),
    Measure("config", "configuration", "{}", None, "The run's named configuration."),
    Measure("data", "data", "{}", None, "The data folder whose test split the run was measured on."),
    Measure("image_size", "image size", "{}", None, "Side of the square images, in pixels."),
    Measure("sampler", "sampler", "{}", None,
            "The latent sampler the generated images came from (normal, gmm or diffusion)."),
    Measure("temperature", "temperature", "{:g}", None,
            "Scale of the latent draws' noise (1 = the prior as fitted; lower trades variety for clarity)."),
    Measure("n_generated", "generated images", "{}", None, "Generated images the sample measures are computed on."),
    Measure("epochs", "epochs", "{}", None, "Epochs the run trained."),
    Measure("train_seconds", "train time, s", "{:.0f}", None, "Training time of the run, in seconds."),
    Measure("iwae_k", "IWAE k", "{}", None, "Importance samples per image of the IWAE bound."),
    Measure("n_likelihood", "likelihood images", "{}", None, "Test images the likelihood measures are averaged over."),
    Measure("ddim_steps", "DDIM steps", "{}", None, "DDIM steps of the diffusion prior that drew the latents."),
    Measure("guidance", "guidance", "{:g}", None,
            "Classifier-free guidance scale of the diffusion prior when a class is asked for."),
    Measure("prior_clip", "prior clip", "{:g}", None,
            "The diffusion prior's predicted latents are clipped to this many standard deviations (0 = not clipped)."),
    Measure("prior_clip_range", "prior clip range", "{:g}", None,
            "When above 0, the prior's predicted latents are clipped per channel to this multiple of the training "
            "latents' range instead."),
    Measure("objects_run", "objects run", "{}", None,
            "The object VAE whose generated threats were projected into the generated bags (composite samples)."),
    Measure("threat_classifier", "threat classifier", "{}", None,
            "The threat classifier behind the feature-space measures (trained on the real data)."),
    Measure("evaluate_seconds", "evaluate time, s", "{:.0f}", None, "Time the evaluation took, in seconds."),
    # -- likelihood and reconstruction (test split) ------------------------------------------------
    Measure("nll_elbo_bpd", "-ELBO bits/dim", "{:.3f}", "lower",
            "Negative ELBO on the test split in bits per pixel: an upper bound on the model's code length "
            "for real images (lower is better).", name="negative ELBO", unit="bits/dim"),
    Measure("nll_iwae_bpd", "NLL (IWAE) bits/dim", "{:.3f}", "lower",
            "Importance-weighted (IWAE) estimate of the test negative log-likelihood in bits per pixel; "
            "tighter than the ELBO (lower is better).", name="NLL (IWAE)", unit="bits/dim"),
    Measure("recon_psnr", "recon PSNR dB", "{:.2f}", "higher",
            "Peak signal-to-noise ratio of test reconstructions against their inputs, in dB (higher is better).",
            name="reconstruction PSNR", unit="dB"),
    Measure("recon_ssim", "recon SSIM", "{:.3f}", "higher",
            "Structural similarity of test reconstructions to their inputs, 0 to 1 (higher is better).",
            name="reconstruction SSIM"),
    # -- generated vs real images ------------------------------------------------------------------
    Measure("sharpness_ratio", "sharpness ratio", "{:.3f}", "one",
            "Edge energy of generated images over that of real ones: 1 is as sharp as real, below 1 is blurrier."),
    Measure("dense_mass_ratio", "dense-mass ratio", "{:.3f}", "one",
            "Amount of dark, dense material (metal, threats) in generated images over that in real ones: "
            "1 is the same amount."),
    Measure("intensity_w1", "intensity W1", "{:.4f}", "lower",
            "Wasserstein-1 distance between the pixel-intensity distributions of real and generated images "
            "(lower is better).", name="intensity Wasserstein-1"),
    Measure("memorisation_ratio", "memorisation ratio", "{:.3f}", "one",
            "Distance from generated images to their nearest training image over the same for held-out test "
            "images: 1 is as far as unseen real images, well below 1 means the model copies training images."),
    Measure("c2st_accuracy", "2-sample acc.", "{:.3f}", "half",
            "Accuracy of a classifier trained to tell real from generated images: 0.5 means indistinguishable, "
            "1 means trivially told apart.", name="two-sample accuracy"),
    Measure("c2st_steps", "2-sample steps", "{}", None,
            "Adam steps per fold of the two-sample test's classifier (fewer: a weaker test)."),
    Measure("frechet_distance", "Frechet dist.", "{:.2f}", "lower",
            "Fréchet distance between the threat classifier's feature statistics of real and generated images "
            "(lower is better).", name="Frechet distance"),
    Measure("precision", "precision", "{:.3f}", "higher",
            "Share of generated images that lie on the real images' manifold: fidelity (higher is better)."),
    Measure("recall", "recall", "{:.3f}", "higher",
            "Share of real images covered by the generated images' manifold: diversity (higher is better)."),
    # -- asked for a class (a run that can be asked for one) ---------------------------------------
    Measure("class_recognition", "recognised", "{:.2f}", "higher",
            "How often the threat classifier finds the requested class in images generated for it, per class "
            "(higher is better)."),
    Measure("benign_no_threat_found", "benign: no threat found", "{:.2f}", "higher",
            "Share of images generated as benign bags in which the threat classifier finds no threat "
            "(higher is better)."),
    Measure("class_recognition_mean", "class recognised", "{:.3f}", "higher",
            "Mean over the classes of how often the threat classifier finds the requested class "
            "(higher is better)."),
)

#: The measures of ``evaluate``'s printed table and of the quality benchmark's main table, in order.
TABLE = tuple(MEASURES[k] for k in (
    "nll_elbo_bpd", "nll_iwae_bpd", "recon_psnr", "recon_ssim", "sharpness_ratio", "dense_mass_ratio",
    "intensity_w1", "c2st_accuracy", "frechet_distance", "precision", "recall", "memorisation_ratio",
    "class_recognition_mean"))


def format_value(metrics: dict, key: str) -> str:
    """``metrics[key]`` in the format of its measure; ``"-"`` when it was not recorded."""
    return MEASURES[key].format(metrics.get(key))


def format_table(metrics: dict) -> str:
    """A two-column text table of one run's measures (:data:`TABLE`, then the per-class recognition)."""
    rows = [(m.title, m.format(metrics.get(m.key))) for m in TABLE]
    per_class = MEASURES["class_recognition"]
    rows += [(f"  {per_class.title}: {c}", per_class.format(v))
             for c, v in metrics.get(per_class.key, {}).items()]
    width = max(len(t) for t, _ in rows)
    return "\n".join(f"{t:<{width}}  {v}" for t, v in rows)
