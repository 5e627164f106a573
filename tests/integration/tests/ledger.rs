//! The idempotency ledger against a real DynamoDB API (moto over HTTP, the real
//! aws-sdk-dynamodb client), with the DynamoDB requests counted where a bar is stated in them.

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_dynamodb::types::AttributeValue;
use integration_tests::moto::{dynamodb, ledger_table, moto};
use onboarding::ledger::{
    client_token, request_hash, schema, Applied, Claim, ClaimRequest, ErrorReason, Failure, Fields,
    Lease, Ledger, LedgerError, Origin, Record, Release, Status, StepKey,
};
use onboarding::revision::Revision;
use serde_json::json;

type Item = HashMap<String, AttributeValue>;

const LONG: Duration = Duration::from_secs(120);

static STATE: std::sync::LazyLock<Fields> = std::sync::LazyLock::new(Fields::new);
static REVISION: std::sync::LazyLock<Revision> =
    std::sync::LazyLock::new(|| Revision::parse("2026-11-30T00:00:00.000Z#event-1"));

/// What a completion records (the fields a request specified and its revision).
fn applied() -> Applied<'static> {
    Applied {
        state: &STATE,
        revision: &REVISION,
    }
}

fn request(hash: &str) -> ClaimRequest<'_> {
    ClaimRequest {
        request_hash: hash,
        event_id: "event-1",
        lease: LONG,
        deadline: None,
    }
}

fn key(account: &str) -> StepKey {
    StepKey::account(account, "identity-center-instance")
}

fn hash_of(name: &str) -> String {
    request_hash(&json!({ "name": name, "tags": { "CostCenter": "1234" } }))
}

/// The stored item, read with a separate, uncounted client.
async fn raw(table: &str, key: &StepKey) -> Option<Item> {
    let client = dynamodb(&moto().await.url, None);
    client
        .get_item()
        .table_name(table)
        .consistent_read(true)
        .key(schema::PK, AttributeValue::S(key.scope.clone()))
        .key(schema::SK, AttributeValue::S(key.step.clone()))
        .send()
        .await
        .expect("GetItem")
        .item
}

async fn acquire(ledger: &Ledger, key: &StepKey, req: &ClaimRequest<'_>) -> Lease {
    match ledger.claim(key, req).await.expect("claim") {
        Claim::Acquired(lease) => lease,
        other => panic!("expected Acquired, got {other:?}"),
    }
}

fn reason(code: &str, retryable: bool) -> ErrorReason {
    ErrorReason {
        retryable,
        code: code.to_owned(),
        message: format!("{code} from the service"),
    }
}

const ARN: &str = "arn:aws:sso:::instance/ssoins-1234567890abcdef";

#[tokio::test]
async fn first_claim_acquires_and_a_live_duplicate_is_in_progress_in_one_request() {
    let (ledger, requests, table) = ledger_table("ledger-first").await;
    let key = key("100000000001");
    let hash = hash_of("payments");

    let lease = acquire(&ledger, &key, &request(&hash)).await;
    let claim_new = requests.take();
    eprintln!("requests: claim new = {claim_new}");
    assert_eq!(claim_new, 1);
    assert_eq!(lease.attempt, 1);
    assert_eq!(lease.generation, 0);
    let salt = lease.salt.clone().expect("a new item has a salt");
    assert_eq!(lease.token, client_token(&key, 0, Some(&salt)));
    assert_eq!(lease.key, key);

    let record = ledger.get_step(&key).await.expect("get").expect("stored");
    assert_eq!(record.status, Status::InProgress);
    assert_eq!(record.request_hash.as_deref(), Some(hash.as_str()));
    assert_eq!(record.lease_owner.as_deref(), Some(lease.owner.as_str()));
    assert_eq!(record.recent_events, vec!["event-1"]);
    assert_eq!(record.account_id.as_deref(), Some("100000000001"));
    requests.reset();

    let before = raw(&table, &key).await;
    match ledger.claim(&key, &request(&hash)).await.expect("claim") {
        Claim::InProgress {
            lease_expires_at, ..
        } => {
            let diff = lease_expires_at
                .duration_since(lease.expires_at)
                .unwrap_or_else(|e| e.duration());
            assert!(diff < Duration::from_millis(2), "{diff:?}");
        }
        other => panic!("expected InProgress, got {other:?}"),
    }
    let claim_busy = requests.take();
    eprintln!("requests: claim while another holds the lease = {claim_busy}");
    assert_eq!(claim_busy, 1);
    assert_eq!(
        raw(&table, &key).await,
        before,
        "a refused claim changes nothing"
    );
}

#[tokio::test]
async fn duplicate_of_a_finished_step_is_ready_in_one_request_and_changes_nothing() {
    let (ledger, requests, table) = ledger_table("ledger-dup").await;
    let key = key("100000000002");
    let hash = hash_of("payments");

    let lease = acquire(&ledger, &key, &request(&hash)).await;
    requests.reset();
    ledger
        .mark_ready(&lease, ARN, Origin::Created, &applied())
        .await
        .expect("mark_ready");
    let complete = requests.take();
    eprintln!("requests: mark_ready = {complete}");
    assert_eq!(complete, 1);
    // Recorded, then announced, then marked: one write that also leaves the attention index.
    let ready = ledger.get_step(&key).await.expect("get").expect("stored");
    assert!(!ready.announced && ready.attention.as_deref() == Some("UPDATING"));
    requests.reset();
    ledger.mark_ready_announced(&ready).await.expect("marked");
    assert_eq!(requests.take(), 1);

    let before = raw(&table, &key).await.expect("stored");
    let replay = ClaimRequest {
        event_id: "event-replayed-next-month",
        ..request(&hash)
    };
    match ledger.claim(&key, &replay).await.expect("claim") {
        Claim::Ready(record) => {
            assert_eq!(record.resource_arn.as_deref(), Some(ARN));
            assert_eq!(record.status, Status::Ready);
            assert_eq!(record.token, lease.token);
        }
        other => panic!("expected Ready, got {other:?}"),
    }
    let duplicate = requests.take();
    eprintln!("requests: claim duplicate of a finished step = {duplicate}");
    assert_eq!(duplicate, 1);
    let after = raw(&table, &key).await.expect("stored");
    assert_eq!(after, before, "a duplicate changes nothing");
    assert!(
        !after.contains_key(schema::EXPIRES_AT),
        "READY never expires"
    );
    assert!(
        !after.contains_key(schema::ATTENTION),
        "READY and announced, it leaves the attention index"
    );
}

