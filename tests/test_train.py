"""Pieces of the training loop: length-grouped batches, optimizer groups, schedules."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from intentune import Config
from intentune.train import (
    DEFAULT_LEARNING_RATE,
    EpochRows,
    LengthGroupedBatches,
    ShuffledBatches,
    build_optimizer,
    build_scheduler,
    default_learning_rate,
    with_backbone_learning_rate,
)


@pytest.mark.parametrize(("n", "batch_size"), [(1000, 16), (37, 8), (5, 16), (800, 16)])
def test_length_grouped_batches_use_every_row_once(n: int, batch_size: int) -> None:
    lengths = [(i * 7919) % 60 + 1 for i in range(n)]
    sampler = LengthGroupedBatches(lengths, batch_size, torch.Generator().manual_seed(0), group_batches=4)
    batches = list(sampler)
    assert len(batches) == len(sampler) == math.ceil(n / batch_size)
    assert sorted(i for b in batches for i in b) == list(range(n))


def test_length_grouped_batches_pad_less_than_random_ones() -> None:
    lengths = [(i * 7919) % 60 + 1 for i in range(1600)]
    grouped = list(LengthGroupedBatches(lengths, 16, torch.Generator().manual_seed(0)))
    shuffled = torch.randperm(1600, generator=torch.Generator().manual_seed(0)).tolist()
    plain = [shuffled[i : i + 16] for i in range(0, 1600, 16)]

    def padded_tokens(batches: list[list[int]]) -> int:
        return sum(len(b) * max(lengths[i] for i in b) for b in batches)

    assert padded_tokens(grouped) < 0.6 * padded_tokens(plain)
    # Still shuffled: consecutive epochs give different batch orders.
    assert grouped != list(LengthGroupedBatches(lengths, 16, torch.Generator().manual_seed(1)))


def test_epoch_rows_take_every_fixed_row_and_the_pools_rows_in_turn() -> None:
    plan = EpochRows(fixed=(0, 1, 2), pools=(tuple(range(3, 13)), tuple(range(13, 16))), per_epoch=4, seed=7)
    assert plan.size == 3 + 4 + 3  # the second pool is smaller than the share: all of it
    epochs = [plan.rows(epoch) for epoch in range(5)]
    for rows in epochs:
        assert len(rows) == len(set(rows)) == plan.size and {0, 1, 2, 13, 14, 15} <= set(rows)
    pooled = [[i for i in rows if 3 <= i < 13] for rows in epochs]
    assert all(len(share) == 4 for share in pooled)
    assert len(set(pooled[0] + pooled[1] + pooled[2])) == 10  # each of the 10 rows before any comes again
    assert pooled[0] != pooled[1]
    assert plan.rows(3) == EpochRows(plan.fixed, plan.pools, 4, seed=7).rows(3)  # an epoch's rows: its index alone
    assert [plan.rows(e) for e in range(3)] != [EpochRows(plan.fixed, plan.pools, 4, seed=8).rows(e) for e in range(3)]


@pytest.mark.parametrize("grouped", [True, False])
def test_batches_of_an_epoch_plan_cover_its_rows_once(grouped: bool) -> None:
    plan = EpochRows(fixed=tuple(range(20)), pools=(tuple(range(20, 60)), tuple(range(60, 100))), per_epoch=5)
    lengths = [(i * 7919) % 60 + 1 for i in range(100)]
    generator = torch.Generator().manual_seed(3)
    sampler = (
        LengthGroupedBatches(lengths, 8, generator, group_batches=2, epoch_rows=plan)
        if grouped
        else ShuffledBatches(plan, 8, generator)
    )
    for epoch in (0, 1):
        sampler.start_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == math.ceil(30 / 8)
        assert sorted(i for b in batches for i in b) == plan.rows(epoch)


def test_optimizer_gives_the_head_its_own_rate_and_no_decay_to_biases() -> None:
    net = nn.Module()
    net.body = nn.Linear(4, 4)
    net.head = nn.Linear(4, 2)
    cfg = Config().override(["train.learning_rate=1e-5", "train.head_learning_rate=1e-3", "train.weight_decay=0.1"])
    groups = build_optimizer(net, cfg.train, "encoder").param_groups
    by_id = {id(p): g for g in groups for p in g["params"]}
    assert by_id[id(net.body.weight)]["lr"] == 1e-5 and by_id[id(net.body.weight)]["weight_decay"] == 0.1
    assert by_id[id(net.body.bias)]["weight_decay"] == 0.0
    assert by_id[id(net.head.weight)]["lr"] == 1e-3


def test_an_unset_learning_rate_is_the_backbones_own_then_its_kinds() -> None:
    # mpnet-base's rate was chosen on validation data; the other backbones keep their kind's.
    assert default_learning_rate("encoder", "mpnet-base") == 5e-5 != DEFAULT_LEARNING_RATE["encoder"]
    assert default_learning_rate("encoder", "minilm-l6") == DEFAULT_LEARNING_RATE["encoder"] == 1e-4
    assert default_learning_rate("decoder", "/some/folder") == DEFAULT_LEARNING_RATE["decoder"]
    unset = Config().override(["train.learning_rate=none"]).train
    assert with_backbone_learning_rate(unset, "mpnet-base").learning_rate == 5e-5
    # Left unset otherwise, so the kind's default applies in build_optimizer and checkpoints keep their fingerprint.
    assert with_backbone_learning_rate(unset, "minilm-l6") is unset
    chosen = Config().override(["train.learning_rate=2e-5"]).train
    assert with_backbone_learning_rate(chosen, "mpnet-base").learning_rate == 2e-5
    net = nn.Module()
    net.body, net.head = nn.Linear(4, 4), nn.Linear(4, 2)
    groups = build_optimizer(net, with_backbone_learning_rate(unset, "mpnet-base"), "encoder").param_groups
    assert {g["lr"] for g in groups if any(p is net.body.weight for p in g["params"])} == {5e-5}


@pytest.mark.parametrize("schedule", ["linear", "cosine", "constant"])
def test_schedules_warm_up_then_follow_their_shape(schedule: str) -> None:
    net = nn.Linear(2, 2)
    cfg = Config().override([f"train.schedule={schedule}", "train.warmup_ratio=0.1", "train.learning_rate=1.0"])
    optimizer = torch.optim.SGD(net.parameters(), lr=1.0)
    scheduler = build_scheduler(optimizer, cfg.train, total_steps=100)
    rates = []
    for _ in range(100):
        rates.append(scheduler.get_last_lr()[0])
        optimizer.step()
        scheduler.step()
    assert rates[0] == 0.0 and rates[10] == pytest.approx(1.0)
    if schedule == "constant":
        assert rates[-1] == pytest.approx(1.0)
    else:
        assert rates[-1] < 0.05
        middle = rates[55]
        assert (
            middle == pytest.approx(0.5, abs=0.02) if schedule == "linear" else middle == pytest.approx(0.5, abs=0.03)
        )


def test_auto_early_stopping_metric_follows_the_validation_size() -> None:
    from intentune.train import resolve_early_stopping_metric

    per_intent = lambda n: [label for label in range(5) for _ in range(n)]  # noqa: E731
    assert resolve_early_stopping_metric("auto", per_intent(10)) == "val_accuracy"
    assert resolve_early_stopping_metric("auto", per_intent(9)) == "val_loss"
    assert resolve_early_stopping_metric("auto", [0] * 30 + [1, 2, 3]) == "val_loss"  # the median, not the mean
    assert resolve_early_stopping_metric("auto", None) == "val_loss"
    assert resolve_early_stopping_metric("val_loss", per_intent(50)) == "val_loss"
    assert resolve_early_stopping_metric("val_accuracy", per_intent(1)) == "val_accuracy"
    assert Config().train.early_stopping_metric == "auto"


@pytest.mark.parametrize(
    ("metric", "saved_at"),
    [("val_loss", [1, 3]), ("val_accuracy", [1, 2])],
)
def test_early_stopping_scores_and_patience(metric: str, saved_at: list[int]) -> None:
    from intentune.train import EarlyStopping, TrainControl, TrainState

    evaluations = [
        {"val_loss": 1.0, "val_accuracy": 0.5},
        {"val_loss": 1.1, "val_accuracy": 0.6},  # more accurate, higher loss
        {"val_loss": 0.9, "val_accuracy": 0.6},  # lowest loss, same accuracy: better under both metrics
        {"val_loss": 0.95, "val_accuracy": 0.4},
        {"val_loss": 0.92, "val_accuracy": 0.4},
    ]
    callback, state, control = EarlyStopping(patience=2, metric=metric), TrainState(max_steps=5), TrainControl()
    saved = []
    for step, metrics in enumerate(evaluations, start=1):
        state.step = step
        callback.on_evaluate(state, control, metrics)
        if control.should_save:
            saved.append(step)
            control.should_save = False
        if control.should_stop:
            break
    expected = [*saved_at, 3] if metric == "val_accuracy" else saved_at
    assert saved == sorted(set(expected))
    assert control.should_stop and state.step == 5 and state.best_step == 3


def test_layer_lr_decay_lowers_the_rate_layer_by_layer(tiny_encoder: object) -> None:
    """The tiny BERT (2 layers), decay 0.5: the top layer and the pooler above it at the backbone's rate, layer 0
    at half of it, the embeddings at a quarter; the head keeps its own rate; 1.0 gives one rate to the backbone."""
    from intentune.backbones import load_backbone
    from intentune.net import IntentNet

    backbone, _, kind = load_backbone(str(tiny_encoder))
    net = IntentNet(backbone, 3, kind=kind, pooling="mean", dropout=0.1)
    cfg = Config().override(["train.learning_rate=1e-4", "train.head_learning_rate=1e-3", "train.layer_lr_decay=0.5"])
    by_id = {id(p): g["lr"] for g in build_optimizer(net, cfg.train, kind).param_groups for p in g["params"]}
    rates = {name: by_id[id(p)] for name, p in net.named_parameters()}
    layer = {i: [r for n, r in rates.items() if f".layer.{i}." in n] for i in (0, 1)}
    assert set(layer[1]) == {1e-4} and set(layer[0]) == {5e-5}
    assert {r for n, r in rates.items() if ".embeddings." in n} == {2.5e-5}
    assert {r for n, r in rates.items() if ".pooler." in n} == {1e-4}  # registered after the layers
    assert rates["head.weight"] == rates["head.bias"] == 1e-3
    flat = Config().override(["train.learning_rate=1e-4", "train.head_learning_rate=1e-3"])
    assert {g["lr"] for g in build_optimizer(net, flat.train, kind).param_groups} == {1e-4, 1e-3}


def test_layer_lr_decay_is_checked_and_needs_a_layer_stack() -> None:
    from intentune.errors import ConfigError

    with pytest.raises(ConfigError, match=r"train.layer_lr_decay .*\(0, 1\]"):
        Config().override(["train.layer_lr_decay=0"])
    net = nn.Module()
    net.backbone = nn.Linear(4, 4)
    net.head = nn.Linear(4, 2)
    with pytest.raises(ConfigError, match="cannot find the transformer layers of Linear for train.layer_lr_decay"):
        build_optimizer(net, Config().override(["train.layer_lr_decay=0.9"]).train, "encoder")


def _tiny_loop_inputs(tiny_encoder: object) -> tuple[nn.Module, tuple, tuple, int]:
    """A tiny encoder net, and the toy set as both training and validation data."""
    from conftest import tiny_net

    net, ids, label_ids, pad_id = tiny_net(tiny_encoder)
    return net, (ids, label_ids), (ids, label_ids), pad_id


def test_validation_batches_are_sorted_by_length(tiny_encoder: object) -> None:
    from intentune.train import TrainingLoop, make_accelerator

    net, train, validation, pad_id = _tiny_loop_inputs(tiny_encoder)
    cfg = Config().override(["train.device=cpu", "train.eval_batch_size=4"]).train
    loop = TrainingLoop(net, train, validation, cfg, pad_id, make_accelerator(cfg))
    batches = list(loop.val_loader)
    widths = [b["input_ids"].shape[1] for b in batches]
    assert widths == sorted(widths) and len(set(widths)) > 1
    lengths = [int(n) for b in batches for n in b["attention_mask"].sum(dim=1)]
    assert lengths == sorted(lengths) == sorted(len(ids) for ids in validation[0])


def test_a_callback_can_stop_training_at_the_first_evaluation(tiny_encoder: object) -> None:
    from intentune.train import Callback, train_net

    net, train, validation, pad_id = _tiny_loop_inputs(tiny_encoder)
    before = {k: v.clone() for k, v in net.state_dict().items()}

    class StopAtOnce(Callback):
        def on_evaluate(self, state: object, control: object, metrics: dict[str, float]) -> None:
            control.should_stop = True

    cfg = Config().override(["train.device=cpu", "train.epochs=2"]).train
    result = train_net(net, train, validation, cfg, pad_id, [StopAtOnce()], evaluate_first=True)
    assert result.state.step == 0 and [h["step"] for h in result.history] == [0] and result.stopped_early
    assert all(torch.equal(v, net.state_dict()[k]) for k, v in before.items())


def test_a_step_0_evaluation_can_be_kept_but_does_not_start_the_patience_count() -> None:
    from intentune.train import EarlyStopping, TrainControl, TrainState

    def run(accuracies: list[float]) -> tuple[list[int], int, bool]:
        callback = EarlyStopping(patience=2, metric="val_accuracy")
        state, control, seen = TrainState(max_steps=10), TrainControl(), []
        for step, accuracy in enumerate(accuracies):  # step 0 first: the head before fine-tuning
            state.step = step
            callback.on_evaluate(state, control, {"val_loss": 1.0, "val_accuracy": accuracy})
            seen.append(step)
            if control.should_stop:
                break
        return seen, state.best_step, control.should_stop

    # Fine-tuning dips below step 0 and climbs: it goes on, and its later best is kept.
    assert run([0.85, 0.81, 0.84, 0.86, 0.87]) == ([0, 1, 2, 3, 4], 4, False)
    # Fine-tuning improves on itself but never passes step 0: it runs on, and step 0 stays the best weights.
    assert run([0.90, 0.81, 0.84, 0.86, 0.87]) == ([0, 1, 2, 3, 4], 0, False)
    # Two fine-tuning evaluations worse than the best fine-tuning one: stopped, step 0 kept.
    assert run([0.90, 0.85, 0.84, 0.83, 0.99]) == ([0, 1, 2, 3], 0, True)


def test_losses_read_back_every_few_steps_give_the_same_smoothed_loss(tiny_encoder: object) -> None:
    """On a GPU the loop reads the training losses back every 16 steps (a read waits for the GPU); the smoothed
    loss it reports at each read, and the checkpoint's, equal those of reading every step."""
    from intentune.train import TrainingLoop, TrainState, make_accelerator

    def run(read_every: int) -> list[tuple[int, float | None]]:
        net, train, validation, pad_id = _tiny_loop_inputs(tiny_encoder)
        cfg = Config().override(["train.device=cpu", "train.epochs=3", "train.batch_size=2"]).train
        loop = TrainingLoop(net, train, validation, cfg, pad_id, make_accelerator(cfg))
        loop._read_every = read_every
        seen = [(info.step, info.loss) for info in loop.run(TrainState(max_steps=loop.total_steps))]
        assert not loop._unread_losses and loop.position()["smoothed_loss"] == seen[-1][1]
        return seen

    every, sparse = run(1), run(4)
    assert len(every) == len(sparse) > 8
    assert sparse[0] == every[0]  # the first step is read, so there is a loss to show
    for (step, loss), (_, expected) in zip(sparse, every):
        if step % 4 == 0 or step == len(every):
            assert loss == expected
    assert sparse[1][1] == every[0][1] != every[1][1]  # between reads, the last value read


