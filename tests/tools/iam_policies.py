#!/usr/bin/env python3
"""Render the IAM policies this project ships, as the local emulator and test harness use them.

    python tests/tools/iam_policies.py [--root DIR] [--param NAME=VALUE]... \
        [--account 111111111111] [--region us-east-1] [--partition aws]

Reads template.yaml (the function roles, AWS::IAM::Role, and the operators' managed policies,
AWS::IAM::ManagedPolicy) and member-role.yaml (the member-account role, with the parameters
template.yaml's StackSet passes it) and prints JSON:

    {"principals": {"<logical id>": {"arn": "...", "policies": [<policy document>, ...]}, ...},
     "member_role": {"name": "...", "path": "/", "trust": <trust policy>, "policies": [...]}}

Resolution: parameters take their template defaults (overridden by --param); pseudo parameters
come from --account/--region/--partition; Fn::If follows the template's Conditions;
AWS::NoValue is removed. Ref/GetAtt/Sub of a resource become placeholders in the string
(`${LedgerTable.Arn}`, `${LedgerTable}`), except a role's Arn, which is the ARN below. The
parameters of KEPT_PARAMETERS and parameters without a default stay placeholders
(`${EventBusName}`) for the harness to fill in. Function roles are
arn:<partition>:iam::<account>:role<Path><LogicalId>; an operator policy is rendered as the
principal arn:<partition>:iam::<account>:role/<LogicalId>. Inside member-role.yaml,
${AWS::AccountId}, ${AWS::Partition} and ${AWS::Region} stay placeholders: they are the member
account's, filled in per account.

Needs only the standard library and PyYAML. Also imported by template_drift.py and
least-privilege (justifications(), statements()).
"""

from __future__ import annotations

import argparse
import json
import pathlib
import re
import sys
from dataclasses import dataclass, field

import yaml

KEPT_PARAMETERS = ("EventBusName",)
MEMBER_ROLE_TEMPLATE = "member-role.yaml"
MEMBER_ROLE_KEPT_PSEUDO = ("AWS::AccountId", "AWS::Partition", "AWS::Region")
MEMBER_ROLE = "member_role"
JUSTIFICATION = re.compile(r"#\s*not called in tests:\s*(.+?)\s*$")
STAR_REASON_MIN = 1


