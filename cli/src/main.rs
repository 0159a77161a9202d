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
//! * one module per subcommand (`token`), each with an `Args` struct and a `run` function;
//!   adding a command is a module, a variant in [`Command`] and an arm in `main`.
//! * `secret` — where the signing secret comes from (`--secret`, `$AUTH_SECRET`, `.dev.vars`),
//!   shared by every command that needs to sign.
//!
//! Output contract: a command's result goes to stdout and nothing else does, so it can be
//! captured with `$(…)`; warnings and errors go to stderr; failure exits with status 1
//! (2 for usage errors, from clap).

mod secret;
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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Token(args) => token::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
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
