#!/usr/bin/env python3
"""Measures today's coordinator in the multi-host lab (Deploy/lab/lab.sh): for each link rate and
each number of workers N, a coordinator on lab host 0 and one worker on each of hosts 1..N train
the MNIST model (784-400-20, 2,611,296 bytes of parameters) for a fixed number of steps, with a
small batch per worker so that the links, not the 2 shared cores, set the step time.

Per point it records, over the steady state (steps after the first WARMUP fraction):
  - steps/s and the step-time breakdown, from the coordinator's metrics.jsonl windows
    (--metrics-every);
  - bytes per step from the project's counters: vae_network_bytes_total and vae_step, scraped
    from the coordinator's Prometheus endpoint inside host 0 during the run, and summary.json's
    bytes_per_step over the whole run;
  - bytes per step from the lab's interface counters: host 0 (the coordinator's link) and host 1
    (a worker's link), sent and received, sampled at the same moments as the scrapes.

Runs inside an existing lab (LAB in the environment, at least max(N)+1 hosts): the caller brings it
up and down (Benchmarks/lab-scaling.sh). Writes OUT/points.jsonl (one JSON object per point) and
the runs' directories under OUT/runs/.

Usage: lab_scaling.py OUT BIN DATA --rate 1gbit --workers 1,2,4,8 [--batch-per-worker 16]
       lab_scaling.py --calibrate OUT --rate 1gbit --megabytes 250
         (appends to OUT/calibration.jsonl: the payload rate of one TCP transfer host 1 -> host 0,
         three times, and the round-trip time of a 1-byte TCP ping-pong between them)
"""
import argparse
import json
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
LAB_SH = os.path.join(HERE, "..", "Deploy", "lab", "lab.sh")
LAB = os.environ.get("LAB", "vaelab")
METRICS_PORT = 9464
PORT = 5555


def host(i):
    return f"{LAB}{i}"


def on_host(i, args, **kw):
    """Starts args on lab host i (its network and hostname)."""
    return subprocess.Popen(["bash", LAB_SH, "exec", host(i)] + args, start_new_session=True, **kw)


# Runs inside host 0 (so that its scrapes reach the coordinator's endpoint over host 0's
# loopback, not across the shaped link): every 0.25 s, one line of JSON with the time, the
# project's counters and both hosts' interface counters; ends when the endpoint, once seen, is gone.
SCRAPER = r"""
import json, re, subprocess, sys, time, urllib.request
url, out, hosts = sys.argv[1], sys.argv[2], sys.argv[3:]
def counters(h):
    s = json.loads(subprocess.run(["ip", "-n", h, "-s", "-j", "link", "show", "dev", "eth0"],
                                  capture_output=True, text=True, check=True).stdout)[0]["stats64"]
    return [s["tx"]["bytes"], s["rx"]["bytes"]]
seen, deadline = False, time.monotonic() + 1200
with open(out, "w") as f:
    while time.monotonic() < deadline:
        try:
            text = urllib.request.urlopen(url, timeout=2).read().decode()
        except Exception:
            if seen: break
            time.sleep(0.1); continue
        seen = True
        values = dict(re.findall(r"^(vae_step|vae_network_bytes_total) (\S+)$", text, re.M))
        row = {"t": time.monotonic(), "step": float(values.get("vae_step", -1)),
               "bytes": float(values.get("vae_network_bytes_total", -1))}
        for i, h in enumerate(hosts):
            row[f"host{i}"] = counters(h)
        f.write(json.dumps(row) + "\n"); f.flush()
        time.sleep(0.25)
"""


def stop(process):
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        process.wait()


