#!/usr/bin/env python3
"""PyTorch peer of the Swift VAE trainer, for side-by-side CPU benchmarks.

The model, data handling, loss and optimiser mirror the Swift trainer:

* MNIST from the IDX .gz files in Data/mnist, kept as uint8 [N, 784]; each
  minibatch is converted to float/255 and binarised with a fresh
  torch.bernoulli draw every time a sample is used (dynamic binarisation).
* Encoder Linear(784,H) -> act -> {Linear(H,Z) mu, Linear(H,Z) logvar};
  decoder Linear(Z,H) -> act -> Linear(H,784) logits. PyTorch default init.
* Per-sample loss = sum over pixels of BCE-with-logits + beta * KL,
  KL = 0.5 * sum(mu^2 + exp(logvar) - 1 - logvar); minibatch loss = mean.
  One reparameterised sample z = mu + exp(0.5 logvar) * eps.
* Adam(lr=1e-3), batch 128, reshuffled every epoch with torch.randperm and a
  seeded generator.

Subcommands (each prints exactly ONE JSON object on stdout; progress goes to
stderr): train-throughput, train-quality, eval-speed, sgemm.
"""

import argparse
import gzip
import json
import math
import os
import resource
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DATA = os.path.normpath(os.path.join(HERE, "..", "Data", "mnist"))
LOG_2PI = math.log(2.0 * math.pi)
TEST_BINARISE_SEED = 20240611  # fixed: the binarised test set is the same for every run
EVAL_NOISE_SEED = 777  # fixed: eps draws of the test-ELBO / IWAE evaluation


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def peak_rss_mb():
    # ru_maxrss is in KiB on Linux.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


# ----------------------------------------------------------------------------
# Data


