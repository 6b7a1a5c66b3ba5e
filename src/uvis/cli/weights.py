"""``uvis weights``: which pretrained files each command needs, where they were found, checking and fetching them.

- ``list``: per file, the commands that need it and where it was found (path, size, sha256), or where it is
  looked for and its URL;
- ``check [COMMAND ...]``: load every file those commands would need into its architecture (keys and shapes);
  exit status 2 on any problem;
- ``download [NAME ...]``: fetch files ahead of time (verified), e.g. on a login node before a cluster job that
  has no network.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from uvis.cli.flags import command_options, render_error
from uvis.cli.options import add_dino_arguments
from uvis.errors import UserError

if TYPE_CHECKING:
    from uvis.features.weights import Need

# command -> the roles of the files it needs (with default settings; see each command's own check)
COMMANDS: dict[str, tuple[str, ...]] = {
    "run": ("dino", "clip", "backbone"),
    "pseudo-label": ("dino",),
    "pseudo-label --name": ("dino", "clip"),
    "name": ("clip",),
    "train": ("backbone",),
    "segment --model none": ("dino", "clip"),
}
DEFAULT_DOWNLOADS = ("dino_vitb8", "ViT-B-32", "dino_resnet50")


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "weights", help="list, check and download the pretrained DINO and CLIP files",
        description="Which pretrained files each command needs and where they were found (list), load and check "
        "them (check), or fetch them ahead of time, e.g. on a login node before a job without network (download).")
    sub = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    def common(q: argparse.ArgumentParser) -> None:
        add_dino_arguments(q, weights_help="DINO weights file or folder (as in pseudo-label, segment and run)")
        q.add_argument("--clip-model", default="ViT-B-32", help="open_clip architecture, or hf-hub:ORG/REPO "
                                                                "(default ViT-B-32)")
        q.add_argument("--clip-pretrained", default="openai", help="pretrained tag naming the weights file")
        q.add_argument("--clip-weights", help="CLIP weights file or folder")
        q.add_argument("--backbone-weights", help="DINO ResNet-50 weights for the model's backbone (train, run)")

    ls = sub.add_parser("list", help="what each command needs and where each file was found (path, size, sha256)")
    common(ls)
    ls.set_defaults(func=run_list, flags_of=ls)
    ck = sub.add_parser("check", help="load and check every file the commands need; exit 2 on a problem")
    ck.add_argument("commands", nargs="*", metavar="COMMAND",
                    help="some of: run, pseudo-label (with --name), name, train, segment (--model none) "
                         "(default: all)")
    common(ck)
    ck.set_defaults(func=run_check, flags_of=ck)
    dl = sub.add_parser("download", help="fetch files ahead of time (verified), e.g. on a login node")
    dl.add_argument("names", nargs="*", metavar="NAME",
                    help="DINO backbones (dino_vitb8, vit_base_patch8_224.dino, facebook/dino-vitb8, ...), "
                         "dino_resnet50, CLIP architectures (ViT-B-32, with --clip-pretrained) or hf-hub:ORG/REPO "
                         f"names (default: {' '.join(DEFAULT_DOWNLOADS)})")
    dl.add_argument("--clip-pretrained", default="openai", help="pretrained tag of CLIP names (default openai)")
    dl.set_defaults(func=run_download)


def _needs(args: argparse.Namespace) -> dict[str, Need]:
    from uvis.features.backbones import backbone_need
    from uvis.pseudo.clip_model import ClipConfig, clip_need

    return {
        "dino": backbone_need(args.backbone, args.dino_weights, "dino_weights", "MaskCut"),
        "clip": clip_need(ClipConfig(model_name=args.clip_model, pretrained_tag=args.clip_pretrained,
                                     weights=args.clip_weights), "naming masks"),
        "backbone": backbone_need("dino_resnet50", args.backbone_weights),
    }


def _used_by(role: str) -> str:
    return ", ".join(c for c, roles in COMMANDS.items() if role in roles)


def _size(path: Path) -> str:
    n = float(path.stat().st_size)
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return ""


def run_list(args: argparse.Namespace) -> int:
    from uvis.features.weights import download_url, file_sha256, find_local, places

    for role, need in _needs(args).items():
        spec = need.spec
        print(f"{spec.label}: needed by {_used_by(role)}")
        try:
            found = find_local(spec, need.path, need.param)
        except UserError as e:
            print(f"  problem: {render_error(e, command_options(args.flags_of))}")
            continue
        if found is not None:
            print(f"  found {found} ({_size(found)}, sha256 {file_sha256(found)})")
        else:
            source = download_url(spec) or f"the Hugging Face hub ({spec.hf_repo})"
            print(f"  missing: looked in {'; '.join(places(spec))}; downloaded on first use from {source}, or "
                  f"now with `uvis weights download`")
    return 0


CHECKABLE = {"run": "run", "pseudo-label": "pseudo-label --name", "name": "name", "train": "train",
             "segment": "segment --model none"}  # ``check`` argument -> the widest need of that command


def _commands(names: list[str]) -> list[str]:
    for name in names:
        if name not in CHECKABLE:
            raise UserError(f"unknown command '{name}'", fix=f"use some of: {', '.join(CHECKABLE)}")
    return [CHECKABLE[n] for n in names or CHECKABLE]


def run_check(args: argparse.Namespace) -> int:
    from uvis.features.weights import file_sha256, find_local, missing_weights_error

    commands = _commands(args.commands)
    roles = [r for r in ("dino", "clip", "backbone") if any(r in COMMANDS[c] for c in commands)]
    needs = _needs(args)
    problems = []
    for role in roles:
        need = needs[role]
        spec = need.spec
        try:
            found = find_local(spec, need.path, need.param)
            if found is None:
                raise missing_weights_error(spec, need.param)
            need.validate(found)
        except UserError as e:
            problems.append(str(e))
            print(f"problem  {spec.label}: {render_error(e, command_options(args.flags_of))}")
            continue
        print(f"ok       {spec.label}: {found} (sha256 {file_sha256(found)[:12]}…), loads into the architecture")
    if problems:
        raise UserError(f"{len(problems)} of {len(roles)} weights files needed by {', '.join(commands)} "
                        "cannot be used (see above)",
                        fix="run `uvis weights download` where there is network access, or follow each fix above")
    print(f"all weights needed by {', '.join(commands)} are in place")
    return 0


def download_needs(names: list[str], clip_pretrained: str = "openai") -> list[Need]:
    """The ``Need`` of each name: a DINO backbone, ``dino_resnet50``, or a CLIP architecture / ``hf-hub:`` name."""
    import open_clip

    from uvis.features.backbones import backbone_need, vit_spec
    from uvis.pseudo.clip_model import ClipConfig, clip_need

    out: list[Need] = []
    for name in names or DEFAULT_DOWNLOADS:
        if name == "dino_resnet50":
            out.append(backbone_need(name))
            continue
        try:
            vit_spec(name)
            out.append(backbone_need(name))
            continue
        except UserError:
            pass
        if name.startswith("hf-hub:") or open_clip.get_model_config(name) is not None:
            out.append(clip_need(ClipConfig(model_name=name, pretrained_tag=clip_pretrained)))
            continue
        raise UserError(f"unknown weights name '{name}'",
                        fix="use a DINO backbone (dino_vitb8, vit_base_patch8_224.dino, facebook/dino-vitb8, ...), "
                            "dino_resnet50, a CLIP architecture (ViT-B-32) or hf-hub:ORG/REPO")
    return out


def run_download(args: argparse.Namespace) -> int:
    from uvis.features.weights import check_needs, file_sha256

    needs = download_needs(args.names, args.clip_pretrained)
    for need, path in zip(needs, check_needs(needs), strict=True):
        print(f"{need.spec.label}: {path} (sha256 {file_sha256(path)})")
    return 0
