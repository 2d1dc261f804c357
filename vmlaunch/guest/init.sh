#!/bin/busybox sh
# The guest's init, from the initramfs that `vmlaunch image build` makes. Two stages:
#  1. (/init, in the initramfs) load the virtio modules, then build the real root: a tmpfs of
#     airlock.overlay bytes holding a copy of the initramfs, or, with a root disk (airlock.rootfs),
#     the disk mounted read-only under an overlay whose writable half is that tmpfs; switch to it.
#  2. (/sbin/airlock-init, in the new root) mount the API filesystems, write the CA trust that an
#     image built with --ca-cert carries, then exec the agent as PID 1. The agent gives the guest
#     its identity (hostname, eth0's MAC and address, the route via the gateway, resolv.conf, the
#     proxy variables): from the kernel arguments on a cold boot, or on the launcher's request in a
#     VM restored from a snapshot (which booted without a network). See guest/guest_identity.h.
# Kernel arguments: airlock.ip=A/30 airlock.gw=G airlock.proxy=URL airlock.overlay=SIZE
# airlock.rootfs=1 airlock.transport=virtio-serial|vsock airlock.hostname=NAME
bb=/bin/busybox
arg() { for w in $($bb cat /proc/cmdline); do case "$w" in "$1="*) echo "${w#*=}";; esac; done; }
fail() { echo "airlock-init: $*" >&2; $bb sleep 1; $bb reboot -f; }

if [ "$$" = 1 ] && [ "$0" = /init ]; then
  $bb mkdir -p /proc /sys /dev /newroot
  $bb mount -t proc proc /proc
  $bb mount -t devtmpfs dev /dev
  exec </dev/console >/dev/console 2>&1
  echo "airlock-init: booting"   # the launcher's sign that the guest runs at all
  for m in $($bb cat /etc/airlock/modules); do
    $bb insmod "/lib/modules/$m.ko" 2>/dev/null
  done
  size=$(arg airlock.overlay)
  [ -n "$size" ] || size=256M
  if [ "$(arg airlock.rootfs)" = 1 ]; then
    $bb mkdir -p /lower /rw
    $bb mount -t ext4 -o ro /dev/vda /lower || fail "cannot mount the root disk"
    $bb mount -t tmpfs -o "size=$size,mode=0755" rw /rw || fail "cannot make the overlay"
    $bb mkdir -p /rw/upper /rw/work
    $bb mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work root /newroot \
      || fail "cannot mount the overlay"
    $bb mkdir -p /newroot/sbin /newroot/bin /newroot/etc/airlock
    $bb cp /sbin/airlock-agent /sbin/airlock-init /newroot/sbin/
    $bb cp /etc/airlock/* /newroot/etc/airlock/
    [ -e /newroot/bin/busybox ] || $bb cp /bin/busybox /newroot/bin/busybox
  else
    $bb mount -t tmpfs -o "size=$size,mode=0755" root /newroot || fail "cannot make the root"
    for d in bin sbin etc lib root; do $bb cp -a "/$d" /newroot/; done
  fi
  $bb umount /proc
  $bb mount --move /dev /newroot/dev 2>/dev/null || $bb umount /dev
  exec $bb switch_root /newroot /sbin/airlock-init
fi

# Stage 2.
$bb mkdir -p /proc /sys /dev /tmp /run /root /usr/bin /usr/sbin /etc/profile.d
$bb mount -t proc proc /proc
$bb mount -t sysfs sys /sys
$bb mountpoint -q /dev || $bb mount -t devtmpfs dev /dev
exec </dev/console >/dev/console 2>&1
$bb mkdir -p /dev/pts /dev/shm
$bb mount -t devpts devpts /dev/pts
$bb chmod 1777 /tmp
[ -e /bin/sh ] || $bb --install -s
$bb hostname airlock
if [ -s /etc/airlock/ca.crt ]; then
  # The CA the image was built with next to the system's roots (a root disk has them), so that
  # inspected and passed-through TLS both verify.
  $bb cat /etc/ssl/certs/ca-certificates.crt /etc/airlock/ca.crt >/etc/airlock/ca-bundle.crt \
    2>/dev/null || $bb cp /etc/airlock/ca.crt /etc/airlock/ca-bundle.crt
  {
    for v in SSL_CERT_FILE REQUESTS_CA_BUNDLE GIT_SSL_CAINFO CURL_CA_BUNDLE; do
      echo "$v=/etc/airlock/ca-bundle.crt"
    done
    echo "NODE_EXTRA_CA_CERTS=/etc/airlock/ca.crt"
  } >/etc/airlock/env
fi
exec /sbin/airlock-agent