def read_idx(path, expected_magic):
    with gzip.open(path, "rb") as f:
        buf = f.read()
    magic = int.from_bytes(buf[0:4], "big")
    if magic != expected_magic:
        raise ValueError(f"{path}: magic 0x{magic:08x}, expected 0x{expected_magic:08x}")
    ndim = magic & 0xFF
    dims = [int.from_bytes(buf[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    count = int(np.prod(dims))
    data = np.frombuffer(buf, dtype=np.uint8, count=count, offset=offset)
    return data.reshape(dims)


def load_images(data_dir, split):
    name = "train-images-idx3-ubyte.gz" if split == "train" else "t10k-images-idx3-ubyte.gz"
    arr = read_idx(os.path.join(data_dir, name), 0x00000803)
    n = arr.shape[0]
    return torch.from_numpy(arr.reshape(n, 784).copy())  # uint8 [N, 784]


def load_labels(data_dir, split):
    name = "train-labels-idx1-ubyte.gz" if split == "train" else "t10k-labels-idx1-ubyte.gz"
    return torch.from_numpy(read_idx(os.path.join(data_dir, name), 0x00000801).copy())


def binarise(u8_batch, gen):
    """uint8 [B,784] -> float32 {0,1} [B,784], fresh Bernoulli draw."""
    return torch.bernoulli(u8_batch.to(torch.float32).div_(255.0), generator=gen)


# ----------------------------------------------------------------------------
# Model

ACTIVATIONS = {
    "relu": F.relu,
    "tanh": torch.tanh,
    "sigmoid": torch.sigmoid,
    "softplus": F.softplus,
    "elu": F.elu,
    "silu": F.silu,
}


class VAE(nn.Module):
    def __init__(self, hidden=400, latent=20, activation="relu"):
        super().__init__()
        self.latent = latent
        self.act = ACTIVATIONS[activation]
        self.enc = nn.Linear(784, hidden)
        self.enc_mu = nn.Linear(hidden, latent)
        self.enc_logvar = nn.Linear(hidden, latent)
        self.dec = nn.Linear(latent, hidden)
        self.dec_out = nn.Linear(hidden, 784)

    def encode(self, x):
        h = self.act(self.enc(x))
        return self.enc_mu(h), self.enc_logvar(h)

    def decode(self, z):
        return self.dec_out(self.act(self.dec(z)))


def loss_terms(model, x, gen):
    """Per-sample distortion (BCE summed over pixels) and rate (KL), shape [B]."""
    mu, logvar = model.encode(x)
    eps = torch.randn(mu.shape, generator=gen)
    z = mu + torch.exp(0.5 * logvar) * eps
    logits = model.decode(z)
    distortion = F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(dim=1)
    rate = 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)
    return distortion, rate


def make_model(args):
    torch.manual_seed(args.seed)  # default PyTorch init, seeded
    return VAE(args.hidden, args.latent, args.activation)


def make_optimizer(model):
    return torch.optim.Adam(model.parameters(), lr=1e-3)


def batch_index_stream(n, batch, shuffle_gen, drop_last):
    """Yields index tensors forever, a fresh torch.randperm every epoch."""
    while True:
        perm = torch.randperm(n, generator=shuffle_gen)
        stop = (n // batch) * batch if drop_last else n
        for s in range(0, stop, batch):
            yield perm[s: s + batch]


def train_step(model, opt, train_u8, idx, noise_gen, beta):
    x = binarise(train_u8.index_select(0, idx), noise_gen)
    distortion, rate = loss_terms(model, x, noise_gen)
    loss = (distortion + beta * rate).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return loss


# ----------------------------------------------------------------------------
# Evaluation


@torch.inference_mode()
def test_elbo(model, test_bin, beta, batch=1000):
    """One-sample -ELBO over a pre-binarised test set; float64 accumulators."""
    gen = torch.Generator().manual_seed(EVAL_NOISE_SEED)
    tot_d = 0.0
    tot_r = 0.0
    n = test_bin.shape[0]
    for s in range(0, n, batch):
        d, r = loss_terms(model, test_bin[s: s + batch], gen)
        tot_d += d.double().sum().item()
        tot_r += r.double().sum().item()
    d = tot_d / n
    r = tot_r / n
    return d + beta * r, r, d


@torch.inference_mode()
def iwae_nll_one(model, x, k, chunk, gen):
    """-log p(x) estimate with k importance samples from q(z|x).

    x: float32 {0,1} [784]. log w is computed in float32; logsumexp in float64.
    The decoder sees `chunk` samples per call (chunk >= k: all k at once).
    """
    mu, logvar = model.encode(x.unsqueeze(0))
    mu = mu[0]
    logvar = logvar[0]
    std = torch.exp(0.5 * logvar)
    zdim = mu.shape[0]
    logq_const = -0.5 * logvar.sum() - 0.5 * zdim * LOG_2PI
    parts = []
    for s in range(0, k, chunk):
        n = min(chunk, k - s)
        eps = torch.randn((n, zdim), generator=gen)
        z = mu + std * eps
        logits = model.decode(z)
        log_px = -F.binary_cross_entropy_with_logits(
            logits, x.expand(n, -1), reduction="none").sum(dim=1)
        log_pz = -0.5 * (z * z).sum(dim=1) - 0.5 * zdim * LOG_2PI
        log_qz = -0.5 * (eps * eps).sum(dim=1) + logq_const
        parts.append(log_px + log_pz - log_qz)  # float32 [n]
    logw = torch.cat(parts).to(torch.float64)
    return -(torch.logsumexp(logw, dim=0).item() - math.log(k))


def iwae_nll(model, x_bin, k, chunk, seed=EVAL_NOISE_SEED, progress_every=0):
    gen = torch.Generator().manual_seed(seed)
    nlls = []
    t0 = time.perf_counter()
    for i in range(x_bin.shape[0]):
        nlls.append(iwae_nll_one(model, x_bin[i], k, chunk, gen))
        if progress_every and (i + 1) % progress_every == 0:
            el = time.perf_counter() - t0
            log(f"  iwae {i + 1}/{x_bin.shape[0]}  mean nll {np.mean(nlls):.3f}  "
                f"{(i + 1) / el:.2f} img/s")
    return nlls, time.perf_counter() - t0


def binarised_test_set(data_dir, limit=None):
    test_u8 = load_images(data_dir, "test")
    if limit is not None:
        test_u8 = test_u8[:limit]
    gen = torch.Generator().manual_seed(TEST_BINARISE_SEED)
    return binarise(test_u8, gen)


# ----------------------------------------------------------------------------
# Subcommands


def common_header(args):
    return {
        "peer": "pytorch",
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
    }


def cmd_train_throughput(args):
    train_u8 = load_images(args.data, "train")
    model = make_model(args)
    opt = make_optimizer(model)
    shuffle_gen = torch.Generator().manual_seed(args.seed)
    noise_gen = torch.Generator().manual_seed(args.seed + 1)
    stream = batch_index_stream(train_u8.shape[0], args.batch, shuffle_gen, drop_last=True)

    log(f"warmup {args.warmup} steps")
    for _ in range(args.warmup):
        train_step(model, opt, train_u8, next(stream), noise_gen, args.beta)

    log(f"timing {args.steps} steps, batch {args.batch}, {torch.get_num_threads()} thread(s)")
    step_times = []
    t_start = time.perf_counter()
    for _ in range(args.steps):
        t0 = time.perf_counter()
        loss = train_step(model, opt, train_u8, next(stream), noise_gen, args.beta)
        step_times.append(time.perf_counter() - t0)
    seconds = time.perf_counter() - t_start
    log(f"last loss {loss.item():.3f}")

    out = common_header(args)
    out.update({
        "batch": args.batch,
        "hidden": args.hidden,
        "latent": args.latent,
        "steps": args.steps,
        "seconds": seconds,
        "samples_per_s": args.steps * args.batch / seconds,
        "peak_rss_mb": peak_rss_mb(),
        "warmup": args.warmup,
        "activation": args.activation,
        "step_ms_median": float(np.median(step_times) * 1e3),
        "step_ms_min": float(np.min(step_times) * 1e3),
    })
    return out


def cmd_train_quality(args):
    train_u8 = load_images(args.data, "train")
    n = train_u8.shape[0]
    model = make_model(args)
    opt = make_optimizer(model)
    shuffle_gen = torch.Generator().manual_seed(args.seed)
    noise_gen = torch.Generator().manual_seed(args.seed + 1)

    log(f"training {args.epochs} epoch(s) on {n} images, batch {args.batch}, "
        f"{torch.get_num_threads()} thread(s)")
    train_seconds = 0.0
    samples = 0
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        perm = torch.randperm(n, generator=shuffle_gen)
        stop = (n // args.batch) * args.batch if args.drop_last else n
        loss_sum = 0.0
        seen = 0
        for s in range(0, stop, args.batch):
            idx = perm[s: s + args.batch]
            loss = train_step(model, opt, train_u8, idx, noise_gen, args.beta)
            loss_sum += loss.item() * idx.shape[0]
            seen += idx.shape[0]
        dt = time.perf_counter() - t0
        train_seconds += dt
        samples += seen
        log(f"epoch {epoch + 1}/{args.epochs}  train loss {loss_sum / seen:.3f}  "
            f"{dt:.1f}s  {seen / dt:.0f} samples/s")

    test_bin = binarised_test_set(args.data)
    t0 = time.perf_counter()
    neg_elbo, rate, distortion = test_elbo(model, test_bin, args.beta)
    log(f"test -ELBO {neg_elbo:.3f} (rate {rate:.3f}, distortion {distortion:.3f}) "
        f"in {time.perf_counter() - t0:.1f}s")

    nll_images = min(args.nll_limit, test_bin.shape[0])
    log(f"IWAE NLL, k={args.k}, first {nll_images} test images")
    chunk = args.chunk if args.chunk > 0 else args.k
    nlls, nll_seconds = iwae_nll(model, test_bin[:nll_images], args.k, chunk,
                                 progress_every=max(1, nll_images // 10))

    out = common_header(args)
    out.update({
        "batch": args.batch,
        "hidden": args.hidden,
        "latent": args.latent,
        "activation": args.activation,
        "beta": args.beta,
        "epochs": args.epochs,
        "seed": args.seed,
        "test_neg_elbo": neg_elbo,
        "test_rate": rate,
        "test_distortion": distortion,
        "nll": float(np.mean(nlls)),
        "nll_k": args.k,
        "nll_images": nll_images,
        "nll_seconds": nll_seconds,
        "train_seconds": train_seconds,
        "samples_per_s": samples / train_seconds,
        "peak_rss_mb": peak_rss_mb(),
    })
    return out


def cmd_eval_speed(args):
    model = make_model(args)
    model_desc = "random-init"
    if args.train_steps > 0:
        train_u8 = load_images(args.data, "train")
        opt = make_optimizer(model)
        shuffle_gen = torch.Generator().manual_seed(args.seed)
        noise_gen = torch.Generator().manual_seed(args.seed + 1)
        stream = batch_index_stream(train_u8.shape[0], 128, shuffle_gen, drop_last=False)
        log(f"briefly training {args.train_steps} steps")
        for _ in range(args.train_steps):
            train_step(model, opt, train_u8, next(stream), noise_gen, args.beta)
        model_desc = f"trained {args.train_steps} steps (batch 128)"
        del train_u8
    model.eval()

    x = binarised_test_set(args.data, limit=args.images + args.warmup)
    chunk = args.chunk if args.chunk > 0 else args.k
    if args.warmup:
        iwae_nll(model, x[args.images:args.images + args.warmup], args.k, chunk, seed=1)
    log(f"IWAE k={args.k}, chunk {chunk}, {args.images} images, model {model_desc}")
    nlls, seconds = iwae_nll(model, x[:args.images], args.k, chunk,
                             progress_every=max(1, args.images // 5))
    out = common_header(args)
    out.update({
        "images_per_s": args.images / seconds,
        "k": args.k,
        "images": args.images,
        "seconds": seconds,
        "mean_nll": float(np.mean(nlls)),
        "chunk": chunk,
        "model": model_desc,
        "hidden": args.hidden,
        "latent": args.latent,
        "peak_rss_mb": peak_rss_mb(),
    })
    return out


def time_mm(a, b, min_seconds):
    for _ in range(5):
        torch.mm(a, b)
    # Blocks of calls; the best block is the least disturbed on a shared machine.
    n = 10
    while True:
        t0 = time.perf_counter()
        for _ in range(n):
            torch.mm(a, b)
        if time.perf_counter() - t0 > 0.02:
            break
        n *= 2
    per_call = []
    total = 0.0
    while total < min_seconds or len(per_call) < 5:
        t0 = time.perf_counter()
        for _ in range(n):
            torch.mm(a, b)
        dt = time.perf_counter() - t0
        total += dt
        per_call.append(dt / n)
    return min(per_call), float(np.median(per_call))


def cmd_sgemm(args):
    torch.manual_seed(0)
    b = args.batch
    shapes = [
        # (name, M, K, N): [M,K] x [K,N]
        ("enc_fwd [B,784]x[784,H]", b, 784, args.hidden),
        ("dec_out_fwd [B,H]x[H,784]", b, args.hidden, 784),
    ]
    if args.all_shapes:
        shapes += [
            ("enc_dW [784,B]x[B,H]", 784, b, args.hidden),
            ("dec_out_dX [B,784]x[784,H]", b, 784, args.hidden),
            ("iwae_dec_out [5000,H]x[H,784]", 5000, args.hidden, 784),
        ]
    results = []
    for name, m, k, n in shapes:
        a = torch.randn(m, k, dtype=torch.float32)
        bm = torch.randn(k, n, dtype=torch.float32)
        best, med = time_mm(a, bm, args.seconds)
        flop = 2.0 * m * k * n
        r = {"name": name, "m": m, "k": k, "n": n,
             "seconds_per_call_best": best, "seconds_per_call_median": med,
             "gflops": flop / best / 1e9, "gflops_median": flop / med / 1e9}
        log(f"{name}: {r['gflops']:.1f} GFLOP/s best, {r['gflops_median']:.1f} median")
        results.append(r)
    out = common_header(args)
    out.update({
        "blas": "mkl" if torch.backends.mkl.is_available() else "unknown",
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "results": results,
        "peak_rss_mb": peak_rss_mb(),
    })
    return out


# ----------------------------------------------------------------------------


def build_parser():
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    common.add_argument("--seed", type=int, default=0)
    common.add_argument("--data", default=DEFAULT_DATA, help="directory with the MNIST IDX .gz files")
    common.add_argument("--hidden", type=int, default=400)
    common.add_argument("--latent", type=int, default=20)
    common.add_argument("--activation", choices=sorted(ACTIVATIONS), default="relu")
    common.add_argument("--beta", type=float, default=1.0)

    sub = p.add_subparsers(dest="cmd", required=True)

    s = sub.add_parser("train-throughput", parents=[common],
                       help="samples/s of the full training step")
    s.add_argument("--steps", type=int, default=300)
    s.add_argument("--warmup", type=int, default=30)
    s.add_argument("--batch", type=int, default=128)
    s.set_defaults(func=cmd_train_throughput)

    s = sub.add_parser("train-quality", parents=[common],
                       help="full training, then test -ELBO and IWAE NLL")
    s.add_argument("--epochs", type=int, default=10)
    s.add_argument("--batch", type=int, default=128)
    s.add_argument("--drop-last", action="store_true",
                   help="drop the last partial minibatch of each epoch (default: keep it)")
    s.add_argument("--k", type=int, default=5000, help="IWAE importance samples")
    s.add_argument("--nll-limit", type=int, default=1000, help="IWAE on the first N test images")
    s.add_argument("--chunk", type=int, default=500,
                   help="decoder samples per call (0 = all k; 500 measured fastest here)")
    s.set_defaults(func=cmd_train_quality)

    s = sub.add_parser("eval-speed", parents=[common], help="IWAE NLL evaluation speed")
    s.add_argument("--k", type=int, default=5000)
    s.add_argument("--images", type=int, default=20)
    s.add_argument("--chunk", type=int, default=500,
                   help="decoder samples per call (0 = all k; 500 measured fastest here)")
    s.add_argument("--warmup", type=int, default=1, help="untimed images before timing")
    s.add_argument("--train-steps", type=int, default=0,
                   help="train this many steps first (default 0: random init)")
    s.set_defaults(func=cmd_eval_speed)

    s = sub.add_parser("sgemm", parents=[common], help="torch.mm GFLOP/s for the layer shapes")
    s.add_argument("--batch", type=int, default=128)
    s.add_argument("--seconds", type=float, default=1.0, help="timed seconds per shape")
    s.add_argument("--all-shapes", action="store_true",
                   help="also backward-pass and IWAE decoder shapes")
    s.set_defaults(func=cmd_sgemm)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    torch.set_num_interop_threads(1)  # must precede any parallel work
    torch.set_num_threads(args.threads)
    out = args.func(args)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
