"""Offline drift checks between template.yaml, the code and the sample events.

Run with the SAM tools venv (it reads the template with cfn-lint's own YAML decoder):

    .venv-sam/bin/python tests/tools/template_drift.py [REPO_ROOT]

Checks:
- the ledger table's keys, index and TTL attribute are the names in shared/src/ledger/schema.rs;
- each function's environment variables are exactly the contract's set, and the code reads them;
- no literal `arn:aws:` anywhere in the template (ARNs are built with ${AWS::Partition});
- the receive budget: with the parameters' default timings, MaxReceiveCount's default outlasts
  the member-role grace window at the shortest jittered backoff with spare receives, the Rule
  that guards it says the same, and the queues keep messages longer than any allowed window;
- each function builds the binary of an existing crate under functions/;
- events/*.json are JSON, carry no secret-valued keys, and SQS bodies are what they claim.

Prints one line per problem and exits 1 if there is any.
"""

from __future__ import annotations

import json
import pathlib
import re
import sys

from cfnlint.decode import decode

# The contract's function configuration table (README, "Function configuration").
COMMON_ENV = {
    "LEDGER_TABLE",
    "EVENT_BUS_NAME",
    "EVENT_SOURCE",
    "REQUEST_DETAIL_TYPE",
    "LEASE_SECONDS",
    "READY_WAIT_SECONDS",
    "MEMBER_ROLE_GRACE_SECONDS",
    "RETRY_BASE_SECONDS",
    "RETRY_MAX_SECONDS",
    "RUST_LOG",
}
MEMBER_ENV = {"MEMBER_ROLE_NAME", "PARTITION"}
FUNCTIONS = {
    "IdentityCenterInstanceFunction": ("identity-center-instance", COMMON_ENV | MEMBER_ENV),
    "ApprovalIdentitySourceFunction": (
        "approval-identity-source",
        COMMON_ENV | {"ORG_INSTANCE_ARN", "ORG_INSTANCE_REGION", "APPROVAL_REGION"},
    ),
    "WebIdentityProviderFunction": ("web-identity-provider", COMMON_ENV | MEMBER_ENV),
}
# The backoff of "not reachable yet" (README, Deploy): receive n+1 comes delay(n) =
# min(base * 2^(n-1), max) after receive n, jittered down to JITTER_FLOOR x at worst; the first
# receive after the grace window records FAILED. SPARE_RECEIVES are left for ordinary retries.
JITTER_FLOOR = 0.8
SPARE_RECEIVES = 2
BUDGET_PARAMETERS = ("MemberRoleGraceSeconds", "RetryBaseSeconds", "RetryMaxSeconds", "MaxReceiveCount")
BUDGET_RULE = "ReceivesCoverGraceWindow"
# RUST_LOG is read by the tracing subscriber, not by the settings module.
ENV_READ_ELSEWHERE = {"RUST_LOG"}
# Names the ledger layout must define (the contract's values, used when schema.rs is absent).
CONTRACT_LEDGER = {
    "PK": "pk",
    "SK": "sk",
    "EXPIRES_AT": "expires_at",
    "ATTENTION_INDEX": "attention",
    "ATTENTION": "attention",
    "UPDATED_AT": "updated_at",
}
SECRET_KEYS = {"client_secret", "private_key"}
CONST_RE = re.compile(r'^\s*pub const ([A-Z][A-Z0-9_]*): &str = "([^"\\]*)";', re.MULTILINE)


class Problems:
    def __init__(self) -> None:
        self.items: list[str] = []

    def expect(self, ok: bool, message: str) -> None:
        if not ok:
            self.items.append(message)


def ledger_names(root: pathlib.Path, problems: Problems) -> dict[str, str]:
    schema = root / "shared" / "src" / "ledger" / "schema.rs"
    if not schema.is_file():
        problems.expect(False, f"{schema.relative_to(root)}: missing; checking against the contract's names")
        return dict(CONTRACT_LEDGER)
    found = dict(CONST_RE.findall(schema.read_text(encoding="utf-8")))
    for name in CONTRACT_LEDGER:
        problems.expect(name in found, f"{schema.relative_to(root)}: no `pub const {name}: &str`")
    return {name: found.get(name, value) for name, value in CONTRACT_LEDGER.items()}


def key_schema(elements) -> dict[str, str]:
    return {str(e.get("KeyType")): str(e.get("AttributeName")) for e in elements or []}


