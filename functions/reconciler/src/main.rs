//! Finishes what no event will: on a schedule, re-drives every step that is not final and is
//! due (from the ledger's attention index, through the same engine as the deliveries), and
//! audits this interval's slice of READY steps for drift.

use onboarding::lambda;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    let init = lambda::init().await?;
    let reconciler = init.reconciler()?;
    lambda::serve_reconciler(reconciler).await
}
