"""``python -m vae_keras evaluate RUN --data DATA``: every quality measure of a trained run.

On the data set's test split it computes

- likelihood: the negative ELBO and the importance-weighted bound (IWAE, ``k`` samples,
  Burda et al. 2016) in bits per dimension of 8-bit pixels; reconstruction PSNR and SSIM;
- on ``n`` generated images vs the real test images: sharpness ratio, dense-object mass ratio,
  intensity Wasserstein-1, classifier two-sample test, Frechet distance, precision and recall
  in a threat classifier's feature space, and the memorisation ratio;
- for a run that can be asked for a class (a conditional model, or a mixture sampler fitted per
  label combination): how often the threat classifier finds the requested class.

It writes ``RUN/metrics.json`` and returns the same dict; what each key means, and how it is
shown, is :mod:`vae_keras.evaluation.measures`. The threat classifier is trained once
per data set and image size and cached in ``DATA/.cache/`` (weights + JSON).

Why bits per dimension need a proper density: the seed's Bernoulli decoder is not a density on
continuous pixels, so it is scored as the *continuous Bernoulli* its logits define (the
cross-entropy plus the normaliser ``log C``, :func:`vae_keras.losses.continuous_bernoulli_log_norm`);
a Gaussian decoder uses its running optimal sigma. Both are densities on [0, 1]; the probability
of an 8-bit pixel's bin is taken as density x 1/256, hence ``+ 8`` bits.
"""
from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path
from typing import Optional

import numpy as np
import tensorflow as tf

from vae_keras.data.layouts import load_layouts
from vae_keras.data.pipeline import CACHE_DIR, fingerprint, load_split
from vae_keras.evaluation import metrics as M
from vae_keras.evaluation.measures import format_table  # noqa: F401  (the evaluate command prints it)
from vae_keras.io.atomic import atomic_write_text
from vae_keras.io.manifest import CLASSES
from vae_keras.models.encode import posterior_means
from vae_keras.models.losses import log_likelihood_terms, log_normal_pdf
from vae_keras.sampling.generate import decode_latents, reconstruct, sample_images
from vae_keras.sampling.objects import composite_samples, open_objects
from vae_keras.training.run import as_run

METRICS_FILE = "metrics.json"
CLASSIFIER_PREFIX = "threat_classifier_{size}"


def nats_to_bpd(nats_per_image: float, image_size: int) -> float:
    """Nats per image of a density on [0, 1]^D -> bits per 8-bit dimension."""
    return nats_per_image / (math.log(2.0) * image_size * image_size) + 8.0


def importance_weighted_nll(model, images, labels=None, k: int = 64, batch_size: int = 8, seed: int = 0):
    """Per-image ``(-ELBO, -IWAE_k)`` in nats, both from the same ``k`` posterior draws.

    ``-ELBO`` is the mean over the ``k`` single-sample bounds; ``-IWAE`` is
    ``-log mean_k p(x, z_k) / q(z_k | x)``, a tighter bound that approaches ``-log p(x)``.
    """
    x = M.as_images(images)[..., None]
    rng = np.random.default_rng(seed)
    elbo, iwae = [], []
    d = int(model.latent_dim)
    for i in range(0, len(x), batch_size):
        xb = tf.constant(x[i:i + batch_size])
        b = int(xb.shape[0])
        yb = None if labels is None else tf.constant(np.repeat(labels[i:i + b], k, axis=0), tf.float32)
        mean, logvar = model.encode(xb, y=None if labels is None else tf.constant(labels[i:i + b], tf.float32))
        mean, logvar = tf.repeat(mean, k, axis=0), tf.repeat(logvar, k, axis=0)      # (b*k, d)
        z = model.reparameterize(mean, logvar, eps=tf.constant(rng.standard_normal((b * k, d)), tf.float32))
        log_px = log_likelihood_terms(model, tf.repeat(xb, k, axis=0), z, y=yb)      # (b*k,)
        log_w = tf.reshape(log_px + log_normal_pdf(z, 0.0, 0.0) - log_normal_pdf(z, mean, logvar), (b, k))
        elbo.append(-tf.reduce_mean(log_w, axis=1).numpy())
        iwae.append(-(tf.reduce_logsumexp(log_w, axis=1) - math.log(k)).numpy())
    return np.concatenate(elbo), np.concatenate(iwae)


