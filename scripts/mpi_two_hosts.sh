#!/bin/bash
# Data-parallel training between two hosts, made on this machine: two network
# namespaces joined by a veth pair (each with its loopback and one address of
# 10.215.15.0/24, nothing else), Open MPI over TCP between them, mpirun on
# host A reaching host B through `ip netns exec` in place of ssh. It trains
# the same run three ways and compares the weights:
#   one process (batch 8) | mpirun -np 2 on host A alone | one rank on each host
# The two-rank runs must be the same to the bit (the same arithmetic, the
# same two-rank reduction, whatever carries it); the one-process run must
# agree to 1e-5 of the largest weight (x-entropy averages exactly).
#
# Usage (root, from the repository after `make build`):
#   scripts/mpi_two_hosts.sh [STEPS] [IMAGE_SIZE]
set -euo pipefail

steps=${1:-20}
size=${2:-64}
cli=$(realpath "${CLI:-build/bin/unet-industrial}")
[ "$(id -u)" = 0 ] || { echo "needs root (ip netns)" >&2; exit 1; }
command -v mpirun >/dev/null || { echo "needs mpirun (Debian: openmpi-bin)" >&2; exit 1; }
[ -x "$cli" ] || { echo "no $cli: run make build first" >&2; exit 1; }

host_a=unetind-host-a host_b=unetind-host-b
addr_a=10.215.15.1 addr_b=10.215.15.2
work=$(mktemp -d)
cleanup() {
  ip netns del "$host_a" 2>/dev/null || true
  ip netns del "$host_b" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$host_a"
ip netns add "$host_b"
ip link add veth-a netns "$host_a" type veth peer name veth-b netns "$host_b"
ip -n "$host_a" addr add "$addr_a/24" dev veth-a
ip -n "$host_b" addr add "$addr_b/24" dev veth-b
for ns in "$host_a" "$host_b"; do
  ip -n "$ns" link set lo up
done
ip -n "$host_a" link set veth-a up
ip -n "$host_b" link set veth-b up
echo "host A: $(ip -n "$host_a" -brief addr show veth-a)"
echo "host B: $(ip -n "$host_b" -brief addr show veth-b)"

# The launcher's remote shell: `agent HOST COMMAND...` runs COMMAND in HOST's
# namespace, as ssh would run it on HOST.
cat >"$work/agent" <<EOF
#!/bin/sh
host=\$1; shift
case \$host in
  $addr_a) ns=$host_a ;;
  $addr_b) ns=$host_b ;;
  *) echo "agent: unknown host \$host" >&2; exit 1 ;;
esac
exec ip netns exec \$ns sh -c "\$*"
EOF
chmod +x "$work/agent"
printf '%s slots=1\n%s slots=1\n' "$addr_a" "$addr_b" >"$work/hosts"
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1

"$cli" synth --out "$work/data" --class 1 --size "$size" --train-defective 16 --train-ok 2 --test-defective 1 \
  --test-ok 1 --seed 3 >/dev/null
train="train --data $work/data --class 1 --image-size $size --batch 8 --steps $steps --loss x-entropy --lr 3e-4"
train+=" --seed 2 --threads 1 --display-every $steps --checkpoint-every 1000 --out"

echo
echo "== one process, batch 8"
ip netns exec "$host_a" "$cli" $train "$work/one"

echo
echo "== mpirun -np 2 on host A alone (global batch 8, 4 a rank)"
ip netns exec "$host_a" mpirun --oversubscribe -np 2 --mca btl self,vader "$cli" $train "$work/local"

echo
echo "== mpirun -np 2, one rank on host A ($addr_a) and one on host B ($addr_b), TCP between them"
bytes() { ip -n "$host_a" -s -json link show veth-a | sed -n 's/.*"tx":{"bytes":\([0-9]*\).*/\1/p'; }
before=$(bytes)
start=$(date +%s.%N)
ip netns exec "$host_a" mpirun -np 2 --hostfile "$work/hosts" --map-by node \
  --mca plm_rsh_agent "$work/agent" --mca btl self,tcp \
  --mca btl_tcp_if_include 10.215.15.0/24 --mca oob_tcp_if_include 10.215.15.0/24 \
  sh -c 'echo "rank $OMPI_COMM_WORLD_RANK runs in network namespace $(ip netns identify $$)" >&2; exec "$0" "$@"' \
  "$cli" $train "$work/hosts2"
echo "($(awk "BEGIN { printf \"%.1f\", $(date +%s.%N) - $start }") s; host A sent $(( $(bytes) - before )) bytes over veth-a)"

echo
echo "== the weights"
sha256sum "$work/local/model.safetensors" "$work/hosts2/model.safetensors" | sed "s|$work/||"
if cmp -s "$work/local/model.safetensors" "$work/hosts2/model.safetensors"; then
  echo "two hosts = one host with two ranks, to the bit"
else
  echo "FAIL: the two-host weights differ from the one-host two-rank weights"
  exit 1
fi
if command -v python3 >/dev/null; then
  python3 - "$work/one/model.safetensors" "$work/hosts2/model.safetensors" <<'EOF'
import json, struct, sys
def weights(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        out[name] = struct.unpack("<%df" % ((b - a) // 4), data[a:b])
    return out
one, two = weights(sys.argv[1]), weights(sys.argv[2])
largest = max(abs(v) for t in one.values() for v in t)
diff = max(abs(x - y) for name in one for x, y in zip(one[name], two[name]))
print("one process vs two hosts: max |difference| %.3g, largest weight %.3g, ratio %.3g (limit 1e-5)"
      % (diff, largest, diff / largest))
sys.exit(0 if diff <= 1e-5 * largest else 1)
EOF
fi
