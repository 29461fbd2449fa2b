"""Pretrained entries (issue 9): cards, checksums, offline and file:// loading, fine-tuning."""

import json
import shutil

import keras
import numpy as np
import pytest

import zoo
from markers import needs_fashion_mnist
from zoo import hub
from zoo.cards import validate_card, weights_file

ENTRIES = zoo.list_models(pretrained=True)
SMALLEST = min(ENTRIES, key=lambda n: weights_file(zoo.card(n))["bytes"]) if ENTRIES else None


def test_there_are_pretrained_entries():
    assert len(ENTRIES) >= 3, ENTRIES


@pytest.mark.parametrize("name", ENTRIES)
def test_every_file_is_listed_in_its_card_with_its_sha256(name):
    card = validate_card(zoo.card(name))
    directory = hub.LOCAL_ROOT / name
    listed = card["files"]
    on_disk = {p.name for p in directory.iterdir()} - {"card.json", "README.md"}
    assert on_disk == set(listed), f"unlisted or missing files in {directory}"
    for path, entry in listed.items():
        assert hub.sha256_of(directory / path) == entry["sha256"]
        assert (directory / path).stat().st_size == entry["bytes"]
    assert card["name"] == name
    assert zoo.create(card["architecture"], **card["config"]) is not None


def test_saved_models_stay_under_50_mb():
    total = sum(p.stat().st_size for p in hub.LOCAL_ROOT.rglob("*") if p.is_file())
    assert total < 50e6, total


def test_models_md_is_current():
    from training.models_table import render

    assert (hub.LOCAL_ROOT.parent / "docs" / "models.md").read_text() == render(), \
        "docs/models.md is stale: run `python -m training.models_table`"


@needs_fashion_mnist
@pytest.mark.parametrize("name", ENTRIES)
def test_card_figures_are_reproduced_by_the_shipped_evaluation(name):
    from training.evaluate import evaluate_pretrained

    card = zoo.card(name)
    result = evaluate_pretrained(name, limit=1000, progress=False)
    reference = card["metrics"]["first_1000"]
    assert abs(result["accuracy"] - reference["accuracy"]) <= 0.01
    assert abs(result["loss"] - reference["loss"]) <= 0.01 * max(1.0, reference["loss"])
    # and the subset is representative of the full-split figure the card reports
    assert abs(result["accuracy"] - card["metrics"]["accuracy"]) <= 0.04


def test_unknown_and_unsafe_names_get_clear_errors():
    if ENTRIES:
        with pytest.raises(ValueError, match="Did you mean"):
            zoo.load(ENTRIES[0] + "x")
    for bad in ("../x", "a/b", "", "UPPER", ".hidden"):
        with pytest.raises(ValueError, match="Unsafe or malformed"):
            zoo.card(bad)


def test_card_with_missing_fields_is_rejected():
    card = json.loads((hub.LOCAL_ROOT / SMALLEST / "card.json").read_text())
    del card["metrics"]["accuracy"], card["recipe"]
    with pytest.raises(ValueError, match=r"missing field 'recipe'.*missing metrics.accuracy"):
        validate_card(card)


def _copy_entry(name, root):
    shutil.copytree(hub.LOCAL_ROOT / name, root / name)
    return root / name


def test_load_from_a_file_url_caches_a_verified_copy(tmp_path, monkeypatch):
    local = zoo.load(SMALLEST)
    monkeypatch.setenv(hub.BASE_URL_ENV, hub.LOCAL_ROOT.as_uri())
    monkeypatch.setenv(hub.CACHE_DIR_ENV, str(tmp_path / "cache"))
    remote = zoo.load(SMALLEST)
    for a, b in zip(local.get_weights(), remote.get_weights()):
        np.testing.assert_array_equal(a, b)
    cached = sorted(p.name for p in (tmp_path / "cache" / SMALLEST).iterdir())
    assert cached == ["card.json", "model.weights.h5"]  # no temporary leftovers


def _tamper(path):
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_tampered_weights_from_a_url_are_refused_and_not_cached(tmp_path, monkeypatch):
    entry = _copy_entry(SMALLEST, tmp_path / "remote")
    _tamper(entry / "model.weights.h5")
    card = json.loads((entry / "card.json").read_text())
    monkeypatch.setenv(hub.BASE_URL_ENV, (tmp_path / "remote").as_uri())
    monkeypatch.setenv(hub.CACHE_DIR_ENV, str(tmp_path / "cache"))
    with pytest.raises(hub.ChecksumError) as info:
        zoo.load(SMALLEST)
    message = str(info.value)
    assert "model.weights.h5" in message and weights_file(card)["sha256"] in message
    assert hub.sha256_of(entry / "model.weights.h5") in message
    leftovers = [p.name for p in (tmp_path / "cache" / SMALLEST).iterdir()]
    assert leftovers == ["card.json"], leftovers


def test_tampered_local_weights_are_refused(tmp_path, monkeypatch):
    entry = _copy_entry(SMALLEST, tmp_path)
    _tamper(entry / "model.weights.h5")
    monkeypatch.setattr(hub, "LOCAL_ROOT", tmp_path)
    with pytest.raises(hub.ChecksumError, match="Checksum mismatch.*model.weights.h5"):
        zoo.load(SMALLEST)


def test_a_stale_cached_copy_is_replaced(tmp_path, monkeypatch):
    monkeypatch.setenv(hub.BASE_URL_ENV, hub.LOCAL_ROOT.as_uri())
    monkeypatch.setenv(hub.CACHE_DIR_ENV, str(tmp_path))
    zoo.load(SMALLEST)
    _tamper(tmp_path / SMALLEST / "model.weights.h5")
    zoo.load(SMALLEST)  # re-fetched, verified
    expected = weights_file(zoo.card(SMALLEST))["sha256"]
    assert hub.sha256_of(tmp_path / SMALLEST / "model.weights.h5") == expected


def test_new_head_and_frozen_blocks_fine_tune_with_fit():
    name = next(n for n in ENTRIES if zoo.card(n)["dataset"]["name"] == "fashion_mnist")
    model = zoo.load(name, num_classes=5, trainable_blocks=False)
    assert model.output_shape == (None, 5)
    trainable = [w.path for w in model.trainable_weights]
    assert trainable and all(p.startswith("predictions") for p in trainable), trainable
    before = [w.numpy().copy() for w in model.non_trainable_weights]
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x = np.random.default_rng(0).uniform(0, 255, (16, 28, 28, 1)).astype("float32")
    model.fit(x, np.arange(16) % 5, epochs=1, batch_size=8, verbose=0)
    for a, b in zip(before, model.non_trainable_weights):
        np.testing.assert_array_equal(a, b.numpy())
    assert zoo.load(name, num_classes=10).get_layer("predictions").units == 10


@needs_fashion_mnist
@pytest.mark.slow
def test_fine_tuning_improves_on_the_rotated_task():
    from training.finetune import fine_tune

    name = min((n for n in ENTRIES if zoo.card(n)["dataset"]["name"] == "fashion_mnist"),
               key=lambda n: zoo.card(n)["trainable_params"])
    r = fine_tune(name, task="rotated", epochs=1, train_size=1000, progress=False)
    assert r["after"]["accuracy"] > r["before"]["accuracy"] + 0.05, r


def test_card_must_list_its_weights_file():
    card = json.loads((hub.LOCAL_ROOT / SMALLEST / "card.json").read_text())
    card["weights"] = "other.weights.h5"
    with pytest.raises(ValueError, match="'other.weights.h5' is not listed in 'files'"):
        validate_card(card)
