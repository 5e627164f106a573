//! Property tests: whatever arrives, decoding never panics and always answers either a
//! decoded event or an error with a reason; valid events round-trip.

use std::collections::BTreeMap;

use proptest::prelude::*;
use proptest::sample::Index;
use serde_json::{json, Map, Value};

use super::*;

const FIXTURES: [&str; 9] = [
    include_str!("fixtures/own_minimal.json"),
    include_str!("fixtures/own_oidc_full.json"),
    include_str!("fixtures/own_saml.json"),
    include_str!("fixtures/own_apple.json"),
    include_str!("fixtures/own_replay.json"),
    include_str!("fixtures/ct_create_succeeded.json"),
    include_str!("fixtures/ct_update_in_progress.json"),
    include_str!("fixtures/org_create_succeeded.json"),
    include_str!("fixtures/org_create_failed.json"),
];

/// Field names and values the decoders look at, so random values reach deep code paths.
const KEYS: &[&str] = &[
    "id",
    "source",
    "detail-type",
    "detail",
    "replay-name",
    "Records",
    "messageId",
    "body",
    "eventSource",
    "eventSourceARN",
    "attributes",
    "schemaVersion",
    "accountId",
    "accountName",
    "identityCenterInstance",
    "webIdentityProvider",
    "name",
    "tags",
    "portalArn",
    "providerName",
    "providerType",
    "details",
    "secretId",
    "client_secret",
    "eventName",
    "serviceEventDetails",
    "createManagedAccountStatus",
    "createAccountStatus",
    "account",
    "state",
];
const STRINGS: &[&str] = &[
    "identity-onboarding",
    "Account Onboarding Requested",
    "aws.controltower",
    "aws.organizations",
    "AWS Service Event via CloudTrail",
    "CreateManagedAccount",
    "CreateAccountResult",
    "SUCCEEDED",
    "FAILED",
    "1",
    "2",
    "123456789012",
    "OIDC",
    "SAML",
    "aws:sqs",
    "",
];

fn arb_string() -> impl Strategy<Value = String> {
    prop_oneof![
        proptest::sample::select(STRINGS).prop_map(str::to_owned),
        "\\PC{0,24}",
        any::<String>(),
    ]
}

fn arb_key() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(KEYS).prop_map(str::to_owned),
        1 => "\\PC{0,12}",
    ]
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        arb_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 96, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::btree_map(arb_key(), inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect::<Map<String, Value>>())),
        ]
    })
}

/// Never panics; an error always has a reason.
fn check(result: Result<Decoded, DecodeError>) -> Result<(), TestCaseError> {
    match result {
        Ok(Decoded::Ignored { reason }) => prop_assert!(!reason.is_empty()),
        Ok(Decoded::Request(r)) => prop_assert!(r.account_id.len() == 12),
        Ok(Decoded::Offboard(r)) => prop_assert!(r.account_id.len() == 12),
        Err(e) => prop_assert!(!e.reason.is_empty()),
    }
    Ok(())
}

fn check_invocation(result: Result<Invocation, DecodeError>) -> Result<(), TestCaseError> {
    match result {
        Ok(Invocation::Sqs(records)) => {
            for r in records {
                prop_assert!(!r.message_id.is_empty());
                check(decode_body(&r.body, &Accept::default()))?;
            }
        }
        Ok(Invocation::EventBridge(e)) => check(decode(&e, &Accept::default()))?,
        Err(e) => prop_assert!(!e.reason.is_empty()),
    }
    Ok(())
}

/// Paths to every value inside `v` (object keys and array indices).
#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    At(usize),
}

