//! `edgeloop token`: mint a bearer token for local development, tests and scripts.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use auth::{Claims, Scopes, Tenant};

use crate::secret::SecretArgs;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// Tenant the token is for: 1-64 of A-Z a-z 0-9 _ -
    #[arg(long)]
    tenant: Tenant,

    /// Space-separated scopes, from: commands read replay consume admin
    #[arg(long, value_parser = parse_scopes)]
    scopes: Scopes,

    /// How long the token is valid, e.g. 30s, 15m, 1h, 7d
    #[arg(long, default_value = "1h")]
    ttl: humantime::Duration,

    /// Actor recorded in the events this token causes (the `sub` claim)
    #[arg(long, default_value = "dev", value_parser = auth::parse_actor)]
    sub: String,

    #[command(flatten)]
    secret: SecretArgs,
}

/// Mints the token and prints it, alone, on stdout.
pub fn run(args: &Args) -> anyhow::Result<()> {
    let secret = args.secret.load()?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970")?
        .as_secs();
    let claims = claims(args, now)?;
    println!("{}", auth::mint(&claims, secret.bytes()));
    Ok(())
}

/// The claims for `args` at time `now`: valid from `now` (`iat`), for `ttl`.
fn claims(args: &Args, now: u64) -> anyhow::Result<Claims> {
    let ttl: Duration = args.ttl.into();
    if ttl.as_secs() == 0 {
        bail!("--ttl must be at least 1s (token times are whole seconds)");
    }
    let exp = now
        .checked_add(ttl.as_secs())
        .context("--ttl is too long")?;
    Ok(Claims {
        sub: args.sub.clone(),
        tenant: args.tenant.clone(),
        scope: args.scopes,
        exp,
        nbf: None,
        iat: Some(now),
    })
}

/// Like [`Scopes::parse`], but a token that grants nothing is refused here rather than by the
/// Worker later.
fn parse_scopes(s: &str) -> Result<Scopes, String> {
    let scopes = Scopes::parse(s).map_err(|e| e.to_string())?;
    if scopes.is_empty() {
        return Err("name at least one scope: commands read replay consume admin".into());
    }
    Ok(scopes)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Debug, Parser)]
    struct Harness {
        #[command(flatten)]
        args: Args,
    }

    fn parse(argv: &[&str]) -> Result<Args, clap::Error> {
        let argv = std::iter::once("edgeloop-token").chain(argv.iter().copied());
        Harness::try_parse_from(argv).map(|h| h.args)
    }

    const NOW: u64 = 1_750_000_000;

    #[test]
    fn claims_follow_the_arguments() {
        let args = parse(&[
            "--tenant",
            "acme",
            "--scopes",
            "read commands",
            "--ttl",
            "90m",
            "--sub",
            "ci-bot",
        ])
        .unwrap();
        let claims = claims(&args, NOW).unwrap();
        assert_eq!(
            claims,
            Claims {
                sub: "ci-bot".into(),
                tenant: Tenant::parse("acme").unwrap(),
                scope: Scopes::parse("commands read").unwrap(),
                exp: NOW + 90 * 60,
                nbf: None,
                iat: Some(NOW),
            }
        );
    }

    #[test]
    fn defaults_are_one_hour_for_actor_dev() {
        let args = parse(&["--tenant", "acme", "--scopes", "read"]).unwrap();
        let claims = claims(&args, NOW).unwrap();
        assert_eq!(claims.exp, NOW + 3600);
        assert_eq!(claims.sub, "dev");
    }

    #[test]
    fn sub_second_ttl_is_refused() {
        for ttl in ["0s", "500ms"] {
            let args = parse(&["--tenant", "acme", "--scopes", "read", "--ttl", ttl]).unwrap();
            assert!(claims(&args, NOW).is_err(), "{ttl}");
        }
    }

    #[test]
    fn bad_arguments_are_usage_errors() {
        for argv in [
            &["--scopes", "read"][..],
            &["--tenant", "acme"],
            &["--tenant", "acme/other", "--scopes", "read"],
            &["--tenant", "acme", "--scopes", "read write"],
            &["--tenant", "acme", "--scopes", ""],
            &["--tenant", "acme", "--scopes", "read", "--ttl", "soon"],
            &["--tenant", "acme", "--scopes", "read", "--sub", ""],
        ] {
            assert!(parse(argv).is_err(), "{argv:?}");
        }
    }
}
