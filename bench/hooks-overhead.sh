#!/usr/bin/env bash
# hooks-overhead.sh: each package's hot path with no hooks set, at the commit
# before its Hooks were added ("before"), at the commit that added them
# ("hooks-commit") and at HEAD, interleaved round by round (BENCHMARKS.md,
# "Hooks overhead"). Usage, from the repository root:
#   bash bench/hooks-overhead.sh [rounds] [benchtime]     # defaults: 15 1s
# With PIN=cpu (e.g. PIN=1) every benchmark runs on that one CPU with
# GOMAXPROCS=1 (taskset).
# With MODE=instructions it counts instead the instructions each operation
# executes (valgrind's cachegrind, GOMAXPROCS=1, GOGC=off): the count at
# 3N operations minus the count at N, divided by 2N, once a round. Times
# on a shared 2-core VM vary by 5-50 % between runs; the instruction
# counts vary by well under 1 %, so they resolve a 2 % overhead.
# Results go to bench/results/hooks-<date>/ (before.txt, hooks-commit.txt,
# head.txt, noop.txt) and benchstat prints the comparison.
set -euo pipefail
rounds=${1:-15}
benchtime=${2:-1s}
root=$(git rev-parse --show-toplevel)
out=$root/bench/results/hooks-$(date -u +%Y-%m-%dT%H-%M)
bin=$(mktemp -d)
mkdir -p "$out"
pin=()
if [ -n "${PIN:-}" ]; then pin=(taskset -c "$PIN" env GOMAXPROCS=1); fi
# package  before  hooks-commit  benchmark  N (operations, MODE=instructions)
cases=(
  "cache     d835600 7b21c38 BenchmarkHooks/hooks=unset$   100000"
  "compress  7b21c38 8304457 BenchmarkHooks/hooks=unset$   5000"
  "lock      5054cc1 d4c1e9b BenchmarkHooks/hooks=unset$   20000"
  "scheduler 5054cc1 d4c1e9b BenchmarkHooks/hooks=unset$   2000"
  "queue     1726bb5 caaa131 BenchmarkHooks/hooks=unset$   20000"
  "broadcast 5596cff f0d1f7b BenchmarkPublish/impl=local$ 5000"
)
# instr <pkg> <binary> <bench> <n>: instructions per operation, from the
# counts at 3n and n operations
instr() {
  local pkg=$1 binary=$2 bench=$3 n=$4 a b
  count() {
    (cd "$root/$pkg" && GOGC=off GOMAXPROCS=1 valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
      "$binary" -test.run '^$' -test.bench "$bench" -test.benchtime "$1x" 2>&1) |
      sed -n 's/.*I *refs: *//p' | tr -d ,
  }
  a=$(count "$n")
  b=$(count $((3 * n)))
  echo $(((b - a) / (2 * n)))
}
worktrees=()
cleanup() {
  for w in "${worktrees[@]}"; do git -C "$root" worktree remove --force "$w" >/dev/null 2>&1 || true; done
  rm -rf "$bin"
}
trap cleanup EXIT
build() { # build <pkg> <commit> <name>
  local pkg=$1 commit=$2 name=$3 w
  w=$bin/wt-$commit-$pkg
  git -C "$root" worktree add --detach "$w" "$commit" >/dev/null 2>&1
  worktrees+=("$w")
  if [ "$pkg" = broadcast ]; then
    cp "$root/broadcast/bench_test.go" "$w/broadcast/"
  else
    cp "$root/$pkg/hooks_bench_test.go" "$w/$pkg/"
    if [ -f "$root/$pkg/hooks_cases_bench_test.go" ]; then
      # the unset case only: the commits before the hooks have no Hooks type
      printf 'package %s_test\n\nimport "github.com/outrigger-dev/outrigger/%s"\n\ntype hookCase struct {\n\tname string\n\topts []%s.Option\n}\n\nfunc hookCases() []hookCase { return []hookCase{{name: "unset"}} }\n' \
        "$pkg" "$pkg" "$pkg" >"$w/$pkg/hooks_cases_bench_test.go"
    fi
  fi
  (cd "$w" && go test -c -o "$bin/$pkg-$name.test" "./$pkg/")
}
for c in "${cases[@]}"; do
  read -r pkg before at bench n <<<"$c"
  build "$pkg" "$before" before
  build "$pkg" "$at" hooks-commit
  (cd "$root" && go test -c -o "$bin/$pkg-head.test" "./$pkg/")
done
uptime >"$out/load"
if [ "${MODE:-}" = instructions ]; then
  for ((r = 0; r < rounds; r++)); do
    for c in "${cases[@]}"; do
      read -r pkg before at bench n <<<"$c"
      for name in before hooks-commit head; do
        echo "Benchmark$pkg 1 $(instr "$pkg" "$bin/$pkg-$name.test" "$bench" "$n") instructions/op" >>"$out/$name.txt"
      done
    done
  done
  cd "$root/bench"
  go tool benchstat -row .name -col .file before="$out/before.txt" hooks-commit="$out/hooks-commit.txt" HEAD="$out/head.txt" | tee "$out/benchstat.txt"
  echo "results: $out"
  exit 0
fi
for ((r = 0; r < rounds; r++)); do
  for c in "${cases[@]}"; do
    read -r pkg before at bench n <<<"$c"
    names=(before hooks-commit head)
    for ((i = 0; i < 3; i++)); do # rotate the order each round
      name=${names[$(((i + r) % 3))]}
      (cd "$root/$pkg" && "${pin[@]}" "$bin/$pkg-$name.test" -test.run '^$' -test.bench "$bench" \
        -test.benchmem -test.benchtime "$benchtime" -test.count 1) |
        sed -n "s|^Benchmark[^ ]*|Benchmark$pkg|p" >>"$out/$name.txt"
    done
    if [ "$pkg" != broadcast ]; then
      (cd "$root/$pkg" && "${pin[@]}" "$bin/$pkg-head.test" -test.run '^$' -test.bench 'BenchmarkHooks/hooks=noop$' \
        -test.benchmem -test.benchtime "$benchtime" -test.count 1) |
        sed -n "s|^Benchmark[^ ]*|Benchmark$pkg|p" >>"$out/noop.txt"
    fi
  done
  uptime >>"$out/load"
done
(cd "$root/ratelimit" && "${pin[@]}" go test -run '^$' -bench 'BenchmarkHooks' -benchmem -benchtime "$benchtime" -count "$rounds" .) >"$out/ratelimit.txt"
uptime >>"$out/load"
cd "$root/bench"
go tool benchstat -row .name -col .file before="$out/before.txt" hooks-commit="$out/hooks-commit.txt" HEAD="$out/head.txt" | tee "$out/benchstat.txt"
go tool benchstat -row .name -col .file HEAD="$out/head.txt" noop="$out/noop.txt" | tee -a "$out/benchstat.txt"
echo "results: $out"
