#!/usr/bin/env python3
"""The star and ring data planes side by side in the multi-host lab (Deploy/lab/lab.sh): for each
number of workers N, a coordinator on lab host 0 and one worker on each of hosts 1..N train the
MNIST model (784-400-20, M = 2,611,296 bytes of parameters) with `vae-coordinator start
--data-plane PLANE`, the planes alternating in order from one N to the next.

Per run it records:
  - samples/s and the step-time breakdown, from the coordinator's summary.json (the whole run);
  - the bytes each host's link carried: eth0's tx_bytes/rx_bytes inside each host's namespace
    (`ip netns exec HOST cat /sys/class/net/eth0/statistics/...`), read before the coordinator
    starts and after every process of the run has ended, divided by the steps taken. These are
    frame bytes (TCP/IP and Ethernet headers, acknowledgements, the joins, the first parameters
    and the heartbeats included), over the whole run;
  - pass/fail against the target: in each direction, no link carries more than
    1.1 x 2 x M bytes per step plus the sample rows (summary.json's row_bytes_per_step), the
    bound of Tests/IntegrationTests/RingTrafficLabTests.swift;
  - the communication time per step, step time minus the workers' compute (summary.json's
    step_time total_ms - compute_ms), against the all-reduce ideal 2 (N - 1) / N M / R, R being
    the link's payload rate measured by `lab_scaling.py --calibrate` (calibration.jsonl), or the
    nominal 125e6 B/s at 1 Gbit/s when there is no calibration.

Runs inside an existing lab (LAB in the environment, at least max(N) + 1 hosts): the caller brings
it up and down (Benchmarks/lab-data-plane.sh).

Usage: lab_data_plane.py run OUT BIN DATA --workers 2,4,8 --planes star,ring
           [--batch-per-worker 128] [--seconds 20] [--no-plane-flag]
         (appends one JSON line per run to OUT/points.jsonl; runs in OUT/runs/nN-PLANE/)
       lab_data_plane.py report OUT [--design CSV] [--note TEXT]
         (writes OUT/summary.md, OUT/plot.csv and OUT/summary.txt from OUT/points.jsonl)
"""
import argparse
import csv
import json
import os
import signal
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
LAB_SH = os.path.join(HERE, "..", "Deploy", "lab", "lab.sh")
LAB = os.environ.get("LAB", "vaelab")
SUBNET = os.environ.get("LAB_SUBNET", "10.213.0")
PORT = 5555
M = 2_611_296            # bytes of parameters of 784-400-20 (652,824 float32)
ROW = 784                # bytes of one MNIST row
TARGET_FACTOR = 1.1 * 2  # a link may carry 1.1 x 2 M per step each way, plus its rows
NOMINAL_RATE = 125e6     # 1 Gbit/s in bytes per second
T1 = 0.0094              # one process's step at batch 128, 1 thread (lab-scaling-20261129T085019Z)
CORES = os.cpu_count() or 2


def host(i):
    return f"{LAB}{i}"


def address(i):
    return f"{SUBNET}.{i + 1}"


def on_host(i, args, **kw):
    """Starts args on lab host i (its network and hostname), in a session of its own."""
    return subprocess.Popen(["bash", LAB_SH, "exec", host(i)] + args, start_new_session=True, **kw)


def stop(process):
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def link_counters(i):
    """(tx_bytes, rx_bytes) of host i's eth0, read inside its namespace."""
    out = subprocess.run(["ip", "netns", "exec", host(i), "cat", "/sys/class/net/eth0/statistics/tx_bytes",
                          "/sys/class/net/eth0/statistics/rx_bytes"],
                         check=True, capture_output=True, text=True, timeout=30).stdout.split()
    return int(out[0]), int(out[1])


def payload_rate(out):
    """The link's payload rate (bytes/s) at 1 Gbit/s from OUT/calibration.jsonl, and where it came from."""
    path = os.path.join(out, "calibration.jsonl")
    if os.path.exists(path):
        for line in open(path):
            row = json.loads(line)
            if row.get("rate") == "1gbit":
                return row["median_payload_mbit_per_s"] * 1e6 / 8, "measured (calibration.jsonl)"
    return NOMINAL_RATE, "nominal 125e6 B/s (no calibration)"


