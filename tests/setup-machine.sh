#!/usr/bin/env bash
# Installs what the test suite talks to for real: nmap, iproute2 and the lab's services (network-namespace lab),
# Prometheus/promtool and Alertmanager, PAM tools, WeasyPrint's libraries, Chromium, LibreOffice Calc, and a running
# PostgreSQL on 127.0.0.1:5432 (trust auth, database `test`). Idempotent; needs root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
for pair in nmap:nmap ip:iproute2 promtool:prometheus prometheus-alertmanager:prometheus-alertmanager \
            pg_ctlcluster:postgresql-common psql:postgresql-client rpm:rpm \
            chromium:chromium amtool:prometheus-alertmanager \
            utmpdump:util-linux last:util-linux ss:iproute2 dpkg-deb:dpkg \
            pdftotext:poppler-utils \
            libreoffice:libreoffice-calc; do  # pdftotext: the 通报 PDF's text (tests/test_notices_loop.py);
  # libreoffice: record.xlsx printed as an office prints it (tests/test_evidence_record_sheets.py; ~25 s to install)
  command -v "${pair%%:*}" >/dev/null 2>&1 || need+=("${pair#*:}")
done
[ -d /usr/lib/postgresql ] || need+=(postgresql)
# Real restic and borg repositories and a pgBackRest stanza made by tests/test_backup_real.py (the backup.copies probe reads them).
command -v restic >/dev/null 2>&1 || need+=(restic)
command -v borg >/dev/null 2>&1 || need+=(borgbackup)
command -v pgbackrest >/dev/null 2>&1 || need+=(pgbackrest)
# A CJK font so Chromium's screenshots and WeasyPrint's PDFs of the (Chinese) HTML reports show text, not boxes.
[ -e /usr/share/fonts/truetype/wqy/wqy-microhei.ttc ] || need+=(fonts-wqy-microhei)
# WeasyPrint (PDF evidence) loads Pango and HarfBuzz through cffi at run time; real PAM stacks are run with
# pamtester and pam_pwquality with its cracklib dictionary (tests/test_pam_real.py); the namespace lab runs real
# snmpd, memcached, sshd and vsftpd behind an nftables rule, and nginx with Basic auth (tests/test_network_real.py,
# tests/test_http_basic_real.py), each started by the tests on lab addresses; sudo and ClamAV's sigtool give the
# expected answers of tests/test_sudo_real.py and tests/test_antimalware_real.py.
# tests/test_object_nginx_real.py and test_object_httpd_real.py start copies of nginx's and apache2's stock
# configurations on free loopback ports (openssl s_client gives the expected TLS answers); the rectified apache2
# loads mod_evasive.
# tests/test_object_mysql_*.py run mariadbd, mariadb-install-db, my_print_defaults and the mariadb client
# (mariadb-server, mariadb-client) and make a test certificate with openssl.
# tests/test_object_redis_real.py runs redis-server as its redis account; tests/test_object_tomcat_real.py runs
# tomcat10 with tomcat10-admin (manager, host-manager) in a network namespace and asks it with curl.
# tests/test_mgmt_source_real.py asks tcpd's tcpdmatch whether hosts.allow/hosts.deny let a client reach sshd.
for pkg in libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 pamtester libpam-pwquality libpwquality-tools \
           cracklib-runtime snmpd memcached openssh-server vsftpd nftables nginx sudo clamav \
           redis-server mariadb-server mariadb-client openssl inetutils-inetd inetutils-telnetd apache2 \
           libapache2-mod-evasive tomcat10 tomcat10-admin curl tcpd; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'ok installed' || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  # Packaged daemons must not start on install (they would listen on this machine's own addresses): a
  # policy-rc.d that refuses every start, unless the machine already has one.
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    guard=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' > "$guard" && chmod 755 "$guard"
  fi
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  [ -z "$guard" ] || rm -f "$guard"
fi
# pgaudit for the installed PostgreSQL major version: tests/test_object_postgresql_real.py's rectified cluster
# loads it (its package name carries the version, known only once postgresql is installed).
pgv=$(ls /usr/lib/postgresql 2>/dev/null | sort -V | tail -n 1)
if [ -n "$pgv" ] && [ ! -e "/usr/lib/postgresql/$pgv/lib/pgaudit.so" ]; then
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "postgresql-$pgv-pgaudit" >/dev/null
fi
# sshd refuses to run (even `sshd -t`) without its privilege-separation directory, which its service start
# makes and policy-rc.d above prevented; /run is emptied at boot, so make it on every run.
install -d -m 0755 /run/sshd
# Debian's prometheus packages start daemons on install where an init system exists; tests start their own on
# free loopback ports, so stop any package-started instances holding the default ports.
for svc in prometheus prometheus-alertmanager prometheus-node-exporter; do
  pkill -x "$svc" 2>/dev/null || true
done
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$version" ]; then
    version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
    pg_createcluster "$version" main >/dev/null
  fi
  conf=/etc/postgresql/$version/main
  grep -q '^host all all 127.0.0.1/32 trust' "$conf/pg_hba.conf" || \
    sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\nlocal all all trust' "$conf/pg_hba.conf"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
psql -h 127.0.0.1 -U postgres -tAc "SELECT 1 FROM pg_database WHERE datname='test'" | grep -q 1 || \
  psql -h 127.0.0.1 -U postgres -c "CREATE DATABASE test" >/dev/null
echo "test machine ready"
