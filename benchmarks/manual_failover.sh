#!/bin/sh
# The manual runbook as a baseline for benchmarks/failover.py: the same steps as playbooks/failover.yml and
# failback.yml, typed by hand over ssh from the operator's machine, for zrepl-style pairs (writer f0 holds DS,
# f1 holds the read-only replica zdata/sink/f0/DS, last common snapshot @zrepl_seed).
#   manual_failover.sh failover SSH_CONFIG DS...   f0 -> f1: fence, final snapshot, send, prove, promote
#   manual_failover.sh failback SSH_CONFIG DS...   f1 -> f0: fence, snapshot, roll f0 back, send increment, promote
# Prints "ssh_calls <host> <n>" per host and "bytes <n>" (the streams counted by dd on the sending node).
set -eu
step=$1 cfg=$2
shift 2
calls=$(mktemp)
trap 'rm -f "$calls"' EXIT
on() { # on HOST SCRIPT: one ssh round trip from this machine (counted in a file: $(on ...) runs in a subshell)
    host=$1
    shift
    echo "$host" >>"$calls"
    ssh -F "$cfg" -o BatchMode=yes "$host" "$*"
}
replicas=""
for ds in "$@"; do replicas="$replicas zdata/sink/f0/$ds"; done
guids() { # guids HOST SNAPSHOT DATASETS...: the snapshots' guids, in order
    host=$1 snap=$2
    shift 2
    list=""
    for ds in "$@"; do list="$list $ds@$snap"; done
    on "$host" "zfs get -H -p -o value guid $list"
}
case $step in
failover)
    on f0 "for ds in $*; do zfs set readonly=on \$ds && zfs snapshot \$ds@man_final; done"
    on f0 "rm -f /tmp/man-bytes; for ds in $*; do zfs send -I @zrepl_seed \$ds@man_final | dd bs=128k 2>>/tmp/man-bytes \
        | ssh f1 zfs recv -u zdata/sink/f0/\$ds || exit 1; done"
    bytes=$(on f0 "awk '/bytes/ {s += \$1} END {print s + 0}' /tmp/man-bytes")
    [ "$(guids f0 man_final "$@")" = "$(guids f1 man_final $replicas)" ] || { echo "guids differ" >&2; exit 1; }
    on f1 "for r in $replicas; do zfs set readonly=off \$r && zfs set freebsd-ha:writer=f1 \$r \
        && zfs set freebsd-ha:epoch=2 \$r; done"
    ;;
failback)
    on f1 "for r in $replicas; do zfs set readonly=on \$r && zfs snapshot \$r@man_back; done"
    on f0 "for ds in $*; do zfs rollback -r \$ds@man_final; done"
    on f1 "rm -f /tmp/man-bytes; for ds in $*; do zfs send -I @man_final zdata/sink/f0/\$ds@man_back \
        | dd bs=128k 2>>/tmp/man-bytes | ssh f0 zfs recv -u \$ds || exit 1; done"
    bytes=$(on f1 "awk '/bytes/ {s += \$1} END {print s + 0}' /tmp/man-bytes")
    [ "$(guids f1 man_back $replicas)" = "$(guids f0 man_back "$@")" ] || { echo "guids differ" >&2; exit 1; }
    on f0 "for ds in $*; do zfs set readonly=off \$ds && zfs set freebsd-ha:writer=f0 \$ds \
        && zfs set freebsd-ha:epoch=3 \$ds; done"
    ;;
*)
    echo "usage: $0 failover|failback SSH_CONFIG DATASET..." >&2
    exit 2
    ;;
esac
echo "ssh_calls f0 $(grep -c '^f0$' "$calls")"
echo "ssh_calls f1 $(grep -c '^f1$' "$calls")"
echo "bytes $bytes"