#[tokio::test]
async fn a_different_request_waits_for_a_live_lease_and_takes_over_an_expired_one() {
    let (ledger, requests, table) = ledger_table("ledger-mismatch").await;
    let key = key("100000000003");
    let first = hash_of("payments");
    let other = hash_of("payments-renamed");

    acquire(&ledger, &key, &request(&first)).await;
    let before = raw(&table, &key).await;
    requests.reset();
    // A different request meets the live lease: it comes back later, it is never refused.
    match ledger.claim(&key, &request(&other)).await.expect("claim") {
        Claim::InProgress { .. } => {}
        other => panic!("expected InProgress, got {other:?}"),
    }
    assert_eq!(requests.take(), 1);
    assert_eq!(raw(&table, &key).await, before);

    // Once the lease has expired, any request takes the step over (same token: what it
    // asks beyond the first request's fields is applied as an update once the step is READY).
    let short_key = StepKey::account("100000000003", "approval-identity-source");
    let short = ClaimRequest {
        lease: Duration::from_millis(200),
        ..request(&first)
    };
    acquire(&ledger, &short_key, &short).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    match ledger.claim(&short_key, &request(&other)).await {
        Ok(Claim::Acquired(lease)) => {
            assert_eq!(lease.attempt, 2);
            assert_eq!(
                lease.token,
                client_token(&short_key, 0, lease.salt.as_deref())
            );
        }
        other => panic!("expected Acquired, got {other:?}"),
    }
}

#[tokio::test]
async fn expired_lease_is_taken_over_and_the_stale_holder_is_fenced_out() {
    let (ledger, requests, table) = ledger_table("ledger-takeover").await;
    let key = key("100000000004");
    let hash = hash_of("payments");
    let short = ClaimRequest {
        lease: Duration::from_millis(300),
        ..request(&hash)
    };

    let stale = acquire(&ledger, &key, &short).await;
    tokio::time::sleep(Duration::from_millis(400)).await;
    let second = ClaimRequest {
        event_id: "event-2",
        ..request(&hash)
    };
    let fresh = acquire(&ledger, &key, &second).await;
    assert_eq!(fresh.attempt, 2);
    assert_eq!(fresh.token, stale.token, "a takeover reuses the token");
    assert_ne!(fresh.owner, stale.owner);

    let before = raw(&table, &key).await;
    match ledger
        .mark_created(&stale, "arn:stale", Origin::Created, &applied())
        .await
    {
        Err(LedgerError::LostLease { key: lost }) => assert_eq!(lost, key.to_string()),
        other => panic!("expected LostLease, got {other:?}"),
    }
    assert!(matches!(
        ledger
            .mark_ready(&stale, "arn:stale", Origin::Created, &applied())
            .await,
        Err(LedgerError::LostLease { .. })
    ));
    assert!(matches!(
        ledger
            .fail(&stale, Failure::Permanent, &reason("Boom", false))
            .await,
        Err(LedgerError::LostLease { .. })
    ));
    assert_eq!(
        raw(&table, &key).await,
        before,
        "the stale holder changed nothing"
    );

    requests.reset();
    ledger
        .mark_created(&fresh, ARN, Origin::Created, &applied())
        .await
        .expect("mark_created");
    let complete = requests.take();
    eprintln!("requests: mark_created = {complete}");
    assert_eq!(complete, 1);
    // The same write again (an SDK retry after a lost response) is not an error.
    ledger
        .mark_created(&fresh, ARN, Origin::Created, &applied())
        .await
        .expect("repeat");

    let record = ledger.get_step(&key).await.expect("get").expect("stored");
    assert_eq!(record.status, Status::Created);
    assert_eq!(record.recent_events, vec!["event-1", "event-2"]);
    assert!(record.expires_at.is_none(), "CREATED never expires");
    match ledger.claim(&key, &request(&hash)).await.expect("claim") {
        Claim::Created(r) => assert_eq!(r.resource_arn.as_deref(), Some(ARN)),
        other => panic!("expected Created, got {other:?}"),
    }
    // Promoted once: only the promoter announces Ready.
    assert!(ledger.promote_ready(&key, 0, ARN).await.expect("promote"));
    assert!(!ledger
        .promote_ready(&key, 0, ARN)
        .await
        .expect("promote again"));
    assert!(matches!(
        ledger.promote_ready(&key, 0, "arn:other").await,
        Err(LedgerError::LostLease { .. })
    ));
    let item = raw(&table, &key).await.expect("stored");
    assert_eq!(
        item.get(schema::STATUS),
        Some(&AttributeValue::S("READY".into()))
    );
    // Recorded, not yet announced: it stays where the reconciler looks until it is.
    assert_eq!(
        item.get(schema::ATTENTION),
        Some(&AttributeValue::S("UPDATING".into()))
    );
    assert_eq!(
        item.get(schema::ANNOUNCED),
        Some(&AttributeValue::Bool(false))
    );
    assert!(!item.contains_key(schema::EXPIRES_AT));
    let ready = ledger.get_step(&key).await.expect("get").expect("stored");
    assert!(ledger.settle(&ready, true).await.expect("settle"));
    let item = raw(&table, &key).await.expect("stored");
    assert!(!item.contains_key(schema::ATTENTION));
    assert_eq!(
        item.get(schema::ANNOUNCED),
        Some(&AttributeValue::Bool(true))
    );
}

