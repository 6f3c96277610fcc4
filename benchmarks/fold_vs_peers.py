"""How many BatchNorms each folding tool leaves, and how exact the result is.

Same models for every tool (torchvision architectures with ``weights=None`` and randomised BN
statistics, plus synthetic edge cases), one table: per model and tool, "BNs left · max |error|"
against the unfolded PyTorch model on the same random input. A tool that crashes gets its
error in the cell.

Torch-level tools: ``bnfold.fold``, ``torch.fx.experimental.optimization.fuse`` and
``torch.ao.quantization.fuse_modules`` (lists: neighbours in an nn.Sequential plus convK/bnK
siblings, or a hand-written list for the edge cases). ONNX-level tools all start from the same
TorchScript export with ``do_constant_folding=False`` (which keeps the BatchNormalization nodes):
``bnfold.fold_onnx``, onnxruntime's basic-level optimizer (the model it saves through
``SessionOptions.optimized_model_filepath``), onnxslim and onnxoptimizer (default fuse and
elimination passes). The dynamo exporter (``torch.onnx.export(..., dynamo=True)``) is measured on
its own output. ONNX models run in onnxruntime (CPU) with graph optimizations disabled, except the
ORT-basic column, which runs the optimized session.

Usage: python benchmarks/fold_vs_peers.py [--models resnet18 convT_groups2 ...] [--out PATH.md]
Runs in a few minutes on a laptop CPU (dominated by the exports of densenet121 and maxvit_t).
"""

from __future__ import annotations

import argparse
import copy
import io
import itertools
import json
import logging
import platform
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import onnx
import onnxruntime as ort
import torch
import torchvision
from torch import fx, nn

import bnfold
from bnfold.layers import stock_kind
from export.runtimes.errors import first_line

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
WRONG = 1e-3  # max error above this (relative to max |y|, at least 1) means a wrong rewrite


# ----------------------------------------------------------------------------- edge cases
class ConvTransposeGroups(nn.Module):
    """ConvTranspose2d(groups=2) + BN: the output channels are split across groups."""

    fuse_lists: ClassVar[list[list[str]]] = [["up", "bn"]]

    def __init__(self) -> None:
        super().__init__()
        self.up = nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2)
        self.bn = nn.BatchNorm2d(6)

    def forward(self, x):
        return self.bn(self.up(x))


class LinearBNNoAffine(nn.Module):
    """Linear + BatchNorm1d(affine=False): no gamma/beta to fold into."""

    fuse_lists: ClassVar[list[list[str]]] = [["fc", "bn"]]

    def __init__(self) -> None:
        super().__init__()
        self.fc = nn.Linear(16, 8)
        self.bn = nn.BatchNorm1d(8, affine=False)

    def forward(self, x):
        return self.bn(self.fc(x))


class ConvFeedsTwo(nn.Module):
    """The conv output feeds the BN and a second consumer: folding into the conv is wrong."""

    fuse_lists: ClassVar[list[list[str]]] = [["conv", "bn"]]  # what a user would write; unsafe here

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        y = self.conv(x)
        return self.bn(y) + torch.relu(y)


class ConvReused(nn.Module):
    """One conv module called twice, each call followed by its own BN."""

    # A module can only be fused once; unsafe here.
    fuse_lists: ClassVar[list[list[str]]] = [["conv", "bn1"]]

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1, self.bn2 = nn.BatchNorm2d(8), nn.BatchNorm2d(8)

    def forward(self, x):
        return self.bn1(self.conv(x)) + self.bn2(self.conv(torch.relu(x)))


