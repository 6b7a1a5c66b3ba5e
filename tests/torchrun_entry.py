"""``uvis`` as torchrun starts it in the tests: ``python -m torch.distributed.run ... tests/torchrun_entry.py ARGS``.

Each process runs the real command line (``uvis.cli.main.main``). Two test hooks, from the environment:

- ``UVIS_TEST_TINY_CLIP=PATH``: every CLIP load gets the tiny random CLIP saved at PATH (no real weights here);
- ``UVIS_TEST_KILL=RANK:VIDEO``: the process of that rank kills itself (SIGKILL, no last words) as it starts
  pseudo-labelling that video;
- ``UVIS_TEST_CWD_RANK1=DIR``: the process of rank 1 starts in DIR, so relative paths name other folders for it
  (as a local disk would on a second machine).
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def _patch() -> None:
    if (cwd := os.environ.get("UVIS_TEST_CWD_RANK1")) and os.environ.get("RANK") == "1":
        os.chdir(cwd)
    if path := os.environ.get("UVIS_TEST_TINY_CLIP"):
        from tiny_clip import tiny_clip_loader
        from uvis.pseudo.clip_model import ClipModel

        ClipModel.load = tiny_clip_loader(Path(path))  # type: ignore[method-assign]
    if target := os.environ.get("UVIS_TEST_KILL"):
        rank, video = target.split(":", 1)
        if os.environ.get("RANK") == rank:
            from uvis.pseudo import collection

            real = collection.label_video

            def label_video(item, *args, **kwargs):  # noqa: ANN001, ANN202
                if item.name == video:
                    os.kill(os.getpid(), signal.SIGKILL)
                return real(item, *args, **kwargs)

            collection.label_video = label_video


if __name__ == "__main__":
    _patch()
    from uvis.cli.main import main

    raise SystemExit(main(sys.argv[1:]))
