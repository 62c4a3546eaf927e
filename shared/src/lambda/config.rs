//! Each function's configuration, read once from the environment into a typed struct.
//! The names here are the contract with infra/template.yaml (a test checks both sides).

use crate::adapters::sources::http::SourcesConfig;
use std::collections::HashMap;

pub const SIGNALS_TABLE: &str = "GRD_SIGNALS_TABLE";
pub const NODES_TABLE: &str = "GRD_NODES_TABLE";
pub const BACKLOG_TABLE: &str = "GRD_BACKLOG_TABLE";
pub const DISPATCHES_TABLE: &str = "GRD_DISPATCHES_TABLE";
pub const RAW_BUCKET: &str = "GRD_RAW_BUCKET";
pub const HORIZON_HOURS: &str = "GRD_HORIZON_HOURS";
pub const STRATEGY: &str = "GRD_STRATEGY";
pub const SIGNAL_SOURCE: &str = "GRD_SIGNAL_SOURCE";
/// The settings of the real sources the template gives the fetch functions (the others of
/// [`SourcesConfig::VARIABLES`] keep their defaults unless set).
pub const OPEN_METEO_URL: &str = "GRD_OPEN_METEO_URL";
pub const HTTP_USER_AGENT: &str = "GRD_HTTP_USER_AGENT";
pub const EUR_USD: &str = "GRD_EUR_USD";
pub const HTTP_TIMEOUT_MS: &str = "GRD_HTTP_TIMEOUT_MS";
pub const HTTP_RETRIES: &str = "GRD_HTTP_RETRIES";
/// Name of the SSM SecureString holding the Open-Meteo API key (commercial host); empty
/// for none. The key itself never sits in the environment.
pub const OPEN_METEO_API_KEY_PARAMETER: &str = "GRD_OPEN_METEO_API_KEY_PARAMETER";
/// Name of the SSM SecureString holding the dashboard's token; empty when the Function URL
/// is IAM-authenticated instead.
pub const DASHBOARD_TOKEN_PARAMETER: &str = "GRD_DASHBOARD_TOKEN_PARAMETER";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("environment variable {0} is not set")]
    Missing(&'static str),
    #[error("environment variable {name} = {value:?}: {problem}")]
    Invalid {
        name: &'static str,
        value: String,
        problem: String,
    },
    /// A setting of the real sources (the message names the variable).
    #[error("environment: {0}")]
    Sources(String),
}

/// A view of the environment (a map in tests).
pub struct Env(HashMap<String, String>);

impl Env {
    pub fn from_process() -> Env {
        Env(std::env::vars().collect())
    }

    pub fn from_pairs(pairs: &[(&str, &str)]) -> Env {
        Env(pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect())
    }

    fn required(&self, name: &'static str) -> Result<String, ConfigError> {
        match self.0.get(name) {
            Some(v) if !v.trim().is_empty() => Ok(v.trim().to_string()),
            _ => Err(ConfigError::Missing(name)),
        }
    }

    fn horizon(&self) -> Result<u32, ConfigError> {
        let v = self.required(HORIZON_HOURS)?;
        match v.parse::<u32>() {
            Ok(h) if (1..=336).contains(&h) => Ok(h),
            _ => Err(ConfigError::Invalid {
                name: HORIZON_HOURS,
                value: v,
                problem: "must be 1..=336 hours".into(),
            }),
        }
    }
}

/// Where the fetch functions get their signals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceChoice {
    /// The calibrated generator (`synthetic` or `synthetic:SEED`).
    Synthetic { seed: u64 },
    /// CSV series in the raw bucket under [`REPLAY_PREFIX`], looped, at `speed` series hours
    /// per real hour (`replay` = 1, `replay:SPEED`).
    Replay { speed: u32 },
    /// The public APIs each node names in its `sources` (`live`); a node naming none gets
    /// no data of that kind and goes stale.
    Live,
}

/// Key prefix of the replay series in the raw bucket: `replay/<node_id>/{weather,prices}.csv`.
pub const REPLAY_PREFIX: &str = "replay";

/// fetch-weather and fetch-prices.
#[derive(Debug, Clone, PartialEq)]
pub struct FetchConfig {
    pub nodes_table: String,
    pub signals_table: String,
    pub raw_bucket: String,
    pub horizon: u32,
    pub source: SourceChoice,
    /// Where the real sources are and how they are called (read whatever the choice).
    pub live: SourcesConfig,
    /// SSM parameter (SecureString) with the Open-Meteo API key, read at start-up.
    pub open_meteo_key_parameter: Option<String>,
}

