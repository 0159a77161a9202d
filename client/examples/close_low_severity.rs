//! A complete agent: closes every piece of low-severity feedback as it is submitted.
//!
//! ```sh
//! TOKEN=$(cargo run -q -p cli -- token --tenant acme --scopes "consume commands" --ttl 24h)
//! EDGELOOP_URL=http://127.0.0.1:8787 EDGELOOP_TOKEN=$TOKEN \
//!     cargo run -p client --example close_low_severity
//! ```
//!
//! Stop it with Ctrl-C: it finishes the event in hand, releases its lease and prints its
//! counters. Run it twice and the two processes share the work; kill one and the other
//! picks up its events once their lease runs out — and closes nothing twice, because each
//! command's idempotency key is derived from the event that caused it.

use client::agent::{Agent, Context, HandlerError};
use client::{Client, CommandBody, EventEnvelope, GroupSettings};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("EDGELOOP_URL").unwrap_or_else(|_| "http://127.0.0.1:8787".into());
    let token = std::env::var("EDGELOOP_TOKEN")?;
    let edgeloop = Client::new(&url)?.with_token(token);

    let agent = Agent::new(
        edgeloop,
        "close-low",
        format!("closer-{}", std::process::id()),
    )
    // Only submitted feedback reaches the handler; the group is made on first run.
    .create_group(
        GroupSettings::default()
            .aggregate_type("feedback")
            .types(["FeedbackSubmitted"]),
    )
    .handler(|ctx: Context, event: EventEnvelope| async move {
        println!(
            "{} {} (attempt {})",
            event.event_type,
            event.aggregate_id,
            ctx.attempt()
        );
        if event.data["severity"] != "low" {
            return Ok(());
        }
        let close = CommandBody::new("CloseFeedback", json!({"reason": "low severity"}));
        match ctx.command("feedback", &event.aggregate_id, close).await {
            Ok(_) => Ok(()),
            // Closed already (by a person, or by us before a crash): nothing left to do.
            Err(e) if e.rejection_rule() == Some("feedback_closed") => Ok(()),
            Err(e) => Err(HandlerError::from(e)),
        }
    });
    let stats = agent.stats();
    agent.run().await?; // until SIGINT or SIGTERM
    println!("{:?}", stats.snapshot());
    Ok(())
}
