#!/usr/bin/env bash
# The project's OpenLDAP server for tests and demos (Debian slapd 2.5, started by hand: no systemd).
#   scripts/ldap.sh start | stop | status
# An isolated slapd of its own: cn=config (slapd.d), MDB database, pid file, log and ldapi socket in
# $UWS_LDAP_DIR (default /tmp/uws-ldap). The package's own instance (/etc/ldap/slapd.d, port 389) is
# never configured, started or used. Listens on ldap://127.0.0.1:$UWS_LDAP_PORT/ (default 3890) and
# ldapi://$UWS_LDAP_DIR/ldapi; runs as the openldap account.
# Directory: suffix dc=uws,dc=test with ou=people and ou=groups (no users: tests add their own).
# Admin: cn=admin,dc=uws,dc=test, password $UWS_LDAP_ADMIN_PASSWORD (default "uws-admin-pw"); root
# over the ldapi socket is admin too (SASL EXTERNAL), also of cn=config.
# Schemas: core, cosine, nis (posixAccount, posixGroup), inetorgperson. Equality indexes on
# objectClass, uid, uidNumber, gidNumber, memberUid, member, mail, cn.
# ACLs: userPassword is never readable; anyone may use it to bind (simple bind with the user's
# own password) and a user may change their own. Everything else is readable anonymously (anonymous
# search works, no service bind DN is needed). Only the admin writes.
# The database survives stop/start; the config is rebuilt when the port or password changes.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
D=${UWS_LDAP_DIR:-/tmp/uws-ldap}
PORT=${UWS_LDAP_PORT:-3890}
ADMIN_PW=${UWS_LDAP_ADMIN_PASSWORD:-uws-admin-pw}
SUFFIX=dc=uws,dc=test
ADMIN_DN=cn=admin,$SUFFIX
URL=ldap://127.0.0.1:$PORT/
LDAPI=ldapi://$(printf %s "$D/ldapi" | sed 's|/|%2F|g')
PIDF=$D/slapd.pid

answers() { timeout 3 ldapsearch -x -LLL -o nettimeout=2 -H "$URL" -b "$SUFFIX" -s base dn >/dev/null 2>&1; }
# slapd's pid file is live when that process runs slapd on this directory (zombies have no cmdline)
running() { [ -f "$PIDF" ] && tr '\0' ' ' < "/proc/$(cat "$PIDF")/cmdline" 2>/dev/null | grep -q -- "-F $D/slapd.d"; }

# stop_slapd: TERM, then wait until the process has exited. A zombie counts as gone: PID 1 on these
# machines reaps orphans only every ~1.5 s, and the ports and files are released at exit already.
stop_slapd() {
  local pid state
  if running; then
    pid=$(cat "$PIDF")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 200); do
      state=$(awk '/^State:/ {print $2}' "/proc/$pid/status" 2>/dev/null || true)
      { [ -z "$state" ] || [ "$state" = Z ]; } && break
      sleep 0.05
    done
    { [ -z "$state" ] || [ "$state" = Z ]; } || kill -9 "$pid" 2>/dev/null || true
    log "slapd stopped (pid $pid)"
  fi
  rm -f "$PIDF"
}

case "${1:-start}" in
  stop) stop_slapd; exit 0 ;;
  status)
    if command -v ldapsearch >/dev/null && answers; then
      log "slapd up on $URL (pid $(cat "$PIDF" 2>/dev/null || echo '?'), base $SUFFIX)"; exit 0
    fi
    log "slapd not answering on $URL"; exit 1 ;;
  start) ;;
  *) die "usage: scripts/ldap.sh start|stop|status" ;;
esac

is_root || die "scripts/ldap.sh start needs root (it runs slapd as the openldap account)"
exec 9>"$D.lock"; flock -w 60 9 || die "another scripts/ldap.sh start holds $D.lock"   # parallel starts
if [ ! -x /usr/sbin/slapd ] || ! command -v ldapsearch >/dev/null || ! command -v slappasswd >/dev/null; then
  # Without a configuration the package's postinst neither builds /etc/ldap/slapd.d nor starts slapd;
  # a policy-rc.d that forbids starting services covers machines that lack one.
  echo 'slapd slapd/no_configuration boolean true' | debconf-set-selections
  tmp_policy=
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    tmp_policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' > "$tmp_policy"; chmod 755 "$tmp_policy"
  fi
  apt_install slapd ldap-utils
  [ -n "$tmp_policy" ] && rm -f "$tmp_policy"