MODELS: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "resnet18": (lambda: torchvision.models.resnet18(weights=None), (1, 3, 64, 64)),
    "mobilenet_v2": (lambda: torchvision.models.mobilenet_v2(weights=None), (1, 3, 64, 64)),
    "densenet121": (lambda: torchvision.models.densenet121(weights=None), (1, 3, 64, 64)),
    "r3d_18": (lambda: torchvision.models.video.r3d_18(weights=None), (1, 3, 4, 32, 32)),
    "maxvit_t": (lambda: torchvision.models.maxvit_t(weights=None), (1, 3, 224, 224)),
    "convT_groups2": (ConvTransposeGroups, (2, 4, 5, 5)),
    "linear_bn_noaffine": (LinearBNNoAffine, (4, 16)),
    "conv_feeds_two": (ConvFeedsTwo, (2, 3, 8, 8)),
    "conv_reused": (ConvReused, (2, 3, 8, 8)),
}


# ----------------------------------------------------------------------------- measurements
@dataclass
class Cell:
    bn_left: int | None = None
    max_err: float | None = None
    error: str | None = None
    seconds: float | None = None
    note: str | None = None

    def markdown(self, output_scale: float) -> str:
        if self.error:
            return f"error: {self.error[:70]}"
        text = f"{self.bn_left} · {self.max_err:.1e}"
        if self.max_err > WRONG * max(1.0, output_scale):
            text += " **wrong**"
        return f"{text} ({self.note})" if self.note else text


@dataclass
class Case:
    name: str
    model: nn.Module
    x: torch.Tensor
    reference: np.ndarray
    bn_total: int
    _onnx: onnx.ModelProto | None = None

    @property
    def torchscript_onnx(self) -> onnx.ModelProto:
        """The TorchScript export without constant folding, shared by the ONNX-level tools."""
        if self._onnx is None:
            buffer = io.BytesIO()
            torch.onnx.export(
                copy.deepcopy(self.model),
                (self.x,),
                buffer,
                dynamo=False,
                do_constant_folding=False,
                opset_version=17,
            )
            self._onnx = onnx.load_from_string(buffer.getvalue())
        return self._onnx


def _randomise_bn(model: nn.Module, seed: int) -> nn.Module:
    generator = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, BN_TYPES):
            m.running_mean.normal_(0, 0.1, generator=generator)
            m.running_var.uniform_(0.8, 1.25, generator=generator)
            if m.affine:
                m.weight.data.normal_(1, 0.1, generator=generator)
                m.bias.data.normal_(0, 0.1, generator=generator)
    return model.eval()


def make_case(name: str) -> Case:
    factory, shape = MODELS[name]
    torch.manual_seed(0)
    model = _randomise_bn(factory(), seed=1)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        reference = _first_output(model(x))
    bn_total = sum(isinstance(m, BN_TYPES) for m in model.modules())
    return Case(name, model, x, reference, bn_total)


def _first_output(output) -> np.ndarray:
    while isinstance(output, list | tuple):
        output = output[0]
    return output.detach().float().numpy()


def _max_err(case: Case, output) -> float:
    return float(np.max(np.abs(np.asarray(output, dtype=np.float64) - case.reference)))


def _torch_bn_left(model: nn.Module) -> int:
    """BatchNorm modules the model still runs (for a GraphModule: the ones its graph calls)."""
    if isinstance(model, fx.GraphModule):
        modules = dict(model.named_modules())
        return sum(
            node.op == "call_module" and isinstance(modules.get(node.target), BN_TYPES)
            for node in model.graph.nodes
        )
    return sum(isinstance(m, BN_TYPES) for m in model.modules())


def _run_torch(case: Case, model: nn.Module) -> float:
    with torch.no_grad():
        return _max_err(case, _first_output(model(case.x)))


def _onnx_bn_count(model: onnx.ModelProto) -> int:
    nodes = [*model.graph.node, *(n for f in model.functions for n in f.node)]
    return sum(n.op_type == "BatchNormalization" for n in nodes)


def _run_onnx(case: Case, model: onnx.ModelProto | bytes, options=None) -> float:
    if options is None:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    data = model if isinstance(model, bytes) else model.SerializeToString()
    session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    return _max_err(case, session.run(None, {session.get_inputs()[0].name: case.x.numpy()})[0])


# ----------------------------------------------------------------------------- tools
def tool_bnfold(case: Case) -> Cell:
    result = bnfold.fold(copy.deepcopy(case.model), (case.x,))
    left = result.report.num_bn - result.report.num_folded
    return Cell(left, _run_torch(case, result.model), note=None)


