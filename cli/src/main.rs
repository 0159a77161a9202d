//! `edgeloop`, the project's native command-line tool.
//!
//! It exists so that everything a developer does against a running Edgeloop Worker — getting a
//! token, replaying history, running an agent loop — is one typed, tested Rust program that
//! shares its rules with the Worker (the same `auth` crate mints the tokens the Worker
//! verifies), instead of a drawer of shell scripts that drift.
//!
//! ```text
//! TOKEN=$(edgeloop token --tenant acme --scopes "commands read" --ttl 1h)
//! curl -H "Authorization: Bearer $TOKEN" http://127.0.0.1:8787/v1/...
//! ```
//!
//! # Layout
//!
//! * `main.rs` — the argument tree and dispatch, nothing else.
//! * one module per subcommand (`token`, `replay`, `tail`, `state`), each with an `Args`
//!   struct and a `run` function; adding a command is a module, a variant in [`Command`] and
//!   an arm in `main`.
//! * `secret` — where the signing secret comes from (`--secret`, `$AUTH_SECRET`, `.dev.vars`),
//!   shared by every command that needs to sign.
//! * `server` — `--url` and `--token` (or `$EDGELOOP_TOKEN`), shared by every command that
//!   talks to a Worker through the `client` crate, and the one-line messages its failures
//!   become.
//!
//! Output contract: a command's result goes to stdout and nothing else does, so it can be
//! captured with `$(…)`; progress, warnings and errors go to stderr; failure exits with
//! status 1 (2 for usage errors, from clap; 130 for an export stopped by Ctrl-C).

mod agent;
mod replay;
mod secret;
mod server;
mod state;
mod tail;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Command-line tool for Edgeloop, the event-sourced backend on Durable Objects.
#[derive(Debug, Parser)]
#[command(name = "edgeloop", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Mint a bearer token signed with the local development secret; prints only the token.
    #[command(
        after_help = "Example:\n  TOKEN=$(edgeloop token --tenant acme --scopes \"commands read\" --ttl 1h)\n  \
                            curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:8787/v1/..."
    )]
    Token(token::Args),

    /// Export the tenant's global stream to NDJSON, CSV or Parquet; resumable after any
    /// interruption, without duplicates or loss.
    #[command(
        after_help = "Example:\n  edgeloop replay --url http://127.0.0.1:8787 --token \"$TOKEN\" \\\n    \
                      --format parquet --output events.parquet\n\
                      Run the same command again after an interruption to continue where it stopped."
    )]
    Replay(replay::Args),

    /// Follow one partition of the global stream, catch-up then live, one envelope per line.
    Tail(tail::Args),

    /// Print an aggregate's state JSON: now, at a version, or as of a time.
    State(state::Args),

    /// Run an agent loop (`triage`) on a consumer group until SIGINT or SIGTERM.
    Agent(agent::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Token(args) => token::run(&args),
        Command::Replay(args) => block_on(replay::run(args)),
        Command::Tail(args) => block_on(tail::run(args)),
        Command::State(args) => block_on(state::run(args)),
        Command::Agent(args) => block_on(agent::run(args)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            if err.is::<replay::Interrupted>() {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Runs a command that talks to a Worker on a Tokio runtime.
fn block_on(command: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(command)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn argument_tree_is_consistent() {
        Cli::command().debug_assert();
    }
}
