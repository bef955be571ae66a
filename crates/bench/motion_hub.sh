#!/bin/bash
# Usage: cargo build --release -p espcam && crates/bench/motion_hub.sh   (SCENE=still|moving|pattern; ports 17971/17972)
# 50 virtual cameras x 5 fps (moving scene) into a hub; CPU of the hub's motion thread over 20 s.
set -e
BIN=${ESPCAM_BIN:-target/release/espcam}
D=$(mktemp -d)
$BIN serve --bind 127.0.0.1 --port 17971 --stream-port 17972 --data-dir $D > $D/hub.log 2>&1 &
HUB=$!
sleep 2
$BIN sim --hub 127.0.0.1:17971 --stream-port 17972 --count 50 --fps 5 --scene ${SCENE:-moving} --duration 40 > $D/sim.log 2>&1 &
SIM=$!
sleep 12
tid=$(grep -l '^espcam-motion$' /proc/$HUB/task/*/comm | head -1 | cut -d/ -f5)
ticks() { awk '{print $14+$15}' /proc/$HUB/task/$tid/stat; }
all() { awk '{print $14+$15}' /proc/$HUB/stat; }
a=$(ticks); p=$(all); t0=$(date +%s.%N)
sleep 20
b=$(ticks); q=$(all); t1=$(date +%s.%N)
hz=$(getconf CLK_TCK)
echo "motion thread: $(echo "($b-$a)/$hz/($t1-$t0)*100" | bc -l | cut -c1-5) % of one core; whole hub: $(echo "($q-$p)/$hz/($t1-$t0)*100" | bc -l | cut -c1-5) %"
curl -s http://127.0.0.1:17971/api/cameras/cam-1/motion; echo
curl -s "http://127.0.0.1:17971/api/events?limit=500" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["events"]), "events")'
kill $SIM $HUB
wait 2>/dev/null
rm -rf $D
