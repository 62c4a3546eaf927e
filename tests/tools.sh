# shellcheck shell=bash
# Python tools the test script needs, each in a venv under target/tools (git-ignored), with exact
# pins so CI and every developer lint and emulate with the same versions. Source it, then call:
#
#   grd_tools_venv        cfn-lint, cfn-lint-serverless, moto[server]   -> target/tools/venv
#   grd_sam_venv          aws-sam-cli, cargo-lambda, ziglang            -> target/tools/sam-venv
#   grd_lint_template     cfn-lint (plain and serverless rules), sam validate (--lint and plain),
#                         then grd_check_roles
#   grd_check_roles       least-privilege check of the functions' roles in SAM's translated template
#   grd_moto_start        moto_server on a free loopback port; exports AWS_ENDPOINT_URL and friends
#   grd_moto_stop         stops it; safe to call twice or from a trap: trap grd_moto_stop EXIT
#
# Works with no standard input, with CI=true and under `set -euo pipefail`. Functions return
# non-zero on failure (never `exit`).

GRD_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
GRD_TOOLS_DIR="$GRD_ROOT/target/tools"
GRD_TOOLS_VENV="$GRD_TOOLS_DIR/venv"
GRD_SAM_VENV="$GRD_TOOLS_DIR/sam-venv"
GRD_TEMPLATE="infra/template.yaml" # repo-relative: samconfig.toml names the same path

# aws-sam-cli pins its own boto3 and cfn-lint, so it lives apart from moto and the linters.
GRD_TOOLS_PINS=(cfn-lint==1.58.0 cfn-lint-serverless==0.3.6 'moto[server]==5.2.5')
GRD_SAM_PINS=(aws-sam-cli==1.170.0 cargo-lambda==1.9.2 ziglang==0.17.1)

_grd_log() { printf '[tools] %s\n' "$*" >&2; }

# _grd_venv DIR PIN...: create DIR and install the pins unless its stamp already lists exactly them.
_grd_venv() {
    local dir=$1
    shift
    local want stamp="$dir/.grd-pins"
    want=$(printf '%s\n' "$@")
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
#     from a resource of this template (!GetAtt, or !Sub starting with one of its ARNs).
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

class NoManagedPolicies:  # offline: a policy named by its bare name would fail to resolve
    def load(self):
        return {}

src = yaml_parse(open(sys.argv[1]).read())
own = set(src.get("Resources", {}))
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
