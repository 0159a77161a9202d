//! `edgeloop agent …`: agent loops run as long-lived processes, on the client crate's
//! [`client::agent::Agent`].
//!
//! * `triage` — [`triage`]: submitted feedback → a card on the triage board + the feedback
//!   marked triaged, classified by [`classify`]'s rules or a model ([`llm`]); with the
//!   knowledge base as context ([`context`]): a near-duplicate of an open card joins that
//!   card instead, and related error groups and failed CI runs are named on the card.
//!
//! Logs go to stderr (`tracing`; `EDGELOOP_LOG` filters, default `info`); stdout stays
//! empty. The first SIGINT or SIGTERM stops cleanly (the event in hand is finished, the lease
//! released); a second one exits at once.

mod classify;
mod context;
mod llm;
mod triage;

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use client::agent::Agent;
use tracing::{info, warn};
use tracing_subscriber::EnvFilter;

use crate::server::{ServerArgs, explain};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(subcommand)]
    agent: AgentCommand,
}

#[derive(Debug, clap::Subcommand)]
enum AgentCommand {
    /// Triage submitted feedback with the knowledge base as context: link a near-duplicate
    /// of an open card to that card (a comment on it), or classify the feedback and add a
    /// card to the triage board; name related error groups and failed CI runs on the card;
    /// mark the feedback triaged with the decision and its evidence. Needs a token with the
    /// scopes "consume commands read".
    #[command(
        after_help = "Example:\n  TOKEN=$(edgeloop token --tenant acme --scopes \"consume commands read\" --ttl 24h)\n  \
                      edgeloop agent triage --url http://127.0.0.1:8787 --token \"$TOKEN\"\n\n\
                      Link more eagerly, mention more:\n  \
                      edgeloop agent triage … --link-threshold 0.4 --related-threshold 0.2\n\n\
                      Similarities are in [0, 1] (shared stemmed words, Dice coefficient), not search scores.\n\
                      Without a knowledge base (a Worker that predates it), feedback is triaged without context.\n\n\
                      With a model (any OpenAI-compatible chat-completions API over http):\n  \
                      AGENT_LLM_URL=http://127.0.0.1:11434/v1 AGENT_LLM_MODEL=llama3.2 edgeloop agent triage …"
    )]
    Triage(TriageArgs),
}

#[derive(Debug, clap::Args)]
struct TriageArgs {
    #[command(flatten)]
    server: ServerArgs,

    /// The consumer group the triage agents share (created if missing)
    #[arg(long, default_value = "triage")]
    group: String,

    /// The board that receives the cards (created if missing)
    #[arg(long, default_value = "triage")]
    board: String,

    /// This process's name in the group; unique among running agents [default: HOST-PID]
    #[arg(long, value_name = "NAME")]
    consumer: Option<String>,

    /// Base URL of an OpenAI-compatible API (`{url}/chat/completions`); unset: rules only
    #[arg(long, env = "AGENT_LLM_URL", value_name = "URL")]
    llm_url: Option<String>,

    /// The model to ask (required with --llm-url)
    #[arg(long, env = "AGENT_LLM_MODEL", value_name = "MODEL")]
    llm_model: Option<String>,

    /// Bearer key for the model's API
    #[arg(
        long,
        env = "AGENT_LLM_API_KEY",
        hide_env_values = true,
        value_name = "KEY"
    )]
    llm_api_key: Option<String>,

    /// How long the model may take before the rules decide instead
    #[arg(
        long,
        env = "AGENT_LLM_TIMEOUT",
        default_value = "5s",
        value_name = "DURATION",
        value_parser = humantime::parse_duration
    )]
    llm_timeout: Duration,

    /// Link feedback to an open card at least this similar (0..=1; above 1: never link)
    #[arg(
        long,
        env = "AGENT_LINK_THRESHOLD",
        default_value_t = 0.5,
        value_name = "SIMILARITY",
        value_parser = similarity
    )]
    link_threshold: f64,

    /// Name unresolved error groups and failed CI runs at least this similar on the card
    #[arg(
        long,
        env = "AGENT_RELATED_THRESHOLD",
        default_value_t = 0.25,
        value_name = "SIMILARITY",
        value_parser = similarity
    )]
    related_threshold: f64,
}

/// A threshold: a number from 0 to 1, or above 1 to turn the behaviour off.
fn similarity(value: &str) -> Result<f64, String> {
    let number: f64 = value
        .trim()
        .parse()
        .map_err(|_| format!("`{value}` is not a number"))?;
    if number.is_finite() && number >= 0.0 {
        Ok(number)
    } else {
        Err(format!(
            "`{value}`: a similarity threshold is from 0 to 1 (above 1: never)"
        ))
    }
}

pub async fn run(args: Args) -> anyhow::Result<()> {
    init_logs();
    match args.agent {
        AgentCommand::Triage(args) => run_triage(args).await,
    }
}

fn init_logs() {
    let filter = EnvFilter::try_from_env("EDGELOOP_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colours only for a person at a terminal, never in a log file or a pipe.
        .with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none())
        .with_target(false)
        .try_init();
}

/// The classifier the flags ask for.
fn classifier(args: &TriageArgs) -> anyhow::Result<llm::Classifier> {
    let Some(url) = args.llm_url.as_deref().filter(|u| !u.trim().is_empty()) else {
        return Ok(llm::Classifier::rules());
    };
    let parsed = client::reqwest::Url::parse(url)
        .with_context(|| format!("AGENT_LLM_URL `{url}` is not a URL"))?;
    // This build carries no TLS stack (see the client crate's docs): an https endpoint could
    // never answer, and every event would silently go to the rules.
    if parsed.scheme() != "http" {
        bail!(
            "AGENT_LLM_URL `{url}`: this build of edgeloop speaks plain http only; \
             use a local model server or an http gateway in front of the API"
        );
    }
    let Some(model) = args.llm_model.clone().filter(|m| !m.trim().is_empty()) else {
        bail!("AGENT_LLM_URL is set but AGENT_LLM_MODEL is not: which model should answer?");
    };
    llm::Classifier::model(llm::ModelConfig {
        url: url.to_owned(),
        model,
        api_key: args.llm_api_key.clone().filter(|k| !k.is_empty()),
        timeout: args.llm_timeout,
    })
}

