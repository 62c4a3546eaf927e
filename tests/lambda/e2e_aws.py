"""Local AWS side of tests/tools.sh grd_lambda_e2e, against moto (AWS_ENDPOINT_URL).

    e2e_aws.py setup  NAMES_JSON ENV_FILE   create the stack's tables, queues and bucket
                                            (shaped as in infra/template.yaml), put the two
                                            node configs, write the names and the functions'
                                            env file
    e2e_aws.py check-fetch   NAMES_JSON     raw/ objects and obs#/fc# signal items per node
    e2e_aws.py check-prices  NAMES_JSON     node#<id> hour items with a price
    e2e_aws.py check-backlog NAMES_JSON N   exactly N jobs in the backlog
    e2e_aws.py check-response KIND FILE [ARG]
                                            a function's response (cargo lambda invoke
                                            --output-format json): KIND fetch SOURCE,
                                            stream, sqs MESSAGE_ID, tick, dashboard-state,
                                            dashboard-drain NODE
    e2e_aws.py check-drained NAMES_JSON NODE  the node's config item is drained

Exits non-zero with a message on any mismatch. Uses the tools venv's boto3.
"""

import base64
import json
import os
import sys
import time

import boto3
from botocore.config import Config

NODES = {
    "ash1": {"id": "ash1", "name": "Ashburn", "region": "us-east", "lat": 39.04, "lon": -77.49,
             "capacity_units": 64, "non_energy_usd_per_chr": 0.024, "margin": 0.08,
             "market": "pjm:DOM"},
    "fra1": {"id": "fra1", "name": "Frankfurt", "region": "eu-central", "lat": 50.11,
             "lon": 8.68, "capacity_units": 128, "non_energy_usd_per_chr": 0.026,
             "margin": 0.08, "market": "entsoe:DE-LU"},
}
# fetch-weather and fetch-prices each have one source (adapters/synthetic.rs).
SOURCES = ["synthetic-weather", "synthetic-prices"]
SIGNAL_SKS = ["obs#weather", "fc#weather", "obs#price", "fc#price"]


def region():
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def client(service):
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        sys.exit("AWS_ENDPOINT_URL is not set: start moto first (grd_moto_start)")
    return boto3.client(service, endpoint_url=endpoint, region_name=region(),
                        config=Config(s3={"addressing_style": "path"}))


def fail(msg):
    print(f"MISMATCH: {msg}", file=sys.stderr)
    sys.exit(1)


def optional(what, fn):
    """Settings that do not change what the functions see; a moto gap is only reported."""
    try:
        fn()
    except Exception as e:  # noqa: BLE001
        print(f"  note: {what} not applied in moto: {e}", file=sys.stderr)


