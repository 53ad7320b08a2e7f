#!/usr/bin/env python3
"""PyTorch DistributedDataParallel peer of the distributed Swift VAE trainer.

Same model, data, loss and optimiser as pytorch_peer.py (imported from it, not
copied): 784-H-Z VAE, Bernoulli decoder on logits, closed-form KL, Adam 1e-3,
MNIST from the IDX .gz files with dynamic binarisation.

Distribution:

* torch.distributed, gloo backend, world size --world-size (default 2), all
  ranks on 127.0.0.1. The rendezvous port is chosen here by binding a socket
  to port 0 (then released, and re-bound by rank 0's TCPStore).
* Ranks are separate processes started by torch.multiprocessing
  (start_processes with the "spawn" start method, i.e. what mp.spawn does,
  but with join=False so this parent can reap the children on error/Ctrl-C).
* Each rank: torch.set_num_threads(1), torch.set_num_interop_threads(1); the
  model wrapped in DistributedDataParallel (default bucketing); per-rank batch
  --batch (global batch = world_size * batch); its own shard of the training
  set from a DistributedSampler (seeded shuffle, set_epoch every epoch); its
  own noise generator (seed + 1 + 1000 * rank) for the Bernoulli/eps draws;
  loss = mean over the rank's batch. DDP averages the gradients across ranks,
  so each update uses the mean gradient of the global batch.

Subcommands (rank 0 prints exactly ONE JSON object on stdout; progress goes to
stderr): throughput, quality.
"""

import argparse
import datetime
import json
import os
import signal
import socket
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch.nn.parallel import DistributedDataParallel as DDP
from torch.utils.data.distributed import DistributedSampler

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pytorch_peer as peer  # noqa: E402  (model, data, loss, evaluation)

START_METHOD = "spawn"


def log(rank, msg):
    print(f"[rank {rank}] {msg}", file=sys.stderr, flush=True)


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ----------------------------------------------------------------------------
# Per-rank set-up


def setup(rank, world_size, port, timeout_s):
    torch.set_num_interop_threads(1)  # must precede any parallel work
    torch.set_num_threads(1)
    dist.init_process_group(
        backend="gloo",
        init_method=f"tcp://127.0.0.1:{port}",
        rank=rank,
        world_size=world_size,
        timeout=datetime.timedelta(seconds=timeout_s),
    )


class LossTerms(torch.nn.Module):
    """Gives pytorch_peer's VAE a forward() (DDP only syncs gradients of a
    backward that follows a forward through the DDP wrapper):
    forward(x, gen) = peer.loss_terms(vae, x, gen) -> per-sample (distortion, rate)."""

    def __init__(self, vae):
        super().__init__()
        self.vae = vae

    def forward(self, x, gen):
        return peer.loss_terms(self.vae, x, gen)


def make_ddp_model(args):
    model = LossTerms(peer.make_model(args))  # seeded default init (same on every rank)
    ddp = DDP(model)  # CPU: no device_ids; broadcasts rank 0's parameters
    opt = peer.make_optimizer(ddp)
    return ddp, opt


def rank_indices(sampler, epoch):
    sampler.set_epoch(epoch)
    return torch.tensor(list(iter(sampler)), dtype=torch.long)


