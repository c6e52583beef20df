#!/usr/bin/env bash
# The project's single-node Slurm cluster for tests and demos (Debian slurm-wlm + munge, no systemd).
#   scripts/slurm.sh start | stop | status | rest-url | jwt-key
# Daemons: munged, slurmctld, slurmd on 127.0.0.1 (ports 6817/6818) and slurmrestd (Slurm's REST
# API, JWT authentication, on $UWS_SLURMRESTD_PORT, default 6820; its key: `jwt-key`); state, logs and pid files in
# $UWS_SLURM_DIR (default /tmp/uws-slurm). Writes /etc/slurm/slurm.conf. Partitions: "debug"
# (default), "short" (max 30 minutes) and "gpu". The node advertises $UWS_SLURM_CPUS CPUs (default
# 16, more than the machine has: test jobs are small) so several jobs run at once, and
# $UWS_SLURM_GPUS stand-in GPUs (default 2): `--gres=gpu:N` is scheduled and counted like real
# GPUs. Slurm 22.05 drops GPUs without device files, so /etc/slurm/gres.conf names stand-in
# character devices $UWS_SLURM_DIR/dev/gpu<i> (the null device's numbers; nothing binds them).
set -euo pipefail
. "$(dirname "$0")/lib.sh"
S=${UWS_SLURM_DIR:-/tmp/uws-slurm}
HOST=$(hostname -s)

stop() {
  if [ -f "$S/slurmctld.pid" ] && kill -0 "$(cat "$S/slurmctld.pid")" 2>/dev/null; then
    timeout 10 scancel --state=PENDING,RUNNING --full --quiet $(squeue -h -o %i 2>/dev/null) 2>/dev/null || true
  fi
  for p in slurmrestd slurmd slurmctld; do kill_pidfile "$S/$p.pid" "$p"; done
  kill_pidfile /run/munge/munged.pid munged
}

REST_PORT=${UWS_SLURMRESTD_PORT:-6820}
case "${1:-start}" in
  stop) stop; exit 0 ;;
  status) sinfo 2>&1; squeue 2>&1; exit 0 ;;
  rest-url) echo "http://127.0.0.1:$REST_PORT"; exit 0 ;;
  jwt-key) echo "$S/state/jwt_hs256.key"; exit 0 ;;
  start) ;;
  *) die "usage: scripts/slurm.sh start|stop|status" ;;
esac