def test_weight_average_follows_its_formula() -> None:
    from intentune.train import WeightAverage

    net = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.0)
    average = WeightAverage(net, ema_epochs=2.0, steps_per_epoch=10)  # decay exp(-1/20) once past the early cap
    expected = 0.0
    for t, value in enumerate([1.0, 2.0, 3.0] + [4.0] * 30):
        with torch.no_grad():
            net.weight.fill_(value)
        average.update(net)
        decay = min(math.exp(-1 / 20), (1 + t) / (10 + t))
        expected = decay * expected + (1 - decay) * value
    assert average.shadow["weight"].item() == pytest.approx(expected, rel=1e-6)
    assert 3.0 < expected < 4.0  # the early cap lets it follow the weights; the decay still lags them
    average.swap(net)
    assert net.weight.item() == pytest.approx(expected)
    assert average.shadow["weight"].item() == 4.0
    average.swap(net)
    assert net.weight.item() == 4.0 and average.shadow["weight"].item() == pytest.approx(expected)

    frozen = nn.Sequential(nn.Linear(2, 2), nn.Linear(2, 2))
    frozen[0].weight.requires_grad_(False)
    assert set(WeightAverage(frozen, 1.0, 10).shadow) == {"0.bias", "1.weight", "1.bias"}
    frozen.requires_grad_(False)
    nothing = WeightAverage(frozen, 1.0, 10)
    nothing.update(frozen)  # nothing to average: no error
    assert nothing.shadow == {} and nothing.updates == 1

    # bf16 weights (not the one multi-tensor path): averaged in float32 all the same; the first step's decay is 1/10.
    half = nn.Linear(1, 1, bias=False).to(torch.bfloat16)
    with torch.no_grad():
        half.weight.fill_(2.0)
    average = WeightAverage(half, 1.0, 10)
    with torch.no_grad():
        half.weight.fill_(4.0)
    average.update(half)
    assert average.shadow["weight"].dtype == torch.float32
    assert average.shadow["weight"].item() == pytest.approx(0.1 * 2.0 + 0.9 * 4.0)


