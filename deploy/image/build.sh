#!/usr/bin/env bash
# Builds Knutpunkt's production image (deploy/image/Containerfile) without pulling anything
# from a registry, and checks it:
#
#   1. installs what a fresh Debian machine lacks (buildah, podman, runc, ca-certificates,
#      rabbitmq-server, curl) with apt;
#   2. builds the release binary without the sandbox
#      (`cargo build --release --locked --no-default-features -p knutpunkt`);
#   3. stages rootfs/: the binary, every shared library ldd names (from Debian's packages),
#      Debian's CA certificates, the shipped root without its route tests, writable
#      /knut/data, /knut/inbox and /tmp;
#   4. builds the image FROM scratch with buildah (tag knutpunkt:<version>, and :latest);
#   5. checks the image: numeric non-root user, no shell in it, `knut version`; then starts a
#      private RabbitMQ node (its own ports, folder and cookie; never the machine's broker),
#      imports `knut topology` (printed by the image) with passwords for the two users, and
#      runs the image in production — deploy/knut.production.toml, read-only root file
#      system, the state store on a tmpfs — until `/healthz` and `/readyz` answer 200; then
#      SIGTERM, and the container must exit 0.
#
# Step 5 runs the container with podman. Where podman cannot run one (it says why), the
# script says so loudly and checks the image's file system instead: a copy of it (from
# `podman image mount`, then unmounted) with knut.toml installed, `knut version` and the same
# production start run chrooted in that copy as uid 10001 (KNUT_IMAGE_CHECK=chroot forces
# that; =podman fails instead of falling back).
#
#   deploy/image/build.sh [--no-build]     --no-build: use target/release/knut as it is
#
# Environment: KNUT_IMAGE_TAG (default knutpunkt), PODMAN_GLOBAL_OPTS (default: the options
# a sandboxed machine without systemd and cgroup v2 needs, see below), CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/../.."
repo=$(pwd)

build=1
for arg in "$@"; do
  case "$arg" in
    --no-build) build=0 ;;
    *) echo "usage: deploy/image/build.sh [--no-build]" >&2; exit 2 ;;
  esac
done

say() { printf '\n== %s\n' "$*"; }
fail() { printf '\nFAILED: %s\n' "$*" >&2; exit 1; }

# 1. Tools.
need=()
command -v buildah >/dev/null 2>&1 || need+=(buildah)
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v curl >/dev/null 2>&1 || need+=(curl)
command -v objcopy >/dev/null 2>&1 || need+=(binutils)
[ -f /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)
# Installing starts no service: rabbitmq-server's package would start the machine's broker
# (5672, epmd on 4369) on what may be a shared machine, and this script runs a private node
# of its own. Where the machine has no policy-rc.d, one refusing every start (101) is in
# place for the install only.
apt_install_no_start() {
  local policy=${POLICY_RC_D:-/usr/sbin/policy-rc.d} placed= rc=0
  if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod 0755 "$policy" && placed=1
  fi
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null || rc=$?
  if [ -n "$placed" ]; then rm -f "$policy"; fi
  return "$rc"
}
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]} (no service started)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt_install_no_start "${need[@]}"
fi

# Storage on vfs (no overlay module or fuse needed), cgroups by cgroupfs and events to a file
# (no systemd), runc (crun refuses a hybrid cgroup v1/v2 hierarchy). On an ordinary host
# podman's defaults work as well.
read -r -a PODMAN <<<"podman ${PODMAN_GLOBAL_OPTS:---storage-driver vfs --cgroup-manager cgroupfs --events-backend file --runtime runc}"
read -r -a BUILDAH <<<"buildah --storage-driver ${BUILDAH_STORAGE_DRIVER:-vfs}"

# 2. The binary.
target=${CARGO_TARGET_DIR:-$repo/target}
bin=$target/release/knut
if [ "$build" = 1 ]; then
  say "cargo build --release --locked --no-default-features -p knutpunkt"
  cargo build --release --locked --no-default-features -p knutpunkt
