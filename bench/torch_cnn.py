#!/usr/bin/python3
"""PyTorch peer of the Go trainer for make bench-train.

Trains the prototype's Fashion-MNIST CNN (421,642 parameters) for a fixed
number of steps and prints one JSON line with its training throughput,
measured like the Go trainer measures it: the time of every step but the
first (which warms up), over the images those steps saw.

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


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=1)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    images = read_idx(find(args.data, "train-images-idx3-ubyte"))
    labels = read_idx(find(args.data, "train-labels-idx1-ubyte")).long()
    if images.shape[0] != labels.shape[0]:
        sys.exit(f"{args.data}: {images.shape[0]} images but {labels.shape[0]} labels")
    # Pixels to [-1, 1], as the Go trainer does.
    x = images.float().div_(127.5).sub_(1).unsqueeze(1)

    model = cnn()
    params = sum(t.numel() for t in model.parameters())
    if params != 421642:
        sys.exit(f"model has {params} parameters, want 421642")
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = nn.CrossEntropyLoss()
    model.train()

    order = torch.randperm(x.shape[0])
    step_secs, step_images, correct = 0.0, 0, 0
    for step in range(args.steps):
        lo = (step * args.batch_size) % (x.shape[0] - args.batch_size)
        idx = order[lo : lo + args.batch_size]
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
            step_images += xb.shape[0]
        correct += (logits.argmax(1) == yb).sum().item()

    print(json.dumps({
        "framework": "pytorch " + torch.__version__,
        "threads": torch.get_num_threads(),
        "batch_size": args.batch_size,
        "steps": args.steps,
        "images_per_second": round(step_images / step_secs, 1),
        "final_loss": round(loss.item(), 4),
        "train_accuracy": round(correct / (args.steps * args.batch_size), 4),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
    }))


if __name__ == "__main__":
    main()
