"""Training on several processes or GPUs with PyTorch's own engine (``torch.distributed``).

Under ``torchrun --nproc_per_node N`` every process runs the same command; ``init()``
joins them into one process group (NCCL on CUDA, gloo on CPU) from the environment
torchrun sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``).
Then

- ``stroke_lib.train.fit`` trains one model data-parallel: ``DistributedDataParallel``,
  a ``DistributedSampler`` that gives each process ``batch_size / N`` rows of every global
  batch, checkpoints and records written by rank 0 (every process's random state kept in
  them for resume);
- ``stroke_lib.train.cross_validate`` spreads the folds over the processes (fold k on
  rank k mod N, each trained on one process) and merges them into one predictions table.

Without torchrun (``WORLD_SIZE`` unset) nothing here changes anything: one process.

Command line (the embedded cohort, chapter 01's task: non-minor stroke from DWI)::

    torchrun --nproc_per_node 2 -m stroke_lib train --model resnet10 --out runs/ddp
    torchrun --nproc_per_node 2 -m stroke_lib cv --model resnet10 --folds 3 --out runs/cv
"""

from __future__ import annotations

import argparse
import os
from datetime import timedelta
from pathlib import Path

import torch
import torch.distributed as dist


def world_size() -> int:
    """Processes in the process group (1 when none is initialised)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    """This process's rank (0 when no process group is initialised)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    """Whether this process writes checkpoints and records (rank 0)."""
    return rank() == 0


def local_rank() -> int:
    """This process's index on its machine (torchrun's ``LOCAL_RANK``; 0 without torchrun)."""
    return int(os.environ.get("LOCAL_RANK", 0))


def barrier() -> None:
    """Wait for every process (nothing without a process group)."""
    if world_size() > 1:
        dist.barrier()


def all_gather(obj: object) -> list[object]:
    """Every process's ``obj`` (picklable), in rank order; ``[obj]`` without a process group."""
    if world_size() == 1:
        return [obj]
    out: list[object] = [None] * world_size()
    dist.all_gather_object(out, obj)
    return out


def init(backend: str | None = None, timeout_s: int = 1800) -> bool:
    """Join the process group torchrun describes in the environment; returns whether one
    exists. Backend: NCCL when CUDA is available, else gloo (``backend`` overrides).
    On CUDA each process uses GPU ``LOCAL_RANK``."""
    if dist.is_initialized():
        return True
    if int(os.environ.get("WORLD_SIZE", 1)) <= 1 and "RANK" not in os.environ:
        return False
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend or ("nccl" if cuda else "gloo"), timeout=timedelta(seconds=timeout_s))
    return True


def close() -> None:
    """Leave the process group, if any."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def _task(profile: str, seed: int, n_subjects: int, in_plane: int):
    """Chapter 01's task on the embedded cohort, internal site: (inputs, labels, patients, rows, settings)."""
    import numpy as np

    from stroke_lib.data import CohortSpec, load_dataset
    from stroke_lib.data.synthetic.labels import NIHSS_MINOR_CUTOFF
    from stroke_lib.datasets import dwi_dataset
    from stroke_lib.runtime import start_run

    run = start_run(profile, "auto", seed)
    s = run.settings
    spec = CohortSpec(n_subjects=n_subjects or int(s["n_subjects"]),
                      in_plane=in_plane or int(s["in_plane"]), seed=seed)
    if is_main():  # one process generates the cohort (cached on disk); the others read it
        load_dataset("synthetic", None, spec)
    barrier()
    cohort = load_dataset("synthetic", None, spec)
    rows = cohort.table[(cohort.table.modality == "DWI") & (cohort.table.stroke_type == "ischaemic")]
    rows = rows[rows.nihss.notna()]
    y = (rows.nihss > NIHSS_MINOR_CUTOFF).astype(int).to_numpy()
    data = dwi_dataset(rows, y, s["input_shape"], channels=("dwi",))
    internal = np.flatnonzero(data.rows.site.astype(str).to_numpy() == "A")
    data = data.subset(internal)
    return data, run


