#!/bin/sh
# The in-namespace half of one fbsd-ha lab node. labctl starts it as
#   unshare -m -u --propagation private /bin/sh node-init.sh boot NODE_DIR NAME ADDRESS LAB_DIR
# (new mount + UTS namespace, own session) and waits for NODE_DIR/ready. It stays alive as the
# node's anchor process. `node-init.sh sync NODE_DIR` (run by labctl through nsenter in a running
# node) refreshes /etc/hosts, /run/fbsd-lab/node.json and the installed stand-ins.
#
# Files labctl prepares in NODE_DIR before boot: overlays ("<dir> <key>" lines), hosts, node.json,
# install.plan ("<mode> <source> <destination>" lines), root/ (becomes /root), tmp/ (becomes /tmp).
# Files written here: pids (init=, mntns=, zfs=, sshd=, boot=; each as soon as it exists), ready,
# logs/{zfs-fuse,sshd,boot}.log. Never touch anything on the host outside NODE_DIR: every path
# below is written only after the overlay or tmpfs that makes it private is in place.
set -eu
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
HOST_SBIN=/run/fbsd-lab/host-sbin
ZPOOL=$HOST_SBIN/zpool
ZFS=$HOST_SBIN/zfs
POOL=zdata

log() { echo "node-init: $*"; }
die() { echo "node-init: ERROR: $*" >&2; exit 1; }

sync_node() {
    # Identity and stand-ins; safe to repeat. Runs inside the node's namespaces only.
    D=$1
    cp "$D/hosts" /etc/hosts
    mkdir -p /run/fbsd-lab
    cp "$D/node.json" /run/fbsd-lab/node.json.new && mv /run/fbsd-lab/node.json.new /run/fbsd-lab/node.json
    if [ -f "$D/install.plan" ]; then
        while read -r mode src dst; do
            [ -n "$dst" ] || continue
            mkdir -p "$(dirname "$dst")"
            cp "$src" "$dst.fbsd-lab-new" && chmod "$mode" "$dst.fbsd-lab-new" && mv -f "$dst.fbsd-lab-new" "$dst"
        done < "$D/install.plan"
    fi
}

if [ "${1:-}" = sync ]; then
    sync_node "$2"
    exit 0
fi
[ "${1:-}" = boot ] || die "usage: node-init.sh boot NODE_DIR NAME ADDRESS LAB_DIR | sync NODE_DIR"
D=$2 NAME=$3 ADDR=$4 LAB=$5
umask 022
PIDS=$D/pids
printf 'init=%s\nmntns=%s\n' "$$" "$(stat -L -c %i /proc/self/ns/mnt)" > "$PIDS"
[ "$(stat -L -c %i /proc/self/ns/mnt)" != "$(stat -L -c %i /proc/$PPID/ns/mnt 2>/dev/null)" ] || die "not in a private mount namespace"

# 1. Nothing mounted here propagates to the host.
mount --make-rprivate /
# 2. Private /run (Debian's /var/run and /var/lock point into it).
mount -t tmpfs -o mode=0755,size=64m fbsd-lab-run /run
mkdir -p /run/lock/zfs /run/zfs /run/sshd /run/fbsd-lab/host-sbin /run/fbsd-lab/shared
chmod 0755 /run/sshd
# 3. The host's real /usr/sbin, read-only, for stand-ins that wrap a real tool (zfs, zpool ...).
mount --bind /usr/sbin "$HOST_SBIN"
mount -o remount,bind,ro "$HOST_SBIN"
mount --bind "$LAB/shared" /run/fbsd-lab/shared
# 4. Overlays: writes land in NODE_DIR/ov/<key>/upper.
while read -r dir key; do
    [ -n "$key" ] || continue
    mount -t overlay "fbsd-lab-$key" \
        -o "lowerdir=$dir,upperdir=$D/ov/$key/upper,workdir=$D/ov/$key/work" "$dir"
