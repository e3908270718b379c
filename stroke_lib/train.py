"""The one training loop of the book, and patient-level cross-validation.

``fit`` trains a binary classifier (one logit output, BCE) or, with ``TrainConfig.classes``
K > 2, a K-class one (K logits, softmax cross-entropy) on an in-memory dataset, through the
same loop, and returns the model with the best validation loss and its history.
It checkpoints every epoch (model, optimiser, early-stopping state, the best weights so
far and every random state) so a run killed after epoch k and started again with
``resume=True`` ends with the same weights as an uninterrupted run on CPU. Checkpoints
are written to a temporary file in the same folder and renamed into place, so a kill
during a save leaves the previous file whole; the epoch before the last is kept as
``previous.pt``, the fallback when ``last.pt`` cannot be read.

Two paths run the same loop. The plain path (the reference, the default on CPU) draws
each batch from a ``DataLoader`` on the host, moves it to the device, augments it there
and reads the loss back every step. The fast path (``TrainConfig.fast``, the default on
CUDA) keeps the training and validation inputs on the device when they fit in half its
free memory (else pinned host memory, copied asynchronously), gathers each batch by
index there, runs the MONAI augmentation on the device tensors, uses channels-last
memory for 3D convolutions, sums the loss on the device (one read per epoch), and wraps
the model in ``torch.compile`` (on CUDA only, and not for a model with a Mamba block: its
scan and mamba-ssm's kernels break the graph; a compilation failure falls back to eager
mode and says so in ``FitResult.extras``). Both draw the same batches from the same
random streams, so on CPU they give the same weights. bf16 autocast on CUDA is ``amp``,
on either path.

Data that does not fit in memory (``stroke_lib.disk_cache``) comes in as a map-style
``torch.utils.data.Dataset`` of ``(x, y)`` rows in place of the tensors: a ``DataLoader``
with ``TrainConfig.workers`` worker processes reads its rows, drawing the same batches
from the same generator as the tensors' loader, so on CPU the weights are the same as
from the same rows in memory. On the fast path a dataset keeps the on-device loss sum,
``torch.compile`` and autocast, and reads into pinned memory on CUDA; keeping the inputs
on the device and channels-last are for tensors.

Under ``torchrun`` (a process group of more than one process, see
``stroke_lib.distributed``) ``fit`` trains data-parallel and ``cross_validate`` spreads
its folds over the processes.

Splits are by patient, and a split that cannot give every test fold, and every inner
validation set, every class raises ``SplitError`` naming the patients of each class per
fold: changing the number of folds changes the study, so it is left to the caller.
"""

from __future__ import annotations

import copy
import logging
import os
import random
import tempfile
import time
import warnings
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from monai.data import get_track_meta, set_track_meta
from monai.transforms import Randomizable
from monai.utils import convert_to_tensor
from sklearn.model_selection import StratifiedGroupKFold
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, Dataset, DistributedSampler, TensorDataset
from tqdm import tqdm

from stroke_lib import distributed
from stroke_lib.metrics import as_binary_labels, as_class_labels, auc, multiclass_metrics

logger = logging.getLogger(__name__)


class LeakageError(ValueError):
    """A split that puts one patient on both sides."""


class SplitError(ValueError):
    """A patient split that cannot give both classes to every part that needs them."""


def assert_patient_disjoint(train_groups, test_groups) -> None:
    """Raise ``LeakageError`` naming the patients found in both groups."""
    shared = sorted(set(np.asarray(train_groups)) & set(np.asarray(test_groups)))
    if shared:
        raise LeakageError(f"{len(shared)} patient(s) on both sides of a split: {shared[:5]}")


