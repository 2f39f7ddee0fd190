# Shared by the namespace tests: hosts of their own, unique names, and a trap that removes
# everything they made on any exit. Source it; then call `netns_setup`.
# Rules (see testing.md): no default route in a client namespace, only our own addresses as
# targets, every process stopped by the PID we started, every loop bounded.

XLB_SKIP=77  # ctest's SKIP_RETURN_CODE

require_root() {
  local missing=""
  [[ $(id -u) -eq 0 ]] || missing="root"
  command -v ip >/dev/null || missing="${missing:+$missing, }iproute2"
  if [[ -n $missing ]]; then
    if [[ ${CI:-} == true ]]; then
      echo "FAIL: needs $missing (CI=true: a kernel test must not skip)" >&2
      exit 1
    fi
    echo "SKIP: needs $missing" >&2
    exit $XLB_SKIP
  fi
}

netns_setup() {
  suffix=$(head -c4 /dev/urandom | od -An -tx1 | tr -d ' \n')
  namespaces=()
  pids=()
  workdir=$(mktemp -d "/tmp/xlb-test-$suffix.XXXX")
  pin_dir="/sys/fs/bpf/xlb-test-$suffix/v1"
  mountpoint -q /sys/fs/bpf || mount -t bpf bpf /sys/fs/bpf
  # Also on SIGINT/SIGTERM (a timeout, Ctrl-C): bash runs no EXIT trap when a signal kills it.
  trap netns_cleanup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

netns_cleanup() {
  local status=$?
  for pid in "${pids[@]}"; do kill -KILL "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  for ns in "${namespaces[@]}"; do ip netns delete "$ns" 2>/dev/null || true; done
  if [[ -f $workdir/cgroups ]]; then
    while read -r cg; do rmdir "$cg" 2>/dev/null || true; done <"$workdir/cgroups"
  fi
  rm -rf "/sys/fs/bpf/xlb-test-$suffix" "$workdir"
  exit $status
}

# ns NAME: a namespace named NAME-<suffix> with loopback up; prints its full name.
ns_create() {
  local name="$1-$suffix"
  ip netns add "$name"
  ip -n "$name" link set lo up
  namespaces+=("$name")
}

# veth NS_A IF_A ADDR_A NS_B IF_B ADDR_B: a link between two namespaces with an address each.
veth() {
  ip link add "$2" netns "$1" type veth peer name "$5" netns "$4"
  ip -n "$1" addr add "$3" dev "$2"
  ip -n "$4" addr add "$6" dev "$5"
  ip -n "$1" link set "$2" up
  ip -n "$4" link set "$5" up
}

# native_xdp_ready NS IF: an end of a veth that sends to, or receives from, native XDP on its peer.
# - tx checksumming off: a veth hands its peer packets whose TCP/UDP checksum is only partial
#   (offloaded to a NIC that is not there); XDP that redirects such a frame turns it into a
#   plain frame with that partial checksum, which the receiver then drops. A real NIC delivers
#   full checksums, so this is the test topology's quirk, not the datapath's.
# - GRO on: native XDP sends redirected frames to the peer as XDP frames; GRO lets it take them.
native_xdp_ready() {
  ip netns exec "$1" ethtool -K "$2" tx off gro on >/dev/null
}

# cgroup_create: a cgroup v2 directory of the test's own; prints its path. Callers take it with
# cg=$(cgroup_create), a subshell: so the path is remembered in a file, not a variable.
cgroup_create() {
  local root
  root=$(findmnt -n -t cgroup2 -o TARGET | head -1)
  [[ -n $root ]] || { echo "no cgroup2 mount" >&2; return 1; }
  mkdir "$root/xlb-test-$suffix"
  echo "$root/xlb-test-$suffix" >>"$workdir/cgroups"
  echo "$root/xlb-test-$suffix"
}

# in_cgroup CGROUP CMD...: runs CMD inside CGROUP (socket-LB acts on the sockets it makes).
in_cgroup() {
  local cg=$1
  shift
  bash -c 'echo $$ >"$0/cgroup.procs" && exec "$@"' "$cg" "$@"
}

# bg NS LOGFILE CMD...: runs CMD in namespace NS in the background, records its PID in $last_pid.
bg() {
  local ns=$1 log=$2
  shift 2
  ip netns exec "$ns" "$@" >"$log" 2>&1 &
  last_pid=$!
  pids+=("$last_pid")
}

# wait_for_line FILE TEXT [SECONDS]: until FILE holds TEXT, at most SECONDS (default 10).
wait_for_line() {
  local deadline=$((SECONDS + ${3:-10}))
  until grep -qF -- "$2" "$1" 2>/dev/null; do
    ((SECONDS < deadline)) || { echo "timed out waiting for '$2' in $1:" >&2; cat "$1" >&2; return 1; }
    sleep 0.05
  done
}

failures=0
check() {  # check "what" CONDITION...: records a failure without stopping the test
  local what=$1
  shift
  if "$@"; then echo "ok: $what"; else echo "FAILED: $what" >&2; failures=$((failures + 1)); fi
}

# count NAME FILE: the number lbtool printed for NAME (first field), 0 if absent.
count() { awk -v n="$1" '$1 == n { s += $NF } END { print s + 0 }' "$2"; }

# within PERCENT A B C...: every value within PERCENT of their mean.
within() {
  local percent=$1
  shift
  awk -v p="$percent" 'BEGIN { for (i = 1; i < ARGC; i++) s += ARGV[i]; m = s / (ARGC - 1);
    for (i = 1; i < ARGC; i++) if (ARGV[i] < m * (1 - p / 100) || ARGV[i] > m * (1 + p / 100)) exit 1 }' "$@"
}

