"""Description files: schema validation on read, hashing, paths, lookup and offline describers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from textclf.descriptions.describers import offline_descriptions
from textclf.descriptions.files import (
    SCHEMA_VERSION,
    DescriptionFile,
    default_path,
    descriptions_hash,
    load_descriptions,
)
from textclf.descriptions.lookup import resolve_descriptions
from textclf.errors import TextclfError

CLASSES = ["red", "green", "blue", "gray"]


def _file(**over) -> dict:
    data = {
        "schema_version": SCHEMA_VERSION,
        "dataset": "synthetic",
        "class_names": list(CLASSES),
        "prompt_name": "type1",
        "prompt_text": "Describe what a {class_name} is with one sentence.",
        "prompt_system": None,
        "describer": "classname",
        "model": None,
        "base_url": None,
        "temperature": None,
        "seed": None,
        "samples": 1,
        "created_at": "2026-01-01T00:00:00Z",
        "updated_at": "2026-01-01T00:00:00Z",
        "textclf_version": "0.1.0",
        "complete": True,
        "descriptions": {c: [f"a photo of a {c}."] for c in CLASSES},
    }
    data.update(over)
    return data


def _write(tmp_path: Path, data, name: str = "d.json") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return path


def test_valid_file_round_trips_and_orders_by_class_names(tmp_path):
    path = _write(tmp_path, _file())
    f = load_descriptions(path, list(reversed(CLASSES)))
    assert isinstance(f, DescriptionFile)
    assert list(f.descriptions) == list(reversed(CLASSES))
    assert f.to_json()["descriptions"]["red"] == ["a photo of a red."]


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda d: d["descriptions"].pop("blue"), "class 'blue'"),
        (lambda d: d["descriptions"].update(purple=["x"]), "class 'purple'"),
        (lambda d: d["descriptions"].update(green=["  "]), "class 'green'"),
        (lambda d: d["descriptions"].update(green=[]), "class 'green'"),
        (lambda d: d.update(schema_version=2), "schema_version"),
        (lambda d: d.pop("schema_version"), "schema_version"),
        (lambda d: d.pop("prompt_text"), "prompt_text"),
        (lambda d: d.update(samples=0), "samples"),
        (lambda d: d.update(unexpected=1), "unexpected"),
        (lambda d: d["descriptions"].update(red="not a list"), "descriptions.red"),
    ],
)
def test_invalid_files_name_the_class_or_field(tmp_path, mutate, needle):
    data = _file()
    mutate(data)
    with pytest.raises(TextclfError) as info:
        load_descriptions(_write(tmp_path, data), CLASSES)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_class_set_must_match_the_dataset(tmp_path):
    path = _write(tmp_path, _file())
    with pytest.raises(TextclfError, match="class 'gray' that the dataset does not have"):
        load_descriptions(path, CLASSES[:3])
    with pytest.raises(TextclfError, match="no description for class 'purple'"):
        load_descriptions(path, CLASSES + ["purple"])
    assert load_descriptions(path).class_names == CLASSES  # no class list: schema only


def test_malformed_json_and_missing_file_are_textclf_errors(tmp_path):
    with pytest.raises(TextclfError, match="not valid JSON.*line 1"):
        load_descriptions(_write(tmp_path, '{"schema_version": 1,'))
    with pytest.raises(TextclfError, match="expected a JSON object"):
        load_descriptions(_write(tmp_path, "[1, 2]"))
    with pytest.raises(TextclfError, match="does not exist"):
        load_descriptions(tmp_path / "nope.json")


def test_incomplete_file_is_refused_unless_partial(tmp_path):
    data = _file(complete=False)
    data["descriptions"].pop("gray")
    path = _write(tmp_path, data)
    with pytest.raises(TextclfError, match="incomplete.*'gray'.*textclf describe"):
        load_descriptions(path)
    assert load_descriptions(path, CLASSES, partial=True).missing_classes() == ["gray"]


def test_descriptions_hash_is_canonical():
    a = {"b": ["x", "y"], "a": ["z"]}
    b = {"a": ["z"], "b": ["x", "y"]}
    assert descriptions_hash(a) == descriptions_hash(b)
    assert len(descriptions_hash(a)) == 64 and int(descriptions_hash(a), 16) >= 0
    assert descriptions_hash(a) != descriptions_hash({"a": ["z"], "b": ["y", "x"]})


def test_default_path_sanitises_names():
    assert default_path("cifar10", "type1") == Path("descriptions/cifar10/type1.json")
    assert default_path("imagefolder:/data/my pets/", "type2", root="r") == Path(
        "r/imagefolder-my-pets/type2.json"
    )
    assert default_path("imagefolder-x", "type3").parent.name == "imagefolder-x"
    assert ".." not in str(default_path("../../etc", "x"))


def test_resolve_prefers_given_path_then_default_file_then_builtin(tmp_path):
    from textclf.plugins.datasets.cifar10 import CLASS_NAMES

    descs, source = resolve_descriptions("cifar10", CLASS_NAMES, "3", root=str(tmp_path))
    assert source == "builtin:cifar10/type3" and list(descs) == CLASS_NAMES
    assert all(len(v) == 1 and v[0] for v in descs.values())

    target = default_path("cifar10", "type3", root=str(tmp_path))
    target.parent.mkdir(parents=True)
    target.write_text(
        json.dumps(
            _file(
                dataset="cifar10",
                class_names=list(CLASS_NAMES),
                descriptions={c: [f"my {c}"] for c in CLASS_NAMES},
            )
        )
    )
    descs, source = resolve_descriptions(
        "cifar10", list(reversed(CLASS_NAMES)), "type3", root=str(tmp_path)
    )
    assert source == str(target) and descs["cat"] == ["my cat"]
    assert list(descs) == list(reversed(CLASS_NAMES))

    own = _write(tmp_path, _file())
    descs, source = resolve_descriptions("synthetic", CLASSES, path=str(own))
    assert source == str(own) and descs["red"] == ["a photo of a red."]


def test_resolve_without_any_descriptions_says_what_to_run(tmp_path):
    flowers = ["bluebell", "lily-of-the-valley"]  # no built-in set has these classes
    with pytest.raises(TextclfError) as info:
        resolve_descriptions("imagefolder:photos", flowers, "type1", root=str(tmp_path))
    line = str(info.value)
    assert line.startswith("no descriptions for dataset 'imagefolder:photos' prompt 'type1'; ")
    # what works without a key: the class names, or the user's own texts where train looks
    where = default_path("imagefolder:photos", "type1", root=str(tmp_path))
    assert line.endswith(f'as a JSON object {{"class": "text", ...}} to {where}')
    where.parent.mkdir(parents=True)
    where.write_text(json.dumps({"bluebell": "blue bells", "lily-of-the-valley": "white bells"}))
    descs, source = resolve_descriptions("imagefolder:photos", flowers, "1", root=str(tmp_path))
    assert descs["bluebell"] == ["blue bells"] and source == str(where)
    where.unlink()
    assert (
        "textclf describe --dataset imagefolder:photos --prompt-type 1 --describer classname"
        in line
    )
    with pytest.raises(TextclfError, match="unknown prompt 'nope'"):
        resolve_descriptions("imagefolder:photos", flowers, "nope", root=str(tmp_path))


def test_resolve_refuses_an_invalid_default_file_instead_of_falling_back(tmp_path):
    from textclf.plugins.datasets.digits import CLASS_NAMES

    target = default_path("digits", "type1", root=str(tmp_path))
    target.parent.mkdir(parents=True)
    target.write_text("{ not json")
    with pytest.raises(TextclfError, match="not valid JSON"):
        resolve_descriptions("digits", CLASS_NAMES, "1", root=str(tmp_path))


def test_offline_describers(monkeypatch):
    from textclf.plugins.datasets.digits import CLASS_NAMES

    b = offline_descriptions("builtin", "digits", CLASS_NAMES, "type2")
    assert list(b) == CLASS_NAMES and "loop" in b["eight"][0]
    c = offline_descriptions("classname", "digits", CLASS_NAMES)
    assert c["seven"] == ["a photo of a seven."]
    r1 = offline_descriptions("random-words", "digits", CLASS_NAMES, seed=1, samples=2)
    r2 = offline_descriptions("random-words", "digits", CLASS_NAMES, seed=1, samples=2)
    r3 = offline_descriptions("random-words", "digits", CLASS_NAMES, seed=2, samples=2)
    assert r1 == r2 and r1 != r3
    assert all(len(v) == 2 and v[0] != v[1] for v in r1.values())
    assert len({v[0] for v in r1.values()}) == len(CLASS_NAMES)  # distinct per class
    assert not any(c in r1[c][0].lower().split() for c in CLASS_NAMES)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-unused")
    with pytest.raises(TextclfError, match="needs a network service"):
        offline_descriptions("openai", "digits", CLASS_NAMES)
    with pytest.raises(TextclfError, match="no built-in descriptions for dataset 'photos'"):
        offline_descriptions("builtin", "photos", ["bluebell", "lily-of-the-valley"])
    # the synthetic test set has its own (the tiny preset runs every experiment offline)
    s = offline_descriptions("builtin", "synthetic", CLASSES, "type3")
    assert list(s) == CLASSES and "red" in s["red"][0]


def test_file_describer_json_and_csv(tmp_path):
    plain = _write(
        tmp_path, {"red": "R", "green": ["G1", "G2"], "blue": "B", "gray": "Y"}, "plain.json"
    )
    assert offline_descriptions(f"file:{plain}", "synthetic", CLASSES, samples=5) == {
        "red": ["R"],
        "green": ["G1", "G2"],
        "blue": ["B"],
        "gray": ["Y"],
    }
    full = _write(tmp_path, _file(), "full.json")
    assert offline_descriptions(f"file:{full}", "synthetic", CLASSES)["gray"] == [
        "a photo of a gray."
    ]
    csv_path = tmp_path / "d.csv"
    csv_path.write_text('class,description\nred,"Red, warm"\ngreen,G\nblue,B\ngray,Y\ngray,Y2\n')
    got = offline_descriptions(f"file:{csv_path}", "synthetic", CLASSES, samples=2)
    assert got["red"] == ["Red, warm"] and got["gray"] == ["Y", "Y2"]
    bare = tmp_path / "bare.csv"
    bare.write_text("red,R\ngreen,G\nblue,B\ngray,Y\n")
    assert offline_descriptions(f"file:{bare}", "synthetic", CLASSES)["blue"] == ["B"]


@pytest.mark.parametrize(
    "content, needle",
    [
        ({"red": "R", "green": "G", "blue": "B"}, "no description for class 'gray'"),
        ({"red": "R", "green": "G", "blue": "B", "gray": "Y", "pink": "P"}, "class 'pink'"),
        ({"red": "R", "green": "", "blue": "B", "gray": "Y"}, "class 'green' is empty"),
        ({"red": 3, "green": "G", "blue": "B", "gray": "Y"}, "class 'red'"),
        ("nonsense{", "not valid JSON"),
    ],
)
def test_file_describer_errors(tmp_path, content, needle):
    path = _write(tmp_path, content, "bad.json")
    with pytest.raises(TextclfError, match=needle):
        offline_descriptions(f"file:{path}", "synthetic", CLASSES)


def test_file_describer_missing_file_and_missing_argument(tmp_path):
    with pytest.raises(TextclfError, match="does not exist"):
        offline_descriptions(f"file:{tmp_path / 'none.csv'}", "synthetic", CLASSES)
    with pytest.raises(TextclfError, match="needs an argument"):
        offline_descriptions("file", "synthetic", CLASSES)
