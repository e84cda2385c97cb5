# A freshly made minimal Debian 12 root (debootstrap + chroot) with a copy of the checkout, for
# checks that must run as a new user's machine would: CI (.ci/run) and the fresh-machine pip check
# (tools/check-pip-fresh.sh). Sourced, not run; needs root. What a caller does:
#
#   source tools/fresh-root.sh
#   fresh_root_work=/var/tmp/gpuml-ci              # where the root is made ($fresh_root_work/root)
#   trap 'fresh_root_unmount' EXIT                 # (or call it from the caller's own EXIT trap)
#   fresh_root_make                                # debootstrap, or the day's cached tarball
#   fresh_root_copy_checkout "$checkout"           # -> /work/main in the root (+ ../shared)
#   fresh_root_mount                               # proc, sys, dev, a tmpfs /run, apt's cache, CUDA
#   in_root "cd /work/main && bash tools/setup.sh" # a bash command line with a clean environment
#
# The cache ($fresh_root_cache: a root tarball keyed by date, apt's .debs) only saves time: without
# it the same root is made from the archive. in_root's environment is fixed below, plus the
# caller's `fresh_root_env` entries (NAME=value). The CUDA toolkit under /usr/local/cuda (not a
# Debian package) is bind-mounted read-only so the plugin still compiles; nothing else of the host
# is visible in the root but the network (resolv.conf and the CA bundle PyPI's TLS goes through).

fresh_root_work="${fresh_root_work:-/var/tmp/gpuml-ci}"
fresh_root_cache="${fresh_root_cache:-${GPUML_CI_CACHE:-/var/cache/gpuml-ci}}"
fresh_root_mirror="${fresh_root_mirror:-${GPUML_CI_MIRROR:-http://deb.debian.org/debian}}"
fresh_root_suite=bookworm
fresh_root_env=()
fresh_root_mounted=()

# The root's path, fixed once the work folder is: "$(fresh_root_path)/work/main" is the checkout.
fresh_root_path() { echo "$fresh_root_work/root"; }

fresh_root_unmount() {  # unmounts everything under the root, in reverse order; safe to call twice
  local i
  for ((i = ${#fresh_root_mounted[@]} - 1; i >= 0; i--)); do
    umount "${fresh_root_mounted[i]}" 2> /dev/null || umount -l "${fresh_root_mounted[i]}" 2> /dev/null || true
  done
  fresh_root_mounted=()
}

fresh_root_bind() {  # fresh_root_bind SOURCE TARGET [ro]
  mkdir -p "$2"
  mount --bind "$1" "$2"
  fresh_root_mounted+=("$2")
  if [[ "${3:-}" == ro ]]; then mount -o remount,bind,ro "$2"; fi
}

in_root() {  # in_root COMMAND...: runs a bash command line in the root, with a clean environment
  chroot "$(fresh_root_path)" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 TERM=dumb DEBIAN_FRONTEND=noninteractive \
    PIP_CERT=/etc/gpuml-ci/ca.crt PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 \
    "${fresh_root_env[@]}" /bin/bash -c "$*"
}

# A minimal Debian 12 root at $(fresh_root_path), made fresh (a leftover one is removed first,
# never through its mounts), with the host's name resolution and CA bundle.
fresh_root_make() {
  local rootfs tarball
  rootfs="$(fresh_root_path)"
  command -v debootstrap > /dev/null || {
    echo "fresh-root: installing debootstrap on the host"
    apt-get update -q > /dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends debootstrap > /dev/null
  }
  if [[ -d "$rootfs" ]]; then
    grep -q " $rootfs/" /proc/mounts && awk -v r="$rootfs/" 'index($2, r) == 1 {print $2}' /proc/mounts |
      sort -r | xargs -r -n1 umount -l
    rm -rf --one-file-system "$rootfs"
  fi
  mkdir -p "$rootfs" "$fresh_root_cache"
  tarball="$fresh_root_cache/debian12-minbase-$(date -u +%Y%m%d).tar.gz"
  if [[ -f "$tarball" ]] && tar -xzf "$tarball" -C "$rootfs"; then
    echo "fresh-root: root from the cache ($tarball)"
  else
    rm -rf --one-file-system "$rootfs" && mkdir -p "$rootfs"
    debootstrap --variant=minbase "$fresh_root_suite" "$rootfs" "$fresh_root_mirror" > "$fresh_root_work/debootstrap.log" 2>&1 ||
      { tail -n 30 "$fresh_root_work/debootstrap.log" >&2; return 1; }
    find "$fresh_root_cache" -maxdepth 1 -name 'debian12-minbase-*.tar.gz' -delete
    tar -czf "$tarball.tmp" -C "$rootfs" . && mv "$tarball.tmp" "$tarball" || rm -f "$tarball.tmp"
  fi
  # The network as the host has it: name resolution, and the CA bundle that PyPI's TLS goes through.
  cp -L /etc/resolv.conf "$rootfs/etc/resolv.conf"
  mkdir -p "$rootfs/etc/gpuml-ci"
  cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/gpuml-ci/ca.crt" 2> /dev/null || true
}

# The checkout's tracked and untracked-but-not-ignored files (no build trees) as /work/main, and
# ../shared beside it when there is one.
fresh_root_copy_checkout() {  # fresh_root_copy_checkout CHECKOUT
  local rootfs
  rootfs="$(fresh_root_path)"
  mkdir -p "$rootfs/work/main"
  (cd "$1" && git ls-files -z --cached --others --exclude-standard |
    tar --null -T - -cf - 2> /dev/null) | tar -xf - -C "$rootfs/work/main"
  if [[ -d "$1/../shared" ]]; then cp -a "$1/../shared" "$rootfs/work/shared"; fi
}

fresh_root_mount() {
  local rootfs
  rootfs="$(fresh_root_path)"
  # The root as a mount point of its own (private): inside, `unshare --mount` (the GPU bundle's dry
  # run hides the build tree that way) needs / to be a mount whose propagation it can change.
  mount --bind "$rootfs" "$rootfs" && fresh_root_mounted+=("$rootfs")
  mount --make-private "$rootfs"
  mount -t proc proc "$rootfs/proc" && fresh_root_mounted+=("$rootfs/proc")
  mount -t sysfs sysfs "$rootfs/sys" && fresh_root_mounted+=("$rootfs/sys")
  fresh_root_bind /dev "$rootfs/dev"
  mount -t devpts -o newinstance,ptmxmode=0666 devpts "$rootfs/dev/pts" 2> /dev/null &&
    fresh_root_mounted+=("$rootfs/dev/pts") || true
  mount -t tmpfs -o size=4g tmpfs "$rootfs/dev/shm" && fresh_root_mounted+=("$rootfs/dev/shm")
  mount -t tmpfs tmpfs "$rootfs/run" && fresh_root_mounted+=("$rootfs/run")
  mkdir -p "$fresh_root_cache/apt-archives/partial"
  fresh_root_bind "$fresh_root_cache/apt-archives" "$rootfs/var/cache/apt/archives"
  if [[ -d /usr/local/cuda ]]; then fresh_root_bind "$(readlink -f /usr/local/cuda)" "$rootfs/usr/local/cuda" ro; fi
}
