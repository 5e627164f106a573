//! The reference for the cold-start figures: the smallest useful Rust Lambda function with the
//! same runtime and AWS stack as the project's functions (lambda_runtime + aws-config +
//! aws-sdk-dynamodb, the workspace's crate features and release profile). It writes one
//! DynamoDB item per event (`PutItem` to `TABLE_NAME`, keyed by the request id) and answers
//! `{"written": "<request id>"}`. Everything the project's functions spend beyond this is
//! their own overhead.

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::types::AttributeValue;
use lambda_runtime::{service_fn, Error, LambdaEvent};
use serde_json::{json, Value};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    let table = std::env::var("TABLE_NAME").map_err(|_| "TABLE_NAME is required")?;
    let config = aws_config::load_defaults(BehaviorVersion::latest()).await;
    let dynamodb = aws_sdk_dynamodb::Client::new(&config);
    let (dynamodb, table) = (&dynamodb, table.as_str());
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| async move {
        let id = event.context.request_id;
        dynamodb
            .put_item()
            .table_name(table)
            .item("pk", AttributeValue::S(format!("baseline#{id}")))
            .item("sk", AttributeValue::S("baseline".into()))
            .send()
            .await?;
        Ok::<Value, Error>(json!({ "written": id }))
    }))
    .await
}