def guess_step_s(plane, n, b, rate):
    """A first guess of a step's time, to size a run: the workers' compute on this machine's cores
    plus what the busiest link carries."""
    compute = T1 * max(1.0, n / CORES)
    if plane == "star":
        return compute + (2 * n * M + n * b * ROW) / rate
    return compute + 2 * (n - 1) / n * M / rate + (M + n * b * ROW) / rate


def worker_flags(bin_dir):
    """--insecure when this vae-worker has it: a ring worker binds its ring endpoint on its lab
    address, which it refuses without CURVE unless told the network is trusted (the lab is closed)."""
    text = subprocess.run([os.path.join(bin_dir, "vae-worker"), "join", "--help"],
                          capture_output=True, text=True, timeout=60).stdout
    return ["--insecure"] if "--insecure" in text else []


# Variants of the ring, for measuring what one of its features buys: the coordinator's extra flags
# and the name the table and the picture give them.
RING_VARIANTS = {
    "ring-sync": (["--no-work-ahead"], "ring without work ahead"),
    "ring-pieces": (["--ring-pieces", "auto"], "ring with chunks in pieces"),
    # The coordinator's and the workers' keys come from curve_keys(), per run.
    "ring-curve": ([], "ring with CURVE"),
}
PLANE_ORDER = ("star", "ring-sync", "ring-pieces", "ring-curve", "ring")


def curve_keys(bin_dir, directory, n):
    """CURVE keys for a coordinator and n workers (`vae keygen`) in directory: the coordinator's
    flags, and each worker's (instead of --insecure: every link encrypted and authenticated, the
    ring's too, as docs/SECURITY.md describes)."""
    vae = os.path.join(bin_dir, "vae")
    subprocess.run([vae, "keygen", "coordinator", "--dir", directory], check=True, capture_output=True, timeout=60)
    workers = os.path.join(directory, "workers")
    for i in range(1, n + 1):
        subprocess.run([vae, "keygen", f"w{i}", "--dir", workers], check=True, capture_output=True, timeout=60)
    coordinator = ["--curve-secret-key", os.path.join(directory, "coordinator.key"), "--authorized-keys", workers + "/"]
    worker = {i: ["--curve-secret-key", os.path.join(workers, f"w{i}.key"),
                  "--coordinator-key", os.path.join(directory, "coordinator.pub")] for i in range(1, n + 1)}
    return coordinator, worker


