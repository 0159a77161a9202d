//! GitHub deliveries end to end through the pure path the route takes: signature, mapping,
//! and the `repository` aggregate deciding the mapped command (through the same JSON decode
//! the command route uses). The payloads in `fixtures/github/` are trimmed copies of the
//! shapes GitHub documents, with the fields we read and a sample of those we ignore.

use domain::repository::{
    Conclusion, PullRequestAction, Repository, RepositoryCommand, RepositoryEvent,
};
use domain::testing::given;
use hmac::{Hmac, Mac};
use ingest::PayloadError;
use ingest::github::{SignatureError, WebhookCommand, to_command, verify_signature};
use serde_json::{Value, json};
use sha2::Sha256;

const PUSH: &[u8] = include_bytes!("fixtures/github/push.json");
const PULL_REQUEST_CLOSED: &[u8] = include_bytes!("fixtures/github/pull_request_closed.json");
const WORKFLOW_RUN: &[u8] = include_bytes!("fixtures/github/workflow_run_completed.json");
const RELEASE: &[u8] = include_bytes!("fixtures/github/release_published.json");
const PING: &[u8] = include_bytes!("fixtures/github/ping.json");

const SECRET: &[u8] = b"tenant-a webhook secret";
const DELIVERY: &str = "72d3162e-cc78-11e3-81ab-4c9367dc0958";

fn sign(secret: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

fn mapped(event: &str, body: &[u8]) -> WebhookCommand {
    match to_command(event, DELIVERY, body) {
        Ok(Some(command)) => command,
        other => panic!("{event}: expected a command, got {other:?}"),
    }
}

/// A fixture with some fields replaced.
fn edited(fixture: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    let mut value: Value = serde_json::from_slice(fixture).unwrap();
    edit(&mut value);
    serde_json::to_vec(&value).unwrap()
}

/// Decides the mapped command on a fresh repository through the wire path; returns the
/// events as stored.
fn decide(command: &WebhookCommand) -> Vec<Value> {
    let json = command.command_json();
    let state =
        given::<Repository>([]).when_json(json["type"].as_str().unwrap(), json["data"].clone());
    match state.outcome() {
        Ok(events) => events
            .iter()
            .map(|e| json!({"type": e.event_type, "data": e.data}))
            .collect(),
        Err(error) => panic!("the aggregate refused {json}: {error:?}"),
    }
}

#[test]
fn githubs_documented_test_vector_verifies() {
    // From GitHub's "Validating webhook deliveries".
    let header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    assert_eq!(
        verify_signature(b"It's a Secret to Everybody", b"Hello, World!", header),
        Ok(())
    );
    assert_eq!(
        verify_signature(b"It's a Secret to Everybody", b"Hello, World?", header),
        Err(SignatureError::Mismatch)
    );
}

#[test]
fn bad_missing_and_forged_signatures_are_refused() {
    let good = sign(SECRET, PUSH);
    assert_eq!(verify_signature(SECRET, PUSH, &good), Ok(()));
    let mut tampered = PUSH.to_vec();
    tampered[10] ^= 1;
    let cases: [(&[u8], &[u8], String, SignatureError); 9] = [
        (SECRET, PUSH, String::new(), SignatureError::Missing),
        (SECRET, PUSH, "  ".into(), SignatureError::Missing),
        // The SHA-1 header GitHub also sends is not accepted in its place.
        (
            SECRET,
            PUSH,
            "sha1=0123456789abcdef0123456789abcdef01234567".into(),
            SignatureError::Malformed,
        ),
        (
            SECRET,
            PUSH,
            good.replace("sha256=", ""),
            SignatureError::Malformed,
        ),
        (SECRET, PUSH, format!("{good}00"), SignatureError::Malformed),
        (
            SECRET,
            PUSH,
            format!("{}g", &good[..good.len() - 1]),
            SignatureError::Malformed,
        ),
        // Another tenant's secret, or an altered body.
        (
            b"tenant-b webhook secret",
            PUSH,
            good.clone(),
            SignatureError::Mismatch,
        ),
        (SECRET, &tampered, good.clone(), SignatureError::Mismatch),
        (b"", PUSH, sign(b"", PUSH), SignatureError::NoSecret),
    ];
    for (secret, body, header, expected) in cases {
        assert_eq!(
            verify_signature(secret, body, &header),
            Err(expected.clone()),
            "{header}"
        );
    }
    // Hex digits in either case are the same signature.
    assert_eq!(
        verify_signature(
            SECRET,
            PUSH,
            &good.to_uppercase().replace("SHA256=", "sha256=")
        ),
        Ok(())
    );
}

#[test]
fn a_push_becomes_record_push() {
    let command = mapped("push", PUSH);
    assert_eq!(command.aggregate_id, "codertocat~hello-world");
    assert_eq!(
        command.command_json(),
        json!({"type": "RecordPush", "data": {
            "delivery_id": DELIVERY,
            "ref": "refs/heads/main",
            "before": "6113728f27ae82c7b1a177c8d03f9e96e0adf246",
            "after": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
            "commits": [
                {"id": "a10867b14bb761a232cd80139fbd4c0d33264240",
                 "message": "Guard against a missing card in renderCard\n\nThe board crashed when a card was archived while open.",
                 "author": "Codertocat"},
                {"id": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c",
                 "message": "Add a test for archived cards",
                 "author": "Mona Lisa Octocat"}
            ],
            "commit_count": 2,
            "pusher": "Codertocat"
        }})
    );
    let events = decide(&command);
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["type"], "PushRecorded");
    assert_eq!(events[0]["data"]["commit_count"], 2);
}

