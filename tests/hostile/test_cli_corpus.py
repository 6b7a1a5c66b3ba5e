"""Every command over the hostile corpus: exit status 2, one line naming the problem, no traceback, nothing left.

Each case gives a command line built from the corpus (``{name}`` is a corpus file, ``{out}`` a fresh output path
in a scratch folder) and a piece of the expected message, so a case passes only for the right reason. Before and
after each case the corpus and the scratch folder are listed: a failed command may not leave any file behind.
"""

from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

import pytest

from uvis.cli.main import main

# (case id, command line, expected text in the message)
CASES: list[tuple[str, str, str]] = [
    # --- YouTube-VIS files that would make pycocotools allocate without bound, or crash
    ("eval-gt-nan-polygon", "eval {gt_nan_polygon} {results}", "polygon coordinate is nan"),
    ("eval-gt-huge-polygon", "eval {gt_huge_polygon} {results}", "polygon coordinate is 10000000000"),
    ("eval-gt-inf-polygon", "eval {gt_inf_polygon} {results}", "polygon coordinate is inf"),
    ("eval-gt-huge-size", "eval {gt_huge_size} {results}", "larger than any video"),
    ("eval-results-nan-polygon", "eval {gt} {results_nan_polygon}", "polygon coordinate is nan"),
    ("eval-results-nan-score", "eval {gt} {results_nan_score}", "'score' is nan"),
    ("segment-gt-nan-polygon", "segment {gt_nan_polygon} --model none --out {out}", "polygon coordinate is nan"),
    ("import-davis-on-a-file", "import-davis {gt} --out {out}.json", ""),
    # --- JSON nested too deep, FIFOs
    ("eval-deep-json", "eval {deep_json} {results}", "nested too deeply"),
    ("eval-deep-json-results", "eval {gt} {deep_json_object}", "nested too deeply"),
    ("name-deep-json", "name {deep_json} --data {dataset} --out {out}.json", "nested too deeply"),
    ("train-deep-json", "train --data {dataset} --pseudo {deep_json} --out {out} --preset tiny --device cpu",
     "nested too deeply"),
    ("segment-fifo", "segment {fifo} --model none --out {out}", "not a regular file or folder"),
    ("eval-fifo", "eval {fifo_json} {results}", "not a regular file or folder"),
    ("pseudo-label-fifo", "pseudo-label {fifo} --out {out}", "not a regular file or folder"),
    # --- videos: cut short, audio only, garbage; datasets whose videos are wrong
    ("pseudo-label-truncated", "pseudo-label {truncated_mp4} --out {out} --dino tiny --dino-weights {dino_weights} "
     "--resolution 32 --device cpu --no-progress", "declares 30 frames"),
    ("pseudo-label-audio-only", "pseudo-label {audio_only} --out {out} --dino tiny --dino-weights {dino_weights} "
     "--resolution 32 --device cpu --no-progress", "no video stream"),
    ("pseudo-label-garbage", "pseudo-label {garbage_mp4} --out {out} --dino tiny --dino-weights {dino_weights} "
     "--resolution 32 --device cpu --no-progress", "cannot open video"),
    ("pseudo-label-bomb-frame", "pseudo-label {bomb_frames} --out {out} --dino tiny --dino-weights {dino_weights} "
     "--resolution 32 --device cpu --no-progress", "at most 32768 a side"),
    ("run-train-videos-unknown", "run {dataset} --train-videos nope --out {out}", "not in the input: nope"),
    ("segment-zero-frame-video", "segment {gt_zero_frames} --model none --out {out}", "video empty (id 99) lists no frames"),
    ("segment-wrong-size", "segment {gt_wrong_size} --model none --out {out}", "is 64x40 in the file"),
    ("run-wrong-size", "run {gt_wrong_size} --out {out}", "is 64x40 in the file"),
    # --- vocabularies: TOML and --classes
    ("run-toml-unknown-key", "run {dataset} --vocabulary {toml_unknown_key} --out {out}", "unknown key 'nmes'"),
    ("run-toml-empty-names", "run {dataset} --vocabulary {toml_empty_names} --out {out}", "no class names"),
    ("run-toml-string", "run {dataset} --vocabulary {toml_string_vocabulary} --out {out}", "not a table"),
    ("run-toml-numbers", "run {dataset} --vocabulary {toml_numbers} --out {out}", "class 1 is 1"),
    ("run-toml-repeated", "run {dataset} --vocabulary {toml_repeated} --out {out}", "listed twice"),
    ("run-toml-unknown-top", "run {dataset} --vocabulary {toml_unknown_top} --out {out}", "unknown key 'nmae'"),
    ("run-toml-syntax", "run {dataset} --vocabulary {toml_syntax} --out {out}", "not valid TOML"),
    ("run-classes-commas", "run {dataset} --classes ,,, --out {out}", "empty name"),
    ("segment-classes-repeated", "segment {dataset} --model none --classes object,object --out {out}", "listed twice"),
    ("segment-classes-empty", "segment {dataset} --model {model_run} --classes= --out {out}", "empty name"),
    ("name-classes-repeated", "name {pseudo} --data {dataset} --classes dog,dog --out {out}.json", "listed twice"),
    # --- numbers: NaN, inf, out of range (before any work)
    ("segment-score-nan", "segment {dataset} --model none --score-threshold nan --out {out}", "--score-threshold nan"),
    ("segment-score-above-1", "segment {dataset} --model none --score-threshold 1.5 --out {out}", "out of range"),
    ("segment-similarity-inf", "segment {dataset} --model none --similarity-threshold inf --out {out}", "not a finite"),
    ("segment-top-k-0", "segment {dataset} --model none --top-k 0 --out {out}", "--top-k 0"),
    ("segment-batch-negative", "segment {dataset} --model none --batch-size -3 --out {out}", "--batch-size -3"),
    ("segment-resolution-0", "segment {dataset} --model none --resolution 0 --out {out}", "--resolution 0"),
    ("train-lr-inf", "train --data {dataset} --pseudo {pseudo} --out {out} --lr inf", "--lr inf"),
    ("train-lr-nan", "train --data {dataset} --pseudo {pseudo} --out {out} --lr nan", "--lr nan"),
    ("train-lr-zero", "train --data {dataset} --pseudo {pseudo} --out {out} --lr 0", "--lr 0"),
    ("train-clip-weight-nan", "train --data {dataset} --pseudo {pseudo} --out {out} --clip-weight nan", "--clip-weight nan"),
    ("train-workers-1000", "train --data {dataset} --pseudo {pseudo} --out {out} --workers 1000", "--workers 1000"),
    ("train-steps-0", "train --data {dataset} --pseudo {pseudo} --out {out} --steps 0", "--steps 0"),
    ("train-seed-negative", "train --data {dataset} --pseudo {pseudo} --out {out} --seed -1", "--seed -1"),
    ("pseudo-label-tau-2", "pseudo-label {dataset} --out {out} --tau 2", "--tau 2"),
    ("pseudo-label-min-score-nan", "pseudo-label {dataset} --out {out} --min-score nan", "--min-score nan"),
    ("name-context-inf", "name {pseudo} --data {dataset} --out {out}.json --context inf", "--context inf"),
    ("name-min-prob-nan", "name {pseudo} --data {dataset} --out {out}.json --min-prob nan", "--min-prob nan"),
    ("demo-steps-0", "demo --steps 0 --out {out}", "--steps 0"),
    ("run-steps-0", "run {dataset} --steps 0 --out {out}", "--steps 0"),
    ("run-image-size-0", "run {dataset} --image-size 0x0 --out {out}", "too small"),
    ("run-num-masks-0", "run {dataset} --num-masks 0 --out {out}", "--num-masks 0"),
    ("segment-shard-bad", "segment {dataset} --model none --shard 3/2 --out {out}", "bad --shard"),
    ("segment-not-a-number", "segment {dataset} --model none --top-k many --out {out}", "invalid int value"),
    ("train-unknown-flag", "train --data {dataset} --pseudo {pseudo} --out {out} --lrr 1", "unrecognized arguments"),
    # --- devices torch knows but uvis does not run on
    ("segment-device-mps", "segment {dataset} --model {model_run} --device mps --out {out}", "--device mps"),
    ("segment-device-xpu", "segment {dataset} --model {model_run} --device xpu --out {out}", "--device xpu"),
    ("train-device-mps", "train --data {dataset} --pseudo {pseudo} --out {out} --device mps", "--device mps"),
    ("pseudo-label-device-meta", "pseudo-label {dataset} --out {out} --device meta", "--device meta"),
    ("run-device-nonsense", "run {dataset} --out {out} --device gpu0", "unknown --device"),
    ("demo-device-xpu", "demo --out {out} --device xpu", "--device xpu"),
    # --- output locations: a file where a folder is needed, a folder under a file
    ("segment-out-is-a-file", "segment {dataset} --model none --out {a_file}", "is an existing file"),
    ("segment-out-under-a-file", "segment {dataset} --model none --out {a_file}/sub", "is a file"),
    ("train-out-is-a-file", "train --data {dataset} --pseudo {pseudo} --out {a_file}", "is an existing file"),
    ("run-out-is-a-file", "run {dataset} --out {a_file}", "is an existing file"),
    ("pseudo-label-out-is-a-file", "pseudo-label {dataset} --out {a_file}", "is an existing file"),
    ("demo-out-is-a-file", "demo --out {a_file}", "is an existing file"),
    ("name-out-is-a-folder", "name {pseudo} --data {dataset} --out {dataset}", "must be a .json file"),
    ("name-out-under-a-file", "name {pseudo} --data {dataset} --out {a_file}/named.json", "is a file"),
    ("import-davis-out-under-a-file", "import-davis {dataset} --out {a_file}/davis.json", "is a file"),
    # --- damaged derived data
    ("segment-cut-model", "segment {dataset} --model {model_run} --out {out} --device cpu", "cannot load the run's weights"),
    # --- ordinary mistakes
    ("eval-missing-file", "eval {root}/absent.json {results}", "file not found"),
    ("segment-missing-input", "segment {root}/absent --model none --out {out}", "no such file"),
    ("segment-frames-for-a-video", "segment {full_mp4} --frames {dataset} --model none --out {out}", "--frames"),
]


