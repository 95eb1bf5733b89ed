"""Two processes with torchrun on the CPU (gloo): the run finishes and both ranks end with identical weights.

Each rank trains on its own share of the batches; only DistributedDataParallel's gradient
averaging keeps their weights equal, so a missing or broken DDP wrap makes this test fail.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys

import torch

from gsv_edu.weights import weights_fingerprint
from train_helpers import SMALL_OVERRIDES, make_prepared


def test_two_process_torchrun_ranks_agree(tmp_path):
    prepared = make_prepared(tmp_path / "prepared")
    out = tmp_path / "run"
    sets = [x for s in SMALL_OVERRIDES + ["train.max_steps=2"] for x in ("--set", s)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "gsv_edu.train", "--data", str(prepared), "--out", str(out), "--device", "cpu", "--no-progress", *sets]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    log = (out / "train.log").read_text()
    assert "2 process(es) on cpu" in log
    m = re.search(r"weights of the 2 ranks: G \['(\w+)', '(\w+)'\] D \['(\w+)', '(\w+)'\] \(identical\)", log)
    assert m, log[-2000:]
    g0, g1, d0, d1 = m.groups()
    assert g0 == g1 and d0 == d1
    # the fingerprints are those of the weights rank 0 saved at the end
    g = torch.load(out / "logs_s2_v2" / "G_2.pth", map_location="cpu", weights_only=True)
    d = torch.load(out / "logs_s2_v2" / "D_2.pth", map_location="cpu", weights_only=True)
    assert weights_fingerprint(g["model"]) == g0 and weights_fingerprint(d["model"]) == d0
    assert g["world_size"] == 2 and len(g["rng"]) == 2  # every rank's RNG state is kept for the resume
