"""Every user error of the command line is one line on stderr and exit status 2, found before any
work starts; ``--debug`` shows the traceback; bugs keep theirs."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

import tokenkit as tk
from tokenkit import cli
from tokenkit.cli import main

IMAGE = str(Path(tk.data.__file__).parent / "images" / "chelsea.jpg")
MODEL_CALLS = [("tokenkit.cli", "_load"), ("tokenkit.cli", "_tokenizer"), ("tokenkit", "from_pretrained"),
               ("tokenkit", "ablate"),
               ("tokenkit.train.recipe", "run_recipe"), ("tokenkit.train.demo", "run_demo"),
               ("tokenkit.evaluation.runner", "evaluate_reconstruction"),
               ("tokenkit.evaluation.runner", "evaluate_generation"),
               ("tokenkit.evaluation.runner", "reference_statistics"),
               ("tokenkit.evaluation.rate_distortion", "rate_distortion")]


@pytest.fixture
def places(tmp_path, monkeypatch):
    """``{tmp}``, ``{file}``, ``{dir}``, ``{missing}``, ``{bad_yaml}``, ``{ids}`` in a temporary working folder
    where every model build, training, ablation or evaluation fails the test."""
    import importlib

    monkeypatch.chdir(tmp_path)
    for module, name in MODEL_CALLS:
        monkeypatch.setattr(importlib.import_module(module), name,
                            lambda *a, **k: pytest.fail("work started before the arguments were checked"))
    (tmp_path / "file.txt").write_text("x")
    (tmp_path / "folder").mkdir()
    (tmp_path / "bad.yaml").write_text("model: titok-tiny\ntrain:\n\tsteps: 3\n")
    (tmp_path / "ids.safetensors").write_text("x")
    return {"tmp": str(tmp_path), "file": str(tmp_path / "file.txt"), "dir": str(tmp_path / "folder"),
            "missing": str(tmp_path / "missing"), "bad_yaml": str(tmp_path / "bad.yaml"),
            "ids": str(tmp_path / "ids.safetensors")}


GEN = ["generate", "maskgit-tiny", "titok-tiny", "--labels", "1"]
ABL = ["ablate", "titok-tiny", "--num-tokens", "8"]
BAD = [
    (GEN + ["--batch-size", "0", "--out", "{tmp}/g.png"], "--batch-size must be a positive int, got 0"),
    (GEN + ["--nrow", "-1", "--out", "{tmp}/g.png"], "--nrow must be a positive int, got -1"),
    (GEN + ["--steps", "0", "--out", "{tmp}/g.png"], "--steps must be a positive int, got 0"),
    (GEN + ["--out", "{dir}"], "is a folder"),
    (GEN + ["--out", "{file}/g.png"], "--out '{file}' is a file, not a folder"),
    (ABL + ["--batch-size", "0"], "--batch-size must be a positive int, got 0"),
    (ABL + ["--batch", "0"], "--batch must be a positive int, got 0"),
    (ABL + ["--repeats", "0"], "--repeats must be a positive int, got 0"),
    (ABL + ["--warmup", "-1"], "--warmup must be a non-negative int, got -1"),
    (ABL + ["--min-time", "nan"], "--min-time must be a non-negative number, got nan (float)"),
    (ABL + ["--out", "{file}"], "is a file, not a folder"),
    (ABL + ["--inception-weights", "{missing}"], "--inception-weights '{missing}' does not exist"),
    (["demo", "--steps", "0"], "--steps must be a positive int, got 0"),
    (["demo", "--out", "{file}"], "is a file, not a folder"),
    (["train", "{missing}"], "no recipe file '{missing}'"),
    (["train", "{dir}"], "no recipe file '{dir}'"),
    (["train", "{bad_yaml}"], "{bad_yaml}:3:1: YAML syntax error"),
    (["train", "tiny-single-stage", "train.steps=-3"], "train.steps must be a positive int, got -3 (command-line"),
    (["train", "tiny-single-stage", "train.checkpoint_every=-5"], "train.checkpoint_every must be a non-negative int"),
    (["train", "tiny-single-stage", "train.steps=ten"], "train.steps must be a positive int, got 'ten' (str)"),
    (["train", "tiny-single-stage", "train.output_dir={file}"], "train.output_dir '{file}' is a file, not a folder"),
    (["train", "tiny-single-stage", "trian.steps=3"], "unknown recipe section(s) trian"),
    (["train", "tiny-single-stage", "steps"], "must look like section.key=value"),
    (["pretokenize", "titok-tiny", "--out", "{dir}"], "is a folder"),
    (["pretokenize", "titok-tiny", "--out", "{tmp}/t.bin"], "must end in one of .safetensors, .jsonl"),
    (["pretokenize", "titok-tiny", "--out", "{tmp}/t.jsonl", "--num-workers", "-1"], "--num-workers must be a non-nega"),
    (["pretokenize", "titok-tiny", "--out", "{tmp}/t.jsonl", "--size", "0"], "--size must be a positive int, got 0"),
    (["pretokenize", "titok-tiny", "--out", "{tmp}/t.jsonl", "--data", "{missing}"], "is not a folder, a .tar"),
    (["reconstruct", "titok-tiny", "{missing}", "--out", "{tmp}/rec"], "no such file or folder"),
    (["reconstruct", "titok-tiny", IMAGE, "--out", "{file}"], "is a file, not a folder"),
    (["reconstruct", "titok-tiny", IMAGE, "--out", "{tmp}/rec", "--batch-size", "0"], "--batch-size"),
    (["encode", "titok-tiny", IMAGE, "--out", "{dir}"], "is a folder"),
    (["encode", "titok-tiny", IMAGE, "--out", "{ids}"], "already exists; pass --overwrite"),
    (["decode", "{missing}.safetensors", "--out", "{tmp}/dec"], "no such file"),
    (["decode", "{ids}", "--out", "{file}"], "is a file, not a folder"),
    (["eval", "reconstruct", "titok-tiny", IMAGE, "--batch-size", "0"], "--batch-size must be a positive int, got 0"),
    (["eval", "reconstruct", "titok-tiny", IMAGE, "--num-images", "0"], "--num-images must be a positive int"),
    (["eval", "reconstruct", "titok-tiny", IMAGE, "--ref-stats", "{missing}"], "--ref-stats '{missing}' does not"),
    (["eval", "reconstruct", "titok-tiny", IMAGE, "--out", "{file}"], "is a file, not a folder"),
    (["eval", "reference", IMAGE, "--out", "{dir}"], "is a folder"),
    (["eval", "reference", IMAGE, "--out", "{tmp}/r.npz", "--size", "0"], "--size must be a positive int, got 0"),
    (["eval", "generate", "maskgit-tiny", "titok-tiny", "--num", "0"], "--num must be a positive int, got 0"),
    (["eval", "generate", "maskgit-tiny", "titok-tiny", "--npz", "{dir}"], "--npz '{dir}' is a folder"),
    (["eval", "rate-distortion", "titok-tiny", "--data", IMAGE, "--num-workers", "-2"], "must be a non-negative int, got -2"),
    (["eval", "weights", "--compare", "{missing}"], "--compare '{missing}' does not exist"),
    (["info", "titok-l23"], "no model named 'titok-l23'"),
]


def _fill(items, places):
    return [item.format(**places) for item in items]


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("tokenkit: error: ") and "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize("argv, named", BAD, ids=[" ".join(argv[:3]) + f" [{i}]" for i, (argv, _) in enumerate(BAD)])
def test_user_errors_are_one_line_and_exit_2_before_any_work(places, capsys, argv, named):
    assert main(_fill(argv, places)) == 2
    line = _one_error_line(capsys.readouterr().err)
    assert named.format(**places) in line


@pytest.mark.parametrize("argv, named", BAD[::4])
def test_debug_shows_the_traceback(places, capsys, argv, named):
    with pytest.raises(tk.TokenkitError, match=".") as before:
        main(["--debug", *_fill(argv, places)])
    assert named.format(**places) in str(before.value)
    with pytest.raises(tk.TokenkitError):
        main([*_fill(argv, places), "--debug"])  # after the subcommand, too
    assert capsys.readouterr().err == ""


@pytest.mark.parametrize("argv", [["generate", "a", "b", "--batch-size", "x"], ["eval", "reconstruct"], ["--debug"],
                                  ["demo", "--steps", "1.5"], ["list", "--parts", "quantizers"]])
def test_argparse_errors_exit_2(capsys, argv):
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2 and "Traceback" not in capsys.readouterr().err


def _raising(err):
    def command(*args, **kwargs):
        raise err
    return command


@pytest.mark.parametrize("err, line", [
    (PermissionError(13, "Permission denied", "/data/out.png"), "tokenkit: error: /data/out.png: Permission denied"),
    (FileExistsError(17, "File exists", "a.tmp", None, "b.png"), "tokenkit: error: a.tmp -> b.png: File exists"),
    (OSError(28, "No space left on device"), "tokenkit: error: No space left on device"),
    (ModuleNotFoundError("No module named 'wandb'", name="wandb"),
     "tokenkit: error: No module named 'wandb' (an optional dependency this command needs; install it)"),
    (tk.ConfigError("no weights found. Any one of these works:\n  * pip install x\n  * set Y=PATH"),
     "tokenkit: error: no weights found. Any one of these works: * pip install x * set Y=PATH"),
])
def test_environment_errors_are_one_line(monkeypatch, capsys, err, line):
    monkeypatch.setattr(cli, "list_command", _raising(err))
    assert main(["list"]) == 2
    assert _one_error_line(capsys.readouterr().err) == line
    with pytest.raises(type(err)):
        main(["list", "--debug"])


def test_interrupt_is_one_line_and_exit_130(monkeypatch, capsys):
    monkeypatch.setattr(cli, "list_command", _raising(KeyboardInterrupt()))
    assert main(["list"]) == 130
    assert capsys.readouterr().err == "tokenkit: interrupted\n"
    with pytest.raises(KeyboardInterrupt):
        main(["--debug", "list"])


@pytest.mark.parametrize("err", [RuntimeError("a bug"), KeyError("x"),
                                 ImportError("cannot import name 'x' from 'tokenkit.y'", name="tokenkit.y")])
def test_bugs_keep_their_traceback(monkeypatch, err):
    monkeypatch.setattr(cli, "list_command", _raising(err))
    with pytest.raises(type(err)):
        main(["list"])


def test_debug_is_in_the_help(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "--debug" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["eval", "reconstruct", "--help"])
    assert "--debug" in capsys.readouterr().out


@pytest.mark.skipif(shutil.which("tokenkit") is None, reason="console script not installed")
def test_console_script_exits_2_with_one_line(tmp_path):
    argv = ["tokenkit", "generate", "maskgit-tiny", "titok-tiny", "--nrow", "0", "--out", str(tmp_path / "g.png")]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert done.returncode == 2 and done.stderr == "tokenkit: error: --nrow must be a positive int, got 0\n"
