"""What IAM enforcement costs per call in local runs: DynamoDB UpdateItem straight to moto,
through the identity emulator's forwarder as the root user (not evaluated), and as a
function's role (evaluated against the shipped policies), sequential, one boto3 client each.

    .venv/bin/python tests/bench/enforcement_cost.py   # after `cargo build -p identity-emulator`

EMU names the emulator binary (default: $CARGO_TARGET_DIR/debug/identity-emulator)."""
import json, os, socket, statistics, subprocess, tempfile, time
import boto3
from botocore.config import Config

root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
py = f"{root}/.venv/bin/python"
def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p
mport = free_port()
moto = subprocess.Popen([f"{root}/.venv/bin/moto_server", "-H", "127.0.0.1", "-p", str(mport)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
time.sleep(2.5)
moto_url = f"http://127.0.0.1:{mport}"
pol = subprocess.run([py, f"{root}/tests/tools/iam_policies.py"], capture_output=True, text=True, check=True).stdout
table = "ledger-cost"
binds = {
  "${LedgerTable.Arn}": f"arn:aws:dynamodb:us-east-1:111111111111:table/{table}",
  "${LedgerTable}": table, "${EventBusName}": "bus",
  "${OrganizationInstanceArn}": "arn:aws:sso:::instance/ssoins-72230000a1b2c3d4",
}
for q in ["IdentityCenterInstanceQueue", "ApprovalIdentitySourceQueue", "WebIdentityProviderQueue"]:
    binds["${%s.Arn}" % q] = "arn:aws:sqs:us-east-1:111111111111:q"
for f in ["IdentityCenterInstance", "ApprovalIdentitySource", "WebIdentityProvider", "Reconciler"]:
    binds["${%sLogGroup.Arn}" % f] = "arn:aws:logs:us-east-1:111111111111:log-group:x:*"
for k, v in binds.items():
    pol = pol.replace(k, v)
cfg = {"iam": json.loads(pol), "forward_url": moto_url}
config_file = os.path.join(tempfile.mkdtemp(), "config.json")
open(config_file, "w").write(json.dumps(cfg))
target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/identity-onboarding/target"))
emu_bin = os.environ.get("EMU", os.path.join(target, "debug", "identity-emulator"))
emu = subprocess.Popen([emu_bin, "--config", config_file], stdout=subprocess.PIPE, text=True)
line = emu.stdout.readline().strip()
emu_url = line.split()[-1]

def client(url, key):
    return boto3.client("dynamodb", endpoint_url=url, region_name="us-east-1",
        aws_access_key_id=key, aws_secret_access_key="x", config=Config(retries={"max_attempts": 1}))
admin = client(moto_url, "AKIDLOCALTEST")
admin.create_table(TableName=table, KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
    AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}], BillingMode="PAY_PER_REQUEST")
def run(c, n=300):
    ts = []
    for i in range(n):
        t = time.perf_counter()
        c.update_item(TableName=table, Key={"pk": {"S": f"k{i%20}"}}, UpdateExpression="SET v = :v", ExpressionAttributeValues={":v": {"N": str(i)}})
        ts.append((time.perf_counter() - t) * 1000)
    return statistics.median(ts), sorted(ts)[int(n*0.95)]
direct = client(moto_url, "AKIDLOCALTEST"); via_root = client(emu_url, "AKIDLOCALTEST"); via_role = client(emu_url, "IdentityCenterInstanceRole")
run(direct, 30); run(via_role, 30)
for name, c in [("moto directly", direct), ("emulator forwarder, root (not evaluated)", via_root), ("emulator forwarder, IdentityCenterInstanceRole (evaluated)", via_role)]:
    med, p95 = run(c)
    print(f"{name}: median {med:.2f} ms, p95 {p95:.2f} ms")
emu.terminate(); moto.terminate()
