//! The shipped policies, enforced in every local run. `tests/tools/iam_policies.py` renders
//! the roles of `template.yaml` and `member-role.yaml` once per test process; each stack
//! binds them to its own table, bus and queues and hands them to the emulator, which
//! evaluates every call (its own services, and moto's through its forwarder) against the
//! policy of the principal that signed it.
//!
//! A principal is named by its access key: the functions run with the access key
//! `IdentityCenterInstanceRole` and so on, and act as that role of the template.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use aws_config::SdkConfig;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_credential_types::Credentials;
use identity_emulator::PolicySet;

/// The template's function roles, as the renderer names them (their logical ids).
pub const INSTANCE_ROLE: &str = "IdentityCenterInstanceRole";
pub const APPROVAL_ROLE: &str = "ApprovalIdentitySourceRole";
pub const WEB_ROLE: &str = "WebIdentityProviderRole";
pub const RECONCILER_ROLE: &str = "ReconcilerRole";
/// The operator policies (`onboarding` CLI): read-only commands, and the ones that write.
pub const OPERATOR_READ: &str = "OperatorReadPolicy";
pub const OPERATOR: &str = "OperatorPolicy";

/// The account the local stacks deploy into (the emulator's management account).
pub const ACCOUNT: &str = "111111111111";

/// What a stack's names are, for the placeholders the rendered policies keep.
pub struct Names<'a> {
    pub region: &'a str,
    pub table: &'a str,
    pub bus: &'a str,
    /// The organization instance of IAM Identity Center (`OrganizationInstanceArn`).
    pub organization_instance_arn: &'a str,
    /// The queue each step function polls: `(logical id, ARN)`.
    pub queues: &'a [(&'a str, String)],
}

/// The shipped policies, rendered once per process (panics with the renderer's error: a
/// template the renderer cannot read fails every test, as it should).
pub fn shipped() -> &'static PolicySet {
    static SHIPPED: OnceLock<PolicySet> = OnceLock::new();
    SHIPPED.get_or_init(|| {
        let text = render().unwrap_or_else(|e| panic!("rendering the shipped policies: {e}"));
        PolicySet::from_json(&text).unwrap_or_else(|e| panic!("the rendered policies: {e}"))
    })
}

/// The shipped policies bound to one stack's names.
pub fn bound(policies: &PolicySet, names: &Names<'_>) -> PolicySet {
    let table_arn = format!(
        "arn:aws:dynamodb:{}:{ACCOUNT}:table/{}",
        names.region, names.table
    );
    let mut bindings = BTreeMap::from([
        ("LedgerTable".to_string(), names.table.to_string()),
        ("LedgerTable.Arn".to_string(), table_arn),
        ("EventBusName".to_string(), names.bus.to_string()),
        (
            "OrganizationInstanceArn".to_string(),
            names.organization_instance_arn.to_string(),
        ),
    ]);
    // Log groups are written by the Lambda service's log agent, never by these runs.
    for function in [
        "IdentityCenterInstance",
        "ApprovalIdentitySource",
        "WebIdentityProvider",
        "Reconciler",
    ] {
        bindings.insert(
            format!("{function}LogGroup.Arn"),
            format!(
                "arn:aws:logs:{}:{ACCOUNT}:log-group:/aws/lambda/{function}:*",
                names.region
            ),
        );
    }
    for (logical, arn) in names.queues {
        bindings.insert(format!("{logical}.Arn"), arn.clone());
    }
    policies
        .bind(&bindings)
        .unwrap_or_else(|e| panic!("binding the shipped policies to the stack: {e}"))
}

/// The credentials of `principal` (their access key names it to the emulator).
pub fn credentials(principal: &str) -> SharedCredentialsProvider {
    SharedCredentialsProvider::new(Credentials::new(
        principal,
        "local-secret",
        None,
        None,
        "local-role",
    ))
}

/// `base` acting as `principal`.
pub fn config_as(base: &SdkConfig, principal: &str) -> SdkConfig {
    base.to_builder()
        .credentials_provider(credentials(principal))
        .build()
}

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs the renderer with the project's venv Python (PyYAML comes with moto).
fn render() -> Result<String, String> {
    let root = workspace();
    let python = root.join(".venv/bin/python");
    let script = root.join("tests/tools/iam_policies.py");
    // The operator who runs `onboarding sweep` assumes the member role too: the local
    // organization trusts the operator policy's principal, as the README's deploy step says.
    let out = Command::new(&python)
        .arg(&script)
        .arg("--param")
        .arg(format!(
            "OperatorPrincipalArns=arn:aws:iam::{ACCOUNT}:role/{OPERATOR}"
        ))
        .current_dir(&root)
        .output()
        .map_err(|e| format!("{} {}: {e}", python.display(), script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    String::from_utf8(out.stdout).map_err(|e| e.to_string())
}
