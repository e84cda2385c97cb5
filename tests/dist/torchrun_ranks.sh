#!/usr/bin/env bash
# Starts two gpuml ranks with the torchrun variables (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
# MASTER_PORT), as torchrun would but without it, and reports how each ended. Used by
# tests/dist/gloo_dist_test.cpp (label dist).
#
#   torchrun_ranks.sh [options] GPUML -- ARGS...
#     --port P          MASTER_PORT (the rendezvous listens on P + 1); default: from the PID
#     --rank1 "ARGS"    rank 1's arguments instead of ARGS (a configuration mismatch)
#     --only-rank1      start rank 1 alone (a rendezvous that rank 0 never joins)
#     --signal SIG      send SIG to rank 1 --after seconds after the start, then report how long
#     --after S           rank 0 took to end after it (a stalled or killed peer)
#     --netns           one rank in each of two network namespaces joined by a veth pair
#                       (needs root and iproute2; exit 77 when they cannot be made)
# Prints "rank R exit CODE" for each rank, "rank 0 ended after_ms N" with --signal, then each
# rank's output. Exits 0 when the script itself worked (the ranks' codes are in the report).
set -uo pipefail

port=$((20000 + ($$ * 7) % 20000))
rank1_args=""
only_rank1=0
signal=""
after=3
netns=0
while [[ $# -gt 0 && "$1" != -- ]]; do
  case "$1" in
    --port) port="$2"; shift 2 ;;
    --rank1) rank1_args="$2"; shift 2 ;;
    --only-rank1) only_rank1=1; shift ;;
    --signal) signal="$2"; shift 2 ;;
    --after) after="$2"; shift 2 ;;
    --netns) netns=1; shift ;;
    *) gpuml="$1"; shift ;;
  esac
done
[[ "${1:-}" == -- ]] && shift
args=("$@")
work="$(mktemp -d)"
addr=127.0.0.1
pids=()
exec0=()
exec1=()

cleanup() {
  local p
  for p in "${pids[@]}"; do kill -KILL "$p" 2> /dev/null; done
  if ((netns)); then
    ip netns del "$ns0" 2> /dev/null
    ip netns del "$ns1" 2> /dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

if ((netns)); then
  [[ "$(id -u)" -eq 0 ]] || { echo "skip: network namespaces need root"; exit 77; }
  command -v ip > /dev/null || { echo "skip: no ip command (Debian: iproute2)"; exit 77; }
  ns0="gpuml-dist-$$-0"
  ns1="gpuml-dist-$$-1"
  veth0="gpd$$a"
  veth1="gpd$$b"
  addr=10.213.0.1
  if ! { ip netns add "$ns0" && ip netns add "$ns1" &&
    ip link add "$veth0" type veth peer name "$veth1" &&
    ip link set "$veth0" netns "$ns0" && ip link set "$veth1" netns "$ns1" &&
    ip -n "$ns0" addr add 10.213.0.1/24 dev "$veth0" && ip -n "$ns1" addr add 10.213.0.2/24 dev "$veth1" &&
    ip -n "$ns0" link set lo up && ip -n "$ns1" link set lo up &&
    ip -n "$ns0" link set "$veth0" up && ip -n "$ns1" link set "$veth1" up; } > "$work/ip.log" 2>&1; then
    echo "skip: cannot make two network namespaces joined by a veth pair here: $(tr '\n' ' ' < "$work/ip.log")"
    exit 77
  fi
  exec0=(ip netns exec "$ns0")
  exec1=(ip netns exec "$ns1")
fi

start_rank() {  # start_rank RANK ARGS...
  local rank="$1"
  shift
  local runner=("${exec0[@]}")
  ((rank == 1)) && runner=("${exec1[@]}")
  "${runner[@]}" env RANK="$rank" LOCAL_RANK="$rank" WORLD_SIZE=2 MASTER_ADDR="$addr" MASTER_PORT="$port" \
    "$gpuml" "$@" > "$work/rank$rank.log" 2>&1 &
  pids[rank]=$!
}

if ((only_rank1)); then
  start_rank 1 "${args[@]}"
else
  start_rank 0 "${args[@]}"
  if [[ -n "$rank1_args" ]]; then
    read -ra r1 <<< "$rank1_args"
    start_rank 1 "${r1[@]}"
  else
    start_rank 1 "${args[@]}"
  fi
fi

if [[ -n "$signal" ]]; then
  sleep "$after"
  kill -"$signal" "${pids[1]}"
  signalled=$(date +%s%N)
  wait "${pids[0]}"
  code0=$?
  echo "rank 0 exit $code0"
  echo "rank 0 ended after_ms $((($(date +%s%N) - signalled) / 1000000))"
  kill -KILL "${pids[1]}" 2> /dev/null
  wait "${pids[1]}"
  echo "rank 1 exit $? (signalled)"
else
  for rank in 0 1; do
    [[ -n "${pids[rank]:-}" ]] || continue
    wait "${pids[rank]}"
    echo "rank $rank exit $?"
  done
fi
pids=()
for rank in 0 1; do
  [[ -f "$work/rank$rank.log" ]] || continue
  echo "--- rank $rank output"
  cat "$work/rank$rank.log"
done
exit 0
