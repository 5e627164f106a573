"""Offline drift checks between template.yaml, the code and the sample events.

Run with the SAM tools venv (it reads the template with cfn-lint's own YAML decoder):

    .venv-sam/bin/python tests/tools/template_drift.py [REPO_ROOT]

Checks:
- the ledger table's keys, its two indexes (`attention`, `audit`) and TTL attribute are the names
  in shared/src/ledger/schema.rs, and every ledger index a policy names exists;
- each function's environment variables are exactly the contract's set, the code reads them, and
  a variable that several functions get has the same value in each;
- every metric an alarm or the dashboard uses in the project's namespace is one the code emits
  (shared/src/telemetry.rs), dimensioned by Function with a function's name; the dashboard body
  is JSON; every alarm treats missing data as not breaching, notifies AlarmTopicArn and is
  described in README's "### Alarms";
- the queue-age alarms' default threshold is above what a healthy message can reach;
- no literal `arn:aws:` anywhere in the template (ARNs are built with ${AWS::Partition});
- the receive budget: with the parameters' default timings, MaxReceiveCount's default outlasts
  the member-role grace window at the shortest jittered backoff with spare receives, the Rule
  that guards it says the same, and the queues keep messages longer than any allowed window;
- each function builds the binary of an existing crate under functions/;
- events/*.json are JSON, carry no secret-valued keys, and SQS bodies are what they claim;
- permissions (template.yaml and member-role.yaml): no literal `arn:aws:` in either; every
  `Resource: "*"` says why in a comment; the member role (member-role.yaml) allows exactly the
  calls the steps make with member credentials plus their dependent actions; the StackSet takes
  member-role.yaml itself (TemplateURL), passes exactly its parameters and trusts exactly the
  roles that assume the member role; README's "## Permissions" lists, per principal, exactly the
  actions its policies allow.

Prints one line per problem and exits 1 if there is any.
"""

from __future__ import annotations

import json
import pathlib
import re
import sys

from cfnlint.decode import decode

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import iam_policies  # noqa: E402

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
# The instance step refuses the management account before any call (identity-center-instance,
# and the reconciler, which runs that step too).
INSTANCE_ENV = {"MANAGEMENT_ACCOUNT_ID"}
ORG_ENV = {"ORG_INSTANCE_ARN", "ORG_INSTANCE_REGION", "APPROVAL_REGION"}
# Read by the settings every function shares (shared/src/settings.rs).
SETTINGS_ENV = COMMON_ENV | MEMBER_ENV | ORG_ENV | INSTANCE_ENV
RECONCILER_ENV = {"RECONCILE_INTERVAL_MINUTES", "REPAIR_DRIFT"}
FUNCTIONS = {
    "IdentityCenterInstanceFunction": ("identity-center-instance", COMMON_ENV | MEMBER_ENV | INSTANCE_ENV),
    "ApprovalIdentitySourceFunction": ("approval-identity-source", COMMON_ENV | ORG_ENV),
    "WebIdentityProviderFunction": ("web-identity-provider", COMMON_ENV | MEMBER_ENV),
    "ReconcilerFunction": ("reconciler", COMMON_ENV | MEMBER_ENV | ORG_ENV | INSTANCE_ENV | RECONCILER_ENV),
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
    "AUDIT_INDEX": "audit",
    "AUDIT_HOUR": "audit_hour",
    "AUDIT_MINUTE": "audit_minute",
}
# The table's sparse indexes (schema.rs): index name -> (partition key, its type), (sort key, its type).
LEDGER_INDEXES = {
    "ATTENTION_INDEX": (("ATTENTION", "S"), ("UPDATED_AT", "N")),
    "AUDIT_INDEX": (("AUDIT_HOUR", "N"), ("AUDIT_MINUTE", "N")),
}
LEDGER_TABLE = "LedgerTable"
# The EMF lines' only dimension (shared/src/telemetry.rs); its values are the functions' names.
METRIC_DIMENSION = "Function"
# Alarm topic wiring every alarm shares (AlarmActions and OKActions).
ALARM_TOPIC_ACTIONS = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
QUEUE_AGE_PARAMETER = "QueueAgeAlarmSeconds"
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
    want_names = sorted(names[index] for index in LEDGER_INDEXES)
    problems.expect(sorted(indexes) == want_names, f"{where}: indexes {sorted(indexes)} != {want_names}")
    want_defs = {names["PK"]: "S", names["SK"]: "S"}
    for index_const, ((hash_const, hash_type), (range_const, range_type)) in LEDGER_INDEXES.items():
        name = names[index_const]
        index = indexes.get(name, {})
        want_index = {"HASH": names[hash_const], "RANGE": names[range_const]}
        got_index = key_schema(index.get("KeySchema"))
        problems.expect(got_index == want_index, f"{where}: index {name} KeySchema {got_index} != {want_index}")
        problems.expect(index.get("Projection", {}).get("ProjectionType") == "ALL", f"{where}: index {name} projection must be ALL")
        want_defs[names[hash_const]] = hash_type
        want_defs[names[range_const]] = range_type

    defs = {str(d.get("AttributeName")): str(d.get("AttributeType")) for d in props.get("AttributeDefinitions") or []}
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