def run_point(out, bin_dir, data, plane, n, b, steps, plane_flag, timeout, extra_worker_args=()):
    run = os.path.join(out, "runs", f"n{n}-{plane}")
    os.makedirs(run, exist_ok=True)
    coordinator_args = [
        os.path.join(bin_dir, "vae-coordinator"), "start",
        "--bind", f"tcp://{address(0)}:{PORT}", "--insecure", "--workers", str(n),
        "--data", data, "--hidden", "400", "--latent", "20",
        "--batch", str(b * n), "--max-steps", str(steps), "--epochs", "1000", "--seed", "1",
        # A step takes well under a second here; a short deadline bounds what a broken ring costs
        # before the coordinator gives the steps to the star (it waits one deadline).
        "--no-tensorboard", "--heartbeat-timeout", "30", "--step-deadline", "30", "--join-timeout", "120",
        "--out", os.path.join(run, "out"),
    ]
    worker_keys = {}
    keys = None
    if plane == "ring-curve":
        # Out of the stored results: the secret keys go with the run.
        keys = tempfile.mkdtemp(prefix="lab-curve-")
        coordinator_keys, worker_keys = curve_keys(bin_dir, keys, n)
        at = coordinator_args.index("--insecure")
        coordinator_args[at:at + 1] = coordinator_keys
    if plane_flag:
        if plane in RING_VARIANTS:
            coordinator_args += ["--data-plane", "ring"] + RING_VARIANTS[plane][0]
        else:
            coordinator_args += ["--data-plane", plane]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    hosts = list(range(n + 1))
    before = {i: link_counters(i) for i in hosts}
    started = time.monotonic()
    workers = []
    with open(os.path.join(run, "coordinator.out"), "w") as co, open(os.path.join(run, "coordinator.err"), "w") as ce:
        coordinator = on_host(0, coordinator_args, stdout=co, stderr=ce, env=env)
    try:
        # The workers join once the coordinator listens (it reads the data set first).
        for _ in range(600):
            listening = subprocess.run(["ip", "netns", "exec", host(0), "ss", "-Hltn", f"sport = :{PORT}"],
                                       capture_output=True, text=True, timeout=30).stdout.strip()
            if listening or coordinator.poll() is not None:
                break
            time.sleep(0.1)
        for i in range(1, n + 1):
            with open(os.path.join(run, f"worker{i}.out"), "w") as wo, open(os.path.join(run, f"worker{i}.err"), "w") as we:
                workers.append(on_host(i, [os.path.join(bin_dir, "vae-worker"), "join",
                                           "--coordinator", f"tcp://{host(0)}:{PORT}", "--threads", "1",
                                           *(worker_keys[i] if worker_keys else extra_worker_args)],
                                       stdout=wo, stderr=we, env=env))
        try:
            coordinator.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{plane} N={n}: the run did not finish in {timeout:.0f} s; see {run}")
        if coordinator.returncode != 0:
            raise RuntimeError(f"{plane} N={n}: the coordinator exited {coordinator.returncode}; see {run}/coordinator.err")
    finally:
        stop(coordinator)
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stop(w)
        if keys:
            shutil.rmtree(keys, ignore_errors=True)
    wall = time.monotonic() - started
    after = {i: link_counters(i) for i in hosts}
    worker_status = [w.returncode for w in workers]
    summary = json.load(open(os.path.join(run, "out", "summary.json")))
    done = summary["steps"]
    per_step = {i: {"sent": (after[i][0] - before[i][0]) / done, "received": (after[i][1] - before[i][1]) / done}
                for i in hosts}
    rows = summary.get("row_bytes_per_step") or 0.0
    t = summary.get("step_time") or {}
    rate, rate_source = payload_rate(out)
    ideal_ms = 2 * (n - 1) / n * M / rate * 1000
    comm_ms = t["total_ms"] - t["compute_ms"] if "total_ms" in t and "compute_ms" in t else None
    coordinator_link = per_step[0]
    worker_links = [per_step[i] for i in range(1, n + 1)]
    max_worker = {"sent": max(w["sent"] for w in worker_links), "received": max(w["received"] for w in worker_links)}
    target = TARGET_FACTOR * M + rows
    passes = max(coordinator_link.values()) <= target and max(max_worker.values()) <= target
    return {
        "plane": plane, "workers": n, "plane_flag": plane_flag, "batch_per_worker": b, "global_batch": b * n,
        "max_steps": steps, "steps": done, "wall_s": wall, "train_seconds": summary.get("train_seconds"),
        "samples_per_s": summary["samples_per_s"], "step_time_ms": t,
        "data_plane_summary": summary.get("data_plane"), "ring_steps": summary.get("ring_steps"),
        "bytes_per_step_summary": summary.get("bytes_per_step"), "row_bytes_per_step": summary.get("row_bytes_per_step"),
        "link_bytes_per_step": {host(i): per_step[i] for i in hosts},
        "coordinator_link_bytes_per_step": coordinator_link, "max_worker_link_bytes_per_step": max_worker,
        "target_link_bytes_per_step": target,
        "pass": passes,
        "payload_rate_bytes_per_s": rate, "payload_rate_source": rate_source,
        "ideal_communication_ms": ideal_ms, "communication_ms": comm_ms,
        "communication_over_ideal": comm_ms / ideal_ms if comm_ms is not None and ideal_ms > 0 else None,
        "worker_exit_status": worker_status,
        "run": os.path.relpath(run, out),
    }


def mb(x):
    return f"{x / 1e6:.2f}"


