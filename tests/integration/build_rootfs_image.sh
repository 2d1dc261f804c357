#!/usr/bin/env bash
# The guest image with a Debian root disk (debootstrap: curl, git, python3) and a throw-away test
# CA baked in, for test_microvm.py's root-disk test; outside the test namespace, because
# debootstrap and apt-get download need the Debian archive. The CA lives in the build tree
# (0700) and signs the test's upstream certificate; it is made once, so the image stays cached.
# Usage: build_rootfs_image.sh BUILD_DIR
set -euo pipefail
build=$1
ca=$build/test-ca
mkdir -p "$ca"
chmod 700 "$ca"
if [ ! -s "$ca/ca.crt" ] || [ ! -s "$ca/ca.key" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 3650 \
    -keyout "$ca/ca.key" -out "$ca/ca.crt" -subj "/CN=Airlock test CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign" \
    2>/dev/null
fi
exec "$build/vmlaunch/vmlaunch" image build --cache "$build/rootfs-image-cache" --rootfs \
  --ca-cert "$ca/ca.crt"
