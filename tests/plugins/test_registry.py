"""The plugin registry: built-ins through entry points, name resolution, unknown names, conflicts.

Third-party plugins are simulated with a temporary distribution (a ``*.dist-info`` folder with
``entry_points.txt``) put on ``sys.path``, which ``importlib.metadata`` scans.
"""

from __future__ import annotations

import sys
import uuid

import pytest
from plugin_dist import write_dist

from textclf import registry as reg
from textclf.data.loading import load_dataset
from textclf.errors import TextclfError
from textclf.plugin_api import PromptTemplate
from textclf.plugins.backbones.hf_text import HFTextBackbone

BUILTIN = {
    "prompts": {"type1", "type2", "type3", "type4"},
    "backbones": {
        "efficientnet-lite0",
        "resnet50",
        "tiny-cnn",
        "minilm-l6",
        "distilbert-base-uncased",
        "hf",
        "tiny-bert",
    },
    "datasets": {"digits", "fashion-mnist", "cifar10", "imagefolder", "synthetic"},
    "describers": {"openai", "builtin", "classname", "random-words", "file"},
}


@pytest.fixture(autouse=True)
def fresh_registry():
    """Each test sees the entry points of its own sys.path, and leaves none behind."""
    reg.reset()
    yield
    reg.reset()


@pytest.fixture
def on_path(tmp_path, monkeypatch):
    """A folder on sys.path for fake distributions; their modules are unimported afterwards."""
    before = set(sys.modules)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    for name in set(sys.modules) - before:
        if name.startswith("tcx_"):
            del sys.modules[name]


def _module_name() -> str:
    return f"tcx_{uuid.uuid4().hex[:8]}"


# --- built-ins -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["prompts", "backbones", "datasets"])
def test_builtins_are_registered_through_entry_points_and_load(kind):
    entries = reg.registry(kind).load_all()
    by_name = {e.name: e for e in entries}
    assert BUILTIN[kind] <= set(by_name)
    for name in BUILTIN[kind]:
        entry = by_name[name]
        assert entry.package == "textclf", entry
        assert entry.status == "ok", entry.status
        assert reg.contract_problem(kind, entry.obj) is None


def test_describer_group_is_registered_and_listing_never_raises():
    # The describer modules may not exist yet; listing must still work and name the package.
    entries = reg.registry("describers").load_all()
    assert BUILTIN["describers"] <= {e.name for e in entries}
    assert all(e.package == "textclf" for e in entries if e.name in BUILTIN["describers"])


def test_prompt_aliases_resolve_to_the_paper_prompts():
    prompts = reg.registry("prompts")
    for i in "1234":
        obj = prompts.get(i)
        assert obj.name == f"type{i}"
        assert isinstance(obj, PromptTemplate)
    obj = prompts.get("type3")
    assert obj.render("cat") == "Describe what parts a cat have with one sentence."


def test_backbones_declare_preprocessing_or_pooling():
    from textclf.data.preprocessing import Preprocessing

    for name in reg.image_backbone_names():
        if name.endswith(":<id>"):
            continue  # a family (timm:<model>): its spec follows from the model named
        spec = reg.get_image_backbone(name).spec(False)
        assert spec.dim > 0 and isinstance(spec.preprocessing, Preprocessing)
    for name in ("minilm-l6", "distilbert-base-uncased", "tiny-bert"):
        plugin = reg.get_text_backbone(name)
        assert isinstance(plugin, HFTextBackbone)
        assert plugin.pooling in {"mean", "cls"} and plugin.spec().dim > 0
    assert reg.get_text_backbone("distilbert-base-uncased").pooling == "cls"  # the paper's


# --- unknown names: one line, exit code 2, the valid choices ---------------------------------


def _one_line_error(exc_info, *must_contain, must_not_contain=()):
    err = exc_info.value
    msg = str(err)
    assert err.exit_code == 2
    assert "\n" not in msg
    assert "valid choices" in msg
    for word in must_contain:
        assert word in msg, (word, msg)
    for word in must_not_contain:
        assert word not in msg, (word, msg)
    return msg


def test_unknown_dataset_lists_valid_choices():
    with pytest.raises(TextclfError) as exc_info:
        load_dataset("nope")
    _one_line_error(
        exc_info, "'nope'", "digits", "fashion-mnist", "cifar10", "synthetic", "imagefolder:..."
    )


def test_unknown_image_backbone_lists_image_backbones_only():
    with pytest.raises(TextclfError) as exc_info:
        reg.get_image_backbone("nope")
    _one_line_error(exc_info, "'nope'", "efficientnet-lite0", "resnet50", "tiny-cnn")
    with pytest.raises(TextclfError) as exc_info:
        reg.get_image_backbone("minilm-l6")
    _one_line_error(
        exc_info,
        "image backbone 'minilm-l6'",
        "efficientnet-lite0",
        must_not_contain=("distilbert",),
    )


def test_image_backbone_as_text_backbone_lists_text_backbones():
    with pytest.raises(TextclfError) as exc_info:
        reg.get_text_backbone("efficientnet-lite0")
    _one_line_error(
        exc_info,
        "text backbone 'efficientnet-lite0'",
        "minilm-l6",
        "distilbert-base-uncased",
        "tiny-bert",
        "hf:<id>",
        must_not_contain=("tiny-cnn", "resnet50"),
    )