def rust_sources(directory: pathlib.Path) -> str:
    """The non-test Rust code under `directory` (each file up to its `#[cfg(test)]`)."""
    if not directory.is_dir():
        return ""
    return "\n".join(path.read_text(encoding="utf-8").split("#[cfg(test)]")[0] for path in sorted(directory.rglob("*.rs")))


def check_functions(root: pathlib.Path, resources, globals_, problems: Problems) -> None:
    functions = {k for k, v in resources.items() if v.get("Type") == "AWS::Serverless::Function"}
    problems.expect(functions == set(FUNCTIONS), f"template.yaml: functions {sorted(functions)} != {sorted(FUNCTIONS)}")
    settings = root / "shared" / "src" / "settings.rs"
    settings_text = settings.read_text(encoding="utf-8") if settings.is_file() else None
    problems.expect(settings_text is not None, "shared/src/settings.rs: missing; cannot check that the code reads the variables")
    shared_text = rust_sources(root / "shared" / "src")
    global_fn = (globals_ or {}).get("Function", {})
    values: dict[str, dict[str, str]] = {}
    for logical, (crate, want_env) in FUNCTIONS.items():
        fn = resources.get(logical)
        if fn is None:
            continue
        where = f"template.yaml {logical}"
        props = fn.get("Properties", {})
        variables = dict(((global_fn.get("Environment") or {}).get("Variables")) or {})
        variables.update((props.get("Environment", {}) or {}).get("Variables", {}) or {})
        for name, value in variables.items():
            values.setdefault(name, {})[logical] = json.dumps(value, sort_keys=True)
        env = set(variables)
        problems.expect(env == want_env, f"{where}: environment {sorted(env)} != contract {sorted(want_env)}")
        # Every function reads the shared settings (shared/src/settings.rs); a function's own
        # variables may be read anywhere in shared/src or in its crate.
        crate_text = rust_sources(root / "functions" / crate / "src")
        if settings_text is not None:
            for name in sorted(want_env - ENV_READ_ELSEWHERE):
                if name in SETTINGS_ENV:
                    problems.expect(f'"{name}"' in settings_text, f"{where}: {name} is not read by shared/src/settings.rs")
                else:
                    problems.expect(
                        f'"{name}"' in shared_text + crate_text,
                        f"{where}: {name} is not read by the code (shared/src, functions/{crate}/src)",
                    )
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
    # A variable that several functions get means the same thing everywhere: the same value.
    for name, by_function in sorted(values.items()):
        distinct = set(by_function.values())
        problems.expect(
            len(distinct) == 1,
            f"template.yaml: {name} differs between functions: " + "; ".join(f"{k}: {v}" for k, v in sorted(by_function.items())),
        )


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


