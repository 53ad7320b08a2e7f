#!/usr/bin/env python3
"""The step-time model of today's design (a coordinator that sends every worker the whole
parameter vector and receives every whole gradient), its parameters measured on this machine,
its predictions, and the lab's measurements beside them. docs/SCALING.md explains it.

  T(N) = T1(b) + N t_sum + D(N (M + b r)) + D(N M) + 2 L             (the coordinator's link)
  D(x)  = min(x, B) / P + max(x - B, 0) / min(R, P)                     (one direction of a link)

  T1(b)  one process's step at batch b: forward, backward and the optimizer (measured: `vae train`)
  t_sum  the coordinator adding one worker's gradient into the sum (measured: lab, N = 1)
  M      parameter bytes (2,611,296 for the 784-400-20 MNIST model); the coordinator sends M to
         each worker and receives M from each: 2 N M through its link per step
  r      bytes of one sample's row (784 for MNIST: rows travel with the work)
  R      the link's payload rate for one TCP flow (measured: a long transfer in the lab)
  P      how fast today's transport moves bytes between two processes when no link limits it
         (ZeroMQ's I/O thread, the kernel's TCP and copies, on CPUs shared with everything else):
         fitted to the lab's unshaped run with N = 1, P = (2 M + b r) / (T - T1 - t_sum - 2 L)
  B      the lab's tbf bucket: each direction of the link idles during part of every step, so
         its first B bytes pass at P instead of R; a lab artefact, 0 for real links
  L      one-way latency per hop (measured: half a TCP round trip in the lab; 0.05 ms assumed for
         a real LAN)

A worker's link carries 2 M + b r per step whatever N is; the coordinator's carries N times that,
and the phases (parameters out, compute, gradients in) follow each other, so their times add.

Usage: scaling_model.py OUT   (reads OUT/points.jsonl, OUT/calibration.jsonl, OUT/single.jsonl;
       writes OUT/model.json, OUT/predictions.csv, OUT/lab-vs-model.csv, OUT/plot.csv and prints
       one summary line)
"""
import csv
import json
import os
import statistics
import sys

PARAMETER_BYTES = 2_611_296
ROW_BYTES = 784
REAL_LAN_LATENCY_S = 0.05e-3


def rate_bits(rate):
    for suffix, scale in (("gbit", 1e9), ("mbit", 1e6)):
        if rate.endswith(suffix):
            return float(rate[: -len(suffix)]) * scale
    raise ValueError(rate)


def direction(x, r, burst, p):
    """Seconds for x bytes through one direction of a link of payload rate r (bytes/s) that
    starts with a full bucket of `burst` bytes, sent by a transport that moves p bytes/s."""
    return min(x, burst) / p + max(x - burst, 0) / min(r, p)


def step_time(n, b, t1, t_sum, m, r, burst=0.0, p=float("inf"), latency=0.0):
    out = n * (m + b * ROW_BYTES)
    back = n * m
    return t1 + n * t_sum + direction(out, r, burst, p) + direction(back, r, burst, p) + 2 * latency


