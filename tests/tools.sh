# shellcheck shell=bash
# Python tools the test script needs, each in a venv under target/tools (git-ignored), with exact
# pins so CI and every developer lint and emulate with the same versions. Source it, then call:
#
#   grd_tools_venv        cfn-lint, cfn-lint-serverless, moto[server]   -> target/tools/venv
#   grd_sam_venv          aws-sam-cli, cargo-lambda, ziglang            -> target/tools/sam-venv
#   grd_checkov_venv      checkov                                       -> target/tools/checkov-venv
#   grd_lint_template     cfn-lint (plain and serverless rules), sam validate (--lint and plain),
#                         grd_checkov, then grd_check_roles
#   grd_checkov           checkov's CloudFormation policies on the template, with the skips
#                         and their reasons in infra/checkov.yaml; zero failures
#   grd_check_roles       least-privilege check of the functions' roles in SAM's translated template
#   grd_moto_start        moto_server on a free loopback port; exports AWS_ENDPOINT_URL and friends
#   grd_moto_stop         stops it; safe to call twice or from a trap: trap grd_moto_stop EXIT
#   grd_sam_build         `sam build` (arm64 via cargo-lambda + zig), checks the 4 bootstraps
#   grd_lambda_e2e        the 4 release binaries against moto (after grd_moto_start), invoked
#                         via `cargo lambda watch` with the sample events; responses, tables
#                         and peak RSS checked
#
# Both compile Rust: on shared machines run them under the cargo lock, e.g.
#   flock /tmp/grd-cargo.lock bash -c 'source tests/tools.sh; grd_sam_build'
# (they do not take it themselves: a nested flock on the same file would wait forever)
#
# Works with no standard input, with CI=true and under `set -euo pipefail`. Functions return
# non-zero on failure (never `exit`).

GRD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GRD_TOOLS_DIR="$GRD_ROOT/target/tools"
GRD_TOOLS_VENV="$GRD_TOOLS_DIR/venv"
GRD_SAM_VENV="$GRD_TOOLS_DIR/sam-venv"
GRD_CHECKOV_VENV="$GRD_TOOLS_DIR/checkov-venv"
GRD_TEMPLATE="infra/template.yaml" # repo-relative: samconfig.toml names the same path

# aws-sam-cli pins its own boto3 and cfn-lint, so it lives apart from moto and the linters.
GRD_TOOLS_PINS=(cfn-lint==1.58.0 cfn-lint-serverless==0.3.6 'moto[server]==5.2.5')
GRD_SAM_PINS=(aws-sam-cli==1.170.0 cargo-lambda==1.9.2 ziglang==0.17.1)
# checkov brings many pinned libraries of its own (boto3, pydantic, ...): a third venv.
GRD_CHECKOV_PINS=(checkov==3.3.30)

_grd_log() { printf '[tools] %s\n' "$*" >&2; }

