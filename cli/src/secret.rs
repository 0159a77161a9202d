//! Where the signing secret comes from.
//!
//! The Worker verifies tokens with its secret `AUTH_SECRET`; in local development wrangler reads
//! it from `.dev.vars` in the project root. A token minted here is accepted by the Worker only if
//! both use the same bytes, so the CLI looks where the Worker does, after two explicit overrides:
//!
//! 1. `--secret VALUE` (convenient, but lands in shell history and `ps`);
//! 2. the environment variable `AUTH_SECRET` (CI, or a secret manager's `run` wrapper);
//! 3. `AUTH_SECRET=…` in the dotenv file `--secret-file` (default `.dev.vars`), parsed with
//!    `dotenvy` so quoting, comments and `export` prefixes mean what they mean to dotenv.
//!
//! The secret is used as the UTF-8 bytes of the value, exactly as the Worker receives it.

use std::env::{self, VarError};
use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The name of the secret, in the environment and in `.dev.vars`.
pub const VAR: &str = "AUTH_SECRET";

/// The file wrangler reads local secrets from, relative to the project root.
pub const DEFAULT_FILE: &str = ".dev.vars";

/// RFC 7518 §3.2: an HS256 key must be at least 256 bits.
const RECOMMENDED_MIN_LEN: usize = 32;

/// Arguments of every command that signs tokens (flatten into its `Args`).
#[derive(clap::Args)]
pub struct SecretArgs {
    /// The signing secret itself [default: $AUTH_SECRET, then AUTH_SECRET in --secret-file]
    #[arg(long, value_name = "SECRET")]
    secret: Option<String>,

    /// dotenv file to read AUTH_SECRET from [default: .dev.vars]
    #[arg(long, value_name = "PATH")]
    secret_file: Option<PathBuf>,
}

// Hand-written so that `{:?}` of the arguments never prints the secret.
impl fmt::Debug for SecretArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretArgs")
            .field("secret", &self.secret.as_ref().map(|_| "[redacted]"))
            .field("secret_file", &self.secret_file)
            .finish()
    }
}

impl SecretArgs {
    /// Finds the secret, reading this process's environment and the file system.
    pub fn load(&self) -> anyhow::Result<Secret> {
        let from_env = match env::var(VAR) {
            Ok(value) => Some(value),
            Err(VarError::NotPresent) => None,
            Err(VarError::NotUnicode(_)) => bail!("{VAR} in the environment is not valid UTF-8"),
        };
        let secret = resolve(
            self.secret.as_deref(),
            from_env.as_deref(),
            self.secret_file.as_deref(),
        )?;
        if secret.bytes().len() < RECOMMENDED_MIN_LEN {
            eprintln!(
                "warning: {VAR} (from {}) is shorter than {RECOMMENDED_MIN_LEN} bytes: \
                 fine for local development, too weak for a deployment",
                secret.source
            );
        }
        Ok(secret)
    }
}

/// A signing secret and where it was found.
pub struct Secret {
    bytes: Vec<u8>,
    source: Source,
}

impl Secret {
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Secret")
            .field("bytes", &"[redacted]")
            .field("source", &self.source)
            .finish()
    }
}

/// Where a [`Secret`] came from, for messages (and tests of the precedence).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Flag,
    Env,
    File(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Flag => f.write_str("--secret"),
            Source::Env => write!(f, "the environment"),
            Source::File(path) => write!(f, "{}", path.display()),
        }
    }
}

/// The precedence rule, free of process state: `flag`, else `env`, else the file (`file`, or
/// [`DEFAULT_FILE`] when `None`). An explicitly named file must exist; a missing default file
/// just means "no secret found".
fn resolve(flag: Option<&str>, env: Option<&str>, file: Option<&Path>) -> anyhow::Result<Secret> {
    let (value, source) = if let Some(value) = flag {
        (value.to_owned(), Source::Flag)
    } else if let Some(value) = env {
        (value.to_owned(), Source::Env)
    } else {
        let explicit = file.is_some();
        let path = file.unwrap_or(Path::new(DEFAULT_FILE));
        match read_dotenv(path)? {
            Some(value) => (value, Source::File(path.to_owned())),
            None if explicit => bail!("{} does not define {VAR}", path.display()),
            None => bail!(
                "no signing secret: pass --secret, set {VAR}, or put {VAR}=… in {DEFAULT_FILE} \
                 (the file `wrangler dev` reads; run from the project root or pass --secret-file)"
            ),
        }
    };
    if value.is_empty() {
        bail!("{VAR} from {source} is empty");
    }
    Ok(Secret {
        bytes: value.into_bytes(),
        source,
    })
}

