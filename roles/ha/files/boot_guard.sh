#!/bin/sh
# freebsd_ha.storage:boot_guard - installed by the ha role's provisioning; see docs/boot_guard.md.
#
# boot_guard check          run at boot by rc.d/freebsd_ha_guard, before the writer services: for each resource of
#                           the configuration, keep this node the writer only when it can establish that it is the
#                           writer of the newest epoch; otherwise fence it (read-only datasets, writer services kept
#                           from starting, CARP backup). It never makes a node writable.
# boot_guard report [RES]   print this node's authority record of RES (or of $SSH_ORIGINAL_COMMAND: the forced
#                           command a peer's guard key runs), one line per dataset:
#                           <dataset> <writer|-> <epoch|-> <readonly on|off> <newest epoch in runbook snapshot names>
#                           or "<dataset> missing".
#
# Configuration (FREEBSD_HA_GUARD_CONF, default /usr/local/etc/freebsd_ha/guard.conf), one resource per line:
#   resource|this node|datasets here|writer services|zrepl push origin: yes/no|carp: "if vhid" or ""|peers: "name@address ..."
PATH=/sbin:/bin:/usr/sbin:/usr/bin:/usr/local/sbin:/usr/local/bin
export PATH

conf=${FREEBSD_HA_GUARD_CONF:-/usr/local/etc/freebsd_ha/guard.conf}
key=${FREEBSD_HA_GUARD_KEY:-/usr/local/etc/freebsd_ha/guard_ed25519}
wait=${FREEBSD_HA_GUARD_WAIT:-30}
override_dir=${FREEBSD_HA_GUARD_OVERRIDE_DIR:-/usr/local/etc/rc.conf.d}
marker="# freebsd_ha.storage:boot_guard"
# carp(4): advskew + demotion is capped at 240, the value a fully demoted node advertises.
backup_skew=240

say() { echo "freebsd_ha_guard: $*"; logger -t freebsd_ha_guard "$*" 2>/dev/null || true; }

# The value of one property of one dataset ("" when the dataset does not exist).
prop() { zfs get -H -o value "$2" "$1" 2>/dev/null; }

# The highest N of the runbook snapshots (ha_<runbook>_eN) of a dataset: a snapshot received from a writer of
# epoch N proves that epoch existed even where the dataset's own record is older.
seen_epoch() {
	zfs list -H -t snapshot -o name -d 1 "$1" 2>/dev/null |
	    sed -n 's/^[^@]*@ha_[a-z]*_e\([0-9][0-9]*\)$/\1/p' | sort -n | tail -1
}

report() {
	res=$1
	case "$res" in ''|*[!A-Za-z0-9_.-]*) echo "error: bad resource name" >&2; return 2 ;; esac
	line=$(grep "^$res|" "$conf" 2>/dev/null | head -1)
	[ -n "$line" ] || { echo "error: no resource $res here" >&2; return 2; }
	datasets=$(echo "$line" | cut -d'|' -f3)
	for ds in $datasets; do
		if ! zfs list -H -o name "$ds" >/dev/null 2>&1; then
			echo "$ds missing"
			continue
		fi
		writer=$(prop "$ds" freebsd-ha:writer)
		epoch=$(prop "$ds" freebsd-ha:epoch)
		seen=$(seen_epoch "$ds")
		echo "$ds ${writer:--} ${epoch:--} $(prop "$ds" readonly) ${seen:-0}"
	done
}

num() { case "$1" in ''|*[!0-9]*) echo 0 ;; *) echo "$1" ;; esac; }

# Why this node may NOT stay the writer of the resource (empty: it may, as far as its own datasets tell).
local_objection() {
	self=$1; datasets=$2; epoch=""
	for ds in $datasets; do
		zfs list -H -o name "$ds" >/dev/null 2>&1 || { echo "$ds does not exist"; return; }
		[ "$(prop "$ds" readonly)" = off ] || { echo "$ds is read-only (a follower)"; return; }
		w=$(prop "$ds" freebsd-ha:writer)
		[ "$w" = "$self" ] || { echo "$ds records writer ${w:--}, not $self"; return; }
		e=$(num "$(prop "$ds" freebsd-ha:epoch)")
		[ -z "$epoch" ] || [ "$e" = "$epoch" ] || { echo "its datasets record different epochs"; return; }
		epoch=$e
		s=$(num "$(seen_epoch "$ds")")
		[ "$s" -le "$e" ] || { echo "$ds holds a snapshot of epoch $s, newer than its record $e"; return; }
	done
	echo "ok $epoch"
}

