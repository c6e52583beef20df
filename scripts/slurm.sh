#!/usr/bin/env bash
# The project's single-node Slurm clusters for tests and demos (Debian slurm-wlm + munge, no systemd).
#   scripts/slurm.sh start | stop | status | rest-url [2] | jwt-key [2] | conf [2] | start2 | stop2
# Daemons: munged, slurmctld, slurmd on 127.0.0.1 (ports 6817/6818) and slurmrestd (Slurm's REST
# API, JWT authentication, on $UWS_SLURMRESTD_PORT, default 6820; its key: `jwt-key`); state, logs and pid files in
# $UWS_SLURM_DIR (default /tmp/uws-slurm). Writes /etc/slurm/slurm.conf. Partitions: "debug"
# (default), "short" (max 30 minutes) and "gpu". The node advertises $UWS_SLURM_CPUS CPUs (default
# 16, more than the machine has: test jobs are small) so several jobs run at once, and
# $UWS_SLURM_GPUS stand-in GPUs (default 2): `--gres=gpu:N` is scheduled and counted like real
# GPUs. Slurm 22.05 drops GPUs without device files, so /etc/slurm/gres.conf names stand-in
# character devices $UWS_SLURM_DIR/dev/gpu<i> (the null device's numbers; nothing binds them).
#
# A second cluster, "uws2" (unless UWS_SLURM_SECOND=0; `start2`/`stop2` alone): its own
# slurmctld, slurmd and slurmrestd on this machine with their own configuration
# (/etc/slurm-uws2/slurm.conf: SLURM_CONF=... for its commands), ports (6827/6828, slurmrestd
# $UWS_SLURMRESTD2_PORT default 6821), key, spool, state and logs ($UWS_SLURM2_DIR, default
# /tmp/uws-slurm2); one partition "batch" of $UWS_SLURM2_CPUS CPUs (default 8). Both clusters
# share munge. Tests run jobs on both, and stop one to see the other go on.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
S=${UWS_SLURM_DIR:-/tmp/uws-slurm}
HOST=$(hostname -s)

S2=${UWS_SLURM2_DIR:-/tmp/uws-slurm2}
CONF2=/etc/slurm-uws2/slurm.conf
REST_PORT=${UWS_SLURMRESTD_PORT:-6820}
REST2_PORT=${UWS_SLURMRESTD2_PORT:-6821}

stop_cluster() {  # DIR CONF
  if [ -f "$1/slurmctld.pid" ] && kill -0 "$(cat "$1/slurmctld.pid")" 2>/dev/null; then
    SLURM_CONF=$2 timeout 10 scancel --state=PENDING,RUNNING --full --quiet \
      $(SLURM_CONF=$2 squeue -h -o %i 2>/dev/null) 2>/dev/null || true
  fi
  for p in slurmrestd slurmd slurmctld; do kill_pidfile "$1/$p.pid" "$p"; done
}

stop() {
  stop_cluster "$S2" "$CONF2"
  kill_pidfile "$S2/slurmdbd.pid" slurmdbd
  kill_pidfile "$S2/mariadb/mysqld.pid" mariadbd
  stop_cluster "$S" /etc/slurm/slurm.conf
  kill_pidfile /run/munge/munged.pid munged
}

second() { [ "${2:-}" = 2 ]; }
case "${1:-start}" in
  stop) stop; exit 0 ;;
  stop2) stop_cluster "$S2" "$CONF2"; exit 0 ;;
  status) sinfo 2>&1; squeue 2>&1; SLURM_CONF=$CONF2 sinfo 2>&1; exit 0 ;;
  rest-url) if second "$@"; then echo "http://127.0.0.1:$REST2_PORT"; else echo "http://127.0.0.1:$REST_PORT"; fi; exit 0 ;;
  jwt-key) if second "$@"; then echo "$S2/state/jwt_hs256.key"; else echo "$S/state/jwt_hs256.key"; fi; exit 0 ;;
  conf) if second "$@"; then echo "$CONF2"; else echo /etc/slurm/slurm.conf; fi; exit 0 ;;
  start|start2) ;;
  *) die "usage: scripts/slurm.sh start|stop|status|start2|stop2|rest-url [2]|jwt-key [2]|conf [2]" ;;
esac