fi
SLAPD=/usr/sbin/slapd
id openldap >/dev/null 2>&1 || die "the slapd package did not create the openldap account"

# cn=config: the inputs' checksum (the password in clear) decides whether to rebuild it; the
# file slapd reads gets the password hashed.
config() {
  cat <<LDIF
dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: $PIDF
olcArgsFile: $D/slapd.args
olcLogLevel: none

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif

include: file:///etc/ldap/schema/cosine.ldif

include: file:///etc/ldap/schema/nis.ldif

include: file:///etc/ldap/schema/inetorgperson.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcSizeLimit: 5000

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: $SUFFIX
olcDbDirectory: $D/db
olcRootDN: $ADMIN_DN
olcRootPW: $1
olcDbMaxSize: 1073741824
olcDbNoSync: TRUE
olcDbIndex: objectClass eq
olcDbIndex: uid eq
olcDbIndex: uidNumber eq
olcDbIndex: gidNumber eq
olcDbIndex: memberUid eq
olcDbIndex: member eq
olcDbIndex: mail eq
olcDbIndex: cn eq
olcAccess: {0}to * by dn.exact=gidNumber=0+uidNumber=0,cn=peercred,cn=external,cn=auth manage by * break
olcAccess: {1}to attrs=userPassword by self write by anonymous auth by * none
olcAccess: {2}to attrs=shadowLastChange by self write by * read
olcAccess: {3}to * by * read
LDIF
}
sum=$( { config "$ADMIN_PW"; echo "$URL"; } | sha256sum | cut -c1-64)
if running && [ "$(cat "$D/config.sum" 2>/dev/null)" = "$sum" ] && answers; then
  log "slapd already up on $URL (pid $(cat "$PIDF"), base $SUFFIX)"
  exit 0
fi
stop_slapd 2>/dev/null

mkdir -p "$D/db"
if [ "$(cat "$D/config.sum" 2>/dev/null)" != "$sum" ] || [ ! -d "$D/slapd.d/cn=config" ]; then
  rm -rf "$D/slapd.d" "$D/config.sum"
  mkdir -p "$D/slapd.d"
  config "$(slappasswd -h '{SSHA}' -s "$ADMIN_PW")" > "$D/config.ldif"
  slapadd -n0 -F "$D/slapd.d" -l "$D/config.ldif" >"$D/slapadd.log" 2>&1 \
    || { cat "$D/slapadd.log" >&2; die "slapadd of cn=config failed (LDIF in $D/config.ldif)"; }
  rm -f "$D/config.ldif"
  echo "$sum" > "$D/config.sum"
fi
if ! slapcat -F "$D/slapd.d" -b "$SUFFIX" -a "(ou=groups)" 2>/dev/null | grep -q '^dn: ou=groups'; then
  rm -rf "$D/db"; mkdir -p "$D/db"   # new, or broken: start from the base entries again
  slapadd -F "$D/slapd.d" -b "$SUFFIX" >"$D/slapadd.log" 2>&1 <<LDIF || { cat "$D/slapadd.log" >&2; die "slapadd of the base entries failed"; }
dn: $SUFFIX
objectClass: dcObject
objectClass: organization
dc: uws
o: uws_hub tests

dn: ou=people,$SUFFIX
objectClass: organizationalUnit
ou: people

dn: ou=groups,$SUFFIX
objectClass: organizationalUnit
ou: groups
LDIF
fi
chown -R openldap:openldap "$D"
chmod 750 "$D/slapd.d" "$D/db"
chmod 755 "$D"   # the ldapi socket and the pid file are for everyone to see

if ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q .; then
  die "port $PORT is taken by another process (set UWS_LDAP_PORT): $(ss -Hltnp "sport = :$PORT" | tr -s ' ')"
fi
"$SLAPD" -h "$URL $LDAPI" -u openldap -g openldap -F "$D/slapd.d" 2>"$D/slapd.log" 9>&- \
  || { cat "$D/slapd.log" >&2; die "slapd did not start (log above)"; }
for _ in $(seq 1 100); do answers && break; sleep 0.05; done
answers || { cat "$D/slapd.log" >&2; die "slapd does not answer on $URL (log in $D/slapd.log)"; }
log "slapd up on $URL (pid $(cat "$PIDF"), base $SUFFIX, admin $ADMIN_DN)"
