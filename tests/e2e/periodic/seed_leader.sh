#!/bin/sh
# Run on the leader (first argument: its node name, then the followers): make the resource `svc` of the periodic
# replication test. The leader writes zdata/svc/a and zdata/svc/b (epoch 1); every follower holds read-only
# copies under the same names, seeded with a full send of one snapshot. Does nothing if the leader has them.
set -e
leader=$1
shift
zfs list -H -o name zdata/svc/b >/dev/null 2>&1 && exit 0
for ds in a b; do
    zfs create -p -o mountpoint=/svc/$ds zdata/svc/$ds
    zfs set freebsd-ha:writer="$leader" zdata/svc/$ds
    zfs set freebsd-ha:epoch=1 zdata/svc/$ds
    dd if=/dev/urandom of=/svc/$ds/seed bs=1k count=256 status=none
    zfs snapshot zdata/svc/$ds@seed
done
for follower in "$@"; do
    ssh "$follower" zfs create -p -o mountpoint=none zdata/svc
    for ds in a b; do
        zfs send zdata/svc/$ds@seed | ssh "$follower" zfs recv -u zdata/svc/$ds
        ssh "$follower" "zfs set readonly=on zdata/svc/$ds && zfs set mountpoint=/svc/$ds zdata/svc/$ds \
            && zfs set freebsd-ha:writer=$leader zdata/svc/$ds && zfs set freebsd-ha:epoch=1 zdata/svc/$ds \
            && { [ \$(zfs get -H -o value mounted zdata/svc/$ds) = yes ] || zfs mount zdata/svc/$ds; }"
    done
done
