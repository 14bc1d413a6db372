# Port checks for the example scripts (two-nodes/run.sh, three-replicas/run.sh), sourced by
# them; each function takes the names of the variables that hold the nodes' 127.0.0.1 ports
# and exits the script with 1 (after a message on stderr) when a check fails.

# check_ports VAR...: every port a number (1-65535), and each used once.
check_ports() {
  local var port
  local -A seen=()
  for var in "$@"; do
    port="${!var}"
    if ! [[ "$port" =~ ^[0-9]+$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
      echo "$var=$port: not a port (1-65535)" >&2
      exit 1
    fi
    if [[ -n "${seen[$port]:-}" ]]; then
      echo "$var and ${seen[$port]} are both port $port" >&2
      exit 1
    fi
    seen[$port]=$var
  done
}

# refuse_used_ports VAR...: refuse a port something already listens on (a connection to it
# succeeds).
refuse_used_ports() {
  local var port names
  names="$(printf ', %s' "$@")"
  names="${names#, }"
  for var in "$@"; do
    port="${!var}"
    if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
      echo "port $port ($var) on 127.0.0.1 is already in use; stop what listens there, or choose free ports with $names" >&2
      exit 1
    fi
  done
}
