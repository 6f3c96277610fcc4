"""What a fold did to each BatchNorm: the record both the torch and the ONNX folders return.

Every BatchNorm of the input gets exactly one :class:`BNRecord`, folded or not, so a user can
see at a glance which ones were left and why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum


class Direction(StrEnum):
    """Where a BatchNorm went."""

    INTO_PRODUCER = "into-producer"  # conv/linear → BN: folded into the layer before it
    INTO_CONSUMER = "into-consumer"  # BN → conv/linear: folded into the layer after it
    AFFINE = "affine"  # replaced by an equivalent per-channel scale-and-shift
    LEFT = "left"  # left in place; see ``reason``


@dataclass(frozen=True)
class BNRecord:
    """One BatchNorm of the input model/graph and what happened to it."""

    bn: str  # module qualified name (torch) or node name (ONNX)
    direction: Direction
    target: str | None = None  # the layer it was folded into, if any
    reason: str | None = None  # why it was left (or why not folded into a neighbour)

    @property
    def folded(self) -> bool:
        return self.direction in (Direction.INTO_PRODUCER, Direction.INTO_CONSUMER)


@dataclass
class FoldReport:
    """The per-BatchNorm records of one fold, in graph order."""

    records: list[BNRecord] = field(default_factory=list)

    @property
    def num_bn(self) -> int:
        return len(self.records)

    @property
    def num_folded(self) -> int:
        return sum(r.folded for r in self.records)

    @property
    def left(self) -> list[BNRecord]:
        """Records of BatchNorms still computed as BatchNorm (or as a scale-and-shift)."""
        return [r for r in self.records if not r.folded]

    def to_dict(self) -> dict:
        return {
            "num_bn": self.num_bn,
            "num_folded": self.num_folded,
            "records": [
                {**asdict(r), "direction": r.direction.value, "folded": r.folded}
                for r in self.records
            ],
        }

    def to_table(self) -> str:
        """A fixed-width table for terminals and logs."""
        rows = [("BatchNorm", "what happened", "layer", "reason")]
        rows += [(r.bn, r.direction.value, r.target or "-", r.reason or "") for r in self.records]
        widths = [max(len(row[i]) for row in rows) for i in range(3)]
        lines = [
            "  ".join(cell.ljust(w) for cell, w in zip(row[:3], widths, strict=True))
            + "  "
            + row[3]
            for row in rows
        ]
        lines.insert(1, "-" * len(lines[0]))
        lines.append(f"{self.num_folded}/{self.num_bn} BatchNorms folded")
        return "\n".join(line.rstrip() for line in lines)