/// The value of [`VAR`] in a dotenv file; `None` if the file or the variable is absent.
/// If the variable is defined more than once the last definition wins, as it does for the
/// dotenv parser wrangler uses, so the CLI signs with what the Worker will verify with.
fn read_dotenv(path: &Path) -> anyhow::Result<Option<String>> {
    let entries = match dotenvy::from_path_iter(path) {
        Ok(entries) => entries,
        Err(err) if err.not_found() => return Ok(None),
        Err(err) => return Err(err).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut found = None;
    for entry in entries {
        let (key, value) = entry.with_context(|| format!("cannot parse {}", path.display()))?;
        if key == VAR {
            found = Some(value);
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    /// A temporary directory holding a dotenv file with `contents`.
    fn dotenv(contents: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".dev.vars");
        fs::write(&path, contents).unwrap();
        (dir, path)
    }

    #[test]
    fn flag_beats_env_and_file() {
        let (_dir, file) = dotenv("AUTH_SECRET=from-file\n");
        let secret = resolve(Some("from-flag"), Some("from-env"), Some(&file)).unwrap();
        assert_eq!(secret.bytes(), b"from-flag");
        assert_eq!(secret.source, Source::Flag);
    }

    #[test]
    fn env_beats_file() {
        let (_dir, file) = dotenv("AUTH_SECRET=from-file\n");
        let secret = resolve(None, Some("from-env"), Some(&file)).unwrap();
        assert_eq!(secret.bytes(), b"from-env");
        assert_eq!(secret.source, Source::Env);
    }

    #[test]
    fn file_is_the_fallback() {
        let (_dir, file) = dotenv("OTHER=x\nAUTH_SECRET=from-file\n");
        let secret = resolve(None, None, Some(&file)).unwrap();
        assert_eq!(secret.bytes(), b"from-file");
        assert_eq!(secret.source, Source::File(file));
    }

    #[test]
    fn file_is_parsed_as_dotenv() {
        let (_dir, file) = dotenv(
            "# local secrets, not committed\n\
             CONVEX_URL=\"http://127.0.0.1:3210\"\n\
             export AUTH_SECRET=\"quoted secret # not a comment\"\n",
        );
        let secret = resolve(None, None, Some(&file)).unwrap();
        assert_eq!(secret.bytes(), b"quoted secret # not a comment");
    }

    #[test]
    fn last_definition_in_the_file_wins() {
        let (_dir, file) = dotenv("AUTH_SECRET=first\nAUTH_SECRET=second\n");
        assert_eq!(resolve(None, None, Some(&file)).unwrap().bytes(), b"second");
    }

    #[test]
    fn explicit_missing_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.vars");
        let err = resolve(None, None, Some(&missing)).unwrap_err();
        assert!(format!("{err:#}").contains("nope.vars"), "{err:#}");
    }

    #[test]
    fn file_without_the_variable_is_an_error() {
        let (_dir, file) = dotenv("OTHER=x\n");
        let err = resolve(None, None, Some(&file)).unwrap_err();
        assert!(
            err.to_string().contains("does not define AUTH_SECRET"),
            "{err}"
        );
    }

    #[test]
    fn unparsable_file_is_an_error() {
        let (_dir, file) = dotenv("AUTH_SECRET='unterminated\n");
        let err = resolve(None, None, Some(&file)).unwrap_err();
        assert!(format!("{err:#}").contains("cannot parse"), "{err:#}");
    }

    #[test]
    fn empty_values_are_refused_wherever_they_come_from() {
        let (_dir, file) = dotenv("AUTH_SECRET=\n");
        for (flag, env) in [(Some(""), None), (None, Some("")), (None, None)] {
            let err = resolve(flag, env, Some(&file)).unwrap_err();
            assert!(err.to_string().ends_with("is empty"), "{err}");
        }
        // An empty override is an error, not a reason to fall through to the next source.
        let (_dir, good_file) = dotenv("AUTH_SECRET=from-file\n");
        assert!(resolve(None, Some(""), Some(&good_file)).is_err());
    }

    #[test]
    fn debug_output_never_shows_the_secret() {
        let secret = resolve(Some("hunter2-hunter2"), None, None).unwrap();
        assert!(!format!("{secret:?}").contains("hunter2"));
        let args = SecretArgs {
            secret: Some("hunter2-hunter2".into()),
            secret_file: None,
        };
        assert!(!format!("{args:?}").contains("hunter2"));
    }
}
