"""Finding, downloading and checking pretrained weight files.

Search order for a file named ``NAME`` published at ``URL``:

1. ``path`` given by the user (``--weights`` / ``--clip-weights``): a file, or a folder holding ``NAME`` (a folder
   without it is an error: the user said where the file is, so no other copy is used instead);
2. ``$UVIS_WEIGHTS_DIR/NAME``;
3. ``$TORCH_HOME/hub/checkpoints/NAME`` (where ``torch.hub`` keeps downloads, ``~/.cache/torch`` by default);
4. the Hugging Face cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``, else ``~/.cache/huggingface/hub``), for a
   spec that names a Hugging Face repository (timm's and open_clip's copies of the same weights);
5. a download: from ``URL`` (or ``$UVIS_WEIGHTS_MIRROR/NAME``) into the torch hub cache, or, for a spec with no
   URL, from the Hugging Face hub into its cache (never with ``HF_HUB_OFFLINE=1``).

A download goes to a temporary file beside its target; its size is checked against ``Content-Length``, its
sha256 against the publisher's where there is one, and the file is loaded and checked against the expected
architecture (``validate``) before it is moved into place. A bad file is never kept.

``check_needs`` resolves every file a command will need before any work starts and reports all missing ones
in one error.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import ssl
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from uvis.errors import UserError, WeightsNotFoundError

WEIGHTS_DIR_ENV = "UVIS_WEIGHTS_DIR"
MIRROR_ENV = "UVIS_WEIGHTS_MIRROR"  # a base URL (http://, https://, file://) serving the files under their names
TIMEOUT_ENV = "UVIS_DOWNLOAD_TIMEOUT"  # seconds without data before a download is given up (default 60)
DEFAULT_TIMEOUT_S = 60.0
_CHUNK = 1 << 20


@dataclass(frozen=True)
class WeightsSpec:
    """Where a published checkpoint lives and what its file is called."""

    filename: str
    url: str  # "" when the file is only on the Hugging Face hub
    sha256_prefix: str | None = None  # the file's SHA-256 (or its leading hex digits), when published
    title: str = ""  # what it is, e.g. "DINO ViT-B/8"
    hf_repo: str | None = None  # a Hugging Face repository holding the same weights (its cache is searched)
    hf_files: tuple[str, ...] = ()  # file names in ``hf_repo``, in order of preference

    @property
    def label(self) -> str:
        where = self.filename if self.url or not self.hf_repo else f"{self.hf_repo} ({'/'.join(self.hf_files)})"
        return f"{where} ({self.title})" if self.title else where


Validator = Callable[[Path], None]


@dataclass(eq=False)
class Need:
    """One weights file a command needs: its spec, the path the user gave, the parameter that gives it, and a check
    that loads a file and compares its keys and shapes with the architecture (raises ``UserError``)."""

    spec: WeightsSpec
    path: str | Path | None = None
    param: str = "dino_weights"
    validate: Validator | None = field(default=None, repr=False)
    use: str = ""  # what it is used for, e.g. "MaskCut features"


def hub_cache_dir() -> Path:
    return Path(torch.hub.get_dir()) / "checkpoints"


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache, by huggingface_hub's own rules (read now, not when it was imported)."""
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        if os.environ.get(var):
            return Path(os.path.expandvars(os.path.expanduser(os.environ[var])))
    home = os.environ.get("HF_HOME") or os.path.join(os.environ.get("XDG_CACHE_HOME") or "~/.cache", "huggingface")
    return Path(os.path.expandvars(os.path.expanduser(home))) / "hub"


def hf_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in {"1", "ON", "YES", "TRUE"}


def _hf_cached(spec: WeightsSpec) -> Path | None:
    if not spec.hf_repo:
        return None
    from huggingface_hub import try_to_load_from_cache

    for name in spec.hf_files:
        found = try_to_load_from_cache(spec.hf_repo, name, cache_dir=hf_cache_dir())
        if isinstance(found, str) and Path(found).is_file():
            return Path(found)
    return None


def candidate_paths(spec: WeightsSpec, path: str | Path | None = None) -> list[Path]:
    out: list[Path] = []
    if path is not None:
        p = Path(path)
        out.append(p / spec.filename if p.is_dir() else p)
    env = os.environ.get(WEIGHTS_DIR_ENV)
    if env:
        out.append(Path(env) / spec.filename)
    if spec.url:
        out.append(hub_cache_dir() / spec.filename)
    return out


