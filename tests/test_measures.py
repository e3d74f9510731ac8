"""One registry of the measures (``vae_keras/evaluation/measures.py``): every key ``evaluate`` writes has
an entry, the gallery explains every key of a committed ``metrics.json``, and no other module keeps its
own table of titles, formats or explanations.

The keys are read from the source of ``evaluate_run`` (and the functions whose dicts it merges) and
from the committed ``figures/**/metrics*.json``, never from the registry itself.
"""
import ast
import json
import re
from pathlib import Path

import pytest

from vae_keras.evaluation.measures import BETTER, MEASURES, TABLE, Measure, format_table, format_value

ROOT = Path(__file__).resolve().parents[1]
COMMITTED_METRICS = sorted((ROOT / "figures").glob("**/metrics*.json"))
SOURCES = [p for folder in ("vae_keras", "benchmarks", "scripts", "data_prep") for p in (ROOT / folder).rglob("*.py")
           if p != ROOT / "vae_keras" / "evaluation" / "measures.py"]


def _function(tree: ast.AST, name: str):
    return next((n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name == name), None)


def _dict_keys(node) -> set:
    return {k.value for k in getattr(node, "keys", []) if isinstance(k, ast.Constant) and isinstance(k.value, str)}


def _returned_dict_keys(path: Path, function: str) -> set:
    """The constant keys of the dict literals ``function`` in ``path`` returns."""
    fn = _function(ast.parse(path.read_text(encoding="utf-8")), function)
    return set().union(*(_dict_keys(n.value) for n in ast.walk(fn) if isinstance(n, ast.Return))) if fn else set()


def _sampler_settings_keys() -> set:
    """The ``config_field`` of every ``SamplerOption(...)``: the keys a sampler's ``settings()`` returns."""
    keys = set()
    for path in (ROOT / "vae_keras" / "samplers").glob("*.py"):
        for call in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(call, ast.Call) and getattr(call.func, "id", None) == "SamplerOption":
                args = call.args[3:4] + [kw.value for kw in call.keywords if kw.arg == "config_field"]
                keys |= {a.value for a in args if isinstance(a, ast.Constant)}
    return keys


def evaluate_run_keys() -> set:
    """Every key ``evaluate_run`` sets in the dict it returns, read from its source."""
    source = ROOT / "vae_keras" / "evaluation" / "evaluate.py"
    fn = _function(ast.parse(source.read_text(encoding="utf-8")), "evaluate_run")
    assert fn is not None, "evaluate_run is no longer in vae_keras/evaluation/evaluate.py: update this test"
    returned = [n.value.id for n in ast.walk(fn) if isinstance(n, ast.Return) and isinstance(n.value, ast.Name)]
    assert len(set(returned)) == 1, f"evaluate_run should return one dict variable, returns {returned}"
    out = returned[0]
    keys = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name) and target.id == out:                 # out = {...}
                    keys |= _dict_keys(node.value)
                if (isinstance(target, ast.Subscript) and getattr(target.value, "id", None) == out
                        and isinstance(target.slice, ast.Constant)):                   # out["key"] = ...
                    keys.add(target.slice.value)
        if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "update"
                and getattr(node.func.value, "id", None) == out):                      # out.update(...)
            keys |= {kw.arg for kw in node.keywords if kw.arg}
            for arg in node.args:
                keys |= _dict_keys(arg)
                if isinstance(arg, ast.Call) and isinstance(arg.func, ast.Attribute):
                    if arg.func.attr == "settings":                                    # a sampler's settings
                        keys |= _sampler_settings_keys()
                    else:                                                              # M.precision_recall(...)
                        keys |= _returned_dict_keys(ROOT / "vae_keras" / "evaluation" / "metrics.py", arg.func.attr)
    return keys


def test_every_key_evaluate_writes_has_a_registry_entry():
    keys = evaluate_run_keys()
    assert len(keys) >= 25 and {"nll_iwae_bpd", "class_recognition", "precision", "recall"} <= keys  # parse works
    assert sorted(keys - set(MEASURES)) == []


