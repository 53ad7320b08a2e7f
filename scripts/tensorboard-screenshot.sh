#!/usr/bin/env bash
# Takes a screenshot of TensorBoard showing the runs under LOGDIR, headless: starts TensorBoard on a
# free loopback port (127.0.0.1 only), waits until it serves the runs' scalars, has headless
# Chromium render the dashboard with a tag filter in its URL into OUT.png, and stops TensorBoard
# (and its data server) on every exit: success, error, Ctrl-C, SIGTERM. Used for the README's
# picture of a training run in TensorBoard.
#
# Requirements: python3; TensorBoard (pip install tensorboard: the `tensorboard` command, else
# `python3 -m tensorboard.main`); Chromium (Debian: apt-get install --no-install-recommends
# chromium; or set CHROMIUM=/path/to/chrome); timeout and setsid (coreutils, util-linux).
#
# Usage: scripts/tensorboard-screenshot.sh LOGDIR OUT.png [options]
#   --tag-filter REGEX   scalar tags to show (default '^(neg_elbo|rate|distortion)/': the loss and
#                        its two terms, test and train side by side); a JavaScript regex in the
#                        page, checked with Python's re first (the same for plain alternations)
#   --width W --height H browser window in CSS pixels (default 1280 x 1040: two charts a row, three
#                        rows, on the scalars dashboard)
#   --scale S            device pixel ratio (default 1); 2 gives a 2W x 2H picture, sharper text
#   --dashboard D        scalars (default; TensorBoard's "Scalars" tab) or timeseries ("Time Series":
#                        bigger cards, but its settings pane stays open)
#   --smoothing S        smoothing of the curves, 0 to 0.999 (default TensorBoard's 0.6)
#   --budget-ms MS       virtual time Chromium gives the page before the screenshot (default 20000)
# Example: scripts/tensorboard-screenshot.sh runs docs/tensorboard.png
# Exit codes: 0 written; 1 TensorBoard or Chromium failed, or no scalar tag matches; 2 usage or a
# missing tool.
set -euo pipefail

usage() { sed -n '/^# Usage:/,/^set -euo/p' "$0" | sed -n 's/^# \{0,1\}//p' >&2; exit 2; }
die() { echo "tensorboard-screenshot: $*" >&2; exit 1; }

logdir="" out="" tag_filter='^(neg_elbo|rate|distortion)/'
width=1280 height=1040 scale=1 dashboard=scalars smoothing="" budget_ms=20000
positional=()
while [ $# -gt 0 ]; do
  case "$1" in
    --tag-filter|--width|--height|--scale|--dashboard|--smoothing|--budget-ms)
      [ $# -ge 2 ] || usage
      case "$1" in
        --tag-filter) tag_filter="$2" ;;
        --width) width="$2" ;;
        --height) height="$2" ;;
        --scale) scale="$2" ;;
        --dashboard) dashboard="$2" ;;
        --smoothing) smoothing="$2" ;;
        --budget-ms) budget_ms="$2" ;;
      esac
      shift 2 ;;
    -h|--help) usage ;;
    -*) echo "tensorboard-screenshot: unknown option $1" >&2; usage ;;
    *) positional+=("$1"); shift ;;
  esac
done
[ ${#positional[@]} -eq 2 ] || usage
logdir="${positional[0]}" out="${positional[1]}"
[[ "$width" =~ ^[0-9]+$ && "$height" =~ ^[0-9]+$ && "$budget_ms" =~ ^[0-9]+$ ]] ||
  { echo "tensorboard-screenshot: --width, --height and --budget-ms take whole numbers" >&2; exit 2; }
[[ "$scale" =~ ^[0-9]+(\.[0-9]+)?$ ]] || { echo "tensorboard-screenshot: --scale takes a number" >&2; exit 2; }
[ -z "$smoothing" ] || [[ "$smoothing" =~ ^0(\.[0-9]+)?$ ]] ||
  { echo "tensorboard-screenshot: --smoothing takes a number from 0 to 0.999" >&2; exit 2; }
case "$dashboard" in scalars|timeseries) ;; *) echo "tensorboard-screenshot: --dashboard is scalars or timeseries" >&2; exit 2 ;; esac

# Tools: say how to install what is missing.
missing=0
if ! command -v python3 >/dev/null; then
  echo "tensorboard-screenshot: python3 not found (Debian: apt-get install python3)" >&2; missing=1
fi
if command -v tensorboard >/dev/null; then
  tensorboard=(tensorboard)
elif command -v python3 >/dev/null && python3 -c "import tensorboard" 2>/dev/null; then
  tensorboard=(python3 -m tensorboard.main)
else
  echo "tensorboard-screenshot: TensorBoard not found: pip install tensorboard" >&2; missing=1
fi
chromium="${CHROMIUM:-}"
if [ -z "$chromium" ]; then
  for candidate in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$candidate" >/dev/null; then chromium="$candidate"; break; fi
  done
fi
if [ -z "$chromium" ] || ! command -v "$chromium" >/dev/null; then
  echo "tensorboard-screenshot: Chromium not found: (sudo) apt-get install -y --no-install-recommends chromium" \
    "(Debian; Ubuntu's is a snap), or set CHROMIUM=/path/to/chrome" >&2
  missing=1
fi
for tool in timeout setsid; do
  command -v "$tool" >/dev/null || { echo "tensorboard-screenshot: $tool not found (coreutils, util-linux)" >&2; missing=1; }
done
[ "$missing" -eq 0 ] || exit 2

[ -d "$logdir" ] || die "no directory $logdir"
[ -n "$(find "$logdir" -name 'events.out.tfevents.*' -print -quit)" ] ||
  die "no event files (events.out.tfevents.*) under $logdir"
