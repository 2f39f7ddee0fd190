#!/bin/bash
# Runs as a oneshot unit inside the booted Debian 12 container (see nspawn_test.sh), with the two
# packages under /xlb-test: installs, checks, reloads, upgrades, removes, purges, as an operator
# would. Prints "PASS" at the end; any failure stops it with the reason. (The unit writes all it
# prints to a file of the host's, which nspawn_test.sh shows.)
set -euo pipefail

pkg1=$1 pkg2=$2 new_version=$3
export DEBIAN_FRONTEND=noninteractive
step() { echo "== $*"; }
fail() {
  echo "FAIL: $*"
  echo "--- systemctl status xlb"; systemctl status --no-pager xlb 2>&1 | tail -n 20 || true
  echo "--- journal of xlb"; journalctl --no-pager -u xlb 2>&1 | tail -n 60 || true
  exit 1
}
# wait_for SECONDS WHAT COMMAND...: polls COMMAND every 0.1 s until it succeeds, at most SECONDS.
wait_for() {
  local seconds=$1 what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "$what: not within ${seconds}s ($*)"
    sleep 0.1
  done
}
active() { [[ $(systemctl is-active xlb) == active ]]; }
main_pid() { systemctl show -p MainPID --value xlb; }
web_ui() { curl -fsS --max-time 5 http://127.0.0.1:9180/ | grep -qi '<html'; }
has_service() { xlbctl -o json service list | grep -q "\"$1\""; }
status_line() { systemctl show -p StatusText --value xlb; }

step "install $pkg1"
apt-get install -qq -y -o Dpkg::Use-Pty=0 --no-install-recommends "/xlb-test/$pkg1" || fail "apt-get install $pkg1"
[[ $(systemctl is-enabled xlb) == enabled ]] || fail "xlb.service is not enabled after install"
wait_for 60 "xlb.service active after install" active
systemctl is-active xlb
[[ $(stat -c '%U %a' /var/lib/xlb) == "root 700" ]] || fail "/var/lib/xlb is $(stat -c '%U %a' /var/lib/xlb), not root 700"
[[ -f /etc/xlb/xlb.toml ]] || fail "no /etc/xlb/xlb.toml"
dpkg-query -W -f='${Conffiles}\n' xlb | grep -q '/etc/xlb/xlb.toml' || fail "/etc/xlb/xlb.toml is not a conffile"
[[ -f /usr/share/bash-completion/completions/xlbctl && -f /usr/share/man/man1/xlbctl.1.gz &&
   -f /usr/share/man/man8/xlbd.8.gz ]] || fail "bash completion or manual pages missing"
echo "status: $(status_line)"
[[ $(status_line) == "revision "* ]] || fail "no STATUS=revision ... from xlbd: '$(status_line)'"

step "systemd-analyze verify and security of the installed unit"
systemd-analyze verify /usr/lib/systemd/system/xlb.service 2>&1 || fail "systemd-analyze verify xlb.service"
systemd-analyze security --no-pager xlb.service || true
systemd-analyze security --threshold=30 xlb.service >/dev/null 2>&1 || fail "exposure of the running xlb.service above 3.0"

step "the web UI and xlbctl answer"
wait_for 30 "the web UI at 127.0.0.1:9180" web_ui
curl -fsS --max-time 5 http://127.0.0.1:9180/healthz; echo
xlbctl status || fail "xlbctl status"
# The packaged config serves nothing and probes nothing: xlbd sends no packet anywhere.
[[ $(xlbctl -o json service list | tr -d ' \n') != *'"name"'* ]] || fail "the packaged config serves services"

step "a link in [node] interfaces: systemctl restart attaches XDP and tc to it"
# A veth pair inside the container's own network namespace: nothing sent there leaves it.
ip link add xlbt0 type veth peer name xlbt1 || fail "cannot make a veth pair in the container"
ip link set xlbt0 up
ip link set xlbt1 up
sed -i 's/^interfaces = \[\]/interfaces = ["xlbt0"]/; s/^xdp_mode = "native"/xdp_mode = "generic"/' /etc/xlb/xlb.toml
grep -q '^interfaces = \["xlbt0"\]' /etc/xlb/xlb.toml || fail "could not set [node] interfaces"
systemctl restart xlb || fail "systemctl restart xlb with interfaces = [\"xlbt0\"]"
wait_for 60 "xlb.service active with a link" active
ip -d link show xlbt0 | grep -q 'xdpgeneric' || fail "no generic XDP program on xlbt0: $(ip -d link show xlbt0)"
xlbctl status | grep -q 'xlbt0' || fail "xlbctl status does not show the attachments on xlbt0"

step "edit the config; systemctl reload applies it"
revision_before=$(status_line)
cat >>/etc/xlb/xlb.toml <<'TOML'

[[service]]
name = "pkgtest-web"
mode = "nat"
  [[service.frontend]]
  address = "198.18.0.77"
  port = 80
  [[service.backend]]
  address = "127.0.0.1"
  port = 8080
TOML
pid_before=$(main_pid)
systemctl reload xlb || fail "systemctl reload xlb"
wait_for 30 "the reloaded service in xlbctl service list" has_service pkgtest-web
[[ $(main_pid) == "$pid_before" ]] || fail "reload restarted xlbd (pid $pid_before -> $(main_pid))"
wait_for 10 "a new revision in STATUS" test "$(status_line)" != "$revision_before"
echo "status: $(status_line)"
xlbctl service list

step "a broken config is refused by reload; the running one stays"
cp /etc/xlb/xlb.toml /root/xlb.toml.good
echo 'bogus_key = 1' >>/etc/xlb/xlb.toml
systemctl reload xlb || true
wait_for 30 "the journal saying the broken config was rejected" \
  sh -c "journalctl --no-pager -u xlb | grep -q 'bogus_key'"
active || fail "xlbd stopped after a broken config was reloaded"
has_service pkgtest-web || fail "the running services went away after a refused reload"
cp /root/xlb.toml.good /etc/xlb/xlb.toml

step "XLB_CLEANUP_ON_STOP=yes: stopping the service removes the datapath"
mkdir -p /etc/systemd/system/xlb.service.d
printf '[Service]\nEnvironment=XLB_CLEANUP_ON_STOP=yes\n' >/etc/systemd/system/xlb.service.d/cleanup.conf
systemctl daemon-reload
[[ -d /sys/fs/bpf/xlb/v3 ]] || fail "no pinned datapath under /sys/fs/bpf/xlb/v3 before the stop"
systemctl stop xlb
[[ ! -e /sys/fs/bpf/xlb/v3 ]] || fail "pins left after a stop with XLB_CLEANUP_ON_STOP=yes: $(ls /sys/fs/bpf/xlb/v3)"
! ip -d link show xlbt0 | grep -q 'xdp' || fail "XDP still on xlbt0 after a stop with XLB_CLEANUP_ON_STOP=yes"
rm /etc/systemd/system/xlb.service.d/cleanup.conf
systemctl daemon-reload
systemctl start xlb || fail "systemctl start xlb"
wait_for 60 "xlb.service active again" active
has_service pkgtest-web || fail "the service is not served after a start on a clean node"
systemctl stop xlb
[[ -d /sys/fs/bpf/xlb/v3 ]] || fail "a plain stop removed the datapath"
ip -d link show xlbt0 | grep -q 'xdpgeneric' || fail "a plain stop detached XDP from xlbt0"
systemctl start xlb || fail "systemctl start xlb"
wait_for 60 "xlb.service active again" active
pid_before=$(main_pid)

step "upgrade to $pkg2 ($new_version)"
[[ -d /sys/fs/bpf/xlb/v3 ]] || fail "no pinned datapath under /sys/fs/bpf/xlb/v3"
pins_before=$(ls /sys/fs/bpf/xlb/v3 | sort | tr '\n' ' ')
apt-get install -qq -y -o Dpkg::Use-Pty=0 --no-install-recommends "/xlb-test/$pkg2" </dev/null || fail "apt-get install $pkg2"
[[ $(dpkg-query -W -f='${Version}' xlb) == "$new_version" ]] || fail "version after upgrade: $(dpkg-query -W -f='${Version}' xlb)"
[[ $(main_pid) != "$pid_before" ]] || fail "the upgrade did not restart xlbd"
wait_for 60 "xlb.service active after upgrade" active
grep -q 'pkgtest-web' /etc/xlb/xlb.toml || fail "the upgrade replaced the edited /etc/xlb/xlb.toml"
wait_for 30 "the edited config served after the upgrade" has_service pkgtest-web
[[ $(ls /sys/fs/bpf/xlb/v3 | sort | tr '\n' ' ') == "$pins_before" ]] || fail "the pinned datapath changed across the upgrade"
xlbctl status >/dev/null || fail "xlbctl status after upgrade"

step "remove: stopped, datapath removed, config and state kept"
apt-get remove -qq -y -o Dpkg::Use-Pty=0 xlb || fail "apt-get remove xlb"
[[ $(systemctl is-active xlb || true) != active ]] || fail "xlb still active after remove"
[[ ! -e /sys/fs/bpf/xlb/v3 ]] || fail "pins left under /sys/fs/bpf/xlb/v3 after remove: $(ls /sys/fs/bpf/xlb/v3)"
[[ -f /var/lib/xlb/state.db ]] || fail "remove deleted the state (only purge may)"
[[ -f /etc/xlb/xlb.toml ]] || fail "remove deleted the config (only purge may)"
! ip -d link show xlbt0 | grep -q 'xdp' || fail "XDP still attached to xlbt0 after remove"

step "purge: state and config gone"
apt-get purge -qq -y -o Dpkg::Use-Pty=0 xlb || fail "apt-get purge xlb"
[[ ! -e /var/lib/xlb ]] || fail "/var/lib/xlb still there after purge"
[[ ! -e /etc/xlb ]] || fail "/etc/xlb still there after purge"
[[ ! -e /etc/systemd/system/multi-user.target.wants/xlb.service ]] || fail "the enable symlink survived purge"

echo "PASS"
