//! JSON logs and CloudWatch embedded-metric-format (EMF) lines.

use serde_json::json;

pub const METRIC_NAMESPACE: &str = "IdentityOnboarding";

/// JSON logs on stdout, filtered by `RUST_LOG` (default `info`). The SDK's own crates log at
/// `warn` so that request bodies never reach the logs.
pub fn init_logging() {
    init_logging_to(std::io::stdout);
}

/// The same JSON logs, written to `writer` (tests capture them to look for leaked secrets).
pub fn init_logging_to<W>(writer: W)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new(
            "info,aws_smithy_runtime=warn,aws_config=warn,hyper=warn",
        )
    });
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_span_list(false)
        .with_target(false)
        .with_current_span(true)
        .with_writer(writer)
        .try_init()
        .ok();
}

/// What one invocation did, counted per outcome.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Tally {
    pub created: u32,
    pub adopted: u32,
    pub duplicates: u32,
    pub updated: u32,
    pub retries: u32,
    pub failures: u32,
    pub rejected: u32,
    pub skipped: u32,
    /// Steps retired because their account closed or left the organization.
    pub retired: u32,
}

impl Tally {
    pub fn add(&mut self, other: Tally) {
        self.created += other.created;
        self.adopted += other.adopted;
        self.duplicates += other.duplicates;
        self.updated += other.updated;
        self.retries += other.retries;
        self.failures += other.failures;
        self.rejected += other.rejected;
        self.skipped += other.skipped;
        self.retired += other.retired;
    }

    /// The EMF line CloudWatch turns into metrics, dimensioned by function.
    pub fn emf(&self, function: &str) -> String {
        emf_line(function, &self.metrics())
    }

    /// Each counter under its metric name.
    pub fn metrics(&self) -> Vec<(&'static str, u32)> {
        vec![
            ("StepsCreated", self.created),
            ("StepsAdopted", self.adopted),
            ("DuplicatesSuppressed", self.duplicates),
            ("StepsUpdated", self.updated),
            ("Retries", self.retries),
            ("StepsFailed", self.failures),
            ("EventsRejected", self.rejected),
            ("StepsRetired", self.retired),
        ]
    }
}

/// The reconciler's own metrics (besides the step outcomes it counts in a [`Tally`]).
pub const RECONCILER_METRICS: &[&str] = &[
    "StepsRedriven",
    "StepsStuck",
    "DriftDetected",
    "StepsAudited",
    "StepsNotAudited",
];

/// One CloudWatch embedded-metric-format line: `metrics` (name, count) in namespace
/// [`METRIC_NAMESPACE`], dimension `Function`.
pub fn emf_line(function: &str, metrics: &[(&str, u32)]) -> String {
    let timestamp = crate::clock::now_ms();
    let definitions: Vec<serde_json::Value> = metrics
        .iter()
        .map(|(name, _)| json!({ "Name": name, "Unit": "Count" }))
        .collect();
    let mut line = json!({
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": METRIC_NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": definitions,
            }],
        },
        "Function": function,
    });
    for (name, value) in metrics {
        line[*name] = json!(value);
    }
    line.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emf_line_names_every_metric_it_carries() {
        let tally = Tally {
            created: 2,
            duplicates: 1,
            ..Tally::default()
        };
        let line: serde_json::Value = serde_json::from_str(&tally.emf("fn")).unwrap();
        let names: Vec<&str> = line["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        for name in &names {
            assert!(line.get(*name).is_some(), "metric {name} has no value");
        }
        assert_eq!(line["StepsCreated"], 2);
        assert_eq!(line["DuplicatesSuppressed"], 1);
        assert_eq!(line["Function"], "fn");
    }
}
