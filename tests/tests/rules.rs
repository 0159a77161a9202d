//! Every domain rule of the reference aggregates answers 422 `rejected`, names its rule,
//! and writes nothing: the version and the event count are the same before and after,
//! and a live subscriber sees no event.

use std::collections::BTreeSet;

use serde_json::{Value, json};
use tests::{Client, cmd, shared, unique_id};

/// Records which rules were exercised, to check that none is left out.
#[derive(Default)]
struct Seen(BTreeSet<String>);

impl Seen {
    /// Sends `body`, which must be refused by `rule`, and checks that nothing changed.
    async fn reject(
        &mut self,
        c: &Client,
        aggregate_type: &str,
        id: &str,
        body: Value,
        rule: &str,
    ) {
        let before = c.footprint(aggregate_type, id).await;
        let reply = c.command(aggregate_type, id, &body).await;
        let error = reply.expect_error(422, "rejected");
        assert_eq!(
            error["rule"], rule,
            "{body} was refused by another rule: {error}"
        );
        let after = c.footprint(aggregate_type, id).await;
        assert_eq!(
            before, after,
            "{body} was rejected but changed (version, event count)"
        );
        self.0.insert(rule.to_owned());
    }
}

fn chars(n: usize) -> String {
    "x".repeat(n)
}