def main():
    out = sys.argv[1]
    points = [json.loads(l) for l in open(os.path.join(out, "points.jsonl"))]
    calibration = {c["rate"]: c for c in map(json.loads, open(os.path.join(out, "calibration.jsonl")))}
    unshaped = calibration.pop("none")
    single = {(s["hidden"], s["batch"]): s for s in map(json.loads, open(os.path.join(out, "single.jsonl")))}
    bursts = {c["rate"]: c["burst_bytes"] for c in calibration.values()}
    bursts["none"] = 0

    # Parameters.
    t1 = {key: s["step_s"] for key, s in single.items()}
    efficiency = {rate: c["median_payload_mbit_per_s"] * 1e6 / rate_bits(rate) for rate, c in calibration.items()}
    latency = unshaped["rtt_ms"] / 2 / 1000
    fit = next(p for p in points if p["rate"] == "none" and p["workers"] == 1)
    t_sum = fit["step_time_ms"]["sum_ms"] / 1000
    b_fit = fit["batch_per_worker"]
    P = (2 * PARAMETER_BYTES + b_fit * ROW_BYTES) / (fit["step_ms"] / 1000 - t1[(400, b_fit)] - t_sum - 2 * latency)
    payload_rate = lambda rate: float("inf") if rate == "none" else rate_bits(rate) * efficiency[rate] / 8
    model = {
        "parameter_bytes": PARAMETER_BYTES, "row_bytes": ROW_BYTES,
        "sum_per_worker_ms": t_sum * 1000,
        "transport_mbit_per_s_P": P * 8 / 1e6,
        "payload_efficiency": efficiency,
        "lab_one_way_latency_ms": latency * 1000,
        "lab_burst_bytes": bursts,
        "lab_unshaped_one_python_flow_mbit_per_s": unshaped["median_payload_mbit_per_s"],
        "one_process_step_ms": {f"hidden {h}, batch {b}": v * 1000 for (h, b), v in t1.items()},
        "one_process_samples_per_s": {f"hidden {h}, batch {b}": b / v for (h, b), v in t1.items()},
    }

    # The lab's points beside the model with the lab's parameters.
    rows = []
    for p in points:
        rate, n, b = p["rate"], p["workers"], p["batch_per_worker"]
        predicted = step_time(n, b, t1[(400, b)], t_sum, PARAMETER_BYTES, payload_rate(rate), bursts[rate], P, latency)
        coordinator_bytes = p["coordinator_link_bytes_per_step"]["sent"] + p["coordinator_link_bytes_per_step"]["received"]
        rows.append({
            "rate": rate, "workers": n, "batch_per_worker": b, "fitted": p is fit,
            "measured_step_ms": round(p["step_ms"], 2), "model_step_ms": round(predicted * 1000, 2),
            "measured_over_model": round(p["step_ms"] / 1000 / predicted, 3),
            "measured_steps_per_s": round(p["steps_per_s"], 3), "model_steps_per_s": round(1 / predicted, 3),
            "measured_samples_per_s": round(p["samples_per_s"], 1), "model_samples_per_s": round(n * b / predicted, 1),
            "project_bytes_per_step": round(p["bytes_per_step_counter"]),
            "model_coordinator_bytes_per_step": n * (2 * PARAMETER_BYTES + b * ROW_BYTES),
            "coordinator_link_bytes_per_step": round(coordinator_bytes),
            "worker_link_bytes_per_step": round(p["worker_link_bytes_per_step"]["sent"] + p["worker_link_bytes_per_step"]["received"]),
            "measured_communication_ms": round(p["step_time_ms"]["communication_ms"], 2),
            "measured_compute_ms": round(p["step_time_ms"]["compute_ms"], 2),
        })
    with open(os.path.join(out, "lab-vs-model.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)

    # The curve for the README: steps/s against N, measured and modelled, one colour per rate.
    label = lambda rate: "unshaped" if rate == "none" else rate.replace("gbit", " Gbit/s").replace("mbit", " Mbit/s")
    with open(os.path.join(out, "plot.csv"), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["link", "workers", "steps_per_s"])
        # Shaped links first, slowest first; unshaped last.
        rates = sorted(dict.fromkeys(p["rate"] for p in points), key=lambda rate: payload_rate(rate))
        for rate in rates:
            measured = sorted((p for p in points if p["rate"] == rate), key=lambda p: p["workers"])
            for p in measured:
                w.writerow([label(rate), p["workers"], f"{p['steps_per_s']:.4f}"])
            b = measured[0]["batch_per_worker"]
            for n in range(1, max(p["workers"] for p in measured) + 1):
                t = step_time(n, b, t1[(400, b)], t_sum, PARAMETER_BYTES, payload_rate(rate), bursts[rate], P, latency)
                w.writerow([f"{label(rate)} (model)", n, f"{1 / t:.4f}"])

    # Predictions for real links (no bucket, a LAN's latency), batch 128 per worker: with this
    # machine's transport speed P, and with the link alone (a transport that keeps up with it).
    worst = min(efficiency.values())
    predictions = []
    for name, hidden, m in (("mnist 784-400-20", 400, PARAMETER_BYTES), ("10x: 784-4000-20", 4000, None)):
        if (hidden, 128) not in t1:
            continue
        m = m or single[(hidden, 128)]["parameter_bytes"]
        sum_scale = m / PARAMETER_BYTES
        for gbit in (1, 10, 25):
            r = gbit * 1e9 * worst / 8
            for n in (1, 2, 4, 8, 16, 32, 64):
                t = step_time(n, 128, t1[(hidden, 128)], t_sum * sum_scale, m, r, p=P, latency=REAL_LAN_LATENCY_S)
                t_link = step_time(n, 128, t1[(hidden, 128)], t_sum * sum_scale, m, r, latency=REAL_LAN_LATENCY_S)
                one = 128 / t1[(hidden, 128)]
                predictions.append({
                    "model": name, "parameter_bytes": m, "link_gbit_per_s": gbit, "workers": n, "batch_per_worker": 128,
                    "step_ms": round(t * 1000, 2), "samples_per_s": round(n * 128 / t),
                    "one_process_samples_per_s": round(one),
                    "speedup_over_one_process": round(n * 128 / t / one, 3),
                    "link_only_samples_per_s": round(n * 128 / t_link),
                    "link_only_speedup": round(n * 128 / t_link / one, 3),
                    "coordinator_link_bytes_per_step": n * (2 * m + 128 * ROW_BYTES),
                    "worker_link_bytes_per_step": 2 * m + 128 * ROW_BYTES,
                })
    with open(os.path.join(out, "predictions.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(predictions[0]))
        w.writeheader()
        w.writerows(predictions)
    # The same tables in Markdown, for docs/SCALING.md.
    with open(os.path.join(out, "tables.md"), "w") as f:
        f.write("| link | N | step (ms) measured | model | measured/model | communication: waiting beyond compute (ms) | "
                "workers' compute (ms) | samples/s | coordinator link MB/step (interface) | project counter MB/step | "
                "worker link MB/step |\n|---|---|---|---|---|---|---|---|---|---|---|\n")
        for row in rows:
            f.write(f"| {label(row['rate'])} | {row['workers']} | {row['measured_step_ms']:.1f} | {row['model_step_ms']:.1f} | "
                    f"{row['measured_over_model']:.2f}{' (fit)' if row['fitted'] else ''} | {row['measured_communication_ms']:.1f} | {row['measured_compute_ms']:.1f} | "
                    f"{row['measured_samples_per_s']:.0f} | "
                    f"{row['coordinator_link_bytes_per_step'] / 1e6:.2f} | {row['project_bytes_per_step'] / 1e6:.2f} | "
                    f"{row['worker_link_bytes_per_step'] / 1e6:.2f} |\n")
        for name in dict.fromkeys(p["model"] for p in predictions):
            f.write(f"\n{name}, batch 128 per worker: samples/s (speed-up over one process), with this machine's "
                    f"transport speed P / with the link alone\n\n| N |"
                    + "".join(f" {g} Gbit/s |" for g in (1, 10, 25)) + "\n|---|---|---|---|\n")
            for n in (1, 2, 4, 8, 16, 32, 64):
                cells = [p for p in predictions if p["model"] == name and p["workers"] == n]
                f.write(f"| {n} |" + "".join(f" {p['samples_per_s']} ({p['speedup_over_one_process']:.2f}x) / "
                                                 f"{p['link_only_samples_per_s']} ({p['link_only_speedup']:.2f}x) |" for p in cells) + "\n")
    ratios = [row["measured_over_model"] for row in rows if not row["fitted"]]
    model["lab_measured_over_model"] = {"min": min(ratios), "max": max(ratios)}
    ceiling = [p for p in predictions if p["model"].startswith("mnist") and p["link_gbit_per_s"] == 1 and p["workers"] == 64][0]
    model["mnist_1gbit_64_workers_samples_per_s"] = ceiling["samples_per_s"]
    json.dump(model, open(os.path.join(out, "model.json"), "w"), indent=1)
    biggest = max(rows, key=lambda row: (row["rate"] == "1gbit", row["workers"]))
    model["lab_points_within_25_percent"] = all(0.75 <= x <= 1.25 for x in ratios)
    print(f"lab scaling: today's design at {biggest['rate']} moves {biggest['project_bytes_per_step'] / 1e6:.1f} MB per step "
          f"through the coordinator with N={biggest['workers']} ({biggest['measured_steps_per_s']:.2f} steps/s); "
          f"lab/model step time {min(ratios):.2f}-{max(ratios):.2f} (transport P = {P * 8 / 1e9:.1f} Gbit/s); model: MNIST at 1 Gbit/s tops out near "
          f"{ceiling['samples_per_s']} samples/s with 64 workers of batch 128 "
          f"(one process: {ceiling['one_process_samples_per_s']} samples/s)")


if __name__ == "__main__":
    main()