@pytest.mark.parametrize("path", COMMITTED_METRICS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_key_of_a_committed_metrics_file_has_a_registry_entry(path):
    assert sorted(set(json.loads(path.read_text(encoding="utf-8"))) - set(MEASURES)) == []


def test_there_is_a_committed_metrics_file_to_check():
    assert COMMITTED_METRICS, "no figures/**/metrics*.json: the two tests above check nothing"


@pytest.mark.parametrize("path", COMMITTED_METRICS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_gallery_explains_every_key_of_a_committed_metrics_file(path):
    from vae_keras.viz.gallery import explain_metric, flatten_metrics

    flat = flatten_metrics(json.loads(path.read_text(encoding="utf-8")))
    assert len(flat) > 20
    assert [key for key, _ in flat if not explain_metric(key)] == []
    # a nested key is explained by the measure it belongs to, not by a top-level key of the same name
    assert explain_metric("threat_classifier.epochs") == MEASURES["threat_classifier"].explanation
    assert explain_metric("class_recognition.knife") == MEASURES["class_recognition"].explanation


def test_the_gallery_no_longer_explains_keys_evaluate_never_writes():
    from vae_keras.viz.gallery import explain_metric

    for stale in ("neg_elbo_bpd", "iwae_nll_bpd", "psnr", "ssim", "wasserstein1", "per_class_accuracy"):
        assert explain_metric(stale) == "", stale


def test_format_table_of_a_small_dict():
    metrics = {"nll_elbo_bpd": 7.28753, "recon_psnr": 28.8932, "intensity_w1": 0.0136111,
               "c2st_accuracy": float("nan"), "class_recognition": {"handgun": 0.29, "knife": 0.5}}
    lines = format_table(metrics).splitlines()
    assert len(lines) == len(TABLE) + 2                                 # every column, then one line per class
    rows = {line[:line.rindex("  ")].strip(): line.split()[-1] for line in lines}
    assert rows["-ELBO bits/dim"] == "7.288" and rows["recon PSNR dB"] == "28.89"
    assert rows["intensity W1"] == "0.0136"
    assert rows["2-sample acc."] == "-" and rows["Frechet dist."] == "-"   # NaN and not measured
    assert rows["recognised: handgun"] == "0.29" and rows["recognised: knife"] == "0.50"
    assert lines[0] == "-ELBO bits/dim         7.288"          # padded to the widest title, "  recognised: handgun"
    assert lines[-1] == "  recognised: knife    0.50"
    assert len({len(line) - len(line.split()[-1]) for line in lines}) == 1   # the values start in one column
    assert format_value(metrics, "recon_psnr") == "28.89" and format_value({}, "recall") == "-"


def test_measure_names_labels_and_bad_definitions():
    assert MEASURES["sharpness_ratio"].label == "sharpness ratio (1 = real)"
    assert MEASURES["c2st_accuracy"].label == "two-sample accuracy (0.5 = real)"
    assert MEASURES["recon_psnr"].label == "reconstruction PSNR (dB)"
    assert MEASURES["frechet_distance"].label == "Frechet distance" and MEASURES["frechet_distance"].arrow == " ↓"
    assert all(m.better in BETTER for m in TABLE)
    with pytest.raises(ValueError, match="better must be one of .* got 'up'"):
        Measure("x", "x", "{:.3f}", "up", "An x.")
    with pytest.raises(ValueError, match="fmt must be a str.format pattern"):
        Measure("x", "x", "%.3f", "lower", "An x.")


def _strings(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_other_module_keeps_its_own_titles_formats_or_explanations(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    # a measure's title, full name or label as a string of its own (not a key that reads the same)
    names = {s for m in MEASURES.values() if m.better for s in (m.title, m.full_name, m.label)} - set(MEASURES)
    copied = sorted({node.value for node in _strings(tree) if node.value in names})
    assert copied == [], f"{path.name} spells a measure's title; use vae_keras.evaluation.measures.MEASURES"
    # a metrics key next to a format pattern (("recon_psnr", "recon PSNR dB", "{:.2f}")), or a dict giving
    # several metrics keys a sentence each (the gallery's old METRIC_EXPLANATIONS)
    fmt = re.compile(r"^\{:[^{}]*\}$")
    for node in ast.walk(tree):
        if isinstance(node, ast.Tuple):
            values = [e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)]
            assert not (set(values) & set(MEASURES) and any(fmt.match(v) for v in values)), \
                f"{path.name}:{node.lineno} pairs a metrics key with its own format: {values}"
        if isinstance(node, ast.Dict):
            described = [k.value for k, v in zip(node.keys, node.values)
                         if isinstance(k, ast.Constant) and k.value in MEASURES
                         and isinstance(v, (ast.Constant, ast.JoinedStr)) and isinstance(getattr(v, "value", ""), str)
                         and len(getattr(v, "value", "") or "") > 20]
            assert len(described) < 2, f"{path.name}:{node.lineno} explains metrics keys itself: {described}"
