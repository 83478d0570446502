#!/bin/sh
# timed_lua.sh LUA SCRIPT — runs the script and prints its wall time as "work_ns N" on stderr, like the C benchmarks.
start=$(date +%s%N)
"$1" "$2" > /dev/null
end=$(date +%s%N)
echo "work_ns $((end - start))" >&2
