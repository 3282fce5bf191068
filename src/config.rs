//! STUB (replaced by the ops branch).
#![allow(missing_docs)]
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub broker: BrokerConfig,
    pub http: HttpConfig,
    pub admin: AdminConfig,
    pub store: StoreConfig,
    pub sandbox: SandboxConfig,
    pub log: LogConfig,
    pub shutdown: ShutdownConfig,
}
#[derive(Debug, Clone, Default)]
pub struct BrokerConfig {
    pub url: Option<String>,
    pub prefetch: u16,
}
#[derive(Debug, Clone, Default)]
pub struct HttpConfig {
    pub bind: String,
    pub max_body: usize,
    pub auth: BTreeMap<String, AuthScheme>,
}
#[derive(Debug, Clone)]
pub enum AuthScheme {
    ApiKey { header: String, key_env: String },
    BearerJwt { issuer: String },
}
#[derive(Debug, Clone, Default)]
pub struct AdminConfig {
    pub bind: String,
}
#[derive(Debug, Clone, Default)]
pub struct StoreConfig {
    pub url: Option<String>,
}
#[derive(Debug, Clone, Default)]
pub struct SandboxConfig {
    pub enabled: bool,
    pub bind: String,
}
#[derive(Debug, Clone, Copy, Default)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}
#[derive(Debug, Clone, Default)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}
#[derive(Debug, Clone, Default)]
pub struct ShutdownConfig {
    pub timeout: Duration,
}
impl Config {
    pub fn load(root: &Path) -> Result<Config, ConfigError> {
        Ok(Config {
            http: HttpConfig {
                bind: "127.0.0.1:8080".into(),
                max_body: 1 << 20,
                auth: BTreeMap::new(),
            },
            admin: AdminConfig {
                bind: "127.0.0.1:9090".into(),
            },
            shutdown: ShutdownConfig {
                timeout: Duration::from_secs(30),
            },
            ..Default::default()
        })
    }
    pub fn store_url(&self, root: &Path) -> String {
        self.store
            .url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}/data/knut.db?mode=rwc", root.display()))
    }
}
