import json
import shutil
import subprocess

import pytest

from tokenkit.cli import main


def test_list(capsys):
    assert main(["list", "titok-*"]) == 0
    names = capsys.readouterr().out.split()
    assert "titok-l32" in names and "titok-bl128-vae" in names
    assert main(["list", "--parts", "quantizer"]) == 0
    assert "gaussian" in capsys.readouterr().out.split()


def test_info_prints_the_official_parameter_count(capsys):
    assert main(["info", "titok-l32"]) == 0
    out = capsys.readouterr().out
    assert "641,054,735" in out and "tokens per image  32" in out and "bits per image    384" in out


def test_info_json(capsys):
    assert main(["info", "titok-bl64-vae", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["parameters"] == 389_418_100 and info["codebook_size"] is None
    assert sum(info["parameters_per_part"].values()) == info["parameters"]


def test_unknown_model_is_a_clear_error(capsys):
    assert main(["info", "titok-l23"]) == 2
    assert "Did you mean 'titok-l32'" in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("tokenkit") is None, reason="console script not installed")
def test_console_script():
    out = subprocess.run(["tokenkit", "info", "titok-l32"], capture_output=True, text=True, check=True).stdout
    assert "641,054,735" in out


def test_info_describes_a_generator(capsys):
    assert main(["info", "maskgit-tiny"]) == 0
    out = capsys.readouterr().out
    assert "maskgit-tiny (generator)" in out and "classes" in out and "(bert)" in out
    assert main(["info", "maskgit-tiny", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["kind"] == "generator"


@pytest.mark.parametrize("option, value, named", [("--temperature", "-1", "temperature"),
                                                  ("--guidance", "nan", "guidance"), ("--steps", "0", "steps")])
def test_bad_sampling_options_fail_before_any_model_is_built(tmp_path, capsys, monkeypatch, option, value, named):
    import tokenkit.cli as cli

    monkeypatch.setattr(cli, "_load", lambda *a, **k: pytest.fail("a model was built before the check"))
    code = main(["generate", "maskgit-tiny", "titok-tiny", "--labels", "1", option, value,
                 "--out", str(tmp_path / "x.png")])
    assert code == 2 and named in capsys.readouterr().err


def test_ablate_with_a_mistyped_knob_fails_before_building(tmp_path, capsys, monkeypatch):
    import tokenkit.ablation as ablation

    monkeypatch.setattr(ablation, "measure", lambda *a, **k: pytest.fail("a composition was measured"))
    assert main(["ablate", "titok-tiny", "--num-tokenz", "8,16", "--no-throughput", "--out", str(tmp_path)]) == 2
    assert "num_tokenz" in capsys.readouterr().err


@pytest.mark.parametrize("out, message", [(".", "is a folder"), ("x.gif", "must end in one of"),
                                          ("/proc/nope/x.png", "cannot")])
def test_bad_generate_outputs_fail_before_any_model_is_built(tmp_path, capsys, monkeypatch, out, message):
    import tokenkit.cli as cli

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(cli, "_load", lambda *a, **k: pytest.fail("a model was built before the check"))
    assert main(["generate", "maskgit-tiny", "titok-tiny", "--labels", "1", "--out", out]) == 2
    assert message in capsys.readouterr().err


def test_generate_batch_size_zero_is_refused(tmp_path, capsys):
    assert main(["generate", "maskgit-tiny", "titok-tiny", "--labels", "1", "--batch-size", "0",
                 "--out", str(tmp_path / "x.png")]) == 2
    assert "--batch-size must be a positive int, got 0" in capsys.readouterr().err