def check_index_grants(resources, names: dict[str, str], problems: Problems) -> None:
    """Every ledger index a policy names exists; the reconciler may Query each of them."""
    table = resources.get(LEDGER_TABLE, {})
    indexes = {str(i.get("IndexName")) for i in table.get("Properties", {}).get("GlobalSecondaryIndexes") or []}
    prefix = "${" + LEDGER_TABLE + ".Arn}/index/"
    for logical, res in resources.items():
        if res.get("Type") != "AWS::IAM::Role":
            continue
        queried: set[str] = set()
        for policy in res.get("Properties", {}).get("Policies") or []:
            for statement in (policy.get("PolicyDocument") or {}).get("Statement") or []:
                if not isinstance(statement, dict) or "Action" not in statement:
                    continue  # a conditional statement (Fn::If) never names the ledger
                actions = statement.get("Action")
                actions = [actions] if isinstance(actions, str) else list(actions or [])
                resources_ = statement.get("Resource")
                resources_ = resources_ if isinstance(resources_, list) else [resources_]
                for resource in resources_:
                    sub = resource.get("Fn::Sub") if isinstance(resource, dict) else None
                    if isinstance(sub, str) and sub.startswith(prefix):
                        index = sub[len(prefix):]
                        problems.expect(index in indexes, f"template.yaml {logical}: grants on ledger index {index!r}, which the table does not have {sorted(indexes)}")
                        if "dynamodb:Query" in actions:
                            queried.add(index)
        if logical == "ReconcilerRole":
            want = {names[index] for index in LEDGER_INDEXES}
            problems.expect(queried == want, f"template.yaml {logical}: dynamodb:Query on indexes {sorted(queried)} != {sorted(want)}")


# Metric names in telemetry.rs: `metric("Name")`, `("Name", self.counter)`, `"Name": self.counter`,
# `const X: &str = "Name"` and the strings of `const X: &[&str] = &[...]` / `[&str; N] = [...]`.
METRIC_PATTERNS = (
    re.compile(r'\bmetric\(\s*"([A-Za-z][A-Za-z0-9]*)"\s*\)'),
    re.compile(r'\(\s*"([A-Za-z][A-Za-z0-9]*)"\s*,\s*self\.'),
    re.compile(r'"([A-Za-z][A-Za-z0-9]*)"\s*:\s*self\.'),
)
STR_CONST_RE = re.compile(r'\bconst ([A-Z][A-Z0-9_]*): &(?:\'static )?str = "([^"\\]*)";')
STR_LIST_CONST_RE = re.compile(r'\bconst [A-Z][A-Z0-9_]*: &?(?:\'static )?\[&(?:\'static )?str(?:; *\d+)?\] = &?\[(.*?)\];', re.DOTALL)


def emitted_metrics(root: pathlib.Path, problems: Problems) -> tuple[str | None, set[str]]:
    """The metrics namespace and the metric names the code emits (shared/src/telemetry.rs)."""
    path = root / "shared" / "src" / "telemetry.rs"
    if not path.is_file():
        problems.expect(False, "shared/src/telemetry.rs: missing; cannot check the alarms' and dashboard's metrics")
        return None, set()
    text = path.read_text(encoding="utf-8").split("#[cfg(test)]")[0]
    consts = dict(STR_CONST_RE.findall(text))
    namespace = consts.pop("METRIC_NAMESPACE", None)
    problems.expect(namespace is not None, "shared/src/telemetry.rs: no `const METRIC_NAMESPACE: &str`")
    names = set(consts.values())
    for pattern in METRIC_PATTERNS:
        names.update(pattern.findall(text))
    for body in STR_LIST_CONST_RE.findall(text):
        names.update(re.findall(r'"([^"\\]*)"', body))
    problems.expect(bool(names), "shared/src/telemetry.rs: no metric names found")
    return namespace, names