impl FetchConfig {
    pub const VARS: &'static [&'static str] = &[
        NODES_TABLE,
        SIGNALS_TABLE,
        RAW_BUCKET,
        HORIZON_HOURS,
        SIGNAL_SOURCE,
        OPEN_METEO_URL,
        HTTP_USER_AGENT,
        EUR_USD,
        HTTP_TIMEOUT_MS,
        HTTP_RETRIES,
        OPEN_METEO_API_KEY_PARAMETER,
    ];

    pub fn from_env(env: &Env) -> Result<FetchConfig, ConfigError> {
        let value = env.required(SIGNAL_SOURCE)?;
        let invalid = |problem: &str| ConfigError::Invalid {
            name: SIGNAL_SOURCE,
            value: value.clone(),
            problem: problem.into(),
        };
        let source = match value.split_once(':') {
            None if value == "synthetic" => SourceChoice::Synthetic { seed: 42 },
            None if value == "replay" => SourceChoice::Replay { speed: 1 },
            None if value == "live" => SourceChoice::Live,
            Some(("replay", speed)) => SourceChoice::Replay {
                speed: speed
                    .parse()
                    .ok()
                    .filter(|s| (1..=168).contains(s))
                    .ok_or_else(|| invalid("the replay speed after `:` must be 1..168"))?,
            },
            Some(("synthetic", seed)) => SourceChoice::Synthetic {
                seed: seed
                    .parse()
                    .map_err(|_| invalid("the seed after `:` must be a whole number"))?,
            },
            _ => {
                return Err(invalid(
                    "known sources: synthetic[:SEED], replay[:SPEED], live",
                ))
            }
        };
        Ok(FetchConfig {
            nodes_table: env.required(NODES_TABLE)?,
            signals_table: env.required(SIGNALS_TABLE)?,
            raw_bucket: env.required(RAW_BUCKET)?,
            horizon: env.horizon()?,
            source,
            live: SourcesConfig::from_env(|k| env.0.get(k).cloned())
                .map_err(ConfigError::Sources)?,
            open_meteo_key_parameter: match env.0.get(OPEN_METEO_API_KEY_PARAMETER) {
                Some(v) if v.trim().starts_with('/') => Some(v.trim().to_string()),
                Some(v) if !v.trim().is_empty() => {
                    return Err(ConfigError::Invalid {
                        name: OPEN_METEO_API_KEY_PARAMETER,
                        value: v.clone(),
                        problem: "an SSM parameter name starting with `/`".into(),
                    })
                }
                _ => None,
            },
        })
    }
}

/// price-nodes.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceConfig {
    pub signals_table: String,
    pub nodes_table: String,
    pub horizon: u32,
}

impl PriceConfig {
    pub const VARS: &'static [&'static str] = &[SIGNALS_TABLE, NODES_TABLE, HORIZON_HOURS];

    pub fn from_env(env: &Env) -> Result<PriceConfig, ConfigError> {
        Ok(PriceConfig {
            signals_table: env.required(SIGNALS_TABLE)?,
            nodes_table: env.required(NODES_TABLE)?,
            horizon: env.horizon()?,
        })
    }
}

/// dispatch-jobs.
#[derive(Debug, Clone, PartialEq)]
pub struct DispatchConfig {
    pub backlog_table: String,
    pub dispatches_table: String,
    pub nodes_table: String,
    pub strategy: String,
    pub horizon: u32,
}

impl DispatchConfig {
    pub const VARS: &'static [&'static str] = &[
        BACKLOG_TABLE,
        DISPATCHES_TABLE,
        NODES_TABLE,
        STRATEGY,
        HORIZON_HOURS,
    ];

    pub fn from_env(env: &Env) -> Result<DispatchConfig, ConfigError> {
        let strategy = env.required(STRATEGY)?;
        if crate::domain::plan::strategy_by_name(&strategy).is_none() {
            return Err(ConfigError::Invalid {
                name: STRATEGY,
                value: strategy,
                problem: format!("known: {}", crate::domain::plan::STRATEGY_NAMES.join(", ")),
            });
        }
        Ok(DispatchConfig {
            backlog_table: env.required(BACKLOG_TABLE)?,
            dispatches_table: env.required(DISPATCHES_TABLE)?,
            nodes_table: env.required(NODES_TABLE)?,
            strategy,
            horizon: env.horizon()?,
        })
    }
}

/// The dashboard function: the operator page and API over the stack's tables.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardConfig {
    pub nodes_table: String,
    pub backlog_table: String,
    pub dispatches_table: String,
    /// SSM SecureString with the token every API call must carry; `None`: the Function
    /// URL itself is IAM-authenticated.
    pub token_parameter: Option<String>,
}