done < "$D/overlays"
mount --bind "$D/root" /root
mount --bind "$D/tmp" /tmp
mkdir -p /zdata
# An empty private tmpfs under the pool mountpoint: if the pool is ever not mounted, writes to
# /zdata/... stay in the node instead of landing on the host's root file system.
mount -t tmpfs -o size=1m,mode=0755 fbsd-lab-zdata /zdata
# 5. Identity, /etc/hosts, node.json, stand-ins and the FreeBSD-looking interpreter.
hostname "$NAME"
echo "$NAME" > /etc/hostname
sync_node "$D"

# 6. zfs-fuse with a small ARC; its cache (/var/lib/zfs/zpool.cache) lives in the node's /var.
"$HOST_SBIN/zfs-fuse" --no-daemon --no-kstat-mount --max-arc-size 32 --pidfile /run/zfs-fuse.pid \
    >> "$D/logs/zfs-fuse.log" 2>&1 < /dev/null &
echo "zfs=$!" >> "$PIDS"
i=0
until [ -S /run/zfs/zfs_socket ]; do
    i=$((i + 1)); [ $i -lt 300 ] || die "zfs-fuse socket did not appear (see logs/zfs-fuse.log)"
    sleep 0.02
done

# 7. The pool: create on first boot, else re-import (after a crash it is already open from the cache).
if [ ! -f "$D/disks/$POOL.img" ]; then
    truncate -s "${FBSD_HA_LAB_POOL_SIZE:-256M}" "$D/disks/$POOL.img.new"
    mv "$D/disks/$POOL.img.new" "$D/disks/$POOL.img"
    $ZPOOL create -m /zdata "$POOL" "$D/disks/$POOL.img"
elif ! $ZPOOL list "$POOL" > /dev/null 2>&1; then
    # zfs-fuse may still be opening the pools in its cache: then import says "already imported".
    $ZPOOL import -d "$D/disks" "$POOL" 2>/dev/null || $ZPOOL import -f -d "$D/disks" "$POOL" 2>/dev/null ||
        { sleep 0.3; $ZPOOL list "$POOL" > /dev/null; } || $ZPOOL import -f -d "$D/disks" "$POOL"
fi
$ZFS mount -a || true
[ "$($ZFS get -H -o value mounted "$POOL")" = yes ] || $ZFS mount "$POOL"
[ "$($ZFS get -H -o value mounted "$POOL")" = yes ] || die "pool $POOL is not mounted"

# 8. sshd on the node's own address, with host keys of its own (kept across restarts so that the
#    lab's known_hosts stays valid; regenerated when the node is destroyed).
if [ ! -f /etc/ssh/.fbsd-lab-hostkey ]; then
    rm -f /etc/ssh/ssh_host_*
    ssh-keygen -q -t ed25519 -N '' -C "root@$NAME" -f /etc/ssh/ssh_host_ed25519_key
    echo "$NAME" > /etc/ssh/.fbsd-lab-hostkey
fi
mkdir -p /etc/ssh/sshd_config.d
rm -f /etc/ssh/sshd_config.d/*
cat > /etc/ssh/sshd_config <<EOF
# fbsd-ha lab node $NAME (written by tests/lab/node-init.sh at every boot)
ListenAddress $ADDR:22
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
UseDNS no
PrintMotd no
PrintLastLog no
MaxStartups 64:30:128
MaxSessions 64
AcceptEnv LANG LC_*
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
/usr/sbin/sshd -D -f /etc/ssh/sshd_config -E "$D/logs/sshd.log" < /dev/null &
echo "sshd=$!" >> "$PIDS"

# 9. The stand-ins' boot hook (starts what rc.conf enables, as FreeBSD's rc would).
if [ -x /usr/local/libexec/fbsd-lab/boot ]; then
    rc=0
    (cd / && HOME=/root timeout 120 /usr/local/libexec/fbsd-lab/boot) \
        >> "$D/logs/boot.log" 2>&1 < /dev/null || rc=$?
    echo "boot=$rc" >> "$PIDS"
fi

touch "$D/ready"
log "$NAME ready on $ADDR"
# 10. Stay alive as the namespace's anchor, reaping children.
exec 0<&- 1>&- 2>&-
while :; do
    sleep 3600 &
    wait || true
done