def run_all(a):
    planes = [p for p in a.planes.split(",") if p]
    ns = [int(x) for x in a.workers.split(",") if x]
    rate, rate_source = payload_rate(a.out)
    extra = worker_flags(a.bin)
    # Measured/guessed step time of the last run of each plane: sizes the next run of that plane.
    correction = {}
    started = time.monotonic()
    failed = 0
    with open(os.path.join(a.out, "points.jsonl"), "a") as points, \
            open(os.path.join(a.out, "failures.jsonl"), "a") as failures:
        for k, n in enumerate(ns):
            order = planes if k % 2 == 0 else planes[::-1]
            for plane in order:
                remaining = a.budget - (time.monotonic() - started)
                if remaining < 30:
                    why = f"skipped: the measuring budget of {a.budget:.0f} s was spent"
                    print(f"{plane} N={n}: {why}", flush=True)
                    failures.write(json.dumps({"plane": plane, "workers": n, "why": why}) + "\n")
                    failed += 1
                    continue
                guess = guess_step_s(plane, n, a.batch_per_worker, rate) * correction.get(plane, 1.0)
                steps = int(min(3000, max(20, a.seconds / guess)))
                timeout = min(max(180.0, 10 * a.seconds), remaining + 60)
                print(f"{plane} N={n}: {steps} steps (about {guess * 1000:.0f} ms each)", file=sys.stderr, flush=True)
                try:
                    point = run_point(a.out, a.bin, a.data, plane, n, a.batch_per_worker, steps, not a.no_plane_flag, timeout, extra)
                except (RuntimeError, OSError, subprocess.SubprocessError, KeyError, ValueError) as e:
                    # One plane failing (the ring, while it is new) leaves the other's points.
                    print(f"{plane} N={n}: FAILED: {e}", flush=True)
                    failures.write(json.dumps({"plane": plane, "workers": n, "why": str(e)}) + "\n")
                    failures.flush()
                    failed += 1
                    continue
                measured = a.batch_per_worker * n / point["samples_per_s"]
                # Bounded: one slow run (a ring that fell back to the star after a deadline) must
                # not shrink the next runs of its plane to nothing.
                correction[plane] = min(4.0, max(0.25, measured / guess_step_s(plane, n, a.batch_per_worker, rate)))
                points.write(json.dumps(point) + "\n")
                points.flush()
                c, w = point["coordinator_link_bytes_per_step"], point["max_worker_link_bytes_per_step"]
                ratio = point["communication_over_ideal"]
                print(f"{plane} N={n}: {point['samples_per_s']:.0f} samples/s, {point['steps']} steps in "
                      f"{point['wall_s']:.1f} s; per step: coordinator link {mb(c['sent'])} MB sent + {mb(c['received'])} MB "
                      f"received, busiest worker link {mb(w['sent'])} + {mb(w['received'])} MB (target {mb(point['target_link_bytes_per_step'])} "
                      f"each way): "
                      f"{'PASS' if point['pass'] else 'FAIL'}; communication "
                      f"{'n/a' if ratio is None else f'{ratio:.2f}'} x the all-reduce ideal "
                      f"({point['ideal_communication_ms']:.1f} ms)"
                      + (f"; {point['ring_steps']} of {point['steps']} steps went around the ring"
                         if point["ring_steps"] is not None else ""), flush=True)
    if os.path.getsize(os.path.join(a.out, "failures.jsonl")) == 0:
        os.remove(os.path.join(a.out, "failures.jsonl"))
    if failed:
        sys.exit(f"lab_data_plane: {failed} run(s) failed or skipped (failures.jsonl)")


