#!/bin/sh
# make run: create the NVMe image if it is absent, start moat with the demo
# domains, run the BlockDevice demo client against nvme0.blk0 and the Nic
# demo client (DHCP, ARP, ping through the built-in gateway) against
# vnet0.nic0 (modern virtio-net), vnet1.nic0 (legacy, GCE's older shape)
# and gv0.nic0 (gVNIC, GCE's newer one) once they are up, then keep moat in the foreground (moatctl works from another
# terminal) until Ctrl-C.
# usage: run-demo.sh IMAGE MOAT BINDIR -- MOAT-ARGS...
set -u
image=$1 moat=$2 bin=$3
shift 3
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
if [ $ok = 1 ]; then
    echo "run-demo: nvme0.blk0 verified, vnet0.nic0, vnet1.nic0 and gv0.nic0 answered; moat keeps serving (try: build/bin/moatctl list). Ctrl-C stops it."
else
    echo "run-demo: a demo client failed (see above); moat keeps running. Ctrl-C stops it."
fi
wait $pid
status=$?
[ $status -eq 130 ] && status=0
exit $status
