#!/bin/sh
# One-step set-up from a fresh clone: the Debian packages the tests need (a C compiler
# and make, the kernel UAPI header <linux/acrn.h> from linux-libc-dev, mandoc to lint
# the man pages, tmux for the terminal tests, openssh for the --host tests, binutils' as,
# ld and objcopy for the guests the KVM tests assemble, acrn-dm's and acrnctl's packages, Prometheus' promtool and server
# for the metrics tests, QEMU for the Linux boot's peer), then the npm packages, which
# also builds hsmctl (npm's prepare script) and the C helper. Safe to run again.
set -eu
cd "$(dirname "$0")"

need=""
command -v cc >/dev/null 2>&1 || need="$need gcc libc6-dev"
command -v make >/dev/null 2>&1 || need="$need make"
[ -f /usr/include/linux/acrn.h ] || need="$need linux-libc-dev"
command -v mandoc >/dev/null 2>&1 || need="$need mandoc"
command -v tmux >/dev/null 2>&1 || need="$need tmux"
# OpenSSH's server and client for the --host ssh:// tests and benchmark (a throwaway sshd)
[ -x /usr/sbin/sshd ] || need="$need openssh-server"
command -v ssh >/dev/null 2>&1 || need="$need openssh-client"
{ command -v as && command -v ld && command -v objcopy; } >/dev/null 2>&1 || need="$need binutils"
# ACRN's acrn-dm and acrnctl, built from ../shared/acrn-dm by scripts/build-acrn-dm.js for
# the tests that run them: their build packages, iasl to run acrn-dm, and unshare/nsenter
# and chattr for the tests that give them private /run/acrn and /usr/share/acrn dirs;
# qemu-system-x86 boots Debian's kernel with -enable-kvm in test/boot (the peer that says
# whether this machine's KVM can boot Linux) and in `npm run bench -- boot`
for p in libssl-dev liburing-dev libpciaccess-dev libusb-1.0-0-dev libcjson-dev \
  libpixman-1-dev libsdl2-dev libegl-dev libgles-dev libdrm-dev acpica-tools util-linux \
  e2fsprogs qemu-system-x86; do
  dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null | grep -q '^ii' || need="$need $p"
done
# Prometheus' promtool and server, for the `daemon run --metrics` tests, which start their
# own Prometheus; the package's service is kept from starting (below)
{ command -v promtool && command -v prometheus; } >/dev/null 2>&1 || need="$need prometheus"
if [ -n "$need" ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing Debian packages:$need" >&2
    # no package's service may start (prometheus' would listen on :9090 for good): a
    # policy-rc.d that denies it while apt-get runs, if the machine has none already
    policy=""
    if [ ! -e /usr/sbin/policy-rc.d ]; then
      policy=/usr/sbin/policy-rc.d
      printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
      $sudo chmod 755 "$policy"
      trap '$sudo rm -f "$policy"' EXIT
    fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $need >/dev/null
    if [ -n "$policy" ]; then
      $sudo rm -f "$policy"
      trap - EXIT
    fi
    # and, where systemd runs, not at the next boot either
    case "$need" in
    *prometheus*)
      if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
        $sudo systemctl disable --now prometheus.service >/dev/null 2>&1 || true
      fi
      ;;
    esac
  else
    echo "setup: no apt-get; install$need yourself for the ABI conformance test (it is skipped without them)" >&2
  fi
fi

npm ci --no-audit --no-fund