def _listing(*folders: Path) -> set[str]:
    return {str(p) for folder in folders if folder.exists() for p in folder.rglob("*")}


def _argv(template: str, corpus, out: Path) -> list[str]:  # noqa: ANN001 (the Corpus fixture)
    names = {**{k: str(v) for k, v in corpus.files.items()}, "gt": str(corpus.gt), "results": str(corpus.results),
             "pseudo": str(corpus.pseudo), "dataset": str(corpus.dataset), "dino_weights": str(corpus.dino_weights),
             "model_run": str(corpus.model_run), "root": str(corpus.root), "out": str(out)}
    return [part.format(**names) for part in template.split()]


def run_case(argv: list[str], capsys) -> tuple[int, list[str]]:  # noqa: ANN001 (pytest's capsys)
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's usage errors
        code = int(e.code or 0)
    err = capsys.readouterr().err
    return code, [line for line in err.splitlines() if line.strip()]


def assert_one_line_error(code: int, lines: list[str], command: str, expected: str) -> None:
    assert code == 2, (code, lines)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"uvis {command}: error: "), lines[0]
    assert "Traceback" not in lines[0] and expected in lines[0], (expected, lines[0])


@pytest.mark.parametrize(("template", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_input_is_one_line_and_leaves_nothing(corpus, tmp_path, capsys, template, expected):
    out = tmp_path / "out"
    argv = _argv(template, corpus, out)
    before = _listing(corpus.root, tmp_path)
    code, lines = run_case(argv, capsys)
    assert_one_line_error(code, lines, argv[0], expected)
    assert _listing(corpus.root, tmp_path) == before, "the failed command left files behind"


# --- the machine's state: a read-only folder, a full disk (simulated: the tests may run as root, and cannot
# mount a small disk), checked before any work


def _refuse_writes(monkeypatch, code: int) -> None:
    import tempfile

    def mkstemp(*args, **kwargs):
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(tempfile, "mkstemp", mkstemp)


OUT_COMMANDS = [
    ("segment", "segment {dataset} --model none --out {out}"),
    ("train", "train --data {dataset} --pseudo {pseudo} --out {out}"),
    ("run", "run {dataset} --out {out}"),
    ("pseudo-label", "pseudo-label {dataset} --out {out}"),
    ("name", "name {pseudo} --data {dataset} --out {out}.json"),
    ("import-davis", "import-davis {dataset} --out {out}.json"),
    ("demo", "demo --out {out}"),
]


@pytest.mark.parametrize(("command", "template"), OUT_COMMANDS, ids=[c[0] for c in OUT_COMMANDS])
@pytest.mark.parametrize(("code", "expected"), [(errno.EROFS, "Read-only file system"),
                                                (errno.EACCES, "Permission denied")], ids=["read-only", "forbidden"])
def test_unwritable_output_is_refused_before_work(corpus, tmp_path, capsys, monkeypatch, command, template, code,
                                                  expected):
    _refuse_writes(monkeypatch, code)
    lines = run_case(_argv(template, corpus, tmp_path / "out"), capsys)
    assert_one_line_error(*lines, command, expected)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(("command", "template"), OUT_COMMANDS, ids=[c[0] for c in OUT_COMMANDS])
def test_full_disk_is_refused_before_work(corpus, tmp_path, capsys, monkeypatch, command, template):
    real = shutil.disk_usage
    monkeypatch.setattr(shutil, "disk_usage", lambda p: real(p)._replace(free=4096))
    lines = run_case(_argv(template, corpus, tmp_path / "out"), capsys)
    assert_one_line_error(*lines, command, "MiB free on the output's disk")
    assert not (tmp_path / "out").exists()