fi
[ -x "$bin" ] || fail "$bin is missing (run without --no-build)"
empty=$(mktemp -d)
sandbox=$(KNUT__SANDBOX__ENABLED=true "$bin" --root "$empty" check 2>&1 || true)
rmdir "$empty"
case "$sandbox" in
  *"built without the \`sandbox\` feature"*) echo "$bin: built without the sandbox" ;;
  *) echo "$sandbox" | head -5 >&2; fail "$bin holds the sandbox: build it with --no-default-features" ;;
esac
version=$("$bin" version | awk '{print $2}')
tag=${KNUT_IMAGE_TAG:-knutpunkt}

# 3. rootfs/.
work=$(mktemp -d /tmp/knut-image.XXXXXX)
node_pid=
container=
cleanup() {
  set +e
  if [ -n "$container" ]; then "${PODMAN[@]}" rm -f "$container" >/dev/null 2>&1; fi
  if [ -n "${mounted:-}" ]; then "${PODMAN[@]}" image unmount "$image_ref" >/dev/null 2>&1; fi
  if [ -n "$node_pid" ]; then
    rabbit_env rabbitmqctl -n "$node" stop >/dev/null 2>&1 || kill -9 "$node_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

say "staging the image's file system in $work/rootfs"
rootfs=$work/rootfs
mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/knut" "$rootfs/tmp"
install -m 0755 "$bin" "$rootfs/usr/local/bin/knut"
# Without the line tables (the release profile keeps them for backtraces): ~200 MiB less.
# Symbols stay, so a backtrace still names its functions.
objcopy --strip-debug "$rootfs/usr/local/bin/knut"
# Every library the dynamic loader resolves, at the path it resolves it to (the loader
# itself included); linux-vdso is the kernel's.
ldd "$bin" | awk '/=> \// {print $3} /^\t\/[^ ]+ \(/ {print $1}' | sort -u | while read -r lib; do
  dest="$rootfs$lib"
  mkdir -p "$(dirname "$dest")"
  cp -L "$lib" "$dest"
  echo "  $lib ($(dpkg -S "$lib" 2>/dev/null | cut -d: -f1 | head -1 || echo '?'))"
done
# The loader's canonical path (/lib64 on amd64 is a symbolic link to usr/lib64 or lib/…).
interp=$(readelf -l "$bin" | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p')
if [ -n "$interp" ] && [ ! -e "$rootfs$interp" ]; then
  mkdir -p "$(dirname "$rootfs$interp")"
  cp -L "$interp" "$rootfs$interp"
fi
cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/ca-certificates.crt"
# Host names through /etc/hosts, then DNS (glibc's files and dns are built into libc).
printf 'hosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
# The shipped root, without the route tests (`knut test` is for the repository, not the image).
for dir in adapters routes transforms schemas fragments settings; do
  [ -d "$dir" ] || continue
  mkdir -p "$rootfs/knut/$dir"
  tar -C "$dir" --exclude='*.test.yaml' -cf - . | tar -C "$rootfs/knut/$dir" -xf -
done
mkdir -p "$rootfs/knut/data" "$rootfs/knut/inbox"
chown -R 0:0 "$rootfs"
chmod -R a+rX,go-w "$rootfs"
chown 10001:10001 "$rootfs/knut/data" "$rootfs/knut/inbox"
chmod 0750 "$rootfs/knut/data" "$rootfs/knut/inbox"
chmod 1777 "$rootfs/tmp"
cp deploy/image/Containerfile "$work/Containerfile"

# 4. The image.
say "buildah bud -t $tag:$version (FROM scratch)"
"${BUILDAH[@]}" bud --quiet --layers=false \
  --label "org.opencontainers.image.title=knutpunkt" \
  --label "org.opencontainers.image.version=$version" \
  --label "org.opencontainers.image.revision=$(git rev-parse HEAD 2>/dev/null || echo unknown)" \
  --label "org.opencontainers.image.source=deploy/image/Containerfile" \
  -f "$work/Containerfile" -t "$tag:$version" -t "$tag:latest" "$work" >/dev/null
image_ref=localhost/$tag:$version
"${PODMAN[@]}" image inspect "$image_ref" --format 'image {{.Id}}: {{.Size}} bytes' |
  awk '{printf "%s %s %.1f MiB\n", $1, $2, $3/1048576}'

# 5. Checks.
say "checking the image"
user=$("${PODMAN[@]}" image inspect "$image_ref" --format '{{.Config.User}}')
[ "$user" = "10001:10001" ] || fail "the image's user is '$user', not 10001:10001"
echo "user: $user (non-root)"

# A private RabbitMQ node for the production start.
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
node=knut-image-$$@localhost
node_dir=$work/rabbit
rabbit_env() {
  env -i PATH="$PATH" HOME="$node_dir" LANG=C.UTF-8 \
    RABBITMQ_NODENAME="$node" RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 \
    RABBITMQ_NODE_PORT="$amqp_port" RABBITMQ_DIST_PORT="$dist_port" \
    RABBITMQ_MNESIA_BASE="$node_dir/mnesia" RABBITMQ_LOG_BASE="$node_dir/log" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$node_dir/enabled_plugins" \
    RABBITMQ_CONFIG_FILE="$node_dir/rabbitmq.conf" RABBITMQ_CONF_ENV_FILE="$node_dir/rabbitmq-env.conf" \
    RABBITMQ_PID_FILE="$node_dir/rabbitmq.pid" ERL_EPMD_ADDRESS=127.0.0.1 \
    PATH="/usr/lib/rabbitmq/bin:$PATH" "$@"
}
amqp_port=$(free_port)
dist_port=$(free_port)
mkdir -p "$node_dir/mnesia" "$node_dir/log"
printf '[].\n' >"$node_dir/enabled_plugins"
printf 'listeners.tcp.default = 127.0.0.1:%s\nloopback_users.guest = true\nlog.console = false\n' "$amqp_port" >"$node_dir/rabbitmq.conf"
: >"$node_dir/rabbitmq-env.conf"

# Production environment (as an operator's env file holds it): generated secrets.
secret() { head -c 36 /dev/urandom | base64 | tr -d '/+='; }
internal_pw=$(secret)
external_pw=$(secret)
admin_key=$(secret)
ports=()
for _ in 1 2 3 4; do ports+=("$(free_port)"); done
envfile=$work/knut.env
{
  echo "KNUT__BROKER__URL=amqp://knut-internal:$internal_pw@127.0.0.1:$amqp_port/knut-internal"
  echo "KNUT__EXTERNAL__BROKER_URL=amqp://knut-external:$external_pw@127.0.0.1:$amqp_port/knut-external"
  echo "KNUT__EXTERNAL__BRIDGE_URL=amqp://knut-internal:$internal_pw@127.0.0.1:$amqp_port/knut-external"
  echo "KNUT__HTTP__BIND=127.0.0.1:${ports[0]}"
  echo "KNUT__ADMIN__BIND=127.0.0.1:${ports[1]}"
  echo "KNUT__EXTERNAL__HTTP_BIND=127.0.0.1:${ports[2]}"
  echo "KNUT__EXTERNAL__ADMIN_BIND=127.0.0.1:${ports[3]}"
  echo "KNUT_AUDIT_KEY=$(secret)$(secret)"
  echo "KNUT_OEP_PUSH_PASSWORD=$(secret)"
  echo "KNUT_ADMIN_KEY_MONITORING=$admin_key"
  echo "KNUT_ADMIN_KEY_INTEGRATION=$(secret)"
  # Traces on, as compose has them, to a collector that is not there (knut warns, and runs).
  echo "KNUT__TELEMETRY__OTLP_ENDPOINT=http://127.0.0.1:$(free_port)"
  for f in adapters/*.yaml; do
    name=$(basename "$f" .yaml)
    echo "KNUT_ADAPTER_$(echo "$name" | tr 'a-z-' 'A-Z_')_URL=https://$name.sundsvall.example"
  done
} >"$envfile"
chmod 0600 "$envfile"
admin=http://127.0.0.1:${ports[1]}

# How the image is run: podman, or chrooted in its mounted file system.
mode=${KNUT_IMAGE_CHECK:-auto}
# podman (as root) raises RLIMIT_NOFILE/NPROC by default; without CAP_SYS_RESOURCE (a
# sandbox) that fails, so the container keeps this shell's limits.
# (Not even at the shell's own process limit: runc refuses that too; 4096 is plenty.)
nproc=$(ulimit -Su)
if [ "$nproc" = unlimited ] || [ "$nproc" -gt 4096 ]; then nproc=4096; fi
limits=(--ulimit "nofile=$(ulimit -Sn):$(ulimit -Sn)" --ulimit "nproc=$nproc:$nproc")
if [ "$mode" != chroot ]; then
  if out=$("${PODMAN[@]}" run --rm --network none "${limits[@]}" "$image_ref" version 2>&1); then
    mode=podman
  elif [ "$mode" = podman ]; then
    fail "podman cannot run the image: $out"
  else
    printf '\nWARNING: podman cannot run a container on this machine:\n  %s run --rm %s version\n  %s\nChecking the image by running its file system chrooted instead (NOT a container run).\n' \
      "${PODMAN[*]}" "$image_ref" "$out" >&2
    mode=chroot
  fi
fi
if [ "$mode" = chroot ]; then
  # A copy of the image's file system as podman stores it, with the configuration where
  # the container would have it mounted.
  mnt=$("${PODMAN[@]}" image mount "$image_ref")
  mounted=1
  croot=$work/chroot
  mkdir -p "$croot"
  cp -a "$mnt/." "$croot/"
  "${PODMAN[@]}" image unmount "$image_ref" >/dev/null
  mounted=
  install -m 0644 deploy/knut.production.toml "$croot/knut/knut.toml"
  in_image() { chroot --userspec=10001:10001 "$croot" "$@"; }
  out=$(in_image /usr/local/bin/knut version 2>&1) || fail "knut version in the image's file system: $out"
fi
echo "knut version (in the image, $mode): $out"
[ "$out" = "knut $version" ] || fail "expected 'knut $version', got '$out'"

# No shell or other program in the image: only the binary.
if [ "$mode" = podman ]; then
  if "${PODMAN[@]}" run --rm --network none "${limits[@]}" --entrypoint /bin/sh "$image_ref" -c true >/dev/null 2>&1; then
    fail "the image has a shell"
  fi
else
  [ ! -e "$croot/bin/sh" ] && [ ! -e "$croot/usr/bin/sh" ] || fail "the image has a shell"
fi
echo "no shell in the image"

say "a private RabbitMQ node on 127.0.0.1:$amqp_port with knut's topology"
rabbit_env sh -c 'setsid rabbitmq-server >>"$0" 2>&1 </dev/null & echo $!' "$node_dir/server.log" >"$node_dir/launcher.pid"
node_pid=$(cat "$node_dir/launcher.pid")
started=
for _ in $(seq 1 60); do
  if rabbit_env rabbitmqctl -n "$node" -q await_startup --timeout 5 >/dev/null 2>&1; then started=1; break; fi
  sleep 2
done
[ -n "$started" ] || { tail -20 "$node_dir/server.log" >&2; fail "the private RabbitMQ node did not start"; }
defs=$work/definitions.json
if [ "$mode" = podman ]; then
  "${PODMAN[@]}" run --rm --network none "${limits[@]}" -v "$repo/deploy/knut.production.toml:/knut/knut.toml:ro" \
    "$image_ref" topology --vhost knut-internal --external-vhost knut-external >"$defs"
else
  in_image /usr/local/bin/knut --root /knut topology --vhost knut-internal --external-vhost knut-external >"$defs"
fi
python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print("topology: %d vhosts, %d users, %d exchanges, %d queues, %d bindings" % tuple(len(d[k]) for k in ("vhosts","users","exchanges","queues","bindings")))' "$defs"
rabbit_env rabbitmqctl -n "$node" -q import_definitions "$defs" >/dev/null
rabbit_env rabbitmqctl -n "$node" -q change_password knut-internal "$internal_pw" >/dev/null
rabbit_env rabbitmqctl -n "$node" -q change_password knut-external "$external_pw" >/dev/null

say "knut run (production, read-only root file system) from the image ($mode)"
log=$work/knut.log
if [ "$mode" = podman ]; then
  container=$("${PODMAN[@]}" run -d --network host "${limits[@]}" --read-only \
    --tmpfs /knut/data:rw,mode=0700,U --tmpfs /tmp:rw,mode=1777 \
    --env-file "$envfile" -v "$repo/deploy/knut.production.toml:/knut/knut.toml:ro" \
    "$image_ref" run)
  logs() { "${PODMAN[@]}" logs "$container" 2>&1; }
  running() { [ "$("${PODMAN[@]}" inspect "$container" --format '{{.State.Running}}')" = true ]; }
else
  # uid 10001 can write only /knut/data, /knut/inbox and /tmp there, as in the image.
  # The copy in $croot (podman's mount of the image is unmounted by now), with knut.toml.
  (set -a; . "$envfile"; set +a; exec chroot --userspec=10001:10001 "$croot" /usr/local/bin/knut --root /knut run) >"$log" 2>&1 &
  knut_pid=$!
  logs() { cat "$log"; }
  running() { kill -0 "$knut_pid" 2>/dev/null; }
fi
status() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$admin$1" || true; }
ready=
for _ in $(seq 1 120); do
  if ! running; then logs | tail -30 >&2; fail "knut exited at start"; fi
  if [ "$(status /readyz)" = 200 ]; then ready=1; break; fi
  sleep 1
done
[ -n "$ready" ] || { logs | tail -30 >&2; fail "/readyz did not answer 200 within 120 s (last: $(status /readyz))"; }
health=$(curl -s --max-time 2 "$admin/healthz")
echo "GET /healthz: $(status /healthz) $health"
echo "GET /readyz: $(status /readyz)"
[ "$(status /healthz)" = 200 ] || fail "/healthz did not answer 200"
routes=$(curl -s --max-time 5 -H "authorization: Bearer $admin_key" "$admin/api/routes" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo '?')
echo "GET /api/routes (monitoring key): $routes routes"
metrics=$(curl -s --max-time 5 "$admin/metrics" | grep -c '^knut_' || true)
echo "GET /metrics: $metrics knut_ samples"
# No personal identity number in the log: a personnummer or samordningsnummer (YYMMDD or
# YYYYMMDD, -/+ or nothing, four digits; a valid date, the day +60 for a samordningsnummer;
# the Luhn check digit right), not inside a longer run of letters or digits (trace ids,
# timestamps). A match fails the build; the line is shown with the number masked.
pnr_check() {
  python3 -c '
import re, sys
pat = re.compile(r"(?<![0-9A-Za-z])(?:(?:18|19|20)([0-9]{2})|([0-9]{2}))([0-9]{2})([0-9]{2})[-+]?([0-9]{4})(?![0-9A-Za-z])")
def luhn(d):
    s = 0
    for i, c in enumerate(d):
        n = int(c) * (2 if i % 2 == 0 else 1)
        s += n - 9 if n > 9 else n
    return s % 10 == 0
found = 0
for line in sys.stdin:
    hits = [m for m in pat.finditer(line)
            if 1 <= int(m.group(3)) <= 12 and (1 <= int(m.group(4)) <= 31 or 61 <= int(m.group(4)) <= 91)
            and luhn((m.group(1) or m.group(2)) + m.group(3) + m.group(4) + m.group(5))]
    for m in reversed(hits):
        line = line[:m.start()] + "<PERSONNUMMER>" + line[m.end():]
    if hits:
        found += 1
        sys.stderr.write("  " + line.rstrip("\n")[:300] + "\n")
sys.exit(1 if found else 0)
'
}
if ! logs | pnr_check; then
  fail "knut's log holds a personal identity number (lines above, masked): a log line must never carry one"
fi
echo "no personal identity number in knut's log"

say "SIGTERM"
if [ "$mode" = podman ]; then
  "${PODMAN[@]}" stop --time 40 "$container" >/dev/null
  code=$("${PODMAN[@]}" inspect "$container" --format '{{.State.ExitCode}}')
else
  kill -TERM "$knut_pid"
  code=0
  wait "$knut_pid" || code=$?
fi
[ "$code" = 0 ] || { logs | tail -30 >&2; fail "knut exited $code after SIGTERM"; }
echo "knut stopped: exit 0"

say "image $tag:$version built and checked ($mode)"
