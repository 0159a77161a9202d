//! The knowledge base against workerd: `GET /v1/knowledge/search` finds cards, feedback,
//! error groups and development events by realistic queries (stemming, phrases, kind
//! filters), ranks what matches best first with highlighted snippets and links back to the
//! source aggregate, answers only the caller's tenant, and reflects a command at once when
//! given its consistency token.

use serde_json::{Value, json};
use tests::{Client, Worker, unique_id};

fn tenant_client(worker: &Worker, tenant: &str) -> Client {
    Client::new(worker.url()).with_token(Some(worker.token("e2e", tenant, "commands read")))
}

async fn search(c: &Client, query: &str) -> Value {
    c.get(&format!("/v1/knowledge/search?{query}"))
        .await
        .expect(200)
}

fn doc_ids(answer: &Value) -> Vec<String> {
    answer["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results in {answer}"))
        .iter()
        .map(|r| r["doc_id"].as_str().unwrap().to_owned())
        .collect()
}

/// A board with three cards and two feedback items; returns the consistency token of each
/// feedback item's command (a token waits for its own aggregate only).
async fn seed(c: &Client, board: &str) -> Vec<String> {
    c.ok(
        "board",
        board,
        json!({"type": "CreateBoard", "data": {"title": "Product"}}),
    )
    .await;
    for (card, title) in [
        ("checkout", "Checkout button does nothing on mobile Safari"),
        (
            "dark-mode",
            "Dark mode colours are wrong in the settings page",
        ),
        (
            "csv",
            "Exporting a board to CSV crashes with unicode titles",
        ),
    ] {
        c.ok(
            "board",
            board,
            json!({"type": "AddCard", "data": {"card_id": card, "title": title, "labels": ["bug"]}}),
        )
        .await;
    }
    c.ok(
        "board",
        board,
        json!({"type": "CommentOnCard", "data": {"card_id": "csv", "author": "sam", "text": "Happens with emoji in a card title too"}}),
    )
    .await;
    let feedback = [
        (
            "fb-1",
            "The export crashed when my board had Japanese titles",
        ),
        (
            "fb-2",
            "Love the new dark mode, but the contrast is too low",
        ),
    ];
    let mut tokens = Vec::new();
    for (id, text) in feedback {
        let answer = c
            .ok(
                "feedback",
                &format!("{board}-{id}"),
                json!({"type": "SubmitFeedback", "data": {"text": text, "source": "widget"}}),
            )
            .await;
        tokens.push(answer["consistency_token"].as_str().unwrap().to_owned());
    }
    tokens
}