# slurmrestd's auth/jwt: the key slurmctld checks tokens with (root's only); whoever holds it
# can mint a token for anyone (the hub does, per person: uws_hub.slurm.rest). DIR may be under
# /tmp: its state directory must be root's and closed, and the key a regular file of root's
# (one planted by someone else, or a link, is replaced). Sets changed=1 for a new key.
ensure_key() {  # DIR
  local d key
  for d in "$1" "$1/state"; do
    [ "$(stat -c %u "$d")" = 0 ] && [ ! -L "$d" ] || die "$d is not root's: remove it and start again"
  done
  chmod go-w "$1"; chmod 700 "$1/state"
  key="$1/state/jwt_hs256.key"
  if [ -L "$key" ] || { [ -e "$key" ] && { [ ! -f "$key" ] || [ "$(stat -c %u "$key")" != 0 ]; }; }; then
    rm -f "$key"
  fi
  if [ ! -s "$key" ]; then
    (umask 077; dd if=/dev/urandom of="$key" bs=32 count=1 status=none)
    changed=1  # a running slurmctld still has the old key
  fi
  chmod 600 "$key"
}

running() { [ -f "$1/$2.pid" ] && kill -0 "$(cat "$1/$2.pid")" 2>/dev/null; }

# slurmrestd (Slurm's REST API) on 127.0.0.1:PORT with JWT authentication. It refuses to run as
# root (-u drops to the slurmrest account after binding) and needs SLURM_JWT=daemon; it accepts
# tokens of ordinary users (the hub never mints one for root or the SlurmUser).
start_rest() {  # DIR CONF PORT [PLUGINS]
  id slurmrest >/dev/null 2>&1 || useradd -r -M -s /usr/sbin/nologin slurmrest
  if [ $changed = 1 ] || ! running "$1" slurmrestd; then
    kill_pidfile "$1/slurmrestd.pid" slurmrestd >/dev/null 2>&1
    (cd / && SLURM_CONF=$2 SLURM_JWT=daemon exec setsid /usr/sbin/slurmrestd -u slurmrest \
      -a rest_auth/jwt -s "${4:-openapi/v0.0.38}" "127.0.0.1:$3") > "$1/log/slurmrestd.log" 2>&1 < /dev/null &
    echo $! > "$1/slurmrestd.pid"
  fi
  local code=
  for _ in $(seq 1 40); do
    code=$(curl -s --max-time 2 -o /dev/null -w '%{http_code}' "http://127.0.0.1:$3/slurm/v0.0.38/ping" || true)
    running "$1" slurmrestd || code=dead   # (another process on the port answers, ours died)
    case "$code" in 200|401|dead) break ;; esac   # 401 without a token: it answers
    sleep 0.25
  done
  case "$code" in
    200|401) log "slurmrestd up on http://127.0.0.1:$3 (pid $(cat "$1/slurmrestd.pid"); JWT key $1/state/jwt_hs256.key)" ;;
    *) tail -n 20 "$1/log/slurmrestd.log" >&2; die "slurmrestd did not answer (log: $1/log/slurmrestd.log)" ;;
  esac
}

# the settings both test clusters share: base_conf NAME DIR SLURMCTLD_PORT SLURMD_PORT [ACCOUNTING]
base_conf() {
  cat <<CONF
ClusterName=$1
SlurmctldHost=${HOST}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$2/state/jwt_hs256.key
StateSaveLocation=$2/state
SlurmdSpoolDir=$2/spool
SlurmctldPidFile=$2/slurmctld.pid
SlurmdPidFile=$2/slurmd.pid
SlurmctldLogFile=$2/log/slurmctld.log
SlurmdLogFile=$2/log/slurmd.log
SlurmctldPort=$3
SlurmdPort=$4
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
DefMemPerCPU=500
JobAcctGatherType=jobacct_gather/linux
${5:-AccountingStorageType=accounting_storage/none}
JobCompType=jobcomp/filetxt
JobCompLoc=$2/log/jobcomp.txt
ReturnToService=2
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2,batch_sched_delay=0,sched_min_interval=0,bf_interval=2
MinJobAge=600
InactiveLimit=0
KillWait=5
SlurmctldTimeout=30
SlurmdTimeout=300
MessageTimeout=10
CONF
}

