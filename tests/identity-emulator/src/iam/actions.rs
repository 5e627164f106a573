//! What each emulated operation needs: its IAM action on the resource the Service
//! Authorization Reference names, then the reference's dependent actions.

use serde_json::Value;

use super::Check;
use crate::protocol::Service;

/// Resource ARNs of the emulator's resources are in the `aws` partition.
const PARTITION: &str = "aws";

/// A dependent action: also evaluated, on the caller's own policies, whenever `on` is.
/// Resource templates: `{p}` partition, `{account}` the caller's account, `{instance}` the
/// instance the call names, `{store}` that instance's identity store id.
struct Dependent {
    on: &'static str,
    action: &'static str,
    /// Each resource must be allowed.
    resources: &'static [&'static str],
    context: &'static [(&'static str, &'static str)],
}

const VIA_MPA: &[(&str, &str)] = &[
    ("aws:CalledViaLast", "mpa.amazonaws.com"),
    ("aws:CalledVia", "mpa.amazonaws.com"),
];

const DEPENDENT: &[Dependent] = &[
    // Service Authorization Reference, AWS IAM Identity Center actions table (CreateInstance)
    Dependent {
        on: "sso:CreateInstance",
        action: "iam:CreateServiceLinkedRole",
        resources: &[
            "arn:{p}:iam::{account}:role/aws-service-role/sso.amazonaws.com/AWSServiceRoleForSSO",
        ],
        context: &[("iam:AWSServiceName", "sso.amazonaws.com")],
    },
    // Service Authorization Reference, AWS IAM Identity Center actions table (CreateInstance)
    Dependent {
        on: "sso:CreateInstance",
        action: "identitystore:CreateIdentityStore",
        resources: &["*"],
        context: &[],
    },
    // Service Authorization Reference, AWS IAM Identity Center actions table (CreateInstance)
    Dependent {
        on: "sso:CreateInstance",
        action: "organizations:DescribeOrganization",
        resources: &["*"],
        context: &[],
    },
    // Service Authorization Reference, AWS IAM Identity Center actions table (UpdateInstance)
    Dependent {
        on: "sso:UpdateInstance",
        action: "identitystore:UpdateIdentityStore",
        resources: &["arn:{p}:identitystore::{account}:identitystore/{store}"],
        context: &[],
    },
    // Service Authorization Reference, AWS IAM Identity Center actions table (DeleteInstance)
    Dependent {
        on: "sso:DeleteInstance",
        action: "identitystore:DeleteIdentityStore",
        resources: &["arn:{p}:identitystore::{account}:identitystore/{store}"],
        context: &[],
    },
    // Service Authorization Reference, Multi-party approval actions table, and the MPA user
    // guide ("Set up Multi-party approval"): MPA registers itself as an application of the
    // organization instance with the caller's permissions.
    Dependent {
        on: "mpa:CreateIdentitySource",
        action: "sso:CreateApplication",
        resources: &["{instance}", "arn:{p}:sso::aws:applicationProvider/mpa"],
        context: VIA_MPA,
    },
    Dependent {
        on: "mpa:CreateIdentitySource",
        action: "sso:DescribeApplication",
        resources: &["{instance}", "arn:{p}:sso::{account}:application/*"],
        context: VIA_MPA,
    },
    Dependent {
        on: "mpa:CreateIdentitySource",
        action: "sso:PutApplicationAssignmentConfiguration",
        resources: &["{instance}", "arn:{p}:sso::{account}:application/*"],
        context: VIA_MPA,
    },
    Dependent {
        on: "mpa:CreateIdentitySource",
        action: "sso:PutApplicationGrant",
        resources: &["{instance}", "arn:{p}:sso::{account}:application/*"],
        context: VIA_MPA,
    },
    Dependent {
        on: "mpa:CreateIdentitySource",
        action: "sso:PutApplicationAuthenticationMethod",
        resources: &["{instance}", "arn:{p}:sso::{account}:application/*"],
        context: VIA_MPA,
    },
    Dependent {
        on: "mpa:CreateIdentitySource",
        action: "sso:PutApplicationAccessScope",
        resources: &["{instance}", "arn:{p}:sso::{account}:application/*"],
        context: VIA_MPA,
    },
    Dependent {
        on: "mpa:CreateIdentitySource",
        action: "sso:DescribeInstance",
        resources: &["{instance}"],
        context: VIA_MPA,
    },
    Dependent {
        on: "mpa:CreateIdentitySource",
        action: "sso:ListInstances",
        resources: &["*"],
        context: VIA_MPA,
    },
];