def dashboard_metrics(logical: str, body, problems: Problems):
    """(where, namespace, name, dimensions) of every metric row of a dashboard body."""
    text = body.get("Fn::Sub") if isinstance(body, dict) else body
    if isinstance(text, list):
        text = text[0]
    if not isinstance(text, str):
        problems.expect(False, f"template.yaml {logical}: DashboardBody is neither a string nor a Fn::Sub string")
        return
    # Substitutions are names, ARNs or numbers: 0 keeps both quoted and bare ones valid JSON.
    try:
        dashboard = json.loads(re.sub(r"\$\{[^}!][^}]*\}", "0", text))
    except ValueError as e:
        problems.expect(False, f"template.yaml {logical}: DashboardBody is not JSON: {e}")
        return
    for i, widget in enumerate(dashboard.get("widgets") or []):
        previous: list = []
        for j, row in enumerate((widget.get("properties") or {}).get("metrics") or []):
            parts = [x for x in row if not isinstance(x, dict)]
            if not parts:
                continue  # an expression row
            # "." repeats the value at the same position in the row above.
            parts = [previous[k] if x == "." and k < len(previous) else x for k, x in enumerate(parts)]
            previous = parts
            dims = dict(zip(parts[2::2], parts[3::2]))
            yield f"template.yaml {logical} widgets[{i}].metrics[{j}]", parts[0], parts[1], dims


def template_metrics(resources, problems: Problems):
    """(where, namespace, name, dimensions) of every metric an alarm or a dashboard uses."""
    for logical, res in resources.items():
        props = res.get("Properties", {})
        if res.get("Type") == "AWS::CloudWatch::Alarm":
            metrics = [(f"template.yaml {logical}", props)] if "MetricName" in props else []
            metrics += [
                (f"template.yaml {logical} Metrics[{m.get('Id')}]", m["MetricStat"]["Metric"])
                for m in props.get("Metrics") or []
                if "MetricStat" in m
            ]
            for where, metric in metrics:
                dims = {d.get("Name"): d.get("Value") for d in metric.get("Dimensions") or []}
                yield where, metric.get("Namespace"), metric.get("MetricName"), dims
        elif res.get("Type") == "AWS::CloudWatch::Dashboard":
            yield from dashboard_metrics(logical, props.get("DashboardBody"), problems)


def check_metrics(root: pathlib.Path, resources, problems: Problems) -> None:
    namespace, emitted = emitted_metrics(root, problems)
    functions = {crate for crate, _ in FUNCTIONS.values()}
    used: set[str] = set()
    for where, ns, name, dims in template_metrics(resources, problems):
        if isinstance(ns, str) and ns.startswith("AWS/"):
            continue
        problems.expect(ns == namespace, f"{where}: namespace {ns!r} is neither AWS's nor the code's {namespace!r}")
        problems.expect(name in emitted, f"{where}: metric {name!r} is not emitted by the code (shared/src/telemetry.rs)")
        problems.expect(
            set(dims) == {METRIC_DIMENSION} and dims.get(METRIC_DIMENSION) in functions,
            f"{where}: {name} dimensions {dims} != {{{METRIC_DIMENSION!r}: one of {sorted(functions)}}}",
        )
        used.add(str(dims.get(METRIC_DIMENSION)))
    # The Function dimension is the name each function passes to its metrics line.
    shared_text = rust_sources(root / "shared" / "src")
    for crate in sorted(used & functions):
        problems.expect(
            f'"{crate}"' in rust_sources(root / "functions" / crate / "src") + shared_text,
            f"functions/{crate}/src: never names its metrics' Function {crate!r} (template alarms and dashboard use it)",
        )


def readme_alarms(root: pathlib.Path) -> str | None:
    """README's "### Alarms" subsection (what each alarm means and what to do)."""
    readme = root / "README.md"
    if not readme.is_file():
        return None
    match = re.search(r"^### Alarms\n(.*?)(?=^##? )", readme.read_text(encoding="utf-8") + "\n## end", re.DOTALL | re.MULTILINE)
    return match.group(1) if match else None


def check_alarms(root: pathlib.Path, resources, problems: Problems) -> None:
    guide = readme_alarms(root)
    problems.expect(guide is not None, 'README.md: no "### Alarms" subsection')
    for logical, res in resources.items():
        if res.get("Type") != "AWS::CloudWatch::Alarm":
            continue
        props = res.get("Properties", {})
        where = f"template.yaml {logical}"
        problems.expect(props.get("TreatMissingData") == "notBreaching", f"{where}: TreatMissingData must be notBreaching")
        for key in ("AlarmActions", "OKActions"):
            problems.expect(props.get(key) == ALARM_TOPIC_ACTIONS, f"{where}: {key} must be AlarmTopicArn when given ({ALARM_TOPIC_ACTIONS})")
        # Whoever gets the notification finds what to do in the README.
        problems.expect("(README, Alarms)" in str(props.get("AlarmDescription", "")), f"{where}: AlarmDescription must point to (README, Alarms)")
        if guide is not None:
            problems.expect(f"**{logical}**" in guide, f'README.md "### Alarms": {logical} is not described')


