#!/bin/sh
# Soak: one daemon, many VMs coming and going while workloads, watches, ioeventfds and
# interrupt injections run against them, for SECONDS (default 600). The daemon also serves
# its platform to shimmed programs (--serve-sim): each round, when the helper is built,
# build/shim-load hammers it from several threads through the shim's ring. Every command
# has a deadline; one that misses it is a hang: the script prints which, the daemon's
# status and console, and exits 1. Meant to be run by hand (it is not part of npm test).
#
#   scripts/soak.sh [SECONDS]
set -u
seconds=${1:-600}
root=$(cd "$(dirname "$0")/.." && pwd)
run="$root/bin/run.js"
tmp=$(mktemp -d)
export HSMCTL_RUNTIME_DIR="$tmp/run" HSMCTL_STATE_DIR="$tmp/state" NO_COLOR=1
trap '"$run" daemon stop >/dev/null 2>&1; rm -rf "$tmp"' EXIT

step=0
# cmd DEADLINE ARGS...: run hsmctl; fail the soak if it takes longer than DEADLINE seconds.
cmd() {
  deadline=$1
  shift
  step=$((step + 1))
  timeout -k 5 "$deadline" "$run" "$@" >"$tmp/out" 2>&1
  status=$?
  if [ "$status" = 124 ] || [ "$status" = 137 ]; then
    echo "soak: HANG at step $step: hsmctl $* (no answer in ${deadline}s)"
    cat "$tmp/out"
    timeout 10 "$run" daemon status 2>&1
    exit 1
  fi
  return "$status"
}

sock="$tmp/sim.sock"
load="$root/helper/build/shim-load"
shim="$root/helper/build/libhsm-shim.so"
cmd 30 daemon start --serve-sim "$sock" || { cat "$tmp/out"; exit 1; }
end=$(($(date +%s) + seconds))
round=0
while [ "$(date +%s)" -lt "$end" ]; do
  round=$((round + 1))
  for n in a b c; do
    name="soak-$n-$round"
    cmd 20 vm create "$name" --vcpus 2 --memory 16M || { echo "soak: create failed"; cat "$tmp/out"; exit 1; }
    cmd 20 ioeventfd add "$name" --addr 0x1000 --len 2 --pio
    cmd 20 vm start "$name"
    cmd 20 guest run "$name" --workload mixed --rate 0 --vcpus 0,1 --duration 2
  done
  cmd 20 ioreq watch --once --format csv
  cmd 20 irq inject "soak-a-$round" --msi 0xfee00000:0x41
  cmd 20 guest access "soak-b-$round" --vcpu 0 --pio 0x3f8 --write 0x41 --size 1
  cmd 30 guest run "soak-c-$round" --workload virtio-notify --rate 0 --count 20000 --wait
  if [ -x "$load" ]; then
    step=$((step + 1))
    timeout -k 5 60 env LD_PRELOAD="$shim" HSM_SHIM_SOCKET="$sock" "$load" 4 20000 >"$tmp/out" 2>&1
    status=$?
    if [ "$status" != 0 ]; then
      echo "soak: shim-load failed at step $step (status $status; 124 is a hang):"
      cat "$tmp/out"
      exit 1
    fi
  fi
  sleep 1
  for n in a b c; do
    name="soak-$n-$round"
    cmd 20 vm pause "$name"
    cmd 20 vm destroy "$name" --yes || { echo "soak: destroy failed"; cat "$tmp/out"; exit 1; }
  done
  cmd 20 vm list --json
  if [ "$(cat "$tmp/out")" != "[]" ]; then
    echo "soak: VMs left over after round $round:"
    cat "$tmp/out"
    exit 1
  fi
done
echo "soak: $round rounds, $step commands in ${seconds}s, no hang"
