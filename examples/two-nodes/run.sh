#!/usr/bin/env bash
# Two Weir nodes on localhost and a peer pipe from node 1 to node 2: write points to node 1,
# wait until the pipe has caught up, and compare the two nodes' digests of root.demo.
#
#   examples/two-nodes/run.sh              # from the repository root or anywhere
#   ROWS=2000 KEEP=1 examples/two-nodes/run.sh
#
# Environment: PIPECTL (a pipectl binary; default: built from this repository), DIR (data and
# logs; default: a new temporary directory), ROWS (rows per device, default 500), KEEP=1
# (leave the nodes running at the end), and the nodes' 127.0.0.1 ports: HTTP1 (default
# 7070), FLIGHT1 (7071), HTTP2 (7080), FLIGHT2 (7081). They override node1.yaml and
# node2.yaml; the peer pipe (peer.yaml, copied into DIR) ships to FLIGHT2.
#
#   HTTP1=17070 FLIGHT1=17071 HTTP2=17080 FLIGHT2=17081 examples/two-nodes/run.sh
#
# A port something already listens on (another node, another run) is refused before any node
# starts: the script never talks to a process it did not start. Exit 0 when the digests are
# equal, 1 when not (or on an error, or a port in use), 3 when this pipectl has no peer sink
# or Flight receiver compiled in.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$here/../lib/ports.sh"
DIR="${DIR:-$(mktemp -d "${TMPDIR:-/tmp}/weir-two-nodes.XXXXXX")}"
ROWS="${ROWS:-500}"
HTTP1="${HTTP1:-7070}" FLIGHT1="${FLIGHT1:-7071}" HTTP2="${HTTP2:-7080}" FLIGHT2="${FLIGHT2:-7081}"
N1=http://127.0.0.1:$HTTP1
N2=http://127.0.0.1:$HTTP2
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)" # absolute: node status reports it, and tells our nodes from others

# every port a number, and each used once
check_ports HTTP1 FLIGHT1 HTTP2 FLIGHT2

# the peer pipe's spec, shipping to node 2's Flight port
sed "s/^\(  node-urls: 127\.0\.0\.1:\)7081\$/\1$FLIGHT2/" "$here/peer.yaml" >"$DIR/peer.yaml"
if ! grep -qx "  node-urls: 127.0.0.1:$FLIGHT2" "$DIR/peer.yaml"; then
  echo "$here/peer.yaml: no line \"  node-urls: 127.0.0.1:7081\" to point at FLIGHT2=$FLIGHT2" >&2
  exit 1
fi

if [[ -z "${PIPECTL:-}" ]]; then
  PIPECTL="$DIR/pipectl"
  echo "building pipectl..."
  (cd "$repo" && go build -o "$PIPECTL" ./cmd/pipectl)
fi

if ! "$PIPECTL" lint "$DIR/peer.yaml" >/dev/null 2>"$DIR/lint.err"; then
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

# refuse a port something already listens on (a connection to it succeeds)
refuse_used_ports HTTP1 FLIGHT1 HTTP2 FLIGHT2

http=("" "$HTTP1" "$HTTP2")
flight=("" "$FLIGHT1" "$FLIGHT2")
for n in 1 2; do
  "$PIPECTL" node run --config "$here/node$n.yaml" --data "$DIR/node$n" \
    --http "127.0.0.1:${http[$n]}" --flight "127.0.0.1:${flight[$n]}" >"$DIR/node$n.log" 2>&1 &
  pids+=($!)
done

# wait (bounded) for both nodes to answer, and check that the one answering is ours (its data
# directory): a port taken between the check above and the node's start fails our node
n=0
for server in "$N1" "$N2"; do
  n=$((n + 1))
  for i in $(seq 1 100); do
    if st="$("$PIPECTL" node status --server "$server" --json 2>/dev/null)"; then break; fi
    if [[ $i == 100 ]]; then echo "node $server did not start; see $DIR/node*.log" >&2; exit 1; fi
    sleep 0.1
  done
  if [[ "$st" != *"\"data\": \"$DIR/node$n\""* ]]; then
    echo "$server answers, but it is not node $n of this run (data $DIR/node$n); see $DIR/node$n.log" >&2
    exit 1
  fi
done
if ! "$PIPECTL" node status --server "$N2" --json | grep -q '"flight": "127'; then
  echo "node 2 has no Flight receiver (not compiled into this pipectl); see $DIR/node2.log" >&2
  exit 3
fi
"$PIPECTL" node status --server "$N1"
"$PIPECTL" node status --server "$N2"

# root.demo on node 2 gets node 1's number of regions (4, as in node2.yaml)
"$PIPECTL" pipe create -f "$DIR/peer.yaml" --start --server "$N1"

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
