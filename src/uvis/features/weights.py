"""Finding pretrained weight files: an explicit path, ``UVIS_WEIGHTS_DIR``, the torch hub cache, or a download.

Search order for a file named ``NAME`` published at ``URL``:

1. ``path`` given by the user (``--weights`` / ``--clip-weights``): a file, or a folder holding ``NAME`` (a folder
   without it is an error: the user said where the file is, so no other copy is used instead);
2. ``$UVIS_WEIGHTS_DIR/NAME``;
3. ``$TORCH_HOME/hub/checkpoints/NAME`` (where ``torch.hub`` keeps downloads, ``~/.cache/torch`` by default);
4. download ``URL`` into the torch hub cache (checksum-verified when the publisher gives one).

When all fail, the error names the file, the URL and the places it may be put.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from uvis.errors import UserError, WeightsNotFoundError

WEIGHTS_DIR_ENV = "UVIS_WEIGHTS_DIR"


@dataclass(frozen=True)
class WeightsSpec:
    """Where a published checkpoint lives and what its file is called."""

    filename: str
    url: str
    sha256_prefix: str | None = None  # leading hex digits of the file's SHA-256, when published


def hub_cache_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def candidate_paths(spec: WeightsSpec, path: str | Path | None = None) -> list[Path]:
    out: list[Path] = []
    if path is not None:
        p = Path(path)
        out.append(p / spec.filename if p.is_dir() else p)
    env = os.environ.get(WEIGHTS_DIR_ENV)
    if env:
        out.append(Path(env) / spec.filename)
    out.append(hub_cache_dir() / spec.filename)
    return out


def _check_sha(path: Path, spec: WeightsSpec) -> None:
    if not spec.sha256_prefix:
        return
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(spec.sha256_prefix):
        raise UserError(
            f"checksum mismatch (sha256 {digest[:12]}…, expected {spec.sha256_prefix}…)",
            path=path,
            fix=f"delete the file and download it again from {spec.url}",
        )


def resolve(spec: WeightsSpec, path: str | Path | None = None, *, download: bool = True, flag: str = "--weights") -> Path:
    """Return a local file holding ``spec``'s weights, downloading it if needed and allowed.

    ``flag`` is the command-line option that passes a path for these weights (named in the error).
    """
    if path is not None and not Path(path).exists():
        raise WeightsNotFoundError("weights file not found", path=path, fix=f"pass the path of {spec.filename} with {flag}")
    if path is not None and Path(path).is_dir() and not (Path(path) / spec.filename).is_file():
        # the user said where the file is: never quietly load another copy from elsewhere instead
        raise WeightsNotFoundError(f"the folder holds no {spec.filename}", path=path,
                                   fix=f"put {spec.filename} there, or pass the file itself with {flag}")
    for candidate in candidate_paths(spec, path):
        if candidate.is_file():
            return candidate
    target = hub_cache_dir() / spec.filename
    if download:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(spec.url, str(target), progress=True)
            _check_sha(target, spec)
            return target
        except BaseException as e:  # checksum mismatch, no network, HTTP error, disk full, Ctrl-C
            if target.exists():  # never leave a bad file where the next run would take it unchecked
                target.unlink()
            if isinstance(e, UserError) or not isinstance(e, Exception):
                raise
    raise missing_weights_error(spec, flag)


def missing_weights_error(spec: WeightsSpec, flag: str = "--weights") -> WeightsNotFoundError:
    env = os.environ.get(WEIGHTS_DIR_ENV)
    places = [f"${WEIGHTS_DIR_ENV}/{spec.filename}" + (f" (= {env}/{spec.filename})" if env else ""),
              str(hub_cache_dir() / spec.filename)]
    return WeightsNotFoundError(
        f"pretrained weights {spec.filename} not found and could not be downloaded from {spec.url}",
        fix=f"download that file on a machine with internet access and put it at {' or '.join(places)}, "
        f"or pass its path with {flag}",
    )
