//! Agent loops against workerd: the SDK's `Agent` over a real consumer group.
//!
//! * A handler that fails on one event: the event is retried up to the group's limit,
//!   parked, visible in the group's status and parked listing, and succeeds when replayed
//!   after the fix; other partitions kept flowing meanwhile, and its own partition's later
//!   events waited for it, as the ordering guarantee says.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use client::agent::{Agent, AgentOptions, Context, HandlerError};
use client::{EventEnvelope, GroupSettings, Replay};
use serde_json::{Value, json};
use tests::{Client, Worker, cmd, unique_id};

/// Waits until `done` answers `Some`, at most `limit`; panics with `what` otherwise.
async fn until<T, F, Fut>(what: &str, limit: Duration, mut done: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(value) = done().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Submits feedback `ids[i]` with `text(i)`; answers each one's `FeedbackSubmitted` envelope.
async fn submit(c: &Client, ids: &[String], text: impl Fn(usize) -> String) -> Vec<Value> {
    let mut events = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let done = c
            .ok(
                "feedback",
                id,
                cmd(
                    "SubmitFeedback",
                    json!({"text": text(i), "source": "web", "severity": "high"}),
                ),
            )
            .await;
        events.push(done["events"][0].clone());
    }
    events
}

/// What the poisoned handler saw: per aggregate, each delivery's attempt, partition and
/// time, in the order handled.
#[derive(Debug, Clone)]
struct Seen {
    aggregate_id: String,
    partition: u32,
    offset: u64,
    attempt: u32,
    at: Instant,
    ok: bool,
}

#[tokio::test]
async fn a_failing_event_is_retried_parked_and_replayed_while_other_partitions_flow() {
    let worker = Worker::start();
    let c = worker.client();
    let ids: Vec<String> = (0..40).map(|i| unique_id(&format!("poison{i}"))).collect();
    submit(&c, &ids, |i| format!("item {i}")).await;
    let poison = ids[17].clone();

    let sdk = worker.sdk();
    let group = "poisoned";
    assert!(
        sdk.create_group(
            group,
            &GroupSettings::default()
                .aggregate_type("feedback")
                .types(["FeedbackSubmitted"])
                .max_attempts(3)
                .retry_backoff_ms(1000)
                .lease_ms(10_000),
        )
        .await
        .unwrap(),
        "created"
    );

    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let fixed = Arc::new(AtomicBool::new(false));
    let agent = {
        let (seen, fixed, poison) = (Arc::clone(&seen), Arc::clone(&fixed), poison.clone());
        Agent::new(sdk.clone(), group, "only")
            .options(AgentOptions {
                poll_wait: Duration::from_secs(1),
                ..AgentOptions::default()
            })
            .handler(move |ctx: Context, event: EventEnvelope| {
                let ok = event.aggregate_id != poison || fixed.load(Ordering::SeqCst);
                seen.lock().unwrap().push(Seen {
                    aggregate_id: event.aggregate_id.clone(),
                    partition: ctx.position().partition,
                    offset: ctx.position().offset,
                    attempt: ctx.attempt(),
                    at: Instant::now(),
                    ok,
                });
                async move {
                    if ok {
                        Ok(())
                    } else {
                        Err(HandlerError::retry("poisoned on purpose"))
                    }
                }
            })
    };
    let stats = agent.stats();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(agent.run_until(async {
        let _ = stopped.await;
    }));

    // Parked after its third attempt, visible in the status and the parked listing.
    let status = until(
        "the poisoned event to be parked",
        Duration::from_secs(60),
        || async {
            let status = sdk.group(group).await.unwrap();
            (status.parked == 1).then_some(status)
        },
    )
    .await;
    assert_eq!(status.settings.max_attempts, 3);
    let parked = sdk.parked(group).await.unwrap();
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].attempts, 3);
    assert_eq!(parked[0].reason.as_deref(), Some("poisoned on purpose"));
    let parked_event = parked[0].event.clone().expect("the parked event");
    assert_eq!(parked_event.aggregate_id, poison);

    // Everything else is handled (the parked event no longer blocks its partition).
    until("every other item", Duration::from_secs(60), || async {
        let handled: BTreeSet<String> = seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.ok)
            .map(|s| s.aggregate_id.clone())
            .collect();
        (handled.len() == ids.len() - 1).then_some(())
    })
    .await;
    let log = seen.lock().unwrap().clone();
    let attempts: Vec<u32> = log
        .iter()
        .filter(|s| s.aggregate_id == poison)
        .map(|s| s.attempt)
        .collect();
    assert_eq!(attempts, [1, 2, 3], "retried up to the limit, then parked");
    let tries: Vec<&Seen> = log.iter().filter(|s| s.aggregate_id == poison).collect();
    let (first_try, last_try) = (tries[0].at, tries[2].at);
    assert!(
        last_try - first_try >= Duration::from_millis(2500),
        "the server's backoff (1 s, then 2 s) spaced the attempts: {:?}",
        last_try - first_try
    );
    let poisoned = (tries[0].partition, tries[0].offset);
    for other in log.iter().filter(|s| s.aggregate_id != poison) {
        if other.partition != poisoned.0 {
            // Other partitions flowed while the poisoned event was backing off.
            assert!(
                other.at < last_try,
                "{} on partition {} waited for the poisoned event",
                other.aggregate_id,
                other.partition
            );
        } else if other.offset > poisoned.1 {
            // Its own partition's later events waited until it was settled (parked).
            assert!(
                other.at > last_try,
                "{} overtook the retried event in its partition",
                other.aggregate_id
            );
        }
    }
    let handled_once: HashMap<&str, usize> =
        log.iter()
            .filter(|s| s.ok)
            .fold(HashMap::new(), |mut counts, s| {
                *counts.entry(s.aggregate_id.as_str()).or_default() += 1;
                counts
            });
    assert!(handled_once.values().all(|n| *n == 1), "{handled_once:?}");

    // After the fix, a replay delivers it again with a fresh set of attempts, and it is done.
    fixed.store(true, Ordering::SeqCst);
    assert_eq!(sdk.replay_parked(group, &Replay::All).await.unwrap(), 1);
    until(
        "the replayed event to be handled",
        Duration::from_secs(30),
        || async {
            let last = seen.lock().unwrap().last().cloned()?;
            (last.aggregate_id == poison && last.ok).then_some(())
        },
    )
    .await;
    let status = until("the group to settle", Duration::from_secs(30), || async {
        let status = sdk.group(group).await.unwrap();
        (status.lag() == 0 && status.parked == 0).then_some(status)
    })
    .await;
    assert!(status.partitions.iter().all(|p| p.in_flight == 0));
    let replayed = seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        replayed.attempt, 1,
        "a replay starts a fresh set of attempts"
    );

    let _ = stop.send(());
    let counts = running.await.unwrap().unwrap();
    assert_eq!(counts.acked, ids.len() as u64);
    assert_eq!((counts.retried, counts.parked), (2, 1));
    assert_eq!(counts.delivered, ids.len() as u64 + 3);
    assert_eq!(stats.snapshot(), counts);
}
