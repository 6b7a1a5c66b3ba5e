from uvis.cli.main import main


def test_version(capsys):
    try:
        main(["--version"])
    except SystemExit as e:
        assert e.code == 0
    assert "uvis" in capsys.readouterr().out


def test_no_command_prints_help_and_fails(capsys):
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out


def test_top_level_exports_resolve():
    import uvis

    for name in uvis.__all__:
        assert getattr(uvis, name) is not None
    assert uvis.Segmenter.from_run is not None


def _eval_command_raising(monkeypatch, error: Exception) -> None:
    """Make `uvis eval` raise ``error`` as soon as it runs."""
    from uvis.cli import eval as eval_cli

    def fail(args):
        raise error

    original = eval_cli.register

    def register(sub) -> None:
        original(sub)
        sub.choices["eval"].set_defaults(func=fail)

    monkeypatch.setattr(eval_cli, "register", register)


def test_out_of_memory_is_one_line_with_a_fix(monkeypatch, capsys):
    import torch

    _eval_command_raising(monkeypatch, torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert main(["eval", "a.json", "b.json"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "out of GPU memory" in err[0] and "--batch-size" in err[0]


def test_other_runtime_errors_keep_their_traceback(monkeypatch):
    import pytest

    _eval_command_raising(monkeypatch, RuntimeError("a bug"))
    with pytest.raises(RuntimeError, match="a bug"):
        main(["eval", "a.json", "b.json"])
