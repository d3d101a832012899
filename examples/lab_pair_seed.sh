#!/bin/sh
# Run on lab node f0: make f0/f1 a replicating pair like a zrepl pair (the lab stand-in for provision_pair.yml):
# f0 writes zdata/enc/nfsdata at /data/nfs (epoch 1, nfsd and mountd running), f1 holds its read-only replica
# zdata/sink/f0/zdata/enc/nfsdata mounted at the same path. Does nothing if the pair exists already.
set -e
origin=zdata/enc/nfsdata
replica=zdata/sink/f0/$origin
zfs list -H -o name "$origin" >/dev/null 2>&1 && exit 0
zfs create -p -o mountpoint=/data/nfs "$origin"
zfs set freebsd-ha:writer=f0 "$origin"
zfs set freebsd-ha:epoch=1 "$origin"
dd if=/dev/urandom of=/data/nfs/seed bs=1k count=2048 status=none
zfs snapshot "$origin@zrepl_20261121_120000_000"
ssh f1 zfs create -p zdata/sink/f0/zdata/enc
zfs send "$origin@zrepl_20261121_120000_000" | ssh f1 zfs recv -u "$replica"
# The replica records the writer and epoch it follows, so an unplanned promotion of f1 picks a higher epoch.
ssh f1 "zfs set readonly=on $replica && zfs set mountpoint=/data/nfs $replica && zfs set freebsd-ha:writer=f0 $replica \
  && zfs set freebsd-ha:epoch=1 $replica && zfs mount $replica"
sysrc nfs_server_enable=YES mountd_enable=YES >/dev/null
service mountd start >/dev/null
service nfsd start >/dev/null
