"""Write the einspace seed architectures to ``spaces/seeds/*.arch``.

Run from the repository root::

    .venv/bin/python tools/make_seeds.py          # (re)write every seed file
    .venv/bin/python tools/make_seeds.py --check  # exit 1 if a file is missing or stale

The seeds follow the reference's ``seed_architectures.py`` (see
``shared/reference/einspace-notes.md`` section 3). Conventions used throughout:

* an n-ary sequence is written right-nested, ``seq(a,seq(b,c))``, and is always flattened
  first, so the first child of a ``seq`` is never itself a ``seq``;
* a conv is ``route(im2col(k,s,p),compute(linear(out=C)),col2im)`` (with bias, as in the
  reference); relu is ``compute(leakyrelu)``; norm is ``compute(norm)``;
* a residual block is ``branch(clone(k=2),<main path>,<shortcut>,add)`` and the identity
  shortcut is ``compute(identity)``.

Every file holds one canonical string (``str(parse_arch(text))``) and a newline.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED_DIR = ROOT / "spaces" / "seeds"

Item = str | list  # a module string, or a (nested) list of items to run in sequence

NORM = "compute(norm)"
RELU = "compute(leakyrelu)"
IDENTITY = "compute(identity)"


# ------------------------------------------------------------------------------ helpers
def _flatten(items: tuple[Item, ...]) -> list[str]:
    out: list[str] = []
    for it in items:
        if isinstance(it, list):
            out.extend(_flatten(tuple(it)))
        else:
            out.append(it)
    return out


def seq(*items: Item) -> str:
    """Right-nested binary ``seq`` of the flattened items (one item is returned as is)."""
    flat = _flatten(items)
    if not flat:
        raise ValueError("seq needs at least one item.")
    text = flat[-1]
    for it in reversed(flat[:-1]):
        text = f"seq({it},{text})"
    return text


def compute(op: str) -> str:
    """A computation module."""
    return f"compute({op})"


def linear(out: int) -> str:
    """A linear layer on the last dim."""
    return compute(f"linear(out={out})")


def conv(k: int, s: int, c: int) -> str:
    """A k x k convolution with stride s to c channels (padding k // 2)."""
    return f"route(im2col(k={k},s={s},p={k // 2}),{linear(c)},col2im)"


def residual(main: Item, shortcut: Item = IDENTITY) -> str:
    """``main + shortcut`` on two clones of the input."""
    return f"branch(clone(k=2),{seq(main)},{seq(shortcut)},add)"


def patch_embed(patch: int, dim: int) -> str:
    """A patch x patch embedding to ``dim`` features that stays in col mode."""
    return f"route(im2col(k={patch},s={patch},p=0),{linear(dim)},identity)"


# -------------------------------------------------------------------------------- seeds
def resnet_block(c_in: int, c_out: int, stride: int) -> list[str]:
    """Basic block (post-activation) followed by its relu."""
    main = [conv(3, stride, c_out), NORM, RELU, conv(3, 1, c_out), NORM]
    short: Item = IDENTITY
    if stride != 1 or c_in != c_out:
        short = [conv(1, stride, c_out), NORM]
    return [residual(main, short), RELU]


def resnet18() -> str:
    """ResNet-18 without max-pool (the reference's ``resnet18_no_maxpool``)."""
    items: list[Item] = [conv(3, 1, 64), NORM, RELU, conv(3, 2, 64)]
    c = 64
    for width, stride in (
        (64, 1),
        (64, 1),
        (128, 2),
        (128, 1),
        (256, 2),
        (256, 1),
        (512, 2),
        (512, 1),
    ):
        items.append(resnet_block(c, width, stride))
        c = width
    return seq(*items)


def wrn16_4() -> str:
    """Wide ResNet 16-4 as in the reference's ``wideresnet16_4``."""
    items: list[Item] = [conv(3, 1, 16), NORM, RELU]
    c = 16
    for width, stride in ((64, 1), (64, 1), (128, 2), (128, 1), (256, 2), (256, 1)):
        main = [conv(3, stride, width), NORM, RELU, conv(3, 1, width)]
        short = IDENTITY if stride == 1 and c == width else conv(1, stride, width)
        items += [residual(main, short), NORM, RELU]
        c = width
    return seq(*items)


def attention_head(d_head: int) -> str:
    """softmax(Q K^T / sqrt(d)) V on two clones of the tokens."""
    q = linear(d_head)
    k_t = f"route(identity,{linear(d_head)},permute(order=21))"
    scores = seq(f"branch(clone(k=2),{q},{k_t},scaled_dot)", compute("softmax"))
    return f"branch(clone(k=2),{scores},{linear(d_head)},dot)"


def vit(dim: int = 512, heads: int = 4, d_head: int = 64, depth: int = 4, patch: int = 4) -> str:
    """Post-norm ViT as the reference's ``transformer`` seed (4 heads x 64, MLP ratio 1)."""
    mhsa = f"branch(clone(k={heads}),{attention_head(d_head)},cat(dim=2))"
    layer = [
        residual([mhsa, linear(dim)]),
        NORM,
        residual([linear(dim), RELU, linear(dim)]),
        NORM,
    ]
    return seq(patch_embed(patch, dim), compute("pos_enc"), [layer] * depth)


def mlp_mixer(dim: int = 512, depth: int = 8, patch: int = 4) -> str:
    """MLP-Mixer as the reference's ``mlp_mixer`` seed (token and channel MLP in one branch)."""
    main = [
        NORM,
        f"route(permute(order=21),{compute('linear_rel(mul=4)')},identity)",
        RELU,
        f"route(identity,{compute('linear_rel(div=4)')},permute(order=21))",
        linear(dim // 2),
        RELU,
        linear(dim),
    ]
    return seq(patch_embed(patch, dim), compute("pos_enc"), [residual(main)] * depth)


def cnn_cpu() -> str:
    """Three 3x3 convs (32, 64, 128; the last two stride 2) with norm and relu: CPU-sized."""
    items: list[Item] = []
    for width, stride in ((32, 1), (64, 2), (128, 2)):
        items += [conv(3, stride, width), NORM, RELU]
    return seq(*items)


def resnet_cpu() -> str:
    """A ResNet of three basic blocks (16, 32, 64 channels): CPU-sized."""
    items: list[Item] = [conv(3, 1, 16), NORM, RELU]
    c = 16
    for width, stride in ((16, 1), (32, 2), (64, 2)):
        items.append(resnet_block(c, width, stride))
        c = width
    return seq(*items)


def mlp_cpu() -> str:
    """Flatten each channel (im2col 1x1, then tokens <-> features) and a 2-layer MLP of 256."""
    flatten = f"route(im2col(k=1,s=1,p=0),{IDENTITY},permute(order=21))"
    return seq(flatten, linear(256), RELU, linear(256))


def seqconv_cpu() -> str:
    """Rows as a sequence: each row's pixels (times channels) become features, then three
    3-wide convolutions of 128 along the rows with norm and relu: CPU-sized."""
    rows_as_sequence = f"route(permute(order=321),{IDENTITY},identity)"
    items: list[Item] = [rows_as_sequence]
    for _ in range(3):
        items += [conv(3, 1, 128), NORM, RELU]
    return seq(*items)


SEEDS: dict[str, Callable[[], str]] = {
    "cnn_cpu": cnn_cpu,
    "mlp_cpu": mlp_cpu,
    "resnet_cpu": resnet_cpu,
    "seqconv_cpu": seqconv_cpu,
    "mixer_cpu": lambda: mlp_mixer(dim=64, depth=2, patch=4),
    "vit_cpu": lambda: vit(dim=64, heads=4, d_head=16, depth=1, patch=4),
    "mlp_mixer": mlp_mixer,
    "resnet18": resnet18,
    "vit": vit,
    "wrn16_4": wrn16_4,
}


def build_seeds() -> dict[str, str]:
    """Name -> canonical string of every seed."""
    from nas.dsl.arch import parse_arch

    return {name: str(parse_arch(make())) for name, make in SEEDS.items()}


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` verify) the seed files; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--check", action="store_true", help="only verify the files are current")
    ap.add_argument("--out", type=Path, default=SEED_DIR, help="output folder")
    args = ap.parse_args(argv)
    stale = []
    for name, text in build_seeds().items():
        path = args.out / f"{name}.arch"
        want = text + "\n"
        if args.check:
            if not path.is_file() or path.read_text() != want:
                stale.append(name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(want)
        print(f"wrote {path} ({len(text)} chars)")
    if stale:
        print(
            f"stale or missing seeds: {', '.join(stale)}; run tools/make_seeds.py", file=sys.stderr
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
