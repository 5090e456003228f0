#!/bin/sh
# On the lent device machine, in the call that carries the last part (see gpu_machine.py): join the parts
# copied to /tmp/stash by the earlier calls and this call's own, unpack, install the wheels, time, write $OUT.
set -e
mkdir -p /tmp/stash
for d in .gpu/part*; do [ -d "$d" ] && cp "$d"/pack.* /tmp/stash/; done
ls -la /tmp/stash
cat /tmp/stash/pack.* | tar -xJ -C /tmp
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site /tmp/pack/wheels/*.whl
PYTHONUNBUFFERED=1 python3 benchmarks/gpu_machine.py run /tmp/pack --out "${OUT:-/tmp/gpu-out}" "$@"
