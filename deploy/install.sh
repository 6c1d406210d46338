#!/usr/bin/env bash
# Install stainless-edge on a device (Debian/Ubuntu/L4T with systemd), from a checkout of this repository:
#
#   sudo deploy/install.sh [--extras edge,metrics] [--prefix /opt/stainless] [--python python3.11]
#                          [--no-enable] [--dry-run]
#
# What it does (each step printed as it runs; --dry-run prints them only, needs no root):
#   1. a system user and group `stainless` (no login, no home), in the groups dialout and video;
#   2. the device code (core, firmware_bridge, edge) into PREFIX/src, a venv PREFIX/venv with
#      `pip install PREFIX/src[EXTRAS]` (add trt on NVIDIA, openvino on Intel CPUs);
#   3. /etc/stainless (config; deploy/configs/device.toml copied to device.toml unless one exists) and
#      /var/lib/stainless (models, engines, spool), owned by stainless, mode 0750;
#   4. the udev rule (deploy/udev/99-stainless.rules: /dev/stainless-led) and the systemd unit
#      (deploy/systemd/stainless-edge.service, ExecStart pointed at PREFIX), then daemon-reload and
#      `systemctl enable` (not start: flash a model and calibrate first, see the printed next steps).
# Re-running it upgrades the code and keeps the config, calibration, models and spool.
set -euo pipefail

SRC="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PREFIX=/opt/stainless
EXTRAS=edge,metrics
PYTHON=python3
ENABLE=1
DRY=0
ETC=/etc/stainless
STATE=/var/lib/stainless
UNIT_DIR=/etc/systemd/system
UDEV_DIR=/etc/udev/rules.d

usage() { sed -n '2,16p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; }

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="$2"; shift 2 ;;
        --extras) EXTRAS="$2"; shift 2 ;;
        --python) PYTHON="$2"; shift 2 ;;
        --no-enable) ENABLE=0; shift ;;
        --dry-run) DRY=1; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "install.sh: unknown option $1 (expected --prefix, --extras, --python, --no-enable, --dry-run)" >&2
           exit 2 ;;
    esac
done

run() {
    echo "+ $*"
    if [ "$DRY" = 0 ]; then "$@"; fi
}

if [ "$DRY" = 0 ] && [ "$(id -u)" != 0 ]; then
    echo "install.sh: run as root (sudo deploy/install.sh), or with --dry-run to see the steps" >&2
    exit 1
fi
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "install.sh: $PYTHON is missing or older than 3.11; install python3.11 and pass --python python3.11" >&2
    exit 1
fi

echo "== 1. user and group stainless"
if ! getent group stainless >/dev/null; then run groupadd --system stainless; fi
if ! id stainless >/dev/null 2>&1; then
    run useradd --system --gid stainless --groups dialout,video --no-create-home --home-dir "$STATE" \
        --shell /usr/sbin/nologin stainless
fi

echo "== 2. code and venv in $PREFIX"
run install -d -m 0755 "$PREFIX" "$PREFIX/src"
for item in pyproject.toml README.md core firmware_bridge edge deploy; do
    run rm -rf "${PREFIX:?}/src/$item"
    run cp -a "$SRC/$item" "$PREFIX/src/$item"
done
if [ ! -x "$PREFIX/venv/bin/python" ]; then run "$PYTHON" -m venv "$PREFIX/venv"; fi
run "$PREFIX/venv/bin/pip" install --quiet "$PREFIX/src[$EXTRAS]"

echo "== 3. $ETC and $STATE"
run install -d -o stainless -g stainless -m 0750 "$ETC" "$STATE"
if [ ! -e "$ETC/device.toml" ]; then
    run install -o stainless -g stainless -m 0640 "$SRC/deploy/configs/device.toml" "$ETC/device.toml"
fi

echo "== 4. udev rule and systemd unit"
run install -m 0644 "$SRC/deploy/udev/99-stainless.rules" "$UDEV_DIR/99-stainless.rules"
if command -v udevadm >/dev/null; then
    run udevadm control --reload-rules
    run udevadm trigger --subsystem-match=tty --subsystem-match=video4linux
fi
unit="$(mktemp)"
trap 'rm -f "$unit"' EXIT
sed "s|/opt/stainless/venv|$PREFIX/venv|g; s|/opt/stainless/src|$PREFIX/src|g" \
    "$SRC/deploy/systemd/stainless-edge.service" >"$unit"
run install -m 0644 "$unit" "$UNIT_DIR/stainless-edge.service"
if command -v systemd-analyze >/dev/null && [ "$DRY" = 0 ]; then
    run systemd-analyze verify "$UNIT_DIR/stainless-edge.service"
fi
run systemctl daemon-reload
if [ "$ENABLE" = 1 ]; then run systemctl enable stainless-edge.service; fi

cat <<EOF
== done. Next:
  1. edit $ETC/device.toml (LED port, camera, endpoints) and put the trusted signing key at $ETC/trusted.pub
  2. install a model bundle into $STATE/models (stainless-edge flash, or edge.device.bundle install)
  3. with a blank slide region under the objective:
       sudo -u stainless $PREFIX/venv/bin/stainless-edge calibrate --config $ETC/device.toml
  4. systemctl start stainless-edge; journalctl -u stainless-edge -f; systemctl status stainless-edge (STATUS= line)
EOF