#[tokio::test]
async fn failures_release_or_end_the_step() {
    let (ledger, _requests, table) = ledger_table("ledger-fail").await;
    let key = key("100000000005");
    let hash = hash_of("payments");

    // Retryable: the lease is released, the next delivery takes over at once.
    let first = acquire(&ledger, &key, &request(&hash)).await;
    let throttled = reason("ThrottlingException", true);
    ledger
        .fail(&first, Failure::Retryable, &throttled)
        .await
        .expect("fail retryable");
    let started = Instant::now();
    let second = acquire(&ledger, &key, &request(&hash)).await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(second.attempt, 2);
    assert_eq!(second.token, first.token);
    let record = ledger.get_step(&key).await.expect("get").expect("stored");
    assert_eq!(record.status, Status::InProgress);
    assert_eq!(record.last_error.as_ref(), Some(&throttled));

    // Permanent: FAILED with the reason and a TTL; later claims report it.
    let denied = reason("AccessDeniedException", false);
    ledger
        .fail(&second, Failure::Permanent, &denied)
        .await
        .expect("fail permanent");
    ledger
        .fail(&second, Failure::Permanent, &denied)
        .await
        .expect("repeat of the same failure");
    match ledger.claim(&key, &request(&hash)).await.expect("claim") {
        Claim::Failed(record) => {
            assert_eq!(record.status, Status::Failed);
            assert_eq!(record.last_error.as_ref(), Some(&denied));
        }
        other => panic!("expected Failed, got {other:?}"),
    }
    let item = raw(&table, &key).await.expect("stored");
    let now_secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let ttl = match item.get(schema::EXPIRES_AT) {
        Some(AttributeValue::N(n)) => n.parse::<u64>().expect("number"),
        other => panic!("FAILED needs a TTL, got {other:?}"),
    };
    assert!(ttl > now_secs + 29 * 24 * 3600 && ttl <= now_secs + 31 * 24 * 3600);
    assert_eq!(
        item.get(schema::ATTENTION),
        Some(&AttributeValue::S("FAILED".into()))
    );

    // Readiness reporting a terminal failure of a created resource.
    let created_key = StepKey::account("100000000005", "approval-identity-source");
    let lease = acquire(&ledger, &created_key, &request(&hash)).await;
    ledger
        .mark_created(&lease, ARN, Origin::Created, &applied())
        .await
        .expect("created");
    let broken = reason("CREATE_FAILED", false);
    ledger
        .fail_created(&created_key, 0, ARN, &broken)
        .await
        .expect("fail_created");
    assert!(
        !ledger
            .fail_created(&created_key, 0, ARN, &broken)
            .await
            .expect("again"),
        "a second delivery finds it failed already and does not announce it again"
    );
    let record = ledger
        .get_step(&created_key)
        .await
        .expect("get")
        .expect("stored");
    assert_eq!(record.status, Status::Failed);
    assert_eq!(record.last_error.as_ref(), Some(&broken));
    assert!(record.expires_at.is_some());

    // Announcing is for finished steps only.
    assert!(
        !ledger
            .get_step(&created_key)
            .await
            .expect("get")
            .expect("stored")
            .announced,
        "a failure is recorded before it is announced"
    );
    assert!(matches!(
        ledger.mark_announced(&created_key, 1, Status::Failed).await,
        Err(LedgerError::NotAllowed(_))
    ));
    ledger
        .mark_announced(&created_key, 0, Status::Failed)
        .await
        .expect("announce");
    assert!(
        ledger
            .get_step(&created_key)
            .await
            .expect("get")
            .expect("stored")
            .announced
    );
    let busy = StepKey::account("100000000005", "busy");
    acquire(&ledger, &busy, &request(&hash)).await;
    assert!(matches!(
        ledger.mark_announced(&busy, 0, Status::Failed).await,
        Err(LedgerError::NotAllowed(_))
    ));
    assert!(matches!(
        ledger
            .mark_announced(
                &StepKey::account("100000000005", "absent"),
                0,
                Status::Failed
            )
            .await,
        Err(LedgerError::NotAllowed(_))
    ));
    assert!(raw(&table, &StepKey::account("100000000005", "absent"))
        .await
        .is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn fifty_concurrent_claims_of_one_key_acquire_exactly_once() {
    let (ledger, requests, _table) = ledger_table("ledger-race").await;
    let key = key("100000000006");
    let hash = hash_of("payments");

    let started = Instant::now();
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let (ledger, key, hash) = (ledger.clone(), key.clone(), hash.clone());
            tokio::spawn(async move {
                let event = format!("event-{i}");
                let req = ClaimRequest {
                    request_hash: &hash,
                    event_id: &event,
                    lease: LONG,
                    deadline: None,
                };
                ledger.claim(&key, &req).await
            })
        })
        .collect();
    let (mut acquired, mut in_progress) = (0, 0);
    for task in tasks {
        match task.await.expect("task").expect("claim") {
            Claim::Acquired(lease) => {
                acquired += 1;
                assert_eq!(lease.attempt, 1);
            }
            Claim::InProgress { .. } => in_progress += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    eprintln!("50 concurrent claims answered in {:?}", started.elapsed());
    assert_eq!((acquired, in_progress), (1, 49));
    // One request per claim and no reads (an SDK retry after a timeout under load would add
    // one, so this is reported rather than asserted; the sequential tests assert exact counts).
    eprintln!("requests: 50 concurrent claims = {}", requests.get());
    let record = ledger.get_step(&key).await.expect("get").expect("stored");
    assert_eq!(record.attempt, 1);
    assert_eq!(record.recent_events.len(), 1);
}

#[tokio::test]
async fn operator_retry_starts_a_new_generation_of_a_failed_step_only() {
    let (ledger, _requests, table) = ledger_table("ledger-retry").await;
    let key = key("100000000007");
    let hash = hash_of("payments");

    let lease = acquire(&ledger, &key, &request(&hash)).await;
    assert!(matches!(
        ledger.retry(&key).await,
        Err(LedgerError::NotAllowed(_))
    ));
    ledger
        .fail(
            &lease,
            Failure::Permanent,
            &reason("ValidationException", false),
        )
        .await
        .expect("fail");

    let retried = ledger.retry(&key).await.expect("retry");
    assert_eq!(retried.status, Status::InProgress);
    assert_eq!(retried.generation, 1);
    assert_eq!(retried.attempt, 0);
    assert_eq!(retried.token_salt, lease.salt, "the salt never changes");
    assert_eq!(retried.token, client_token(&key, 1, lease.salt.as_deref()));
    assert_ne!(retried.token, lease.token);
    assert!(retried.request_hash.is_none());
    let item = raw(&table, &key).await.expect("stored");
    assert!(
        !item.contains_key(schema::EXPIRES_AT),
        "a retried step has no TTL"
    );

    // The next request (here a corrected one) defines the new generation.
    let corrected = hash_of("payments-fixed");
    let next = acquire(&ledger, &key, &request(&corrected)).await;
    assert_eq!(next.token, client_token(&key, 1, lease.salt.as_deref()));
    assert_eq!(next.generation, 1);
    assert_eq!(next.attempt, 1);
    ledger
        .mark_ready(&next, ARN, Origin::Created, &applied())
        .await
        .expect("ready");

    match ledger.retry(&key).await {
        Err(LedgerError::NotAllowed(message)) => assert!(message.contains("READY"), "{message}"),
        other => panic!("expected NotAllowed, got {other:?}"),
    }
    assert!(matches!(
        ledger
            .retry(&StepKey::account("100000000007", "absent"))
            .await,
        Err(LedgerError::NotAllowed(_))
    ));
}

#[tokio::test]
async fn one_query_answers_what_happened_to_an_account_and_failures_are_listed() {
    let (ledger, requests, _table) = ledger_table("ledger-views").await;
    let hash = hash_of("payments");
    let account = "100000000008";
    let instance = StepKey::account(account, "identity-center-instance");
    let provider = StepKey::account(
        account,
        "web-identity-provider#arn:aws:workspaces-web:us-east-1:100000000008:portal/p#corp-oidc",
    );
    let broken = StepKey::account(account, "approval-identity-source");
    let elsewhere = StepKey::account("100000000009", "identity-center-instance");

    let lease = acquire(&ledger, &instance, &request(&hash)).await;
    ledger
        .mark_ready(&lease, ARN, Origin::Created, &applied())
        .await
        .expect("ready");
    let lease = acquire(&ledger, &provider, &request(&hash)).await;
    ledger
        .mark_created(&lease, "arn:provider", Origin::Created, &applied())
        .await
        .expect("created");
    let lease = acquire(&ledger, &broken, &request(&hash)).await;
    ledger
        .fail(
            &lease,
            Failure::Permanent,
            &reason("ConflictException", false),
        )
        .await
        .expect("fail");
    acquire(&ledger, &elsewhere, &request(&hash)).await;

    requests.reset();
    let steps: Vec<Record> = ledger.get(&instance.scope).await.expect("get");
    assert_eq!(requests.take(), 1, "one Query per account");
    let mut found: Vec<(String, Status)> = steps
        .iter()
        .map(|r| (r.key.step.clone(), r.status))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        found,
        vec![
            ("approval-identity-source".into(), Status::Failed),
            ("identity-center-instance".into(), Status::Ready),
            (provider.step.clone(), Status::Created),
        ]
    );

    let failed = ledger.list(Status::Failed).await.expect("list");
    assert_eq!(
        failed.iter().map(|r| &r.key).collect::<Vec<_>>(),
        vec![&broken]
    );
    assert_eq!(
        failed[0].last_error.as_ref().map(|e| e.code.as_str()),
        Some("ConflictException")
    );
    let created = ledger.list(Status::Created).await.expect("list");
    assert_eq!(
        created.iter().map(|r| &r.key).collect::<Vec<_>>(),
        vec![&provider]
    );
    let in_progress = ledger.list(Status::InProgress).await.expect("list");
    assert_eq!(
        in_progress.iter().map(|r| &r.key).collect::<Vec<_>>(),
        vec![&elsewhere]
    );
    let ready = ledger.list(Status::Ready).await.expect("list");
    assert_eq!(
        ready.iter().map(|r| &r.key).collect::<Vec<_>>(),
        vec![&instance]
    );
}

#[tokio::test]
async fn the_lease_never_outlives_the_invocation_deadline() {
    let (ledger, _requests, _table) = ledger_table("ledger-deadline").await;
    let key = key("100000000010");
    let hash = hash_of("payments");
    let deadline = SystemTime::now() + Duration::from_secs(3);
    let req = ClaimRequest {
        deadline: Some(deadline),
        ..request(&hash)
    };
    let lease = acquire(&ledger, &key, &req).await;
    let diff = deadline
        .duration_since(lease.expires_at)
        .unwrap_or_else(|e| e.duration());
    assert!(diff < Duration::from_millis(2), "{diff:?}");
}

#[tokio::test]
async fn tokens_are_stable_and_fit_every_api_and_hashes_hold_no_secrets() {
    // Computed independently with Python's uuid.uuid5 (see the ledger's token module).
    let key = StepKey::account("123456789012", "identity-center-instance");
    assert_eq!(
        client_token(&key, 0, None),
        "65d4c74c-3437-5006-bb96-154c53f941c5"
    );
    assert_eq!(
        client_token(&key, 1, None),
        "8b71d57b-0fbd-5abd-8cfa-ab6c70f7d183"
    );
    for generation in 0..3 {
        let token = client_token(&key, generation, Some("0123456789abcdef0123456789abcdef"));
        // SSO Admin 1-64 ^[!-~]+$; MPA 0-4096; WorkSpaces Web 1-512.
        assert!((1..=64).contains(&token.len()));
        assert!(token.bytes().all(|b| (b'!'..=b'~').contains(&b)));
    }

    // Secrets are kept out by the schema (the decoder refuses them, steps hash only typed
    // fields), not by name: every member of a canonical request counts.
    let a = json!({"providerName": "corp", "details": {"client_id": "abc", "oidc_issuer": "https://idp"}});
    let b = json!({"details": {"oidc_issuer": "https://idp", "client_id": "abc", "client_secret": "CANARY-SECRET"}, "providerName": "corp"});
    assert_ne!(request_hash(&a), request_hash(&b));

    // The stored item holds the hash, never the secret.
    let (ledger, _requests, table) = ledger_table("ledger-secrets").await;
    let key = StepKey::account("100000000011", "web-identity-provider#p#corp");
    acquire(&ledger, &key, &request(&request_hash(&b))).await;
    let item = raw(&table, &key).await.expect("stored");
    assert!(!format!("{item:?}").contains("CANARY"));
}

#[tokio::test]
async fn an_unreachable_ledger_is_a_retryable_error_within_bounded_time() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("port")
        .port();
    let ledger = Ledger::new(
        dynamodb(&format!("http://127.0.0.1:{port}"), None),
        "absent",
    );
    let hash = hash_of("payments");
    let started = Instant::now();
    let result = ledger.claim(&key("100000000012"), &request(&hash)).await;
    let elapsed = started.elapsed();
    eprintln!("unreachable ledger answered in {elapsed:?}: {result:?}");
    match result {
        Err(e) => assert!(e.is_retryable(), "{e}"),
        Ok(claim) => panic!("expected an error, got {claim:?}"),
    }
    assert!(elapsed < Duration::from_secs(15), "{elapsed:?}");
}