fn member<'a>(input: &'a Value, pointer: &str) -> Option<&'a str> {
    input.pointer(pointer).and_then(Value::as_str)
}

/// The IAM action and resource of an emulated operation (validated input).
fn primary(service: Service, operation: &str, input: &Value) -> Option<Check> {
    let named = |pointer: &str| member(input, pointer).unwrap_or("*").to_string();
    let (prefix, resource) = match service {
        Service::SsoAdmin => (
            "sso",
            match operation {
                "CreateInstance" | "ListInstances" => "*".to_string(),
                "TagResource" | "UntagResource" | "ListTagsForResource" => named("/ResourceArn"),
                _ => named("/InstanceArn"),
            },
        ),
        Service::Mpa => (
            "mpa",
            match operation {
                "CreateIdentitySource" | "ListIdentitySources" => "*".to_string(),
                _ => named("/IdentitySourceArn"),
            },
        ),
        Service::WorkspacesWeb => (
            "workspaces-web",
            match operation {
                "CreatePortal" => "*".to_string(),
                "GetPortal" | "CreateIdentityProvider" => named("/portalArn"),
                // the reference puts ListIdentityProviders on identityProvider, not portal
                "ListIdentityProviders" => {
                    let portal = named("/portalArn");
                    match crate::ids::parse_portal_arn(&portal) {
                        Some((region, account, id)) => format!(
                            "arn:{PARTITION}:workspaces-web:{region}:{account}:identityProvider/{id}/*"
                        ),
                        None => portal,
                    }
                }
                "TagResource" | "UntagResource" | "ListTagsForResource" => named("/resourceArn"),
                _ => named("/identityProviderArn"),
            },
        ),
        // AssumeRole is authorized in `trust`; GetCallerIdentity needs no permission
        Service::Sts => return None,
    };
    Some(Check::new(format!("{prefix}:{operation}"), resource))
}