def places(spec: WeightsSpec) -> list[str]:
    """Where a file for ``spec`` is looked for (for messages)."""
    env = os.environ.get(WEIGHTS_DIR_ENV)
    out = [f"${WEIGHTS_DIR_ENV}/{spec.filename}" + (f" (= {env}/{spec.filename})" if env else "")]
    if spec.url:
        out.append(str(hub_cache_dir() / spec.filename))
    if spec.hf_repo:
        out.append(f"the Hugging Face cache {hf_cache_dir()} ({spec.hf_repo})")
    return out


def find_local(spec: WeightsSpec, path: str | Path | None = None, param: str = "dino_weights") -> Path | None:
    """The local file for ``spec`` (no download), None when there is none; a user's path that is not there is
    an error (never quietly replaced by another copy)."""
    if path is not None and not Path(path).exists():
        raise WeightsNotFoundError("weights file not found", path=path, fix=f"pass the path of {spec.filename} as {param}=PATH",
                                   param=param)
    if path is not None and Path(path).is_dir() and not (Path(path) / spec.filename).is_file():
        raise WeightsNotFoundError(f"the folder holds no {spec.filename}", path=path,
                                   fix=f"put {spec.filename} there, or pass the file itself as {param}=FILE",
                                   param=param)
    for candidate in candidate_paths(spec, path):
        if candidate.is_file():
            return candidate
    return _hf_cached(spec)


def resolve(spec: WeightsSpec, path: str | Path | None = None, *, download: bool = True, param: str = "dino_weights",
            validate: Validator | None = None) -> Path:
    """Return a local file holding ``spec``'s weights, downloading (and verifying) it if needed and allowed.

    ``param`` is the parameter that passes a path for these weights (named in the error; the CLI shows its param).
    """
    found = find_local(spec, path, param)
    if found is not None:
        return found
    if download:
        if spec.url:
            return download_file(spec, hub_cache_dir() / spec.filename, validate, param)
        if spec.hf_repo and not hf_offline():
            return hf_download(spec, validate, param)
    raise missing_weights_error(spec, param)


def missing_weights_error(spec: WeightsSpec, param: str = "dino_weights") -> WeightsNotFoundError:
    return WeightsNotFoundError(f"pretrained weights {missing_description(spec)}", fix=missing_fix(spec, param),
                                param=param)


def missing_description(spec: WeightsSpec) -> str:
    if not spec.url and not spec.hf_repo:
        return f"{spec.label} not found"
    source = download_url(spec) if spec.url else f"the Hugging Face hub ({spec.hf_repo})"
    offline = " (HF_HUB_OFFLINE is set)" if not spec.url and hf_offline() else ""
    return f"{spec.label} not found in {' or '.join(places(spec))} and not downloaded from {source}{offline}"


def missing_fix(spec: WeightsSpec, param: str) -> str:
    if not spec.url and not spec.hf_repo:
        return f"pass the weights file as {param}=FILE"
    if spec.url:
        where = ' or '.join(places(spec)[:2])
        return (f"run `uvis weights download` where there is network access, or download {spec.url} and put it "
                f"at {where}, or pass its path as {param}=PATH, or set ${MIRROR_ENV} to a server holding it")
    return (f"run `uvis weights download` where there is network access (unset HF_HUB_OFFLINE), or pass the file "
            f"as {param}=FILE")