#[tokio::test]
async fn every_board_rule_rejects_with_422_and_writes_nothing() {
    let c = shared().client();
    let mut seen = Seen::default();

    // A board with a full WIP-limited column, a live card and an archived one.
    let id = unique_id("board-rules");
    c.ok("board", &id, cmd("CreateBoard", json!({"title": "Rules"})))
        .await;
    c.ok(
        "board",
        &id,
        cmd("AddColumn", json!({"name": "Limited", "wip_limit": 1})),
    )
    .await;
    c.ok(
        "board",
        &id,
        cmd(
            "AddCard",
            json!({"card_id": "c1", "title": "In limited", "column": "Limited"}),
        ),
    )
    .await;
    c.ok(
        "board",
        &id,
        cmd("AddCard", json!({"card_id": "c2", "title": "Live"})),
    )
    .await;
    c.ok(
        "board",
        &id,
        cmd("AddCard", json!({"card_id": "c3", "title": "Archived"})),
    )
    .await;
    c.ok("board", &id, cmd("ArchiveCard", json!({"card_id": "c3"})))
        .await;
    let mut socket = c.subscribe("board", &id, Some(6)).await;
    assert_eq!(socket.caught_up().await, 6);

    let labels_21: Vec<String> = (0..21).map(|i| format!("l{i}")).collect();
    let cases: Vec<(Value, &str)> = vec![
        (
            cmd("CreateBoard", json!({"title": "Again"})),
            "board_already_exists",
        ),
        (cmd("AddColumn", json!({"name": ""})), "invalid_column_name"),
        (
            cmd("AddColumn", json!({"name": "  \t"})),
            "invalid_column_name",
        ),
        (
            cmd("AddColumn", json!({"name": chars(101)})),
            "invalid_column_name",
        ),
        (
            cmd("AddColumn", json!({"name": "Todo"})),
            "column_already_exists",
        ),
        (
            cmd("AddColumn", json!({"name": "Fresh", "wip_limit": 0})),
            "invalid_wip_limit",
        ),
        (
            cmd("SetWipLimit", json!({"column": "Nope", "limit": 3})),
            "column_not_found",
        ),
        (
            cmd("SetWipLimit", json!({"column": "Todo", "limit": 0})),
            "invalid_wip_limit",
        ),
        (
            cmd("AddCard", json!({"card_id": "", "title": "t"})),
            "invalid_card_id",
        ),
        (
            cmd("AddCard", json!({"card_id": chars(101), "title": "t"})),
            "invalid_card_id",
        ),
        (
            cmd("AddCard", json!({"card_id": "n1", "title": ""})),
            "invalid_title",
        ),
        (
            cmd("AddCard", json!({"card_id": "n1", "title": " \n "})),
            "invalid_title",
        ),
        (
            cmd("AddCard", json!({"card_id": "n1", "title": chars(201)})),
            "invalid_title",
        ),
        (
            cmd(
                "AddCard",
                json!({"card_id": "n1", "title": "界".repeat(201)}),
            ),
            "invalid_title",
        ),
        (
            cmd(
                "AddCard",
                json!({"card_id": "n1", "title": "t", "labels": labels_21}),
            ),
            "invalid_labels",
        ),
        (
            cmd(
                "AddCard",
                json!({"card_id": "n1", "title": "t", "labels": ["bug", "bug"]}),
            ),
            "invalid_labels",
        ),
        (
            cmd(
                "AddCard",
                json!({"card_id": "n1", "title": "t", "labels": [""]}),
            ),
            "invalid_labels",
        ),
        (
            cmd(
                "AddCard",
                json!({"card_id": "n1", "title": "t", "labels": [chars(51)]}),
            ),
            "invalid_labels",
        ),
        (
            cmd("AddCard", json!({"card_id": "c2", "title": "dup"})),
            "card_already_exists",
        ),
        (
            cmd(
                "AddCard",
                json!({"card_id": "c3", "title": "dup of archived"}),
            ),
            "card_already_exists",
        ),
        (
            cmd(
                "AddCard",
                json!({"card_id": "n1", "title": "t", "column": "Nope"}),
            ),
            "column_not_found",
        ),
        (
            cmd(
                "AddCard",
                json!({"card_id": "n1", "title": "t", "column": "Limited"}),
            ),
            "wip_limit_reached",
        ),
        (
            cmd("MoveCard", json!({"card_id": "c2", "to_column": "Limited"})),
            "wip_limit_reached",
        ),
        (
            cmd("MoveCard", json!({"card_id": "c2", "to_column": "Nope"})),
            "column_not_found",
        ),
        (
            cmd("MoveCard", json!({"card_id": "ghost", "to_column": "Todo"})),
            "card_not_found",
        ),
        (
            cmd("MoveCard", json!({"card_id": "c3", "to_column": "Todo"})),
            "card_archived",
        ),
        (
            cmd("EditCard", json!({"card_id": "c3", "title": "new"})),
            "card_archived",
        ),
        (cmd("EditCard", json!({"card_id": "c2"})), "nothing_to_edit"),
        (
            cmd("EditCard", json!({"card_id": "c2", "title": ""})),
            "invalid_title",
        ),
        (
            cmd("EditCard", json!({"card_id": "c2", "labels": ["a", "a"]})),
            "invalid_labels",
        ),
        (
            cmd("EditCard", json!({"card_id": "ghost", "title": "new"})),
            "card_not_found",
        ),
        (
            cmd(
                "CommentOnCard",
                json!({"card_id": "c3", "author": "ana", "text": "hi"}),
            ),
            "card_archived",
        ),
        (
            cmd(
                "CommentOnCard",
                json!({"card_id": "c2", "author": "", "text": "hi"}),
            ),
            "invalid_author",
        ),
        (
            cmd(
                "CommentOnCard",
                json!({"card_id": "c2", "author": chars(101), "text": "hi"}),
            ),
            "invalid_author",
        ),
        (
            cmd(
                "CommentOnCard",
                json!({"card_id": "c2", "author": "ana", "text": " "}),
            ),
            "invalid_comment",
        ),
        (
            cmd(
                "CommentOnCard",
                json!({"card_id": "c2", "author": "ana", "text": chars(4001)}),
            ),
            "invalid_comment",
        ),
        (
            cmd(
                "CommentOnCard",
                json!({"card_id": "ghost", "author": "ana", "text": "hi"}),
            ),
            "card_not_found",
        ),
        (
            cmd("ArchiveCard", json!({"card_id": "c3"})),
            "card_archived",
        ),
        (
            cmd("ArchiveCard", json!({"card_id": "ghost"})),
            "card_not_found",
        ),
    ];
    for (body, rule) in cases {
        seen.reject(&c, "board", &id, body, rule).await;
    }
    // The WIP rule counts only non-archived cards, and moving out of a full column is fine:
    // after c1 leaves `Limited`, c2 may enter it.
    c.ok(
        "board",
        &id,
        cmd("MoveCard", json!({"card_id": "c1", "to_column": "Todo"})),
    )
    .await;
    c.ok(
        "board",
        &id,
        cmd("MoveCard", json!({"card_id": "c2", "to_column": "Limited"})),
    )
    .await;
    // The subscriber saw none of the rejected commands: the next frames are these two moves.
    let moved = socket.next_events(2).await;
    assert_eq!(tests::seqs(&moved), vec![7, 8]);
    assert_eq!(moved[0]["type"], "CardMoved");

    // A board that was never created: everything but a valid CreateBoard is refused, and
    // it still has no events afterwards.
    let ghost = unique_id("board-ghost");
    for body in [
        cmd("AddCard", json!({"card_id": "c1", "title": "t"})),
        cmd("AddColumn", json!({"name": "A"})),
        cmd("MoveCard", json!({"card_id": "c1", "to_column": "Todo"})),
        cmd("ArchiveCard", json!({"card_id": "c1"})),
    ] {
        seen.reject(&c, "board", &ghost, body, "board_not_found")
            .await;
    }
    seen.reject(
        &c,
        "board",
        &ghost,
        cmd("CreateBoard", json!({"title": ""})),
        "invalid_title",
    )
    .await;
    seen.reject(
        &c,
        "board",
        &ghost,
        cmd("CreateBoard", json!({"title": chars(201)})),
        "invalid_title",
    )
    .await;
    seen.reject(
        &c,
        "board",
        &ghost,
        cmd("CreateBoard", json!({"title": "t", "columns": ["A", "A"]})),
        "column_already_exists",
    )
    .await;
    seen.reject(
        &c,
        "board",
        &ghost,
        cmd("CreateBoard", json!({"title": "t", "columns": ["A", " "]})),
        "invalid_column_name",
    )
    .await;
    c.state("board", &ghost, "")
        .await
        .expect_error(404, "not_found");

    // Boundaries are inclusive: 200 characters (even multi-byte ones) is a valid title.
    let edge = unique_id("board-edge");
    c.ok(
        "board",
        &edge,
        cmd(
            "CreateBoard",
            json!({"title": "界".repeat(200), "columns": []}),
        ),
    )
    .await;
    // A board without columns has nowhere to put a card.
    seen.reject(
        &c,
        "board",
        &edge,
        cmd("AddCard", json!({"card_id": "c1", "title": "t"})),
        "column_not_found",
    )
    .await;
    c.ok(
        "board",
        &edge,
        cmd("AddColumn", json!({"name": chars(100)})),
    )
    .await;
    c.ok(
        "board",
        &edge,
        cmd(
            "AddCard",
            json!({"card_id": chars(100), "title": chars(200)}),
        ),
    )
    .await;

    // The caps that bound a board's state: columns (at creation and when added)...
    let too_wide: Vec<String> = (0..=domain::board::MAX_COLUMNS)
        .map(|i| format!("C{i}"))
        .collect();
    seen.reject(
        &c,
        "board",
        &ghost,
        cmd("CreateBoard", json!({"title": "t", "columns": too_wide})),
        "too_many_columns",
    )
    .await;
    let wide = unique_id("board-wide");
    let columns = &too_wide[..domain::board::MAX_COLUMNS];
    c.ok(
        "board",
        &wide,
        cmd("CreateBoard", json!({"title": "Wide", "columns": columns})),
    )
    .await;
    seen.reject(
        &c,
        "board",
        &wide,
        cmd("AddColumn", json!({"name": "One more"})),
        "too_many_columns",
    )
    .await;
    // ...and cards, archived ones included (8 writers fill a board to the cap).
    let full = unique_id("board-full");
    c.ok("board", &full, cmd("CreateBoard", json!({"title": "Full"})))
        .await;
    let writers = (0..8).map(|w| {
        let (c, full) = (&c, &full);
        async move {
            for i in (w..domain::board::MAX_CARDS).step_by(8) {
                let card = cmd("AddCard", json!({"card_id": format!("c{i}"), "title": "t"}));
                c.ok("board", full, card).await;
            }
        }
    });
    futures_util::future::join_all(writers).await;
    c.ok("board", &full, cmd("ArchiveCard", json!({"card_id": "c0"})))
        .await;
    seen.reject(
        &c,
        "board",
        &full,
        cmd("AddCard", json!({"card_id": "one-more", "title": "t"})),
        "board_full",
    )
    .await;

    let all: BTreeSet<String> = domain::board::rules::ALL
        .iter()
        .map(|r| r.to_string())
        .collect();
    let missing: Vec<&String> = all.difference(&seen.0).collect();
    assert!(
        missing.is_empty(),
        "board rules without an end-to-end test: {missing:?}"
    );
}

