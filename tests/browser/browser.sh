# Browser test of the grd dashboard. Source this file, then run `grd_browser_test`.
#
#   GRD_BIN     the grd binary (default: target/debug/grd of this workspace)
#   GRD_SHOT    where the screenshot goes (default: docs/dashboard.png)
#
# Installs Debian's chromium when /usr/bin/chromium is missing (needs root), installs the
# pinned playwright-core (npm ci), runs `grd demo` on a temporary database, adds work that
# is due soon and later, starts `grd serve` on a free loopback port and drives the page.

grd_browser_test() (
    set -euo pipefail
    here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
    root="$(cd "$here/../.." && pwd)"
    bin="${GRD_BIN:-$root/target/debug/grd}"
    shot="${GRD_SHOT:-$root/docs/dashboard.png}"
    if [ ! -x "$bin" ]; then
        echo "grd_browser_test: no grd binary at $bin (cargo build -p grd-cli, or set GRD_BIN)" >&2
        return 1
    fi
    local need=()
    [ -x /usr/bin/chromium ] || need+=(chromium)
    command -v npm >/dev/null || need+=(nodejs npm)
    if [ "${#need[@]}" -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" </dev/null
    fi
    (cd "$here" && npm ci --no-audit --no-fund --silent)

    tmp="$(mktemp -d)"
    pid=""
    trap 'if [ -n "${pid:-}" ]; then kill "$pid" 2>/dev/null || true; fi; rm -rf "$tmp"' EXIT
    db="$tmp/grd.db"
    "$bin" --db "$db" demo --jobs 150 --hours 24 --pace-ms 0 --json \
        --start 2026-07-01T00:00:00Z >"$tmp/demo.json"
    # Work for the page to show: half due within hours (dispatched now), half due later.
    "$bin" --db "$db" status --json >"$tmp/status.json"
    node -e '
        const clock = new Date(JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).clock);
        const soon = new Date(clock.getTime() + 5 * 3600e3).toISOString();
        const later = new Date(clock.getTime() + 60 * 3600e3).toISOString();
        for (let i = 0; i < 16; i++)
            console.log(JSON.stringify({ id: `live-${i}`, priority: i % 10, compute_hours: 4 + (i % 5) * 4,
                units: 1 + (i % 4), deadline: i % 2 ? later : soon }));
    ' "$tmp/status.json" >"$tmp/jobs.jsonl"
    "$bin" --db "$db" submit "$tmp/jobs.jsonl" >/dev/null
    "$bin" --db "$db" run --hours 2 >/dev/null

    "$bin" --db "$db" serve --port 0 >"$tmp/serve.out" 2>"$tmp/serve.err" &
    pid=$!
    for _ in $(seq 1 100); do
        addr="$(grep -o 'http://127\.0\.0\.1:[0-9]*' "$tmp/serve.out" || true)"
        [ -n "$addr" ] && break
        sleep 0.1
    done
    if [ -z "$addr" ]; then
        echo "grd_browser_test: grd serve did not start:" >&2
        cat "$tmp/serve.err" >&2
        return 1
    fi
    mkdir -p "$(dirname "$shot")"
    GRD_URL="$addr" GRD_SCREENSHOT="$shot" node "$here/dashboard.test.mjs"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
)
