"""The gallery of a tiny run: a self-contained page whose every picture exists, has alt text and loads.

The browser test opens the page in headless Chromium (Debian's ``chromium``; ``.ci/run`` installs
it when missing) and skips with the reason when no Chromium is installed.
"""
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pytest

from importlib import resources

import vae_keras.viz.gallery as gallery_module
from vae_keras.errors import DataError
from vae_keras.viz.gallery import (INDEX, build_gallery, explain_metric, flatten_metrics, metrics_markdown,
                                   nearest_neighbours)

METRICS = {"nll_elbo_bpd": 0.91, "recon_ssim": 0.42, "class_recognition": {"knife": 0.5, "handgun": 0.75},
           "my_new_measure": 3}


class _Refs(HTMLParser):
    """Every tag's attributes, and the ``<img>`` tags on their own."""

    def __init__(self):
        super().__init__()
        self.attrs, self.images = [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.attrs.append((tag, attrs))
        if tag == "img":
            self.images.append(attrs)


@pytest.fixture(scope="module")
def tiny_run(tiny_dataset, tmp_path_factory):
    """Two epochs of the seed VAE at 32x32, with a run_info.json naming its data and a metrics.json."""
    from vae_keras.config import get_config
    from vae_keras.training.trainer import train

    run = tmp_path_factory.mktemp("runs") / "tiny <run> & co"        # a name that needs escaping
    config = get_config("seed", quick=False, image_size=32, latent_dim=2, epochs=2, batch_size=8)
    train(config, tiny_dataset, run, progress=False)
    (run / "run_info.json").write_text(json.dumps({"data": str(tiny_dataset), "device": "CPU (test)"}))
    (run / "metrics.json").write_text(json.dumps(METRICS))
    return run


@pytest.fixture(scope="module")
def gallery(tiny_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("gallery")
    index = build_gallery(tiny_run, out, n=8)                          # data from run_info.json
    return index


def test_every_reference_exists_has_alt_text_and_is_local(gallery):
    text = gallery.read_text(encoding="utf-8")
    refs = _Refs()
    refs.feed(text)
    assert len(refs.images) >= 8                      # real, generated, recon, interpolation, manifold, gif, loss, nn
    for attrs in refs.images:
        assert attrs.get("alt", "").strip(), f"image without alt text: {attrs}"
    targets = [a[k] for _, a in refs.attrs for k in ("src", "href") if k in a]
    for target in targets:
        assert not re.match(r"^[a-z][a-z0-9+.-]*:|^//", target, re.I), f"external or absolute URL: {target}"
        if not target.startswith("#"):
            assert (gallery.parent / target).is_file(), f"{target} is referenced but missing"
    assert not re.search(r"https?:|url\(|@import", text), "the page must not load anything from the network"
    assert '<meta name="viewport"' in text
    assert "<run>" not in text and "tiny &lt;run&gt; &amp; co" in text     # text is escaped


def test_sections_metrics_and_run_facts(gallery):
    text = gallery.read_text(encoding="utf-8")
    for anchor in ("run", "samples", "reconstructions", "training", "evaluation", "memorisation"):
        assert f'id="{anchor}"' in text, anchor
    assert "CPU (test)" in text and "16 train / 8 test" in text
    assert "nll_elbo_bpd" in text and explain_metric("nll_elbo_bpd")[:30] in text
    assert explain_metric("class_recognition.knife")[:30] in text                 # a nested key: its measure's
    assert "class_recognition.knife" in text and "my_new_measure" in text     # nested and unknown keys
    for name in ("training.gif", "loss_curves.png", "latent_manifold.png", "nearest_neighbours.png"):
        assert (gallery.parent / name).is_file(), name


def test_without_data_the_data_sections_are_left_out(tiny_run, tmp_path):
    info = tiny_run / "run_info.json"
    saved = info.read_text()
    info.unlink()                                                      # no recorded data folder
    try:
        text = build_gallery(tiny_run, tmp_path, n=4).read_text(encoding="utf-8")
    finally:
        info.write_text(saved)
    assert "--data DATA" in text and 'id="reconstructions"' not in text
    assert (tmp_path / "generated.png").is_file()


def test_style_and_script_are_the_package_files(gallery):
    text = gallery.read_text(encoding="utf-8")
    for name in ("gallery.css", "gallery.js"):
        shipped = resources.files("vae_keras.viz").joinpath(name).read_text(encoding="utf-8")
        assert len(shipped) > 300 and shipped in text, name


def test_a_broken_metrics_file_is_an_error_not_a_missing_table(tiny_run, tmp_path):
    broken = tmp_path / "metrics.json"
    broken.write_text('{"ssim": 0.4', encoding="utf-8")              # cut off mid-write
    with pytest.raises(DataError, match="not valid JSON"):
        build_gallery(tiny_run, tmp_path / "site", metrics_path=broken, n=4)


def test_missing_metrics_file_is_a_clear_error(tiny_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        build_gallery(tiny_run, tmp_path, metrics_path=tmp_path / "nope.json")


def test_nearest_neighbours_finds_the_copy():
    rng = np.random.default_rng(0)
    ref = rng.random((50, 8, 8, 1)).astype(np.float32)
    idx, dist = nearest_neighbours(ref[[7, 3]] + 0.001, ref, chunk=16)     # chunking across blocks
    assert idx.tolist() == [7, 3] and np.all(dist < 0.01)


def test_metrics_helpers():
    assert flatten_metrics({"a": {"b": 1}, "c": 2.0}) == [("a.b", 1), ("c", 2.0)]
    table = metrics_markdown(METRICS)
    assert table.count("\n") == 2 + 5 and "| `recon_ssim` | 0.42 |" in table


# -- the page in a real browser ----------------------------------------------------------------------
_COLLECT = """<script>
window.__errors = [];
addEventListener("error", function (e) {
  __errors.push(e.message || ("failed to load " + (e.target && (e.target.src || e.target.href))));
}, true);
["error", "warn"].forEach(function (k) {
  var original = console[k];
  console[k] = function () { __errors.push(k + ": " + [].join.call(arguments, " ")); original.apply(console, arguments); };
});
</script>"""

_CHECK = """<script>
addEventListener("load", function () {
  var result = {images: [].map.call(document.images, function (i) { return [i.getAttribute("src"), i.naturalWidth]; }),
                overflow: document.documentElement.scrollWidth - innerWidth};
  document.querySelector("a.zoom").click();                   // open the lightbox
  var box = document.querySelector(".lightbox"), big = box && box.querySelector("img");
  function done() {
    result.lightbox = big ? big.naturalWidth : -1;
    result.errors = __errors;
    var pre = document.createElement("pre");
    pre.id = "browser-check"; pre.textContent = JSON.stringify(result);
    document.body.appendChild(pre);
  }
  if (big && !big.complete) { big.onload = big.onerror = done; } else { done(); }
});
</script>"""


def _chromium():
    return shutil.which("chromium") or shutil.which("chromium-browser")


def _run_chromium(binary, profile, *args):
    command = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
               f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=60)


def test_page_loads_in_headless_chromium(gallery, tmp_path):
    binary = _chromium()
    if binary is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium; .ci/run installs it)")
    page = gallery.read_text(encoding="utf-8")
    check = gallery.parent / "_browser_check.html"                     # beside index.html: same relative paths
    check.write_text(page.replace("<head>", "<head>" + _COLLECT, 1).replace("</body>", _CHECK + "</body>", 1),
                     encoding="utf-8")
    try:
        out = _run_chromium(binary, tmp_path / "profile", "--window-size=390,844", "--virtual-time-budget=10000",
                            "--dump-dom", check.as_uri())
    finally:
        check.unlink()
    found = re.search(r'<pre id="browser-check">(.*?)</pre>', out.stdout, re.S)
    assert found, f"the check did not run (rc {out.returncode}): {out.stderr[-2000:]}"
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&")
                        .replace("&lt;", "<").replace("&gt;", ">"))
    assert len(result["images"]) >= 8
    assert all(width > 0 for _, width in result["images"]), f"images that did not load: {result['images']}"
    assert result["errors"] == [], result["errors"]
    assert not re.findall(r"CONSOLE.*", out.stderr), "console messages: " + "\n".join(re.findall(r"CONSOLE.*", out.stderr))
    assert result["overflow"] <= 0, "the page scrolls sideways on a phone-sized window"
    assert result["lightbox"] > 0, "a click did not open the picture in the lightbox"

    shot = tmp_path / "gallery.png"
    _run_chromium(binary, tmp_path / "profile", "--window-size=1280,2000", f"--screenshot={shot}", gallery.as_uri())
    assert shot.is_file() and shot.stat().st_size > 10_000