# ---------------------------------------------------------------------------------------------- downloads
def download_url(spec: WeightsSpec) -> str:
    """The URL a download of ``spec`` uses: the publisher's, or ``$UVIS_WEIGHTS_MIRROR/<file name>``."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if mirror and spec.url:
        return f"{mirror.rstrip('/')}/{spec.filename}"
    return spec.url


def download_timeout() -> float:
    text = os.environ.get(TIMEOUT_ENV, "").strip()
    try:
        value = float(text) if text else DEFAULT_TIMEOUT_S
    except ValueError:
        raise UserError(f"${TIMEOUT_ENV}={text} is not a number of seconds", fix=f"unset {TIMEOUT_ENV} or set it to e.g. 60") from None
    return value if value > 0 else DEFAULT_TIMEOUT_S


class DownloadError(WeightsNotFoundError):
    """A download that failed, with its reason (HTTP status, DNS, refused, timeout, proxy page, bad file)."""


def _network_reason(error: BaseException, url: str, timeout: float) -> str:
    host = urllib.parse.urlsplit(url).hostname or url
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {error.reason}"
    reason = error.reason if isinstance(error, urllib.error.URLError) else error
    if isinstance(reason, socket.gaierror):
        return f"DNS lookup of {host} failed (no network, or a wrong host name)"
    if isinstance(reason, ConnectionRefusedError):
        return f"connection to {host} refused"
    if isinstance(reason, TimeoutError):
        return f"no data from {host} for {timeout:g} s (timeout; ${TIMEOUT_ENV} sets it)"
    if isinstance(reason, ssl.SSLError):
        return f"TLS error with {host} ({reason})"
    if isinstance(reason, OSError):
        return f"{type(reason).__name__} ({reason.strerror or reason})"
    return str(reason)


def _matches_sha(digest: str, expected: str | None) -> bool:
    return not expected or digest.startswith(expected.lower())


def download_file(spec: WeightsSpec, target: Path, validate: Validator | None = None, param: str = "dino_weights") -> Path:
    """Download ``spec`` to ``target``: verified (size, sha256, loadable) in a temporary file, then moved into place."""
    from tqdm import tqdm

    url = download_url(spec)
    timeout = download_timeout()

    def fail(reason: str) -> DownloadError:
        return DownloadError(f"pretrained weights {spec.label} not found in {' or '.join(places(spec))}, and the "
                             f"download from {url} failed: {reason}", fix=missing_fix(spec, param))

    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    except OSError as e:
        raise UserError(f"cannot write the weights cache ({e.strerror or e})", path=target.parent,
                        fix=f"make it writable, or set ${WEIGHTS_DIR_ENV} / TORCH_HOME to a writable folder") from None
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                response = urllib.request.urlopen(url, timeout=timeout)  # noqa: S310 (publisher or mirror URL)
            except (urllib.error.URLError, OSError) as e:
                raise fail(_network_reason(e, url, timeout)) from None
            with response:
                length = response.headers.get("Content-Length")
                expected = int(length) if length and length.isdigit() else None
                kind = (response.headers.get("Content-Type") or "").lower()
                digest = hashlib.sha256()
                got = 0
                with tqdm(total=expected, unit="B", unit_scale=True, desc=spec.filename, leave=False,
                          disable=None) as bar:
                    while True:
                        try:
                            chunk = response.read(_CHUNK)
                        except OSError as e:  # TimeoutError included
                            raise fail(_network_reason(e, url, timeout) + f" after {got} bytes") from None
                        if not chunk:
                            break
                        if got == 0 and ("text/html" in kind or chunk.lstrip()[:1] == b"<"):
                            raise fail("the server sent a web page, not the file (a proxy or captive portal?)")
                        out.write(chunk)
                        digest.update(chunk)
                        got += len(chunk)
                        bar.update(len(chunk))
        if expected is not None and got != expected:
            raise fail(f"truncated: {got} of the {expected} bytes announced arrived")
        if got == 0:
            raise fail("the server sent an empty file")
        if not _matches_sha(digest.hexdigest(), spec.sha256_prefix):
            raise fail(f"checksum mismatch (sha256 {digest.hexdigest()[:12]}…, the publisher's is "
                       f"{spec.sha256_prefix[:12] if spec.sha256_prefix else ''}…)")
        if validate is not None:
            try:
                validate(tmp)
            except UserError as e:
                raise fail(f"the file is not the expected weights ({_reason_of(e)})") from None
        os.replace(tmp, target)
        record_sha256(target, digest.hexdigest())
        return target
    finally:
        tmp.unlink(missing_ok=True)


def hf_download(spec: WeightsSpec, validate: Validator | None = None, param: str = "dino_weights") -> Path:
    """Download ``spec`` from the Hugging Face hub into its cache (huggingface_hub checks its hashes), then load it."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    assert spec.hf_repo
    reasons = []
    for name in spec.hf_files:
        try:
            path = Path(hf_hub_download(spec.hf_repo, name, cache_dir=hf_cache_dir(), etag_timeout=download_timeout()))
        except EntryNotFoundError:
            reasons.append(f"{name}: not in the repository")
            continue
        except Exception as e:  # network errors of every kind; huggingface_hub wraps them in its own types
            raise DownloadError(f"pretrained weights {spec.label}: download from the Hugging Face hub failed: "
                                f"{type(e).__name__}: {' '.join(str(e).split())}", fix=missing_fix(spec, param)) from None
        if validate is not None:
            try:
                validate(path)
            except UserError as e:
                blob = path.resolve()  # never keep a bad file: the snapshot's link and the blob it points to
                path.unlink(missing_ok=True)
                blob.unlink(missing_ok=True)
                raise DownloadError(f"pretrained weights {spec.label}: the file downloaded from the Hugging Face hub "
                                    f"is not the expected weights ({_reason_of(e)}); it was deleted",
                                    fix=f"check the repository name, or pass the weights path as {param}=PATH") from None
        return path
    raise DownloadError(f"pretrained weights {spec.label}: {'; '.join(reasons)}", fix=missing_fix(spec, param))


