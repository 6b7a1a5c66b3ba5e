import json
import socket

import pytest
import torch
import torch.multiprocessing as mp

from train_helpers import ddp_worker, synthetic_pseudo


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_two_process_gloo_ddp_keeps_ranks_identical(tmp_path):
    _, pseudo = synthetic_pseudo(tmp_path, num_videos=1, num_frames=4)
    mp.spawn(ddp_worker, args=(2, _free_port(), str(tmp_path), str(pseudo), 2), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2))
    assert r0["world"] == r1["world"] == 2
    # the ranks trained on different frames ...
    assert not {i for i, _ in r0["first_batch"]} & {i for i, _ in r1["first_batch"]}
    # ... yet DDP averaged their gradients, so gradients and parameters are identical after every step
    assert r0["grads"].keys() == r1["grads"].keys() and len(r0["grads"]) > 0
    for k in r0["grads"]:
        assert torch.allclose(r0["grads"][k], r1["grads"][k], atol=1e-6), k
    for k in r0["params"]:
        assert torch.equal(r0["params"][k], r1["params"][k]), k
    # only rank 0 writes the run folder
    run = tmp_path / "run_ddp"
    assert (run / "checkpoint.pt").is_file() and (run / "model_final.pt").is_file()
    steps = [json.loads(ln)["step"] for ln in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
    ckpt = torch.load(run / "checkpoint.pt", weights_only=False)
    assert len(ckpt["rng"]) == 2 and ckpt["data_order"]["world_size"] == 2


def test_torchrun_with_one_process_joins_a_group_of_one(monkeypatch):
    """torchrun --nproc-per-node 1 runs the DDP code path (a group of one); a plain process stays ungrouped."""
    import torch.distributed as dist

    from uvis import distributed

    for key in ("TORCHELASTIC_RUN_ID", "WORLD_SIZE", "RANK"):
        monkeypatch.delenv(key, raising=False)
    assert not distributed.init_from_env("cpu").enabled
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "test")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(_free_port()))
    info = distributed.init_from_env("cpu")
    try:
        assert info.enabled and info.is_main and dist.get_world_size() == 1 and dist.get_backend() == "gloo"
    finally:
        distributed.cleanup(info)
    assert not dist.is_initialized()
