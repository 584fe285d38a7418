//! The one error a configuration can have.

/// A configuration problem, phrased for one log line. Never contains a configured value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub(super) fn problem(at: impl std::fmt::Display, what: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("{at}: {what}"))
}
