#!/usr/bin/env bash
# Builds the sandbox image locally from a static (musl) runnerd and Debian's
# busybox-static, with podman or docker (ENGINE=...), pulling nothing.
#
#   host/sandbox-image/build.sh [IMAGE]     (default localhost/paddock-sandbox:latest)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
image="${1:-localhost/paddock-sandbox:latest}"
engine="${ENGINE:-$(command -v podman || command -v docker || true)}"
busybox="${BUSYBOX:-/bin/busybox}"
[ -n "$engine" ] || { echo "neither podman nor docker is installed" >&2; exit 1; }
[ -x "$busybox" ] || { echo "no static busybox at $busybox (apt-get install busybox-static)" >&2; exit 1; }

target="${CARGO_TARGET_DIR:-$here/../../target}"
rustup target add x86_64-unknown-linux-musl >/dev/null
(cd "$here/../.." && CARGO_TARGET_DIR="$target" cargo build -p paddock-runnerd --profile sandbox --target x86_64-unknown-linux-musl)
runnerd="$target/x86_64-unknown-linux-musl/sandbox/runnerd"

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
root="$ctx/rootfs"
mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,tmp,cache,home,proc,sys,dev,run}
mkdir -p "$ctx/owned/workspace" "$ctx/owned/home/sandbox"
install -m 0755 "$runnerd" "$root/usr/local/bin/runnerd"
install -m 0755 "$busybox" "$root/bin/busybox"
"$busybox" --list-full | while read -r applet; do
    case "$applet" in */*) [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet" ;; esac
done
chmod 1777 "$root/tmp" "$root/cache"
printf 'root:x:0:0:root:/root:/bin/sh\nsandbox:x:10001:10001:sandbox:/home/sandbox:/bin/sh\n' > "$root/etc/passwd"
printf 'root:x:0:\nsandbox:x:10001:\n' > "$root/etc/group"
"$engine" build -t "$image" -f "$here/Containerfile" "$ctx"
echo "$image"
