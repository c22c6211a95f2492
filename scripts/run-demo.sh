#!/bin/sh
# make run: create the NVMe image if it is absent, start moat with the demo
# domains, run the BlockDevice demo client against nvme0.blk0 and the Nic
# demo client (DHCP, ARP, ping through the built-in gateway) against
# vnet0.nic0 (modern virtio-net), vnet1.nic0 (legacy, GCE's older shape)
# and gv0.nic0 (gVNIC, GCE's newer one) once they are up, start moat-httpd
# (lwIP over vnet0.nic0) serving a small page reached through moat's host
# port forward on HTTP_PORT, then keep moat in the foreground (moatctl
# works from another terminal) until Ctrl-C.
# usage: run-demo.sh IMAGE MOAT BINDIR HTTP_PORT -- MOAT-ARGS...
set -u
image=$1 moat=$2 bin=$3 http_port=$4
shift 4
[ "${1:-}" = "--" ] && shift
if [ ! -e "$image" ]; then
    truncate -s 64M "$image" || exit 1
    echo "run-demo: created $image (64 MiB raw image for nvme0)"
fi
"$moat" --console "$@" &
pid=$!
trap 'kill -INT $pid 2>/dev/null' INT TERM
ok=1
"$bin/moat-blkdemo" --wait 15 nvme0.blk0 || ok=0
for nic in vnet0.nic0 vnet1.nic0 gv0.nic0; do
    echo "run-demo: $nic: DHCP, ARP and ping through the built-in gateway"
    "$bin/moat-netdemo" --wait 15 --count 3 "$nic" || ok=0
done
www=$(dirname "$image")/www
mkdir -p "$www"
[ -e "$www/index.html" ] || printf '<!doctype html><title>moat</title><p>Served by moat-httpd: lwIP over vnet0.nic0, whose virtio-net driver runs in a domain of its own.\n' >"$www/index.html"
"$bin/moat-httpd" --wait 15 --root "$www" vnet0.nic0 &
httpd=$!
trap 'kill -INT $pid 2>/dev/null; kill $httpd 2>/dev/null' INT TERM
echo "run-demo: moat-httpd serves $www over vnet0.nic0: curl http://127.0.0.1:$http_port/ (moat forwards that host port to it)"
if [ $ok = 1 ]; then
    echo "run-demo: nvme0.blk0 verified, vnet0.nic0, vnet1.nic0 and gv0.nic0 answered; moat keeps serving (try: build/bin/moatctl list). Ctrl-C stops it."
else
    echo "run-demo: a demo client failed (see above); moat keeps running. Ctrl-C stops it."
fi
wait $pid
status=$?
kill $httpd 2>/dev/null
[ $status -eq 130 ] && status=0
exit $status
