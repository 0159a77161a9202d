//! The `client` crate (the Rust SDK) against the real Worker under workerd: typed commands,
//! reads and errors; retries that apply a command once when its answer is lost or the
//! runtime crashes; subscriptions that resume with no gap and no duplicate after their
//! connection is cut, after a 4008 `slow_consumer` close, and across a runtime crash while
//! events are written. Failures are injected by a [`Proxy`] between the SDK and the Worker.

use std::time::Duration;

use client::{
    AckMode, At, CommandBody, EventEnvelope, ExpectedVersion, RetryPolicy, SubscribeOptions,
    Subscription, Update,
};
use serde_json::json;
use tests::{Options, Proxy, Worker, cmd, sdk_client, shared, unique_id};

/// Retries quick enough for a test, many enough to ride out a cut connection.
fn quick() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10,
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(200),
        max_elapsed: Duration::from_secs(60),
    }
}

/// Retries that outlast a SIGKILL and a restart of the runtime on a loaded machine.
fn patient() -> RetryPolicy {
    RetryPolicy {
        max_attempts: 10_000,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        max_elapsed: Duration::from_secs(180),
    }
}

fn subscribe_options(ack: AckMode, reconnect: RetryPolicy) -> SubscribeOptions {
    SubscribeOptions {
        ack,
        reconnect,
        ..SubscribeOptions::default()
    }
}

fn add_card(n: usize) -> CommandBody {
    CommandBody::new(
        "AddCard",
        json!({"card_id": format!("c{n}"), "title": format!("Card {n}")}),
    )
}

/// What a subscription handed over while reading up to `last`.
#[derive(Debug, Default)]
struct Read {
    events: Vec<EventEnvelope>,
    reconnects: Vec<u64>,
}

impl Read {
    fn seqs(&self) -> Vec<u64> {
        self.events.iter().map(|e| e.seq).collect()
    }
}

/// Reads until the event with seq `last` arrived (each update within `wait`), acking every
/// event right away in manual mode.
async fn read_until(subscription: &mut Subscription, last: u64, wait: Duration) -> Read {
    let mut read = Read::default();
    while read.events.last().map_or(0, |e| e.seq) < last {
        let update = tokio::time::timeout(wait, subscription.next())
            .await
            .unwrap_or_else(|_| panic!("no update within {wait:?}; read so far {read:?}"))
            .unwrap_or_else(|e| panic!("subscription failed: {e}; read so far {read:?}"));
        match update {
            Update::Event(event) => {
                subscription.ack(event.seq).expect("ack a delivered event");
                read.events.push(*event);
            }
            Update::Reconnected { after } => read.reconnects.push(after),
            Update::CaughtUp { .. } => {}
            other => panic!("unexpected update {other:?}"),
        }
    }
    read
}

/// Asserts that nothing but caught-up marks and reconnects arrives for `quiet`: no
/// duplicate, no event past the end.
async fn expect_no_more_events(subscription: &mut Subscription, quiet: Duration) {
    let deadline = tokio::time::Instant::now() + quiet;
    while let Ok(update) = tokio::time::timeout_at(deadline, subscription.next()).await {
        match update.expect("no error while quiet") {
            Update::Event(event) => panic!("an event after the last one: {event:?}"),
            Update::CaughtUp { version } => assert_eq!(version, subscription.last_seq()),
            _ => {}
        }
    }
}

/// The log as the Worker has it, read without the proxy.
async fn log(worker: &Worker, id: &str) -> Vec<EventEnvelope> {
    worker
        .sdk()
        .all_events("board", id, 0)
        .await
        .expect("read the log")
}