#[test]
fn a_push_of_many_commits_keeps_the_newest_hundred() {
    let body = edited(PUSH, |push| {
        let commit = push["commits"][1].clone();
        push["commits"] = (0..250)
            .map(|n| {
                let mut commit = commit.clone();
                commit["id"] = json!(format!("{n:040x}"));
                commit
            })
            .collect();
    });
    let command = mapped("push", &body);
    let RepositoryCommand::RecordPush {
        commits,
        commit_count,
        ..
    } = &command.command
    else {
        panic!("{command:?}")
    };
    assert_eq!((commits.len(), *commit_count), (100, Some(250)));
    assert_eq!(commits[0].id, format!("{:040x}", 150));
    assert_eq!(commits[99].id, format!("{:040x}", 249));
    assert_eq!(decide(&command)[0]["data"]["commit_count"], 250);
}

#[test]
fn pull_requests_opened_closed_merged_and_reopened() {
    let command = mapped("pull_request", PULL_REQUEST_CLOSED);
    assert_eq!(
        command.command_json(),
        json!({"type": "RecordPullRequest", "data": {
            "delivery_id": DELIVERY, "number": 2, "action": "merged",
            "title": "Guard against a missing card", "author": "Codertocat",
            "url": "https://github.com/Codertocat/Hello-World/pull/2", "merged": true
        }})
    );
    assert_eq!(decide(&command)[0]["type"], "PullRequestMerged");

    let cases = [
        (
            "closed",
            false,
            PullRequestAction::Closed,
            "PullRequestClosed",
        ),
        (
            "opened",
            false,
            PullRequestAction::Opened,
            "PullRequestOpened",
        ),
        (
            "reopened",
            false,
            PullRequestAction::Reopened,
            "PullRequestReopened",
        ),
        // A payload claiming an opened pull request is merged does not make it so.
        (
            "opened",
            true,
            PullRequestAction::Opened,
            "PullRequestOpened",
        ),
    ];
    for (action, merged, expected_action, event) in cases {
        let body = edited(PULL_REQUEST_CLOSED, |pr| {
            pr["action"] = json!(action);
            pr["pull_request"]["merged"] = json!(merged);
        });
        let command = mapped("pull_request", &body);
        let RepositoryCommand::RecordPullRequest {
            action: mapped_action,
            ..
        } = command.command
        else {
            panic!("{command:?}")
        };
        assert_eq!(mapped_action, expected_action, "{action}");
        assert_eq!(decide(&command)[0]["type"], event, "{action}");
    }
    // `merged` absent or null (older payloads, some actions): not merged.
    let body = edited(PULL_REQUEST_CLOSED, |pr| {
        pr["pull_request"]["merged"] = Value::Null
    });
    assert_eq!(
        decide(&mapped("pull_request", &body))[0]["type"],
        "PullRequestClosed"
    );
    for action in ["edited", "synchronize", "labeled", "review_requested"] {
        let body = edited(PULL_REQUEST_CLOSED, |pr| pr["action"] = json!(action));
        assert_eq!(
            to_command("pull_request", DELIVERY, &body),
            Ok(None),
            "{action}"
        );
    }
}

