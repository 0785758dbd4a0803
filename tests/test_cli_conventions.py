"""One vocabulary across the ``tokenkit`` commands: ``--version``, defaults in every help, ``--out`` says file or
folder, the deprecated ``ablate --batch``, plurals, and a warning when a command runs on random weights."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import tokenkit as tk
from tokenkit import cli
from tokenkit.cli import _plural, _subparsers, build_parser, main
from tokenkit.version import __version__


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    """``(name words, parser)`` of every command and subcommand under ``parser``."""
    for choices in _subparsers(parser).values():
        for name, child in choices.items():
            yield (*prefix, name), child
            yield from _commands(child, (*prefix, name))


COMMANDS = dict(_commands(build_parser()))


def _options(parser: argparse.ArgumentParser):
    return [a for a in parser._actions if a.option_strings and a.help != argparse.SUPPRESS
            and not isinstance(a, (argparse._HelpAction, argparse._VersionAction))]


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out == f"tokenkit {__version__}\n"


@pytest.mark.parametrize("words", sorted(COMMANDS), ids=" ".join)
def test_help_shows_every_default(words):
    parser = COMMANDS[words]
    text = " ".join(parser.format_help().split())
    for action in _options(parser):
        assert action.help, f"{' '.join(words)} {action.option_strings[-1]} has no help"
        if action.default not in (None, False, argparse.SUPPRESS) and "default" not in action.help:
            assert f"(default: {action.default})" in text, (words, action.option_strings)
    defaults = [a for a in _options(parser) if a.default not in (None, False, argparse.SUPPRESS)]
    assert not defaults or "default" in text


@pytest.mark.parametrize("words", sorted(w for w, p in COMMANDS.items() if any(
    "--out" in a.option_strings for a in p._actions)), ids=" ".join)
def test_out_says_file_or_folder(words):
    (out,) = [a for a in COMMANDS[words]._actions if "--out" in a.option_strings]
    assert out.help.startswith(("output file: ", "output folder: ")), (words, out.help)


def test_one_spelling_per_option():
    """``--batch-size``, ``--num-workers``, ``--weights``: no other spelling of the same thing is offered."""
    for words, parser in COMMANDS.items():
        flags = {f for a in _options(parser) for f in a.option_strings}
        assert not flags & {"--batch", "--bs", "--workers", "--num_workers", "--weight", "--output", "-o", "--num"}, words


def test_every_command_names_its_model_first():
    """A command that needs a model takes it as its first positional argument; only ``decode``, whose ids file
    names its model, takes ``--model`` (an override)."""
    named = {words for words, parser in COMMANDS.items() if any("--model" in a.option_strings for a in _options(parser))}
    assert named == {("decode",)}
    for words in [("reconstruct",), ("encode",), ("pretokenize",), ("info",), ("eval", "reconstruct")]:
        first = next(a for a in COMMANDS[words]._actions if not a.option_strings)
        assert first.dest == "model" or first.dest == "name", (words, first.dest)


def test_reconstruct_and_encode_take_model_then_images_and_the_deprecated_model_option(tmp_path, capsys):
    image = str(Path(tk.__file__).parent / "data" / "images" / "coffee.jpg")
    assert main(["encode", "titok-tiny", image, "--out", str(tmp_path / "a.safetensors")]) == 0
    assert "deprecated" not in capsys.readouterr().err
    assert main(["encode", image, "--model", "titok-tiny", "--out", str(tmp_path / "b.safetensors")]) == 0
    assert "tokenkit: warning: --model is deprecated; name the model first: tokenkit encode MODEL IMAGES ..." in (
        capsys.readouterr().err.splitlines())
    with pytest.raises(SystemExit) as info:
        main(["reconstruct", "titok-tiny", "--out", str(tmp_path / "rec")])
    assert info.value.code == 2 and "required: IMAGES" in capsys.readouterr().err


def test_eval_generate_num_images_and_the_deprecated_num(monkeypatch, tmp_path, capsys):
    from tokenkit.evaluation import runner

    calls = []
    monkeypatch.setattr(runner, "evaluate_generation", lambda *a, **k: calls.append(k) or (_ for _ in ()).throw(
        tk.ConfigError("stop here")))
    base = ["eval", "generate", "maskgit-tiny", "titok-tiny", "--ref", str(tmp_path), "--out", str(tmp_path / "e")]
    assert main([*base, "--num-images", "7"]) == 2 and calls[-1]["num_images"] == 7
    assert "deprecated" not in capsys.readouterr().err
    assert main([*base, "--num", "5"]) == 2 and calls[-1]["num_images"] == 5
    assert "tokenkit: warning: --num is deprecated; use --num-images" in capsys.readouterr().err


def test_a_closed_stdout_pipe_ends_quietly():
    """``tokenkit list | head -1``: the reader goes away; no traceback, no error line, status 1 (as SIGPIPE)."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; from tokenkit.cli import main; sys.exit(main())",
                             "list"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # before the command writes anything
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 1 and err == ""


@pytest.fixture
def ablate_calls(monkeypatch):
    """The keyword arguments of each ``tk.ablate`` call from the command line (the call itself runs)."""
    calls = []
    real = tk.ablate

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(tk, "ablate", recording)
    return calls