#[tokio::test]
async fn a_missing_table_is_a_permanent_error() {
    let ledger = Ledger::new(dynamodb(&moto().await.url, None), "no-such-ledger-table");
    let hash = hash_of("payments");
    match ledger.claim(&key("100000000013"), &request(&hash)).await {
        Err(e) => {
            assert!(!e.is_retryable(), "{e}");
            assert!(matches!(e, LedgerError::Rejected(_)), "{e}");
        }
        Ok(claim) => panic!("expected an error, got {claim:?}"),
    }
}

#[tokio::test]
async fn a_lookup_is_needed_only_after_an_attempt_that_may_have_sent_a_create() {
    let (ledger, _requests, table) = ledger_table("ledger-sent").await;
    let key = key("100000000011");
    let hash = hash_of("payments");
    let short = ClaimRequest {
        lease: Duration::from_millis(200),
        ..request(&hash)
    };

    let first = acquire(&ledger, &key, &short).await;
    assert!(
        !first.may_have_sent,
        "nothing was sent before the first attempt"
    );
    // Released before any create (the member role is not there yet), with a retry time.
    let later = SystemTime::now() + Duration::from_secs(30);
    ledger
        .release(
            &first,
            &reason("MemberRoleUnavailable", true),
            Release {
                retry_after: Some(later),
                create_sent: false,
            },
        )
        .await
        .expect("release");
    let record = ledger.get_step(&key).await.expect("get").expect("stored");
    assert_eq!(record.settled_attempt, 1);
    assert!(!record.create_sent);
    let stored_after = record.retry_after.expect("retry_after recorded");
    let wanted = later
        .duration_since(SystemTime::UNIX_EPOCH)
        .expect("clock")
        .as_millis() as u64;
    assert!(
        stored_after.abs_diff(wanted) < 5,
        "{stored_after} vs {wanted}"
    );

    let second = acquire(&ledger, &key, &short).await;
    assert_eq!(second.attempt, 2);
    assert!(!second.may_have_sent, "attempt 1 said it sent nothing");
    // Attempt 2 crashes after sending (no write): attempt 3 must look the resource up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let third = acquire(&ledger, &key, &short).await;
    assert!(third.may_have_sent, "attempt 2 ended without saying");
    // Attempt 3 releases without sending: what attempt 2 may have done stays known.
    ledger
        .release(
            &third,
            &reason("ThrottlingException", true),
            Release::default(),
        )
        .await
        .expect("release");
    let fourth = acquire(&ledger, &key, &short).await;
    assert!(
        fourth.may_have_sent,
        "may-have-sent is kept for the generation"
    );
    let item = raw(&table, &key).await.expect("stored");
    assert_eq!(
        item.get(schema::CREATE_SENT),
        Some(&AttributeValue::Bool(true))
    );
    assert!(
        !item.contains_key(schema::RETRY_AFTER),
        "a release without a retry time clears the old one"
    );
}