# _grd_venv DIR PIN...: create DIR and install the pins unless its stamp already lists exactly them
# and DIR itself (a venv's scripts name its path: a venv moved or copied elsewhere is rebuilt).
_grd_venv() {
    local dir=$1
    shift
    local want stamp="$dir/.grd-pins"
    want=$(printf '%s\n' "venv=$dir" "$@")
    if [[ -x "$dir/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        _grd_log "$(basename "$dir"): up to date ($(tr '\n' ' ' <"$stamp"))"
        return 0
    fi
    _grd_log "$(basename "$dir"): installing $*"
    rm -rf "$dir"
    mkdir -p "$(dirname "$dir")"
    python3 -m venv "$dir" </dev/null || return 1
    PIP_NO_INPUT=1 "$dir/bin/pip" --disable-pip-version-check -q install "$@" </dev/null || {
        _grd_log "pip install failed in $dir"
        return 1
    }
    printf '%s\n' "$want" >"$stamp"
    _grd_log "$(basename "$dir"): installed"
    # What actually landed, top-level pins first (the resolver picks the rest).
    "$dir/bin/pip" --disable-pip-version-check list --format=freeze 2>/dev/null |
        grep -iE '^(cfn-lint|cfn-lint-serverless|cfn_lint_serverless|moto|boto3|botocore|aws-sam-cli|aws-sam-translator|cargo-lambda|ziglang)==' >&2 || true
    return 0
}

grd_tools_venv() { _grd_venv "$GRD_TOOLS_VENV" "${GRD_TOOLS_PINS[@]}"; }

grd_sam_venv() { _grd_venv "$GRD_SAM_VENV" "${GRD_SAM_PINS[@]}"; }

grd_checkov_venv() { _grd_venv "$GRD_CHECKOV_VENV" "${GRD_CHECKOV_PINS[@]}"; }

# checkov with no network: no policy download, no mapping of check ids to the vendor's
# guideline ids (it would try to reach the vendor's API otherwise).
grd_checkov() {
    [[ -x "$GRD_CHECKOV_VENV/bin/checkov" ]] || grd_checkov_venv || return 1
    _grd_log "checkov -f $GRD_TEMPLATE --config-file infra/checkov.yaml"
    (
        cd "$GRD_ROOT" || exit 1
        BC_SKIP_MAPPING=TRUE \
            "$GRD_CHECKOV_VENV/bin/checkov" -f "$GRD_TEMPLATE" --config-file infra/checkov.yaml \
            </dev/null
    )
}

# Runs all four checks (they catch different things) and fails if any reports an error or a
# warning: the template is kept clean, and each suppression is justified in it.
grd_lint_template() {
    local rc=0
    [[ -x "$GRD_TOOLS_VENV/bin/cfn-lint" ]] || grd_tools_venv || return 1
    [[ -x "$GRD_SAM_VENV/bin/sam" ]] || grd_sam_venv || return 1
    (
        cd "$GRD_ROOT" || exit 1
        fail=0
        _grd_log "cfn-lint $GRD_TEMPLATE"
        "$GRD_TOOLS_VENV/bin/cfn-lint" --non-zero-exit-code warning -t "$GRD_TEMPLATE" </dev/null || fail=1
        # -a takes several values, so the template goes before it (or behind -t), never after.
        _grd_log "cfn-lint $GRD_TEMPLATE -a cfn_lint_serverless.rules"
        "$GRD_TOOLS_VENV/bin/cfn-lint" --non-zero-exit-code warning -t "$GRD_TEMPLATE" \
            -a cfn_lint_serverless.rules </dev/null || fail=1
        # No -t: samconfig.toml (repo root) names the template. With -t SAM would look for the
        # config beside the template instead.
        export AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0
        _grd_log "sam validate --lint"
        "$GRD_SAM_VENV/bin/sam" validate --lint </dev/null || fail=1
        _grd_log "sam validate"
        "$GRD_SAM_VENV/bin/sam" validate </dev/null || fail=1
        exit "$fail"
    ) || rc=1
    grd_checkov || rc=1
    grd_check_roles || rc=1
    if ((rc)); then _grd_log "template lint FAILED"; else _grd_log "template lint clean"; fi
    return "$rc"
}

# Translates the template offline with the SAM translator (as `sam validate` does; no AWS
# credentials needed) and enforces the template's least-privilege rule on every function's
# runtime role, i.e. the role the translated AWS::Lambda::Function uses:
#   - it is an AWS::IAM::Role written in the template (SAM generated none for the function);
#   - no ManagedPolicyArns (SAM attaches AWS-managed policies with Resource "*" to roles it
#     generates: basic execution, SQS/DynamoDB polling, X-Ray);
#   - no "*" in any Action; no Resource "*" (the single allowed exception is
#     dynamodb:ListStreams, which has no resource-level permissions); every Resource is derived
#     from a resource of this template (!GetAtt, or !Sub starting with one of its ARNs), except
#     ssm:GetParameter on the one SSM parameter a template parameter names (an API key's
#     SecureString, which CloudFormation cannot create).
# Prints each role's statements. Also reports the roles SAM generated for other services.
grd_check_roles() {
    [[ -x "$GRD_SAM_VENV/bin/python" ]] || grd_sam_venv || return 1
    _grd_log "grd_check_roles $GRD_TEMPLATE (SAM translator, offline)"
    (
        cd "$GRD_ROOT" || exit 1
        AWS_DEFAULT_REGION=us-east-1 SAM_CLI_TELEMETRY=0 "$GRD_SAM_VENV/bin/python" - "$GRD_TEMPLATE" <<'PY'
import json, re, sys
from samcli.lib.translate.sam_template_validator import SamTemplateValidator
from samcli.yamlhelper import yaml_parse

LIST_STREAMS_EXCEPTION = ("dynamodb:ListStreams", "*")
SSM_PARAMETER = (r"^arn:\$\{AWS::Partition\}:ssm:\$\{AWS::Region\}:\$\{AWS::AccountId\}"
                 r":parameter\$\{([A-Za-z0-9]+)\}$")

class NoManagedPolicies:  # offline: a policy named by its bare name would fail to resolve
    def load(self):
        return {}

src = yaml_parse(open(sys.argv[1]).read())
own = set(src.get("Resources", {}))
params = set(src.get("Parameters", {}))
out = yaml_parse(SamTemplateValidator(src, NoManagedPolicies(), region="us-east-1")
                 .get_translated_template_if_valid())
res = out["Resources"]

def as_list(v):
    return v if isinstance(v, list) else [v]

def resource_problem(action_list, r):
    """None if r is scoped to a resource of this template (or is the documented exception)."""
    if r == "*":
        if [a for a in action_list if (a, r) != LIST_STREAMS_EXCEPTION]:
            return 'Resource "*"'
        return None
    if isinstance(r, dict) and "Fn::GetAtt" in r:
        target = r["Fn::GetAtt"]
        target = target[0] if isinstance(target, list) else target.split(".")[0]
        return None if target in own else f"GetAtt of unknown resource {target}"
    if isinstance(r, dict) and "Fn::Sub" in r and isinstance(r["Fn::Sub"], str):
        # The one resource outside the stack: the SSM SecureString holding an API key,
        # named by a template parameter (CloudFormation cannot create SecureStrings).
        m = re.match(SSM_PARAMETER, r["Fn::Sub"])
        if m and m.group(1) in params and action_list == ["ssm:GetParameter"]:
            return None
        m = re.match(r"^\$\{([A-Za-z0-9]+)\.Arn\}(/.*)?$", r["Fn::Sub"])
        if m and m.group(1) in own and (m.group(2) or "") not in ("/*", "/**"):
            return None
        return f"Sub not scoped to one of this template's ARNs: {r['Fn::Sub']}"
    return f"not derived from a resource of this template: {json.dumps(r)}"

def show(r):
    if isinstance(r, dict) and "Fn::GetAtt" in r:
        g = r["Fn::GetAtt"]
        return "!GetAtt " + (".".join(g) if isinstance(g, list) else g)
    if isinstance(r, dict) and "Fn::Sub" in r:
        return "!Sub " + json.dumps(r["Fn::Sub"])
    return json.dumps(r)

problems = []
runtime_roles = {}
for name, r in res.items():
    if r.get("Type") != "AWS::Lambda::Function":
        continue
    role = r["Properties"].get("Role")
    if not (isinstance(role, dict) and "Fn::GetAtt" in role):
        problems.append(f"{name}: Role is not a GetAtt of a role: {role!r}")
        continue
    ref = role["Fn::GetAtt"]
    ref = ref[0] if isinstance(ref, list) else ref.split(".")[0]
    if ref not in own or src["Resources"][ref].get("Type") != "AWS::IAM::Role":
        problems.append(f"{name}: uses {ref}, not an AWS::IAM::Role written in the template")
    runtime_roles.setdefault(ref, []).append(name)

# Inline policies: the role's Policies plus AWS::IAM::RolePolicy/Policy resources naming it.
for role_name, fns in sorted(runtime_roles.items()):
    role = res.get(role_name, {})
    props = role.get("Properties", {})
    print(f"{role_name} (runtime role of {', '.join(fns)})")
    managed = props.get("ManagedPolicyArns") or []
    print(f"  ManagedPolicyArns: {managed if managed else 'none'}")
    if managed:
        problems.append(f"{role_name}: managed policies {managed}")
    docs = [(p.get("PolicyName"), p.get("PolicyDocument", {})) for p in props.get("Policies", [])]
    for pname, p in res.items():
        pp = p.get("Properties", {})
        if p.get("Type") == "AWS::IAM::RolePolicy" and pp.get("RoleName") == {"Ref": role_name}:
            docs.append((f"{pp.get('PolicyName')} ({pname})", pp.get("PolicyDocument", {})))
        elif p.get("Type") in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy") and \
                {"Ref": role_name} in as_list(pp.get("Roles", [])):
            if p["Type"] == "AWS::IAM::ManagedPolicy":
                problems.append(f"{role_name}: managed policy {pname}")
            docs.append((f"{pp.get('PolicyName')} ({pname})", pp.get("PolicyDocument", {})))
    for pname, doc in docs:
        print(f"  policy {pname}")
        for st in as_list(doc.get("Statement", [])):
            acts = as_list(st.get("Action", []))
            rs = as_list(st.get("Resource", []))
            if st.get("Effect") != "Allow" or "NotAction" in st or "NotResource" in st:
                problems.append(f"{role_name}: unexpected statement form {st}")
            for a in acts:
                if not isinstance(a, str) or "*" in a:
                    problems.append(f"{role_name}: Action {a!r}")
            for rr in rs:
                why = resource_problem(acts, rr)
                if why:
                    problems.append(f"{role_name}: {','.join(acts)} on {show(rr)}: {why}")
            note = "   <- documented exception: no resource-level permissions" \
                if rs == ["*"] and acts == [LIST_STREAMS_EXCEPTION[0]] else ""
            print(f"    {', '.join(acts)}  on  {', '.join(show(x) for x in rs)}{note}")

others = sorted(n for n, r in res.items()
                if r.get("Type") == "AWS::IAM::Role" and n not in runtime_roles)
for n in others:
    props = res[n]["Properties"]
    svc = [s.get("Principal", {}).get("Service")
           for s in props["AssumeRolePolicyDocument"]["Statement"]]
    acts = sorted({a for p in props.get("Policies", [])
                   for s in as_list(p["PolicyDocument"]["Statement"])
                   for a in as_list(s.get("Action", []))})
    print(f"{n} (generated by SAM for {', '.join(map(str, svc))}; not a runtime role): "
          f"{', '.join(acts)}; ManagedPolicyArns: {props.get('ManagedPolicyArns') or 'none'}")

for p in problems:
    print("PROBLEM:", p, file=sys.stderr)
sys.exit(1 if problems else 0)
PY
    ) || {
        _grd_log "runtime roles: least-privilege check FAILED"
        return 1
    }
    _grd_log "runtime roles: least-privilege check passed"
}

GRD_MOTO_PID=${GRD_MOTO_PID:-}
GRD_MOTO_PIDFILE="$GRD_TOOLS_DIR/moto.pid"
GRD_MOTO_LOG="$GRD_TOOLS_DIR/moto.log"

# Any HTTP answer (even an error status) means the server is up.
_grd_http_up() {
    "$GRD_TOOLS_VENV/bin/python" - "$1" <<'PY' 2>/dev/null
import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=1)
except urllib.error.HTTPError:
    pass
PY
}

grd_moto_start() {
    [[ -x "$GRD_TOOLS_VENV/bin/moto_server" ]] || grd_tools_venv || return 1
    if [[ -n "$GRD_MOTO_PID" ]] && kill -0 "$GRD_MOTO_PID" 2>/dev/null; then
        _grd_log "moto already running (pid $GRD_MOTO_PID, ${AWS_ENDPOINT_URL:-})"
        return 0
    fi
    local py="$GRD_TOOLS_VENV/bin/python" port attempt i
    mkdir -p "$GRD_TOOLS_DIR"
    # A port picked by the kernel can be taken before moto binds it: try a few.
    for attempt in 1 2 3; do
        port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()') || return 1
        "$GRD_TOOLS_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" </dev/null >"$GRD_MOTO_LOG" 2>&1 &
        GRD_MOTO_PID=$!
        echo "$GRD_MOTO_PID" >"$GRD_MOTO_PIDFILE"
        for i in $(seq 1 100); do # up to 10 s; it is usually ready in < 1 s
            if ! kill -0 "$GRD_MOTO_PID" 2>/dev/null; then break; fi
            if _grd_http_up "http://127.0.0.1:$port/"; then
                export AWS_ENDPOINT_URL="http://127.0.0.1:$port"
                export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test
                export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1 GRD_MOTO=1
                _grd_log "moto_server ready at $AWS_ENDPOINT_URL (pid $GRD_MOTO_PID, log $GRD_MOTO_LOG)"
                return 0
            fi
            sleep 0.1
        done
        _grd_log "moto_server did not answer on port $port (attempt $attempt):"
        tail -n 5 "$GRD_MOTO_LOG" >&2
        grd_moto_stop
    done
    return 1
}

# Idempotent and safe under `set -euo pipefail` or from a trap: stops the server this shell
# started (by its pid, or the pid file if the variable was lost) and clears the variables.
grd_moto_stop() {
    local pid=${GRD_MOTO_PID:-} cmd=""
    if [[ -z "$pid" && -f "$GRD_MOTO_PIDFILE" ]]; then pid=$(cat "$GRD_MOTO_PIDFILE" 2>/dev/null || true); fi
    # A pid from the file may have been reused since: only stop it if it is still moto_server.
    if [[ -n "$pid" ]]; then cmd=$({ tr '\0' ' ' <"/proc/$pid/cmdline"; } 2>/dev/null || true); fi
    if [[ "$cmd" == *moto_server* ]]; then
        kill "$pid" 2>/dev/null || true
        for _ in $(seq 1 50); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -9 "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
        _grd_log "moto_server stopped (pid $pid)"
    fi
    rm -f "$GRD_MOTO_PIDFILE"
    GRD_MOTO_PID=""
    unset AWS_ENDPOINT_URL GRD_MOTO
    return 0
}

# ------------------------------------------------------------------------------------ sam build

# Logical id -> binary (BuildProperties.Binary in the template), in template order.
GRD_FUNCTIONS=(
    FetchWeatherFunction:fetch-weather
    FetchPricesFunction:fetch-prices
    PriceNodesFunction:price-nodes
    DispatchJobsFunction:dispatch-jobs
    DashboardFunction:dashboard
)
GRD_BUILD_SIZES="$GRD_TOOLS_DIR/build-sizes.txt" # written by grd_sam_build, shown by grd_lambda_e2e

# _grd_elf_check FILE WANT: WANT is aarch64 or x86_64. Prints "<arch> <stripped|not-stripped>
# <description>" and fails unless FILE is an ELF executable of that machine. Uses `file` when
# installed, otherwise reads the ELF header itself (e_machine 0xB7 aarch64, 0x3E x86-64).
_grd_elf_check() {
    local f=$1 want=$2 desc arch strip
    if command -v file >/dev/null 2>&1; then
        desc=$(file -b "$f") || return 1
        case "$desc" in
        ELF\ 64-bit\ LSB*executable*ARM\ aarch64*) arch=aarch64 ;;
        ELF\ 64-bit\ LSB*executable*x86-64*) arch=x86_64 ;;
        *) arch=other ;;
        esac
        if [[ "$desc" == *"not stripped"* ]]; then strip=not-stripped; else strip=stripped; fi
        desc="file: $desc"
    else
        read -r arch strip desc < <(python3 - "$f" <<'PY'
import struct, sys
b = open(sys.argv[1], "rb").read()
if b[:4] != b"\x7fELF" or b[4] != 2 or b[5] != 1:
    print("other ? not a 64-bit little-endian ELF file"); sys.exit()
e_type, e_machine = struct.unpack_from("<HH", b, 16)
arch = {0xB7: "aarch64", 0x3E: "x86_64"}.get(e_machine, "other")
if e_type not in (2, 3):  # EXEC, or DYN (a PIE executable; a .so would also be DYN)
    arch = "other"
e_shoff, = struct.unpack_from("<Q", b, 0x28)
e_shentsize, e_shnum, e_shstrndx = struct.unpack_from("<HHH", b, 0x3A)
types = [struct.unpack_from("<I", b, e_shoff + i * e_shentsize + 4)[0] for i in range(e_shnum)]
strip = "not-stripped" if 2 in types else "stripped"  # SHT_SYMTAB
print(arch, strip, f"ELF header: e_type={e_type} e_machine=0x{e_machine:X} ({arch}), {strip}")
PY
        ) || return 1
    fi
    printf '%s %s %s\n' "$arch" "$strip" "$desc"
    [[ "$arch" == "$want" ]]
}