def tool_fx_fuse(case: Case) -> Cell:
    from torch.fx.experimental.optimization import fuse

    fused = fuse(copy.deepcopy(case.model))
    return Cell(_torch_bn_left(fused), _run_torch(case, fused))


def fuse_lists(model: nn.Module) -> list[list[str]]:
    """(layer, BN) pairs for fuse_modules: a model's own list, else Sequential neighbours and
    convK/bnK siblings (the layout of torchvision's ResNet blocks)."""
    if hasattr(model, "fuse_lists"):
        return model.fuse_lists
    pairs = []
    for parent_name, parent in model.named_modules():
        prefix = f"{parent_name}." if parent_name else ""
        children = list(parent.named_children())
        if isinstance(parent, nn.Sequential):
            for (a_name, a), (b_name, b) in itertools.pairwise(children):
                if stock_kind(a) and isinstance(b, BN_TYPES):
                    pairs.append([prefix + a_name, prefix + b_name])
            continue
        named = dict(children)
        for name, module in children:
            conv = "conv" + name[2:] if name.startswith("bn") else None
            if isinstance(module, BN_TYPES) and conv in named and stock_kind(named[conv]):
                pairs.append([prefix + conv, prefix + name])
    return pairs


def tool_fuse_modules(case: Case) -> Cell:
    from torch.ao.quantization import fuse_modules

    lists = fuse_lists(case.model)
    if not lists:
        return Cell(case.bn_total, _run_torch(case, case.model), note="no pairs apply")
    fused = fuse_modules(copy.deepcopy(case.model), lists, inplace=False)
    return Cell(_torch_bn_left(fused), _run_torch(case, fused), note=f"pairs: {len(lists)}")


def _onnx_cell(case: Case, model: onnx.ModelProto) -> Cell:
    return Cell(_onnx_bn_count(model), _run_onnx(case, model))


def tool_fold_onnx(case: Case) -> Cell:
    return _onnx_cell(case, bnfold.fold_onnx(case.torchscript_onnx)[0])


def tool_dynamo(case: Case) -> Cell:
    program = torch.onnx.export(copy.deepcopy(case.model), (case.x,), dynamo=True, verbose=False)
    return _onnx_cell(case, program.model_proto)


def tool_ort_basic(case: Case) -> Cell:
    with tempfile.TemporaryDirectory() as folder:
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(Path(folder) / "basic.onnx")
        err = _run_onnx(case, case.torchscript_onnx, options)
        saved = onnx.load(options.optimized_model_filepath)
    return Cell(_onnx_bn_count(saved), err)


def tool_onnxslim(case: Case) -> Cell:
    import onnxslim

    return _onnx_cell(case, onnxslim.slim(copy.deepcopy(case.torchscript_onnx)))


def tool_onnxoptimizer(case: Case) -> Cell:
    import onnxoptimizer

    return _onnx_cell(case, onnxoptimizer.optimize(copy.deepcopy(case.torchscript_onnx)))


TOOLS: dict[str, Callable[[Case], Cell]] = {
    "bnfold.fold": tool_bnfold,
    "fx fuse": tool_fx_fuse,
    "ao fuse_modules": tool_fuse_modules,
    "bnfold.fold_onnx": tool_fold_onnx,
    "dynamo export": tool_dynamo,
    "ORT basic": tool_ort_basic,
    "onnxslim": tool_onnxslim,
    "onnxoptimizer": tool_onnxoptimizer,
}


def measure(case: Case, tool: Callable[[Case], Cell]) -> Cell:
    start = time.perf_counter()
    try:
        cell = tool(case)
    except Exception as error:  # a benchmark reports every crash in its cell, whatever it is
        cell = Cell(error=f"{type(error).__name__}: {first_line(error, 300)}"[:300])
    cell.seconds = round(time.perf_counter() - start, 2)
    return cell


