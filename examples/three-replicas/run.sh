#!/usr/bin/env bash
# Three Weir nodes on localhost as a cluster (cluster.yaml: root.demo on three replicas with
# iotv2): writes through the node that leads nothing, a follower killed with SIGKILL while
# writes go on and restarted, a leader killed and restarted, a user pipe that runs on each
# region's leader, a leadership moved, then every region's replicas compared.
#
#   examples/three-replicas/run.sh             # from the repository root or anywhere
#   ROWS=2000 KEEP=1 examples/three-replicas/run.sh
#
# Environment: PIPECTL (a pipectl binary; default: built from this repository), DIR (data
# and logs; default: a new temporary directory), ROWS (rows per device and phase, default
# 200), KEEP=1 (leave the nodes running at the end), and the nodes' 127.0.0.1 ports: HTTP1
# (default 7170), FLIGHT1 (7171), HTTP2 (7180), FLIGHT2 (7181), HTTP3 (7190), FLIGHT3 (7191).
# The nodes read DIR/cluster.yaml: cluster.yaml with these ports in place of its own.
#
#   HTTP1=17170 FLIGHT1=17171 HTTP2=17180 FLIGHT2=17181 HTTP3=17190 FLIGHT3=17191 \
#     examples/three-replicas/run.sh
#
# A port something already listens on (another node, another run) is refused before any node
# starts: the script never talks to a process it did not start. Exit 0 when every region's
# replicas are equal, 1 when not (or on an error, or a port in use).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
source "$here/../lib/ports.sh"
DIR="${DIR:-$(mktemp -d "${TMPDIR:-/tmp}/weir-three-replicas.XXXXXX")}"
ROWS="${ROWS:-200}"
HTTP1="${HTTP1:-7170}" FLIGHT1="${FLIGHT1:-7171}"
HTTP2="${HTTP2:-7180}" FLIGHT2="${FLIGHT2:-7181}"
HTTP3="${HTTP3:-7190}" FLIGHT3="${FLIGHT3:-7191}"
N1=http://127.0.0.1:$HTTP1
N2=http://127.0.0.1:$HTTP2
N3=http://127.0.0.1:$HTTP3
mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)" # absolute: node status reports it, and tells our nodes from others
vars=(HTTP1 FLIGHT1 HTTP2 FLIGHT2 HTTP3 FLIGHT3)

# every port a number, and each used once
check_ports "${vars[@]}"

# the cluster file, with the chosen ports (its lines: "- {id: N, http: ADDR, flight: ADDR}")
CLUSTER="$DIR/cluster.yaml"
sed -e "s/http: 127\.0\.0\.1:7170,/http: 127.0.0.1:$HTTP1,/" -e "s/flight: 127\.0\.0\.1:7171}/flight: 127.0.0.1:$FLIGHT1}/" \
  -e "s/http: 127\.0\.0\.1:7180,/http: 127.0.0.1:$HTTP2,/" -e "s/flight: 127\.0\.0\.1:7181}/flight: 127.0.0.1:$FLIGHT2}/" \
  -e "s/http: 127\.0\.0\.1:7190,/http: 127.0.0.1:$HTTP3,/" -e "s/flight: 127\.0\.0\.1:7191}/flight: 127.0.0.1:$FLIGHT3}/" \
  "$here/cluster.yaml" >"$CLUSTER"
for n in 1 2 3; do
  h="HTTP$n" f="FLIGHT$n"
  if ! grep -qF "{id: $n, http: 127.0.0.1:${!h}, flight: 127.0.0.1:${!f}}" "$CLUSTER"; then
    echo "$here/cluster.yaml: node $n's line is not as run.sh expects; cannot give it $h and $f" >&2
    exit 1
  fi
done

if [[ -z "${PIPECTL:-}" ]]; then
  PIPECTL="$DIR/pipectl"
  echo "building pipectl..."
  (cd "$repo" && go build -o "$PIPECTL" ./cmd/pipectl)
fi

