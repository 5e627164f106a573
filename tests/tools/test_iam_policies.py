"""Tests of the policy renderer and the least-privilege check.

    .venv/bin/python -m unittest discover -s tests/tools -p 'test_*.py'

(Run by tests/tools/check-template.)
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import io
import json
import pathlib
import re
import sys
import tempfile
import unittest
from contextlib import redirect_stderr, redirect_stdout

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import iam_policies  # noqa: E402

FUNCTION_ROLES = {"IdentityCenterInstanceRole", "ApprovalIdentitySourceRole", "WebIdentityProviderRole", "ReconcilerRole"}
OPERATORS = {"OperatorReadPolicy", "OperatorPolicy"}
ASSUMERS = ("IdentityCenterInstanceRole", "WebIdentityProviderRole", "ReconcilerRole")


def least_privilege():
    loader = importlib.machinery.SourceFileLoader("least_privilege", str(HERE / "least-privilege"))
    spec = importlib.util.spec_from_loader("least_privilege", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def walk(value):
    yield value
    if isinstance(value, dict):
        for v in value.values():
            yield from walk(v)
    elif isinstance(value, list):
        for v in value:
            yield from walk(v)


def is_document(doc) -> bool:
    return isinstance(doc, dict) and doc.get("Version") == "2012-10-17" and isinstance(doc.get("Statement"), list) and all(
        isinstance(s, dict) and s.get("Effect") in ("Allow", "Deny") and "Action" in s for s in doc["Statement"]
    )


class RenderTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        out = io.StringIO()
        with redirect_stdout(out):
            code = iam_policies.main(["--root", str(ROOT)])
        assert code == 0
        cls.out = json.loads(out.getvalue())

    def test_shape(self):
        self.assertEqual(set(self.out), {"principals", "member_role"})
        self.assertEqual(set(self.out["principals"]), FUNCTION_ROLES | OPERATORS)
        for name, principal in self.out["principals"].items():
            self.assertEqual(set(principal), {"arn", "policies"}, name)
            self.assertIsInstance(principal["arn"], str)
            self.assertTrue(principal["policies"], name)
            for doc in principal["policies"]:
                self.assertTrue(is_document(doc), name)
        member = self.out["member_role"]
        self.assertEqual(set(member), {"name", "path", "trust", "policies"})
        self.assertEqual((member["name"], member["path"]), ("IdentityOnboardingMemberRole", "/"))
        self.assertTrue(is_document(member["trust"]))
        self.assertTrue(all(is_document(d) for d in member["policies"]))

    def test_no_intrinsic_left(self):
        for value in walk(self.out):
            if isinstance(value, dict):
                self.assertFalse("Ref" in value or isinstance(value.get("Condition"), str) or any(k.startswith("Fn::") for k in value), value)

    def test_arns(self):
        p = self.out["principals"]
        self.assertEqual(p["IdentityCenterInstanceRole"]["arn"], "arn:aws:iam::111111111111:role/identity-onboarding/IdentityCenterInstanceRole")
        self.assertEqual(p["OperatorPolicy"]["arn"], "arn:aws:iam::111111111111:role/OperatorPolicy")

    def test_placeholders(self):
        text = json.dumps(self.out["principals"]["ReconcilerRole"])
        self.assertIn('"${LedgerTable.Arn}/index/audit"', text)
        self.assertIn('"${LedgerTable.Arn}"', text)
        self.assertIn("event-bus/${EventBusName}", text)
        self.assertIn("arn:aws:iam::*:role/IdentityOnboardingMemberRole", text)
        # No unresolved parameter other than the kept ones and those without a default.
        names = set(re.findall(r"\$\{([^}.]+)\}", json.dumps(self.out["principals"])))
        self.assertLessEqual(names, {"EventBusName", "OrganizationInstanceArn", "LedgerTable"} | {n for n in names if n.endswith("LogGroup") or n.endswith("Queue")})

    def test_member_role(self):
        member = self.out["member_role"]
        trust = member["trust"]["Statement"]
        self.assertEqual(len(trust), 1)  # no operators by default
        self.assertEqual(trust[0]["Action"], "sts:AssumeRole")
        self.assertEqual(
            trust[0]["Condition"]["ArnEquals"]["aws:PrincipalArn"],
            [self.out["principals"][r]["arn"] for r in ASSUMERS],
        )
        text = json.dumps(member["policies"])
        self.assertIn("arn:${AWS::Partition}:sso:::instance/*", text)
        self.assertIn("${AWS::AccountId}:identityProvider/*", text)
        self.assertNotIn("111111111111", text)

    def test_overrides(self):
        out = iam_policies.render(
            ROOT,
            {"MemberRoleName": "Other", "OperatorPrincipalArns": "arn:aws-cn:iam::222222222222:role/OperatorPolicy", "SecretsKmsKeyArn": "k"},
            account="222222222222",
            region="cn-north-1",
            partition="aws-cn",
        )
        self.assertEqual(out["member_role"]["name"], "Other")
        self.assertEqual(len(out["member_role"]["trust"]["Statement"]), 2)
        self.assertEqual(out["member_role"]["trust"]["Statement"][1]["Condition"]["ArnLike"]["aws:PrincipalArn"], ["arn:aws-cn:iam::222222222222:role/OperatorPolicy"])
        role = out["principals"]["WebIdentityProviderRole"]
        self.assertTrue(role["arn"].startswith("arn:aws-cn:iam::222222222222:role/"))
        self.assertIn("ProviderSecretsKey", [s.get("Sid") for s in role["policies"][0]["Statement"]])
        self.assertNotIn("arn:aws:", json.dumps(out))


class LeastPrivilegeTest(unittest.TestCase):
    def run_check(self, lines):
        module = least_privilege()
        with tempfile.TemporaryDirectory() as d:
            (pathlib.Path(d) / "calls.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
            out, err = io.StringIO(), io.StringIO()
            with redirect_stdout(out), redirect_stderr(err):
                code = module.main([d, "--root", str(ROOT)])
        return code, out.getvalue()

    def every_unjustified_call(self):
        rendered = iam_policies.render(ROOT)
        justified = iam_policies.justifications(ROOT)
        module = least_privilege()
        calls = []
        for name, p in rendered["principals"].items():
            calls += [{"principal": name, "action": a, "allowed": True} for a in module.allowed_actions(p["policies"]) if a not in justified.get(name, {})]
        member = module.allowed_actions(rendered["member_role"]["policies"])
        calls += [{"principal": "IdentityOnboardingMemberRole", "action": a, "allowed": True} for a in member if a not in justified.get("member_role", {})]
        return calls

    def test_clean(self):
        code, out = self.run_check(self.every_unjustified_call())
        self.assertEqual(code, 0, out)

    def test_denied_and_unused(self):
        calls = self.every_unjustified_call()
        dropped = next(c for c in calls if c["principal"] == "IdentityOnboardingMemberRole" and c["action"] == "sso:UpdateInstance")
        calls.remove(dropped)
        calls.append({"principal": "WebIdentityProviderRole", "action": "sso:CreateInstance", "allowed": False})
        code, out = self.run_check(calls)
        self.assertEqual(code, 1)
        self.assertIn("denied: WebIdentityProviderRole called sso:CreateInstance", out)
        self.assertIn("unused: member_role is allowed sso:UpdateInstance", out)
        self.assertNotIn("logs:PutLogEvents", out)  # justified in template.yaml


if __name__ == "__main__":
    unittest.main()
