#!/bin/sh
# The hand-written baseline for benchmarks/move_leader.py: move the leader of DATASET... (same names on f0, f1, f2;
# last common snapshot @seed) from f0 to f1 with a shell loop over ssh from the operator's machine.
#   manual_move.sh SSH_CONFIG DATASET...
# Fence and snapshot on f0; send each increment to f1 and f2 in parallel; prove the guids; promote f1.
# Prints "ssh_calls <host> <n>" per host and "bytes <n>" (all streams, counted by dd on f0).
set -eu
cfg=$1
shift
calls=$(mktemp)
trap 'rm -f "$calls"' EXIT
on() { # on HOST SCRIPT: one ssh round trip from this machine (counted in a file: $(on ...) runs in a subshell)
    host=$1
    shift
    echo "$host" >>"$calls"
    ssh -F "$cfg" -o BatchMode=yes "$host" "$*"
}
on f0 "for ds in $*; do zfs set readonly=on \$ds && zfs snapshot \$ds@man_move; done"
on f0 "rm -f /tmp/man-bytes.*; for f in f1 f2; do (for ds in $*; do zfs send -I @seed \$ds@man_move \
    | dd bs=128k 2>>/tmp/man-bytes.\$f | ssh \$f zfs recv -u \$ds || exit 1; done) & done; wait"
bytes=$(on f0 "cat /tmp/man-bytes.* | awk '/bytes/ {s += \$1} END {print s + 0}'")
list=""
for ds in "$@"; do list="$list $ds@man_move"; done
want=$(on f0 "zfs get -H -p -o value guid $list")
for f in f1 f2; do
    [ "$(on $f "zfs get -H -p -o value guid $list")" = "$want" ] || { echo "$f lacks the final snapshot" >&2; exit 1; }
done
on f1 "for ds in $*; do zfs set readonly=off \$ds && zfs set freebsd-ha:writer=f1 \$ds && zfs set freebsd-ha:epoch=2 \$ds; done"
for host in f0 f1 f2; do echo "ssh_calls $host $(grep -c "^$host\$" "$calls")"; done
echo "bytes $bytes"