def threat_classifier(data_dir, image_size: int, progress: bool = True):
    """The data set's :class:`~vae_keras.metrics.ThreatClassifier`, trained once and cached."""

    data_dir = Path(data_dir)
    prefix = data_dir / CACHE_DIR / CLASSIFIER_PREFIX.format(size=image_size)
    data_key = fingerprint(data_dir, "train", image_size)
    if Path(str(prefix) + ".json").is_file() and Path(str(prefix) + ".weights.h5").is_file():
        try:
            clf = M.ThreatClassifier.load(prefix)
        except (ValueError, KeyError, OSError):  # written by an older classifier version
            clf = M.ThreatClassifier(image_size, CLASSES)
        if clf.info.get("fingerprint") == data_key and clf.info.get("version") == M.CLASSIFIER_VERSION:
            return clf
    if progress:
        print(f"training the threat classifier on {data_dir} at {image_size}x{image_size} (cached after)",
              file=sys.stderr)
    train_x, train_y = load_split(data_dir, "train", image_size=image_size)
    test_x, test_y = load_split(data_dir, "test", image_size=image_size)
    clf = M.ThreatClassifier(image_size, CLASSES).fit(train_x, train_y, test=(test_x, test_y))
    clf.info["fingerprint"] = data_key
    clf.save(prefix)
    return clf