# The second cluster's accounting: slurmdbd with MariaDB, both on 127.0.0.1 (ports 6829 and
# 3316), data and logs in $S2/mariadb and $S2/log. It gives the cluster `sacct` and slurmrestd's
# /slurmdb endpoints (a job the controller has forgotten is found there) and a Slurm operator,
# $OPERATOR (AdminLevel=Operator: may raise time limits, as uws_hub's extensions need).
OPERATOR=uwst-slurmop
start_accounting() {
  command -v mariadbd >/dev/null && command -v slurmdbd >/dev/null \
    || apt_install mariadb-server slurmdbd
  local M=$S2/mariadb pw
  id "$OPERATOR" >/dev/null 2>&1 || useradd -M -s /usr/sbin/nologin "$OPERATOR"
  if [ ! -d "$M/mysql" ]; then
    mkdir -p "$M" && chown mysql:mysql "$M"
    mariadb-install-db --user=mysql --datadir="$M" --auth-root-authentication-method=socket \
      --skip-test-db >/dev/null 2>&1 || die "mariadb-install-db failed"
  fi
  if ! running "$M" mysqld; then
    (setsid mariadbd --user=mysql --datadir="$M" --socket="$M/mysqld.sock" \
      --pid-file="$M/mysqld.pid" --port=3316 --bind-address=127.0.0.1 --log-error="$M/error.log" \
      --innodb-buffer-pool-size=32M --skip-name-resolve > /dev/null 2>&1 < /dev/null &)
    for _ in $(seq 1 60); do
      mariadb --socket="$M/mysqld.sock" -e 'SELECT 1' >/dev/null 2>&1 && break; sleep 0.25
    done
  fi
  mariadb --socket="$M/mysqld.sock" -e 'SELECT 1' >/dev/null 2>&1 \
    || { tail -n 20 "$M/error.log" >&2; die "MariaDB did not start (log: $M/error.log)"; }
  [ -s "$S2/state/dbpass" ] || (umask 077; head -c 18 /dev/urandom | base64 | tr -d '/+=' > "$S2/state/dbpass")
  pw=$(cat "$S2/state/dbpass")
  # (on standard input: a password in the arguments could be read by anyone, in ps)
  mariadb --socket="$M/mysqld.sock" <<SQL
CREATE DATABASE IF NOT EXISTS slurm_acct_db;
CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$pw';
ALTER USER 'slurm'@'127.0.0.1' IDENTIFIED BY '$pw';
GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
SQL
  local dbd
  dbd=$(cat <<DBD
# written by uws_hub scripts/slurm.sh: the second test cluster's accounting
AuthType=auth/munge
AuthAltTypes=auth/jwt
AuthAltParameters=jwt_key=$S2/state/jwt_hs256.key
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6829
SlurmUser=root
LogFile=$S2/log/slurmdbd.log
PidFile=$S2/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3316
StorageLoc=slurm_acct_db
StorageUser=slurm
StoragePass=$pw
DBD
)
  local dbconf
  dbconf="$(dirname "$CONF2")/slurmdbd.conf"
  if [ "$(cat "$dbconf" 2>/dev/null)" != "$dbd" ] || [ "$changed" = 1 ]; then
    # a new configuration, or a new key (slurmdbd checks /slurmdb tokens with it)
    (umask 077; printf '%s\n' "$dbd" > "$dbconf")
    kill_pidfile "$S2/slurmdbd.pid" slurmdbd >/dev/null 2>&1
  fi
  chmod 600 "$dbconf"
  running "$S2" slurmdbd || SLURM_CONF=$CONF2 /usr/sbin/slurmdbd
  for _ in $(seq 1 60); do
    SLURM_CONF=$CONF2 sacctmgr -n show cluster >/dev/null 2>&1 && break; sleep 0.25
  done
  SLURM_CONF=$CONF2 sacctmgr -n show cluster >/dev/null 2>&1 \
    || { tail -n 20 "$S2/log/slurmdbd.log" >&2; die "slurmdbd did not answer (log: $S2/log/slurmdbd.log)"; }
  if ! SLURM_CONF=$CONF2 sacctmgr -n -P show cluster format=cluster | grep -qx uws2; then
    SLURM_CONF=$CONF2 sacctmgr -i add cluster uws2 >/dev/null
    changed=1  # slurmctld registers with a cluster that exists
  fi
  SLURM_CONF=$CONF2 sacctmgr -i add account uws Cluster=uws2 Description=uws_hub-tests \
    Organization=uws >/dev/null 2>&1 || true
  SLURM_CONF=$CONF2 sacctmgr -n -P show user "$OPERATOR" format=adminlevel | grep -qx Operator \
    || SLURM_CONF=$CONF2 sacctmgr -i add user "$OPERATOR" Account=uws AdminLevel=Operator >/dev/null
}

