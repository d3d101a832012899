#!/bin/sh
# Run on the leader: make it the writer (epoch 1) of the datasets given as <dataset>:<mountpoint> arguments, with
# some data and a first snapshot, and every node named in $FOLLOWERS a read-only follower holding that snapshot
# (recording writer and epoch it follows), mounted at the same path. The lab stand-in for provisioning N nodes.
set -e
leader=$(hostname)
for spec in "$@"; do
  ds=${spec%%:*}
  mp=${spec#*:}
  zfs create -p -o mountpoint="$mp" "$ds"
  zfs set freebsd-ha:writer="$leader" "$ds"
  zfs set freebsd-ha:epoch=1 "$ds"
  dd if=/dev/urandom of="$mp/seed" bs=1k count="${SEED_KB:-256}" status=none
  zfs snapshot "$ds@seed"
  for node in $FOLLOWERS; do
    ssh "$node" zfs create -p "${ds%/*}"
    zfs send "$ds@seed" | ssh "$node" zfs recv -u "$ds"
    ssh "$node" "zfs set readonly=on $ds && zfs set mountpoint=$mp $ds && zfs set freebsd-ha:writer=$leader $ds \
      && zfs set freebsd-ha:epoch=1 $ds && zfs mount $ds"
  done
done