#[test]
fn a_failed_workflow_run_is_recorded_as_failed() {
    let command = mapped("workflow_run", WORKFLOW_RUN);
    assert_eq!(
        command.command_json(),
        json!({"type": "RecordWorkflowRun", "data": {
            "delivery_id": DELIVERY, "run_id": 30433642, "name": "CI", "conclusion": "failure",
            "head_sha": "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c", "branch": "main",
            "url": "https://github.com/Codertocat/Hello-World/actions/runs/30433642"
        }})
    );
    assert_eq!(decide(&command)[0]["type"], "WorkflowRunFailed");

    let with_conclusion = |conclusion: Value| {
        edited(WORKFLOW_RUN, |run| {
            run["workflow_run"]["conclusion"] = conclusion
        })
    };
    assert_eq!(
        decide(&mapped("workflow_run", &with_conclusion(json!("success"))))[0]["type"],
        "WorkflowRunSucceeded"
    );
    // A cancelled run maps, and the aggregate decides nothing for it.
    let cancelled = mapped("workflow_run", &with_conclusion(json!("cancelled")));
    assert!(matches!(
        cancelled.command,
        RepositoryCommand::RecordWorkflowRun {
            conclusion: Conclusion::Cancelled,
            ..
        }
    ));
    assert_eq!(decide(&cancelled), Vec::<Value>::new());
    // A conclusion we do not know yet, or none: acknowledged and ignored.
    assert_eq!(
        to_command(
            "workflow_run",
            DELIVERY,
            &with_conclusion(json!("exploded"))
        ),
        Ok(None)
    );
    assert_eq!(
        to_command("workflow_run", DELIVERY, &with_conclusion(Value::Null)),
        Ok(None)
    );
    for action in ["requested", "in_progress"] {
        let body = edited(WORKFLOW_RUN, |run| run["action"] = json!(action));
        assert_eq!(
            to_command("workflow_run", DELIVERY, &body),
            Ok(None),
            "{action}"
        );
    }
}

#[test]
fn a_published_release_without_a_name_is_named_by_its_tag() {
    let command = mapped("release", RELEASE);
    assert_eq!(
        command.command_json(),
        json!({"type": "RecordRelease", "data": {
            "delivery_id": DELIVERY, "tag": "v1.4.1", "name": "v1.4.1",
            "url": "https://github.com/Codertocat/Hello-World/releases/tag/v1.4.1"
        }})
    );
    assert_eq!(decide(&command)[0]["type"], "ReleasePublished");
    let named = edited(RELEASE, |r| {
        r["release"]["name"] = json!("1.4.1 — archived cards")
    });
    let RepositoryCommand::RecordRelease { name, .. } = mapped("release", &named).command else {
        panic!()
    };
    assert_eq!(name, "1.4.1 — archived cards");
    for action in ["created", "prereleased", "deleted"] {
        let body = edited(RELEASE, |r| r["action"] = json!(action));
        assert_eq!(to_command("release", DELIVERY, &body), Ok(None), "{action}");
    }
}