#[tokio::test]
async fn writes_on_the_created_path_are_fenced_on_generation_and_resource() {
    let (ledger, _requests, _table) = ledger_table("ledger-created-fence").await;
    let key = key("100000000012");
    let hash = hash_of("payments");

    // Generation 0 creates ARN, fails, is retried by an operator; generation 1 creates NEXT.
    let lease = acquire(&ledger, &key, &request(&hash)).await;
    ledger
        .mark_created(&lease, ARN, Origin::Created, &applied())
        .await
        .expect("created");
    assert!(ledger
        .fail_created(&key, 0, ARN, &reason("CREATE_FAILED", false))
        .await
        .expect("failed"));
    ledger
        .mark_announced(&key, 0, Status::Failed)
        .await
        .expect("announced");
    ledger.retry(&key).await.expect("retry");
    let next = acquire(&ledger, &key, &request(&hash)).await;
    assert_eq!(next.generation, 1);
    assert!(!next.may_have_sent);
    // Generation 1 found the same instance (the account's one instance) and adopted it: only
    // the generation tells the two apart.
    const NEXT: &str = ARN;
    ledger
        .mark_created(&next, NEXT, Origin::PreExisting, &applied())
        .await
        .expect("created again");
    let before = ledger.get_step(&key).await.expect("get").expect("stored");

    // A delivery that read generation 0 now sees its resource fail or become ready: it must
    // not write over generation 1.
    assert!(matches!(
        ledger
            .fail_created(&key, 0, ARN, &reason("ResourceNotFoundException", false))
            .await,
        Err(LedgerError::LostLease { .. })
    ));
    assert!(matches!(
        ledger.promote_ready(&key, 0, ARN).await,
        Err(LedgerError::LostLease { .. })
    ));
    assert!(matches!(
        ledger.mark_announced(&key, 0, Status::Failed).await,
        Err(LedgerError::NotAllowed(_))
    ));
    let after = ledger.get_step(&key).await.expect("get").expect("stored");
    assert_eq!(format!("{before:?}"), format!("{after:?}"));
    ledger.promote_ready(&key, 1, NEXT).await.expect("promote");
}

#[tokio::test]
async fn an_operator_retry_takes_over_a_stalled_step_without_writing_its_clock() {
    let (ledger, _requests, table) = ledger_table("ledger-stalled").await;
    let key = key("100000000013");
    let hash = hash_of("payments");
    // A claim whose lease (capped by an invocation deadline) ended two minutes ago, and
    // whose holder never came back: its request went to a DLQ.
    let stalled = ClaimRequest {
        deadline: Some(SystemTime::now() - Duration::from_secs(120)),
        ..request(&hash)
    };
    let lease = acquire(&ledger, &key, &stalled).await;
    let retried = ledger.retry(&key).await.expect("retry of a stalled step");
    assert_eq!(retried.generation, 1);
    assert_eq!(retried.token, client_token(&key, 1, lease.salt.as_deref()));
    assert_ne!(retried.token, lease.token);
    assert_eq!(
        retried.lease_expires_at,
        Some(0),
        "the released lease depends on no clock"
    );
    assert!(
        retried.create_sent,
        "the stalled attempt may have sent a create: the next one looks it up"
    );
    let item = raw(&table, &key).await.expect("stored");
    assert!(!item.contains_key(schema::REQUEST_HASH));
    // Any request may now take it; a live lease would have been refused.
    let next = acquire(&ledger, &key, &request(&hash_of("other"))).await;
    assert!(next.may_have_sent);
    assert!(matches!(
        ledger.retry(&key).await,
        Err(LedgerError::NotAllowed(message)) if message.contains("lease")
    ));
}

