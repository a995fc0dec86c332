"""Reading an ONNX file's metadata and output shapes straight from its protobuf, without
loading the model: the bundle checks run before an engine (sherpa-onnx calls exit() on bad
metadata) and must not read hundreds of megabytes of weights to do it."""

from __future__ import annotations

import mmap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from edged.errors import ModelError

# ModelProto field numbers (onnx.proto3).
_MODEL_FIELDS = frozenset({1, 2, 3, 4, 5, 6, 7, 8, 14, 20, 25, 26})


@dataclass(frozen=True)
class OnnxInfo:
    """An ONNX file's metadata and output shapes (dims are ints, names or None)."""

    metadata: dict[str, str]
    outputs: list[tuple[str, list[int | str | None]]]


def read_onnx_info(path: Path) -> OnnxInfo:
    """Metadata and graph outputs of an ONNX file, read from the protobuf directly
    (memory-mapped: the weights are skipped, not read). ModelError if it is not ONNX."""
    try:
        with path.open("rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _parse_model(buf)
    except FileNotFoundError:
        raise ModelError(f"{path}: file missing") from None
    except (OSError, ValueError, IndexError, UnicodeDecodeError) as exc:
        raise ModelError(
            f"{path}: not a readable ONNX model ({exc}); reinstall the bundle"
        ) from exc


def _varint(buf: mmap.mmap, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("malformed varint")


def _fields(buf: mmap.mmap, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """(field number, wire type, value or span start, span end) of one protobuf message."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            yield number, wire, value, pos
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > end:
                raise ValueError("truncated")
            yield number, wire, pos, pos + length
            pos += length
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
        else:
            raise ValueError(f"bad wire type {wire}")
    if pos != end:
        raise ValueError("truncated")


def _string(buf: mmap.mmap, start: int, end: int) -> str:
    return bytes(buf[start:end]).decode("utf-8")


def _parse_model(buf: mmap.mmap) -> OnnxInfo:
    metadata: dict[str, str] = {}
    outputs: list[tuple[str, list[int | str | None]]] = []
    has_graph = has_ir = False
    for number, wire, a, b in _fields(buf, 0, len(buf)):
        if number not in _MODEL_FIELDS:
            # A text file can happen to parse as protobuf; an ONNX model has only these.
            raise ValueError(f"field {number} is not part of an ONNX ModelProto")
        if number == 1 and wire == 0:  # ModelProto.ir_version
            has_ir = True
        elif number == 14 and wire == 2:  # metadata_props
            entry = {n: _string(buf, s, e) for n, w, s, e in _fields(buf, a, b) if w == 2}
            metadata[entry.get(1, "")] = entry.get(2, "")
        elif number == 7 and wire == 2:  # graph
            has_graph = True
            outputs = [_value_info(buf, s, e) for n, w, s, e in _fields(buf, a, b) if n == 12]
    if not (has_graph and has_ir):
        raise ValueError("no ONNX graph")
    return OnnxInfo(metadata, outputs)


def _value_info(buf: mmap.mmap, start: int, end: int) -> tuple[str, list[int | str | None]]:
    name, dims = "", []
    for number, _, a, b in _fields(buf, start, end):
        if number == 1:
            name = _string(buf, a, b)
        elif number == 2:  # TypeProto -> tensor_type (1) -> shape (2) -> dim (1)
            for n1, _, a1, b1 in _fields(buf, a, b):
                if n1 != 1:
                    continue
                for n2, _, a2, b2 in _fields(buf, a1, b1):
                    if n2 != 2:
                        continue
                    for n3, _, a3, b3 in _fields(buf, a2, b2):
                        if n3 == 1:
                            dims.append(_dim(buf, a3, b3))
    return name, dims


def _dim(buf: mmap.mmap, start: int, end: int) -> int | str | None:
    for number, wire, a, b in _fields(buf, start, end):
        if number == 1 and wire == 0:
            return a
        if number == 2 and wire == 2:
            return _string(buf, a, b)
    return None