/// Every check of an emulated call, the operation's own first. `account` is the caller's;
/// `store_of` finds the identity store id of an instance ARN.
pub(crate) fn operation_checks(
    service: Service,
    operation: &str,
    input: &Value,
    account: &str,
    store_of: impl Fn(&str) -> Option<String>,
) -> Vec<Check> {
    let Some(primary) = primary(service, operation, input) else {
        return Vec::new();
    };
    let instance = member(input, "/InstanceArn")
        .or_else(|| {
            member(
                input,
                "/IdentitySourceParameters/IamIdentityCenter/InstanceArn",
            )
        })
        .unwrap_or("*")
        .to_string();
    let store = store_of(&instance);
    let mut checks = Vec::new();
    for row in DEPENDENT.iter().filter(|d| d.on == primary.action) {
        for template in row.resources {
            let resource = match (&store, template.contains("{store}")) {
                (None, true) => "*".to_string(),
                _ => template
                    .replace("{p}", PARTITION)
                    .replace("{account}", account)
                    .replace("{instance}", &instance)
                    .replace("{store}", store.as_deref().unwrap_or("")),
            };
            let mut check = Check::new(row.action, resource);
            check.context = row
                .context
                .iter()
                .map(|(k, v)| (*k, (*v).to_string()))
                .collect();
            checks.push(check);
        }
    }
    checks.insert(0, primary);
    checks
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn actions(checks: &[Check]) -> Vec<(&str, &str)> {
        checks
            .iter()
            .map(|c| (c.action.as_str(), c.resource.as_str()))
            .collect()
    }

    #[test]
    fn create_instance_needs_its_dependent_actions() {
        let checks = operation_checks(
            Service::SsoAdmin,
            "CreateInstance",
            &json!({}),
            "222222222222",
            |_| None,
        );
        assert_eq!(
            actions(&checks),
            vec![
                ("sso:CreateInstance", "*"),
                (
                    "iam:CreateServiceLinkedRole",
                    "arn:aws:iam::222222222222:role/aws-service-role/sso.amazonaws.com/AWSServiceRoleForSSO"
                ),
                ("identitystore:CreateIdentityStore", "*"),
                ("organizations:DescribeOrganization", "*"),
            ]
        );
        assert_eq!(
            checks[1].context,
            vec![("iam:AWSServiceName", "sso.amazonaws.com".to_string())]
        );
    }

    #[test]
    fn instance_operations_are_on_the_instance() {
        let arn = "arn:aws:sso:::instance/ssoins-1111222233334444";
        let input = json!({"InstanceArn": arn});
        let store = |a: &str| (a == arn).then(|| "d-1".to_string());
        let checks = operation_checks(Service::SsoAdmin, "DeleteInstance", &input, "2", store);
        assert_eq!(
            actions(&checks),
            vec![
                ("sso:DeleteInstance", arn),
                (
                    "identitystore:DeleteIdentityStore",
                    "arn:aws:identitystore::2:identitystore/d-1"
                )
            ]
        );
        let tags = json!({"ResourceArn": arn});
        let checks = operation_checks(Service::SsoAdmin, "TagResource", &tags, "2", |_| None);
        assert_eq!(actions(&checks), vec![("sso:TagResource", arn)]);
    }

    #[test]
    fn workspaces_web_resources() {
        let portal =
            "arn:aws:workspaces-web:us-east-1:222222222222:portal/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b";
        let input = json!({"portalArn": portal});
        let list = operation_checks(
            Service::WorkspacesWeb,
            "ListIdentityProviders",
            &input,
            "2",
            |_| None,
        );
        assert_eq!(
            actions(&list),
            vec![(
                "workspaces-web:ListIdentityProviders",
                "arn:aws:workspaces-web:us-east-1:222222222222:identityProvider/2f1c7d5e-6a0b-4f3e-9b1d-0c8a7e5f4d3b/*"
            )]
        );
        let create = operation_checks(
            Service::WorkspacesWeb,
            "CreateIdentityProvider",
            &input,
            "2",
            |_| None,
        );
        assert_eq!(
            actions(&create),
            vec![("workspaces-web:CreateIdentityProvider", portal)]
        );
    }

    #[test]
    fn create_identity_source_needs_the_application_set() {
        let org = "arn:aws:sso:::instance/ssoins-72230000a1b2c3d4";
        let input = json!({"IdentitySourceParameters": {"IamIdentityCenter": {"InstanceArn": org, "Region": "us-east-1"}}});
        let checks = operation_checks(Service::Mpa, "CreateIdentitySource", &input, "111", |_| {
            None
        });
        let got = actions(&checks);
        assert_eq!(got[0], ("mpa:CreateIdentitySource", "*"));
        assert!(got.contains(&("sso:CreateApplication", org)));
        assert!(got.contains(&(
            "sso:CreateApplication",
            "arn:aws:sso::aws:applicationProvider/mpa"
        )));
        assert!(got.contains(&("sso:PutApplicationGrant", "arn:aws:sso::111:application/*")));
        assert!(got.contains(&("sso:DescribeInstance", org)));
        assert!(got.contains(&("sso:ListInstances", "*")));
        assert!(checks[1..].iter().all(|c| c
            .context
            .contains(&("aws:CalledViaLast", "mpa.amazonaws.com".to_string()))));
        let get = operation_checks(
            Service::Mpa,
            "GetIdentitySource",
            &json!({"IdentitySourceArn": "arn:x"}),
            "1",
            |_| None,
        );
        assert_eq!(actions(&get), vec![("mpa:GetIdentitySource", "arn:x")]);
    }
}
