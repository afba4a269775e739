#!/usr/bin/python3
"""PyTorch peer of the Go trainer for make bench-train.

Trains models/cnn.yaml (the prototype's CNN, 421,642 parameters) or
models/resnet-small.yaml (307,882) on Fashion-MNIST for a fixed number of
steps and prints one JSON line with its training throughput, measured like
the Go trainer measures it: the time of every step but the first (which
warms up), over the images those steps saw.

With RANK and WORLD_SIZE set (and MASTER_ADDR, MASTER_PORT) it is one rank
of DistributedDataParallel over gloo: each rank trains on its share of the
global batch and prints the global throughput it saw.

Run it with Debian's own interpreter (/usr/bin/python3), which has
python3-torch.
"""

import argparse
import gzip
import json
import os
import resource
import struct
import sys
import time

import torch
from torch import nn


def read_idx(path):
    """Reads an IDX file (gzipped or not) into a uint8 tensor."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    zero, dtype, ndim = struct.unpack(">HBB", data[:4])
    if zero != 0 or dtype != 0x08:
        sys.exit(f"{path}: not an unsigned-byte IDX file")
    dims = struct.unpack(">" + "I" * ndim, data[4 : 4 + 4 * ndim])
    body = data[4 + 4 * ndim :]
    count = 1
    for d in dims:
        count *= d
    if len(body) != count:
        sys.exit(f"{path}: {len(body)} bytes of data, header says {count}")
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(dims)


def find(directory, stem):
    for name in (stem + ".gz", stem):
        path = os.path.join(directory, name)
        if os.path.exists(path):
            return path
    sys.exit(f"{directory}: no {stem}[.gz]")


def cnn():
    """The prototype's model, layer for layer as internal/model's cnn."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Dropout(0.25),
        nn.Flatten(),
        nn.Linear(7 * 7 * 64, 128), nn.ReLU(), nn.Dropout(0.5),
        nn.Linear(128, 10),
    )


class Block(nn.Module):
    """A basic residual block: two 3×3 convs with batch norm, and a 1×1
    projection shortcut (with bias, as internal/model builds it) when the
    stride is 2."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.branch = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(),
            nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout),
        )
        self.shortcut = nn.Conv2d(cin, cout, 1, stride=stride) if stride != 1 else nn.Identity()

    def forward(self, x):
        return torch.relu(self.branch(x) + self.shortcut(x))


def resnet_small():
    """models/resnet-small.yaml, layer for layer."""
    return nn.Sequential(
        nn.Conv2d(1, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(),
        Block(32, 32, 1), Block(32, 64, 2), Block(64, 128, 2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(0.2),
        nn.Linear(128, 10),
    )


MODELS = {"cnn": (cnn, 421642), "resnet-small": (resnet_small, 307882)}


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--model", choices=sorted(MODELS), default="cnn")
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rank, world = int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    if args.batch_size % world:
        sys.exit(f"batch size {args.batch_size} does not split over {world} ranks")
    local = args.batch_size // world

    images = read_idx(find(args.data, "train-images-idx3-ubyte"))
    labels = read_idx(find(args.data, "train-labels-idx1-ubyte")).long()
    if images.shape[0] != labels.shape[0]:
        sys.exit(f"{args.data}: {images.shape[0]} images but {labels.shape[0]} labels")
    # Pixels to [-1, 1], as the Go trainer does.
    x = images.float().div_(127.5).sub_(1).unsqueeze(1)

    build, want = MODELS[args.model]
    model = build()
    params = sum(t.numel() for t in model.parameters())
    if params != want:
        sys.exit(f"{args.model} has {params} parameters, want {want}")
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()

    order = torch.randperm(x.shape[0])
    step_secs, step_images, correct = 0.0, 0, 0
    for step in range(args.steps):
        lo = (step * args.batch_size) % (x.shape[0] - args.batch_size)
        idx = order[lo + rank * local : lo + (rank + 1) * local]
        xb, yb = x[idx], labels[idx]
        start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        logits = model(xb)
        loss = loss_fn(logits, yb)
        loss.backward()
        opt.step()
        secs = time.perf_counter() - start
        if step > 0:
            step_secs += secs
            step_images += xb.shape[0] * world
        correct += (logits.argmax(1) == yb).sum().item()

    print(json.dumps({
        "framework": "pytorch " + torch.__version__,
        "model": args.model,
        "rank": rank,
        "ranks": world,
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "steps": args.steps,
        "images_per_second": round(step_images / step_secs, 1),
        "final_loss": round(loss.item(), 4),
        "train_accuracy": round(correct / (args.steps * local), 4),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }))


if __name__ == "__main__":
    main()