#[tokio::test]
async fn typed_commands_reads_and_errors() {
    let worker = shared();
    let sdk = worker.sdk();
    let id = unique_id("board-sdk");

    let created = sdk
        .command(
            "board",
            &id,
            &CommandBody::new("CreateBoard", json!({"title": "SDK"}))
                .expecting(ExpectedVersion::None)
                .correlation_id("flow-1"),
        )
        .await
        .expect("create");
    assert_eq!((created.version, created.replayed), (1, false));
    assert_eq!(created.events[0].event_type, "BoardCreated");
    assert_eq!(created.events[0].correlation_id.as_deref(), Some("flow-1"));
    assert_eq!(created.events[0].actor.as_deref(), Some(tests::ACTOR));
    for n in 1..=3 {
        sdk.command("board", &id, &add_card(n))
            .await
            .expect("add a card");
    }

    let now = sdk.state("board", &id, At::Latest).await.expect("state");
    assert_eq!(now.version, 4);
    let then = sdk
        .state("board", &id, At::Version(2))
        .await
        .expect("time travel");
    assert_eq!(then.version, 2);
    assert_ne!(then.state, now.state);
    let all = sdk.all_events("board", &id, 0).await.expect("all events");
    assert_eq!(all.iter().map(|e| e.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
    let last_time = chrono::DateTime::parse_from_rfc3339(&all[3].recorded_at)
        .expect("recorded_at")
        .to_utc();
    let as_of = sdk
        .state("board", &id, At::Time(last_time))
        .await
        .expect("as of");
    assert_eq!(as_of.version, 4);
    let page = sdk.events("board", &id, 1, Some(2)).await.expect("a page");
    assert_eq!(page.events, all[1..3]);
    assert_eq!(page.next_after, Some(3));
    let newest = sdk
        .events_before("board", &id, None, Some(1))
        .await
        .expect("backward");
    assert_eq!((newest.events[0].seq, newest.next_before), (4, Some(4)));

    // An explicit key: the second send answers the first result and appends nothing.
    let first = sdk
        .command_with_key("board", &id, &add_card(4), "sdk-key-1")
        .await
        .expect("first send");
    let again = sdk
        .command_with_key("board", &id, &add_card(4), "sdk-key-1")
        .await
        .expect("second send");
    assert!(!first.replayed && again.replayed);
    assert_eq!(again.events, first.events);
    assert_eq!(sdk.all_events("board", &id, 0).await.unwrap().len(), 5);

    let stale = CommandBody::new("AddColumn", json!({"name": "Later"}))
        .expecting(ExpectedVersion::Exact(1));
    let conflict = sdk.command("board", &id, &stale).await.unwrap_err();
    assert_eq!(conflict.status(), Some(409));
    let details = conflict.version_conflict().expect("expected and actual");
    assert_eq!(
        (details.expected, details.actual),
        (ExpectedVersion::Exact(1), 5)
    );

    let rejected = sdk.command("board", &id, &add_card(1)).await.unwrap_err();
    assert_eq!(
        (rejected.status(), rejected.code()),
        (Some(422), Some("rejected"))
    );
    assert!(
        rejected.rejection_rule().is_some_and(|r| !r.is_empty()),
        "{rejected}"
    );

    let missing = sdk
        .state("board", &unique_id("board-none"), At::Latest)
        .await
        .unwrap_err();
    assert!(missing.is_not_found(), "{missing}");

    let reader = sdk
        .clone()
        .with_token(worker.token(tests::ACTOR, tests::TENANT, "read"));
    let forbidden = reader
        .command("board", &id, &add_card(9))
        .await
        .unwrap_err();
    assert_eq!(forbidden.code(), Some("forbidden"));
    assert_eq!(forbidden.details().unwrap()["required_scope"], "commands");
    sdk.health().await.expect("healthz");
}

/// The failure an idempotency key exists for: the command ran, its answer was lost. The
/// retry carries the same key, so it answers the original result instead of running again.
#[tokio::test]
async fn a_command_whose_answer_is_lost_is_retried_and_applied_once() {
    let worker = shared();
    let id = worker.client().board_with_cards("board-sdk-lost", 1).await;
    let proxy = Proxy::start(worker.url()).await;
    let sdk = sdk_client(&proxy.url())
        .with_token(worker.default_token())
        .with_retry(quick());

    proxy.lose_next_answer();
    let comment = CommandBody::new(
        "CommentOnCard",
        json!({"card_id": "c1", "author": "sdk", "text": "once"}),
    );
    let result = sdk
        .command("board", &id, &comment)
        .await
        .expect("the retry succeeds");

    assert!(
        result.replayed,
        "the answer came from the idempotency record"
    );
    assert_eq!(result.version, 3);
    assert_eq!(result.events.len(), 1);
    assert!(proxy.accepted() >= 2, "the retry took a new connection");
    let events = log(worker, &id).await;
    let comments = events
        .iter()
        .filter(|e| e.event_type == "CardCommented")
        .count();
    assert_eq!(comments, 1, "applied once: {events:?}");
    assert_eq!(events.last(), result.events.last());
}

/// A command sent while the runtime is down (SIGKILLed, restarting on the same storage)
/// keeps being retried with its key until the runtime is back, and is applied once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_command_is_retried_through_a_crash_and_restart() {
    let mut worker = Worker::start();
    let id = worker.client().board_with_cards("board-sdk-crash", 1).await;
    let proxy = Proxy::start(worker.url()).await;
    let sdk = sdk_client(&proxy.url())
        .with_token(worker.default_token())
        .with_retry(patient());

    tokio::task::block_in_place(|| worker.kill_hard());
    let comment = CommandBody::new(
        "CommentOnCard",
        json!({"card_id": "c1", "author": "sdk", "text": "through a crash"}),
    );
    let sending = tokio::spawn({
        let (sdk, id) = (sdk.clone(), id.clone());
        async move { sdk.command("board", &id, &comment).await }
    });
    // Let a few attempts fail against the dead runtime first.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !sending.is_finished(),
        "nothing can answer while the runtime is down"
    );
    tokio::task::block_in_place(|| worker.restart());
    proxy.set_upstream(worker.url());

    let result = sending.await.unwrap().expect("applied after the restart");
    assert_eq!(result.version, 3);
    assert!(
        proxy.accepted() >= 3,
        "failed attempts, then the one that worked"
    );
    let events = log(&worker, &id).await;
    assert_eq!(events.len(), 3, "{events:?}");
    assert_eq!(events[2].event_type, "CardCommented");
}