#[tokio::test]
async fn every_feedback_rule_rejects_with_422_and_writes_nothing() {
    let c = shared().client();
    let mut seen = Seen::default();
    let submit = |text: &str| cmd("SubmitFeedback", json!({"text": text, "source": "web"}));
    let triage = json!({"board_id": "triage", "card_id": "fb-1", "labels": ["perf"]});

    let never = unique_id("feedback-never");
    seen.reject(
        &c,
        "feedback",
        &never,
        cmd("TriageFeedback", triage.clone()),
        "feedback_not_found",
    )
    .await;
    seen.reject(
        &c,
        "feedback",
        &never,
        cmd("CloseFeedback", json!({"reason": "spam"})),
        "feedback_not_found",
    )
    .await;
    seen.reject(&c, "feedback", &never, submit(""), "invalid_text")
        .await;
    seen.reject(&c, "feedback", &never, submit(&chars(5001)), "invalid_text")
        .await;
    seen.reject(
        &c,
        "feedback",
        &never,
        cmd("SubmitFeedback", json!({"text": "hi", "source": " "})),
        "invalid_source",
    )
    .await;
    seen.reject(
        &c,
        "feedback",
        &never,
        cmd(
            "SubmitFeedback",
            json!({"text": "hi", "source": chars(101)}),
        ),
        "invalid_source",
    )
    .await;

    let open = unique_id("feedback-open");
    c.ok("feedback", &open, submit("Login is slow")).await;
    seen.reject(
        &c,
        "feedback",
        &open,
        submit("again"),
        "feedback_already_submitted",
    )
    .await;
    for (data, rule) in [
        (
            json!({"board_id": "", "card_id": "fb-1", "labels": []}),
            "invalid_board_id",
        ),
        (
            json!({"board_id": chars(101), "card_id": "fb-1", "labels": []}),
            "invalid_board_id",
        ),
        (
            json!({"board_id": "triage", "card_id": " ", "labels": []}),
            "invalid_card_id",
        ),
        (
            json!({"board_id": "triage", "card_id": chars(101), "labels": []}),
            "invalid_card_id",
        ),
        (
            json!({"board_id": "triage", "card_id": "fb-1", "labels": ["a", "a"]}),
            "invalid_labels",
        ),
    ] {
        seen.reject(&c, "feedback", &open, cmd("TriageFeedback", data), rule)
            .await;
    }
    seen.reject(
        &c,
        "feedback",
        &open,
        cmd("CloseFeedback", json!({"reason": ""})),
        "invalid_reason",
    )
    .await;
    seen.reject(
        &c,
        "feedback",
        &open,
        cmd("CloseFeedback", json!({"reason": chars(1001)})),
        "invalid_reason",
    )
    .await;
    // Evidence that says "linked" must name what it linked to.
    let mut unfounded = triage.clone();
    unfounded["evidence"] = json!({"decision": "linked_to_existing_card"});
    seen.reject(
        &c,
        "feedback",
        &open,
        cmd("TriageFeedback", unfounded),
        "invalid_evidence",
    )
    .await;
    c.ok("feedback", &open, cmd("TriageFeedback", triage.clone()))
        .await;
    seen.reject(
        &c,
        "feedback",
        &open,
        cmd("TriageFeedback", triage.clone()),
        "feedback_already_triaged",
    )
    .await;
    // Closing is allowed from triaged; after that, nothing is.
    c.ok(
        "feedback",
        &open,
        cmd("CloseFeedback", json!({"reason": "fixed"})),
    )
    .await;
    seen.reject(
        &c,
        "feedback",
        &open,
        cmd("TriageFeedback", triage.clone()),
        "feedback_closed",
    )
    .await;
    seen.reject(
        &c,
        "feedback",
        &open,
        cmd("CloseFeedback", json!({"reason": "again"})),
        "feedback_closed",
    )
    .await;
    assert_eq!(c.footprint("feedback", &open).await, (3, 3));

    let all: BTreeSet<String> = domain::feedback::rules::ALL
        .iter()
        .map(|r| r.to_string())
        .collect();
    let missing: Vec<&String> = all.difference(&seen.0).collect();
    assert!(
        missing.is_empty(),
        "feedback rules without an end-to-end test: {missing:?}"
    );
}