fn paths(v: &Value, prefix: &mut Vec<Seg>, out: &mut Vec<Vec<Seg>>) {
    out.push(prefix.clone());
    match v {
        Value::Object(m) => {
            for (k, child) in m {
                prefix.push(Seg::Key(k.clone()));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(a) => {
            for (i, child) in a.iter().enumerate() {
                prefix.push(Seg::At(i));
                paths(child, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

fn at_mut<'v>(v: &'v mut Value, path: &[Seg]) -> Option<&'v mut Value> {
    let mut cur = v;
    for seg in path {
        cur = match seg {
            Seg::Key(k) => cur.get_mut(k.as_str())?,
            Seg::At(i) => cur.get_mut(*i)?,
        };
    }
    Some(cur)
}

#[derive(Clone, Debug)]
enum Mutation {
    Remove,
    Replace(Value),
    AddField(String, Value),
    Huge(usize),
}

fn arb_mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        Just(Mutation::Remove),
        arb_json().prop_map(Mutation::Replace),
        (arb_key(), arb_json()).prop_map(|(k, v)| Mutation::AddField(k, v)),
        prop_oneof![Just(51usize), Just(257), Just(70_000), Just(300_000)].prop_map(Mutation::Huge),
    ]
}

fn mutate(event: &mut Value, path: &[Seg], m: Mutation) {
    match m {
        Mutation::Remove => {
            if let Some((last, parent)) = path.split_last() {
                match (at_mut(event, parent), last) {
                    (Some(Value::Object(o)), Seg::Key(k)) => {
                        o.remove(k);
                    }
                    (Some(Value::Array(a)), Seg::At(i)) if *i < a.len() => {
                        a.remove(*i);
                    }
                    _ => {}
                }
            }
        }
        Mutation::Replace(v) => {
            if let Some(slot) = at_mut(event, path) {
                *slot = v;
            }
        }
        Mutation::AddField(k, v) => {
            if let Some(Value::Object(o)) = at_mut(event, path) {
                o.insert(k, v);
            }
        }
        Mutation::Huge(n) => {
            if let Some(slot) = at_mut(event, path) {
                *slot = Value::String("9".repeat(n));
            }
        }
    }
}

// ------------------------------------------------------------------ valid requests

fn arb_tags(max: usize) -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        "t[A-Za-z0-9 _.:/=+@-]{0,20}",
        "[A-Za-z0-9 _.:/=+@-]{0,30}",
        0..max,
    )
}

fn arb_value() -> impl Strategy<Value = String> {
    "[A-Za-z0-9][A-Za-z0-9:/._ -]{0,30}"
}

fn arb_details(t: ProviderType) -> BoxedStrategy<BTreeMap<String, String>> {
    let required: Vec<&'static str> = t.required_details().to_vec();
    let optional: Vec<&'static str> = t
        .allowed_details()
        .iter()
        .copied()
        .filter(|k| !required.contains(k) && !matches!(*k, "MetadataFile" | "MetadataURL"))
        .collect();
    let n_req = required.len();
    let n_opt = optional.len();
    (
        prop::collection::vec(arb_value(), n_req),
        prop::collection::vec(proptest::option::of(arb_value()), n_opt),
        any::<bool>(),
        prop::collection::vec(any::<bool>(), n_opt),
    )
        .prop_map(move |(req, opt, metadata_file, flags)| {
            let mut d = BTreeMap::new();
            let present = required
                .iter()
                .zip(req.into_iter().map(Some))
                .chain(optional.iter().zip(opt));
            for ((k, v), flag) in present.zip(flags.into_iter().chain(std::iter::repeat(true))) {
                let Some(v) = v else { continue };
                let v = match *k {
                    "IDPSignout" | "IDPInit" | "EncryptedResponses" => flag.to_string(),
                    "RequestSigningAlgorithm" => "rsa-sha256".to_owned(),
                    "attributes_request_method" => if flag { "GET" } else { "POST" }.to_owned(),
                    _ => v,
                };
                d.insert((*k).to_owned(), v);
            }
            if t == ProviderType::Saml {
                let k = if metadata_file {
                    "MetadataFile"
                } else {
                    "MetadataURL"
                };
                d.insert(k.to_owned(), "https://idp.example.com/metadata".to_owned());
            }
            d
        })
        .boxed()
}

fn arb_provider() -> impl Strategy<Value = WebIdentityProviderSpec> {
    proptest::sample::select(ProviderType::ALL.to_vec()).prop_flat_map(|t| {
        (
            "[a-z]{2}-[a-z]{4,9}-[1-9]",
            "[0-9]{12}",
            "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
            "[A-Za-z0-9][A-Za-z0-9.-]{2,31}",
            arb_details(t),
            "[A-Za-z0-9/_+=.@-]{1,40}",
            arb_tags(6),
        )
            .prop_map(move |(region, account, id, name, details, secret, tags)| {
                WebIdentityProviderSpec {
                    portal_arn: format!("arn:aws:workspaces-web:{region}:{account}:portal/{id}"),
                    portal_account_id: account,
                    provider_name: name,
                    provider_type: t,
                    details,
                    secret_id: (!t.secret_keys().is_empty()).then_some(secret),
                    tags,
                    removed_tags: Default::default(),
                }
            })
    })
}

fn arb_request() -> impl Strategy<Value = OnboardingRequest> {
    (
        "[0-9a-f-]{1,40}",
        proptest::option::of("[A-Za-z0-9._-]{1,64}"),
        "[0-9]{12}",
        proptest::option::of("[A-Za-z0-9 ._-]{1,50}"),
        proptest::option::of("[A-Za-z0-9_+=,.@-]{1,64}"),
        arb_tags(6),
        proptest::option::of(arb_provider()),
    )
        .prop_map(
            |(event_id, replay_name, account_id, account_name, name, tags, provider)| {
                OnboardingRequest {
                    event_id,
                    origin: Origin::OnboardingRequested,
                    replay_name,
                    time: Some("2026-11-20T10:15:30Z".into()),
                    account_id,
                    account_name,
                    instance: InstanceSpec {
                        name,
                        tags,
                        removed_tags: Default::default(),
                    },
                    web_identity_provider: provider,
                }
            },
        )
}

/// The event an onboarding request is decoded from.
fn encode(r: &OnboardingRequest) -> Value {
    let mut detail = json!({"schemaVersion": "1", "accountId": r.account_id});
    if let Some(n) = &r.account_name {
        detail["accountName"] = json!(n);
    }
    if r.instance != InstanceSpec::default() {
        let mut i = json!({"tags": r.instance.tags});
        if let Some(n) = &r.instance.name {
            i["name"] = json!(n);
        }
        detail["identityCenterInstance"] = i;
    }
    if let Some(p) = &r.web_identity_provider {
        let mut w = json!({
            "portalArn": p.portal_arn,
            "providerName": p.provider_name,
            "providerType": p.provider_type.as_str(),
            "details": p.details,
            "tags": p.tags,
        });
        if let Some(s) = &p.secret_id {
            w["secretId"] = json!(s);
        }
        detail["webIdentityProvider"] = w;
    }
    let mut event = json!({
        "version": "0",
        "id": r.event_id,
        "detail-type": DEFAULT_REQUEST_DETAIL_TYPE,
        "source": DEFAULT_EVENT_SOURCE,
        "account": "111111111111",
        "time": "2026-11-20T10:15:30Z",
        "region": "us-east-1",
        "resources": [],
        "detail": detail,
    });
    if let Some(n) = &r.replay_name {
        event["replay-name"] = json!(n);
    }
    event
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_json_as_event_never_panics(v in arb_json()) {
        check(decode(&v, &Accept::default()))?;
        check(decode_body(&v.to_string(), &Accept::default()))?;
    }

    #[test]
    fn arbitrary_json_as_payload_never_panics(v in arb_json()) {
        check_invocation(invocation_from_slice(v.to_string().as_bytes()))?;
        check_invocation(invocation(v))?;
    }

    #[test]
    fn arbitrary_json_inside_envelopes_never_panics(detail in arb_json(), which in 0usize..3, id in arb_string()) {
        let (source, detail_type) = [
            (DEFAULT_EVENT_SOURCE, DEFAULT_REQUEST_DETAIL_TYPE),
            (CONTROL_TOWER_SOURCE, CLOUDTRAIL_SERVICE_EVENT),
            (ORGANIZATIONS_SOURCE, CLOUDTRAIL_SERVICE_EVENT),
        ][which];
        let event = json!({"id": id, "source": source, "detail-type": detail_type, "detail": detail});
        check(decode(&event, &Accept::default()))?;
        let batch = json!({"Records": [{"messageId": "m", "eventSource": "aws:sqs", "body": event.to_string()}]});
        check_invocation(invocation(batch))?;
    }

    #[test]
    fn arbitrary_bytes_and_text_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512), text in any::<String>()) {
        check_invocation(invocation_from_slice(&bytes))?;
        check(decode_body(&text, &Accept::default()))?;
        check_invocation(invocation_from_slice(text.as_bytes()))?;
    }

    #[test]
    fn mutated_valid_events_never_panic(
        which in 0..FIXTURES.len(),
        mutations in prop::collection::vec((any::<Index>(), arb_mutation()), 1..4),
    ) {
        let mut event: Value = serde_json::from_str(FIXTURES[which]).expect("fixture");
        for (index, m) in mutations {
            let mut all = Vec::new();
            paths(&event, &mut Vec::new(), &mut all);
            let path = index.get(&all).clone();
            mutate(&mut event, &path, m);
        }
        check(decode(&event, &Accept::default()))?;
        let body = event.to_string();
        check(decode_body(&body, &Accept::default()))?;
        let batch = json!({"Records": [{"messageId": "m", "eventSource": "aws:sqs", "body": body}]});
        check_invocation(invocation(batch))?;
    }

    #[test]
    fn valid_requests_round_trip(r in arb_request()) {
        let event = encode(&r);
        prop_assert_eq!(decode(&event, &Accept::default()), Ok(Decoded::Request(r.clone())));
        let body = event.to_string();
        prop_assert_eq!(decode_body(&body, &Accept::default()), Ok(Decoded::Request(r.clone())));
        let batch = json!({"Records": [{"messageId": "m", "eventSource": "aws:sqs", "body": body}]});
        let Ok(Invocation::Sqs(records)) = invocation_from_slice(batch.to_string().as_bytes()) else {
            return Err(TestCaseError::fail("not an SQS batch"));
        };
        prop_assert_eq!(records.len(), 1);
        prop_assert_eq!(decode_body(&records[0].body, &Accept::default()), Ok(Decoded::Request(r)));
    }

    #[test]
    fn fixtures_survive_extra_envelope_fields(which in 0..FIXTURES.len(), key in "[a-z-]{1,12}", v in arb_json()) {
        let mut event: Value = serde_json::from_str(FIXTURES[which]).expect("fixture");
        let before = decode(&event, &Accept::default());
        prop_assume!(!["id", "source", "detail-type", "detail", "replay-name"].contains(&key.as_str()));
        event[key.as_str()] = v;
        prop_assert_eq!(decode(&event, &Accept::default()), before);
    }
}