def run_point(out, bin_dir, data, rate, n, batch_per_worker, steps, hidden, latent):
    run = os.path.join(out, "runs", f"{rate}-n{n}")
    os.makedirs(run, exist_ok=True)
    metrics_every = max(2, steps // 20)
    coordinator_args = [
        os.path.join(bin_dir, "vae-coordinator"), "start",
        "--bind", f"tcp://{socket.gethostbyname(host(0))}:{PORT}", "--insecure", "--workers", str(n),
        "--data", data, "--hidden", str(hidden), "--latent", str(latent),
        "--batch", str(batch_per_worker * n), "--max-steps", str(steps), "--epochs", "1000",
        "--seed", "1", "--metrics-every", str(metrics_every), "--no-tensorboard",
        "--metrics-host", "127.0.0.1", "--metrics-port", str(METRICS_PORT),
        "--heartbeat-timeout", "60", "--step-deadline", "120", "--join-timeout", "120",
        "--out", os.path.join(run, "out"),
    ]
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1")
    with open(os.path.join(run, "coordinator.out"), "w") as co, open(os.path.join(run, "coordinator.err"), "w") as ce:
        coordinator = on_host(0, coordinator_args, stdout=co, stderr=ce, env=env)
    workers = []
    try:
        scrapes = os.path.join(run, "scrapes.jsonl")
        scraper = on_host(0, ["python3", "-c", SCRAPER, f"http://127.0.0.1:{METRICS_PORT}/metrics", scrapes,
                              host(0), host(1)])
        # The coordinator is listening once the scraper has reached its endpoint.
        for _ in range(600):
            if (os.path.exists(scrapes) and os.path.getsize(scrapes) > 0) or coordinator.poll() is not None:
                break
            time.sleep(0.1)
        for i in range(1, n + 1):
            with open(os.path.join(run, f"worker{i}.out"), "w") as wo, open(os.path.join(run, f"worker{i}.err"), "w") as we:
                workers.append(on_host(i, [os.path.join(bin_dir, "vae-worker"), "join",
                                           "--coordinator", f"tcp://{host(0)}:{PORT}", "--threads", "1", "--insecure"],
                                       stdout=wo, stderr=we, env=env))
        try:
            coordinator.wait(timeout=900)
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"{rate} N={n}: the run did not finish in 900 s; see {run}")
        if coordinator.returncode != 0:
            raise RuntimeError(f"{rate} N={n}: the coordinator exited {coordinator.returncode}; see {run}/coordinator.err")
        scraper.wait(timeout=60)
    finally:
        stop(coordinator)
        for w in workers:
            try:
                w.wait(timeout=30)
            except subprocess.TimeoutExpired:
                stop(w)
        if 'scraper' in locals():
            stop(scraper)
    summary = json.load(open(os.path.join(run, "out", "summary.json")))
    windows = [json.loads(l) for l in open(os.path.join(run, "out", "metrics.jsonl"))]
    windows = [w for w in windows if w.get("record") == "steps" and "step_time" in w]
    warm = steps // 5
    steady = [w for w in windows if w["step"] - metrics_every >= warm]
    if not steady:
        raise RuntimeError(f"{rate} N={n}: no metrics window after step {warm}")
    step_ms = statistics.median(w["step_time"]["total_ms"] for w in steady)
    breakdown = {k: statistics.median(w["step_time"][k] for w in steady) for k in steady[0]["step_time"]}
    # Bytes per step over the steady state: between the first scrape at or past `warm` and the last.
    # (Up to the first scrape at the last step: after it the coordinator evaluates, still serving.)
    rows = [json.loads(l) for l in open(scrapes)]
    samples = [(r["t"], r["step"], r["bytes"], *r["host0"], *r["host1"]) for r in rows if r["step"] >= 0]
    last = max(s[1] for s in samples) if samples else 0
    usable = [s for s in samples if s[1] >= warm]
    usable = usable[:next((i for i, s in enumerate(usable) if s[1] == last), len(usable) - 1) + 1]
    if len(usable) < 2 or usable[-1][1] - usable[0][1] < 3:
        raise RuntimeError(f"{rate} N={n}: too few scrapes in the steady state ({len(usable)}); make the run longer")
    a, b = usable[0], usable[-1]
    dsteps = b[1] - a[1]
    per_step = lambda k: (b[k] - a[k]) / dsteps
    point = {
        "rate": rate, "workers": n, "batch_per_worker": batch_per_worker, "global_batch": batch_per_worker * n,
        "steps": steps, "steady_from_step": warm,
        "step_ms": step_ms, "steps_per_s": 1000 / step_ms, "samples_per_s": 1000 / step_ms * batch_per_worker * n,
        "step_time_ms": breakdown,
        "scraped_steps_per_s": dsteps / (b[0] - a[0]),
        "bytes_per_step_counter": per_step(2),
        "bytes_per_step_summary": summary.get("bytes_per_step"),
        "coordinator_link_bytes_per_step": {"sent": per_step(3), "received": per_step(4)},
        "worker_link_bytes_per_step": {"sent": per_step(5), "received": per_step(6)},
        "parameter_count": summary.get("parameter_count"),
        "run": os.path.relpath(run, out),
    }
    return point