is_root || die "scripts/slurm.sh start needs root (it runs munged and the Slurm daemons)"
command -v slurmctld >/dev/null && command -v munged >/dev/null && command -v sbatch >/dev/null \
  && command -v slurmrestd >/dev/null && ls /usr/lib/*/slurm-wlm/auth_jwt.so >/dev/null 2>&1 \
  || apt_install slurm-wlm slurmctld slurmd slurm-client slurmrestd slurm-wlm-jwt-plugin munge
mkdir -p "$S/state" "$S/spool" "$S/log" /etc/slurm

CPUS=${UWS_SLURM_CPUS:-16}
MEM=${UWS_SLURM_MEM:-16000}
GPUS=${UWS_SLURM_GPUS:-2}
[ "$GPUS" -ge 1 ] 2>/dev/null || die "UWS_SLURM_GPUS must be a whole number of at least 1, got $GPUS"
conf=$(cat <<CONF
# written by uws_hub scripts/slurm.sh
ClusterName=uws
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$S/state/jwt_hs256.key
StateSaveLocation=$S/state
SlurmdSpoolDir=$S/spool
SlurmctldPidFile=$S/slurmctld.pid
SlurmdPidFile=$S/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
SlurmctldPort=6817
SlurmdPort=6818
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
DefMemPerCPU=500
JobAcctGatherType=jobacct_gather/linux
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$S/log/jobcomp.txt
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,batch_sched_delay=0,sched_min_interval=0
MinJobAge=600
InactiveLimit=0
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=300
MessageTimeout=10
GresTypes=gpu
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM} Gres=gpu:${GPUS} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
PartitionName=short Nodes=ALL Default=NO MaxTime=30 State=UP OverSubscribe=NO
PartitionName=gpu Nodes=ALL Default=NO MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
)
# slurmrestd's auth/jwt: the key slurmctld checks tokens with (root's only); whoever holds it
# can mint a token for anyone (the hub does, per person: uws_hub.slurm.rest). $S may be under
# /tmp: its state directory must be root's and closed, and the key a regular file of root's
# (one planted by someone else, or a link, is replaced)
changed=0
for d in "$S" "$S/state"; do
  [ "$(stat -c %u "$d")" = 0 ] && [ ! -L "$d" ] || die "$d is not root's: remove it and start again"
done
chmod go-w "$S"; chmod 700 "$S/state"
key="$S/state/jwt_hs256.key"
if [ -L "$key" ] || { [ -e "$key" ] && { [ ! -f "$key" ] || [ "$(stat -c %u "$key")" != 0 ]; }; }; then
  rm -f "$key"
fi
if [ ! -s "$key" ]; then
  (umask 077; dd if=/dev/urandom of="$key" bs=32 count=1 status=none)
  changed=1  # a running slurmctld still has the old key
fi
chmod 600 "$key"
if [ "$(cat /etc/slurm/slurm.conf 2>/dev/null)" != "$conf" ]; then
  printf '%s\n' "$conf" > /etc/slurm/slurm.conf
  changed=1
fi
# the GPUs slurmd reports (fewer than the node's Gres=gpu:N: the node is drained). Count-only
# GPUs (no File=) are dropped by Slurm 22.05, so each gets a stand-in device (as /dev/null)
mkdir -p "$S/dev"
for i in $(seq 0 $((GPUS - 1))); do
  [ -c "$S/dev/gpu$i" ] || { rm -f "$S/dev/gpu$i"; mknod -m 0666 "$S/dev/gpu$i" c 1 3; }
done
gres="# written by uws_hub scripts/slurm.sh: stand-in GPUs
Name=gpu File=$S/dev/gpu[0-$((GPUS - 1))]"
if [ "$(cat /etc/slurm/gres.conf 2>/dev/null)" != "$gres" ]; then
  printf '%s\n' "$gres" > /etc/slurm/gres.conf
  changed=1
fi

# munged runs as the munge account and needs its runtime directories
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
[ -f /etc/munge/munge.key ] || { /usr/sbin/mungekey --create >/dev/null 2>&1 || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged   # pid file: /run/munge/munged.pid
  for _ in $(seq 1 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.25; done
fi
munge -n | unmunge | grep -q 'STATUS: *Success' || die "munge does not work (see /var/log/munge)"

running() { [ -f "$S/$1.pid" ] && kill -0 "$(cat "$S/$1.pid")" 2>/dev/null; }
if [ $changed = 1 ] || ! running slurmctld || ! running slurmd; then
  kill_pidfile "$S/slurmd.pid" slurmd >/dev/null 2>&1; kill_pidfile "$S/slurmctld.pid" slurmctld >/dev/null 2>&1
  /usr/sbin/slurmctld
  /usr/sbin/slurmd
fi
for _ in $(seq 1 60); do
  state=$(sinfo -h -o '%T' -p debug 2>/dev/null | head -n 1 || true)
  case "$state" in idle*|mix*|alloc*) break ;; esac
  # down, or drained by an earlier configuration (e.g. fewer GPUs than declared): resume it
  case "$state" in down|down\*|drain*) scontrol update nodename="$HOST" state=resume 2>/dev/null ;; esac
  sleep 0.5
done
case "$(sinfo -h -o '%T' -p debug 2>/dev/null | head -n 1)" in
  idle*|mix*|alloc*) log "Slurm up: $(sinfo -h -o '%P %D %c %T' | tr '\n' ' ')(slurmctld pid $(cat "$S/slurmctld.pid"))" ;;
  *) tail -n 20 "$S/log/slurmctld.log" >&2; die "Slurm did not become ready (logs in $S/log)" ;;
esac

# slurmrestd (Slurm's REST API) on 127.0.0.1:$REST_PORT with JWT authentication. It refuses to
# run as root (-u drops to the slurmrest account after binding) and needs SLURM_JWT=daemon;
# it accepts tokens of ordinary users only (not root, not the SlurmUser).
id slurmrest >/dev/null 2>&1 || useradd -r -M -s /usr/sbin/nologin slurmrest
if [ $changed = 1 ] || ! running slurmrestd; then
  kill_pidfile "$S/slurmrestd.pid" slurmrestd >/dev/null 2>&1
  (cd / && SLURM_JWT=daemon exec setsid /usr/sbin/slurmrestd -u slurmrest -a rest_auth/jwt \
    -s openapi/v0.0.38 "127.0.0.1:$REST_PORT") > "$S/log/slurmrestd.log" 2>&1 < /dev/null &
  echo $! > "$S/slurmrestd.pid"
fi
for _ in $(seq 1 40); do
  code=$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$REST_PORT/slurm/v0.0.38/ping" || true)
  running slurmrestd || code=dead   # (another process on the port answers, ours died)
  case "$code" in 200|401|dead) break ;; esac   # 401 without a token: it answers
  sleep 0.25
done
case "$code" in
  200|401) log "slurmrestd up on http://127.0.0.1:$REST_PORT (pid $(cat "$S/slurmrestd.pid"); JWT key $S/state/jwt_hs256.key)" ;;
  *) tail -n 20 "$S/log/slurmrestd.log" >&2; die "slurmrestd did not answer (log: $S/log/slurmrestd.log)" ;;
esac
