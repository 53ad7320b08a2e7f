#!/usr/bin/env python3
"""Held-out cells of a table, and the imputation error of vae reconstruct beside mean/mode.

  randhie_holdout.py mask TABLE.csv FRACTION SEED OUT_DIR
      writes OUT_DIR/masked.csv (TABLE with FRACTION of its observed cells emptied, chosen with
      numpy's default_rng(SEED)) and OUT_DIR/heldout.csv (row, column, true text of each).
  randhie_holdout.py score OUT_DIR CHECKPOINT FILLED.csv
      reads the model's columns (type, mean, std) from CHECKPOINT's safetensors header, and
      compares on the held-out cells the VAE's fill (FILLED.csv) with mean imputation (Gaussian
      columns: the mean of the column's observed cells in masked.csv) and mode imputation
      (Bernoulli and categorical columns: the most frequent observed label). Writes
      OUT_DIR/imputation.json and prints a table.

RMSE is given in the column's units and standardised (divided by the standard deviation of its
observed cells, the model's std); error rates are the fraction of held-out cells whose label is
wrong. Per type: Gaussian RMSE (standardised) pooled over all held-out Gaussian cells, error
rates pooled over all held-out cells of the type.
"""
import csv
import json
import struct
import sys

import numpy as np

MISSING = {"", "na", "n/a", "nan", "?"}


def read(path):
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    return rows[0], rows[1:]


def mask(table, fraction, seed, out):
    header, rows = read(table)
    observed = [(r, c) for r, row in enumerate(rows) for c, v in enumerate(row) if v.strip().lower() not in MISSING]
    rng = np.random.default_rng(int(seed))
    count = int(round(float(fraction) * len(observed)))
    chosen = sorted(rng.choice(len(observed), size=count, replace=False))
    held = [observed[i] for i in chosen]
    with open(f"{out}/heldout.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["row", "column", "value"])
        for r, c in held:
            w.writerow([r, header[c], rows[r][c]])
            rows[r][c] = ""
    with open(f"{out}/masked.csv", "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(header)
        w.writerows(rows)
    print(f"held out {len(held)} of {len(observed)} observed cells ({float(fraction):.0%}, seed {seed}) "
          f"of {len(rows)} rows x {len(header)} columns")


def columns_of(checkpoint):
    with open(checkpoint, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    return json.loads(header["__metadata__"]["columns"])


def score(out, checkpoint, filled_path):
    columns = columns_of(checkpoint)
    header, masked = read(f"{out}/masked.csv")
    _, filled = read(filled_path)
    _, held = read(f"{out}/heldout.csv")
    index = {name: i for i, name in enumerate(header)}
    kinds = {c["name"]: c for c in columns}
    # Mean/mode from the observed cells left in masked.csv.
    baseline = {}
    for c in columns:
        j = index[c["name"]]
        cells = [row[j] for row in masked if row[j].strip().lower() not in MISSING]
        if c["kind"] == "gaussian":
            baseline[c["name"]] = float(np.mean([float(v) for v in cells]))
        else:
            labels, counts = np.unique(cells, return_counts=True)
            baseline[c["name"]] = labels[np.argmax(counts)]
    per_column = {}
    for r, name, truth in held:
        r = int(r)
        c = kinds[name]
        got = filled[r][index[name]]
        entry = per_column.setdefault(name, {"type": c["kind"], "cells": 0, "vae": 0.0, "baseline": 0.0})
        entry["cells"] += 1
        if c["kind"] == "gaussian":
            entry["vae"] += (float(got) - float(truth)) ** 2
            entry["baseline"] += (baseline[name] - float(truth)) ** 2
        else:
            same = (lambda a, b: a == b or (_num(a) is not None and _num(a) == _num(b)))
            entry["vae"] += 0 if same(got, truth) else 1
            entry["baseline"] += 0 if same(baseline[name], truth) else 1
    by_type = {}
    for name, e in per_column.items():
        c = kinds[name]
        t = by_type.setdefault(e["type"], {"cells": 0, "vae": 0.0, "baseline": 0.0})
        t["cells"] += e["cells"]
        if e["type"] == "gaussian":
            std = c["std"]
            t["vae"] += e["vae"] / std ** 2
            t["baseline"] += e["baseline"] / std ** 2
            e["vae_rmse"] = (e["vae"] / e["cells"]) ** 0.5
            e["mean_rmse"] = (e["baseline"] / e["cells"]) ** 0.5
            e["vae_rmse_standardised"] = e["vae_rmse"] / std
            e["mean_rmse_standardised"] = e["mean_rmse"] / std
        else:
            t["vae"] += e["vae"]
            t["baseline"] += e["baseline"]
            e["vae_error_rate"] = e["vae"] / e["cells"]
            e["mode_error_rate"] = e["baseline"] / e["cells"]
        del e["vae"], e["baseline"]
    summary = {}
    for kind, t in by_type.items():
        if kind == "gaussian":
            summary[kind] = {"cells": t["cells"], "vae_rmse_standardised": (t["vae"] / t["cells"]) ** 0.5,
                             "mean_rmse_standardised": (t["baseline"] / t["cells"]) ** 0.5}
        else:
            summary[kind] = {"cells": t["cells"], "vae_error_rate": t["vae"] / t["cells"],
                             "mode_error_rate": t["baseline"] / t["cells"]}
    with open(f"{out}/imputation.json", "w") as f:
        json.dump({"per_column": per_column, "per_type": summary}, f, indent=2, sort_keys=True)
    print(f"{'column':<10} {'type':<12} {'held out':>8}   {'VAE':>10}   {'mean/mode':>10}   measure")
    for c in columns:
        e = per_column.get(c["name"])
        if e is None:
            continue
        if e["type"] == "gaussian":
            print(f"{c['name']:<10} {e['type']:<12} {e['cells']:>8}   {e['vae_rmse']:>10.4f}   {e['mean_rmse']:>10.4f}   "
                  f"RMSE in the column's units (standardised: {e['vae_rmse_standardised']:.3f} vs {e['mean_rmse_standardised']:.3f})")
        else:
            print(f"{c['name']:<10} {e['type']:<12} {e['cells']:>8}   {e['vae_error_rate']:>10.4f}   {e['mode_error_rate']:>10.4f}   error rate")
    print("per type (pooled over the held-out cells of the type):")
    for kind, s in sorted(summary.items()):
        if kind == "gaussian":
            print(f"  {kind:<12} {s['cells']:>6} cells   RMSE (standardised)  VAE {s['vae_rmse_standardised']:.4f}   mean {s['mean_rmse_standardised']:.4f}")
        else:
            print(f"  {kind:<12} {s['cells']:>6} cells   error rate           VAE {s['vae_error_rate']:.4f}   mode {s['mode_error_rate']:.4f}")


def _num(s):
    try:
        return float(s)
    except (TypeError, ValueError):
        return None


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "mask":
        mask(*sys.argv[2:])
    elif len(sys.argv) == 5 and sys.argv[1] == "score":
        score(*sys.argv[2:])
    else:
        sys.exit(__doc__)