PING = r"""
import socket, sys, time
role, addr, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
if role == "server":
    s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind((addr, port)); s.listen(1)
    s.settimeout(30); print("ready", flush=True)
    c, _ = s.accept(); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    while (b := c.recv(1)): c.sendall(b)
else:
    c = socket.create_connection((addr, port), timeout=10); c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times = []
    for _ in range(300):
        t = time.perf_counter(); c.sendall(b"x"); c.recv(1); times.append(time.perf_counter() - t)
    times.sort(); print(times[len(times) // 2])
"""


def calibrate(out, rate, megabytes):
    rates = []
    for _ in range(3):
        r = subprocess.run(["bash", LAB_SH, "measure", host(1), host(0), str(megabytes)],
                           check=True, capture_output=True, text=True).stdout.split()
        rates.append(float(r[2]))
    address = socket.gethostbyname(host(0))
    server = on_host(0, ["python3", "-c", PING, "server", address, "5202"], stdout=subprocess.PIPE, text=True)
    try:
        server.stdout.readline()
        r = subprocess.run(["bash", LAB_SH, "exec", host(1), "python3", "-c", PING, "client", address, "5202"],
                           check=True, capture_output=True, text=True, timeout=60)
        rtt = float(r.stdout)
    finally:
        stop(server)
    qdisc = json.loads(subprocess.run(["tc", "-j", "-n", host(0), "qdisc", "show", "dev", "eth0"],
                                      check=True, capture_output=True, text=True).stdout)[0]
    shaped = qdisc.get("kind") == "tbf"
    row = {"rate": rate, "megabytes": megabytes,
           "tbf_rate_bytes_per_s": qdisc["options"]["rate"] if shaped else None,
           "burst_bytes": qdisc["options"]["burst"] if shaped else None, "payload_mbit_per_s": rates,
           "median_payload_mbit_per_s": statistics.median(rates), "rtt_ms": rtt * 1000}
    with open(os.path.join(out, "calibration.jsonl"), "a") as f:
        f.write(json.dumps(row) + "\n")
    print(f"{rate}: one TCP flow carries {row['median_payload_mbit_per_s']:.0f} Mbit/s of payload "
          f"({', '.join(f'{x:.0f}' for x in rates)}); round trip {row['rtt_ms']:.3f} ms", flush=True)


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--calibrate":
        c = argparse.ArgumentParser()
        c.add_argument("--calibrate", dest="out", required=True)
        c.add_argument("--rate", required=True)
        c.add_argument("--megabytes", type=int, required=True)
        a = c.parse_args()
        calibrate(a.out, a.rate, a.megabytes)
        return
    p = argparse.ArgumentParser()
    p.add_argument("out")
    p.add_argument("bin")
    p.add_argument("data")
    p.add_argument("--rate", required=True)
    p.add_argument("--workers", required=True, help="comma-separated N values")
    p.add_argument("--batch-per-worker", type=int, default=16)
    p.add_argument("--seconds", type=float, default=15, help="rough length of each run, from a first guess of its step time")
    p.add_argument("--hidden", type=int, default=400)
    p.add_argument("--latent", type=int, default=20)
    a = p.parse_args()
    rate_bits = {"gbit": 1e9, "mbit": 1e6}
    m = re.fullmatch(r"(\d+)(gbit|mbit)", a.rate)
    if not m and a.rate != "none":
        sys.exit(f"--rate must look like 1gbit or 500mbit, or be none, not {a.rate}")
    bits = int(m.group(1)) * rate_bits[m.group(2)] if m else 10e9  # unshaped: a guess, to size the runs
    with open(os.path.join(a.out, "points.jsonl"), "a") as points:
        for n in [int(x) for x in a.workers.split(",")]:
            # A first guess of the step time (2 N parameter copies through the coordinator's link,
            # plus a floor for computation) sizes the run to about --seconds.
            guess = max(2 * n * 2_611_296 * 8 / bits, 0.008)
            steps = int(min(2000, max(40, a.seconds / guess)))
            point = run_point(a.out, a.bin, a.data, a.rate, n, a.batch_per_worker, steps, a.hidden, a.latent)
            points.write(json.dumps(point) + "\n")
            points.flush()
            print(f"{a.rate} N={n}: {point['steps_per_s']:.2f} steps/s, {point['samples_per_s']:.0f} samples/s, "
                  f"coordinator link {point['coordinator_link_bytes_per_step']['sent'] / 1e6:.2f} MB sent + "
                  f"{point['coordinator_link_bytes_per_step']['received'] / 1e6:.2f} MB received per step, "
                  f"project counter {point['bytes_per_step_counter'] / 1e6:.2f} MB/step", flush=True)


if __name__ == "__main__":
    main()