async fn claim_as(ledger: &Ledger, key: &StepKey, state: &Fields, revision: &Revision) -> Lease {
    let asked = Some(Applied { state, revision });
    match ledger
        .claim_with(key, &request("h"), asked)
        .await
        .expect("claim")
    {
        Claim::Acquired(lease) => lease,
        other => panic!("expected Acquired, got {other:?}"),
    }
}

/// The first claimant of a generation fixes what its create is made with: a later holder of
/// the same generation (another request, a takeover) is handed that request, not its own;
/// an operator's retry of a failed step starts a new generation that takes the next
/// claimant's request.
#[tokio::test]
async fn the_first_claimant_of_a_generation_fixes_the_request_it_is_created_with() {
    let (ledger, _requests, _table) = ledger_table("ledger-first-request").await;
    let key = key("100000000077");
    let fields = |name: &str| -> Fields { json!({ "name": name }).as_object().cloned().unwrap() };
    let (first, second) = (fields("first"), fields("second"));
    let r1 = Revision::parse("2026-11-30T10:00:00.000Z#e1");
    let r2 = Revision::parse("2026-11-30T10:05:00.000Z#e2");

    let lease = claim_as(&ledger, &key, &first, &r1).await;
    assert_eq!(lease.requested, Some((first.clone(), r1.clone())));
    ledger
        .release(&lease, &reason("Throttled", true), Release::default())
        .await
        .unwrap();
    let takeover = claim_as(&ledger, &key, &second, &r2).await;
    assert_eq!(takeover.generation, lease.generation);
    assert_eq!(takeover.requested, Some((first.clone(), r1.clone())));

    ledger
        .fail_permanent(&takeover, &reason("AccessDenied", false))
        .await
        .unwrap();
    ledger.retry(&key).await.unwrap();
    let next = claim_as(&ledger, &key, &second, &r2).await;
    assert_eq!(next.generation, lease.generation + 1);
    assert_eq!(next.requested, Some((second, r2)));
}

/// Deletes `key`'s item, as DynamoDB's TTL does, with a separate, uncounted client.
async fn expire(table: &str, key: &StepKey) {
    dynamodb(&moto().await.url, None)
        .delete_item()
        .table_name(table)
        .key(schema::PK, AttributeValue::S(key.scope.clone()))
        .key(schema::SK, AttributeValue::S(key.step.clone()))
        .send()
        .await
        .expect("DeleteItem");
}

/// Makes `key`'s item look as it did before salts existed: no salt, the unsalted token of
/// its generation.
async fn unsalt(table: &str, key: &StepKey, generation: u32) {
    dynamodb(&moto().await.url, None)
        .update_item()
        .table_name(table)
        .key(schema::PK, AttributeValue::S(key.scope.clone()))
        .key(schema::SK, AttributeValue::S(key.step.clone()))
        .update_expression("SET #token = :token REMOVE #salt")
        .expression_attribute_names("#token", schema::CLIENT_TOKEN)
        .expression_attribute_names("#salt", schema::TOKEN_SALT)
        .expression_attribute_values(
            ":token",
            AttributeValue::S(client_token(key, generation, None)),
        )
        .send()
        .await
        .expect("UpdateItem");
}

/// A failed item expires after its TTL and the next request creates generation 0 again:
/// with a new salt, so with a token the deleted item never had (whatever the service
/// remembers of the old token cannot answer). The salt costs no request: a duplicate is
/// still one.
#[tokio::test]
async fn an_item_deleted_by_ttl_and_created_again_never_reuses_a_token() {
    let (ledger, requests, table) = ledger_table("ledger-lifetimes").await;
    let key = key("100000000021");
    let hash = hash_of("payments");

    let first = acquire(&ledger, &key, &request(&hash)).await;
    ledger
        .fail(
            &first,
            Failure::Permanent,
            &reason("ValidationException", false),
        )
        .await
        .expect("fail");
    let retried = ledger.retry(&key).await.expect("retry");
    let old_tokens = [first.token.clone(), retried.token.clone()];
    expire(&table, &key).await;

    requests.reset();
    let again = acquire(&ledger, &key, &request(&hash)).await;
    assert_eq!(
        requests.take(),
        1,
        "the first claim of a new item is one write"
    );
    assert_eq!(again.generation, 0);
    assert_ne!(again.salt, first.salt, "a new item, a new salt");
    assert!(
        !old_tokens.contains(&again.token),
        "generation 0 of the new item reuses a token of the deleted one: {} in {old_tokens:?}",
        again.token
    );
    assert_eq!(again.token, client_token(&key, 0, again.salt.as_deref()));

    // A takeover keeps the item's salt and token.
    ledger
        .release(&again, &reason("Throttled", true), Release::default())
        .await
        .expect("release");
    let takeover = acquire(&ledger, &key, &request(&hash)).await;
    assert_eq!(
        (&takeover.token, &takeover.salt),
        (&again.token, &again.salt)
    );

    ledger
        .mark_ready(&takeover, ARN, Origin::Created, &applied())
        .await
        .expect("ready");
    requests.reset();
    assert!(matches!(
        ledger.claim(&key, &request(&hash)).await.expect("claim"),
        Claim::Ready(_)
    ));
    assert_eq!(requests.take(), 1, "a duplicate costs one request");

    // A step retired before any request reached it gets a salt too: its reopening's token
    // is no earlier lifetime's.
    let tombstone = StepKey::account("100000000021", "approval-identity-source");
    let why = json!({ "reason": "closed" });
    let closed = Revision::parse("2026-11-30T00:00:00.000Z#closed");
    match ledger
        .retire(&tombstone, &closed, &why)
        .await
        .expect("retire")
    {
        onboarding::ledger::Retirement::Retired(r) => {
            let salt = r
                .token_salt
                .clone()
                .expect("a retired tombstone has a salt");
            assert_eq!(r.token, client_token(&tombstone, 0, Some(&salt)));
            let reopening = Revision::parse("2026-12-01T00:00:00.000Z#reopening");
            let asked = fields(json!({ "name": "approvals" }));
            let request = Applied {
                state: &asked,
                revision: &reopening,
            };
            assert!(ledger.reopen(&r, request).await.expect("reopen"));
            let reopened = ledger.get_step(&tombstone).await.unwrap().unwrap();
            assert_eq!(reopened.token, client_token(&tombstone, 1, Some(&salt)));
            assert_ne!(reopened.token, client_token(&tombstone, 1, None));
            // The reopening request is the new generation's, recorded by the reopening
            // itself: whoever takes the generation over makes what it asks.
            assert_eq!(reopened.requested.as_ref(), Some(&asked));
            assert_eq!(reopened.requested_revision.as_ref(), Some(&reopening));
        }
        other => panic!("expected Retired, got {other:?}"),
    }
}