def check_queue_age(template, problems: Problems) -> None:
    """A healthy message must never reach the queue-age alarms' default threshold.

    SQS leaves a message of a standard queue out of ApproximateAgeOfOldestMessage once it has
    been received three times, so a message counts until its third receive: two runs and two
    redelivery delays, each delay at most the longest backoff (RetryMaxSeconds), the queue's
    visibility timeout (ordinary retries) or a lease held elsewhere (LeaseSeconds).
    """
    params = template.get("Parameters", {})
    resources = template.get("Resources", {})
    missing = [p for p in (QUEUE_AGE_PARAMETER, "RetryMaxSeconds", "LeaseSeconds") if p not in params]
    problems.expect(not missing, f"template.yaml: parameters {missing} missing")
    if missing:
        return
    threshold = float(params[QUEUE_AGE_PARAMETER]["Default"])
    timeout = float(((template.get("Globals") or {}).get("Function") or {}).get("Timeout", 900))
    source_queues = {k: v for k, v in resources.items() if v.get("Type") == "AWS::SQS::Queue" and "RedrivePolicy" in v.get("Properties", {})}
    visibility = max((float(q["Properties"].get("VisibilityTimeout", 30)) for q in source_queues.values()), default=30.0)
    delay = max(float(params["RetryMaxSeconds"]["Default"]), visibility, float(params["LeaseSeconds"]["Default"]))
    healthy = 2 * delay + 2 * timeout
    problems.expect(
        threshold > healthy,
        f"template.yaml: {QUEUE_AGE_PARAMETER} default {threshold:g} <= {healthy:g}, the age a healthy message can reach "
        f"before its third receive (2 x {delay:g} s delay + 2 x {timeout:g} s run)",
    )
    # One age alarm per source queue, on that threshold.
    watched = {}
    for logical, res in resources.items():
        props = res.get("Properties", {})
        if res.get("Type") == "AWS::CloudWatch::Alarm" and props.get("MetricName") == "ApproximateAgeOfOldestMessage":
            problems.expect(props.get("Threshold") == {"Ref": QUEUE_AGE_PARAMETER}, f"template.yaml {logical}: Threshold must be !Ref {QUEUE_AGE_PARAMETER}")
            for d in props.get("Dimensions") or []:
                value = d.get("Value")
                if isinstance(value, dict) and "Fn::GetAtt" in value:
                    watched[value["Fn::GetAtt"][0]] = logical
    for queue in sorted(source_queues):
        problems.expect(queue in watched, f"template.yaml {queue}: no ApproximateAgeOfOldestMessage alarm")


def check_partition(root: pathlib.Path, problems: Problems) -> None:
    for name in ("template.yaml", MEMBER_ROLE_TEMPLATE):
        for number, line in enumerate((root / name).read_text(encoding="utf-8").splitlines(), 1):
            problems.expect("arn:aws:" not in line, f"{name}:{number}: literal arn:aws: (use arn:${{AWS::Partition}}:)")


