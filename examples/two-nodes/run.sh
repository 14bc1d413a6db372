#!/usr/bin/env bash
# Two Weir nodes on localhost and a peer pipe from node 1 to node 2: write points to node 1,
# wait until the pipe has caught up, and compare the two nodes' digests of root.demo.
#
#   examples/two-nodes/run.sh              # from the repository root or anywhere
#   ROWS=2000 KEEP=1 examples/two-nodes/run.sh
#
# Environment: PIPECTL (a pipectl binary; default: built from this repository), DIR (data and
# logs; default: a new temporary directory), ROWS (rows per device, default 500), KEEP=1
# (leave the nodes running at the end). Exit 0 when the digests are equal, 1 when not (or on
# an error), 3 when this pipectl has no peer sink or Flight receiver compiled in.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
DIR="${DIR:-$(mktemp -d "${TMPDIR:-/tmp}/weir-two-nodes.XXXXXX")}"
ROWS="${ROWS:-500}"
N1=http://127.0.0.1:7070
N2=http://127.0.0.1:7080
mkdir -p "$DIR"

if [[ -z "${PIPECTL:-}" ]]; then
  PIPECTL="$DIR/pipectl"
  echo "building pipectl..."
  (cd "$repo" && go build -o "$PIPECTL" ./cmd/pipectl)
fi

if ! "$PIPECTL" lint "$here/peer.yaml" >/dev/null 2>"$DIR/lint.err"; then
  cat "$DIR/lint.err" >&2
  echo "this pipectl cannot run the peer pipe (is the peer sink compiled in?)" >&2
  exit 3
fi

pids=()
stop_nodes() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
if [[ "${KEEP:-}" != 1 ]]; then trap stop_nodes EXIT; fi

for n in 1 2; do
  "$PIPECTL" node run --config "$here/node$n.yaml" --data "$DIR/node$n" >"$DIR/node$n.log" 2>&1 &
  pids+=($!)
done

# wait (bounded) for both nodes to answer
for server in "$N1" "$N2"; do
  for i in $(seq 1 100); do
    if "$PIPECTL" node status --server "$server" >/dev/null 2>&1; then break; fi
    if [[ $i == 100 ]]; then echo "node $server did not start; see $DIR/node*.log" >&2; exit 1; fi
    sleep 0.1
  done
done
if ! "$PIPECTL" node status --server "$N2" --json | grep -q '"flight": "127'; then
  echo "node 2 has no Flight receiver (not compiled into this pipectl); see $DIR/node2.log" >&2
  exit 3
fi
"$PIPECTL" node status --server "$N1"
"$PIPECTL" node status --server "$N2"

# root.demo on node 2 gets node 1's number of regions (4, as in node2.yaml)
"$PIPECTL" pipe create -f "$here/peer.yaml" --start --server "$N1"

echo "writing 20 devices x $ROWS rows x 3 measurements to node 1..."
awk -v rows="$ROWS" 'BEGIN {
  t0 = 1732530000000
  for (r = 0; r < rows; r++)
    for (d = 0; d < 20; d++)
      printf "root.demo.line%d.press%d temp=%.2f,state=%di,ok=%s %.0f\n", d % 4, d, 20 + (r * 7 + d) % 100 / 10, (r + d) % 5, ((r + d) % 2 ? "true" : "false"), t0 + r * 1000
}' | "$PIPECTL" write --server "$N1"
# a deletion travels through the pipe too
"$PIPECTL" delete 'root.demo.line0.press0.**' --start 1732530000000 --end 1732530099000 --server "$N1"
"$PIPECTL" sql --server "$N1" "SHOW PIPES"

"$PIPECTL" pipe wait to-node2 --timeout 120s --server "$N1"
"$PIPECTL" pipe list --server "$N1"

d1="$("$PIPECTL" digest --db root.demo --json --server "$N1")"
d2="$("$PIPECTL" digest --db root.demo --json --server "$N2")"
echo "node 1: $(echo $d1)"
echo "node 2: $(echo $d2)"
if [[ "$d1" == *'"points": 0'* ]]; then
  echo "node 1 holds no points: the write failed" >&2
  exit 1
fi
if [[ "$d1" == "$d2" ]]; then
  echo "digests equal: node 2 holds exactly node 1's points"
else
  echo "digests DIFFER" >&2
  exit 1
fi
if [[ "${KEEP:-}" == 1 ]]; then
  echo "nodes left running (pids ${pids[*]}); data and logs in $DIR"
fi