# _grd_report_bootstraps ARCH LABEL PATH...: checks each bootstrap (arch, stripped), prints and
# records its size. LABEL says where they came from (sam build / fallback).
_grd_report_bootstraps() {
    local want=$1 label=$2 fail=0 entry id bin f info bytes
    shift 2
    : >"$GRD_BUILD_SIZES.tmp"
    for entry in "${GRD_FUNCTIONS[@]}"; do
        id=${entry%%:*} bin=${entry#*:}
        f=$1
        shift
        if [[ ! -f "$f" ]]; then
            _grd_log "MISSING $id: $f"
            fail=1
            continue
        fi
        if ! info=$(_grd_elf_check "$f" "$want"); then
            _grd_log "WRONG BINARY $id ($f): want an ELF $want executable, got: ${info#* * }"
            fail=1
            continue
        fi
        bytes=$(stat -c %s "$f")
        if [[ "$info" == *" not-stripped "* ]]; then
            _grd_log "$id: NOT stripped (profile.release strip = true was not applied): $f"
            fail=1
        fi
        printf '%-22s %-14s %-8s %9d bytes  %6.2f MiB  %s\n' "$id" "$bin" "$want" "$bytes" \
            "$(awk -v b="$bytes" 'BEGIN { printf "%.2f", b / 1048576 }')" "${f#"$GRD_ROOT"/}" |
            tee -a "$GRD_BUILD_SIZES.tmp" >&2
        _grd_log "  ${info#* * }"
    done
    if ((fail)); then
        rm -f "$GRD_BUILD_SIZES.tmp"
        return 1
    fi
    { echo "# $label, $(date -u +%FT%TZ)"; cat "$GRD_BUILD_SIZES.tmp"; } >"$GRD_BUILD_SIZES"
    rm -f "$GRD_BUILD_SIZES.tmp"
}

# Builds the template's five functions the way a deploy would: `sam build` from the repo root
# (samconfig.toml names infra/template.yaml), which runs `cargo lambda build --release --arm64
# --bin <Binary>` per function (cargo-lambda cross-links with zig) and copies each bootstrap to
# .aws-sam/build/<LogicalId>/bootstrap. Then checks each is a stripped ELF aarch64 executable
# and prints its size (also saved to target/tools/build-sizes.txt).
#
# zig: cargo-lambda (cargo-zigbuild) runs `python3 -m ziglang` (python3 looked up on PATH, or
# CARGO_ZIGBUILD_PYTHON_PATH) before a plain `zig`; the sam venv has the ziglang wheel, so its
# bin dir goes first on PATH and CARGO_ZIGBUILD_PYTHON_PATH names its python.
#
# Without the aarch64 std (rustup target add not possible here), it cannot build arm64. It says
# so and falls back to x86_64 bootstraps built by `cargo lambda build --release --compiler cargo`
# into target/lambda/<bin>/bootstrap: enough to check the functions build and for local runs,
# NOT deployable with this template (Architectures: arm64); .aws-sam/ is not produced then.
# The fallback returns 0 (with a warning) unless GRD_REQUIRE_ARM64=1; anything that fails to
# build fails the function.
grd_sam_build() {
    [[ -x "$GRD_SAM_VENV/bin/sam" ]] || grd_sam_venv || return 1
    (
        set +e -uo pipefail # errors are handled one by one (callers may run with set -e)
        cd "$GRD_ROOT" || exit 1
        export PATH="$GRD_SAM_VENV/bin:$PATH" CI=true SAM_CLI_TELEMETRY=0
        export CARGO_ZIGBUILD_PYTHON_PATH="$GRD_SAM_VENV/bin/python3"
        export AWS_DEFAULT_REGION=${AWS_DEFAULT_REGION:-us-east-1}
        target=aarch64-unknown-linux-gnu
        start=$(date +%s.%N)
        took() { awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }'; }

        arm64=1
        if rustup target list --installed </dev/null | grep -qx "$target"; then
            _grd_log "rust target $target: installed ($(rustc --version))"
        else
            _grd_log "rust target $target: not installed; trying rustup target add $target"
            if rustup target add "$target" </dev/null; then
                _grd_log "rust target $target: added"
            else
                arm64=0
            fi
        fi

        if ((arm64)); then
            # The zig that cargo-lambda will use (fails here rather than mid-build).
            if ! zig=$(cargo lambda system </dev/null 2>&1) || ! grep -q 'command:' <<<"$zig"; then
                _grd_log "cargo-lambda finds no zig (needed to link arm64):"
                printf '%s\n' "$zig" >&2
                exit 1
            fi
            _grd_log "zig for cargo-lambda: $(grep -E 'command:|version:' <<<"$zig" | tr -s ' ' | tr '\n' ' ')"
            _grd_log "sam build (samconfig.toml -> $GRD_TEMPLATE; arm64, release)"
            if ! sam build </dev/null; then
                _grd_log "sam build FAILED after $(took) s"
                exit 1
            fi
            _grd_log "sam build done in $(took) s"
            paths=()
            for entry in "${GRD_FUNCTIONS[@]}"; do
                paths+=("$GRD_ROOT/.aws-sam/build/${entry%%:*}/bootstrap")
            done
            _grd_report_bootstraps aarch64 "sam build (arm64), $(took) s" "${paths[@]}" || {
                _grd_log "sam build output check FAILED"
                exit 1
            }
            _grd_log "sam build: ${#GRD_FUNCTIONS[@]} arm64 bootstraps OK (wall time $(took) s)"
            exit 0
        fi

        _grd_log "WARNING: arm64 cannot be built on this machine: the Rust std for $target is" \
            "not installed and 'rustup target add $target' failed (offline?). The template's" \
            "functions are arm64, so sam build is SKIPPED and .aws-sam/ is not produced."
        _grd_log "FALLBACK: x86_64 bootstraps with cargo lambda build --release --compiler cargo" \
            "into target/lambda/<bin>/bootstrap (not deployable with this template)"
        bins=()
        paths=()
        for entry in "${GRD_FUNCTIONS[@]}"; do
            bins+=(--bin "${entry#*:}")
            paths+=("$GRD_ROOT/target/lambda/${entry#*:}/bootstrap")
        done
        if ! cargo lambda build --release --compiler cargo --x86-64 "${bins[@]}" </dev/null; then
            _grd_log "FALLBACK x86_64 build FAILED after $(took) s: nothing could be built"
            exit 1
        fi
        _grd_report_bootstraps x86_64 "FALLBACK x86_64 cargo lambda build (no arm64 std), $(took) s" \
            "${paths[@]}" || {
            _grd_log "FALLBACK x86_64 build output check FAILED"
            exit 1
        }
        _grd_log "WARNING: only x86_64 bootstraps were built (wall time $(took) s); arm64 NOT built"
        if [[ "${GRD_REQUIRE_ARM64:-0}" == 1 ]]; then
            _grd_log "GRD_REQUIRE_ARM64=1: failing"
            exit 1
        fi
        exit 0
    )
}

# ------------------------------------------------------------------------------- lambda e2e

# A TCP connect is the readiness probe here: with --only-lambda-apis, an HTTP request to watch's
# root is queued as an invocation of the default function and waits for a runtime forever.
_grd_tcp_up() {
    python3 -c 'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1).close()' "$1" 2>/dev/null
}

_grd_kib_mib() { awk -v k="$1" 'BEGIN { printf "%.1f MiB", k / 1024 }'; }

# End-to-end run of the five functions' release binaries against moto, invoked through
# `cargo lambda watch` (the Lambda Runtime API emulator; no Docker) with the sample events.
# Needs grd_moto_start first. Compiles: run it under the cargo lock, e.g.
#   grd_moto_start; flock /tmp/grd-cargo.lock bash -c 'source tests/tools.sh; grd_lambda_e2e'
#
#  1. tests/lambda/e2e_aws.py creates the tables, queues and bucket as in infra/template.yaml
#     (unique names), puts nodes ash1 and fra1, writes the functions' env file.
#  2. `cargo build --release` of the five bins: the same command and artifacts as watch's own
#     `cargo run --release --bin <bin>` (watch rebuilt nothing after it when it ran them).
#  3. `cargo lambda watch --only-lambda-apis` serves the invoke and Runtime APIs; each binary
#     runs as ONE long-lived process (as watch runs it, and as in a warm Lambda sandbox) with
#     exactly the env file's variables plus the AWS_LAMBDA_* ones, and reaches the Runtime API
#     through tests/lambda/runtime_proxy.py. Why not let watch start them: cargo-lambda 1.9.2
#     sends `lambda-runtime-deadline-ms: 600000` (1970, long past) with every event, so every
#     handler's time budget is zero: price-nodes reprices nothing and reports its first
#     record, dispatch-jobs would fail every message. The proxy sets the deadline Lambda
#     would (now + the template's Timeout, 60 s). GRD_E2E_DEADLINE_MS=0 passes the emulator's
#     deadline through unchanged (reproduces the failure).
#  4. invokes (cargo lambda invoke, long flags) and checks responses and tables:
#     fetch-weather, fetch-prices (tick) -> reports, raw/ objects, obs#/fc# signals;
#     price-nodes (stream) -> no failures, node hour prices; dispatch-jobs (SQS, twice) ->
#     exactly the malformed message fails, 3 jobs in the backlog; dispatch-jobs (tick) ->
#     a numeric "dispatched"; dashboard (Function URL events) -> /api/state lists both nodes
#     priced, a drain of fra1 answers and shows in NodesTable.
#  5. peak RSS per function from /proc/<pid>/status VmHWM: after its first invoke it covers
#     process start, init and that invoke; before a later invoke the peak is reset
#     (/proc/<pid>/clear_refs 5), so that reading is the invoke's own peak (over what stays
#     resident).
# Stops watch, the proxy and the functions on exit, also on failure; exits non-zero on any
# mismatch, with the reason and the relevant log.
grd_lambda_e2e() {
    if [[ -z "${AWS_ENDPOINT_URL:-}" ]]; then
        _grd_log "grd_lambda_e2e needs a local AWS endpoint: run grd_moto_start first"
        return 1
    fi
    [[ -x "$GRD_TOOLS_VENV/bin/python" ]] || grd_tools_venv || return 1
    [[ -x "$GRD_SAM_VENV/bin/cargo-lambda" ]] || grd_sam_venv || return 1
    (
        set +e -uo pipefail # errors are handled one by one (callers may run with set -e)
        cd "$GRD_ROOT" || exit 1
        export PATH="$GRD_SAM_VENV/bin:$PATH" CI=true
        py="$GRD_TOOLS_VENV/bin/python"
        aws_py() { "$py" "$GRD_ROOT/tests/lambda/e2e_aws.py" "$@"; }
        release="${CARGO_TARGET_DIR:-$GRD_ROOT/target}/release"
        deadline_ms=${GRD_E2E_DEADLINE_MS:-60000} # the template's Timeout
        work="$GRD_TOOLS_DIR/e2e"
        rm -rf "$work" && mkdir -p "$work" || exit 1
        t0=$(date +%s.%N)
        secs() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", e - s }'; }
        msecs() { awk -v s="$1" -v e="$(date +%s.%N)" 'BEGIN { printf "%.0f", (e - s) * 1000 }'; }
        free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'; }
        watch_pid="" proxy_pid="" port="" pport=""
        declare -A fn_pid=()
        rss_lines=()

        fail() {
            _grd_log "E2E FAILED: $*"
            exit 1
        }
        show_log() { # FILE [LINES]
            [[ -s "$1" ]] || return 0
            _grd_log "last lines of ${1#"$GRD_ROOT"/}:"
            tail -n "${2:-25}" "$1" >&2
        }
        stop_pid() { # PID: TERM, up to 5 s, then KILL; fails if it was not running
            local p=$1
            [[ -n "$p" ]] && kill -0 "$p" 2>/dev/null || return 1
            kill -TERM "$p" 2>/dev/null
            for _ in $(seq 1 50); do
                kill -0 "$p" 2>/dev/null || break
                sleep 0.1
            done
            kill -KILL "$p" 2>/dev/null
            wait "$p" 2>/dev/null
            return 0
        }
        stop_all() {
            local b stopped=()
            for b in "${!fn_pid[@]}"; do
                stop_pid "${fn_pid[$b]}" && stopped+=("$b")
            done
            fn_pid=()
            stop_pid "$proxy_pid" || true
            proxy_pid=""
            if [[ -n "$watch_pid" ]]; then
                # its own process group (setsid): cargo, cargo-lambda and anything they started
                kill -TERM -- "-$watch_pid" 2>/dev/null
                stop_pid "$watch_pid"
                kill -KILL -- "-$watch_pid" 2>/dev/null
                watch_pid=""
                _grd_log "stopped cargo lambda watch, the runtime proxy and ${#stopped[@]} function processes"
            fi
        }
        trap stop_all EXIT
        trap 'exit 130' INT TERM

        _grd_log "e2e: resources in moto at $AWS_ENDPOINT_URL"
        aws_py setup "$work/names.json" "$work/env" || fail "creating the resources in moto"

        bins=()
        for entry in "${GRD_FUNCTIONS[@]}"; do bins+=(--bin "${entry#*:}"); done
        _grd_log "e2e: cargo build --release --locked ${bins[*]}"
        tb=$(date +%s.%N)
        cargo build --release --locked "${bins[@]}" </dev/null >"$work/build.log" 2>&1 || {
            show_log "$work/build.log" 30
            fail "cargo build --release"
        }
        build_s=$(secs "$tb")
        _grd_log "e2e: release build done in $build_s s"

        # cargo lambda watch, on a free port (a port can be taken before watch binds it: retry)
        up=0
        for attempt in 1 2 3; do
            port=$(free_port) || fail "no free port"
            # setsid: its own process group, so stopping it reaches all of its processes
            setsid cargo lambda watch --only-lambda-apis -A 127.0.0.1 -P "$port" --ignore-changes \
                </dev/null >"$work/watch.log" 2>&1 &
            watch_pid=$!
            for _ in $(seq 1 300); do # 30 s
                kill -0 "$watch_pid" 2>/dev/null || break
                if _grd_tcp_up "$port"; then up=1 && break; fi
                sleep 0.1
            done
            ((up)) && break
            _grd_log "cargo lambda watch did not answer on port $port (attempt $attempt)"
            show_log "$work/watch.log" 5
            stop_all
        done
        ((up)) || fail "cargo lambda watch never answered"
        _grd_log "e2e: cargo lambda watch answering on 127.0.0.1:$port (pid $watch_pid)"

        up=0
        for attempt in 1 2 3; do
            pport=$(free_port) || fail "no free port"
            "$py" "$GRD_ROOT/tests/lambda/runtime_proxy.py" "$pport" "$port" "$deadline_ms" \
                </dev/null >"$work/proxy.log" 2>&1 &
            proxy_pid=$!
            for _ in $(seq 1 100); do
                kill -0 "$proxy_pid" 2>/dev/null || break
                if _grd_tcp_up "$pport"; then up=1 && break; fi
                sleep 0.1
            done
            ((up)) && break
            show_log "$work/proxy.log" 5
            stop_pid "$proxy_pid"
        done
        ((up)) || fail "the runtime proxy never answered"
        if ((deadline_ms > 0)); then
            _grd_log "e2e: runtime proxy on 127.0.0.1:$pport: each invocation's deadline = now + $deadline_ms ms"
        else
            _grd_log "e2e: runtime proxy on 127.0.0.1:$pport: GRD_E2E_DEADLINE_MS=0, the emulator's deadline passes through"
        fi

        # The functions: the env file's variables and the ones Lambda (and watch) set, nothing else.
        mapfile -t fn_env <"$work/env"
        for entry in "${GRD_FUNCTIONS[@]}"; do
            b=${entry#*:}
            env -i PATH=/usr/bin:/bin HOME="${HOME:-/root}" "${fn_env[@]}" \
                AWS_LAMBDA_RUNTIME_API="http://127.0.0.1:$pport/.rt/$b" AWS_LAMBDA_FUNCTION_NAME="$b" \
                AWS_LAMBDA_FUNCTION_VERSION=1 AWS_LAMBDA_FUNCTION_MEMORY_SIZE=256 \
                "$release/$b" </dev/null >"$work/$b.log" 2>&1 &
            fn_pid[$b]=$!
        done
        sleep 1
        for b in "${!fn_pid[@]}"; do
            kill -0 "${fn_pid[$b]}" 2>/dev/null || {
                show_log "$work/$b.log"
                fail "$b exited during init"
            }
        done
        _grd_log "e2e: function processes: $(for b in "${!fn_pid[@]}"; do printf '%s=%s ' "$b" "${fn_pid[$b]}"; done)"

        # invoke BIN EVENT LABEL: the response lands in $work/LABEL.json; records the peak RSS.
        declare -A invoked=()
        invoke() {
            local bin=$1 event=$2 label=$3 pid=${fn_pid[$1]} hwm rss how rc ts
            if [[ -n "${invoked[$bin]:-}" ]]; then
                echo 5 >"/proc/$pid/clear_refs" || fail "cannot reset the peak RSS of $bin (pid $pid)"
                how="same process, peak reset before this invoke"
            else
                how="process start + init + this first invoke"
            fi
            invoked[$bin]=1
            _grd_log "invoke $bin < ${event#"$GRD_ROOT"/}"
            ts=$(date +%s.%N)
            timeout 120 cargo lambda invoke "$bin" --invoke-address 127.0.0.1 \
                --invoke-port "$port" --data-file "$event" --output-format json \
                </dev/null >"$work/$label.json" 2>"$work/$label.err"
            rc=$?
            if ((rc)); then
                cat "$work/$label.json" "$work/$label.err" >&2
                show_log "$work/$bin.log"
                ((rc == 124)) && fail "$label: no answer from $bin within 120 s"
                fail "$label: cargo lambda invoke $bin exited $rc"
            fi
            kill -0 "$pid" 2>/dev/null || {
                show_log "$work/$bin.log"
                fail "$label: the $bin process (pid $pid) died"
            }
            hwm=$(awk '/^VmHWM:/ { print $2 }' "/proc/$pid/status")
            rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$pid/status")
            rss_lines+=("$(printf '%-14s %-26s peak RSS %9s (VmHWM %6d kB, now %s; %s; invoke %s ms)' \
                "$bin" "$label" "$(_grd_kib_mib "$hwm")" "$hwm" "$(_grd_kib_mib "$rss")" "$how" \
                "$(msecs "$ts")")")
            _grd_log "  $bin peak RSS $(_grd_kib_mib "$hwm") ($how)"
        }
        check() { # LABEL CHECK-ARGS...: a check by e2e_aws.py; on failure, the function's log
            local label=$1 bin=$2
            shift 2
            aws_py "$@" || {
                show_log "$work/$bin.log" 15
                fail "$label"
            }
        }

        ev="$GRD_ROOT/infra/events"
        bad=d4c3b2a1-0f9e-48d7-a6b5-4a5b6c7d8e94
        # a. the fetchers, on the schedule's tick
        invoke fetch-weather "$ev/schedule-tick.json" fetch-weather-tick
        check "fetch-weather response" fetch-weather check-response fetch "$work/fetch-weather-tick.json" synthetic-weather
        invoke fetch-prices "$ev/schedule-tick.json" fetch-prices-tick
        check "fetch-prices response" fetch-prices check-response fetch "$work/fetch-prices-tick.json" synthetic-prices
        check "fetch results in S3 and SignalsTable" fetch-prices check-fetch "$work/names.json"
        # b. pricing from the stream batch (it names ash1 and fra1)
        invoke price-nodes "$ev/signals-stream.json" price-nodes-stream
        check "price-nodes response" price-nodes check-response stream "$work/price-nodes-stream.json"
        check "prices in NodesTable" price-nodes check-prices "$work/names.json"
        # c. the jobs batch, twice: the malformed message alone fails; the replay changes nothing
        invoke dispatch-jobs "$ev/sqs-jobs.json" dispatch-jobs-sqs
        check "dispatch-jobs SQS response" dispatch-jobs check-response sqs "$work/dispatch-jobs-sqs.json" "$bad"
        check "backlog after the SQS batch" dispatch-jobs check-backlog "$work/names.json" 3
        invoke dispatch-jobs "$ev/sqs-jobs.json" dispatch-jobs-sqs-replay
        check "dispatch-jobs SQS replay response" dispatch-jobs check-response sqs "$work/dispatch-jobs-sqs-replay.json" "$bad"
        check "backlog after the replayed SQS batch" dispatch-jobs check-backlog "$work/names.json" 3
        # d. the planning tick
        invoke dispatch-jobs "$ev/schedule-tick.json" dispatch-jobs-tick
        check "dispatch-jobs tick response" dispatch-jobs check-response tick "$work/dispatch-jobs-tick.json"
        # e. the dashboard behind its Function URL (payload 2.0 events): the state, then a drain
        invoke dashboard "$ev/dashboard-state.json" dashboard-state
        check "dashboard /api/state response" dashboard check-response dashboard-state "$work/dashboard-state.json"
        invoke dashboard "$ev/dashboard-drain.json" dashboard-drain
        check "dashboard drain response" dashboard check-response dashboard-drain "$work/dashboard-drain.json" fra1
        check "fra1 drained in NodesTable" dashboard check-drained "$work/names.json" fra1

        stop_all
        total_s=$(secs "$t0")
        {
            echo
            echo "================ grd_lambda_e2e: PASSED ================"
            if [[ -f "$GRD_BUILD_SIZES" ]]; then
                echo "bootstrap sizes (grd_sam_build, stripped):"
                sed 's/^/  /' "$GRD_BUILD_SIZES"
            else
                echo "bootstrap sizes: none recorded (grd_sam_build not run)"
            fi
            echo "function peak RSS (x86_64 release binaries, one process per function; template MemorySize 256 MB, dispatch-jobs 1,769 MB):"
            printf '  %s\n' "${rss_lines[@]}"
            echo "wall time: ${total_s} s in all, of which the release build ${build_s} s (logs: ${work#"$GRD_ROOT"/})"
        } >&2
        exit 0
    )
}