def test_cli_gallery(tiny_run, tiny_dataset, tmp_path, capsys):
    from vae_keras.cli import main

    assert main(["gallery", str(tiny_run), "--out", str(tmp_path / "g"), "--data", str(tiny_dataset),
                 "--n", "4"]) == 0
    assert (tmp_path / "g" / INDEX).is_file() and "index.html" in capsys.readouterr().out
    assert main(["gallery", str(tmp_path / "no_run"), "--out", str(tmp_path / "h")]) == 2
    assert "error:" in capsys.readouterr().err


def test_a_conditional_run_gets_real_and_generated_grids_per_class(tiny_dataset, tmp_path, monkeypatch):
    from vae_keras.io.manifest import CLASSES
    from vae_keras.config import get_config
    from vae_keras.training.trainer import train

    config = get_config("conditional", quick=False, image_size=32, epochs=1, batch_size=8, gmm_components=2)
    train(config, tiny_dataset, tmp_path / "run", progress=False)
    index = build_gallery(tmp_path / "run", tmp_path / "site", data_dir=tiny_dataset, n=8)
    html = index.read_text(encoding="utf-8")
    for name in (*CLASSES, "benign"):
        assert (tmp_path / "site" / f"generated_{name}.png").is_file()
        assert f"asked for <b>{name}</b>" in html
    assert "Gaussian mixture fitted to the training codes" in html
    assert (tmp_path / "site" / "interpolations.png").is_file()
    assert not (tmp_path / "site" / "latent_manifold.png").exists()      # 2 of 64 dimensions show one bag

    def bug(*args, **kwargs):
        raise ValueError("Dimensions must be equal")                      # what a shape bug looks like

    monkeypatch.setattr(gallery_module, "reconstruct", bug)
    with pytest.raises(ValueError, match="Dimensions must be equal"):   # not a "Not shown" note
        build_gallery(tmp_path / "run", tmp_path / "site2", data_dir=tiny_dataset, n=8)