is_root || die "scripts/slurm.sh start needs root (it runs munged and the Slurm daemons)"
command -v slurmctld >/dev/null && command -v munged >/dev/null && command -v sbatch >/dev/null \
  && command -v slurmrestd >/dev/null && ls /usr/lib/*/slurm-wlm/auth_jwt.so >/dev/null 2>&1 \
  || apt_install slurm-wlm slurmctld slurmd slurm-client slurmrestd slurm-wlm-jwt-plugin munge
# munged runs as the munge account and needs its runtime directories
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
[ -f /etc/munge/munge.key ] || { /usr/sbin/mungekey --create >/dev/null 2>&1 || dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none; chown munge:munge /etc/munge/munge.key; chmod 400 /etc/munge/munge.key; }
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged   # pid file: /run/munge/munged.pid
  for _ in $(seq 1 20); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.25; done
fi
munge -n | unmunge | grep -q 'STATUS: *Success' || die "munge does not work (see /var/log/munge)"

if [ "${1:-start}" = start ]; then  # (cluster 1; start2 starts the second alone)
mkdir -p "$S/state" "$S/spool" "$S/log" /etc/slurm

CPUS=${UWS_SLURM_CPUS:-16}
MEM=${UWS_SLURM_MEM:-16000}
GPUS=${UWS_SLURM_GPUS:-2}
[ "$GPUS" -ge 1 ] 2>/dev/null || die "UWS_SLURM_GPUS must be a whole number of at least 1, got $GPUS"
conf=$(cat <<CONF
# written by uws_hub scripts/slurm.sh
$(base_conf uws "$S" 6817 6818)
GresTypes=gpu
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${CPUS} RealMemory=${MEM} Gres=gpu:${GPUS} State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
PartitionName=short Nodes=ALL Default=NO MaxTime=30 State=UP OverSubscribe=NO
PartitionName=gpu Nodes=ALL Default=NO MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
)
changed=0
ensure_key "$S"
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


if [ $changed = 1 ] || ! running "$S" slurmctld || ! running "$S" slurmd; then
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
start_rest "$S" /etc/slurm/slurm.conf "$REST_PORT"
fi  # (cluster 1)

[ "${UWS_SLURM_SECOND:-1}" = 0 ] && [ "${1:-start}" = start ] && exit 0

# ---- the second cluster, "uws2" ------------------------------------------------------------
mkdir -p "$S2/state" "$S2/spool" "$S2/log" "$(dirname "$CONF2")"
changed=0
ensure_key "$S2"
CPUS2=${UWS_SLURM2_CPUS:-8}
conf2=$(cat <<CONF
# written by uws_hub scripts/slurm.sh: the second test cluster
$(base_conf uws2 "$S2" 6827 6828 "AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=6829")
FirstJobId=500000
NodeName=${HOST} NodeAddr=127.0.0.1 CPUs=${CPUS2} RealMemory=8000 State=UNKNOWN
PartitionName=batch Nodes=ALL Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
)
if [ "$(cat "$CONF2" 2>/dev/null)" != "$conf2" ]; then
  printf '%s\n' "$conf2" > "$CONF2"
  changed=1
fi
start_accounting  # (sacctmgr reads the cluster's slurm.conf: written first)
if [ $changed = 1 ] || ! running "$S2" slurmctld || ! running "$S2" slurmd; then
  kill_pidfile "$S2/slurmd.pid" slurmd >/dev/null 2>&1; kill_pidfile "$S2/slurmctld.pid" slurmctld >/dev/null 2>&1
  SLURM_CONF=$CONF2 /usr/sbin/slurmctld -f "$CONF2"
  SLURM_CONF=$CONF2 /usr/sbin/slurmd -f "$CONF2"
fi
for _ in $(seq 1 60); do
  state=$(SLURM_CONF=$CONF2 sinfo -h -o '%T' -p batch 2>/dev/null | head -n 1 || true)
  case "$state" in idle*|mix*|alloc*) break ;; esac
  case "$state" in down|down\*|drain*) SLURM_CONF=$CONF2 scontrol update nodename="$HOST" state=resume 2>/dev/null ;; esac
  sleep 0.5
done
case "$(SLURM_CONF=$CONF2 sinfo -h -o '%T' -p batch 2>/dev/null | head -n 1)" in
  idle*|mix*|alloc*) log "Slurm cluster uws2 up: $(SLURM_CONF=$CONF2 sinfo -h -o '%P %D %c %T' | tr '\n' ' ')(slurmctld pid $(cat "$S2/slurmctld.pid"))" ;;
  *) tail -n 20 "$S2/log/slurmctld.log" "$S2/log/slurmd.log" >&2; die "Slurm cluster uws2 did not become ready (logs in $S2/log)" ;;
esac
start_rest "$S2" "$CONF2" "$REST2_PORT" openapi/v0.0.38,openapi/dbv0.0.38