#[tokio::test]
async fn realistic_queries_find_the_right_documents_ranked_with_snippets_and_links() {
    let worker = tests::shared();
    let tenant = unique_id("kb");
    let c = tenant_client(worker, &tenant);
    let board = unique_id("board");
    let feedback_tokens = seed(&c, &board).await;
    // The board's last command: wait for it, so every card is in.
    let board_version = c.version("board", &board).await;
    let board_token = format!("board/{board}@{board_version}");

    // A word of a title: the card first, with a highlighted title and a link to its board.
    let answer = search(&c, &format!("q=checkout&consistency={board_token}")).await;
    assert_eq!(answer["mode"], "keyword");
    let first = &answer["results"][0];
    assert_eq!(
        first["doc_id"],
        format!("card:{board}:checkout"),
        "{answer}"
    );
    assert_eq!(first["kind"], "card");
    assert_eq!(first["rank"], 1);
    assert!(
        first["title"]
            .as_str()
            .unwrap()
            .contains("<mark>Checkout</mark>"),
        "{first}"
    );
    assert_eq!(
        first["body"]["link"],
        format!("/v1/aggregates/board/{board}")
    );
    assert_eq!(first["body"]["source"]["aggregate_type"], "board");
    assert_eq!(first["body"]["status"], "open");

    // Stemming: "crashing exports" finds "Exporting … crashes" and "export crashed" (both
    // feedback items folded first: each is its own aggregate with its own token).
    search(&c, &format!("q=x&consistency={}", feedback_tokens[0])).await;
    let answer = search(
        &c,
        &format!("q=crashing%20exports&consistency={}", feedback_tokens[1]),
    )
    .await;
    let ids = doc_ids(&answer);
    assert!(ids.contains(&format!("card:{board}:csv")), "{ids:?}");
    assert!(ids.contains(&format!("feedback:{board}-fb-1")), "{ids:?}");
    assert!(!ids.contains(&format!("card:{board}:checkout")), "{ids:?}");

    // A comment's words find its card.
    let ids = doc_ids(&search(&c, "q=emoji").await);
    assert_eq!(ids, [format!("card:{board}:csv")]);

    // A phrase matches the words together, in order.
    let ids = doc_ids(&search(&c, "q=%22dark%20mode%22").await);
    assert_eq!(ids.len(), 2, "{ids:?}");
    let ids = doc_ids(&search(&c, "q=%22mode%20dark%22").await);
    assert!(ids.is_empty(), "{ids:?}");

    // The kind filter.
    let answer = search(&c, "q=dark%20mode&kinds=feedback").await;
    let ids = doc_ids(&answer);
    assert_eq!(ids, [format!("feedback:{board}-fb-2")]);
    assert_eq!(answer["results"][0]["body"]["status"], "open");
    assert_eq!(answer["results"][0]["body"]["kind"], "feedback");

    // `match=all` (the default) needs every word; `any` ranks by how many match.
    assert!(doc_ids(&search(&c, "q=checkout%20unicode").await).is_empty());
    let ids = doc_ids(&search(&c, "q=checkout%20unicode&match=any").await);
    assert_eq!(ids.len(), 2, "{ids:?}");

    // Limits, and operators in user text are words, not syntax.
    assert_eq!(
        doc_ids(&search(&c, "q=board%20OR%20the&match=any&limit=1").await).len(),
        1
    );
    let answer = search(&c, "q=title%3A%20NEAR(dark%20mode)%20*").await;
    assert!(answer["results"].is_array(), "{answer}");

    // Bad input: the documented 400s.
    for bad in [
        "q=",
        "kinds=card",
        "q=x&kinds=cards",
        "q=x&limit=0",
        "q=x&limit=51",
        "q=x&match=some",
        "q=x&consistency=nope",
        "q=x&bogus=1",
        "q=%22%20%2A%20%22",
    ] {
        c.get(&format!("/v1/knowledge/search?{bad}"))
            .await
            .expect_error(400, "bad_request");
    }
}

#[tokio::test]
async fn search_answers_only_the_callers_tenant_and_sees_a_command_at_once() {
    let worker = tests::shared();
    let (a, b) = (unique_id("kb-a"), unique_id("kb-b"));
    let ca = tenant_client(worker, &a);
    let cb = tenant_client(worker, &b);
    let word = unique_id("zanzibar").replace('-', "");
    let board = unique_id("board");
    ca.ok(
        "board",
        &board,
        json!({"type": "CreateBoard", "data": {"title": "A"}}),
    )
    .await;
    // Read-your-writes: searched with the command's token, the new card is there at once.
    let added = ca
        .ok(
            "board",
            &board,
            json!({"type": "AddCard", "data": {"card_id": "c1", "title": format!("Investigate {word} timeouts")}}),
        )
        .await;
    let token = added["consistency_token"].as_str().unwrap();
    let answer = search(&ca, &format!("q={word}&consistency={token}")).await;
    assert_eq!(doc_ids(&answer), [format!("card:{board}:c1")]);
    // Tenant b sees nothing of a's.
    assert!(doc_ids(&search(&cb, &format!("q={word}")).await).is_empty());
    // A token without `read` may not search.
    Client::new(worker.url())
        .with_token(Some(worker.token("e2e", &a, "commands")))
        .get(&format!("/v1/knowledge/search?q={word}"))
        .await
        .expect_error(403, "forbidden");

    // An edit and an archive change the document: its title, then its status.
    let edited = ca
        .ok(
            "board",
            &board,
            json!({"type": "EditCard", "data": {"card_id": "c1", "title": "Investigate gateway timeouts"}}),
        )
        .await;
    let token = edited["consistency_token"].as_str().unwrap();
    assert!(doc_ids(&search(&ca, &format!("q={word}&consistency={token}")).await).is_empty());
    let archived = ca
        .ok(
            "board",
            &board,
            json!({"type": "ArchiveCard", "data": {"card_id": "c1"}}),
        )
        .await;
    let token = archived["consistency_token"].as_str().unwrap();
    let answer = search(&ca, &format!("q=gateway&kinds=card&consistency={token}")).await;
    assert_eq!(
        answer["results"][0]["body"]["status"], "archived",
        "{answer}"
    );
    // The document is also served by the projection routes, ids with `:` included.
    let doc = ca
        .get(&format!("/v1/projections/knowledge/card:{board}:c1"))
        .await
        .expect(200);
    assert_eq!(doc["body"]["status"], "archived");
}
