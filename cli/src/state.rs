//! `edgeloop state`: an aggregate's state — now, at a version, or as of a time — as the
//! server answers it (`{"aggregate_type","aggregate_id","version","state"}`), pretty-printed.

use chrono::{DateTime, Utc};
use client::At;
use serde_json::json;

use crate::server::{ServerArgs, explain};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    server: ServerArgs,

    /// Aggregate type, e.g. board
    #[arg(value_name = "TYPE")]
    aggregate_type: String,

    /// Aggregate id
    #[arg(value_name = "ID")]
    id: String,

    /// The state right after event N (time travel by version)
    #[arg(long, value_name = "N", conflicts_with = "as_of")]
    at_version: Option<u64>,

    /// The state from every event recorded at or before this time (RFC 3339)
    #[arg(long, value_name = "TIME", value_parser = crate::replay::parse_time)]
    as_of: Option<DateTime<Utc>>,
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    let client = args.server.client()?;
    let at = match (args.at_version, args.as_of) {
        (Some(version), _) => At::Version(version),
        (None, Some(time)) => At::Time(time),
        (None, None) => At::Latest,
    };
    let state = client
        .state(&args.aggregate_type, &args.id, at)
        .await
        .map_err(|e| explain(e, args.server.url(), "read"))?;
    let answer = json!({
        "aggregate_type": state.aggregate_type,
        "aggregate_id": state.aggregate_id,
        "version": state.version,
        "state": state.state,
    });
    println!("{}", serde_json::to_string_pretty(&answer)?);
    Ok(())
}
