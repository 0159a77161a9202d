//! Tenant isolation: the token's `tenant` namespaces everything, so the same `board/{id}`
//! in two tenants is two aggregates. Neither sees the other's commands (including their
//! idempotency keys), state, time travel, event listings or live events.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use tests::{Client, Worker, cmd, event_ids, shared, unique_id};

/// How long a subscriber must stay silent to count as having received nothing.
const QUIET: Duration = Duration::from_millis(500);

fn tenant_client(worker: &Worker, actor: &str, tenant: &str) -> Client {
    Client::new(worker.url()).with_token(Some(worker.token(actor, tenant, "commands read")))
}

#[tokio::test]
async fn the_same_aggregate_in_two_tenants_never_crosses() {
    let worker = shared();
    let acme = tenant_client(worker, "ana", "acme");
    let globex = tenant_client(worker, "gil", "globex");
    let id = unique_id("board-tenant");

    // Both subscribe before either tenant has written anything.
    let mut acme_live = acme.subscribe("board", &id, None).await;
    let mut globex_live = globex.subscribe("board", &id, None).await;
    assert_eq!(acme_live.caught_up().await, 0);
    assert_eq!(globex_live.caught_up().await, 0);

    // Acme writes, the second command under an idempotency key.
    let created = acme
        .ok("board", &id, cmd("CreateBoard", json!({"title": "Acme's"})))
        .await;
    let add = cmd(
        "AddCard",
        json!({"card_id": "shared-card", "title": "Acme"}),
    );
    let acme_added = acme
        .command_with_key("board", &id, &add, Some("same-key"))
        .await
        .expect(200);
    let acme_log = vec![
        created["events"][0].clone(),
        acme_added["events"][0].clone(),
    ];
    assert_eq!(acme_live.next_events(2).await, acme_log);
    globex_live.expect_silence(QUIET).await;

    // For Globex the aggregate has no events: no state, no past, no listing.
    for query in ["", "?at_version=1", "?at_version=2"] {
        globex
            .state("board", &id, query)
            .await
            .expect_error(404, "not_found");
    }
    for query in ["", "?direction=backward", "?after=1"] {
        globex
            .events("board", &id, query)
            .await
            .expect_error(404, "not_found");
    }
    // Acme's key means nothing to Globex: the command is decided against Globex's board,
    // which does not exist yet (not replayed from Acme's result).
    let refused = globex
        .command_with_key("board", &id, &add, Some("same-key"))
        .await;
    assert_eq!(refused.header("idempotent-replayed"), None);
    assert_eq!(
        refused.expect_error(422, "rejected")["rule"],
        "board_not_found"
    );
    // Acme's board does not exist for Globex's expected-version checks either.
    let conflict = globex
        .command(
            "board",
            &id,
            &json!({"type": "AddCard", "data": {"card_id": "x", "title": "t"}, "expected_version": 2}),
        )
        .await;
    assert_eq!(
        conflict.expect_error(409, "version_conflict")["actual"],
        0,
        "Globex sees Acme's version"
    );

    // Globex creates its own board of the same id: version 1, not 3, and the same card id
    // and key are free there.
    let globex_created = globex
        .ok(
            "board",
            &id,
            json!({"type": "CreateBoard", "data": {"title": "Globex's"}, "expected_version": "none"}),
        )
        .await;
    assert_eq!(globex_created["version"], 1);
    let globex_add = cmd(
        "AddCard",
        json!({"card_id": "shared-card", "title": "Globex"}),
    );
    let first = globex
        .command_with_key("board", &id, &globex_add, Some("same-key"))
        .await;
    assert_eq!(
        first.header("idempotent-replayed"),
        None,
        "Acme's idempotency key replayed in Globex"
    );
    let globex_added = first.expect(200);
    assert_eq!(globex_added["version"], 2);
    let globex_log = vec![
        globex_created["events"][0].clone(),
        globex_added["events"][0].clone(),
    ];
    assert_eq!(globex_live.next_events(2).await, globex_log);
    acme_live.expect_silence(QUIET).await;

    // More live traffic both ways, interleaved: each subscriber sees only its tenant's.
    let mut acme_more = Vec::new();
    let mut globex_more = Vec::new();
    for n in 0..3 {
        let card = json!({"card_id": format!("live-{n}"), "title": "t"});
        acme_more
            .push(acme.ok("board", &id, cmd("AddCard", card.clone())).await["events"][0].clone());
        globex_more.push(globex.ok("board", &id, cmd("AddCard", card)).await["events"][0].clone());
    }
    assert_eq!(acme_live.next_events(3).await, acme_more);
    assert_eq!(globex_live.next_events(3).await, globex_more);
    acme_live.expect_silence(QUIET).await;
    globex_live.expect_silence(QUIET).await;
    let acme_log: Vec<Value> = acme_log.into_iter().chain(acme_more).collect();
    let globex_log: Vec<Value> = globex_log.into_iter().chain(globex_more).collect();

    // Listings, state, time travel and replays: each tenant its own.
    assert_eq!(acme.all_events("board", &id).await, acme_log);
    assert_eq!(globex.all_events("board", &id).await, globex_log);
    let acme_ids: BTreeSet<String> = event_ids(&acme_log).into_iter().collect();
    assert!(
        event_ids(&globex_log)
            .iter()
            .all(|id| !acme_ids.contains(id)),
        "an event id is shared between tenants"
    );
    assert!(acme_log.iter().all(|e| e["actor"] == "ana"));
    assert!(globex_log.iter().all(|e| e["actor"] == "gil"));
    let backward = globex
        .events("board", &id, "?direction=backward&limit=1")
        .await
        .expect(200);
    assert_eq!(backward["events"][0], globex_log[4]);

    let acme_state = acme.state("board", &id, "").await.expect(200);
    let globex_state = globex.state("board", &id, "").await.expect(200);
    assert_eq!(acme_state["version"], 5);
    assert_eq!(globex_state["version"], 5);
    assert_eq!(acme_state["state"]["title"], "Acme's");
    assert_eq!(globex_state["state"]["title"], "Globex's");
    assert_eq!(acme_state["state"]["cards"]["shared-card"]["title"], "Acme");
    assert_eq!(
        globex_state["state"]["cards"]["shared-card"]["title"],
        "Globex"
    );
    assert_eq!(
        acme.state("board", &id, "?at_version=1").await.expect(200)["state"]["title"],
        "Acme's"
    );
    assert_eq!(
        globex
            .state("board", &id, "?at_version=1")
            .await
            .expect(200)["state"]["title"],
        "Globex's"
    );

    let acme_again = acme
        .command_with_key("board", &id, &add, Some("same-key"))
        .await;
    assert_eq!(
        acme_again.header("idempotent-replayed").as_deref(),
        Some("true")
    );
    assert_eq!(acme_again.expect(200), acme_added);
    let globex_again = globex
        .command_with_key("board", &id, &globex_add, Some("same-key"))
        .await;
    assert_eq!(
        globex_again.header("idempotent-replayed").as_deref(),
        Some("true")
    );
    assert_eq!(globex_again.expect(200), globex_added);

    // A reconnecting subscriber replays its own tenant's log only.
    let mut acme_replay = acme.subscribe("board", &id, Some(0)).await;
    assert_eq!(acme_replay.next_events(5).await, acme_log);
    assert_eq!(acme_replay.caught_up().await, 5);
    let mut globex_replay = globex.subscribe("board", &id, Some(0)).await;
    assert_eq!(globex_replay.next_events(5).await, globex_log);
    assert_eq!(globex_replay.caught_up().await, 5);

    assert_eq!(acme.footprint("board", &id).await, (5, 5));
    assert_eq!(globex.footprint("board", &id).await, (5, 5));
    // The tenant the default client carries has neither.
    assert_eq!(worker.client().footprint("board", &id).await, (0, 0));
    acme_live.expect_silence(QUIET).await;
    globex_live.expect_silence(QUIET).await;
}
