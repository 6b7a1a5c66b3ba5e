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