async fn run_triage(args: TriageArgs) -> anyhow::Result<()> {
    client::check_group_name(&args.group).map_err(|e| anyhow::anyhow!("--group: {e}"))?;
    let client = args.server.client()?;
    let classifier = classifier(&args)?;
    let consumer = args.consumer.clone().unwrap_or_else(default_consumer);
    let url = args.server.url().to_owned();
    let scopes = "consume commands read";
    info!(
        group = %args.group,
        board = %args.board,
        consumer,
        model = classifier.uses_model(),
        link_threshold = args.link_threshold,
        related_threshold = args.related_threshold,
        "triage agent starting"
    );
    triage::ensure_board(&client, &args.board)
        .await
        .map_err(|e| explain(e, &url, scopes))?;
    let thresholds = context::Thresholds {
        link: args.link_threshold,
        related: args.related_threshold,
    };
    let triage = Arc::new(triage::Triage::new(
        args.board.clone(),
        classifier,
        thresholds,
    ));
    let agent = Agent::new(client, &args.group, &consumer)
        .create_group(triage::group_settings())
        .handler(move |ctx, event| {
            let triage = Arc::clone(&triage);
            async move { triage.handle(ctx, event).await }
        });
    let stats = agent.stats();
    let reporter = tokio::spawn(async move {
        let mut last = stats.snapshot();
        loop {
            tokio::time::sleep(Duration::from_secs(60)).await;
            let now = stats.snapshot();
            if now != last {
                info!(
                    delivered = now.delivered,
                    acked = now.acked,
                    retried = now.retried,
                    parked = now.parked,
                    errors = now.errors,
                    commands_sent = now.commands_sent,
                    "progress"
                );
                last = now;
            }
        }
    });
    let result = agent.run_until(shutdown()).await;
    reporter.abort();
    result.map(|_| ()).map_err(|e| explain(e, &url, scopes))
}

/// The first SIGINT/SIGTERM: stop cleanly. The second: exit now.
async fn shutdown() {
    client::agent::shutdown_signal().await;
    warn!("stopping: finishing the event in hand (signal again to exit at once)");
    tokio::spawn(async {
        client::agent::shutdown_signal().await;
        std::process::exit(130);
    });
}

/// `HOST-PID`: unique among the agents of one machine, and says where each one runs.
fn default_consumer() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "agent".to_owned());
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c
            } else {
                '-'
            }
        })
        .take(200)
        .collect();
    format!("{host}-{}", std::process::id())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(subcommand)]
        agent: AgentCommand,
    }

    fn triage_args(extra: &[&str]) -> TriageArgs {
        let mut argv = vec!["x", "triage", "--url", "http://h:1", "--token", "t"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().agent {
            AgentCommand::Triage(args) => args,
        }
    }

    #[test]
    fn defaults_are_the_triage_group_and_board_and_rules_only() {
        let args = triage_args(&[]);
        assert_eq!(
            (args.group.as_str(), args.board.as_str()),
            ("triage", "triage")
        );
        assert_eq!(args.llm_timeout, Duration::from_secs(5));
        if std::env::var_os("AGENT_LINK_THRESHOLD").is_none() {
            assert_eq!(args.link_threshold, 0.5);
        }
        if std::env::var_os("AGENT_RELATED_THRESHOLD").is_none() {
            assert_eq!(args.related_threshold, 0.25);
        }
        if std::env::var_os("AGENT_LLM_URL").is_none() {
            assert!(!classifier(&args).unwrap().uses_model());
        }
    }

    #[test]
    fn a_model_needs_an_http_url_and_a_model_name() {
        let ok = triage_args(&["--llm-url", "http://127.0.0.1:11434/v1", "--llm-model", "m"]);
        assert!(classifier(&ok).unwrap().uses_model());
        let https = triage_args(&[
            "--llm-url",
            "https://api.example.com/v1",
            "--llm-model",
            "m",
        ]);
        assert!(
            classifier(&https)
                .unwrap_err()
                .to_string()
                .contains("plain http")
        );
        let nameless = triage_args(&["--llm-url", "http://127.0.0.1:1/v1", "--llm-model", ""]);
        assert!(
            classifier(&nameless)
                .unwrap_err()
                .to_string()
                .contains("AGENT_LLM_MODEL")
        );
        let junk = triage_args(&["--llm-url", "not a url", "--llm-model", "m"]);
        assert!(classifier(&junk).is_err());
    }

    #[test]
    fn thresholds_are_similarities() {
        let args = triage_args(&["--link-threshold", "0.7", "--related-threshold", "0"]);
        assert_eq!((args.link_threshold, args.related_threshold), (0.7, 0.0));
        let never = triage_args(&["--link-threshold", "2"]);
        assert_eq!(never.link_threshold, 2.0);
        for bad in ["-0.1", "NaN", "inf", "lots"] {
            let argv = [
                "x",
                "triage",
                "--url",
                "http://h:1",
                "--token",
                "t",
                "--link-threshold",
                bad,
            ];
            assert!(Cli::try_parse_from(argv).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_default_consumer_names_the_host_and_the_process() {
        let name = default_consumer();
        assert!(
            name.ends_with(&format!("-{}", std::process::id())),
            "{name}"
        );
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
        );
    }
}