# lb_topology CLIENT_NET BACKEND_NET N: the hosts of the load-balancing tests, in namespaces:
#   client (CLIENT_NET.2) -- lbc (CLIENT_NET.1) lb lbK (BACKEND_NET.K.1) -- eth0 (BACKEND_NET.K.2) bK
# for K = 1..N, each bK running `lbtool serve bK 8080` (its PID in server_pid[K]; start_server K
# starts it again). The client routes only 198.18.0.0/24 (the VIPs), through lb. Sets $client and
# $lb; needs $lbtool. NETs are written like "10.211.0" and "10.212".
declare -A server_pid
start_server() {
  bg "b$1-$suffix" "$workdir/b$1.log" "$lbtool" serve "b$1" 8080
  server_pid[$1]=$last_pid
  wait_for_line "$workdir/b$1.log" serving
}
lb_topology() {
  local client_net=$1 backend_net=$2 count=$3 k
  ns_create c && client="c-$suffix"
  ns_create lb && lb="lb-$suffix"
  veth "$client" eth0 "$client_net.2/24" "$lb" lbc "$client_net.1/24"
  native_xdp_ready "$client" eth0
  ip -n "$client" route add 198.18.0.0/24 via "$client_net.1"
  ip netns exec "$lb" sysctl -qw net.ipv4.ip_forward=1
  for ((k = 1; k <= count; k++)); do
    ns_create "b$k"
    veth "$lb" "lb$k" "$backend_net.$k.1/24" "b$k-$suffix" eth0 "$backend_net.$k.2/24"
    ip -n "b$k-$suffix" route add "$client_net.0/24" via "$backend_net.$k.1"
    native_xdp_ready "b$k-$suffix" eth0
    start_server "$k"
  done
}

# apiserver_start [NS]: tests/support/fake_apiserver.py (HTTPS, a CA of its own, token
# secret-token) on 127.0.0.1 of namespace NS (the host's when empty), and $workdir/kubeconfig for
# it. Sets $api_pid, $api_port and $api_ns (for api_post).
apiserver_start() {
  api_ns=${1:-}
  local d=$workdir in=()
  [[ -n $api_ns ]] && in=(ip netns exec "$api_ns")
  echo "== a test API server with its own CA, and a kubeconfig for it"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/ca.key" -out "$d/ca.crt" \
    -days 2 -subj /CN=xlb-test-ca 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$d/server.key" -out "$d/server.csr" \
    -subj /CN=kube-apiserver 2>/dev/null
  echo "subjectAltName=IP:127.0.0.1" >"$d/san.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial -out "$d/server.crt" \
    -days 2 -extfile "$d/san.ext" 2>/dev/null
  "${in[@]}" python3 "$(dirname "${BASH_SOURCE[0]}")/../support/fake_apiserver.py" --cert "$d/server.crt" \
    --key "$d/server.key" --token secret-token >"$d/apiserver.log" 2>&1 &
  api_pid=$!
  pids+=("$api_pid")
  wait_for_line "$d/apiserver.log" '"port"'
  api_port=$(python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["port"])' "$d/apiserver.log")
  echo -n secret-token >"$d/token"
  cat >"$d/kubeconfig" <<YAML
apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: "https://127.0.0.1:$api_port", certificate-authority: ca.crt}
users:
- name: xlb
  user: {tokenFile: token}
contexts:
- name: xlb@test
  context: {cluster: test, user: xlb}
current-context: xlb@test
YAML
}

# api_apply RESOURCE JSON: a change in the test API server, through its /_test control. The control
# connects from 127.0.0.2, so that a test can cut xlbd's link (from 127.0.0.1) and still drive it.
api_post() {
  local in=()
  [[ -n ${api_ns:-} ]] && in=(ip netns exec "$api_ns")
  "${in[@]}" python3 - "$api_port" "$workdir/ca.crt" "$1" "$2" <<'PY'
import http.client, ssl, sys
port, ca, path, body = sys.argv[1:]
ctx = ssl.create_default_context(cafile=ca)
c = http.client.HTTPSConnection("127.0.0.1", int(port), context=ctx, timeout=10, source_address=("127.0.0.2", 0))
c.request("POST", "/_test/" + path, body=body.encode())
r = c.getresponse()
r.read()
if r.status != 200:
    sys.exit(f"/_test/{path}: HTTP {r.status}")
PY
}
api_apply() { api_post apply "{\"resource\": \"$1\", \"object\": $2}"; }

slice() {  # slice ADDRESS...: Service web's EndpointSlice with these ready endpoints
  local eps="" a
  for a in "$@"; do
    eps+="${eps:+,}{\"addresses\": [\"$a\"], \"conditions\": {\"ready\": true, \"serving\": true, \"terminating\": false}, \"nodeName\": \"node-a\"}"
  done
  echo '{"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
    "metadata": {"name": "web-x7k2p", "namespace": "default",
                 "labels": {"kubernetes.io/service-name": "web", "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io"}},
    "addressType": "IPv4", "endpoints": ['"$eps"'],
    "ports": [{"name": "http", "port": 8080, "protocol": "TCP"}]}'
}
