"""Check that `sam package` / `sam deploy` upload member-role.yaml for the StackSet.

    .venv-sam/bin/python tests/tools/sam_package_stackset.py [REPO_ROOT]

Runs SAM CLI's own exporter (samcli.lib.package.artifact_exporter.Template, what `sam package`
and `sam deploy` run) on template.yaml with a recording stand-in for S3, exporting only
AWS::CloudFormation::StackSet resources (no function code is zipped), offline. Passes when the
StackSet's local TemplateURL is uploaded from member-role.yaml, byte for byte, and replaced by
the uploaded object's S3 URL. Fails if a SAM CLI version stops packaging StackSet templates.
"""

from __future__ import annotations

import pathlib
import sys

from samcli.lib.package.artifact_exporter import CloudFormationStackSetResource, Template
from samcli.lib.package.uploaders import Uploaders

BUCKET = "package-check"


class RecordingS3:
    """Stands in for S3Uploader: records what would be uploaded."""

    def __init__(self) -> None:
        self.uploaded: dict[str, bytes] = {}

    def upload(self, file_name: str, remote_path: str) -> str:
        self.uploaded[remote_path] = pathlib.Path(file_name).read_bytes()
        return f"s3://{BUCKET}/{remote_path}"

    def upload_with_dedup(self, file_name: str, extension=None, precomputed_md5=None) -> str:
        return self.upload(file_name, pathlib.Path(file_name).name)

    def to_path_style_s3_url(self, key: str, version=None) -> str:
        return f"https://s3.amazonaws.com/{BUCKET}/{key}"


def main() -> int:
    root = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).resolve().parents[2])
    s3 = RecordingS3()
    exported = Template(
        str(root / "template.yaml"),
        str(root),
        Uploaders(s3, None),
        None,
        resources_to_export=frozenset([CloudFormationStackSetResource]),
    ).export()
    problems = []
    stacksets = {k: v for k, v in exported["Resources"].items() if v.get("Type") == "AWS::CloudFormation::StackSet"}
    if not stacksets:
        problems.append("template.yaml: no AWS::CloudFormation::StackSet")
    want = (root / "member-role.yaml").read_bytes()
    for logical, res in stacksets.items():
        url = res["Properties"].get("TemplateURL", "")
        key = url.rsplit("/", 1)[-1]
        if not url.startswith(f"https://s3.amazonaws.com/{BUCKET}/") or s3.uploaded.get(key) != want:
            problems.append(f"template.yaml {logical}: TemplateURL {url!r} is not member-role.yaml uploaded by SAM CLI")
    for p in problems:
        print(p)
    if not problems:
        print(f"sam package uploads member-role.yaml for {', '.join(sorted(stacksets))}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