def test_argument_taking_plugins():
    plugin = reg.get_text_backbone("hf:sentence-transformers/all-mpnet-base-v2")
    assert plugin.name == "hf:sentence-transformers/all-mpnet-base-v2"
    assert plugin.spec(True).weights_id == "hf:sentence-transformers/all-mpnet-base-v2"
    # One name binds once: the same plugin object every time
    assert reg.get_text_backbone("hf:sentence-transformers/all-mpnet-base-v2") is plugin
    with pytest.raises(TextclfError, match="needs an argument"):
        reg.get_text_backbone("hf")
    with pytest.raises(TextclfError, match="needs an argument"):
        load_dataset("imagefolder")
    with pytest.raises(TextclfError) as exc_info:
        load_dataset("digits:extra")  # digits takes no argument
    _one_line_error(exc_info, "'digits:extra'", "digits")


# --- third-party plugins, broken plugins, conflicts ------------------------------------------


def test_third_party_plugins_resolve_next_to_the_builtins(on_path):
    mod = _module_name()
    write_dist(
        on_path,
        "textclf-extra",
        mod,
        """
        from textclf.plugin_api import ImageBackbonePlugin, Preprocessing, PromptTemplate
        HAIKU = PromptTemplate("haiku", "Write a haiku about a {class_name}.")
        CNN = ImageBackbonePlugin("extra-cnn", "a third-party CNN", dim=8,
                                  preprocessing=Preprocessing(16, (0.5,) * 3, (0.5,) * 3),
                                  build=lambda pretrained=True: None, weights_id="extra-cnn-1")
    """,
        {"textclf.prompts": {"haiku": "HAIKU"}, "textclf.backbones": {"extra-cnn": "CNN"}},
    )

    prompt = reg.registry("prompts").get("haiku")
    assert prompt.render("cat") == "Write a haiku about a cat."
    assert reg.get_image_backbone("extra-cnn").spec().dim == 8
    assert "extra-cnn" in reg.image_backbone_names()
    entries = reg.registry("backbones").entries()
    assert entries["extra-cnn"].package == "textclf-extra"
    assert entries["efficientnet-lite0"].package == "textclf"


def test_broken_plugin_is_reported_and_skipped(on_path):
    mod = _module_name()
    write_dist(
        on_path,
        "textclf-broken",
        mod,
        """
        raise RuntimeError("this plugin is broken on purpose")
    """,
        {"textclf.backbones": {"broken-net": "PLUGIN"}},
    )

    entries = reg.registry("backbones").load_all()  # must not raise
    broken = next(e for e in entries if e.name == "broken-net")
    assert broken.status.startswith("broken: RuntimeError: this plugin is broken on purpose")
    assert broken.package == "textclf-broken"
    # The built-ins still resolve; the broken one is a clear error naming its package.
    assert reg.get_image_backbone("tiny-cnn").name == "tiny-cnn"
    with pytest.raises(TextclfError) as exc_info:
        reg.get_image_backbone("broken-net")
    msg = str(exc_info.value)
    assert "textclf-broken" in msg and "this plugin is broken on purpose" in msg


def test_duplicate_names_are_an_error_naming_both_packages(on_path):
    for dist in ("textclf-dup-a", "textclf-dup-b"):
        mod = _module_name()
        write_dist(
            on_path,
            dist,
            mod,
            f"""
            from textclf.plugin_api import PromptTemplate
            P = PromptTemplate("twice", "{dist}: describe a {{class_name}}.")
        """,
            {"textclf.prompts": {"twice": "P"}},
        )

    prompts = reg.registry("prompts")
    with pytest.raises(TextclfError) as exc_info:
        prompts.get("twice")
    msg = str(exc_info.value)
    assert "twice" in msg and "textclf-dup-a" in msg and "textclf-dup-b" in msg
    conflicted = [e for e in prompts.load_all() if e.name == "twice"]
    assert len(conflicted) == 2
    assert all(e.status.startswith("conflict:") for e in conflicted)
    assert {e.package for e in conflicted} == {"textclf-dup-a", "textclf-dup-b"}
    assert prompts.get("type1").name == "type1"  # other names are unaffected


def test_a_third_party_plugin_cannot_silently_replace_a_builtin(on_path):
    mod = _module_name()
    write_dist(
        on_path,
        "textclf-shadow",
        mod,
        """
        from textclf.plugin_api import DatasetPlugin
        PLUGIN = DatasetPlugin("digits", "not the real digits", load_fn=lambda: None)
    """,
        {"textclf.datasets": {"digits": "PLUGIN"}},
    )

    with pytest.raises(TextclfError) as exc_info:
        load_dataset("digits")
    msg = str(exc_info.value)
    assert "'textclf'" in msg and "'textclf-shadow'" in msg


def test_a_family_binds_once_and_what_it_binds_is_checked(on_path):
    mod = _module_name()
    write_dist(
        on_path,
        "textclf-families",
        mod,
        """
        from textclf.plugin_api import DatasetPlugin

        class Good:
            name, summary = "good-set", "binds a dataset"
            def bind(self, argument):
                return DatasetPlugin(f"good-set:{argument}", self.summary, lambda: None)

        class Bad:
            name, summary = "bad-set", "binds nothing usable"
            def bind(self, argument):
                return argument

        GOOD, BAD = Good(), Bad()
    """,
        {"textclf.datasets": {"good-set": "GOOD", "bad-set": "BAD"}},
    )
    datasets = reg.registry("datasets")
    plugin = datasets.get("good-set:a")
    assert plugin.name == "good-set:a" and datasets.get("good-set:a") is plugin
    assert datasets.get("good-set:b") is not plugin
    with pytest.raises(TextclfError, match=r"good-set:\.\.\."):  # listed as a family
        datasets.get("nope")
    with pytest.raises(TextclfError) as exc_info:
        datasets.get("bad-set:x")
    msg = str(exc_info.value)
    assert "family 'bad-set' from 'textclf-families' bound 'x' to no plugin" in msg
    assert "\n" not in msg