declare -A pids=()
servers=([1]=$N1 [2]=$N2 [3]=$N3)
start_node() { # id
  "$PIPECTL" node run --id "$1" --data "$DIR/n$1" --cluster "$CLUSTER" >>"$DIR/n$1.log" 2>&1 &
  pids[$1]=$!
  local i st
  for i in $(seq 1 100); do
    if st="$("$PIPECTL" node status --server "${servers[$1]}" --json 2>/dev/null)"; then
      # ours (its data directory)? A port taken since the check below fails our node
      if [[ "$st" == *"\"data\": \"$DIR/n$1\""* ]]; then return 0; fi
      echo "${servers[$1]} answers, but it is not node $1 of this run (data $DIR/n$1); see $DIR/n$1.log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "node $1 did not start; see $DIR/n$1.log" >&2
  exit 1
}
stop_nodes() {
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
if [[ "${KEEP:-}" != 1 ]]; then trap stop_nodes EXIT; fi

load() { # phase server
  awk -v rows="$ROWS" -v phase="$1" 'BEGIN {
    t0 = 1732530000000 + phase * rows * 1000
    for (r = 0; r < rows; r++)
      for (d = 0; d < 8; d++)
        printf "root.demo.press%d temp=%.2f,state=%di %.0f\n", d, 20 + (r * 7 + d) % 100 / 10, (r + d) % 5, t0 + r * 1000
  }' | "$PIPECTL" write --server "$2"
}

# refuse a port something already listens on (a connection to it succeeds)
refuse_used_ports "${vars[@]}"

for n in 1 2 3; do start_node $n; done
echo "== three nodes up"
"$PIPECTL" cluster status --server "$N1"

echo "== writes through node 3 (it forwards each region's points to its leader)"
load 0 "$N3"
"$PIPECTL" delete 'root.demo.press1.**' --start 1732530000000 --end 1732530050000 --server "$N3"

echo "== node 3 (a follower of both regions) killed with SIGKILL; writes go on through node 1"
kill -KILL "${pids[3]}"; wait "${pids[3]}" 2>/dev/null || true
load 1 "$N1"
"$PIPECTL" cluster status --server "$N1"

echo "== node 3 restarted: it catches up"
start_node 3
"$PIPECTL" cluster digest --server "$N1" --wait 60s

echo "== node 1 (the leader of root.demo/0) killed with SIGKILL"
kill -KILL "${pids[1]}"; wait "${pids[1]}" 2>/dev/null || true
if "$PIPECTL" write --server "$N2" <<<'root.demo.press1 temp=1.5 1732539999000' 2>"$DIR/write.err"; then
  echo "a write to a region whose leader is down was accepted" >&2
  exit 1
fi
echo "a write for root.demo/0 through node 2 is refused while its leader is down:"
sed 's/^/  /' "$DIR/write.err"
echo "reads still work (root.demo/0 is answered by a follower):"
"$PIPECTL" digest --db root.demo --server "$N2"

echo "== node 1 restarted: it resumes its pipes"
start_node 1
load 2 "$N2"
"$PIPECTL" cluster status --server "$N1"
"$PIPECTL" cluster digest --server "$N1" --wait 60s

echo "== a user pipe created through node 3 runs on each region's leader (root.demo copied into root.copy)"
"$PIPECTL" pipe create --start --server "$N3" -f - <<'SPEC'
name: copy
source: {plugin: hybrid, pattern: root.demo.**}
sink: {plugin: write-back, database: root.copy}
SPEC
"$PIPECTL" pipe list --server "$N3"

echo "== the leadership of root.demo/0 moves to node 2 (node 1 drains its pipes first; the copy task moves too)"
"$PIPECTL" region leader root.demo/0 --node 2 --server "$N3"
load 3 "$N3"
"$PIPECTL" cluster status --server "$N1"
"$PIPECTL" pipe list --server "$N1"
"$PIPECTL" cluster digest --server "$N1" --wait 60s
"$PIPECTL" digest --db root.demo --server "$N3"
if [[ "${KEEP:-}" == 1 ]]; then
  echo "nodes left running (pids ${pids[*]}); data and logs in $DIR"
fi
