#!/usr/bin/env bash
# Burda et al. (2015), "Importance Weighted Autoencoders", Table 1: the one-stochastic-layer VAE
# (k = 1), trained with their recipe, its test NLL measured after each stage of their schedule.
#
#   model      784-200-200-50 tanh encoder, mirrored decoder, Bernoulli likelihood
#   data       MNIST, dynamically binarised (a fresh draw per sample and step)
#   optimizer  Adam, beta1 0.9, beta2 0.999, eps 1e-4, batch 20
#   schedule   stage i = 0...7: 3^i epochs at 1e-3 x 10^(-i/7) (3,280 epochs; --lr-schedule burda)
#   init       the decoder's output bias = logit of the training set's per-pixel mean
#              (--init-output-bias data-mean)
#   NLL        IWAE k = 5000 on the whole test set (10,000 images) at the end of each stage
#              (--nll-epochs 1,4,13,40,121,364,1093,3280 --nll-k 5000 --nll-limit 0)
#   paper      VAE, one stochastic layer, k = 1: 86.76 nats
#
# With --model two-layer, their two-stochastic-layer VAE (k = 1) instead:
#   model      x(784) -> 200-200 tanh -> z1 (100) -> 100-100 tanh -> z2 (50); generative
#              z2 -> 100-100 tanh -> z1 (100) -> 200-200 tanh -> x (--latent 100,50 --hidden 200,200
#              --hidden2 100,100); KL terms sampled, as theirs; active units per layer
#   paper      VAE, two stochastic layers, k = 1: 85.33 nats
# in its own run directory (default /work/burda-run-two-layer) and results
# (Benchmarks/results/burda-two-layer-<stamp>/).
#
# Their IWAE rows train the same models on the IWAE bound with k draws (--iwae-k; a step costs
# about k times the VAE's): --model iwae-5 (one layer, k = 5; paper 85.54), iwae-50 (one layer,
# k = 50; 84.78) and two-layer-iwae-50 (82.90), each in /work/burda-run-<model> and
# Benchmarks/results/burda-<model>-<stamp>/.
#
# The run is one `vae train` (single process: a step of batch 20 is too small for workers to pay
# for their messages; Benchmarks/results/burda-*/README.md has the measurement) in a run directory
# that persists across sessions (RUN, default /work/burda-run): checkpoints there every epoch and
# every 5 minutes, and a directory that holds a checkpoint is resumed (`vae train --resume`, which
# keeps the run's options and makes any stage estimate a stop cut short). It runs under
# `nice -n 19`: only idle CPU.
#
# Usage (each mode also takes --model MODEL first: one-layer (the default), two-layer, iwae-5,
# iwae-50 or two-layer-iwae-50):
#   Benchmarks/burda.sh run          train (or resume) in the foreground; log in RUN/train.log
#   Benchmarks/burda.sh background   the same, detached (setsid nohup); its PID in RUN/pid
#   Benchmarks/burda.sh report       write Benchmarks/results/burda-<stamp>/ from RUN: the stage
#                                    results beside the paper's, epochs done, wall time, machine,
#                                    the command, metrics.jsonl (the stamp is the run's start,
#                                    kept in RUN/stamp, so a report refreshes the same directory)
#   Benchmarks/burda.sh status       where the run is
# Environment: RUN (run directory), EPOCHS (default 3280: the whole schedule), VAE (the binary;
# default .build/release/vae, built here, copied into RUN/bin so later builds do not change it).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-one-layer}
if [ "${1:-}" = --model ]; then
  MODEL=${2:?--model takes one-layer, two-layer, iwae-5, iwae-50 or two-layer-iwae-50}
  shift 2
fi
case "$MODEL" in
  one-layer) architecture=(--hidden 200,200 --latent 50); default_run=/work/burda-run; results=burda; paper=86.76 ;;
  two-layer) architecture=(--hidden 200,200 --latent 100,50 --hidden2 100,100); default_run=/work/burda-run-two-layer
             results=burda-two-layer; paper=85.33 ;;
  iwae-5) architecture=(--hidden 200,200 --latent 50 --iwae-k 5); default_run=/work/burda-run-iwae-5
          results=burda-iwae-5; paper=85.54 ;;
  iwae-50) architecture=(--hidden 200,200 --latent 50 --iwae-k 50); default_run=/work/burda-run-iwae-50
           results=burda-iwae-50; paper=84.78 ;;
  two-layer-iwae-50) architecture=(--hidden 200,200 --latent 100,50 --hidden2 100,100 --iwae-k 50)
                     default_run=/work/burda-run-two-layer-iwae-50; results=burda-two-layer-iwae-50; paper=82.90 ;;
  *) echo "--model must be one-layer, two-layer, iwae-5, iwae-50 or two-layer-iwae-50, not '$MODEL'" >&2; exit 2 ;;