MEMBER_ROLE_TEMPLATE = iam_policies.MEMBER_ROLE_TEMPLATE
# The code that acts in member accounts with the member role's credentials (the steps, and the
# CLI's `retry --replace`), and the IAM prefix of
# the SDK client they call (every other client call in them is named in MEMBER_CODE_OTHER).
MEMBER_CODE = {
    "shared/src/steps/identity_center_instance.rs": "sso",
    "shared/src/steps/web_identity_provider.rs": "workspaces-web",
    # `onboarding retry --replace` deletes a CREATE_FAILED instance with the member role.
    "cli/src/replace.rs": "sso",
}
MEMBER_CODE_OTHER = {"get_secret_value"}  # Secrets Manager, with the function's own role
SDK_CALL_RE = re.compile(r"\.\s*((?:create|describe|list|update|tag|untag|get|delete|put)_[a-z_]+)\(\)")
# The Service Authorization Reference's dependent actions of the calls (aws-notes.md, "IAM: what
# each call needs"); kms:* only under a customer managed key, which account instances do not use.
DEPENDENT_ACTIONS = {
    "sso:CreateInstance": {"iam:CreateServiceLinkedRole", "identitystore:CreateIdentityStore", "organizations:DescribeOrganization"},
    "sso:UpdateInstance": {"identitystore:UpdateIdentityStore"},
    "sso:DeleteInstance": {"identitystore:DeleteIdentityStore"},
}
# README's "## Permissions": a "### `<principal>` ..." heading per principal; the member role's
# heading names its logical id in member-role.yaml.
MEMBER_ROLE_HEADING = "MemberRole"
ACTION_RE = re.compile(r"`([a-z0-9-]+:[A-Za-z0-9*]+)`")


def camel(snake: str) -> str:
    return "".join(part.capitalize() for part in snake.split("_"))


def member_calls(root: pathlib.Path, problems: Problems) -> set[str]:
    """The IAM actions of every call the steps make with member credentials (non-test code)."""
    calls: set[str] = set()
    for path, prefix in MEMBER_CODE.items():
        file = root / path
        if not file.is_file():
            problems.expect(False, f"{path}: missing; cannot check the member role against the code")
            continue
        text = file.read_text(encoding="utf-8").split("#[cfg(test)]")[0]
        for op in set(SDK_CALL_RE.findall(text)) - MEMBER_CODE_OTHER:
            calls.add(f"{prefix}:{camel(op)}")
    return calls