def scan_all(ddb, table):
    items, kw = [], {"TableName": table, "ConsistentRead": True}
    while True:
        page = ddb.scan(**kw)
        items += page["Items"]
        if "LastEvaluatedKey" not in page:
            return items
        kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def setup(names_path, env_path):
    ddb, sqs, s3 = client("dynamodb"), client("sqs"), client("s3")
    # Unique names, as CloudFormation would generate: a rerun against the same moto starts clean.
    p = f"grd-e2e-{int(time.time())}-{os.getpid()}"
    names = {
        "SignalsTable": f"{p}-SignalsTable",
        "NodesTable": f"{p}-NodesTable",
        "BacklogTable": f"{p}-BacklogTable",
        "DispatchesTable": f"{p}-DispatchesTable",
        "JobsQueue": f"{p}-JobsQueue",
        "JobsDeadLetterQueue": f"{p}-JobsDeadLetterQueue",
        "RawBucket": f"{p}-rawbucket".lower(),
    }
    common = {"BillingMode": "PAY_PER_REQUEST", "SSESpecification": {"Enabled": True}}

    def s(n):
        return {"AttributeName": n, "AttributeType": "S"}

    ddb.create_table(
        TableName=names["SignalsTable"], **common,
        AttributeDefinitions=[s("node_id"), s("sk")],
        KeySchema=[{"AttributeName": "node_id", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}],
        StreamSpecification={"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"})
    ddb.create_table(
        TableName=names["NodesTable"], **common,
        AttributeDefinitions=[s("pk"), s("sk")],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"},
                   {"AttributeName": "sk", "KeyType": "RANGE"}])
    ddb.create_table(
        TableName=names["BacklogTable"], **common,
        AttributeDefinitions=[s("job_id"), s("status"),
                              {"AttributeName": "submitted_at", "AttributeType": "N"}],
        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}],
        GlobalSecondaryIndexes=[{
            "IndexName": "status-index",
            "KeySchema": [{"AttributeName": "status", "KeyType": "HASH"},
                          {"AttributeName": "submitted_at", "KeyType": "RANGE"}],
            "Projection": {"ProjectionType": "ALL"}}])
    ddb.create_table(
        TableName=names["DispatchesTable"], **common,
        AttributeDefinitions=[s("job_id")],
        KeySchema=[{"AttributeName": "job_id", "KeyType": "HASH"}])
    for t in ("SignalsTable", "NodesTable", "BacklogTable", "DispatchesTable"):
        ddb.get_waiter("table_exists").wait(TableName=names[t],
                                            WaiterConfig={"Delay": 0.2, "MaxAttempts": 50})
        optional(f"{t} point-in-time recovery", lambda t=t: ddb.update_continuous_backups(
            TableName=names[t],
            PointInTimeRecoverySpecification={"PointInTimeRecoveryEnabled": True}))
    optional("SignalsTable TTL", lambda: ddb.update_time_to_live(
        TableName=names["SignalsTable"],
        TimeToLiveSpecification={"AttributeName": "expires_at", "Enabled": True}))
    desc = ddb.describe_table(TableName=names["SignalsTable"])["Table"]
    if desc.get("StreamSpecification", {}).get("StreamViewType") != "NEW_AND_OLD_IMAGES":
        fail(f"SignalsTable stream not NEW_AND_OLD_IMAGES: {desc.get('StreamSpecification')}")

    dlq = sqs.create_queue(QueueName=names["JobsDeadLetterQueue"], Attributes={
        "SqsManagedSseEnabled": "true", "MessageRetentionPeriod": "1209600"})["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])[
        "Attributes"]["QueueArn"]
    jobs = sqs.create_queue(QueueName=names["JobsQueue"], Attributes={
        "SqsManagedSseEnabled": "true", "VisibilityTimeout": "360",
        "MessageRetentionPeriod": "345600",
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": 5})})[
        "QueueUrl"]
    redrive = json.loads(sqs.get_queue_attributes(QueueUrl=jobs, AttributeNames=["RedrivePolicy"])[
        "Attributes"]["RedrivePolicy"])
    if int(redrive["maxReceiveCount"]) != 5 or redrive["deadLetterTargetArn"] != dlq_arn:
        fail(f"JobsQueue redrive policy: {redrive}")
    names["JobsQueueUrl"], names["JobsDeadLetterQueueUrl"] = jobs, dlq

    b = names["RawBucket"]
    s3.create_bucket(Bucket=b)  # us-east-1: no LocationConstraint
    s3.put_bucket_encryption(Bucket=b, ServerSideEncryptionConfiguration={"Rules": [
        {"ApplyServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}]})
    s3.put_public_access_block(Bucket=b, PublicAccessBlockConfiguration={
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True})
    optional("RawBucket ownership controls", lambda: s3.put_bucket_ownership_controls(
        Bucket=b, OwnershipControls={"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}))
    s3.put_bucket_versioning(Bucket=b, VersioningConfiguration={"Status": "Enabled"})
    optional("RawBucket lifecycle", lambda: s3.put_bucket_lifecycle_configuration(
        Bucket=b, LifecycleConfiguration={"Rules": [
            {"ID": "raw-payloads", "Status": "Enabled", "Filter": {"Prefix": "raw/"},
             "Transitions": [{"Days": 30, "StorageClass": "STANDARD_IA"}],
             "Expiration": {"Days": 90},
             "NoncurrentVersionExpiration": {"NoncurrentDays": 7}},
            {"ID": "abort-incomplete-uploads", "Status": "Enabled", "Filter": {"Prefix": ""},
             "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1}}]}))

    for node_id, node in NODES.items():
        ddb.put_item(TableName=names["NodesTable"], Item={
            "pk": {"S": "nodes"}, "sk": {"S": node_id},
            "config": {"S": json.dumps(node, separators=(",", ":"))},
            "drained": {"BOOL": False}})

    with open(names_path, "w") as f:
        json.dump(names, f, indent=2)
    env = {
        "GRD_SIGNALS_TABLE": names["SignalsTable"],
        "GRD_NODES_TABLE": names["NodesTable"],
        "GRD_BACKLOG_TABLE": names["BacklogTable"],
        "GRD_DISPATCHES_TABLE": names["DispatchesTable"],
        "GRD_RAW_BUCKET": names["RawBucket"],
        "GRD_HORIZON_HOURS": "48",
        "GRD_STRATEGY": "optimized",
        "GRD_SIGNAL_SOURCE": "synthetic",
        "RUST_LOG": "info",  # the template's global
        "AWS_ENDPOINT_URL": os.environ["AWS_ENDPOINT_URL"],
        "AWS_REGION": region(),
        "AWS_DEFAULT_REGION": region(),
        "AWS_ACCESS_KEY_ID": os.environ.get("AWS_ACCESS_KEY_ID", "test"),
        "AWS_SECRET_ACCESS_KEY": os.environ.get("AWS_SECRET_ACCESS_KEY", "test"),
    }
    with open(env_path, "w") as f:
        f.writelines(f"{k}={v}\n" for k, v in env.items())
    print(f"  created in moto: {', '.join(f'{k}={v}' for k, v in names.items() if 'Url' not in k)}")
    print(f"  nodes: {', '.join(NODES)}")


def load(names_path):
    with open(names_path) as f:
        return json.load(f)


def check_fetch(names_path):
    names = load(names_path)
    s3, ddb = client("s3"), client("dynamodb")
    keys, kw = [], {"Bucket": names["RawBucket"], "Prefix": "raw/"}
    while True:
        page = s3.list_objects_v2(**kw)
        keys += [o["Key"] for o in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            break
        kw["ContinuationToken"] = page["NextContinuationToken"]
    # raw/<source>/<node>/<date>/<time>.<ext> (app/fetch_signals.rs raw_key)
    pairs = {}
    for k in keys:
        parts = k.split("/")
        if len(parts) == 5:
            pairs.setdefault((parts[1], parts[2]), []).append(k)
    want = {(s, n) for s in SOURCES for n in NODES}
    missing = sorted(want - set(pairs))
    extra = sorted(set(pairs) - want)
    many = {p: ks for p, ks in pairs.items() if len(ks) != 1}
    print(f"  S3 {names['RawBucket']}: {len(keys)} raw/ objects: " + ", ".join(sorted(keys)))
    if missing or extra or many or len(keys) != len(want):
        fail(f"raw/ objects: want one per node per source {sorted(want)}; missing {missing}, "
             f"unexpected {extra}, not exactly one {many}, keys {keys}")

    items = scan_all(ddb, names["SignalsTable"])
    by_node = {}
    for i in items:
        by_node.setdefault(i["node_id"]["S"], set()).add(i["sk"]["S"])
    for n in NODES:
        got = by_node.get(n, set())
        print(f"  SignalsTable {n}: {', '.join(sorted(got)) or 'nothing'}")
        lack = [sk for sk in SIGNAL_SKS if sk not in got]
        if lack:
            fail(f"SignalsTable has no {lack} items for node {n} (has {sorted(got)})")
    unknown = set(by_node) - set(NODES)
    if unknown:
        fail(f"SignalsTable has items for unknown nodes {sorted(unknown)}")


def check_prices(names_path):
    names = load(names_path)
    ddb = client("dynamodb")
    counts = {}
    for n in NODES:
        items, kw = [], {"TableName": names["NodesTable"], "ConsistentRead": True,
                         "KeyConditionExpression": "pk = :pk",
                         "ExpressionAttributeValues": {":pk": {"S": f"node#{n}"}}}
        while True:
            page = ddb.query(**kw)
            items += page["Items"]
            if "LastEvaluatedKey" not in page:
                break
            kw["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        priced = [i for i in items if i["sk"]["S"].startswith("hour#") and "price" in i]
        counts[n] = (len(items), len(priced))
        sample = json.loads(priced[0]["price"]["S"]) if priced else None
        print(f"  NodesTable node#{n}: {len(items)} hour items, {len(priced)} with a price"
              + (f"; first {priced[0]['sk']['S']}: {json.dumps(sample)[:160]}" if sample else ""))
    if counts["ash1"][1] == 0:
        fail("NodesTable has no node#ash1 hour items with a price attribute")
    if counts["fra1"][1] == 0:
        fail("NodesTable has no node#fra1 hour items with a price attribute (the stream "
             "event names fra1 too)")


def check_backlog(names_path, want):
    names = load(names_path)
    items = scan_all(client("dynamodb"), names["BacklogTable"])
    jobs = sorted((i["job_id"]["S"], i["status"]["S"]) for i in items)
    print(f"  BacklogTable: {len(jobs)} jobs: " + ", ".join(f"{j} ({s})" for j, s in jobs))
    if len(jobs) != want:
        fail(f"BacklogTable has {len(jobs)} jobs, want {want}")
    want_ids = {"render-1", "train-7", "etl-42"}
    if {j for j, _ in jobs} != want_ids:
        fail(f"BacklogTable jobs {sorted(j for j, _ in jobs)}, want {sorted(want_ids)}")


def check_drained(names_path, node_id):
    names = load(names_path)
    item = client("dynamodb").get_item(
        TableName=names["NodesTable"], Key={"pk": {"S": "nodes"}, "sk": {"S": node_id}},
        ConsistentRead=True).get("Item")
    if not item or item.get("drained") != {"BOOL": True}:
        fail(f"NodesTable item of {node_id} is not drained: {item}")
    print(f"  NodesTable: {node_id} drained")


def check_response(kind, path, arg=None):
    text = open(path).read()
    try:
        r = json.loads(text)
    except ValueError as e:
        fail(f"{kind}: response is not JSON ({e}): {text[:500]!r}")
    compact = json.dumps(r, separators=(",", ":"))
    print(f"  response: {compact if len(compact) <= 400 else compact[:400] + '...'}")
    if kind == "fetch":
        # FetchReport (app/fetch_signals.rs): one source, one request per node.
        if not isinstance(r, dict) or not isinstance(r.get("sources"), dict):
            fail(f"fetch: want a FetchReport object with 'sources', got {compact[:300]}")
        src = r["sources"].get(arg)
        if src is None:
            fail(f"fetch: no report for source {arg!r}: {sorted(r['sources'])}")
        n = len(NODES)
        if src.get("requests") != n or src.get("failed") != 0 or src.get("archived") != n:
            fail(f"fetch {arg}: want requests={n} failed=0 archived={n}, got {src}")
        if sorted(r.get("changed_nodes", [])) != sorted(NODES):
            fail(f"fetch {arg}: changed_nodes {r.get('changed_nodes')}, want {sorted(NODES)}")
    elif kind == "stream":
        if r != {"batchItemFailures": []}:
            fail(f"price-nodes: want {{\"batchItemFailures\":[]}}, got {compact}")
    elif kind == "sqs":
        ids = [f.get("itemIdentifier") for f in r.get("batchItemFailures", [])] \
            if isinstance(r, dict) else None
        if not isinstance(r, dict) or set(r) != {"batchItemFailures"} or ids != [arg]:
            fail(f"dispatch-jobs (SQS): want batchItemFailures = exactly [{arg}], got {compact}")
    elif kind == "tick":
        d = r.get("dispatched") if isinstance(r, dict) else None
        if not isinstance(d, (int, float)) or isinstance(d, bool):
            fail(f"dispatch-jobs (tick): want an object with a numeric 'dispatched', got {compact}")
    elif kind in ("dashboard-state", "dashboard-drain"):
        # A Function URL (payload 2.0) response from lambda_http: status, headers, body.
        if not isinstance(r, dict) or r.get("statusCode") != 200:
            fail(f"dashboard: want statusCode 200, got {compact[:300]}")
        body = r.get("body") or ""
        if r.get("isBase64Encoded"):
            body = base64.b64decode(body).decode()
        try:
            b = json.loads(body)
        except ValueError as e:
            fail(f"dashboard: body is not JSON ({e}): {body[:300]!r}")
        if kind == "dashboard-state":
            ids = sorted(n.get("id") for n in b.get("nodes", []))
            if b.get("mode") != "aws" or ids != sorted(NODES):
                fail(f"dashboard /api/state: want mode aws and nodes {sorted(NODES)}, got "
                     f"mode {b.get('mode')!r}, nodes {ids}")
            priced = [n["id"] for n in b["nodes"] if n.get("price")]
            if sorted(priced) != sorted(NODES):
                fail(f"dashboard /api/state: want every node priced this hour, priced: {priced}")
            print(f"  /api/state: mode aws, nodes {ids} priced, {len(b.get('jobs', []))} jobs")
        else:
            if b.get("node_id") != arg or b.get("drained") is not True:
                fail(f"dashboard drain: want node_id {arg} drained, got {b}")
    else:
        sys.exit(f"unknown response kind {kind}")


def main(argv):
    if len(argv) < 2:
        sys.exit(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "setup" and len(args) == 2:
        setup(*args)
    elif cmd == "check-fetch" and len(args) == 1:
        check_fetch(*args)
    elif cmd == "check-prices" and len(args) == 1:
        check_prices(*args)
    elif cmd == "check-response" and len(args) in (2, 3):
        check_response(*args)
    elif cmd == "check-drained" and len(args) == 2:
        check_drained(*args)
    elif cmd == "check-backlog" and len(args) == 2:
        check_backlog(args[0], int(args[1]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