def report(a):
    points = [json.loads(l) for l in open(os.path.join(a.out, "points.jsonl")) if l.strip()]
    path = os.path.join(a.out, "failures.jsonl")
    failures = [json.loads(l) for l in open(path) if l.strip()] if os.path.exists(path) else []
    by = {(p["plane"], p["workers"]): p for p in points}
    ns = sorted({p["workers"] for p in points})
    planes = [pl for pl in PLANE_ORDER if any(p["plane"] == pl for p in points)]
    rate_source = points[0]["payload_rate_source"] if points else ""
    rate = points[0]["payload_rate_bytes_per_s"] if points else NOMINAL_RATE
    lines = [
        "# Star and ring data planes in the lab",
        "",
        f"1 Gbit/s per host (tbf), a coordinator on host 0 and one worker per host, MNIST 784-400-20, "
        f"{points[0]['batch_per_worker'] if points else '?'} samples per worker per step. Link bytes are eth0's "
        "counters inside each host's namespace over the whole run (headers, acknowledgements, joins and "
        "the first parameters included; with GSO the headers count once per packet of up to 64 KB), divided by "
        "the steps. Target: each direction of a link at most "
        f"1.1 x 2 x M = {mb(TARGET_FACTOR * M)} MB per step plus the rows ("
        "row_bytes_per_step), as Tests/IntegrationTests/RingTrafficLabTests.swift bounds them. Communication = step time - the workers' compute "
        "(summary.json's step_time total_ms - compute_ms); ideal = 2 (N - 1) / N M / R with "
        f"R = {rate / 1e6:.1f} MB/s ({rate_source}).",
        "",
    ]
    if a.note:
        lines += [f"**Note:** {a.note}", ""]
    lines += [
        "| N | plane | ring steps | samples/s | speed-up (ring/star) | step (ms) | compute (ms) | coordinator link MB/step (sent / received) | max worker link MB/step (sent / received) | target MB/step, each way | pass | communication (ms) | ideal (ms) | communication / ideal |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    # Speed-ups over the star, per ring plane (the ring and its variants).
    over_star = {pl: {} for pl in planes if pl != "star"}
    for n in ns:
        star = by.get(("star", n))
        for pl in over_star:
            if star and by.get((pl, n)):
                over_star[pl][n] = by[(pl, n)]["samples_per_s"] / star["samples_per_s"]
    speedups = over_star.get("ring", {})
    for n in ns:
        for plane in planes:
            p = by.get((plane, n))
            if not p:
                continue
            t = p["step_time_ms"] or {}
            c, w = p["coordinator_link_bytes_per_step"], p["max_worker_link_bytes_per_step"]
            fmt = lambda v, f="{:.1f}": "n/a" if v is None else f.format(v)
            ring = "" if p.get("ring_steps") is None else f"{p['ring_steps']}/{p['steps']}"
            lines.append(
                f"| {n} | {plane} | {ring} | {p['samples_per_s']:.0f} | "
                f"{f'{over_star[plane][n]:.2f}x' if n in over_star.get(plane, {}) else ''} | "
                f"{fmt(t.get('total_ms'))} | {fmt(t.get('compute_ms'))} | {mb(c['sent'])} / {mb(c['received'])} | "
                f"{mb(w['sent'])} / {mb(w['received'])} | {mb(p['target_link_bytes_per_step'])} | {'pass' if p['pass'] else 'FAIL'} | "
                f"{fmt(p['communication_ms'])} | {p['ideal_communication_ms']:.1f} | "
                f"{fmt(p['communication_over_ideal'], '{:.2f}')} |")
    lines.append("")
    partial = [p for p in points if p["plane"] != "star" and p.get("ring_steps") is not None and p["ring_steps"] < p["steps"]]
    if partial:
        lines += ["Ring runs in which some steps went through the star (a step with fewer samples than "
                  "workers, a worker without a ring endpoint, a broken ring; see the run's events.jsonl): "
                  + ", ".join(f"N={p['workers']} ({p['ring_steps']} of {p['steps']} ring steps)" for p in partial), ""]
    if failures:
        lines += ["Runs without a result:", ""] + [f"- {f['plane']} N={f['workers']}: {f['why']}" for f in failures] + [""]

    # The picture's data: measured samples/s per plane, and the model's (docs/SCALING.md, "Choosing
    # the next data plane") at 1 Gbit/s with this machine's transport speed, batch 128 only.
    shown = {plane: name for plane, (_, name) in RING_VARIANTS.items()}
    rows = [(shown.get(plane, plane), p["workers"], p["samples_per_s"]) for plane in planes
            for p in sorted((p for p in points if p["plane"] == plane), key=lambda p: p["workers"])]
    model_used = False
    if a.design and os.path.exists(a.design) and points and all(p["batch_per_worker"] == 128 for p in points):
        column = {"star": "star_samples_per_s", "ring": "ring_sharded_update_samples_per_s"}
        for row in csv.DictReader(open(a.design)):
            if row["link_gbit_per_s"] != "1" or not row["transport"].startswith("this machine"):
                continue
            n = int(row["workers"])
            # Over the measured range (from N = 1 when only one N was measured, to draw a line).
            if (ns[0] if len(ns) > 1 else 1) <= n <= ns[-1]:
                for plane in ("star", "ring"):
                    rows.append((f"{plane} (model)", n, float(row[column[plane]])))
                    model_used = True
    if model_used:
        lines += ["The picture's dashed lines are the model's (docs/SCALING.md, \"Choosing the next data plane\"; "
                  f"{os.path.relpath(a.design, os.path.join(HERE, '..'))}): the star and the ring with a sharded update "
                  "at 1 Gbit/s with this machine's transport speed. The model gives each worker a core of its own; "
                  f"the lab's workers share this machine's {CORES}.", ""]
    with open(os.path.join(a.out, "summary.md"), "w") as f:
        f.write("\n".join(lines))
    print("\n".join(lines))
    with open(os.path.join(a.out, "plot.csv"), "w") as f:
        f.write("series,workers,samples_per_s\n")
        for s, n, v in rows:
            f.write(f"{s},{n},{v:.1f}\n")

    passed = sum(1 for p in points if p["pass"])
    parts = [f"lab data plane: {len(points)} run(s) at 1 Gbit/s ({', '.join(planes)}; N = {', '.join(map(str, ns))}), "
             f"{passed}/{len(points)} within the link target"]
    if speedups:
        parts.append("ring over star " + ", ".join(f"{v:.2f}x at N={n}" for n, v in speedups.items()))
    for plane, (_, name) in RING_VARIANTS.items():
        if over_star.get(plane):
            parts.append(f"{name} ({plane}) over star " + ", ".join(f"{v:.2f}x at N={n}" for n, v in over_star[plane].items()))
    if not any(over_star.values()):
        parts.append("no ring runs, so no speed-up")
    parts.append("samples/s " + "; ".join(f"{p['plane']} N={p['workers']} {p['samples_per_s']:.0f}" for p in points))
    if model_used:
        parts.append("model curves from " + os.path.relpath(a.design, os.path.join(HERE, "..")))
    if partial:
        parts.append("ring runs with star steps: " + ", ".join(
            f"N={p['workers']} {p['ring_steps']}/{p['steps']}" for p in partial))
    if failures:
        parts.append(f"{len(failures)} run(s) without a result: " + ", ".join(f"{f['plane']} N={f['workers']}" for f in failures))
    text = "; ".join(parts)
    if a.note:
        text += "\nnote: " + a.note
    with open(os.path.join(a.out, "summary.txt"), "w") as f:
        f.write(text + "\n")
    print(text)


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run")
    r.add_argument("out")
    r.add_argument("bin")
    r.add_argument("data")
    r.add_argument("--workers", required=True, help="comma-separated N values")
    r.add_argument("--planes", default="star,ring", help="comma-separated, in the order of the first N")
    r.add_argument("--batch-per-worker", type=int, default=128)
    r.add_argument("--seconds", type=float, default=20, help="rough length of each run")
    r.add_argument("--budget", type=float, default=780,
                   help="seconds of measuring at most: runs that would start later are skipped")
    r.add_argument("--no-plane-flag", action="store_true",
                   help="the coordinator has no --data-plane: run without it (only the star then makes sense)")
    q = sub.add_parser("report")
    q.add_argument("out")
    q.add_argument("--design", help="data_plane_model.py's design.csv, for the model's curves")
    q.add_argument("--note", default="")
    a = p.parse_args()
    run_all(a) if a.command == "run" else report(a)


if __name__ == "__main__":
    main()
