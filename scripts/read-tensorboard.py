#!/usr/bin/env python3
"""Reads a TensorBoard log directory with TensorBoard's own reader and prints what it holds as JSON.

Usage: scripts/read-tensorboard.py DIR

It loads DIR with tensorboard.backend.event_processing.event_accumulator.EventAccumulator, keeping
every scalar and image (size guidance 0), and prints to standard output:

    {"scalars": {TAG: [[STEP, VALUE], ...], ...}, "images": {TAG: [[STEP, WIDTH, HEIGHT], ...], ...}}

Points are in the order TensorBoard read them (file order). VALUE is the float32 TensorBoard
stored, as the nearest JSON number (it converts back to the same float32), or the string "NaN",
"Infinity" or "-Infinity" (plain JSON has no such numbers).

Exits 1 with a message on standard error if the tensorboard package is missing (install it with
scripts/install-deps.sh --test), or 2 if DIR has no event file.
"""
import json
import math
import os
import sys


def number(value):
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def main():
    if len(sys.argv) != 2:
        print("usage: read-tensorboard.py DIR", file=sys.stderr)
        return 2
    directory = sys.argv[1]
    try:
        from tensorboard.backend.event_processing import event_accumulator
    except ImportError as error:
        print(
            f"cannot import tensorboard ({error}): run scripts/install-deps.sh --test "
            f"(it installs tensorboard with pip for {sys.executable})",
            file=sys.stderr,
        )
        return 1
    if not os.path.isdir(directory):
        print(f"{directory} is not a directory: give the TensorBoard log directory", file=sys.stderr)
        return 2
    if not any("tfevents" in name for name in os.listdir(directory)):
        print(f"no event file (a name containing 'tfevents') in {directory}", file=sys.stderr)
        return 2

    accumulator = event_accumulator.EventAccumulator(
        directory, size_guidance={event_accumulator.SCALARS: 0, event_accumulator.IMAGES: 0}
    )
    accumulator.Reload()
    tags = accumulator.Tags()
    result = {
        "scalars": {
            tag: [[event.step, number(event.value)] for event in accumulator.Scalars(tag)]
            for tag in tags[event_accumulator.SCALARS]
        },
        "images": {
            tag: [[event.step, event.width, event.height] for event in accumulator.Images(tag)]
            for tag in tags[event_accumulator.IMAGES]
        },
    }
    json.dump(result, sys.stdout, allow_nan=False, sort_keys=True)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
