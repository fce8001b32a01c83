"""Hostile inputs for the DSL: generated and mutated architecture strings and grammar files.

The property-based tests and ``bench/fuzz.py`` draw from these generators to check that
every input either works or fails with a :class:`~nas.exceptions.NasError`, quickly and
in bounded memory. Plain :class:`random.Random`, no torch, so a seed replays a campaign.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from nas.ops import get_op, list_ops

# Parameter values that broke (or could break) shape rules: zero, negatives, absurd ints,
# floats where ints are due, words, numbers Python reads as inf.
EDGE_VALUES: tuple[str, ...] = (
    "0",
    "1",
    "2",
    "3",
    "4",
    "8",
    "-1",
    "-3",
    "-21",
    "+2",
    "64",
    "4096",
    "10000000",
    "2147483648",
    "9223372036854775808",
    "1" + "0" * 40,
    "1.5",
    "-0.0",
    "1e400",
    "1e-400",
    ".5",
    "x",
    "nan",
    "inf",
    "0321",
    "1234",
    "12",
    "21",
    "132",
)
_EDGE_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
_JUNK = "()=,|*[]#-> \n\t\"'0123456789abcdefghijklmnopqrstuvwxyz_.+e\x00\xff\u00e9\u2028"


def _value(rng: random.Random) -> str:
    if rng.random() < 0.6:
        return rng.choice(EDGE_VALUES)
    return str(rng.randint(-5, 40))


def layer_ops() -> list[str]:
    """Registered ops: all build layers (config nodes live in the DSL, not the registry)."""
    return list_ops()


def random_arch(rng: random.Random, depth: int = 5, ops: list[str] | None = None) -> str:
    """A random tree over the registered ops with random (often out-of-domain) parameters."""
    ops = ops or layer_ops()
    name = rng.choice(ops)
    cls = get_op(name)
    params = []
    for pname in cls.params:
        if rng.random() < 0.9:
            params.append(f"{pname}={_value(rng)}")
    if rng.random() < 0.05:
        params.append(f"{rng.choice(['zz', 'k', 'out'])}={_value(rng)}")
    kids: list[str] = []
    if cls.is_combinator and depth > 0:
        n = cls.n_slots + (rng.randint(0, 3) if cls.repeat_slot is not None else 0)
        if rng.random() < 0.1:
            n = rng.randint(0, 4)
        kids = [random_arch(rng, depth - 1, ops) for _ in range(n)]
    items = params + kids
    return f"{name}({','.join(items)})" if items else name


def nested_clones(levels: int, k: int = 2) -> str:
    """``branch(clone(k), branch(clone(k), ...), add)``: the written string grows linearly,
    the network it denotes by a factor ``k`` per level."""
    s = "compute(identity)"
    for _ in range(levels):
        s = f"branch(clone(k={k}),{s},add)"
    return s


def deep_seq(levels: int) -> str:
    """``seq(seq(seq(...)))`` nested ``levels`` deep."""
    return "seq(" * levels + "compute(norm)" + ",compute(norm))" * levels


def hostile_arch(rng: random.Random) -> str:
    """Structures that used to hang, recurse or overflow: deep, wide, huge factors."""
    kind = rng.randrange(9)
    if kind == 0:
        return deep_seq(rng.choice([50, 200, 500, 2000, 20000]))
    if kind == 1:
        return nested_clones(rng.choice([10, 20, 40, 100, 300]), rng.choice([2, 4, 8]))
    if kind == 2:
        k = rng.choice(["10000000", "9223372036854775808", "4096", "100000", "-5"])
        return f"branch(clone(k={k}),compute(identity),add)"
    if kind == 3:
        n = rng.choice(["99999999", "100000", "0", "-1", "9223372036854775808"])
        c = rng.choice(["16", "0", "-16", "100000", "1"])
        return f"nb201(c={c},n={n},cell({','.join(rng.choice(_EDGE_OPS) for _ in range(6))}))"
    if kind == 4:
        order = rng.choice(["-21", "0", "11", "1234", "9" * 30, "2", "1", "-1", "321"])
        return f"route(permute(order={order}),compute(identity),identity)"
    if kind == 5:
        edge = ["0", "-3", "1", "3", "1000000", "9223372036854775808"]
        k, s, p = (rng.choice(edge) for _ in "ksp")
        return f"route(im2col(k={k},s={s},p={p}),compute(linear(out={_value(rng)})),col2im)"
    if kind == 6:
        inner = ",".join(["compute(norm)"] * rng.choice([3, 100, 5000]))
        return f"branch(clone(k={rng.choice([2, 4, 8, 3])}),{inner},add)"
    if kind == 7:
        return "(" * rng.choice([10, 1000, 100000])
    return "compute(linear(out=" + "9" * rng.choice([20, 400, 5000]) + "))"


def mutate(rng: random.Random, text: str, rounds: int = 3) -> str:
    """Character- and token-level edits of ``text`` (delete, insert, swap, duplicate, cut)."""
    for _ in range(rng.randint(1, rounds)):
        if not text:
            text = rng.choice(_JUNK)
            continue
        i = rng.randrange(len(text))
        j = min(len(text), i + rng.randint(1, 12))
        kind = rng.randrange(8)
        if kind == 0:
            text = text[:i] + text[j:]
        elif kind == 1:
            text = text[:i] + rng.choice(_JUNK) + text[i:]
        elif kind == 2:
            text = text[:i] + rng.choice(_JUNK) + text[i + 1 :]
        elif kind == 3:
            text = text[:j] + text[i:j] + text[j:]
        elif kind == 4:
            text = text[:i]
        elif kind == 5:
            digits = [p for p, c in enumerate(text) if c.isdigit()]
            if digits:
                p = rng.choice(digits)
                text = text[:p] + rng.choice(EDGE_VALUES) + text[p + 1 :]
        elif kind == 6:
            names = layer_ops()
            for name in rng.sample(names, len(names)):
                if name in text:
                    text = text.replace(name, rng.choice(names), 1)
                    break
        else:
            text = text[:i] + text[i:j].upper() + text[j:]
    return text


def arch_inputs(rng: random.Random, valid: list[str]) -> Callable[[], tuple[str, str]]:
    """A generator of ``(family, string)``: random trees, mutants of ``valid``, hostile shapes."""

    def draw() -> tuple[str, str]:
        r = rng.random()
        if r < 0.4 or not valid:
            return "random", random_arch(rng, rng.randint(0, 6))
        if r < 0.85:
            return "mutant", mutate(rng, rng.choice(valid))
        return "hostile", hostile_arch(rng)

    return draw


# ------------------------------------------------------------------------------- grammars
def random_grammar(rng: random.Random) -> str:
    """A random ``.pcfg`` source: rules over ops and symbols, choices, probabilities."""
    names = [f"r{i}" for i in range(rng.randint(1, 6))]
    lines = []
    if rng.random() < 0.5:
        lines.append(f"start {rng.choice(names)}")
    for name in names:
        alts = []
        for _ in range(rng.randint(1, 4)):
            if rng.random() < 0.3:
                expr = rng.choice(names)
            else:
                expr = random_arch(rng, rng.randint(0, 3))
                if rng.random() < 0.3:  # turn a value into a choice
                    expr = expr.replace("=", f"={_value(rng)}|", 1)
            if rng.random() < 0.3:
                expr += f" [{rng.choice(['0.5', '1', '0', '-0.1', '1e400', '2', '0.25'])}]"
            alts.append(expr)
        lines.append(f"{name} -> " + " | ".join(alts))
    return "\n".join(lines) + "\n"


def choice_explosion(per_param: int = 10, params: int = 6) -> str:
    """A grammar whose one rule expands to ``per_param ** params`` alternatives."""
    vals = "|".join(str(v) for v in range(1, per_param + 1))
    inner = "compute(linear(out=VALS))".replace("VALS", vals)
    expr = inner
    for _ in range(params - 1):
        expr = f"seq({expr},{inner})"
    return f"start net\nnet -> {expr}\n"


def grammar_inputs(rng: random.Random, valid: list[str]) -> Callable[[], tuple[str, bytes]]:
    """A generator of ``(family, source bytes)``: random, mutants of ``valid``, hostile."""

    def draw() -> tuple[str, bytes]:
        r = rng.random()
        if r < 0.35 or not valid:
            return "random", random_grammar(rng).encode()
        if r < 0.85:
            return "mutant", mutate(rng, rng.choice(valid), rounds=5).encode("utf-8", "replace")
        kind = rng.randrange(5)
        if kind == 0:
            per, n = rng.choice([4, 10, 20]), rng.choice([3, 6, 8])
            return "hostile", choice_explosion(per, n).encode()
        if kind == 1:
            return "hostile", b"a -> compute(norm)\n" + bytes([0xFF, 0xFE, 0x80]) + b"\n"
        if kind == 2:
            return "hostile", bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
        if kind == 3:
            chain = "a -> " + deep_seq(rng.choice([100, 600, 3000]))
            return "hostile", chain.encode()
        n = rng.choice([100, 2000])
        rules = "\n".join(f"r{i} -> seq(r{i + 1}, r{i + 1}) | compute(norm)" for i in range(n))
        return "hostile", (rules + f"\nr{n} -> compute(norm)\n").encode()

    return draw
