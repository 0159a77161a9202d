//! `edgeloop token` as a user runs it: a real process, real files, real environment; the token
//! it prints must be one the Worker's own `auth::verify` accepts.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use auth::{AuthError, Scope, Scopes, Tenant};

const FILE_SECRET: &str = "secret-from-dev-vars-0123456789abcdef";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// `edgeloop ARGS` in `dir`, with `AUTH_SECRET` unset unless `env_secret` is given.
fn edgeloop(dir: &Path, env_secret: Option<&str>, args: &[&str]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_edgeloop"));
    cmd.args(args).current_dir(dir).env_remove("AUTH_SECRET");
    if let Some(secret) = env_secret {
        cmd.env("AUTH_SECRET", secret);
    }
    cmd.output().unwrap()
}

/// A project root whose `.dev.vars` defines AUTH_SECRET, as `wrangler dev` expects.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::write(
        dir.path().join(".dev.vars"),
        format!("# local only\nAUTH_SECRET=\"{FILE_SECRET}\"\n"),
    )
    .unwrap();
    dir
}

/// The single token printed on stdout (exactly one line, so `$(…)` captures just the token).
fn printed_token(output: &Output) -> String {
    assert!(
        output.status.success(),
        "edgeloop failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8(output.stdout.clone()).unwrap();
    let token = stdout
        .strip_suffix('\n')
        .expect("stdout ends with a newline");
    assert!(
        !token.is_empty() && !token.contains(char::is_whitespace),
        "{stdout:?}"
    );
    token.to_owned()
}

#[test]
fn prints_a_token_the_worker_accepts() {
    let dir = project();
    let before = now();
    let output = edgeloop(
        dir.path(),
        None,
        &[
            "token",
            "--tenant",
            "acme",
            "--scopes",
            "commands read",
            "--ttl",
            "1h",
            "--sub",
            "alice",
        ],
    );
    let token = printed_token(&output);
    assert!(
        output.stderr.is_empty(),
        "a 37-byte secret needs no warning"
    );

    let principal = auth::verify(&token, FILE_SECRET.as_bytes(), now()).unwrap();
    assert_eq!(principal.actor, "alice");
    assert_eq!(principal.tenant, Tenant::parse("acme").unwrap());
    assert_eq!(principal.scopes, Scopes::parse("commands read").unwrap());
    assert!(principal.require(Scope::Admin).is_err());
    let after = now();
    assert!((before + 3600..=after + 3600).contains(&principal.expires_at));
}

#[test]
fn token_expires_after_its_ttl() {
    let dir = project();
    let output = edgeloop(
        dir.path(),
        None,
        &[
            "token", "--tenant", "acme", "--scopes", "read", "--ttl", "2m",
        ],
    );
    let token = printed_token(&output);
    let later = now() + 2 * 60 + auth::LEEWAY_SECS + 5;
    assert_eq!(
        auth::verify(&token, FILE_SECRET.as_bytes(), later),
        Err(AuthError::Expired)
    );
}

#[test]
fn environment_overrides_dev_vars_and_flag_overrides_both() {
    let dir = project();
    let env_secret = "secret-from-environment-0123456789abcdef";
    let flag_secret = "secret-from-flag-0123456789abcdef-0123";
    let base = ["token", "--tenant", "acme", "--scopes", "read"];

    let token = printed_token(&edgeloop(dir.path(), Some(env_secret), &base));
    assert!(auth::verify(&token, env_secret.as_bytes(), now()).is_ok());
    assert_eq!(
        auth::verify(&token, FILE_SECRET.as_bytes(), now()),
        Err(AuthError::BadSignature)
    );

    let with_flag = [&base[..], &["--secret", flag_secret]].concat();
    let token = printed_token(&edgeloop(dir.path(), Some(env_secret), &with_flag));
    assert!(auth::verify(&token, flag_secret.as_bytes(), now()).is_ok());
}

#[test]
fn secret_file_can_be_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("staging.vars");
    fs::write(&path, "AUTH_SECRET=named-file-secret-0123456789abcdef\n").unwrap();
    let output = edgeloop(
        dir.path(),
        None,
        &[
            "token",
            "--tenant",
            "acme",
            "--scopes",
            "read",
            "--secret-file",
            path.to_str().unwrap(),
        ],
    );
    let token = printed_token(&output);
    assert!(auth::verify(&token, b"named-file-secret-0123456789abcdef", now()).is_ok());
}

#[test]
fn no_secret_anywhere_fails_with_guidance_and_prints_nothing() {
    let empty = tempfile::tempdir().unwrap();
    let output = edgeloop(
        empty.path(),
        None,
        &["token", "--tenant", "acme", "--scopes", "read"],
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("no signing secret") && stderr.contains(".dev.vars"),
        "{stderr}"
    );
}

#[test]
fn invalid_arguments_fail_before_minting() {
    let dir = project();
    for (args, mentions) in [
        (
            &["token", "--tenant", "acme/x", "--scopes", "read"][..],
            "tenant",
        ),
        (
            &["token", "--tenant", "acme", "--scopes", "read wrte"],
            "wrte",
        ),
        (
            &[
                "token", "--tenant", "acme", "--scopes", "read", "--ttl", "later",
            ],
            "ttl",
        ),
    ] {
        let output = edgeloop(dir.path(), None, args);
        assert_eq!(output.status.code(), Some(2), "{args:?}");
        assert!(output.stdout.is_empty());
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(mentions), "{args:?}: {stderr}");
    }
}

#[test]
fn short_secret_works_but_warns_on_stderr_only() {
    let dir = tempfile::tempdir().unwrap();
    let output = edgeloop(
        dir.path(),
        Some("dev"),
        &["token", "--tenant", "acme", "--scopes", "read"],
    );
    let token = printed_token(&output);
    assert!(auth::verify(&token, b"dev", now()).is_ok());
    assert!(String::from_utf8_lossy(&output.stderr).contains("warning"));
}