out_dir="$(cd "$(dirname "$out")" 2>/dev/null && pwd)" || die "no directory $(dirname "$out") for $out"
out="$out_dir/$(basename "$out")"

work="$(mktemp -d "${TMPDIR:-/tmp}/tensorboard-screenshot.XXXXXX")"
tb_pid="" step_pid=""
cleanup() {
  local status=$?
  trap - EXIT INT TERM HUP
  if [ -n "$step_pid" ]; then  # the readiness poll or Chromium (through timeout, which passes it on)
    kill -TERM "$step_pid" 2>/dev/null || true
    wait "$step_pid" 2>/dev/null || true
  fi
  if [ -n "$tb_pid" ]; then
    # TensorBoard leads its own process group (setsid), with its data server in it: SIGTERM lets
    # TensorBoard remove its info file (/tmp/.tensorboard-info); what is left after 5 s gets SIGKILL.
    kill -TERM -- "-$tb_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$tb_pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL -- "-$tb_pid" 2>/dev/null || true
    wait "$tb_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP
# Long steps run in the background and the script waits for them: bash runs a trap only once the
# foreground command has ended, but interrupts `wait` at once.
run_step() { "$@" <&0 & step_pid=$!; local status=0; wait "$step_pid" || status=$?; step_pid=""; return "$status"; }

# --port 0: the kernel picks a free port and TensorBoard prints the URL it serves on stderr. setsid
# makes TensorBoard (not a group leader here, so setsid execs without forking: $! is its pid) lead a
# process group of its own, which its data server joins.
setsid "${tensorboard[@]}" --logdir "$logdir" --host 127.0.0.1 --port 0 \
  </dev/null >"$work/tensorboard.log" 2>&1 &
tb_pid=$!
url=""
for _ in $(seq 300); do  # up to 30 s
  url="$(grep -o 'http://127\.0\.0\.1:[0-9]*/' "$work/tensorboard.log" | head -n 1 || true)"
  [ -n "$url" ] && break
  kill -0 "$tb_pid" 2>/dev/null || { cat "$work/tensorboard.log" >&2; die "TensorBoard exited before serving"; }
  sleep 0.1
done
[ -n "$url" ] || { cat "$work/tensorboard.log" >&2; die "TensorBoard printed no URL within 30 s"; }
echo "tensorboard-screenshot: TensorBoard serves $logdir at $url"

# Waits until TensorBoard lists the runs and has read their scalars: the runs, the tags that match
# the filter and their number of points stay the same for two polls a second apart. Prints the matching
# tags; fails if none matches (listing the tags there are) or after 120 polls.
run_step python3 - "$url" "$tag_filter" <<'PYTHON' || die "TensorBoard did not serve scalars matching '$tag_filter'"
import json, re, sys, time, urllib.error, urllib.parse, urllib.request
base, pattern = sys.argv[1], re.compile(sys.argv[2])
def get(path):
    with urllib.request.urlopen(base + path, timeout=10) as response:
        return json.load(response)
previous = None
for attempt in range(120):
    time.sleep(0.5 if previous is None else 1.0)
    try:
        runs = get("data/runs")
        tags = get("data/plugin/scalars/tags")  # {run: {tag: {...}}}
        matching = sorted((run, tag) for run, run_tags in tags.items() for tag in run_tags if pattern.search(tag))
        points = sum(len(get("data/plugin/scalars/scalars?" + urllib.parse.urlencode({"run": r, "tag": t})))
                     for r, t in matching)
    except (urllib.error.URLError, OSError, ValueError):
        continue  # not answering yet
    if not runs:
        continue  # no run read yet
    state = (tuple(runs), tuple(matching), points)
    if state == previous:
        if not matching:
            all_tags = sorted({t for run_tags in tags.values() for t in run_tags})
            print("no scalar tag matches %r; the scalar tags are: %s"
                  % (sys.argv[2], ", ".join(all_tags) or "none"), file=sys.stderr)
            sys.exit(1)
        print("tensorboard-screenshot: runs: %d; tags: %s (%d points)"
              % (len(runs), ", ".join(sorted({t for _, t in matching})), points))
        sys.exit(0)
    previous = state
print("no stable scalar data after 120 polls", file=sys.stderr)
sys.exit(1)
PYTHON

encode() { python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1], safe=""))' "$1"; }
filter="$(encode "$tag_filter")"
if [ "$dashboard" = scalars ]; then
  # The Polymer "Scalars" tab keeps its state in the hash: #scalars&tagFilter=…&_smoothingWeight=…
  page="${url}?darkMode=false#scalars&tagFilter=${filter}${smoothing:+&_smoothingWeight=$smoothing}"
else
  # The Angular "Time Series" tab reads query parameters; forceSVG=true draws the lines as SVG (with
  # --disable-gpu its WebGL charts can stay empty).
  page="${url}?darkMode=false&forceSVG=true&tagFilter=${filter}${smoothing:+&smoothing=$smoothing}#timeseries"
fi
echo "tensorboard-screenshot: rendering $page"
rm -f "$out"
# --virtual-time-budget: Chromium runs the page's timers and requests up to that much virtual time
# (fast-forwarded while idle) before it takes the screenshot. timeout bounds the wall time.
if ! run_step timeout 180 "$chromium" --headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --hide-scrollbars --no-first-run --user-data-dir="$work/chromium-profile" \
    --window-size="$width,$height" --force-device-scale-factor="$scale" \
    --virtual-time-budget="$budget_ms" --screenshot="$out" "$page" \
    </dev/null >"$work/chromium.log" 2>&1 || [ ! -s "$out" ]; then
  cat "$work/chromium.log" >&2
  die "Chromium wrote no screenshot"
fi
echo "tensorboard-screenshot: wrote $out"