/// Connections are cut (and refused for a while) again and again while a writer keeps
/// committing: the subscription reconnects each time and the caller sees every event once.
#[tokio::test]
async fn a_subscription_resumes_across_cut_connections_without_gap_or_duplicate() {
    let worker = shared();
    let direct = worker.client();
    let id = direct.board_with_cards("board-sdk-cuts", 0).await;
    let proxy = Proxy::start(worker.url()).await;
    let sdk = sdk_client(&proxy.url()).with_token(worker.default_token());
    let mut subscription = sdk
        .subscribe_with("board", &id, 0, subscribe_options(AckMode::Auto, quick()))
        .await
        .expect("subscribe");

    const CARDS: usize = 40;
    let writer = tokio::spawn({
        let (direct, id) = (direct.clone(), id.clone());
        async move {
            for n in 1..=CARDS {
                direct
                    .ok(
                        "board",
                        &id,
                        cmd("AddCard", json!({"card_id": format!("c{n}"), "title": "t"})),
                    )
                    .await;
                tokio::time::sleep(Duration::from_millis(15)).await;
            }
        }
    });
    let mut read = Read::default();
    let last = CARDS as u64 + 1;
    let mut cuts = 0;
    while read.events.last().map_or(0, |e| e.seq) < last {
        let next = read.events.last().map_or(0, |e| e.seq) + 1;
        let step = read_until(&mut subscription, next, Duration::from_secs(60)).await;
        read.events.extend(step.events);
        read.reconnects.extend(step.reconnects);
        let seq = read.events.last().map_or(0, |e| e.seq);
        // Cut again only once the previous cut has been noticed (its reconnect reported):
        // events read from before a cut may still be buffered, and a second cut before the
        // first reconnect would be one outage, not two.
        if seq % 8 == 0 && seq < last && read.reconnects.len() >= cuts {
            cuts += 1;
            proxy.cut_all();
            if cuts % 2 == 0 {
                // Down for a while: reconnect attempts fail and back off meanwhile.
                proxy.refuse(true);
                tokio::time::sleep(Duration::from_millis(150)).await;
                proxy.refuse(false);
            }
        }
    }
    writer.await.unwrap();
    // The last cut may come after the last event was already buffered: its reconnect is
    // still to be reported, with no event (a duplicate would fail here).
    while read.reconnects.len() < cuts {
        let update = tokio::time::timeout(Duration::from_secs(30), subscription.next())
            .await
            .unwrap_or_else(|_| panic!("{} reconnects for {cuts} cuts", read.reconnects.len()))
            .expect("no error after the last event");
        match update {
            Update::Reconnected { after } => read.reconnects.push(after),
            Update::CaughtUp { .. } => {}
            other => panic!("after the last event: {other:?}"),
        }
    }

    assert_eq!(read.seqs(), (1..=last).collect::<Vec<_>>());
    assert!(
        read.reconnects.len() >= cuts,
        "{} reconnects for {cuts} cuts",
        read.reconnects.len()
    );
    assert_eq!(
        read.events,
        log(worker, &id).await,
        "the same envelopes as the log"
    );
    expect_no_more_events(&mut subscription, Duration::from_millis(500)).await;
}

