//! STUB (replaced by the store branch).
#![allow(missing_docs, dead_code, unused_variables)]
use chrono::{DateTime, Utc};
use uuid::Uuid;
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);
#[derive(Clone)]
pub struct Store;
pub enum Claim {
    First,
    SameMessage,
    Duplicate,
}
pub struct Group {
    pub key: String,
    pub items: Vec<serde_json::Value>,
    pub opened_at: DateTime<Utc>,
}
pub struct JournalEntry {
    pub at: DateTime<Utc>,
    pub message_id: Uuid,
    pub correlation_id: Uuid,
    pub route: String,
    pub step: String,
    pub outcome: String,
    pub duration_us: i64,
    pub detail: Option<String>,
}
impl Store {
    pub async fn connect(url: &str) -> Result<Store, StoreError> {
        Ok(Store)
    }
    pub async fn memory() -> Result<Store, StoreError> {
        Ok(Store)
    }
    pub async fn claim_key(
        &self,
        scope: &str,
        key: &str,
        message_id: Uuid,
    ) -> Result<Claim, StoreError> {
        Ok(Claim::First)
    }
    pub async fn aggregate_add(
        &self,
        route: &str,
        key: &str,
        message_id: Uuid,
        item: &serde_json::Value,
    ) -> Result<Group, StoreError> {
        todo!()
    }
    pub async fn aggregate_take(
        &self,
        route: &str,
        key: &str,
    ) -> Result<Option<Group>, StoreError> {
        Ok(None)
    }
    pub async fn aggregate_expired(
        &self,
        route: &str,
        opened_before: DateTime<Utc>,
    ) -> Result<Vec<String>, StoreError> {
        Ok(vec![])
    }
    pub async fn journal(&self, entry: &JournalEntry) -> Result<(), StoreError> {
        Ok(())
    }
    pub async fn close(&self) {}
}
