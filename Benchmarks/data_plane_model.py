#!/usr/bin/env python3
"""Three data planes side by side, with the parameters that Benchmarks/lab-scaling.sh measured on
this machine (its model.json): the step-time model of docs/SCALING.md extended to designs that
reduce gradients among the workers. docs/SCALING.md ("Choosing the next data plane") explains it.

  star   today: the coordinator sends every worker the parameters and the rows, receives every
         gradient, sums them and steps the optimizer
           T = T1 + N t_sum + D(N (M + b r)) + D(N M) + 2 L
  ring+coordinator optimizer: the workers reduce-scatter their gradients around a ring (N - 1
         rounds of M/N each way), send their reduced shard to the coordinator (M in all), which
         steps the optimizer and sends each worker its shard of the new parameters (M in all);
         the workers all-gather the shards around the ring (N - 1 rounds)
           T = T1 + t_sum + 2 (N - 1) (D(M / N) + L) + D(M) + D(M + N b r) + 2 L
  ring+sharded update: as above, but each worker steps the optimizer for its own shard (the
         update is elementwise, so every shard's result is what a full update would give) and
         all-gathers parameters at once; the coordinator receives the reduced shards off the
         critical path and applies the same update to its own copy (the checkpoint's source of
         truth), and sends only the rows (and sample ids) at the start of a step
           T = max(T1 + t_sum + 2 (N - 1) (D(M / N) + L) + D(N b r) + L,  D(M) + D(N b r))

  D(x) = x / min(R, P): one direction of a link (real links: no bucket). T1, t_sum, R's payload
  efficiency, P and L as measured by lab-scaling.sh (model.json); L = 0.05 ms per hop on a real
  LAN. The all-reduce bound per worker link is 2 (N - 1) / N M each way: the ideal communication
  time of a ring is 2 (N - 1) / N M / R.

Usage: data_plane_model.py LAB_SCALING_DIR OUT   (writes OUT/design.json, OUT/design.csv,
       OUT/design.md and prints one line)
"""
import csv
import json
import os
import sys

REAL_LAN_LATENCY_S = 0.05e-3
ROW_BYTES = 784


def designs(n, b, t1, t_sum, m, rate, p, latency):
    d = lambda x: x / min(rate, p)
    star = t1 + n * t_sum + d(n * (m + b * ROW_BYTES)) + d(n * m) + 2 * latency
    ring_rounds = 2 * (n - 1) * (d(m / n) + latency)
    coordinator_optimizer = t1 + t_sum + ring_rounds + d(m) + d(m + n * b * ROW_BYTES) + 2 * latency
    sharded = max(t1 + t_sum + ring_rounds + d(n * b * ROW_BYTES) + latency, d(m) + d(n * b * ROW_BYTES))
    ideal_communication = 2 * (n - 1) / n * m / rate
    return {"star": star, "ring_coordinator_optimizer": coordinator_optimizer, "ring_sharded_update": sharded,
            "ideal_communication_s": ideal_communication,
            "sharded_communication_s": sharded - t1 - t_sum}


def main():
    lab, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    model = json.load(open(os.path.join(lab, "model.json")))
    m = model["parameter_bytes"]
    t1 = model["one_process_step_ms"]["hidden 400, batch 128"] / 1000
    t_sum = model["sum_per_worker_ms"] / 1000
    p = model["transport_mbit_per_s_P"] * 1e6 / 8
    efficiency = min(model["payload_efficiency"].values())
    one = 128 / t1
    rows = []
    for gbit in (1, 10, 25):
        rate = gbit * 1e9 * efficiency / 8
        for n in (1, 2, 4, 8, 16, 32, 64):
            for transport, speed in (("this machine's transport (P)", p), ("link only", float("inf"))):
                t = designs(n, 128, t1, t_sum, m, rate, speed, REAL_LAN_LATENCY_S)
                rows.append({
                    "link_gbit_per_s": gbit, "workers": n, "transport": transport,
                    **{f"{k}_step_ms": round(v * 1000, 2) for k, v in t.items() if not k.endswith("_s")},
                    **{f"{k}_samples_per_s": round(n * 128 / v) for k, v in t.items() if not k.endswith("_s")},
                    "sharded_over_star": round(t["star"] / t["ring_sharded_update"], 2),
                    "coordinator_optimizer_over_star": round(t["star"] / t["ring_coordinator_optimizer"], 2),
                    "sharded_communication_over_ideal": (round(t["sharded_communication_s"] / t["ideal_communication_s"], 2)
                                                         if n > 1 else None),
                    "one_process_samples_per_s": round(one),
                    "star_coordinator_link_bytes": n * (2 * m + 128 * ROW_BYTES),
                    "ring_coordinator_link_bytes_coordinator_optimizer": 2 * m + n * 128 * ROW_BYTES,
                    "ring_coordinator_link_bytes_sharded": m + n * 128 * ROW_BYTES,
                    "ring_worker_link_bytes_each_way": round((2 * (n - 1) / n + 1 / n) * m) + 128 * ROW_BYTES,
                })
    with open(os.path.join(out, "design.csv"), "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(os.path.join(out, "design.md"), "w") as f:
        for gbit in (1, 10, 25):
            f.write(f"\nMNIST 784-400-20, batch 128 per worker, {gbit} Gbit/s, this machine's transport speed P: samples/s "
                    f"(speed-up over the star)\n\n| N | star | ring + coordinator optimizer | ring + sharded update | "
                    f"sharded: communication / all-reduce ideal |\n|---|---|---|---|---|\n")
            for row in rows:
                if row["link_gbit_per_s"] != gbit or row["transport"] != "this machine's transport (P)":
                    continue
                ideal = row["sharded_communication_over_ideal"]
                f.write(f"| {row['workers']} | {row['star_samples_per_s']} | {row['ring_coordinator_optimizer_samples_per_s']} "
                        f"({row['coordinator_optimizer_over_star']:.1f}x) | {row['ring_sharded_update_samples_per_s']} "
                        f"({row['sharded_over_star']:.1f}x) | {'' if ideal is None else f'{ideal:.2f}'} |\n")
    json.dump({"parameters_from": lab, "one_process_samples_per_s": round(one), "rows": rows},
              open(os.path.join(out, "design.json"), "w"), indent=1)
    eight = next(r for r in rows if r["link_gbit_per_s"] == 1 and r["workers"] == 8 and r["transport"].startswith("this"))
    print(f"data planes at 1 Gbit/s, N = 8, batch 128: star {eight['star_samples_per_s']} samples/s, ring + coordinator "
          f"optimizer {eight['ring_coordinator_optimizer_samples_per_s']} ({eight['coordinator_optimizer_over_star']}x), "
          f"ring + sharded update {eight['ring_sharded_update_samples_per_s']} ({eight['sharded_over_star']}x; communication "
          f"{eight['sharded_communication_over_ideal']}x the all-reduce ideal)")


if __name__ == "__main__":
    main()