/// A manual-ack subscriber that does not ack falls past the server's window and is closed
/// with 4008; the subscription resumes after its last delivered event, and once the caller
/// acks, the rest arrives — each event once.
#[tokio::test]
async fn a_subscription_closed_as_a_slow_consumer_resumes() {
    let worker = Worker::start_with(Options::new().var("WS_ACK_WINDOW", 4));
    let direct = worker.client();
    let id = direct.board_with_cards("board-sdk-slow", 0).await;
    let sdk = worker.sdk();
    let mut subscription = sdk
        .subscribe_with("board", &id, 0, subscribe_options(AckMode::Manual, quick()))
        .await
        .expect("subscribe");
    assert!(matches!(subscription.next().await.unwrap(), Update::Event(e) if e.seq == 1));
    assert_eq!(
        subscription.next().await.unwrap(),
        Update::CaughtUp { version: 1 }
    );

    for n in 1..=11 {
        direct
            .ok(
                "board",
                &id,
                cmd("AddCard", json!({"card_id": format!("c{n}"), "title": "t"})),
            )
            .await;
    }
    // No acks: the server sends what its window allows, then closes with 4008.
    let mut unacked = vec![1];
    let resumed_after = loop {
        let update = tokio::time::timeout(Duration::from_secs(30), subscription.next())
            .await
            .expect("an update")
            .expect("no error");
        match update {
            Update::Event(event) => unacked.push(event.seq),
            Update::Reconnected { after } => break after,
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(unacked, (1..=resumed_after).collect::<Vec<_>>());
    assert!(
        resumed_after <= 5,
        "at most the window past the last ack, got {unacked:?}"
    );

    subscription.ack(resumed_after).unwrap();
    let rest = read_until(&mut subscription, 12, Duration::from_secs(30)).await;
    let mut all = unacked;
    all.extend(rest.seqs());
    assert_eq!(all, (1..=12).collect::<Vec<_>>());
    expect_no_more_events(&mut subscription, Duration::from_millis(500)).await;
}

/// The runtime is SIGKILLed under a live subscription and restarted on the same storage;
/// events are written after the restart. The subscription reconnects through the outage and
/// delivers the rest, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_survives_a_runtime_crash() {
    let mut worker = Worker::start();
    let id = worker
        .client()
        .board_with_cards("board-sdk-crash-ws", 2)
        .await;
    let proxy = Proxy::start(worker.url()).await;
    let sdk = sdk_client(&proxy.url()).with_token(worker.default_token());
    let mut subscription = sdk
        .subscribe_with("board", &id, 0, subscribe_options(AckMode::Auto, patient()))
        .await
        .expect("subscribe");
    let before = read_until(&mut subscription, 3, Duration::from_secs(30)).await;

    let reading = tokio::spawn(async move {
        let after = read_until(&mut subscription, 8, Duration::from_secs(240)).await;
        (subscription, after)
    });
    tokio::task::block_in_place(|| {
        worker.kill_hard();
        worker.restart();
    });
    proxy.set_upstream(worker.url());
    let direct = worker.client();
    for n in 3..=7 {
        direct
            .ok(
                "board",
                &id,
                cmd("AddCard", json!({"card_id": format!("c{n}"), "title": "t"})),
            )
            .await;
    }
    let (mut subscription, after) = reading.await.unwrap();

    let mut seqs = before.seqs();
    seqs.extend(after.seqs());
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
    assert!(
        after.reconnects.first().is_some_and(|&n| n == 3),
        "{:?}",
        after.reconnects
    );
    let mut events = before.events;
    events.extend(after.events);
    assert_eq!(events, log(&worker, &id).await);
    expect_no_more_events(&mut subscription, Duration::from_millis(500)).await;
}

#[tokio::test]
async fn a_subscription_is_refused_without_valid_credentials() {
    let worker = shared();
    let id = worker.client().board_with_cards("board-sdk-auth", 0).await;
    let forged = sdk_client(worker.url()).with_token("not-a-jwt");
    let error = forged.subscribe("board", &id, 0).await.unwrap_err();
    assert_eq!(
        (error.status(), error.code()),
        (Some(401), Some("unauthorized"))
    );
    let writer =
        sdk_client(worker.url()).with_token(worker.token(tests::ACTOR, tests::TENANT, "commands"));
    let error = writer.subscribe("board", &id, 0).await.unwrap_err();
    assert_eq!(error.code(), Some("forbidden"));
}

/// The keepalive relies on the runtime answering pings on hibernating sockets: a quiet
/// subscription pinging every 2 s stays on its first connection.
#[tokio::test]
async fn a_quiet_subscription_stays_connected_on_keepalive_pings() {
    let worker = shared();
    let id = worker.client().board_with_cards("board-sdk-quiet", 0).await;
    let options = SubscribeOptions {
        keepalive: Some(Duration::from_secs(2)),
        ..SubscribeOptions::default()
    };
    let mut subscription = worker
        .sdk()
        .subscribe_with("board", &id, 0, options)
        .await
        .expect("subscribe");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(7);
    let mut updates = Vec::new();
    while let Ok(update) = tokio::time::timeout_at(deadline, subscription.next()).await {
        updates.push(update.expect("no error"));
    }
    assert_eq!(
        updates.len(),
        2,
        "the event and caught_up, no reconnect: {updates:?}"
    );
    assert_eq!(updates[1], Update::CaughtUp { version: 1 });
    assert!(subscription.is_connected());
}
