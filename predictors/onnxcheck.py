"""Before a file is ranked: a node limit checked without parsing, then the ONNX checker.

**Node limit.** Parsing is where an absurd file costs memory (8 million empty nodes, a
16 MB file, took 1.2 GB in the protobuf parser alone), so the serialised model is scanned
first: its wire format is walked with the ONNX schema and counted, nothing is built. A file
with more than ``max_nodes`` nodes (subgraphs and functions included), or more than
:data:`MESSAGES_PER_NODE` times as many protobuf messages of any kind (attributes, value
infos, shape dims, ...), is refused before it is parsed. A message takes two bytes at least,
so a file smaller than twice the limit cannot be over it and is not scanned.
:data:`DEFAULT_MAX_NODES` is 100,000: the largest graph the project measures has 20,162
nodes (a 120-layer transformer encoder, ``bench/rank_speed.py``); the einspace seeds and
samples, NB201 cells and zoo families it exports have 4-1,636. A 100,000-node ``Relu``
chain, at the limit, ranks in 27 s with a peak of 0.93 GB.

**The ONNX checker** (``onnx.checker.check_model``, ``full_check=False``: no shape
inference; 0.03 s for a 45 MB model) runs on the bytes already read, before they are
parsed, so its own copy of the model is gone before the parsed one exists and the peak does
not grow (a 300 MB file peaked at 649 MB read without it, 655 MB with it). A model with
external data, or bytes over protobuf's 2 GB, is checked through its path (the checker then
also checks the data files). A file it rejects is not ranked; its row gives the checker's
first line. Two objections do not matter to ranking, and for those the file is repaired,
checked again and ranked with a note in its row (:func:`vet`):

* nodes stored out of topological order (the ranker sorts nodes itself; a file whose nodes
  cannot be sorted, because an input is never produced, is still refused);
* no opset import for a custom domain (a custom op is read by its name and attributes;
  the domain is imported at version 1 for the check).

A model with external data is not repaired: its first objection is its row.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import onnx
from nas.predictors.onnxfile import checked_path, file_error, tensors
from nas.predictors.topo import stable_topo_order

DEFAULT_MAX_NODES = 100_000
MESSAGES_PER_NODE = 32  # exported models have 2-12 (value infos and their shape dims)
MAX_DEPTH = 64  # nesting of messages the scan follows (the protobuf parser stops at 100)
_NODE = "onnx.NodeProto"
_MISSING_DOMAIN = re.compile(r"No opset import for domain '([^']*)'")
_UNSORTED = "must be topologically sorted"


@functools.cache
def _schema() -> dict[str, dict[int, str]]:
    """Message type -> {field number: message type} of its message-typed fields, for every
    message type reachable from ``ModelProto`` (full names, ``onnx.GraphProto``)."""
    schema: dict[str, dict[int, str]] = {}
    todo = [onnx.ModelProto.DESCRIPTOR]
    while todo:
        desc = todo.pop()
        if desc.full_name in schema:
            continue
        fields = {f.number: f.message_type for f in desc.fields if f.message_type is not None}
        schema[desc.full_name] = {k: d.full_name for k, d in fields.items()}
        todo.extend(fields.values())
    return schema


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    x = data[pos]
    if x < 0x80:
        return x, pos + 1
    value, shift = x & 0x7F, 7
    while True:
        pos += 1
        x = data[pos]
        value |= (x & 0x7F) << shift
        if x < 0x80:
            return value, pos + 1
        shift += 7


def count(data: bytes, max_nodes: int, max_messages: int) -> tuple[int, int] | None:
    """(nodes, messages) in a serialised ModelProto, counting stops just past either limit;
    None when the bytes are not well-formed protobuf (the parser then says what is wrong)."""
    nodes = messages = 0
    schema = _schema()
    stack = [(0, len(data), "onnx.ModelProto")]  # (position, end, message type) per level
    try:
        while stack:
            pos, end, name = stack.pop()
            kids = schema[name]
            while pos < end:
                key, pos = _varint(data, pos)
                wire = key & 7
                if wire == 0:
                    _, pos = _varint(data, pos)
                elif wire == 1:
                    pos += 8
                elif wire == 5:
                    pos += 4
                elif wire == 2:
                    size, pos = _varint(data, pos)
                    child = kids.get(key >> 3)
                    if child is not None:
                        messages += 1
                        nodes += child == _NODE
                        if nodes > max_nodes or messages > max_messages:
                            return nodes, messages
                        if len(stack) >= MAX_DEPTH:
                            return None
                        stack.append((pos + size, end, name))
                        end, name = pos + size, child
                        kids = schema[name]
                        continue
                    pos += size
                else:  # groups (never in ONNX) or garbage
                    return None
            if pos != end:
                return None
    except IndexError:  # a length or varint running past the end
        return None
    return nodes, messages


def check_size(data: bytes, p: Path, max_nodes: int = DEFAULT_MAX_NODES) -> None:
    """Refuse a serialised model over the node limit (see the module docstring) before
    anything parses it."""
    max_messages = MESSAGES_PER_NODE * max_nodes
    if len(data) < 2 * max_nodes:
        return
    counted = count(data, max_nodes, max_messages)
    if counted is None:
        return
    nodes, messages = counted
    if nodes > max_nodes:
        raise file_error(p, f"more than the limit of {max_nodes:,} nodes; not read.")
    if messages > max_messages:
        raise file_error(
            p, f"more than {max_messages:,} protobuf messages ({MESSAGES_PER_NODE} a node of "
            f"the limit of {max_nodes:,} nodes); not read.",
        )  # fmt: skip


def checker_error(model: bytes | Path) -> str:
    """The first line of the ONNX checker's objection to a serialised model or a file
    ("" when it passes), without shape inference."""
    try:
        if isinstance(model, bytes):
            onnx.checker.check_model(model, full_check=False)
        else:
            onnx.checker.check_model(str(model), full_check=False)
    except Exception as e:  # ValidationError, and whatever the C++ side raises
        line = (str(e).strip().splitlines() or [type(e).__name__])[0]
        return line.rstrip(" :.")[:160]
    return ""


def file_objection(data: bytes, p: Path) -> str:
    """:func:`checker_error` of a file's bytes, through its path when they are over 2 GB
    (the most a protobuf can serialise; the checker reads such a file itself)."""
    return checker_error(data if len(data) < 2**31 else checked_path(p))


def _external(model: onnx.ModelProto) -> bool:
    return any(t.data_location == onnx.TensorProto.EXTERNAL for t in tensors(model.graph))


def sort_nodes(graph: onnx.GraphProto) -> bool:
    """Sort the stored nodes topologically, stably; whether their order changed."""
    nodes = list(graph.node)
    order = stable_topo_order([list(n.input) for n in nodes], [list(n.output) for n in nodes])
    if order == list(range(len(nodes))):
        return False
    copies = [onnx.NodeProto.FromString(nodes[k].SerializeToString()) for k in order]
    del graph.node[:]
    graph.node.extend(copies)
    return True


def _repair(model: onnx.ModelProto, objection: str) -> str:
    """Repair ``model`` in place for an objection that does not matter to ranking; the
    note for the file's row ("" when it cannot be repaired)."""
    missing = _MISSING_DOMAIN.search(objection)
    if missing and missing.group(1) not in ("", "ai.onnx"):
        model.opset_import.append(onnx.helper.make_opsetid(missing.group(1), 1))
        return (
            f"ranked although the ONNX checker objects: {objection} (a custom op is read "
            "by its name and attributes)"
        )
    if _UNSORTED in objection and sort_nodes(model.graph):
        return (
            "ranked although the ONNX checker objects: nodes stored out of topological "
            "order (sorted for ranking)"
        )
    return ""


def vet(model: onnx.ModelProto, p: Path, objection: str, notes: list[str]) -> None:
    """Refuse a model the ONNX checker rejects (``objection``: its verdict on the file's
    bytes), or repair it and note why when the objection does not matter to ranking (see
    the module docstring; the repairs change ``model``)."""
    if objection and _external(model):  # the bytes alone cannot show the data files
        objection = checker_error(checked_path(p))
        if objection:
            raise file_error(p, f"the ONNX checker rejects it: {objection}.")
    for _ in range(4):  # one repair of each kind, and the checks after them
        if not objection:
            return
        note = _repair(model, objection)
        if not note:
            break
        if note not in notes:
            notes.append(note)
        objection = checker_error(model.SerializeToString())
    raise file_error(p, f"the ONNX checker rejects it: {objection}.")
