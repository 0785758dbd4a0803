import dataclasses

import pytest
import torch

import tokenkit as tk
from tokenkit.errors import RegistryError


@dataclasses.dataclass(frozen=True)
class _Cfg:
    width: int = 4


def test_list_parts_and_models_natural_sort():
    assert tk.list_parts("quantizer")[:1] and "vq" in tk.list_parts("quantizer")
    names = tk.list_models("titok-*")
    assert names.index("titok-b64") < names.index("titok-bl64-vae") < names.index("titok-bl128-vae")
    assert tk.list_models("titok-s*") == ["titok-s128", "titok-sl256-vq8k"]


def test_duplicate_name_raises():
    with pytest.raises(RegistryError, match="already registered"):
        @tk.register("quantizer", "vq")
        class Again(tk.Quantizer):
            Config = _Cfg


def test_unknown_names_suggest_closest():
    with pytest.raises(RegistryError, match="Did you mean 'vq'"):
        tk.registry.get_part("quantizer", "vqq")
    with pytest.raises(RegistryError, match="titok-b64"):
        tk.build("titok-b46")
    with pytest.raises(RegistryError, match="unknown part kind"):
        tk.list_parts("tokenizers")


def test_register_requires_dataclass_config():
    with pytest.raises(RegistryError, match="Config"):
        @tk.register("backbone", "no-config")
        class NoConfig(tk.Backbone):
            pass
    assert "no-config" not in tk.list_parts("backbone")


def test_register_requires_the_base_of_the_kind():
    with pytest.raises(RegistryError, match=r"a quantizer derives from tokenkit\.kinds\.Quantizer"):
        @tk.register("quantizer", "plain-module")
        class Plain(torch.nn.Module):
            Config = _Cfg
    with pytest.raises(RegistryError, match=r"a decoder derives from tokenkit\.kinds\.Decoder"):
        tk.register("decoder", "an-encoder")(type("AnEncoder", (tk.Encoder,), {"Config": _Cfg}))
    assert "plain-module" not in tk.list_parts("quantizer") and "an-encoder" not in tk.list_parts("decoder")


def test_register_and_unregister_roundtrip():
    @tk.register("backbone", "test-identity")
    class Identity(tk.Backbone):
        Config = _Cfg

        def __init__(self, config):
            super().__init__()
            self.width = config.width

        def forward(self, tokens):
            return tokens

    try:
        assert "test-identity" in tk.list_parts("backbone", "test-*")
        assert tk.build_part("backbone", "test-identity", width=6).width == 6
    finally:
        tk.unregister("backbone", "test-identity")
    assert "test-identity" not in tk.list_parts("backbone")


def test_parts_from_entry_points_are_loaded(monkeypatch):
    import importlib
    import importlib.metadata

    from tokenkit import registry

    def _load_plugin():
        @tk.register("backbone", "plugin-identity")
        class PluginIdentity(tk.Backbone):
            Config = _Cfg

    ep = importlib.metadata.EntryPoint(name="demo", value="tokenkit_test_plugin", group=registry.ENTRY_POINT_GROUP)
    broken = importlib.metadata.EntryPoint(name="broken", value="no_such_module_xyz", group=registry.ENTRY_POINT_GROUP)
    monkeypatch.setattr(importlib.metadata, "entry_points",
                        lambda group=None: [ep, broken] if group == registry.ENTRY_POINT_GROUP else [])
    monkeypatch.setattr(registry, "_entry_points_loaded", False)
    loaded = []

    def load(self):
        loaded.append(self.name)
        return _load_plugin() if self.value == "tokenkit_test_plugin" else importlib.import_module(self.value)

    monkeypatch.setattr(importlib.metadata.EntryPoint, "load", load)
    try:
        with pytest.warns(UserWarning, match="could not load tokenkit plug-in 'broken'"):
            assert "plugin-identity" in tk.list_parts("backbone")
        assert loaded == ["demo", "broken"]
    finally:
        tk.unregister("backbone", "plugin-identity")
