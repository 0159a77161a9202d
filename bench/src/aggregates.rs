//! The first table's figures, unchanged since the first benchmark so that results stay
//! comparable: sequential commands on one aggregate, WebSocket push latency through the
//! SDK's subscription, and concurrent writers on their own aggregates.

use std::time::Instant;

use client::Update;
use client::reqwest::Method;

use crate::measure::{Rate, Stats, per_second};
use crate::session::{Session, add_card, create_board};

/// Sequential commands on one aggregate (each waits for the previous answer).
pub async fn sequential(session: &Session, id: &str, n: usize) -> Rate {
    session.command(id, &create_board("bench")).await;
    let mut samples = Vec::with_capacity(n);
    let started = Instant::now();
    for i in 0..n {
        samples.push(session.command(id, &add_card(&format!("c{i}"))).await);
    }
    Rate {
        per_second: per_second(n, started.elapsed()),
        latency: Stats::of(samples),
    }
}

/// [`sequential`] with every partition of the stream paused: each command's forwarding is
/// refused at once (and retried later), so no partition appends and no projection folds.
/// The gap to [`sequential`] is what the asynchronous fan-out behind a command costs the
/// commands that follow it. Partitions stay paused: run it last.
pub async fn sequential_paused(session: &Session, id: &str, n: usize) -> Rate {
    let partitions = session.client.partitions().await.expect("partitions");
    for partition in &partitions {
        session
            .ok(
                Method::POST,
                &format!("/v1/stream/partitions/{}/pause", partition.partition),
            )
            .await;
    }
    sequential(session, id, n).await
}

/// POST → the subscriber's frame, one command at a time.
pub async fn push_latency(session: &Session, id: &str, n: usize) -> Stats {
    session.command(id, &create_board("push")).await;
    // The SDK's subscription: auto-acks in batches, as any client should.
    let mut subscription = session
        .client
        .subscribe("board", id, 1)
        .await
        .expect("subscribe");
    let first = subscription.next().await.expect("caught up");
    assert_eq!(first, Update::CaughtUp { version: 1 });
    let mut samples = Vec::with_capacity(n);
    for i in 0..n {
        let card = format!("p{i}");
        let body = add_card(&card);
        let started = Instant::now();
        let (_, event) = tokio::join!(session.command(id, &body), subscription.next_event());
        let event = event.expect("a pushed event");
        assert_eq!(event.data["card_id"], card, "{event:?}");
        samples.push(started.elapsed());
    }
    Stats::of(samples)
}

/// `clients` writers, each on its own aggregate, at once: commands per second.
pub async fn concurrent(session: &Session, clients: usize, per_client: usize) -> f64 {
    let started = Instant::now();
    let writers = (0..clients).map(|c| {
        let id = format!("conc-{c}");
        async move {
            session.command(&id, &create_board("c")).await;
            for i in 1..per_client {
                session.command(&id, &add_card(&format!("c{i}"))).await;
            }
        }
    });
    futures_util::future::join_all(writers).await;
    per_second(clients * per_client, started.elapsed())
}