def _config(args: argparse.Namespace, run, checkpoint_dir: Path | None):
    from stroke_lib.datasets import augmentation
    from stroke_lib.train import TrainConfig

    s = run.settings
    epochs = args.epochs or int(s["epochs"])
    return TrainConfig(epochs=epochs, patience=max(3, epochs // 3), lr=float(s["lr"]),
                       batch_size=args.batch_size or int(s["batch_size"]), seed=args.seed,
                       progress=is_main(), augment=augmentation(), cosine=True,
                       checkpoint_dir=checkpoint_dir, resume=args.resume)


def train_command(args: argparse.Namespace) -> int:
    """One training run (data-parallel under torchrun): a patient-level hold-out of a fifth
    of the internal site for validation; rank 0 writes ``history.csv`` and
    ``predictions.csv`` (the validation patients) to ``--out``, checkpoints to ``--out/checkpoints``."""
    from stroke_lib.models import baseline
    from stroke_lib.train import _inner_split, fit, predict, predictions_table

    init()
    try:
        data, run = _task(args.profile, args.seed, args.n_subjects, args.in_plane)
        out = Path(args.out)
        config = _config(args, run, out / "checkpoints")
        tr, va = _inner_split(data.y, data.rows.patient_id.to_numpy(), args.seed)
        torch.manual_seed(args.seed)
        model = baseline(args.model, data.x.shape[1], slim=run.profile == "smoke")
        result = fit(model, data.x[tr], data.y[tr], data.x[va], data.y[va], config)
        if is_main():
            score = predict(result.model, data.x[va], config.batch_size, config.device, config.amp)
            rows = data.rows.iloc[va]
            result.history.to_csv(out / "history.csv", index=False)
            predictions_table(rows.patient_id, rows.scan_id, data.y[va], score).to_csv(
                out / "predictions.csv", index=False)
            print(f"{world_size()} process(es), best epoch {result.best_epoch}: {out}")
    finally:
        close()
    return 0


def cv_command(args: argparse.Namespace) -> int:
    """Patient-level cross-validation of the internal site, the folds spread over the
    processes; rank 0 writes the merged out-of-fold ``predictions.csv`` to ``--out``."""
    from stroke_lib.models import baseline
    from stroke_lib.train import cross_validate, predictions_table

    init()
    try:
        data, run = _task(args.profile, args.seed, args.n_subjects, args.in_plane)
        out = Path(args.out)
        config = _config(args, run, out / "checkpoints")
        make = lambda: baseline(args.model, data.x.shape[1], slim=run.profile == "smoke")  # noqa: E731
        scores, folds = cross_validate(make, data.x, data.y, data.rows.patient_id.to_numpy(),
                                       args.folds, config)
        if is_main():
            fold = {int(i): k for k, f in enumerate(folds) for i in f["test_index"]}
            predictions_table(data.rows.patient_id, data.rows.scan_id, data.y, scores,
                              fold=[fold[i] + 1 for i in range(len(scores))]).to_csv(
                out / "predictions.csv", index=False)
            print(f"{args.folds} folds on {world_size()} process(es): {out / 'predictions.csv'}")
    finally:
        close()
    return 0


def add_commands(sub: argparse._SubParsersAction) -> None:
    """The ``train`` and ``cv`` subcommands of ``python -m stroke_lib`` (torchrun-ready)."""
    for name, func, text in (("train", train_command, "one training run (data-parallel under torchrun)"),
                             ("cv", cv_command, "cross-validation, folds spread over torchrun's processes")):
        p = sub.add_parser(name, help=text)
        p.add_argument("--model", default="resnet10", choices=["resnet10", "densenet"])
        p.add_argument("--profile", default="auto", choices=["smoke", "full", "auto"])
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--n-subjects", type=int, default=0)
        p.add_argument("--in-plane", type=int, default=0)
        p.add_argument("--epochs", type=int, default=0, help="0: the profile's")
        p.add_argument("--batch-size", type=int, default=0, help="global batch; 0: the profile's")
        p.add_argument("--resume", action="store_true", help="continue from --out/checkpoints")
        p.add_argument("--out", required=True, help="folder for checkpoints and records")
        if name == "cv":
            p.add_argument("--folds", type=int, default=3)
        p.set_defaults(func=func)