def full_batch_stream(sampler, batch):
    """This rank's index batches forever, full batches only, reshuffled per epoch."""
    epoch = 0
    while True:
        idx = rank_indices(sampler, epoch)
        stop = (idx.shape[0] // batch) * batch
        for s in range(0, stop, batch):
            yield idx[s: s + batch]
        epoch += 1


def timed_train_step(model, opt, train_u8, idx, noise_gen, beta):
    """peer.train_step, split into forward / backward (+ DDP all-reduce) / Adam."""
    t0 = time.perf_counter()
    x = peer.binarise(train_u8.index_select(0, idx), noise_gen)
    distortion, rate = model(x, noise_gen)  # DDP(LossTerms) forward
    loss = (distortion + beta * rate).mean()
    opt.zero_grad(set_to_none=True)
    t1 = time.perf_counter()
    loss.backward()  # DDP: returns after the gradient all-reduce has finished
    t2 = time.perf_counter()
    opt.step()
    t3 = time.perf_counter()
    return loss, t1 - t0, t2 - t1, t3 - t2


def param_checksum(model):
    """float64 sum of |p| over all parameters; equal on all ranks iff in sync (in practice)."""
    with torch.no_grad():
        return float(sum(p.double().abs().sum().item() for p in model.parameters()))


def gather_to_rank0(obj, rank, world_size):
    out = [None] * world_size if rank == 0 else None
    dist.gather_object(obj, out, dst=0)
    return out


def header(args):
    return {
        "peer": "pytorch-ddp",
        "torch_version": torch.__version__,
        "world_size": args.world_size,
        "backend": "gloo",
        "launcher": f"torch.multiprocessing.start_processes(start_method='{START_METHOD}')",
        "threads_per_rank": torch.get_num_threads(),
        "interop_threads_per_rank": torch.get_num_interop_threads(),
    }


# ----------------------------------------------------------------------------
# Subcommands (run on every rank)


def setup_rank(rank, args):
    """This rank's view of a run: world size, the training images, their count, the DDP model
    and optimizer, the distributed sampler and the rank's noise generator."""
    ws = args.world_size
    train_u8 = peer.load_images(args.data, "train")
    n = train_u8.shape[0]
    model, opt = make_ddp_model(args)
    sampler = DistributedSampler(range(n), num_replicas=ws, rank=rank,
                                 shuffle=True, seed=args.seed)
    noise_gen = torch.Generator().manual_seed(args.seed + 1 + 1000 * rank)
    return ws, train_u8, n, model, opt, sampler, noise_gen


def run_throughput(rank, args):
    ws, train_u8, n, model, opt, sampler, noise_gen = setup_rank(rank, args)
    stream = full_batch_stream(sampler, args.batch)
    n_params = sum(p.numel() for p in model.parameters())

    if rank == 0:
        log(rank, f"warmup {args.warmup} steps, world size {ws}, batch {args.batch}/rank")
    for _ in range(args.warmup):
        timed_train_step(model, opt, train_u8, next(stream), noise_gen, args.beta)

    fwd, bwd, ostep, step = [], [], [], []
    dist.barrier()
    t_start = time.perf_counter()
    for i in range(args.steps):
        t0 = time.perf_counter()
        loss, a, b, c = timed_train_step(model, opt, train_u8, next(stream), noise_gen, args.beta)
        step.append(time.perf_counter() - t0)
        fwd.append(a)
        bwd.append(b)
        ostep.append(c)
        if rank == 0 and args.steps >= 10 and (i + 1) % (args.steps // 5) == 0:
            log(rank, f"step {i + 1}/{args.steps}  loss {loss.item():.3f}")
    dist.barrier()
    seconds = time.perf_counter() - t_start

    # Untimed extras (after the clock stopped).
    # 1) backward without the gradient all-reduce (DDP no_sync), to separate
    #    local backward compute from the communication it overlaps with.
    bwd_nosync = []
    for _ in range(args.extra_steps):
        x = peer.binarise(train_u8.index_select(0, next(stream)), noise_gen)
        opt.zero_grad(set_to_none=True)
        with model.no_sync():
            d, r = model(x, noise_gen)
            loss_ns = (d + args.beta * r).mean()
            t0 = time.perf_counter()
            loss_ns.backward()
            bwd_nosync.append(time.perf_counter() - t0)
    opt.zero_grad(set_to_none=True)
    # 2) bare gloo all-reduce of one flat float32 tensor of the gradients' size.
    flat = torch.randn(n_params)
    for _ in range(5):
        dist.all_reduce(flat)
    dist.barrier()
    ar = []
    for _ in range(args.extra_steps):
        t0 = time.perf_counter()
        dist.all_reduce(flat)
        ar.append(time.perf_counter() - t0)

    mine = {
        "rank": rank,
        "peak_rss_mb": peer.peak_rss_mb(),
        "step_ms_median": float(np.median(step) * 1e3),
        "loss_last": float(loss.item()),
        "param_checksum": param_checksum(model),
    }
    allr = gather_to_rank0(mine, rank, ws)
    if rank != 0:
        return None
    ms = lambda v: float(np.median(v) * 1e3)  # noqa: E731
    out = header(args)
    out.update({
        "batch_per_rank": args.batch,
        "global_batch": ws * args.batch,
        "steps": args.steps,
        "warmup": args.warmup,
        "seconds": seconds,
        "samples_per_s": args.steps * ws * args.batch / seconds,
        "step_ms_median": ms(step),
        "step_ms_min": float(np.min(step) * 1e3),
        "forward_ms_median": ms(fwd),
        "backward_ms_median": ms(bwd),
        "optimizer_ms_median": ms(ostep),
        "backward_nosync_ms_median": ms(bwd_nosync),
        "allreduce_ms_median": ms(ar),
        "allreduce_ms_min": float(np.min(ar) * 1e3),
        "allreduce_bytes": n_params * 4,
        "extra_steps": args.extra_steps,
        "peak_rss_mb_per_rank": [a["peak_rss_mb"] for a in allr],
        "params_in_sync": len({a["param_checksum"] for a in allr}) == 1,
        "step_ms_median_per_rank": [a["step_ms_median"] for a in allr],
        "hidden": args.hidden,
        "latent": args.latent,
        "activation": args.activation,
        "num_params": n_params,
        # DDP defaults. Observed with a comm hook (torch 2.13): after the first
        # iteration the gradients go in 2 all-reduces per step, dec_out's
        # 314,384 floats (ready first, DDP's 1 MB first-bucket cap) and the
        # other 338,440, which can only start once the backward is done.
        "ddp_bucket_cap_bytes": getattr(model, "bucket_bytes_cap", None),
        "ddp_gradient_as_bucket_view": getattr(model, "gradient_as_bucket_view", None),
    })
    return out


def run_quality(rank, args):
    ws, train_u8, n, model, opt, sampler, noise_gen = setup_rank(rank, args)

    if rank == 0:
        log(rank, f"training {args.epochs} epoch(s) on {n} images, world size {ws}, "
                  f"batch {args.batch}/rank ({ws * args.batch} global), "
                  f"{len(sampler)} images/rank/epoch")
    train_seconds = 0.0
    samples = 0  # global, including DistributedSampler padding (none when ws | n)
    steps = 0
    for epoch in range(args.epochs):
        idx = rank_indices(sampler, epoch)
        stop = (idx.shape[0] // args.batch) * args.batch if args.drop_last else idx.shape[0]
        dist.barrier()
        t0 = time.perf_counter()
        loss_sum = 0.0
        seen = 0
        for s in range(0, stop, args.batch):
            b = idx[s: s + args.batch]
            loss, _, _, _ = timed_train_step(model, opt, train_u8, b, noise_gen, args.beta)
            loss_sum += loss.item() * b.shape[0]
            seen += b.shape[0]
            steps += 1
        stats = torch.tensor([loss_sum, float(seen)], dtype=torch.float64)
        dist.all_reduce(stats)
        dist.barrier()
        dt = time.perf_counter() - t0
        train_seconds += dt
        samples += int(stats[1].item())
        if rank == 0:
            log(rank, f"epoch {epoch + 1}/{args.epochs}  train loss "
                      f"{stats[0].item() / stats[1].item():.3f}  {dt:.1f}s  "
                      f"{stats[1].item() / dt:.0f} samples/s (global)")

    result = None
    if rank == 0:
        net = model.module.vae
        test_bin = peer.binarised_test_set(args.data)
        t0 = time.perf_counter()
        neg_elbo, rate, distortion = peer.test_elbo(net, test_bin, args.beta)
        log(rank, f"test -ELBO {neg_elbo:.3f} (rate {rate:.3f}, distortion "
                  f"{distortion:.3f}) in {time.perf_counter() - t0:.1f}s")
        result = {"test_neg_elbo": neg_elbo, "test_rate": rate,
                  "test_distortion": distortion}
        if args.nll_limit > 0:
            nll_images = min(args.nll_limit, test_bin.shape[0])
            log(rank, f"IWAE NLL, k={args.k}, first {nll_images} test images")
            chunk = args.chunk if args.chunk > 0 else args.k
            nlls, nll_seconds = peer.iwae_nll(net, test_bin[:nll_images], args.k, chunk,
                                              progress_every=max(1, nll_images // 10))
            result.update({"nll": float(np.mean(nlls)), "nll_k": args.k,
                           "nll_images": nll_images, "nll_seconds": nll_seconds})

    per_rank = gather_to_rank0((peer.peak_rss_mb(), param_checksum(model)), rank, ws)
    if rank != 0:
        return None
    out = header(args)
    out.update({
        "batch_per_rank": args.batch,
        "global_batch": ws * args.batch,
        "hidden": args.hidden,
        "latent": args.latent,
        "activation": args.activation,
        "beta": args.beta,
        "epochs": args.epochs,
        "seed": args.seed,
        "optimizer_steps": steps,
        "drop_last": args.drop_last,
    })
    out.update(result)
    out.update({
        "train_seconds": train_seconds,
        "samples_per_s": samples / train_seconds,
        "peak_rss_mb_per_rank": [a[0] for a in per_rank],
        "params_in_sync": len({a[1] for a in per_rank}) == 1,
    })
    return out


# ----------------------------------------------------------------------------
# Process management


def worker(rank, args, port):
    """Entry point of each spawned rank (torch's _wrap around it sets
    PR_SET_PDEATHSIG=SIGINT, so a rank dies with its parent)."""
    initialised = False
    try:
        setup(rank, args.world_size, port, args.timeout)
        initialised = True
        out = args.func(rank, args)
        if rank == 0 and out is not None:
            print(json.dumps(out), flush=True)
    finally:
        if initialised:
            try:
                dist.destroy_process_group()
            except Exception as e:  # noqa: BLE001
                log(rank, f"destroy_process_group: {e}")


def reap(processes, grace=5.0):
    """Make sure no child survives: SIGTERM, wait, SIGKILL."""
    alive = [p for p in processes if p is not None and p.is_alive()]
    for p in alive:
        p.terminate()
    deadline = time.monotonic() + grace
    for p in alive:
        p.join(max(0.0, deadline - time.monotonic()))
    for p in alive:
        if p.is_alive():
            print(f"killing rank pid {p.pid}", file=sys.stderr, flush=True)
            p.kill()
            p.join()


def launch(args):
    port = free_port()
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")  # inherited by the ranks
    print(f"[launcher] {args.world_size} rank(s), gloo on 127.0.0.1:{port}, "
          f"start method {START_METHOD}", file=sys.stderr, flush=True)
    ctx = mp.start_processes(worker, args=(args, port), nprocs=args.world_size,
                             join=False, start_method=START_METHOD)
    def on_term(signum, frame):
        raise KeyboardInterrupt  # SIGTERM: same clean-up path as Ctrl-C
    signal.signal(signal.SIGTERM, on_term)
    rc = 0
    try:
        while not ctx.join(grace_period=5.0):
            pass
    except KeyboardInterrupt:
        print("[launcher] interrupted, stopping ranks", file=sys.stderr, flush=True)
        rc = 130
    except (mp.ProcessRaisedException, mp.ProcessExitedException) as e:
        print(f"[launcher] a rank failed: {e}", file=sys.stderr, flush=True)
        rc = 1
    finally:
        # Ctrl-C reaches the ranks too (same process group); reap whatever is left.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        reap(ctx.processes)
    return rc


def build_parser():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--world-size", type=int, default=2)
    common.add_argument("--batch", type=int, default=128, help="per-rank batch")
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--data", default=peer.DEFAULT_DATA,
                        help="directory with the MNIST IDX .gz files")
    common.add_argument("--hidden", type=int, default=400)
    common.add_argument("--latent", type=int, default=20)
    common.add_argument("--activation", choices=sorted(peer.ACTIVATIONS), default="relu")
    common.add_argument("--beta", type=float, default=1.0)
    common.add_argument("--timeout", type=float, default=1800.0,
                        help="gloo collective timeout, seconds")

    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("throughput", parents=[common],
                       help="global samples/s of the DDP training step")
    s.add_argument("--steps", type=int, default=300)
    s.add_argument("--warmup", type=int, default=30)
    s.add_argument("--extra-steps", type=int, default=50,
                   help="untimed no_sync backward / bare all-reduce repetitions")
    s.set_defaults(func=run_throughput)

    s = sub.add_parser("quality", parents=[common],
                       help="full DDP training, then test -ELBO on rank 0")
    s.add_argument("--epochs", type=int, default=10)
    s.add_argument("--drop-last", action="store_true",
                   help="drop each rank's last partial batch (default: keep it)")
    s.add_argument("--nll-limit", type=int, default=0,
                   help="IWAE NLL on the first N test images (default 0: skip)")
    s.add_argument("--k", type=int, default=5000, help="IWAE importance samples")
    s.add_argument("--chunk", type=int, default=500, help="decoder samples per call")
    s.set_defaults(func=run_quality)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.world_size < 1:
        raise SystemExit("--world-size must be >= 1")
    sys.exit(launch(args))


if __name__ == "__main__":
    main()