#[test]
fn unknown_kinds_are_acknowledged_and_ignored_without_reading_the_body() {
    for event in ["ping", "issues", "star", "check_suite", "", "PUSH"] {
        assert_eq!(to_command(event, DELIVERY, PING), Ok(None), "{event}");
        assert_eq!(
            to_command(event, DELIVERY, b"not json at all"),
            Ok(None),
            "{event}"
        );
    }
}

#[test]
fn a_delivery_sent_twice_is_recorded_once() {
    let command = mapped("push", PUSH);
    let json = command.command_json();
    let first: Vec<RepositoryEvent> = match given::<Repository>([])
        .when(command.command.clone())
        .outcome()
    {
        Ok(events) => events.clone(),
        Err(e) => panic!("{e:?}"),
    };
    assert_eq!(first.len(), 1);
    given::<Repository>(first)
        .when_json("RecordPush", json["data"].clone())
        .then_expect([]);
}

#[test]
fn a_form_encoded_delivery_reads_like_json() {
    fn percent_encode(bytes: &[u8]) -> Vec<u8> {
        let mut out = b"payload=".to_vec();
        for &b in bytes {
            match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(b),
                b' ' => out.push(b'+'),
                _ => out.extend(format!("%{b:02X}").bytes()),
            }
        }
        out
    }
    let form = percent_encode(RELEASE);
    assert_eq!(
        to_command("release", DELIVERY, &form),
        to_command("release", DELIVERY, RELEASE)
    );
    assert_eq!(
        verify_signature(SECRET, &form, &sign(SECRET, &form)),
        Ok(())
    );
    let error = to_command("release", DELIVERY, b"payload=%7B%2").unwrap_err();
    assert_eq!(
        error.to_string(),
        "the body is not JSON: the form's `payload` is badly percent-encoded"
    );
}

#[test]
fn malformed_deliveries_are_400_naming_the_field() {
    let cases: [(&str, Vec<u8>, &str); 7] = [
        (
            "push",
            b"{".to_vec(),
            "the body is not JSON: EOF while parsing an object at line 1 column 1",
        ),
        (
            "push",
            b"".to_vec(),
            "the body is not JSON: the body is empty",
        ),
        (
            "push",
            edited(PUSH, |p| p["ref"] = Value::Null),
            "`ref`: expected a string, got null",
        ),
        (
            "push",
            edited(PUSH, |p| p["commits"][1]["id"] = json!(7)),
            "`commits[1].id`: expected a string, got a number",
        ),
        (
            "pull_request",
            edited(PULL_REQUEST_CLOSED, |p| {
                p["pull_request"]["user"]
                    .as_object_mut()
                    .unwrap()
                    .remove("login");
            }),
            "`pull_request.user.login`: missing; expected a string",
        ),
        (
            "release",
            edited(RELEASE, |r| {
                r.as_object_mut().unwrap().remove("repository");
            }),
            "`repository.full_name`: missing; expected a string",
        ),
        (
            "release",
            edited(RELEASE, |r| {
                r["repository"]["full_name"] = json!("Hello-World")
            }),
            "`repository.full_name`: expected `owner/name` as GitHub spells repositories",
        ),
    ];
    for (event, body, message) in cases {
        let error = to_command(event, DELIVERY, &body).unwrap_err();
        assert_eq!(error.to_string(), message);
        assert_eq!((error.status(), error.code()), (400, "bad_request"));
    }
    assert_eq!(
        to_command("push", "", PUSH),
        Err(PayloadError::Invalid {
            path: "X-GitHub-Delivery".into(),
            message: "must be 1 to 100 characters".into()
        })
    );
    let huge = vec![b' '; ingest::github::MAX_BODY_BYTES + 1];
    assert_eq!(
        to_command("push", DELIVERY, &huge).unwrap_err().status(),
        413
    );
}