def check_table(resources, names: dict[str, str], problems: Problems) -> None:
    tables = {k: v for k, v in resources.items() if v.get("Type") == "AWS::DynamoDB::Table"}
    problems.expect(len(tables) == 1, f"expected one AWS::DynamoDB::Table, found {sorted(tables)}")
    if not tables:
        return
    logical, table = next(iter(tables.items()))
    props = table.get("Properties", {})
    where = f"template.yaml {logical}"
    want_keys = {"HASH": names["PK"], "RANGE": names["SK"]}
    problems.expect(key_schema(props.get("KeySchema")) == want_keys, f"{where}: KeySchema {key_schema(props.get('KeySchema'))} != {want_keys}")

    indexes = {str(i.get("IndexName")): i for i in props.get("GlobalSecondaryIndexes") or []}
    problems.expect(set(indexes) == {names["ATTENTION_INDEX"]}, f"{where}: indexes {sorted(indexes)} != [{names['ATTENTION_INDEX']}]")
    index = indexes.get(names["ATTENTION_INDEX"], {})
    want_index = {"HASH": names["ATTENTION"], "RANGE": names["UPDATED_AT"]}
    problems.expect(key_schema(index.get("KeySchema")) == want_index, f"{where}: index KeySchema {key_schema(index.get('KeySchema'))} != {want_index}")
    problems.expect(index.get("Projection", {}).get("ProjectionType") == "ALL", f"{where}: index projection must be ALL")

    defs = {str(d.get("AttributeName")): str(d.get("AttributeType")) for d in props.get("AttributeDefinitions") or []}
    want_defs = {names["PK"]: "S", names["SK"]: "S", names["ATTENTION"]: "S", names["UPDATED_AT"]: "N"}
    problems.expect(defs == want_defs, f"{where}: AttributeDefinitions {defs} != {want_defs}")

    ttl = props.get("TimeToLiveSpecification", {})
    problems.expect(
        ttl.get("AttributeName") == names["EXPIRES_AT"] and ttl.get("Enabled") is True,
        f"{where}: TTL must be enabled on {names['EXPIRES_AT']}, found {dict(ttl)}",
    )
    problems.expect(props.get("BillingMode") == "PAY_PER_REQUEST", f"{where}: BillingMode must be PAY_PER_REQUEST")
    problems.expect(
        props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled") is True,
        f"{where}: point-in-time recovery must be on",
    )
    problems.expect(props.get("SSESpecification", {}).get("SSEEnabled") is True, f"{where}: SSE must be on")
    for policy in ("DeletionPolicy", "UpdateReplacePolicy"):
        problems.expect(table.get(policy) == "Retain", f"{where}: {policy} must be Retain")


def check_functions(root: pathlib.Path, resources, globals_, problems: Problems) -> None:
    functions = {k for k, v in resources.items() if v.get("Type") == "AWS::Serverless::Function"}
    problems.expect(functions == set(FUNCTIONS), f"template.yaml: functions {sorted(functions)} != {sorted(FUNCTIONS)}")
    settings = root / "shared" / "src" / "settings.rs"
    settings_text = settings.read_text(encoding="utf-8") if settings.is_file() else None
    problems.expect(settings_text is not None, "shared/src/settings.rs: missing; cannot check that the code reads the variables")
    global_fn = (globals_ or {}).get("Function", {})
    for logical, (crate, want_env) in FUNCTIONS.items():
        fn = resources.get(logical)
        if fn is None:
            continue
        where = f"template.yaml {logical}"
        props = fn.get("Properties", {})
        env = set((props.get("Environment", {}) or {}).get("Variables", {}) or {})
        env |= set(((global_fn.get("Environment") or {}).get("Variables")) or {})
        problems.expect(env == want_env, f"{where}: environment {sorted(env)} != contract {sorted(want_env)}")
        if settings_text is not None:
            for name in sorted(want_env - ENV_READ_ELSEWHERE):
                problems.expect(f'"{name}"' in settings_text, f'{where}: {name} is not read by shared/src/settings.rs')
        meta = fn.get("Metadata", {})
        problems.expect(meta.get("BuildMethod") == "rust-cargolambda", f"{where}: BuildMethod must be rust-cargolambda")
        binary = (meta.get("BuildProperties") or {}).get("Binary")
        problems.expect(binary == crate, f"{where}: BuildProperties.Binary {binary!r} != {crate!r}")
        manifest = root / "functions" / crate / "Cargo.toml"
        problems.expect(
            manifest.is_file() and re.search(rf'^name\s*=\s*"{re.escape(crate)}"', manifest.read_text(encoding="utf-8"), re.MULTILINE),
            f"{where}: no crate named {crate} at {manifest.relative_to(root)}",
        )
        for key, want in (("Runtime", "provided.al2023"), ("Handler", "bootstrap"), ("Architectures", ["arm64"])):
            got = props.get(key, global_fn.get(key))
            problems.expect(got == want, f"{where}: {key} {got!r} != {want!r}")


def receives_to_outlast(grace: float, base: float, cap: float, factor: float) -> int:
    """The number of the first receive that comes after the grace window (it records FAILED)."""
    elapsed, receive = 0.0, 1
    while elapsed <= grace:
        elapsed += min(base * 2 ** (receive - 1), cap) * factor
        receive += 1
    return receive


