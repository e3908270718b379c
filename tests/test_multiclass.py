"""K-class training and metrics: equal to scikit-learn's, learned by the one loop, split by
patient with every class in every part; the binary path is unchanged."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import accuracy_score, f1_score, precision_score, recall_score, roc_auc_score
from torch import nn

from stroke_lib.metrics import as_class_labels, multiclass_metrics, multiclass_table
from stroke_lib.train import SplitError, TrainConfig, cross_validate, fit, patient_folds, predict, predictions_table


def _random(seed: int, n: int = 90, k: int = 3) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)  # every class present
    logits = rng.normal(size=(n, k)) + 0.8 * np.eye(k)[y]
    return y, np.exp(logits) / np.exp(logits).sum(1, keepdims=True)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("k", [3, 4])
def test_multiclass_metrics_equal_scikit_learn(seed, k):
    y, p = _random(seed, k=k)
    ours = multiclass_metrics(y, p)
    pred = p.argmax(1)
    for avg in ("macro", "weighted"):
        kw = dict(average=avg, zero_division=np.nan)
        assert ours[f"{avg}_precision"] == pytest.approx(precision_score(y, pred, **kw))
        assert ours[f"{avg}_recall"] == pytest.approx(recall_score(y, pred, **kw))
        assert ours[f"{avg}_f1"] == pytest.approx(f1_score(y, pred, **kw))
        assert ours[f"{avg}_auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr", average=avg))
    assert ours["accuracy"] == pytest.approx(accuracy_score(y, pred))
    assert ours["weighted_recall"] == pytest.approx(ours["accuracy"])
    per_class = f1_score(y, pred, average=None, zero_division=np.nan)
    for c in range(k):
        assert ours[f"f1 {c}"] == pytest.approx(per_class[c])
        assert ours[f"auc {c}"] == pytest.approx(roc_auc_score(y == c, p[:, c]))


def test_multiclass_metrics_leave_undefined_classes_out_of_the_means():
    y = np.array([0, 0, 1, 1, 2, 2])
    p = np.tile([0.6, 0.3, 0.1], (6, 1))  # class 0 always called: precision of 1 and 2 undefined
    m = multiclass_metrics(y, p, ["a", "b", "c"])
    assert np.isnan(m["precision b"]) and np.isnan(m["precision c"])
    assert m["macro_precision"] == pytest.approx(precision_score(y, p.argmax(1), average="macro",
                                                                 zero_division=np.nan))
    assert m["recall a"] == 1.0 and m["recall b"] == 0.0


def test_multiclass_table_resamples_patients_within_class():
    y, p = _random(3, n=120)
    groups = np.repeat(np.arange(60), 2)
    y = y[::2].repeat(2)  # a patient's two rows share the label
    table = multiclass_table(y, p, groups, ["none", "ischaemic", "haemorrhagic"], n_boot=200)
    macro = table.loc["macro_auc"]
    assert macro.lower < macro.estimate < macro.upper
    assert {"auc none", "recall haemorrhagic", "weighted_f1"} <= set(table.index)
    wide = multiclass_table(y[:40], p[:40], groups[:40], ["a", "b", "c"], n_boot=200).loc["macro_auc"]
    assert wide.upper - wide.lower > macro.upper - macro.lower  # fewer patients, wider interval


def test_class_labels_are_checked():
    assert as_class_labels([0, 2, 1.0], 3).tolist() == [0, 2, 1]
    with pytest.raises(ValueError, match="class indices 0..2.*3"):
        as_class_labels([0, 3], 3)
    with pytest.raises(ValueError, match="rows"):
        as_class_labels([0, 1.5], 3)


def _three_class_data(n: int = 90):
    g = torch.Generator().manual_seed(0)
    y = np.arange(n) % 3
    x = torch.randn(n, 1, 6, 6, 4, generator=g)
    x[:, 0, :2] += torch.as_tensor(y == 1, dtype=torch.float32)[:, None, None, None] * 1.5
    x[:, 0, 4:] += torch.as_tensor(y == 2, dtype=torch.float32)[:, None, None, None] * 1.5
    return x, y


def _linear3():
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(144, 3))


def test_fit_trains_three_classes_through_the_same_loop():
    x, y = _three_class_data()
    cfg = TrainConfig(epochs=15, patience=15, lr=1e-2, device="cpu", progress=False, classes=3)
    result = fit(_linear3(), x[:60], y[:60], x[60:], y[60:], cfg)
    assert result.history.val_auc.iloc[-1] > 0.9
    assert result.history.val_loss.iloc[-1] < np.log(3)  # better than a uniform guess
    p = predict(result.model, x[60:], device="cpu")
    assert p.shape == (30, 3) and np.allclose(p.sum(1), 1, atol=1e-5)
    with pytest.raises(ValueError, match="class indices"):
        fit(_linear3(), x[:60], np.r_[y[:59], 3], x[60:], y[60:], cfg)


def test_two_classes_with_softmax_train_two_logits():
    """``softmax`` with two classes takes the K-class path: two logits, cross-entropy with
    balanced weights, (N, 2) probabilities out of fold; without it, one logit and BCE."""
    from stroke_lib.train import _loss

    x, y = _three_class_data()
    y = (y == 1).astype(int)
    cfg = TrainConfig(epochs=15, patience=15, lr=1e-2, device="cpu", progress=False, classes=2, softmax=True)
    assert not cfg.binary and TrainConfig(classes=2).binary
    yt = torch.as_tensor(y)
    assert isinstance(_loss(yt, cfg, torch.device("cpu")), nn.CrossEntropyLoss)
    assert _loss(yt, cfg, torch.device("cpu")).weight.tolist() == pytest.approx([90 / 120, 90 / 60])
    assert isinstance(_loss(yt.float(), TrainConfig(classes=2), torch.device("cpu")), nn.BCEWithLogitsLoss)

    def two():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(144, 2))

    groups = np.arange(len(y))
    scores, _ = cross_validate(two, x, y, groups, 3, cfg)
    assert scores.shape == (90, 2) and np.allclose(scores.sum(1), 1, atol=1e-5)
    assert roc_auc_score(y, scores[:, 1]) > 0.9


def test_class_weights_are_balanced():
    from stroke_lib.train import _loss

    y = torch.tensor([0] * 6 + [1] * 3 + [2] * 1)
    w = _loss(y, TrainConfig(classes=3), torch.device("cpu")).weight
    assert w.tolist() == pytest.approx([10 / 18, 10 / 9, 10 / 3])
    assert _loss(y, TrainConfig(classes=3, balance=False), torch.device("cpu")).weight is None


def test_cross_validate_three_classes_gives_out_of_fold_probabilities():
    x, y = _three_class_data()
    groups = np.arange(len(y)) // 2 * 2  # two rows per patient (rows 2k and 2k+1)
    y = y[groups]  # a patient's rows share the label
    cfg = TrainConfig(epochs=8, lr=1e-2, device="cpu", progress=False, classes=3)
    scores, folds = cross_validate(_linear3, x, y, groups, 3, cfg)
    assert scores.shape == (len(y), 3) and not np.isnan(scores).any()
    for f in folds:
        assert not set(groups[f["test_index"]]) & set(np.delete(groups, f["test_index"]))
    table = predictions_table(groups, np.arange(len(y)), y, scores, ["a", "b", "c"])
    assert list(table.columns[:6]) == ["patient_id", "scan", "label", "score a", "score b", "score c"]


def test_multiclass_split_names_the_missing_class():
    y = np.array([0] * 10 + [1] * 10 + [2] * 2)
    groups = np.arange(len(y))
    with pytest.raises(SplitError, match=r"3 folds.*2 patients of class 2"):
        patient_folds(y, groups, 3, classes=3)
    assert len(patient_folds(y, groups, 2, classes=3)) == 2


def test_binary_path_is_unchanged():
    """The binary loss is BCE with the positive class weighted n_neg / n_pos, as before."""
    x, y = _three_class_data()
    y = (y == 1).astype(int)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(144, 1))
    start = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(epochs=1, batch_size=len(y), lr=0.1, weight_decay=0.0, grad_clip=1e9, device="cpu",
                      progress=False, amp=False)
    result = fit(model, x, y, x, y, cfg)
    reference = nn.Sequential(nn.Flatten(), nn.Linear(144, 1))
    reference.load_state_dict(start)
    logits = reference(x).reshape(-1)
    loss = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((y == 0).sum() / (y == 1).sum()))(
        logits, torch.as_tensor(y, dtype=torch.float32))
    assert result.history.train_loss.iloc[0] == pytest.approx(float(loss.detach()), rel=1e-5)
    assert predict(result.model, x, device="cpu").shape == (len(y),)
    frame = predictions_table(np.arange(len(y)), np.arange(len(y)), y, np.full(len(y), 0.5))
    assert list(frame.columns) == ["patient_id", "scan", "label", "score"]
    assert isinstance(frame, pd.DataFrame)


def test_binary_fit_is_the_plain_loop_it_always_was():
    """One epoch of the binary path equals the textbook loop written out here (AdamW, BCE with
    pos_weight n_neg / n_pos, the seeded DataLoader's batches, gradient clipping): the
    multi-class path changed nothing for the binary chapters."""
    from torch.utils.data import DataLoader, TensorDataset

    x, y = _three_class_data()
    y = (y == 1).astype(int)

    def model():
        torch.manual_seed(0)
        return nn.Sequential(nn.Flatten(), nn.Linear(144, 8), nn.ReLU(), nn.Linear(8, 1))

    cfg = TrainConfig(epochs=1, batch_size=8, lr=1e-2, device="cpu", progress=False, seed=4)
    trained = fit(model(), x, y, x[:20], y[:20], cfg).model
    reference = model()
    torch.manual_seed(cfg.seed)
    yt = torch.as_tensor(y, dtype=torch.float32)
    loader = DataLoader(TensorDataset(x, yt), batch_size=8, shuffle=True,
                        generator=torch.Generator().manual_seed(cfg.seed), drop_last=True)
    loss_fn = nn.BCEWithLogitsLoss(pos_weight=torch.tensor((len(y) - y.sum()) / y.sum()))
    opt = torch.optim.AdamW(reference.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    for xb, yb in loader:
        opt.zero_grad(set_to_none=True)
        loss_fn(reference(xb).reshape(-1), yb).backward()
        nn.utils.clip_grad_norm_(reference.parameters(), cfg.grad_clip)
        opt.step()
    for a, b in zip(trained.state_dict().values(), reference.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