esac
export MODEL
RUN=${RUN:-$default_run}
EPOCHS=${EPOCHS:-3280}
mode=${1:-run}
mkdir -p "$RUN"

recipe=(--data Data/mnist "${architecture[@]}" --activation tanh --likelihood bernoulli
        --preprocess dynamic-binarise --batch 20 --optimizer adam --adam-beta1 0.9 --adam-beta2 0.999
        --adam-eps 1e-4 --lr 1e-3 --lr-schedule burda --epochs "$EPOCHS" --init-output-bias data-mean
        --nll-k 5000 --nll-limit 0 --nll-epochs 1,4,13,40,121,364,1093,3280 --seed 1 --threads 1)

binary() {
  if [ -z "${VAE:-}" ]; then
    swift build -c release --product vae >&2
    VAE=.build/release/vae
  fi
  mkdir -p "$RUN/bin"
  cp "$VAE" "$RUN/bin/vae.new" && mv "$RUN/bin/vae.new" "$RUN/bin/vae"
  git rev-parse --short HEAD > "$RUN/bin/commit"
}

running() {  # whether RUN's recorded process is alive and is a vae
  [ -f "$RUN/pid" ] && [ "$(ps -o comm= -p "$(cat "$RUN/pid")" 2>/dev/null)" = vae ]
}

run() {
  if running; then echo "$RUN is already being trained by PID $(cat "$RUN/pid")" >&2; exit 1; fi
  binary
  [ -f "$RUN/stamp" ] || date -u +%Y%m%dT%H%M%SZ > "$RUN/stamp"
  local command
  if [ -f "$RUN/checkpoint.safetensors" ]; then
    command=("$RUN/bin/vae" train --resume "$RUN" --no-tensorboard)
  else
    command=("$RUN/bin/vae" train "${recipe[@]}" --no-tensorboard --out "$RUN")
    printf '%q ' nice -n 19 "${command[@]}" > "$RUN/command.txt"
    echo >> "$RUN/command.txt"
  fi
  printf '%s  %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$(printf '%q ' nice -n 19 "${command[@]}")" >> "$RUN/starts.txt"
  echo "$$" > "$RUN/pid"
  exec nice -n 19 "${command[@]}" >> "$RUN/train.log" 2>&1
}

case "$mode" in
  run) run ;;
  background)
    if running; then echo "$RUN is already being trained by PID $(cat "$RUN/pid")" >&2; exit 1; fi
    binary
    VAE="$RUN/bin/vae" setsid nohup "$0" run > /dev/null 2>&1 < /dev/null &
    sleep 1
    echo "started: PID $(cat "$RUN/pid"), log $RUN/train.log"
    ;;
  status)
    if running; then echo "running: PID $(cat "$RUN/pid")"; else echo "not running"; fi
    grep '"record":"nll"' "$RUN/metrics.jsonl" 2>/dev/null || true
    tail -n 2 "$RUN/train.log" 2>/dev/null || true
    ;;
  report)
    [ -f "$RUN/stamp" ] || { echo "no run in $RUN: start it with Benchmarks/burda.sh background" >&2; exit 1; }
    out=Benchmarks/results/$results-$(cat "$RUN/stamp")
    mkdir -p "$out"
    Benchmarks/machine-info.sh > "$out/machine.json"
    cp "$RUN/metrics.jsonl" "$out/metrics.jsonl" 2>/dev/null || true
    cp "$RUN/command.txt" "$RUN/starts.txt" "$out/" 2>/dev/null || true
    cp "$RUN/bin/commit" "$out/binary-commit.txt" 2>/dev/null || true
    grep -E '^epoch|NLL|^done|^interrupted|error' "$RUN/train.log" > "$out/train-log-excerpt.txt" 2>/dev/null || true
    python3 - "$RUN" "$out" "$EPOCHS" "$MODEL" "$paper" <<'PY'