/// An item written before salts existed keeps its tokens: a claim takes it over with the
/// token it has, an operator's retry and an update derive theirs without a salt. An upgrade
/// never changes a token in flight.
#[tokio::test]
async fn an_item_without_a_salt_keeps_the_tokens_it_had() {
    let (ledger, requests, table) = ledger_table("ledger-unsalted").await;
    let key = key("100000000022");
    let hash = hash_of("payments");
    let short = ClaimRequest {
        lease: Duration::from_millis(200),
        ..request(&hash)
    };

    // In flight at the upgrade: IN_PROGRESS, its lease expired.
    let old = acquire(&ledger, &key, &short).await;
    unsalt(&table, &key, 0).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    requests.reset();
    let takeover = acquire(&ledger, &key, &request(&hash)).await;
    assert_eq!(requests.take(), 1);
    assert_eq!(
        takeover.token,
        client_token(&key, 0, None),
        "the old token, kept"
    );
    assert_ne!(takeover.token, old.token);
    let stored = ledger.get_step(&key).await.unwrap().unwrap();
    assert_eq!(stored.token, client_token(&key, 0, None));

    // FAILED at the upgrade: the operator's retry derives the next generation's token
    // without a salt, as before.
    ledger
        .fail(
            &takeover,
            Failure::Permanent,
            &reason("ValidationException", false),
        )
        .await
        .expect("fail");
    unsalt(&table, &key, 0).await;
    let retried = ledger.retry(&key).await.expect("retry");
    assert_eq!(retried.token_salt, None);
    assert_eq!(retried.token, client_token(&key, 1, None));

    // READY at the upgrade: an update's token is derived without a salt.
    let ready_key = StepKey::account("100000000022", "approval-identity-source");
    let lease = acquire(&ledger, &ready_key, &request(&hash)).await;
    ledger
        .mark_ready(&lease, ARN, Origin::Created, &applied())
        .await
        .expect("ready");
    unsalt(&table, &ready_key, 0).await;
    let record = ledger.get_step(&ready_key).await.unwrap().unwrap();
    assert_eq!(record.token_salt, None);
    let newer = Revision::parse("2026-12-01T00:00:00.000Z#event-2");
    let wanted: Fields = json!({ "name": "renamed" }).as_object().cloned().unwrap();
    let record = ledger
        .record_desired(&record, &onboarding::desired::Desired::of(&wanted, &newer))
        .await
        .expect("merge")
        .expect("merged");
    match ledger
        .claim_update(&record, onboarding::ledger::UpdateKind::Pending, LONG, None)
        .await
        .expect("claim update")
    {
        onboarding::ledger::UpdateClaim::Acquired(update) => {
            assert_eq!(update.salt, None);
            assert_eq!(update.wanted.get("name"), Some(&json!("renamed")));
            let basis = format!("v{}", update.version);
            assert_eq!(
                onboarding::ledger::update_token(&ready_key, 0, &basis, update.salt.as_deref()),
                onboarding::ledger::update_token(&ready_key, 0, &basis, None)
            );
        }
        other => panic!("expected Acquired, got {other:?}"),
    }
}

/// A step claimed again and again (its holders keep losing their leases) keeps only the
/// newest events that acquired it, not one per claim for ever.
#[tokio::test]
async fn recent_events_keep_only_the_newest() {
    let (ledger, _requests, _table) = ledger_table("ledger-recent").await;
    let key = key("100000000030");
    let hash = hash_of("payments");
    let ids: Vec<String> = (0..25).map(|i| format!("event-{i:02}")).collect();
    for id in &ids {
        let req = ClaimRequest {
            event_id: id,
            lease: Duration::from_millis(1),
            ..request(&hash)
        };
        tokio::time::sleep(Duration::from_millis(5)).await;
        acquire(&ledger, &key, &req).await;
    }
    let record = ledger.get_step(&key).await.expect("get").expect("stored");
    assert_eq!(record.attempt, 25);
    assert_eq!(
        record.recent_events,
        ids[ids.len() - onboarding::ledger::RECENT_EVENTS_KEPT..].to_vec()
    );
}

fn fields(v: serde_json::Value) -> Fields {
    v.as_object().cloned().expect("an object")
}

/// A step created as `state` asks, READY and its Ready announced.
async fn ready_and_announced(ledger: &Ledger, key: &StepKey, hash: &str, state: &Fields) -> Record {
    let lease = acquire(ledger, key, &request(hash)).await;
    let applied = Applied {
        state,
        revision: &REVISION,
    };
    let record = ledger
        .mark_ready(&lease, ARN, Origin::Created, &applied)
        .await
        .expect("ready");
    ledger
        .mark_ready_announced(&record)
        .await
        .expect("announced")
}