# ----------------------------------------------------------------------------- output
def _versions() -> dict[str, str]:
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "onnx": onnx.__version__,
        "onnxruntime": ort.__version__,
    }
    for name in ("onnxslim", "onnxoptimizer", "onnxscript"):
        try:
            versions[name] = __import__(name).__version__
        except (ImportError, AttributeError):
            versions[name] = "not installed"
    versions["machine"] = f"{platform.machine()} {platform.processor() or ''}".strip()
    return versions


def to_markdown(rows: list[dict], versions: dict[str, str], seconds: float) -> str:
    tools = list(rows[0]["tools"]) if rows else list(TOOLS)  # the --tools that ran
    lines = [
        "# BatchNorm folding: bnfold vs peers",
        "",
        "Each cell: **BNs left · max |output − unfolded PyTorch output|** on one random input "
        f"(float32, CPU). `error:` = the tool crashed; **wrong** = error above {WRONG:g} × "
        "max(1, max \\|y\\|), i.e. the rewrite changed what the model computes.",
        "",
        "| model | BNs | max \\|y\\| | " + " | ".join(tools) + " |",
        "|---|---:|---:|" + "---|" * len(tools),
    ]
    for row in rows:
        scale = row["max_abs_output"]
        cells = [Cell(**row["tools"][t]).markdown(scale).replace("|", "\\|") for t in tools]
        lines.append(
            f"| {row['model']} | {row['bn_total']} | {row['max_abs_output']:.3g} | "
            + " | ".join(cells)
            + " |"
        )
    lines += [
        "",
        "Notes: torch tools run in PyTorch; ONNX tools (bnfold.fold_onnx, ORT basic, onnxslim, "
        "onnxoptimizer) start from the same TorchScript export (`dynamo=False, "
        "do_constant_folding=False`) and run in onnxruntime with optimizations off (ORT basic: "
        "its optimized session). `ao fuse_modules` uses hand-written lists for the edge cases "
        "(the list a user would write, unsafe there) and Sequential neighbours + convK/bnK "
        "siblings for the torchvision models. BNs left for bnfold.fold counts BNs it did not "
        "fold (including any replaced by a scale-and-shift).",
        "",
        f"Run time: {seconds:.0f} s. Versions: "
        + ", ".join(f"{k} {v}" for k, v in versions.items()),
        "",
    ]
    return "\n".join(lines)


def get_args_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for flag, names in (("--models", list(MODELS)), ("--tools", list(TOOLS))):
        what = flag.removeprefix("--")
        parser.add_argument(
            flag, nargs="+", choices=names, default=names, help=f"{what} to measure (default: all)"
        )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("artifacts/bench/fold_vs_peers.md"),
        help="markdown table path; the JSON goes next to it "
        "(default: artifacts/bench/fold_vs_peers.md)",
    )
    return parser


def main(args: argparse.Namespace) -> int:
    from bnfold.atomic import atomic_write_bytes

    logging.basicConfig(level=logging.ERROR)
    warnings.filterwarnings("ignore")
    start = time.perf_counter()
    rows = []
    for name in args.models:
        case = make_case(name)
        row = {
            "model": name,
            "bn_total": case.bn_total,
            "max_abs_output": float(np.max(np.abs(case.reference))),
            "tools": {},
        }
        for tool in args.tools:
            cell = measure(case, TOOLS[tool])
            row["tools"][tool] = asdict(cell)
            shown = cell.error or f"{cell.bn_left} left, err {cell.max_err:.1e}"
            print(f"{name:20s} {tool:18s} {shown}  [{cell.seconds:.1f} s]", flush=True)
        rows.append(row)
    seconds = time.perf_counter() - start
    versions = _versions()
    table = to_markdown(rows, versions, seconds)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(args.out, table.encode())
    payload = {"rows": rows, "versions": versions, "seconds": round(seconds, 1)}
    atomic_write_bytes(args.out.with_suffix(".json"), json.dumps(payload, indent=2).encode())
    print()
    print(table)
    print(f"wrote {args.out} and {args.out.with_suffix('.json')}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(get_args_parser().parse_args()))