def test_ablate_batch_size_and_the_deprecated_batch(tmp_path, capsys, ablate_calls):
    base = ["ablate", "titok-tiny", "--num-tokens", "8", "--no-throughput", "--out", str(tmp_path)]
    assert main([*base, "--batch-size", "3"]) == 0
    assert ablate_calls[-1]["batch"] == 3 and "deprecated" not in capsys.readouterr().err
    assert main([*base, "--batch", "2"]) == 0
    err = capsys.readouterr().err
    assert ablate_calls[-1]["batch"] == 2
    assert [line for line in err.splitlines() if line.startswith("tokenkit:")] == [
        "tokenkit: warning: --batch is deprecated; use --batch-size"]


def test_ablate_batch_zero_is_refused_by_either_name(tmp_path, capsys):
    for flag in ("--batch-size", "--batch"):
        assert main(["ablate", "titok-tiny", "--num-tokens", "8", flag, "0", "--out", str(tmp_path)]) == 2
        assert capsys.readouterr().err == f"tokenkit: error: {flag} must be a positive int, got 0\n"


def test_plural():
    assert [_plural(n, "sample") for n in (0, 1, 2)] == ["0 samples", "1 sample", "2 samples"]


def test_generate_one_sample_and_the_random_weights_warning(tmp_path, capsys):
    out = tmp_path / "g.png"
    argv = ["generate", "maskgit-tiny", "titok-tiny", "--labels", "3", "--steps", "1", "--precision", "fp32",
            "--out", str(out), "--separate", str(tmp_path / "each")]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert f"wrote {out} (1 sample)" in captured.out and "wrote 1 PNG to" in captured.out
    warning = [line for line in captured.err.splitlines() if line.startswith("tokenkit: warning: ")]
    assert warning == ["tokenkit: warning: maskgit-tiny (no --generator-weights) and titok-tiny "
                       "(no --tokenizer-weights) have random weights: the samples are noise"]


def test_generate_names_only_the_model_without_weights(tmp_path, capsys):
    torch.manual_seed(0)
    folder = tmp_path / "tok"
    tk.build("titok-tiny").save_pretrained(folder)
    argv = ["generate", "maskgit-tiny", "titok-tiny", "--tokenizer-weights", str(folder), "--labels", "1,2",
            "--steps", "1", "--precision", "fp32", "--out", str(tmp_path / "g.png")]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "(2 samples)" in captured.out
    warning = [line for line in captured.err.splitlines() if line.startswith("tokenkit: warning: ")]
    assert warning == ["tokenkit: warning: maskgit-tiny (no --generator-weights) has random weights: "
                       "the samples are noise"]


def test_pretokenize_warns_about_random_weights(tmp_path, capsys):
    out = tmp_path / "t.safetensors"
    data = '{"part": "bundled", "config": {"crops_per_epoch": 1}}'
    assert main(["pretokenize", "titok-tiny", "--out", str(out), "--data", data, "--no-flip"]) == 0
    captured = capsys.readouterr()
    assert captured.err.count("tokenkit: warning: titok-tiny has random weights (no --weights given)") == 1
    assert "1 token sequence of 8 ids" in captured.out


def test_python_warnings_under_a_command_are_one_line(monkeypatch, capsys):
    def command(args):
        warnings.warn("something\n  to know", UserWarning, stacklevel=1)

    monkeypatch.setattr(cli, "list_command", command)
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        assert main(["list"]) == 0
    assert capsys.readouterr().err == "tokenkit: warning: something to know\n"


def test_the_choices_written_out_in_the_cli_agree_with_the_library():
    from tokenkit.precision import PRECISIONS

    assert cli.PRECISION_CHOICES == PRECISIONS and cli.KINDS == tk.KINDS


HELP_WITHOUT_TORCH = """
import sys
from tokenkit.cli import main
for argv in (["--help"], ["--version"], ["ablate", "--help"], ["eval", "reconstruct", "--help"]):
    try:
        main(argv)
    except SystemExit as exit:
        assert exit.code == 0, argv
print(sorted(name for name in sys.modules if name.partition(".")[0] in ("torch", "torchvision", "numpy")))
"""


def test_help_and_version_import_no_torch():
    """``tokenkit --help``, ``--version`` and every ``SUBCOMMAND --help`` import neither torch nor numpy: they
    answer in a fraction of a second (the models and parts load when a command runs)."""
    root = str(Path(tk.__file__).resolve().parents[1])
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-c", HELP_WITHOUT_TORCH], capture_output=True, text=True, env=env,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines()[-1] == "[]"


def test_info_knobs_and_list_parts_options(capsys):
    from tokenkit.cli import main

    assert main(["info", "titok", "--knobs"]) == 0
    out = capsys.readouterr().out
    assert "  num_tokens: int = 32\n      Latent tokens per image ``N``." in out
    assert main(["info", "maskgit-titok-l32", "--knobs", "--json"]) == 0
    knobs = {k["name"]: k["default"] for k in json.loads(capsys.readouterr().out)}
    assert knobs["num_tokens"] == 32 and knobs["codebook_size"] == 4096
    assert main(["list", "--parts", "quantizer", "--options", "fsq"]) == 0
    assert capsys.readouterr().out.startswith("fsq\n  levels: tuple[int, ...] = (8, 5, 5, 5)\n")
    assert main(["list", "--options"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["tokenkit: error: --options lists the options of "
                                                            "parts: give --parts KIND"]