def _reason_of(error: UserError) -> str:
    return f"{error.path}: {error.message}" if error.path else error.message


# ------------------------------------------------------------------------------------------------ digests
_SHA_CACHE: dict[tuple[str, int, int], str] = {}


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, remembered per (path, size, mtime) within the process."""
    p = Path(path).resolve()
    st = p.stat()
    key = (str(p), st.st_size, st.st_mtime_ns)
    if key not in _SHA_CACHE:
        h = hashlib.sha256()
        with open(p, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 22), b""):
                h.update(chunk)
        _SHA_CACHE[key] = h.hexdigest()
    return _SHA_CACHE[key]


def record_sha256(path: Path, digest: str) -> None:
    st = path.resolve().stat()
    _SHA_CACHE[(str(path.resolve()), st.st_size, st.st_mtime_ns)] = digest


def provenance(path: str | Path) -> dict[str, str]:
    """What a step records about a weights file: its name and sha256 (paths may move, contents may not)."""
    return {"file": Path(path).name, "sha256": file_sha256(path)}


# ------------------------------------------------------------------------------------------ tensors on disk
def is_safetensors(path: Path) -> bool:
    """safetensors files start with an 8-byte little-endian header length, then a JSON header."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and 2 <= int.from_bytes(head[:8], "little") < (1 << 28)


def read_tensors(path: Path) -> object:
    """The object stored in a weights file: a safetensors dict, or what ``torch.load`` (weights only) returns."""
    if is_safetensors(path):
        from safetensors.torch import load_file

        return load_file(str(path))
    return torch.load(path, map_location="cpu", weights_only=True)


def unreadable_error(path: Path, error: BaseException, param: str, expected: str) -> UserError:
    """A weights file that does not load: the whole reason, and what to do with the file."""
    reason = " ".join(f"{type(error).__name__}: {error}".split())
    cached = _in_a_cache(path)
    fix = (f"delete it (a later run downloads it again), or pass the weights path as {param}=PATH" if cached
           else f"delete it, or pass the path of {expected} as {param}=PATH")
    return UserError(f"cannot read weights ({reason})", path=path, fix=fix, param=param)


def _in_a_cache(path: Path) -> bool:
    p = str(path.resolve())
    return any(p.startswith(str(d.resolve())) for d in (hub_cache_dir(), hf_cache_dir()))


# ---------------------------------------------------------------------------------------------- check first
def check_needs(needs: Sequence[Need], *, download: bool = True) -> list[Path]:
    """Resolve every needed file (downloading what is missing, when allowed) before any work starts.

    Returns their paths in order; all that cannot be had are reported in one ``WeightsNotFoundError``. Pass no
    needs (e.g. for a stage that uses no pretrained weights) and nothing is checked.
    """
    found: list[Path] = []
    problems: list[WeightsNotFoundError] = []
    for need in needs:
        try:
            found.append(resolve(need.spec, need.path, download=download, param=need.param, validate=need.validate))
        except WeightsNotFoundError as e:
            problems.append(e)
    if not problems:
        return found
    if len(problems) == 1:
        raise problems[0]
    numbered = " | ".join(f"({i}) {p}" for i, p in enumerate(problems, 1))
    raise WeightsNotFoundError(f"{len(problems)} pretrained weights files are missing, nothing was started: {numbered}")


_SHA_IN_URL = re.compile(r"/([0-9a-f]{64})/")


def sha256_in_url(url: str) -> str | None:
    """The sha256 some publishers (OpenAI's CLIP) put in the URL's path."""
    m = _SHA_IN_URL.search(url)
    return m.group(1) if m else None