impl DashboardConfig {
    pub const VARS: &'static [&'static str] = &[
        NODES_TABLE,
        BACKLOG_TABLE,
        DISPATCHES_TABLE,
        DASHBOARD_TOKEN_PARAMETER,
    ];

    pub fn from_env(env: &Env) -> Result<DashboardConfig, ConfigError> {
        Ok(DashboardConfig {
            nodes_table: env.required(NODES_TABLE)?,
            backlog_table: env.required(BACKLOG_TABLE)?,
            dispatches_table: env.required(DISPATCHES_TABLE)?,
            token_parameter: env.required(DASHBOARD_TOKEN_PARAMETER).ok(),
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_invalid_variables_are_named() {
        let env = Env::from_pairs(&[(SIGNALS_TABLE, "s"), (NODES_TABLE, "n")]);
        assert_eq!(
            PriceConfig::from_env(&env).unwrap_err(),
            ConfigError::Missing(HORIZON_HOURS)
        );
        let env = Env::from_pairs(&[
            (SIGNALS_TABLE, "s"),
            (NODES_TABLE, "n"),
            (HORIZON_HOURS, "0"),
        ]);
        assert!(PriceConfig::from_env(&env)
            .unwrap_err()
            .to_string()
            .contains("GRD_HORIZON_HOURS"));
        let env = Env::from_pairs(&[
            (BACKLOG_TABLE, "b"),
            (DISPATCHES_TABLE, "d"),
            (NODES_TABLE, "n"),
            (STRATEGY, "magic"),
            (HORIZON_HOURS, "48"),
        ]);
        assert!(DispatchConfig::from_env(&env)
            .unwrap_err()
            .to_string()
            .contains("magic"));
        let env = Env::from_pairs(&[
            (NODES_TABLE, "n"),
            (SIGNALS_TABLE, "s"),
            (RAW_BUCKET, "b"),
            (HORIZON_HOURS, "24"),
            (SIGNAL_SOURCE, "synthetic:7"),
        ]);
        let c = FetchConfig::from_env(&env).unwrap();
        assert_eq!(
            (c.source, c.horizon),
            (SourceChoice::Synthetic { seed: 7 }, 24)
        );
        let with = |source: &str| {
            FetchConfig::from_env(&Env::from_pairs(&[
                (NODES_TABLE, "n"),
                (SIGNALS_TABLE, "s"),
                (RAW_BUCKET, "b"),
                (HORIZON_HOURS, "24"),
                (SIGNAL_SOURCE, source),
            ]))
        };
        assert_eq!(
            with("replay").unwrap().source,
            SourceChoice::Replay { speed: 1 }
        );
        assert_eq!(
            with("replay:24").unwrap().source,
            SourceChoice::Replay { speed: 24 }
        );
        assert_eq!(with("live").unwrap().source, SourceChoice::Live);
        assert_eq!(
            with("synthetic").unwrap().source,
            SourceChoice::Synthetic { seed: 42 }
        );
        for bad in [
            "replay:x",
            "replay:0",
            "replay:1000",
            "synthetic:x",
            "live:x",
            "real",
            "",
        ] {
            let e = with(bad).unwrap_err().to_string();
            assert!(e.contains("GRD_SIGNAL_SOURCE"), "{bad}: {e}");
        }
        let live = FetchConfig::from_env(&Env::from_pairs(&[
            (NODES_TABLE, "n"),
            (SIGNALS_TABLE, "s"),
            (RAW_BUCKET, "b"),
            (HORIZON_HOURS, "24"),
            (SIGNAL_SOURCE, "live"),
            (OPEN_METEO_URL, "https://customer-api.open-meteo.com"),
            (HTTP_TIMEOUT_MS, "3000"),
            (HTTP_RETRIES, "1"),
        ]))
        .unwrap()
        .live;
        assert_eq!(live.open_meteo_url, "https://customer-api.open-meteo.com");
        assert_eq!(live.http.timeout, std::time::Duration::from_secs(3));
        assert_eq!(live.http.retries, 1);
        let key = |v: &str| {
            FetchConfig::from_env(&Env::from_pairs(&[
                (NODES_TABLE, "n"),
                (SIGNALS_TABLE, "s"),
                (RAW_BUCKET, "b"),
                (HORIZON_HOURS, "24"),
                (SIGNAL_SOURCE, "live"),
                (OPEN_METEO_API_KEY_PARAMETER, v),
            ]))
        };
        assert_eq!(
            key("/grd/open-meteo").unwrap().open_meteo_key_parameter,
            Some("/grd/open-meteo".to_string())
        );
        assert_eq!(key("").unwrap().open_meteo_key_parameter, None);
        assert!(key("grd-key")
            .unwrap_err()
            .to_string()
            .contains("GRD_OPEN_METEO_API_KEY_PARAMETER"));
        let e = FetchConfig::from_env(&Env::from_pairs(&[
            (NODES_TABLE, "n"),
            (SIGNALS_TABLE, "s"),
            (RAW_BUCKET, "b"),
            (HORIZON_HOURS, "24"),
            (SIGNAL_SOURCE, "live"),
            (EUR_USD, "-1"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(e.contains("GRD_EUR_USD"), "{e}");
    }
}