# Why a peer's report keeps this node from staying the writer of epoch $3 (empty: it does not).
peer_objection() {
	peer=$1; self=$2; epoch=$3; out=$4
	[ -n "$out" ] || { echo "$peer gave no record ($(tail -1 "$errors" 2>/dev/null))"; return; }
	# The loop runs in a pipeline's subshell: it reports the first objection and stops.
	echo "$out" | while read -r ds w e ro s; do
		[ "$w" = missing ] && continue
		e=$(num "$e"); s=$(num "$s")
		[ "$e" -lt "$epoch" ] || { [ "$e" -eq "$epoch" ] && [ "$w" = "$self" ]; } ||
		    { echo "$peer records epoch $e held by $w"; break; }
		[ "$ro" = on ] || { echo "$peer has $ds writable"; break; }
		[ "$s" -le "$epoch" ] || { echo "$peer holds a snapshot of epoch $s"; break; }
	done
}

# The peer's authorized_keys runs "boot_guard report" for this key whatever is asked (a forced command).
# Its stderr goes to $errors, so an objection can say why a peer gave no record.
ask_peer() {
	ssh -n -i "$key" -o IdentitiesOnly=yes -o BatchMode=yes -o ConnectTimeout=5 "root@$1" "$2" 2>"$errors"
}

rcvar_of() {
	service "$1" rcvar 2>/dev/null | sed -n 's/^\([A-Za-z_][A-Za-z0-9_]*\)=.*/\1/p' | head -1
}

# Keep a service from starting in this boot and the next ones, until a boot finds the node the writer again:
# /etc/rc reads rc.conf once, but load_rc_config reads rc.conf.d/<name> again for each script.
hold_service() {
	svc=$1; why=$2; file="$override_dir/$svc"
	if [ -e "$file" ] && ! grep -q "^$marker" "$file"; then
		say "$file exists and is not ours; $svc is not held back"
		return
	fi
	rcvar=$(rcvar_of "$svc")
	[ -n "$rcvar" ] || { say "no rcvar for $svc; not held back"; return; }
	mkdir -p "$override_dir"
	printf '%s\n# %s\n%s="NO"\n' "$marker" "$why" "$rcvar" >"$file"
}

release_service() {
	file="$override_dir/$1"
	[ -f "$file" ] && grep -q "^$marker" "$file" && rm -f "$file"
	return 0
}

fence() {
	res=$1; datasets=$2; carp=$3
	for ds in $datasets; do
		[ "$(prop "$ds" readonly)" = off ] && zfs set readonly=on "$ds" && say "$res: $ds set read-only"
	done
	if [ -n "$carp" ]; then
		set -- $carp
		ifconfig "$1" vhid "$2" advskew $backup_skew >/dev/null 2>&1 &&
		    ifconfig "$1" vhid "$2" state backup >/dev/null 2>&1 && say "$res: CARP $1 vhid $2 forced to BACKUP"
	fi
}

check() {
	[ -r "$conf" ] || { say "no $conf: nothing to guard"; return 0; }
	# Only the objection messages read it: without a temporary file the guard decides the same, less verbosely.
	errors=$(mktemp -t freebsd_ha_guard.XXXXXX) || errors=/dev/null
	held=""; released=""
	# One pass per resource; a service any fenced resource needs is held even if another resource releases it.
	while IFS='|' read -r res self datasets services origin carp peers; do
		case "$res" in ''|'#'*) continue ;; esac
		verdict=$(local_objection "$self" "$datasets")
		case "$verdict" in
		"ok "*)
			epoch=${verdict#ok }
			objection=""
			deadline=$(($(date +%s) + wait))
			for p in $peers; do
				name=${p%%@*}; address=${p#*@}
				until out=$(ask_peer "$address" "$res") && [ -n "$out" ]; do
					[ "$(date +%s)" -lt "$deadline" ] || break
					sleep 2
				done
				objection=$(peer_objection "$name" "$self" "$epoch" "$out")
				[ -z "$objection" ] || break
			done
			;;
		*) objection=$verdict ;;
		esac
		if [ -z "$objection" ]; then
			say "$res: $self stays the writer of epoch $epoch (confirmed by ${peers:-no peer})"
			released="$released $services"
			[ "$origin" = yes ] && released="$released zrepl"
		else
			say "$res: $self is fenced: $objection"
			fence "$res" "$datasets" "$carp"
			why="fenced at boot $(date -u +%Y-%m-%dT%H:%M:%SZ): $res: $objection"
			for svc in $services; do hold_service "$svc" "$why"; held="$held $svc"; done
			# A fenced zrepl origin must not push its stale copy into the new writer's datasets.
			[ "$origin" = yes ] && { hold_service zrepl "$why"; held="$held zrepl"; }
		fi
	done <"$conf"
	for svc in $released; do
		case " $held " in *" $svc "*) ;; *) release_service "$svc" ;; esac
	done
	[ "$errors" = /dev/null ] || rm -f "$errors"
	return 0
}

case "${1:-check}" in
check) check ;;
report) report "${2:-$SSH_ORIGINAL_COMMAND}" ;;
*) echo "usage: boot_guard check | report RESOURCE" >&2; exit 2 ;;
esac
