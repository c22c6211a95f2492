#!/bin/sh
# make run: create the NVMe image if it is absent, start moat with the demo
# domains, run the BlockDevice demo client against nvme0.blk0 once it is up,
# then keep moat in the foreground (moatctl works from another terminal)
# until Ctrl-C.
# usage: run-demo.sh IMAGE MOAT BLKDEMO -- MOAT-ARGS...
set -u
image=$1 moat=$2 demo=$3
shift 3
[ "${1:-}" = "--" ] && shift
if [ ! -e "$image" ]; then
    truncate -s 64M "$image" || exit 1
    echo "run-demo: created $image (64 MiB raw image for nvme0)"
fi
"$moat" --console "$@" &
pid=$!
trap 'kill -INT $pid 2>/dev/null' INT TERM
if "$demo" --wait 15 nvme0.blk0; then
    echo "run-demo: nvme0.blk0 verified; moat keeps serving (try: build/bin/moatctl list). Ctrl-C stops it."
else
    echo "run-demo: the demo client failed (see above); moat keeps running. Ctrl-C stops it."
fi
wait $pid
status=$?
[ $status -eq 130 ] && status=0
exit $status