/// An update holder that vanished (its lease ran out) while a newer request asked for the
/// applied state again leaves nothing owed: the step settles, shedding the holder's stale
/// fields, rather than staying in the attention index for ever. While the lease is live it
/// does not.
#[tokio::test]
async fn a_vanished_update_holder_with_nothing_owed_settles_the_step() {
    use onboarding::desired::Desired;
    use onboarding::ledger::{UpdateClaim, UpdateKind};
    let (ledger, _requests, table) = ledger_table("ledger-stale-update").await;
    let key = key("100000000031");
    let hash = hash_of("payments");
    let original = fields(json!({ "name": "payments" }));
    let record = ready_and_announced(&ledger, &key, &hash, &original).await;
    assert_eq!(record.attention, None, "nothing owed yet");

    // A newer request renames it; its holder claims the update and vanishes.
    let renamed = fields(json!({ "name": "renamed" }));
    let rev2 = Revision::parse("2026-12-01T00:00:00.000Z#event-2");
    let record = ledger
        .record_desired(&record, &Desired::of(&renamed, &rev2))
        .await
        .expect("merge")
        .expect("merged");
    let held = Duration::from_millis(400);
    match ledger
        .claim_update(&record, UpdateKind::Pending, held, None)
        .await
        .expect("claim update")
    {
        UpdateClaim::Acquired(_) => {}
        other => panic!("expected Acquired, got {other:?}"),
    }
    // A newer request still asks for the original name: nothing is owed any more.
    let rev3 = Revision::parse("2026-12-02T00:00:00.000Z#event-3");
    let record = ledger.get_step(&key).await.unwrap().unwrap();
    let record = ledger
        .record_desired(&record, &Desired::of(&original, &rev3))
        .await
        .expect("merge")
        .expect("merged");
    assert!(!record.update_pending(), "{record:?}");
    assert!(
        !ledger.settle(&record, false).await.expect("settle"),
        "an update lease that is still held keeps the step in the index"
    );

    tokio::time::sleep(held + Duration::from_millis(100)).await;
    let record = ledger.get_step(&key).await.unwrap().unwrap();
    assert!(
        ledger.settle(&record, false).await.expect("settle"),
        "the holder's lease ran out with nothing owed: the step settles"
    );
    let item = raw(&table, &key).await.expect("stored");
    for gone in [
        schema::ATTENTION,
        schema::UPDATE_OWNER,
        schema::UPDATE_LEASE_EXPIRES_AT,
        schema::UPDATE_VERSION,
    ] {
        assert!(!item.contains_key(gone), "{gone} left behind: {item:?}");
    }
    assert_eq!(
        ledger.get_step(&key).await.unwrap().unwrap().status,
        Status::Ready
    );
}

/// The audit records what it found only on the step it read: a request merged after its
/// read (a new desired version, the applied revision unchanged) makes its finding stale,
/// and nothing is recorded.
#[tokio::test]
async fn an_audit_finding_is_not_recorded_over_a_newer_desired_state() {
    use onboarding::desired::Desired;
    let (ledger, _requests, table) = ledger_table("ledger-audit-fence").await;
    let key = key("100000000032");
    let hash = hash_of("payments");
    let original = fields(json!({ "name": "payments" }));
    let read_by_audit = ready_and_announced(&ledger, &key, &hash, &original).await;

    let renamed = fields(json!({ "name": "renamed" }));
    let rev2 = Revision::parse("2026-12-01T00:00:00.000Z#event-2");
    ledger
        .record_desired(&read_by_audit, &Desired::of(&renamed, &rev2))
        .await
        .expect("merge")
        .expect("merged");
    let drift = r#"{"changed":["name"]}"#;
    assert!(
        ledger
            .record_audit(&read_by_audit, Some((drift, None)))
            .await
            .expect("record audit")
            .is_none(),
        "a finding against the desired state before the merge"
    );
    let item = raw(&table, &key).await.expect("stored");
    assert!(!item.contains_key(schema::DRIFT), "{item:?}");

    // Against the step as it is now, the audit's record is taken.
    let now = ledger.get_step(&key).await.unwrap().unwrap();
    assert!(ledger
        .record_audit(&now, Some((drift, None)))
        .await
        .expect("record audit")
        .is_some());
}

/// A delivery that announced a step's Ready or Failed and was slow to mark it must not mark
/// the retirement recorded meanwhile (the account closed): that mark would say "Account
/// Offboarded" was announced when nobody announced it, and the step would leave the
/// attention index with its retirement owed for ever.
#[tokio::test]
async fn a_late_mark_of_an_outcome_never_marks_the_retirement_recorded_since() {
    use onboarding::ledger::Retirement;
    let (ledger, _requests, _table) = ledger_table("ledger-late-mark").await;
    let why = json!({ "reason": "the account closed" });
    let closed = Revision::parse("2026-12-02T00:00:00.000Z#closed");
    let retire = |key: StepKey| {
        let (ledger, why, closed) = (ledger.clone(), why.clone(), closed.clone());
        async move {
            match ledger.retire(&key, &closed, &why).await.expect("retire") {
                Retirement::Retired(r) => r,
                other => panic!("expected Retired, got {other:?}"),
            }
        }
    };

    // READY, its Ready sent but not yet marked; then the closure.
    let ready_key = key("100000000041");
    let lease = acquire(&ledger, &ready_key, &request(&hash_of("payments"))).await;
    let ready = ledger
        .mark_ready(&lease, ARN, Origin::Created, &applied())
        .await
        .expect("ready");
    assert!(!ready.announced);
    let retired = retire(ready_key.clone()).await;
    assert_eq!(retired.generation, ready.generation);
    assert!(matches!(
        ledger.mark_ready_announced(&ready).await,
        Err(LedgerError::NotAllowed(_))
    ));

    // FAILED, its Failed sent but not yet marked; then the closure.
    let failed_key = key("100000000042");
    let lease = acquire(&ledger, &failed_key, &request(&hash_of("payments"))).await;
    ledger
        .fail_permanent(&lease, &reason("AccessDenied", false))
        .await
        .expect("failed");
    retire(failed_key.clone()).await;
    assert!(matches!(
        ledger.mark_announced(&failed_key, 0, Status::Failed).await,
        Err(LedgerError::NotAllowed(_))
    ));

    for key in [&ready_key, &failed_key] {
        let record = ledger.get_step(key).await.expect("get").expect("stored");
        assert_eq!(record.status, Status::Retired, "{key}");
        assert!(!record.announced, "{key}: its retirement is still owed");
        assert_eq!(
            record.attention.as_deref(),
            Some("RETIRED"),
            "{key}: in the attention index until its retirement is announced"
        );
    }
}
