//! Wiring to the Lambda Runtime API, shared by the three functions' `main`.

use std::sync::Arc;
use std::time::SystemTime;

use crate::clock::from_epoch_ms;

use lambda_runtime::{service_fn, LambdaEvent};
use serde_json::Value;

use crate::announce::Announcer;
use crate::aws::{self, MemberAccess};
use crate::engine::Engine;
use crate::handler::Handler;
use crate::ledger::Ledger;
use crate::reconcile::{ReconcileSettings, Reconciler};
use crate::redelivery::SqsVisibility;
use crate::settings::Settings;
use crate::step::Step;
use crate::steps::{ApprovalIdentitySource, IdentityCenterInstance, WebIdentityProvider};

/// Everything a function builds once at init, before its step.
pub struct Init {
    pub config: aws_config::SdkConfig,
    pub settings: Settings,
    pub engine: Engine,
}

impl Init {
    /// The handler of `step`, delaying failed SQS records through the queue they came from.
    pub fn handler<S: Step>(self, step: S) -> Handler<S> {
        let redelivery = SqsVisibility::new(aws_sdk_sqs::Client::new(&self.config));
        Handler::new(self.engine, step, self.settings.accept).with_redelivery(Arc::new(redelivery))
    }

    /// The reconciler, with every step (the organization's only when ORG_INSTANCE_ARN is set).
    pub fn reconciler(self) -> Result<Reconciler, String> {
        let access = || self.member_access();
        let approval = match self.settings.org_instance_arn.clone() {
            None => None,
            Some(arn) => {
                let region = self
                    .settings
                    .org_instance_region
                    .clone()
                    .or_else(|| self.config.region().map(|r| r.to_string()))
                    .ok_or("ORG_INSTANCE_REGION is unset and the function has no Region")?;
                Some(ApprovalIdentitySource::new(
                    aws::mpa_client(&self.config, &self.settings.approval_region),
                    arn,
                    region,
                ))
            }
        };
        let web =
            WebIdentityProvider::new(access(), aws_sdk_secretsmanager::Client::new(&self.config));
        let settings = ReconcileSettings {
            interval: self.settings.reconcile_interval,
            repair_drift: self.settings.repair_drift,
            stuck_after: self.settings.engine.member_role_grace,
        };
        Ok(Reconciler::new(
            self.engine.clone(),
            IdentityCenterInstance::new(access())
                .with_management_account(self.settings.management_account_id.clone()),
            web,
            approval,
            settings,
        )
        // Organizations is asked about an account whose member role refuses the audit.
        .with_organizations(crate::organizations::Organizations::new(&self.config)))
    }

    /// Acting in member accounts through the configured role, in the function's partition.
    pub fn member_access(&self) -> MemberAccess {
        MemberAccess::new(
            &self.config,
            &self.settings.member_role_name,
            &self.settings.partition,
        )
    }
}

/// Logging, settings and the engine's clients. Fails with a message naming the bad setting.
pub async fn init() -> Result<Init, lambda_runtime::Error> {
    crate::telemetry::init_logging();
    let settings = Settings::from_env()?;
    let config = aws::load_config().await;
    let engine = engine(&config, &settings);
    Ok(Init {
        config,
        settings,
        engine,
    })
}

/// The engine on the ledger table and event bus the settings name.
pub fn engine(config: &aws_config::SdkConfig, settings: &Settings) -> Engine {
    let ledger = Ledger::new(
        aws_sdk_dynamodb::Client::new(config),
        settings.ledger_table.clone(),
    );
    let announcer = Announcer::new(
        aws_sdk_eventbridge::Client::new(config),
        settings.event_bus.clone(),
        settings.accept.source.clone(),
    );
    Engine::new(ledger, announcer, settings.engine.clone())
}

/// Serves invocations until the runtime stops, emitting one EMF metrics line per invocation.
pub async fn serve<S: Step + 'static>(
    function: &'static str,
    handler: Handler<S>,
) -> Result<(), lambda_runtime::Error> {
    let handler = &handler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = from_epoch_ms(event.context.deadline);
        let deadline = (deadline > SystemTime::now()).then_some(deadline);
        // Boxed: the handler's future is deep, and a boxed one keeps the runtime's small.
        let result = Box::pin(handler.handle(event.payload, deadline)).await;
        match result {
            Ok((reply, tally)) => {
                println!("{}", tally.emf(function));
                Ok(reply)
            }
            Err(e) => {
                println!(
                    "{}",
                    crate::telemetry::Tally {
                        retries: 1,
                        ..Default::default()
                    }
                    .emf(function)
                );
                Err(lambda_runtime::Error::from(e.to_string()))
            }
        }
    }))
    .await
}

/// Serves the reconciler's scheduled invocations: one run each (the event itself carries
/// nothing), one EMF line with its metrics, a summary as the reply. An error (the ledger
/// unreadable) fails the invocation, which the reconciler's Errors alarm reports.
pub async fn serve_reconciler(reconciler: Reconciler) -> Result<(), lambda_runtime::Error> {
    let reconciler = &reconciler;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let deadline = from_epoch_ms(event.context.deadline);
        let deadline = (deadline > SystemTime::now()).then_some(deadline);
        let report = Box::pin(reconciler.run(deadline, false)).await?;
        println!(
            "{}",
            crate::telemetry::emf_line("reconciler", &report.metrics())
        );
        let mut summary = serde_json::to_value(&report).unwrap_or(Value::Null);
        if let Some(map) = summary.as_object_mut() {
            map.remove("steps");
        }
        Ok::<Value, lambda_runtime::Error>(summary)
    }))
    .await
}