def check_receive_budget(template, problems: Problems) -> None:
    params = template.get("Parameters", {})
    missing = [p for p in BUDGET_PARAMETERS if p not in params]
    problems.expect(not missing, f"template.yaml: parameters {missing} missing")
    if missing:
        return
    grace, base, cap, receives = (float(params[p].get("Default")) for p in BUDGET_PARAMETERS)
    problems.expect(base <= cap, f"template.yaml: RetryBaseSeconds default {base} > RetryMaxSeconds default {cap}")
    needed = receives_to_outlast(grace, base, cap, JITTER_FLOOR)
    budget = needed + SPARE_RECEIVES
    problems.expect(
        receives >= budget,
        f"template.yaml: MaxReceiveCount default {receives:g} < {budget} ({needed} receives outlast "
        f"{grace:g} s at {JITTER_FLOOR}x backoff, + {SPARE_RECEIVES} spare)",
    )

    # The Rule guarding MaxReceiveCount for the default timings must say the same.
    rule = (template.get("Rules") or {}).get(BUDGET_RULE)
    problems.expect(rule is not None, f"template.yaml: Rules.{BUDGET_RULE} missing")
    if rule is not None:
        text = json.dumps(rule)
        for name in BUDGET_PARAMETERS[:3]:
            problems.expect(
                f'[{{"Ref": "{name}"}}, "{params[name].get("Default")}"]' in text,
                f"template.yaml: Rules.{BUDGET_RULE} must apply when {name} is {params[name].get('Default')}",
            )
        refused = [str(n) for n in range(1, budget)]
        problems.expect(
            f'{{"Fn::Contains": [{json.dumps(refused)}, {{"Ref": "MaxReceiveCount"}}]}}' in text,
            f"template.yaml: Rules.{BUDGET_RULE} must refuse MaxReceiveCount 1..{budget - 1}",
        )

    # A waiting message must outlive the longest allowed window plus one longest delay.
    longest = float(params["MemberRoleGraceSeconds"].get("MaxValue", grace)) + float(params["RetryMaxSeconds"].get("MaxValue", cap))
    for logical, res in template.get("Resources", {}).items():
        props = res.get("Properties", {})
        if res.get("Type") != "AWS::SQS::Queue" or "RedrivePolicy" not in props:
            continue
        retention = float(props.get("MessageRetentionPeriod", 345600))
        problems.expect(
            retention > longest,
            f"template.yaml {logical}: MessageRetentionPeriod {retention:g} s <= longest grace window + delay {longest:g} s",
        )


def check_partition(root: pathlib.Path, problems: Problems) -> None:
    for number, line in enumerate((root / "template.yaml").read_text(encoding="utf-8").splitlines(), 1):
        problems.expect("arn:aws:" not in line, f"template.yaml:{number}: literal arn:aws: (use arn:${{AWS::Partition}}:)")


def secret_keys(value, path: str = "$"):
    if isinstance(value, dict):
        for k, v in value.items():
            if str(k).lower() in SECRET_KEYS:
                yield f"{path}.{k}"
            yield from secret_keys(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from secret_keys(v, f"{path}[{i}]")


def check_events(root: pathlib.Path, problems: Problems) -> None:
    files = sorted((root / "events").glob("*.json"))
    problems.expect(len(files) > 0, "events/: no sample events")
    for path in files:
        where = f"events/{path.name}"
        try:
            event = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as e:
            problems.expect(False, f"{where}: not JSON: {e}")
            continue
        for hit in secret_keys(event):
            problems.expect(False, f"{where}: secret-valued key at {hit}")
        records = event.get("Records") if isinstance(event, dict) else None
        if records is None:
            problems.expect(isinstance(event, dict) and {"source", "detail-type", "detail", "id"} <= set(event), f"{where}: not an EventBridge event")
            continue
        for i, record in enumerate(records):
            problems.expect(record.get("eventSource") == "aws:sqs" and record.get("messageId"), f"{where}: Records[{i}] is not an SQS record")
            try:
                body = json.loads(record.get("body", ""))
            except ValueError:
                # Only the sample whose point is an unreadable record may carry one.
                problems.expect("invalid" in path.name, f"{where}: Records[{i}].body is not JSON")
                continue
            for hit in secret_keys(body):
                problems.expect(False, f"{where}: secret-valued key in Records[{i}].body at {hit}")


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[2])
    template, matches = decode(str(root / "template.yaml"))
    if matches or template is None:
        for m in matches:
            print(f"template.yaml: {m}")
        return 1
    problems = Problems()
    resources = template.get("Resources", {})
    check_table(resources, ledger_names(root, problems), problems)
    check_functions(root, resources, template.get("Globals"), problems)
    check_receive_budget(template, problems)
    check_partition(root, problems)
    check_events(root, problems)
    for p in problems.items:
        print(p)
    return 1 if problems.items else 0


if __name__ == "__main__":
    sys.exit(main())