def _split(labels: np.ndarray, groups: np.ndarray, n_splits: int,
           seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified group k-fold by patient, leak-checked; class counts are the caller's to check."""
    groups = np.asarray(groups)
    splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    folds = []
    with warnings.catch_warnings():  # "least populated class ... less than n_splits": checked below
        warnings.filterwarnings("ignore", message="The least populated class", category=UserWarning)
        for tr, te in splitter.split(np.zeros(len(labels)), labels, groups):
            assert_patient_disjoint(groups[tr], groups[te])
            folds.append((tr, te))
    return folds


def _labels(y: np.ndarray, classes: int, name: str = "y") -> np.ndarray:
    """Labels as 0/1 (``classes`` 2) or as class indices 0..K-1, checked."""
    return as_binary_labels(y, name) if classes == 2 else as_class_labels(y, classes, name)


def _patients_per_class(labels: np.ndarray, groups: np.ndarray, classes: int = 2) -> list[int]:
    """Patients with a row of each class; for two classes (positive, negative)."""
    labels, groups = np.asarray(labels), np.asarray(groups)
    order = (1, 0) if classes == 2 else range(classes)
    return [np.unique(groups[labels == c]).size for c in order]


def _count_text(counts: list[int]) -> str:
    return (f"{counts[0]} positive / {counts[1]} negative" if len(counts) == 2
            else " / ".join(f"{n} of class {c}" for c, n in enumerate(counts)))


def _fold_counts(labels: np.ndarray, groups: np.ndarray, folds: list[tuple[np.ndarray, np.ndarray]],
                 test: str = "test", classes: int = 2) -> tuple[list[bool], str]:
    """Per fold: whether both parts hold every class, and a line of patient counts."""
    ok, lines = [], []
    for k, (tr, te) in enumerate(folds):
        t = _patients_per_class(labels[te], groups[te], classes)
        r = _patients_per_class(labels[tr], groups[tr], classes)
        ok.append(min(t + r) > 0)
        tr_text = " / ".join(map(str, r))
        lines.append(f"fold {k + 1}: {test} {_count_text(t)}, training {tr_text}")
    return ok, "; ".join(lines)


def _too_few(counts: list[int]) -> str:
    if len(counts) == 2:
        return f"{counts[0]} positive and {counts[1]} negative patients in all"
    return ", ".join(f"{n} patients of class {c}" for c, n in enumerate(counts)) + " in all"


def patient_folds(
    labels: np.ndarray, groups: np.ndarray, n_splits: int = 3, seed: int = 0, classes: int = 2,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Stratified group k-fold (scikit-learn) by patient; every split is checked for leaks.

    Raises ``SplitError`` naming the patients of each class in every fold when a test fold
    or a training part would miss a class (for example fewer positive patients than
    folds). A patient with rows of two classes counts in both. ``classes``: 2 for 0/1
    labels, K for class indices 0..K-1.

    Returns a list of (train_index, test_index) arrays.
    """
    labels, groups = _labels(labels, classes, "labels"), np.asarray(groups)
    folds = _split(labels, groups, n_splits, seed)
    ok, counts = _fold_counts(labels, groups, folds, classes=classes)
    if not all(ok):
        per_class = _patients_per_class(labels, groups, classes)
        raise SplitError(
            f"cannot make {n_splits} folds with {'both classes' if classes == 2 else 'every class'} in every "
            f"test fold and training part: {_too_few(per_class)}, so at most {min(per_class)} folds can "
            f"each have {'both classes' if classes == 2 else 'every class'}. "
            f"Patients per fold: {counts}")
    return folds


@dataclass
class TrainConfig:
    """Settings of ``fit``.

    Attributes:
        epochs: maximum epochs. patience: epochs without a better validation loss
        before stopping. lr, weight_decay: AdamW. cosine: anneal the learning rate to 0
        over ``epochs`` (cosine schedule). batch_size. grad_clip: max gradient norm.
        balance: weight the positive class by n_neg / n_pos in the loss; with K classes,
            weight class k by n / (K n_k) (scikit-learn's "balanced").
        classes: 2 trains a binary model (one logit, BCE: every binary chapter); K > 2 a
            K-class model (K logits, softmax cross-entropy, labels 0..K-1).
        softmax: with ``classes`` 2, train two logits with softmax cross-entropy (the
            K-class path with K = 2, probabilities (N, 2)) instead of one logit with BCE,
            for a chapter whose K-class code meets a dataset of two classes; K > 2 always
            trains softmax.
        device: "auto" (CUDA if present), "cpu" or "cuda". amp: bf16 autocast on CUDA.
        seed: seeds torch, numpy, random and the DataLoader's shuffling.
        checkpoint_dir: where ``last.pt``, ``previous.pt`` (the epoch before) and ``best.pt``
            go (None: no checkpoints).
        resume: continue from ``checkpoint_dir/last.pt`` when it exists (from ``previous.pt``
            when ``last.pt`` cannot be read; see ``fit``).
        progress: show a tqdm bar over epochs.
        augment: a MONAI transform applied to each training sample ``(C, *spatial)`` every
            time it is drawn (for example ``stroke_lib.datasets.augmentation()``); its
            random state is seeded from ``seed``, and the checkpoint keeps the transform
            itself, random states included, for resume.
        fast: the fast path (see the module's docstring); None: on when training on CUDA.
        compile: ``torch.compile`` the model on the fast path; None: on CUDA when the
            model has no Mamba block, off on CPU (the inductor's CPU code needs a C++
            toolchain and compiles for longer than a smoke run trains).
        ddp: train data-parallel when a process group exists (torchrun); the global batch
            ``batch_size`` is split evenly over the processes.
        workers: ``DataLoader`` worker processes reading a dataset input (0: the main
            process reads); tensor inputs ignore it. The batches do not depend on it.
    """

    epochs: int = 10
    patience: int = 5
    lr: float = 1e-3
    weight_decay: float = 1e-4
    batch_size: int = 8
    grad_clip: float = 1.0
    balance: bool = True
    device: str = "auto"
    amp: bool = True
    seed: int = 0
    checkpoint_dir: Path | None = None
    resume: bool = False
    progress: bool = True
    augment: Callable[[torch.Tensor], torch.Tensor] | None = None
    cosine: bool = False
    fast: bool | None = None
    compile: bool | None = None
    ddp: bool = True
    classes: int = 2
    softmax: bool = False
    workers: int = 0

    @property
    def binary(self) -> bool:
        """One logit and BCE (``classes`` 2 without ``softmax``)."""
        return self.classes == 2 and not self.softmax


@dataclass
class FitResult:
    """A fitted model (best validation loss), its per-epoch history and best epoch."""

    model: nn.Module
    history: pd.DataFrame
    best_epoch: int
    device: str
    extras: dict = field(default_factory=dict)


def _device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _rng_state(loader_gen: torch.Generator) -> dict:
    state = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "random": random.getstate(), "loader": loader_gen.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict, loader_gen: torch.Generator) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["random"])
    loader_gen.set_state(state["loader"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _autocast(device: torch.device, amp: bool):
    if amp and device.type == "cuda":
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.autocast("cuda", dtype=dtype)
    return torch.autocast("cpu", enabled=False)


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor | Dataset, batch_size: int = 16, device: str = "auto",
            amp: bool = True, workers: int = 0) -> np.ndarray:
    """Probabilities for inputs ``x`` ``(N, C, *spatial)``: the positive class's (N,) for a model
    with one logit, the softmax over classes (N, K) for one with K > 1 logits.

    ``x`` may also be a map-style dataset of ``(x, y)`` rows (``stroke_lib.disk_cache``),
    read in order by a ``DataLoader`` with ``workers`` worker processes."""
    dev = _device(device)
    model = model.to(dev).eval()
    if isinstance(x, torch.Tensor):
        batches = (x[i : i + batch_size] for i in range(0, len(x), batch_size))
    else:  # its own generator: reading draws no number from the global random stream
        batches = (xb for xb, _ in DataLoader(x, batch_size=batch_size, num_workers=workers,
                                              pin_memory=dev.type == "cuda", generator=torch.Generator()))
    out = []
    for xb in batches:
        with _autocast(dev, amp):
            logits = model(xb.to(dev, non_blocking=True)).float()
        out.append(torch.sigmoid(logits.reshape(-1)) if logits.shape[-1] == 1 or logits.dim() == 1
                   else torch.softmax(logits, dim=1))
    return torch.cat(out).cpu().numpy()  # one device-to-host copy


def _fits_on(device: torch.device, *tensors: torch.Tensor, fraction: float = 0.5) -> bool:
    """Whether ``tensors`` fit in ``fraction`` of the device's free memory (always on CPU)."""
    if device.type != "cuda":
        return True
    free, _ = torch.cuda.mem_get_info(device)
    return sum(t.numel() * t.element_size() for t in tensors) < fraction * free


def _has_mamba(model: nn.Module) -> bool:
    from stroke_lib.models.mamba import Mamba

    return any(isinstance(m, Mamba) for m in model.modules())


class _Forward:
    """The training forward: ``torch.compile``d when asked, falling back to eager mode
    (and saying so in ``notes``) when compilation fails."""

    def __init__(self, model: nn.Module, use_compile: bool, notes: list[str]) -> None:
        self.model, self.notes = model, notes
        self.compiled = torch.compile(model) if use_compile else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.compiled is not None:
            try:
                return self.compiled(x)
            except torch._dynamo.exc.TorchDynamoException as err:
                self.notes.append(f"torch.compile failed ({type(err).__name__}); trained in eager mode")
                logger.warning(self.notes[-1])
                self.compiled = None
        return self.model(x)


@contextmanager
def _plain_tensors():
    """MONAI transforms inside return plain tensors, not MetaTensors (``set_track_meta``):
    the same values without the metadata bookkeeping, which costs about a sixth of an
    augmented 48^3 sample's time on a CPU and which training never reads."""
    previous = get_track_meta()
    set_track_meta(False)
    try:
        yield
    finally:
        set_track_meta(previous)


def fit(
    model: nn.Module,
    x_train: torch.Tensor | Dataset,
    y_train: np.ndarray,
    x_val: torch.Tensor | Dataset,
    y_val: np.ndarray,
    config: TrainConfig = TrainConfig(),
) -> FitResult:
    """Train ``model`` with AdamW; keep the best-val-loss weights.

    Binary (``config.classes`` 2, no ``softmax``): one logit out, BCE loss. K classes
    (or 2 with ``softmax``): K logits out,
    softmax cross-entropy (class-weighted with ``balance``); the validation loss is the
    unweighted cross-entropy and ``val_auc`` the macro one-vs-rest AUC.

    Args:
        x_train, x_val: float tensors ``(N, C, *spatial)``, already preprocessed, or map-style
            datasets of ``(x, y)`` rows (x float32 ``(C, *spatial)``; for example a
            ``stroke_lib.disk_cache.DiskCacheDataset``), read with ``config.workers``
            ``DataLoader`` workers; a dataset's labels are the ones trained on.
        y_train, y_val: labels (N,) in {0, 1} (or booleans), or class indices 0..K-1 with
            K classes; anything else raises. With a dataset, its labels in its order:
            they give the loss weights and the validation loss.

    ``history`` has one row per epoch: train_loss is the mean loss over the rows actually
    trained on that epoch (the last, incomplete batch is dropped when there is more than
    one batch), weighted as the optimiser saw it (positive rows count n_neg / n_pos times
    with ``balance``); val_loss is the unweighted mean BCE on the validation rows.

    With ``resume``, a ``last.pt`` that cannot be read (truncated, empty, missing keys) is
    reported with its path, and the run resumes from ``previous.pt`` (the epoch before)
    or, if that cannot be read either, starts afresh. What happened is returned in
    ``FitResult.extras["checkpoint_notes"]`` (a list of sentences, empty when nothing did)
    and logged at WARNING level by this module's logger; no Python warning is raised.
    ``extras["path"]`` says which path ran ("plain" or "fast", with its parts), and
    ``extras["compile_notes"]`` why torch.compile was dropped, if it was, and
    ``extras["samples_per_s"]`` the training rows per second over the epochs this call ran
    (reading and training steps, all processes; not validation or checkpoints).

    Data-parallel (``config.ddp`` and a process group, see ``stroke_lib.distributed``):
    each process trains on ``batch_size / world size`` rows of every global batch drawn
    by a ``DistributedSampler`` (seeded by ``seed``, reshuffled each epoch), gradients are
    averaged by ``DistributedDataParallel``, rank 0 writes the checkpoints (with every
    process's random states), and every process returns the same model. A process group
    of one process trains the same global batches as N processes.
    """
    parallel = config.ddp and torch.distributed.is_available() and torch.distributed.is_initialized()
    world = distributed.world_size() if parallel else 1
    rank = distributed.rank() if parallel else 0
    dev = _device(config.device)
    if parallel and dev.type == "cuda" and dev.index is None:
        dev = torch.device("cuda", distributed.local_rank())
    fast = config.fast if config.fast is not None else dev.type == "cuda"
    _seed_all(config.seed)
    augment = config.augment
    if isinstance(augment, Randomizable):
        augment.set_random_state(seed=config.seed + rank)
    model = model.to(dev)
    for name, x, y in (("train", x_train, y_train), ("val", x_val, y_val)):
        if len(x) != len(y):
            raise ValueError(f"x_{name} has {len(x)} rows and y_{name} {len(y)} labels")
    streamed = not isinstance(x_train, torch.Tensor)  # rows (x, y) of a dataset, read by a DataLoader
    channels_last = fast and not streamed and x_train.dim() == 5
    if channels_last:
        model = model.to(memory_format=torch.channels_last_3d)
    binary = config.binary
    label_dtype = torch.float32 if binary else torch.long
    y_tr = torch.as_tensor(_labels(y_train, config.classes, "y_train"), dtype=label_dtype)
    y_va = torch.as_tensor(_labels(y_val, config.classes, "y_val"), dtype=label_dtype)
    gen = torch.Generator().manual_seed(config.seed)
    resident = fast and not streamed and isinstance(x_val, torch.Tensor) and _fits_on(dev, x_train, x_val)
    if resident:  # moved to the device once
        x_train, x_val = x_train.to(dev, non_blocking=True), x_val.to(dev, non_blocking=True)
    pin = dev.type == "cuda" and not resident
    indexed = (fast or parallel) and not streamed  # batches of indices into the tensors
    rows = x_train if streamed else range(len(y_tr)) if indexed else TensorDataset(x_train, y_tr)
    reading = {"num_workers": config.workers, "pin_memory": pin} if streamed else {}
    if parallel:
        if config.batch_size % world:
            raise ValueError(f"batch_size {config.batch_size} does not split evenly over {world} processes")
        sampler = DistributedSampler(range(len(y_tr)), num_replicas=world, rank=rank, shuffle=True,
                                     seed=config.seed, drop_last=True)
        per_rank = config.batch_size // world
        loader = DataLoader(rows, batch_size=per_rank, sampler=sampler, drop_last=len(sampler) > per_rank,
                            **reading)
    else:  # indices, a dataset's rows or the tensors' rows: one draw of the same generator
        sampler = None
        loader = DataLoader(rows, batch_size=config.batch_size, shuffle=True, generator=gen,
                            drop_last=len(y_tr) > config.batch_size, **reading)
    y_dev = y_tr.to(dev)
    loss_fn = _loss(y_tr, config, dev)
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=config.epochs) if config.cosine else None
    notes: list[str] = []
    use_compile = (config.compile if config.compile is not None
                   else fast and dev.type == "cuda" and not _has_mamba(model))
    wrapped = DistributedDataParallel(model, device_ids=[dev] if dev.type == "cuda" else None) \
        if parallel else model
    compile_notes: list[str] = []
    forward = _Forward(wrapped, fast and use_compile, compile_notes)

    history: list[dict] = []
    best_loss, best_epoch, best_state, start = float("inf"), -1, None, 0
    ckpt = Path(config.checkpoint_dir) if config.checkpoint_dir else None
    state = _load_resume_state(ckpt, notes) if ckpt and config.resume else None
    if state is not None:
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        if sched is not None:
            sched.load_state_dict(state["scheduler"])
        history, best_loss, best_epoch = state["history"], state["best_loss"], state["best_epoch"]
        best_state = state["best_model"]
        start = state["epoch"] + 1
        rng, augment = state["rng"], state["augment"]  # the transform itself, with its random states
        if parallel and len(state.get("ranks", [])) == world:
            rng, augment = state["ranks"][rank]
        _set_rng_state(rng, gen)

    bar = tqdm(range(start, config.epochs), desc="epochs", disable=not config.progress or rank > 0,
               leave=False)
    trained, seconds = 0, 0.0  # training rows and seconds over the epochs run: samples_per_s
    for epoch in bar:
        if epoch - best_epoch > config.patience and best_epoch >= 0:
            break
        if sampler is not None:
            sampler.set_epoch(epoch)
        wrapped.train()
        lr = opt.param_groups[0]["lr"]
        total, n_used = (torch.zeros((), dtype=torch.float64, device=dev), 0) if fast or parallel else (0.0, 0)
        started = time.perf_counter()
        for batch in loader:
            if indexed:
                idx = batch
                xb = x_train[idx.to(x_train.device)]
                xb = (xb.pin_memory() if pin else xb).to(dev, non_blocking=True)
                yb = y_dev[idx.to(dev)]
            else:
                xb, yb = batch[0].to(dev, non_blocking=pin), batch[1].to(dev, label_dtype)
            if augment is not None:
                with _plain_tensors():
                    xb = torch.stack([convert_to_tensor(augment(sample), track_meta=False) for sample in xb])
            if channels_last:
                xb = xb.contiguous(memory_format=torch.channels_last_3d)
            opt.zero_grad(set_to_none=True)
            with _autocast(dev, config.amp):
                logits = forward(xb)
            loss = loss_fn(logits.float().reshape(-1) if binary else logits.float(), yb)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            opt.step()
            if fast or parallel:  # summed on the device: no host synchronisation per step
                total += loss.detach().double() * len(yb)
            else:
                total += float(loss.detach()) * len(yb)
            n_used += len(yb)
        if parallel:  # the mean over every process's rows; rank 0's buffers (BatchNorm) for all
            counts = torch.stack([total, torch.tensor(float(n_used), dtype=torch.float64, device=dev)])
            torch.distributed.all_reduce(counts)
            total, n_used = counts[0], counts[1]
            for buffer in model.buffers():
                torch.distributed.broadcast(buffer, 0)
        train_loss = float(total) / float(n_used)  # reads the device's sum: the epoch's steps are done
        seconds += time.perf_counter() - started
        trained += int(n_used)
        if sched is not None:
            sched.step()
        rng = _rng_state(gen)  # evaluation must not change the training random stream
        p_val = predict(model, x_val, config.batch_size, str(dev), config.amp, config.workers)
        val_loss, val_auc = _validation(p_val, y_va, binary)
        _set_rng_state(rng, gen)
        history.append({"epoch": epoch + 1, "train_loss": train_loss, "val_loss": val_loss,
                        "val_auc": val_auc, "lr": lr})
        bar.set_postfix(train=f"{train_loss:.3f}", val=f"{val_loss:.3f}")
        improved = val_loss < best_loss
        if improved:
            best_loss, best_epoch = val_loss, epoch
            best_state = copy.deepcopy(model.state_dict())
        if ckpt:
            ranks = distributed.all_gather((_rng_state(gen), augment)) if parallel else None
            if rank == 0:
                if improved:
                    _save_atomic({"model": best_state, "epoch": epoch}, ckpt / "best.pt")
                extra = {"ranks": ranks} if parallel else {}
                _save_atomic({"model": model.state_dict(), "optimizer": opt.state_dict(),
                              "scheduler": sched.state_dict() if sched is not None else None, "epoch": epoch,
                              "history": history, "best_loss": best_loss, "best_epoch": best_epoch,
                              "best_model": best_state, "rng": _rng_state(gen), "augment": augment, **extra},
                             ckpt / "last.pt", keep_previous=ckpt / "previous.pt")
            if parallel:
                distributed.barrier()
    if best_state is not None:
        model.load_state_dict(best_state)
    if channels_last:
        model = model.to(memory_format=torch.contiguous_format)
    path = ("fast (" + ", ".join(part for part, on in (
        ("inputs on the device", resident), ("channels-last", channels_last),
        ("torch.compile", forward.compiled is not None), ("bf16 autocast", config.amp and dev.type == "cuda"))
        if on) + ")") if fast else "plain"
    if streamed:
        path += f", rows from a dataset ({config.workers} DataLoader workers)"
    if parallel:
        path += f", data-parallel on {world} processes"
    return FitResult(model=model, history=pd.DataFrame(history), best_epoch=best_epoch + 1, device=str(dev),
                     extras={"checkpoint_notes": notes, "path": path, "compile_notes": compile_notes,
                             "samples_per_s": trained / seconds if seconds else float("nan")})


def _loss(y: torch.Tensor, config: TrainConfig, dev: torch.device) -> nn.Module:
    """BCE with the positive class weighted n_neg / n_pos (binary), or cross-entropy with
    class k weighted n / (K n_k) (K classes; a class absent from training weighs 0)."""
    if config.binary:
        n_pos = float(y.sum())
        pos_weight = torch.tensor((len(y) - n_pos) / max(n_pos, 1.0)) if config.balance else None
        return nn.BCEWithLogitsLoss(pos_weight=pos_weight.to(dev) if pos_weight is not None else None)
    counts = torch.bincount(y, minlength=config.classes).double()
    weight = torch.where(counts > 0, len(y) / (config.classes * counts.clamp(min=1)), 0.0).float()
    return nn.CrossEntropyLoss(weight=weight.to(dev) if config.balance else None)


def _validation(p_val: np.ndarray, y_val: torch.Tensor, binary: bool) -> tuple[float, float]:
    """Unweighted validation loss (BCE or cross-entropy) and AUC (macro one-vs-rest for K
    classes; NaN when a class is missing)."""
    p = torch.as_tensor(p_val).clamp(1e-6, 1 - 1e-6)
    if binary:
        loss = float(nn.BCEWithLogitsLoss()(torch.logit(p), y_val))
        return loss, auc(y_val.numpy(), p_val) if len(np.unique(y_val)) == 2 else float("nan")
    loss = float(nn.functional.nll_loss(torch.log(p), y_val))
    present = len(np.unique(y_val)) == p_val.shape[1]
    return loss, multiclass_metrics(y_val.numpy(), p_val)["macro_auc"] if present else float("nan")


def _save_atomic(obj: dict, path: Path, keep_previous: Path | None = None) -> None:
    """``torch.save`` into a temporary file in ``path``'s folder, then rename it to ``path``.

    A kill or an error during the save leaves ``path`` as it was (the temporary file is
    removed on error). With ``keep_previous``, the old ``path`` is renamed to it first.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        if keep_previous is not None and path.exists():
            os.replace(path, keep_previous)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_RESUME_KEYS = {"model", "optimizer", "scheduler", "epoch", "history", "best_loss", "best_epoch",
                "best_model", "rng", "augment"}


def _load_resume_state(ckpt: Path, notes: list[str]) -> dict | None:
    """The newest readable checkpoint of ``ckpt`` (``last.pt``, else ``previous.pt``), or None.

    Appends to ``notes`` (and logs) a sentence naming every unreadable or missing file and
    what was done instead; nothing when ``last.pt`` loads or no checkpoint exists yet.
    """
    last, previous = ckpt / "last.pt", ckpt / "previous.pt"
    problems = [f"{last} is missing"] if previous.exists() and not last.exists() else []
    for path in (last, previous):
        if not path.exists():
            continue
        try:
            state = torch.load(path, weights_only=False)
            missing = _RESUME_KEYS - set(state) if isinstance(state, dict) else _RESUME_KEYS
            if missing:
                raise KeyError(f"missing {sorted(missing)}")
        except Exception as err:  # whatever makes a checkpoint unreadable, it is damaged
            first_line = (str(err).splitlines() or [""])[0]
            problems.append(f"checkpoint {path} is damaged ({type(err).__name__}: {first_line})")
            continue
        if problems:
            notes.append(f"{'; '.join(problems)}; resuming from {path}, saved after epoch {state['epoch'] + 1}")
            logger.warning(notes[-1])
        return state
    if problems:
        notes.append(f"{'; '.join(problems)}; no readable checkpoint in {ckpt}: starting afresh")
        logger.warning(notes[-1])
    return None


def predictions_table(patient_id, scan_id, y, score, class_names=None, **columns) -> pd.DataFrame:
    """The predictions table every chapter writes: patient_id, scan, label, score, extras.

    ``score`` (N,) is the positive class's probability of a binary model; (N, K) class
    probabilities become one column ``score <class name>`` each (``class_names``), with
    labels the class indices."""
    score = np.asarray(score, float)
    if score.ndim == 1:
        scores, label = {"score": score}, as_binary_labels(y)
    else:
        names = class_names or [str(c) for c in range(score.shape[1])]
        scores, label = {f"score {n}": score[:, c] for c, n in enumerate(names)}, as_class_labels(y, score.shape[1])
    return pd.DataFrame({"patient_id": np.asarray(patient_id), "scan": np.asarray(scan_id), "label": label,
                         **scores, **columns})


def _inner_split(y: np.ndarray, groups: np.ndarray, seed: int,
                 classes: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Hold out about a fifth of the training patients for early stopping and thresholds.

    Takes the first of five patient folds whose validation and training parts both hold
    every class (Youden's threshold and the validation AUC need them); raises
    ``SplitError`` with the patients per class of each fold when none does.
    """
    y, groups = _labels(y, classes), np.asarray(groups)
    folds = _split(y, groups, 5, seed)
    ok, counts = _fold_counts(y, groups, folds, test="validation", classes=classes)
    if not any(ok):
        per_class = _patients_per_class(y, groups, classes)
        held = (f"{per_class[0]} positive patient(s) and {per_class[1]} negative patient(s)" if classes == 2
                else ", ".join(f"{n} patient(s) of class {c}" for c, n in enumerate(per_class)))
        raise SplitError(
            f"cannot hold out an inner validation set with {'both classes' if classes == 2 else 'every class'}: "
            f"the training data has {held}, and both the inner training "
            f"and validation parts need at least one of each. Inner folds: {counts}")
    return folds[ok.index(True)]


def train_and_test(make_model, x_fit: torch.Tensor, y_fit: np.ndarray, groups_fit: np.ndarray,
                   x_test: torch.Tensor, config: TrainConfig) -> dict:
    """Fit on ``x_fit`` (with an inner patient split for validation) and score ``x_test``.

    Returns the fit result, validation labels and scores (for Youden's threshold) and
    the test scores.
    """
    tr, va = _inner_split(y_fit, groups_fit, config.seed, config.classes)
    _seed_all(config.seed)  # the initial weights depend on the seed only
    result = fit(make_model(), x_fit[tr], y_fit[tr], x_fit[va], y_fit[va], config)
    return {"fit": result, "y_val": y_fit[va],
            "score_val": predict(result.model, x_fit[va], config.batch_size, config.device, config.amp),
            "score_test": predict(result.model, x_test, config.batch_size, config.device, config.amp)}


def cross_validate(make_model, x: torch.Tensor, y: np.ndarray, groups: np.ndarray,
                   n_splits: int, config: TrainConfig,
                   spread: bool | None = None) -> tuple[np.ndarray, list[dict]]:
    """Patient-level stratified k-fold: out-of-fold scores ((N,), or (N, K) class
    probabilities with K classes) and one record per fold (fit result, validation
    labels/scores, test index).

    Every split, the inner validation split of every training part included, is checked
    before anything is trained: ``SplitError`` names the fold and its patients per class.

    ``spread`` (None: when a process group of more than one process exists, see
    ``stroke_lib.distributed``): fold k is trained by rank k mod N alone (not
    data-parallel), and every process gets every fold's record (models on the CPU) and
    the merged scores; the folds, seeds and so the results are those of one process.
    """
    scores = np.full(len(y) if config.binary else (len(y), config.classes), np.nan)
    splits = patient_folds(y, groups, n_splits, config.seed, config.classes)
    for k, (tr, _) in enumerate(splits):
        try:
            _inner_split(y[tr], groups[tr], config.seed + k, config.classes)
        except SplitError as err:
            raise SplitError(f"training part of fold {k + 1} of {n_splits}: {err}") from None
    world = distributed.world_size()
    spread = world > 1 if spread is None else spread and world > 1
    mine = [k for k in range(len(splits)) if not spread or k % world == distributed.rank()]
    done = []
    for k in mine:
        tr, te = splits[k]
        cfg = TrainConfig(**{**config.__dict__, "seed": config.seed + k, "ddp": config.ddp and not spread,
                             "progress": config.progress and distributed.is_main(),
                             "checkpoint_dir": (Path(config.checkpoint_dir) / f"fold{k}")
                             if config.checkpoint_dir else None})
        out = train_and_test(make_model, x[tr], y[tr], groups[tr], x[te], cfg)
        if spread:
            out["fit"].model = out["fit"].model.cpu()
        done.append((k, {**out, "test_index": te}))
    if spread:
        done = [item for part in distributed.all_gather(done) for item in part]
    folds = [fold for _, fold in sorted(done, key=lambda item: item[0])]
    for fold in folds:
        scores[fold["test_index"]] = fold["score_test"]
    return scores, folds