def check_permissions(root: pathlib.Path, template, problems: Problems) -> None:
    statements = list(iam_policies.statements(root))
    # Every Resource "*" says why (a comment of its own, not only a test justification).
    for s in statements:
        if s.star:
            reasons = [c for c in s.comments + list(s.inline.values()) if not iam_policies.JUSTIFICATION.search(c)]
            problems.expect(bool(reasons), f"{s.file}:{s.line}: {s.principal} statement {s.sid or ''} has Resource \"*\" without a comment saying why")

    # The member role: exactly what the steps call in member accounts, plus dependent actions.
    allowed = {a for s in statements if s.principal == iam_policies.MEMBER_ROLE for a, _ in s.actions}
    calls = member_calls(root, problems)
    want = set(calls)
    for call in calls:
        want |= DEPENDENT_ACTIONS.get(call, set())
    for action in sorted(want - allowed):
        problems.expect(False, f"{MEMBER_ROLE_TEMPLATE}: the member role does not allow {action}, which the code calls (or a call of it depends on)")
    for action in sorted(allowed - want):
        problems.expect(False, f"{MEMBER_ROLE_TEMPLATE}: the member role allows {action}, which no step calls in member accounts")

    # The StackSet deploys member-role.yaml itself, with exactly its parameters.
    resources = template.get("Resources", {})
    stacksets = {k: v for k, v in resources.items() if v.get("Type") == "AWS::CloudFormation::StackSet"}
    problems.expect(len(stacksets) == 1, f"template.yaml: expected one AWS::CloudFormation::StackSet (the member role), found {sorted(stacksets)}")
    member = iam_policies.load(root / MEMBER_ROLE_TEMPLATE)
    for logical, res in stacksets.items():
        props = res.get("Properties", {})
        where = f"template.yaml {logical}"
        problems.expect(props.get("TemplateURL") == MEMBER_ROLE_TEMPLATE, f"{where}: TemplateURL must be {MEMBER_ROLE_TEMPLATE} (sam deploy uploads it)")
        problems.expect(props.get("PermissionModel") == "SERVICE_MANAGED", f"{where}: PermissionModel must be SERVICE_MANAGED")
        problems.expect(
            props.get("AutoDeployment") == {"Enabled": True, "RetainStacksOnAccountRemoval": False},
            f"{where}: AutoDeployment must be enabled (new accounts) and not retain stacks",
        )
        problems.expect(props.get("Capabilities") == ["CAPABILITY_NAMED_IAM"], f"{where}: Capabilities must be [CAPABILITY_NAMED_IAM]")
        passed = {str(p.get("ParameterKey")): p.get("ParameterValue") for p in props.get("Parameters") or []}
        declared = member.get("Parameters") or {}
        required = {k for k, v in declared.items() if "Default" not in v}
        problems.expect(set(passed) <= set(declared), f"{where}: passes parameters {sorted(set(passed) - set(declared))} that {MEMBER_ROLE_TEMPLATE} does not declare")
        problems.expect(required <= set(passed), f"{where}: does not pass {sorted(required - set(passed))}, which {MEMBER_ROLE_TEMPLATE} requires")
        problems.expect(passed.get("RoleName") == {"Ref": "MemberRoleName"}, f"{where}: RoleName must be !Ref MemberRoleName")
        # TrustedRoleArns: exactly the roles that may assume the member role.
        trusted = set()
        for value in iam_policies_walk(passed.get("TrustedRoleArns")):
            if isinstance(value, dict) and "Fn::GetAtt" in value:
                trusted.add(value["Fn::GetAtt"][0])
        assumers = {
            s.principal
            for s in statements
            if s.file == "template.yaml" and any(a == "sts:AssumeRole" for a, _ in s.actions)
            and resources.get(s.principal, {}).get("Type") == "AWS::IAM::Role"
        }
        problems.expect(trusted == assumers, f"{where}: TrustedRoleArns {sorted(trusted)} != the roles allowed sts:AssumeRole on the member role {sorted(assumers)}")

    # README: per principal, exactly the actions its policies allow.
    documented = readme_permissions(root)
    if documented is None:
        problems.expect(False, 'README.md: no "## Permissions" section')
        return
    shipped: dict[str, set[str]] = {}
    for s in statements:
        name = MEMBER_ROLE_HEADING if s.principal == iam_policies.MEMBER_ROLE else s.principal
        shipped.setdefault(name, set()).update(a for a, _ in s.actions)
    for name in sorted(set(shipped) | set(documented)):
        have, says = shipped.get(name), documented.get(name)
        if have is None:
            problems.expect(False, f'README.md "## Permissions": {name} is no shipped principal')
        elif says is None:
            problems.expect(False, f'README.md "## Permissions": no "### `{name}`" subsection')
        else:
            for action in sorted(have - says):
                problems.expect(False, f'README.md "## Permissions" {name}: {action} is allowed but not listed')
            for action in sorted(says - have):
                problems.expect(False, f'README.md "## Permissions" {name}: lists {action}, which its policies do not allow')


def iam_policies_walk(value):
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from iam_policies_walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from iam_policies_walk(v)


def readme_permissions(root: pathlib.Path) -> dict[str, set[str]] | None:
    """README's "## Permissions": principal (first `name` of each ### heading) -> actions in its table rows."""
    readme = root / "README.md"
    if not readme.is_file():
        return None
    match = re.search(r"^## Permissions\n(.*?)(?=^## )", readme.read_text(encoding="utf-8") + "\n## end", re.DOTALL | re.MULTILINE)
    if not match:
        return None
    out: dict[str, set[str]] = {}
    current = None
    for line in match.group(1).splitlines():
        if line.startswith("### "):
            name = re.search(r"`([^`]+)`", line)
            current = name.group(1) if name else None
            if current:
                out.setdefault(current, set())
        elif current and line.startswith("|"):
            cells = line.split("|")
            if len(cells) > 2:
                out[current].update(ACTION_RE.findall(cells[1]))
    return out


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
    names = ledger_names(root, problems)
    check_table(resources, names, problems)
    check_index_grants(resources, names, problems)
    check_functions(root, resources, template.get("Globals"), problems)
    check_metrics(root, resources, problems)
    check_alarms(root, resources, problems)
    check_receive_budget(template, problems)
    check_queue_age(template, problems)
    check_partition(root, problems)
    check_permissions(root, template, problems)
    check_events(root, problems)
    for p in problems.items:
        print(p)
    return 1 if problems.items else 0


if __name__ == "__main__":
    sys.exit(main())
