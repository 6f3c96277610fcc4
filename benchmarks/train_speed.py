"""Training speed: this pipeline vs the course's naive one, side by side in one run.

(a) this pipeline: every image decoded once (JPEG draft mode, thread pool) into a uint8
    tensor, augmentation on tensors per batch (``train.trainer.prepare_data`` + ``train.engine``).
(b) naive: the course's way, a Dataset that opens and transforms every image every epoch
    (PIL + ``Resize((32, 32))``, ``RandomCrop(32, padding=4)``, ``RandomGrayscale(0.8)``,
    ``ToTensor``, ``Normalize``) through a DataLoader.

Both train BN-LeNet for the same epochs on the same split with the same optimiser and the
same torch thread count, and are timed after imports.

Run: ``python -m benchmarks.train_speed --data ../shared/data/rmb`` (or ``make bench``).
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from pathlib import Path

import torch
from torch import nn

from train.engine import evaluate, train_one_epoch
from train.imagefolder import scan_image_folder
from train.models import build_model
from train.preprocess import INPUT_SIZE, MEAN, STD
from train.split import stratified_split
from train.trainer import prepare_data


def run_fast(data_dir: str, epochs: int, seed: int) -> tuple[float, float, float]:
    """Seconds for (decode + train + valid), and the final valid and test accuracy."""
    start = time.perf_counter()
    data = prepare_data(data_dir, seed=seed)
    torch.manual_seed(seed)
    model = build_model("bn-lenet", len(data.files.class_names))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        train_one_epoch(
            model,
            data.sets["train"],
            optimizer,
            batch_size=16,
            generator=generator,
            mean=MEAN,
            std=STD,
        )
        _, valid_acc = evaluate(model, data.sets["valid"], MEAN, STD)
    elapsed = time.perf_counter() - start
    return elapsed, valid_acc, evaluate(model, data.sets["test"], MEAN, STD)[1]


class _CourseDataset(torch.utils.data.Dataset):
    """The course's RMBDataset: open, decode and transform the file on every access."""

    def __init__(self, root: Path, paths: list[str], labels: list[int], transform) -> None:
        self.root, self.paths, self.labels, self.transform = root, paths, labels, transform

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int):
        from PIL import Image

        image = Image.open(self.root / self.paths[i]).convert("RGB")
        return self.transform(image), self.labels[i]


def run_naive(data_dir: str, epochs: int, seed: int) -> tuple[float, float, float]:
    """Seconds for the naive pipeline on the same split, and its valid and test accuracy."""
    from torchvision import transforms

    start = time.perf_counter()
    files = scan_image_folder(data_dir)
    split = stratified_split(files, seed)
    label_of = dict(zip(files.paths, files.labels, strict=True))
    norm = transforms.Normalize(MEAN, STD)
    train_tf = transforms.Compose(
        [
            transforms.Resize(INPUT_SIZE),
            transforms.RandomCrop(32, padding=4),
            transforms.RandomGrayscale(p=0.8),
            transforms.ToTensor(),
            norm,
        ]
    )
    eval_tf = transforms.Compose([transforms.Resize(INPUT_SIZE), transforms.ToTensor(), norm])

    def loader(name: str, tf, shuffle: bool):
        ds = _CourseDataset(Path(data_dir), split[name], [label_of[p] for p in split[name]], tf)
        return torch.utils.data.DataLoader(ds, batch_size=16, shuffle=shuffle)

    torch.manual_seed(seed)
    model = build_model("bn-lenet", len(files.class_names))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    loss_fn = nn.CrossEntropyLoss()

    def accuracy(name: str) -> float:
        model.eval()
        correct = total = 0
        with torch.no_grad():
            for x, y in loader(name, eval_tf, False):
                correct += (model(x).argmax(1) == y).sum().item()
                total += len(y)
        return correct / total

    for _ in range(epochs):
        model.train()
        for x, y in loader("train", train_tf, True):
            if len(y) < 2:
                continue
            loss = loss_fn(model(x), y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        valid_acc = accuracy("valid")
    elapsed = time.perf_counter() - start
    return elapsed, valid_acc, accuracy("test")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="ImageFolder of RMB photos (required)")
    p.add_argument("--epochs", type=int, default=10, help="epochs per run (default 10)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats (default 3)")
    p.add_argument("--seed", type=int, default=1, help="seed (default 1)")
    p.add_argument("--threads", type=int, default=1, help="torch threads for both (default 1)")
    p.add_argument("--out", default="artifacts/bench/train_speed.json", help="JSON result path")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)

    fast, naive = [], []
    for r in range(args.repeats):  # interleaved so machine drift hits both alike
        fast.append(run_fast(args.data, args.epochs, args.seed))
        naive.append(run_naive(args.data, args.epochs, args.seed))
        print(f"repeat {r + 1}: this pipeline {fast[-1][0]:.2f} s, naive {naive[-1][0]:.2f} s")
    t_fast = statistics.median(x[0] for x in fast)
    t_naive = statistics.median(x[0] for x in naive)
    result = {
        "epochs": args.epochs,
        "data": args.data,
        "threads": torch.get_num_threads(),
        "this_pipeline_s": t_fast,
        "naive_s": t_naive,
        "speedup": t_naive / t_fast,
        "this_pipeline_valid_acc": fast[-1][1],
        "this_pipeline_test_acc": fast[-1][2],
        "naive_valid_acc": naive[-1][1],
        "naive_test_acc": naive[-1][2],
    }
    print(
        f"\n| pipeline | wall time (median of {args.repeats}) | valid acc | test acc |\n"
        "|---|---:|---:|---:|\n"
        f"| decode once + tensor augmentation | {t_fast:.2f} s | {fast[-1][1]:.0%} "
        f"| {fast[-1][2]:.0%} |\n"
        f"| naive (course: PIL every epoch) | {t_naive:.2f} s | {naive[-1][1]:.0%} "
        f"| {naive[-1][2]:.0%} |\n"
        f"\nspeed-up: {t_naive / t_fast:.1f}x"
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