import calendar, json, os, sys, time
run, out, epochs_planned, model, paper = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], float(sys.argv[5])
layers = "2 stochastic layers" if model.startswith("two-layer") else "1 stochastic layer"
kind, k = ("IWAE", int(model.rsplit("-", 1)[1])) if "iwae" in model else ("VAE", 1)
stage_ends = [1, 4, 13, 40, 121, 364, 1093, 3280]
lines = []
if os.path.exists(os.path.join(run, "metrics.jsonl")):
    for line in open(os.path.join(run, "metrics.jsonl")):
        try:
            lines.append(json.loads(line))
        except json.JSONDecodeError:
            pass  # a line being written
epochs = {}
for l in lines:
    if l.get("record", "epoch") == "epoch":
        epochs[l["epoch"]] = l  # a resumed epoch's line replaces the cut one
nlls = {l["epoch"]: l for l in lines if l.get("record") == "nll"}
done = max((e for e, l in epochs.items() if l["step"] == e * 3000), default=0)
train_seconds = sum(l["epoch_seconds"] for l in epochs.values())
nll_seconds = sum(l["seconds"] for l in nlls.values())
rows = []
for i, end in enumerate(stage_ends):
    lr = 1e-3 * 10 ** (-i / 7)
    n = nlls.get(end)
    first = end - 3 ** i + 1
    rows.append({"stage": i, "epochs": f"{first}-{end}" if first < end else f"{end}", "end_epoch": end, "lr": lr,
                 "test_nll": n and n["nll"], "test_neg_elbo": n and n["test_neg_elbo"],
                 "active_units": n and n["active_units"], "active_units2": n and n.get("active_units2"), "nll_seconds": n and n["seconds"],
                 "k": n and n["k"], "test_samples": n and n["samples"]})
last = epochs.get(done)
started = calendar.timegm(time.strptime(open(os.path.join(run, "stamp")).read().strip(), "%Y%m%dT%H%M%SZ"))
wall = time.time() - started
result = {
    "paper": {"source": f"Burda, Grosse, Salakhutdinov (2015), Table 1, {kind}, {layers}, k={k}", "test_nll": paper},
    "epochs_done": done, "epochs_planned": epochs_planned, "steps_done": last and last["step"],
    "train_seconds": round(train_seconds, 1), "nll_seconds": round(nll_seconds, 1), "wall_seconds_since_start": round(wall),
    "mean_epoch_seconds": round(train_seconds / max(len(epochs), 1), 2),
    "last_epoch": last and {k: last[k] for k in ("epoch", "train_neg_elbo", "test_neg_elbo", "learning_rate", "epoch_seconds")},
    "stages": rows, "written_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
}
json.dump(result, open(os.path.join(out, "results.json"), "w"), indent=2)
with open(os.path.join(out, "results.md"), "w") as f:
    f.write(f"# Burda et al. {model} {kind} (k={k}), stage by stage\n\n")
    f.write(f"Epochs done: {done} of {epochs_planned}, {wall / 3600:.2f} h after the start "
            f"(training {train_seconds / 60:.1f} min, stage NLL estimates {nll_seconds / 60:.1f} min; "
            f"mean epoch {result['mean_epoch_seconds']} s; niced, on a shared machine).\n\n")
    f.write("| stage | epochs | lr | test NLL (k=5000, 10,000 images) | test -ELBO | active units | paper (after all stages) |\n")
    f.write("|---|---|---|---|---|---|---|\n")
    for r in rows:
        nll = f"{r['test_nll']:.2f}" if r["test_nll"] is not None else "being estimated" if done >= r["end_epoch"] else "not reached"
        elbo = f"{r['test_neg_elbo']:.2f}" if r["test_neg_elbo"] is not None else ""
        au = str(r["active_units"]) if r["active_units"] is not None else ""
        if r["active_units2"] is not None:
            au += f" (z1), {r['active_units2']} (z2)"
        f.write(f"| {r['stage']} | {r['epochs']} | {r['lr']:.3g} | {nll} | {elbo} | {au} | {paper if r['stage'] == 7 else ''} |\n")
print(open(os.path.join(out, "results.md")).read())
PY
    echo "wrote $out" >&2
    ;;
  *) echo "usage: $0 [--model one-layer|two-layer|iwae-5|iwae-50|two-layer-iwae-50] run|background|report|status" >&2; exit 2 ;;
esac