# --- CloudFormation YAML -------------------------------------------------------------------


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns the short intrinsic tags into their long forms."""


def _intrinsic(loader: CfnLoader, suffix: str, node: yaml.Node):
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "Condition":
        return {"Condition": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CfnLoader.add_multi_constructor("!", _intrinsic)


def load(path: pathlib.Path):
    return yaml.load(path.read_text(encoding="utf-8"), Loader=CfnLoader)


# --- Resolution ----------------------------------------------------------------------------

_REMOVE = object()
SUB_RE = re.compile(r"\$\{([^}]*)\}")


class Resolver:
    def __init__(self, template, params: dict, pseudo: dict, kept: set[str], role_arns: dict[str, str]):
        self.template = template
        self.resources = template.get("Resources", {}) or {}
        self.params = params
        self.pseudo = pseudo
        self.kept = kept
        self.role_arns = role_arns
        self._conditions: dict[str, bool] = {}

    @staticmethod
    def parameter_values(template, overrides: dict[str, str]) -> tuple[dict, set[str]]:
        """Parameter values (defaults, overridden) and the names left as placeholders."""
        values, placeholders = {}, set()
        for name, spec in (template.get("Parameters") or {}).items():
            if name in overrides:
                raw = overrides[name]
            elif "Default" in spec:
                raw = spec["Default"]
            else:
                placeholders.add(name)
                continue
            raw = str(raw) if not isinstance(raw, list) else ",".join(map(str, raw))
            values[name] = raw.split(",") if str(spec.get("Type", "")).startswith(("CommaDelimitedList", "List<")) else raw
        return values, placeholders

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.value(self.template["Conditions"][name]))
        return self._conditions[name]

    def ref(self, name: str):
        if name == "AWS::NoValue":
            return _REMOVE
        if name in self.pseudo:
            return self.pseudo[name]
        if name.startswith("AWS::"):
            return "${" + name + "}"
        if name in self.kept:
            return "${" + name + "}"
        if name in self.params:
            return self.params[name]
        return "${" + name + "}"  # a resource

    def sub_one(self, name: str, variables: dict) -> str:
        if name.startswith("!"):
            return "${" + name[1:] + "}"
        if name in variables:
            value = variables[name]
        elif "." in name and not name.startswith("AWS::"):
            logical, attr = name.split(".", 1)
            value = self.getatt(logical, attr)
        else:
            value = self.ref(name)
        if isinstance(value, list):
            value = ",".join(value)
        return str(value)

    def getatt(self, logical: str, attr: str):
        if attr == "Arn" and logical in self.role_arns:
            return self.role_arns[logical]
        return "${" + logical + "." + attr + "}"

    def value(self, node):
        if isinstance(node, list):
            out = [self.value(x) for x in node]
            return [x for x in out if x is not _REMOVE]
        if not isinstance(node, dict):
            return node
        if len(node) == 1:
            (key, arg), = node.items()
            if key == "Ref":
                return self.ref(arg)
            if key == "Condition" and isinstance(arg, str):
                return self.condition(arg)
            if key == "Fn::GetAtt":
                logical, attr = arg if isinstance(arg, list) else str(arg).split(".", 1)
                return self.getatt(logical, attr)
            if key == "Fn::Sub":
                text, variables = (arg, {}) if isinstance(arg, str) else (arg[0], {k: self.value(v) for k, v in arg[1].items()})
                return SUB_RE.sub(lambda m: self.sub_one(m.group(1), variables), text)
            if key == "Fn::If":
                name, yes, no = arg
                return self.value(yes if self.condition(name) else no)
            if key == "Fn::Join":
                sep, items = arg
                items = self.value(items)
                return sep.join(str(x) for x in (items if isinstance(items, list) else [items]))
            if key == "Fn::Split":
                sep, text = arg
                return str(self.value(text)).split(sep)
            if key == "Fn::Select":
                index, items = arg
                return self.value(items)[int(self.value(index))]
            if key == "Fn::Equals":
                a, b = (self.value(x) for x in arg)
                return str(a) == str(b)
            if key == "Fn::Not":
                return not self.value(arg[0])
            if key == "Fn::And":
                return all(self.value(x) for x in arg)
            if key == "Fn::Or":
                return any(self.value(x) for x in arg)
            if key.startswith("Fn::"):
                raise ValueError(f"unsupported intrinsic {key}")
        out = {}
        for k, v in node.items():
            v = self.value(v)
            if v is not _REMOVE:
                out[k] = v
        return out


def role_arn(partition: str, account: str, path: str, name: str) -> str:
    return f"arn:{partition}:iam::{account}:role{path or '/'}{name}"


def render(root: pathlib.Path, overrides: dict[str, str] | None = None, account="111111111111", region="us-east-1", partition="aws"):
    overrides = dict(overrides or {})
    template = load(root / "template.yaml")
    resources = template.get("Resources", {}) or {}
    pseudo = {
        "AWS::AccountId": account,
        "AWS::Region": region,
        "AWS::Partition": partition,
        "AWS::StackName": "identity-onboarding",
        "AWS::URLSuffix": "amazonaws.com.cn" if partition == "aws-cn" else "amazonaws.com",
    }
    params, placeholders = Resolver.parameter_values(template, overrides)
    roles = {k: v for k, v in resources.items() if v.get("Type") == "AWS::IAM::Role"}
    arns = {k: role_arn(partition, account, (v.get("Properties") or {}).get("Path", "/"), k) for k, v in roles.items()}
    r = Resolver(template, params, pseudo, set(KEPT_PARAMETERS) | placeholders, arns)

    principals = {}
    for logical, res in resources.items():
        if "Condition" in res and not r.condition(res["Condition"]):
            continue
        props = res.get("Properties") or {}
        if res.get("Type") == "AWS::IAM::Role":
            docs = [r.value(p["PolicyDocument"]) for p in props.get("Policies") or []]
            principals[logical] = {"arn": arns[logical], "policies": docs}
    for logical, res in resources.items():
        if res.get("Type") == "AWS::IAM::ManagedPolicy" and ("Condition" not in res or r.condition(res["Condition"])):
            principals[logical] = {
                "arn": f"arn:{partition}:iam::{account}:role/{logical}",
                "policies": [r.value((res.get("Properties") or {})["PolicyDocument"])],
            }

    # The member role, with the parameters the StackSet passes (whether or not it is created).
    stacksets = [res for res in resources.values() if res.get("Type") == "AWS::CloudFormation::StackSet"]
    if len(stacksets) != 1:
        raise ValueError(f"template.yaml: expected one AWS::CloudFormation::StackSet, found {len(stacksets)}")
    props = stacksets[0].get("Properties") or {}
    url = props.get("TemplateURL")
    if url != MEMBER_ROLE_TEMPLATE:
        raise ValueError(f"template.yaml: the StackSet's TemplateURL is {url!r}, not {MEMBER_ROLE_TEMPLATE!r}")
    passed = {}
    for p in props.get("Parameters") or []:
        value = r.value(p["ParameterValue"])
        passed[p["ParameterKey"]] = ",".join(value) if isinstance(value, list) else str(value)
    member = load(root / MEMBER_ROLE_TEMPLATE)
    member_params, member_placeholders = Resolver.parameter_values(member, passed)
    m = Resolver(member, member_params, {k: v for k, v in pseudo.items() if k not in MEMBER_ROLE_KEPT_PSEUDO}, member_placeholders, {})
    member_roles = [v for v in (member.get("Resources") or {}).values() if v.get("Type") == "AWS::IAM::Role"]
    if len(member_roles) != 1:
        raise ValueError(f"{MEMBER_ROLE_TEMPLATE}: expected one AWS::IAM::Role, found {len(member_roles)}")
    mp = member_roles[0].get("Properties") or {}
    member_role = {
        "name": m.value(mp.get("RoleName")),
        "path": m.value(mp.get("Path", "/")),
        "trust": m.value(mp["AssumeRolePolicyDocument"]),
        "policies": [m.value(p["PolicyDocument"]) for p in mp.get("Policies") or []],
    }
    return {"principals": principals, "member_role": member_role}


# --- Statements with their source lines (justifications, comments) ---------------------------


@dataclass
class Statement:
    file: str
    principal: str  # logical id, or MEMBER_ROLE
    sid: str | None
    line: int  # 1-based line of the statement's first key
    actions: list[tuple[str, int]]  # (action, 1-based line)
    star: bool  # Resource "*" (alone or in a list)
    comments: list[str] = field(default_factory=list)  # comment lines above and inside, and inline ones
    inline: dict[int, str] = field(default_factory=dict)  # 1-based line -> inline comment

    def justification(self, action: str) -> str | None:
        for name, line in self.actions:
            if name == action:
                m = JUSTIFICATION.search(self.inline.get(line, ""))
                if m:
                    return m.group(1)
        for c in self.comments:
            m = JUSTIFICATION.search(c)
            if m:
                return m.group(1)
        return None


def _get(node: yaml.MappingNode, key: str):
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v
    return None


def _statement_nodes(seq):
    for item in seq.value if isinstance(seq, yaml.SequenceNode) else []:
        if isinstance(item, yaml.MappingNode):
            yield item
        elif isinstance(item, yaml.SequenceNode) and item.tag == "!If":
            for branch in item.value[1:]:
                if isinstance(branch, yaml.MappingNode):
                    yield branch


def _inline_comment(text: str) -> str:
    """The comment at the end of a YAML line (outside quotes), or ''."""
    quote = None
    for i, ch in enumerate(text):
        if quote:
            if ch == quote:
                quote = None
        elif ch in "'\"":
            quote = ch
        elif ch == "#" and (i == 0 or text[i - 1] in " \t"):
            return text[i:]
    return ""


def _statements_of(file: str, principal: str, statement_seq, lines: list[str]):
    for node in _statement_nodes(statement_seq):
        first, last = node.start_mark.line, node.end_mark.line
        # A block mapping ends where the next token starts: trailing comments belong to what
        # follows (the next statement's comment block).
        if last >= len(lines) or not lines[last][: node.end_mark.column].strip():
            last -= 1
        while last > first and (not lines[last].strip() or lines[last].lstrip().startswith("#")):
            last -= 1
        comments = []
        i = first - 1
        while i >= 0 and lines[i].lstrip().startswith("#"):
            comments.append(lines[i].strip())
            i -= 1
        inline = {}
        for j in range(first, min(last + 1, len(lines))):
            stripped = lines[j].lstrip()
            if stripped.startswith("#"):
                comments.append(stripped.strip())
            else:
                c = _inline_comment(lines[j])
                if c:
                    inline[j + 1] = c
        action = _get(node, "Action")
        actions = []
        if isinstance(action, yaml.ScalarNode):
            actions.append((action.value, action.start_mark.line + 1))
        elif isinstance(action, yaml.SequenceNode):
            actions += [(a.value, a.start_mark.line + 1) for a in action.value if isinstance(a, yaml.ScalarNode)]
        resource = _get(node, "Resource")
        values = resource.value if isinstance(resource, yaml.SequenceNode) else [resource]
        star = any(isinstance(v, yaml.ScalarNode) and v.tag == "tag:yaml.org,2002:str" and v.value == "*" for v in values if v is not None)
        sid = _get(node, "Sid")
        yield Statement(file, principal, sid.value if isinstance(sid, yaml.ScalarNode) else None, first + 1, actions, star, comments, inline)


def statements(root: pathlib.Path):
    """Every permission statement of the shipped principals, both branches of an Fn::If included
    (trust policies excluded): template.yaml's roles and managed policies, member-role.yaml's role."""
    for file, is_member in (("template.yaml", False), (MEMBER_ROLE_TEMPLATE, True)):
        path = root / file
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        doc = yaml.compose(text, Loader=CfnLoader)
        resources = _get(doc, "Resources")
        for key, res in resources.value if resources is not None else []:
            type_ = _get(res, "Type")
            props = _get(res, "Properties")
            if type_ is None or props is None:
                continue
            principal = MEMBER_ROLE if is_member else key.value
            if type_.value == "AWS::IAM::Role":
                for policy in (_get(props, "Policies") or yaml.SequenceNode("", [])).value:
                    document = _get(policy, "PolicyDocument")
                    yield from _statements_of(file, principal, _get(document, "Statement"), lines)
            elif type_.value == "AWS::IAM::ManagedPolicy":
                yield from _statements_of(file, principal, _get(_get(props, "PolicyDocument"), "Statement"), lines)


def justifications(root: pathlib.Path) -> dict[str, dict[str, str]]:
    """principal -> action -> why no test calls it (`# not called in tests: <why>`)."""
    out: dict[str, dict[str, str]] = {}
    for s in statements(root):
        for action, _ in s.actions:
            why = s.justification(action)
            if why:
                out.setdefault(s.principal, {})[action] = why
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=pathlib.Path, default=pathlib.Path(__file__).resolve().parents[2], help="repository root")
    parser.add_argument("--param", action="append", default=[], metavar="NAME=VALUE", help="a template.yaml parameter value (repeatable)")
    parser.add_argument("--account", default="111111111111")
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--partition", default="aws")
    args = parser.parse_args(argv)
    overrides = {}
    for p in args.param:
        name, sep, value = p.partition("=")
        if not sep:
            parser.error(f"--param {p!r}: expected NAME=VALUE")
        overrides[name] = value
    try:
        out = render(args.root, overrides, args.account, args.region, args.partition)
    except (OSError, ValueError, KeyError, yaml.YAMLError) as e:
        print(f"iam_policies: {e}", file=sys.stderr)
        return 1
    json.dump(out, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