def evaluate_run(run, data_dir, n: int = 500, k: int = 64, n_likelihood: int = 256, seed: int = 0,
                 sampler: Optional[str] = None, temperature: float = 1.0, n_per_class: int = 100,
                 folds: int = 5, progress: bool = True, save: bool = True, objects_run=None,
                 steps: Optional[int] = None, guidance: Optional[float] = None,
                 clip: Optional[float] = None, two_sample_steps: int = 300) -> dict:
    """All measures of one run (see the module docstring); writes ``RUN/metrics.json``.

    With ``objects_run`` (an object VAE, :mod:`vae_keras.sampling.objects`) the generated images are
    composites: the run's bags with generated threats projected in, with the training split's
    label mix; the likelihood and reconstruction measures stay the bag run's. Written to
    ``RUN/metrics_objects_<OBJECTS RUN NAME>.json``.

    Args:
        run: a trained :class:`~vae_keras.training.run.Run` (its model and sampler as loaded), or a run folder.
        n: generated images for the sample measures (compared with up to ``n`` real test images).
        k: importance samples of the IWAE bound (>= 64 for the issue's NLL), on the first
            ``n_likelihood`` test images.
        sampler: a sampler's name (``normal``, ``gmm``, ``diffusion``, :mod:`vae_keras.samplers`);
            default the run's own.
        steps, guidance, clip: a ``diffusion`` sampler's DDIM steps, guidance and clipping of its
            predicted latents in standard deviations (default: the run's); they are sampler options
            (:meth:`~vae_keras.training.run.Run.with_sampler`), so a sampler without them refuses them.
        n_per_class: samples per class for a conditional run's class recognition.
        folds, two_sample_steps: the two-sample test's folds and Adam steps per fold
            (:func:`~vae_keras.evaluation.metrics.classifier_two_sample_test`; fewer steps, a weaker test).
    """

    t0 = time.monotonic()
    run = as_run(run).with_sampler(sampler, steps=steps, guidance=guidance, clip=clip)
    run_dir, config, model = run.run_dir, run.config, run.model
    size = config.image_size
    log = (lambda msg: print(msg, file=sys.stderr)) if progress else (lambda msg: None)
    train_x, train_y = load_split(data_dir, "train", image_size=size)
    test_x, test_y = load_split(data_dir, "test", image_size=size)
    cond_labels = test_y if config.conditional else None
    if config.layout:  # a layout model is conditioned on the test images' box maps
        cond_labels = load_layouts(data_dir, "test", size, test_y)[0].astype(np.float32) / 255.0
    out = {"run": str(run_dir), "config": config.name, "data": str(data_dir), "image_size": size,
           "sampler": run.sampler.name, "temperature": temperature, "n_generated": int(n)}
    if run.history:
        out["epochs"] = len(run.history)
        out["train_seconds"] = float(sum(h.get("seconds", 0.0) for h in run.history))

    log(f"[1/4] likelihood: IWAE k={k} on {min(n_likelihood, len(test_x))} test images")
    m = min(n_likelihood, len(test_x))
    elbo, iwae = importance_weighted_nll(model, test_x[:m], None if cond_labels is None else cond_labels[:m],
                                         k=k, seed=seed)
    out.update(nll_elbo_bpd=nats_to_bpd(float(elbo.mean()), size), nll_iwae_bpd=nats_to_bpd(float(iwae.mean()), size),
               iwae_k=int(k), n_likelihood=int(m))

    log("[2/4] reconstructions")
    if config.conditional:
        recon = _reconstruct_conditional(model, test_x, cond_labels)
    else:
        recon = reconstruct(model, test_x)
    out.update(recon_psnr=M.psnr(recon, test_x), recon_ssim=M.ssim(recon, test_x))

    log(f"[3/4] {n} samples ({out['sampler']} sampler)")
    latent_sampler = run.sampler
    out.update(latent_sampler.settings())                            # e.g. the diffusion prior's DDIM settings
    if objects_run is not None:
        objects = open_objects(objects_run)
        out["objects_run"] = str(objects.run_dir)

        def generate(count, labels, seed_):  # composites: generated bags + generated threats
            per = labels if labels is not None else [[] for _ in range(count)]
            return composite_samples(model, objects.model, per, seed=seed_, temperature=temperature,
                                     bag_sampler=latent_sampler, object_sampler=objects.sampler,
                                     object_name=objects.name)[0]
    else:
        def generate(count, labels, seed_):
            return sample_images(model, count, temperature=temperature, seed=seed_, labels=labels,
                                 sampler=latent_sampler)
    mix = config.conditional or objects_run is not None
    labels = run.label_prior.mix(n, seed) if mix and run.label_prior is not None else None   # None: no labels
    gen = M.quantize(generate(n, labels, seed))
    real = test_x[:n]
    out.update(sharpness_ratio=M.sharpness_ratio(gen, real), dense_mass_ratio=M.dense_mass_ratio(gen, real),
               intensity_w1=M.intensity_w1(gen, real), memorisation_ratio=M.memorisation_ratio(gen, train_x, real))

    log("[4/4] classifiers: two-sample test, feature-space distances")
    out["c2st_accuracy"] = M.classifier_two_sample_test(real, gen, folds=folds, steps=two_sample_steps, seed=seed)
    out["c2st_steps"] = int(two_sample_steps)                     # per fold: fewer, a weaker test
    clf = threat_classifier(data_dir, size, progress)
    out["threat_classifier"] = {k_: v for k_, v in clf.info.items() if k_ != "fingerprint"}
    f_real, f_gen = clf.features(real), clf.features(gen)
    out["frechet_distance"] = M.frechet_distance(f_real, f_gen)
    out.update(M.precision_recall(f_real, f_gen))
    if objects_run is not None or run.answers_labels:  # a class can be asked for
        by_class = {}
        for i, name in enumerate(CLASSES):
            by_class[name] = generate(n_per_class, [[name]] * n_per_class, seed + 1 + i)
        out["class_recognition"] = M.class_recognition(clf, by_class)
        benign = generate(n_per_class, [[]] * n_per_class, seed + 99)
        out["benign_no_threat_found"] = float(np.mean(np.all(clf.predict(benign) < 0.5, axis=1)))
        out["class_recognition_mean"] = float(np.mean(list(out["class_recognition"].values())))
    out["evaluate_seconds"] = time.monotonic() - t0
    if save:
        name = METRICS_FILE if objects_run is None else objects_metrics_file(objects.run_dir)
        atomic_write_text(run_dir / name, json.dumps(out, indent=1) + "\n")
    return out


def objects_metrics_file(objects_run) -> str:
    """Name of the metrics file of a bag run evaluated with the object run ``objects_run``."""
    return f"metrics_objects_{Path(objects_run).name}.json"


def _reconstruct_conditional(model, images, labels, batch_size: int = 128) -> np.ndarray:
    """A conditional model's reconstructions: the posterior means given ``labels``, decoded given them."""
    y = np.asarray(labels, np.float32)
    return decode_latents(model, posterior_means(model, images, y, batch_size), batch_size, y=y)