def test_ema_keeps_the_average_of_the_weights_training_passed_through(tiny_encoder: object) -> None:
    from intentune.train import Callback, evaluate_loss, train_net

    class Record(Callback):
        def __init__(self, net: nn.Module) -> None:
            self.net, self.weights = net, [{k: v.detach().clone() for k, v in net.state_dict().items()}]

        def on_step_end(self, state: object, control: object) -> None:
            self.weights.append({k: v.detach().clone() for k, v in self.net.state_dict().items()})

    plain, train, validation, pad_id = _tiny_loop_inputs(tiny_encoder)
    cfg = Config().override(["train.device=cpu", "train.epochs=3", "train.ema_epochs=0"]).train
    record = Record(plain)
    train_net(plain, train, None, cfg, pad_id, [record])
    averaged, *_ = _tiny_loop_inputs(tiny_encoder)
    cfg_ema = Config().override(["train.device=cpu", "train.epochs=3", "train.ema_epochs=0.5"]).train
    result = train_net(averaged, train, None, cfg_ema, pad_id)
    steps = result.state.step
    assert steps == len(record.weights) - 1 >= 6
    decay = math.exp(-1 / (0.5 * steps / 3))
    name = "head.weight"
    expected = record.weights[0][name].clone()
    for t in range(steps):  # the same trajectory (same seed), averaged
        d = min(decay, (1 + t) / (10 + t))
        expected = d * expected + (1 - d) * record.weights[t + 1][name]
    assert torch.allclose(averaged.state_dict()[name], expected, atol=1e-5)
    assert not torch.allclose(averaged.state_dict()[name], plain.state_dict()[name], atol=1e-4)

    # With validation data, the evaluations score the averaged weights, and the kept weights are those scored best.
    net, *_ = _tiny_loop_inputs(tiny_encoder)
    result = train_net(net, train, validation, cfg_ema, pad_id)
    from torch.utils.data import DataLoader

    from intentune.preprocess import Collator
    from intentune.train import make_accelerator

    loader = DataLoader(list(zip(*validation)), batch_size=8, collate_fn=Collator(pad_id))
    best = next(h for h in result.history if h["step"] == result.state.best_step)
    kept = evaluate_loss(net, loader, make_accelerator(cfg_ema))
    assert kept["val_loss"] == pytest.approx(best["val_loss"], abs=1e-4)
