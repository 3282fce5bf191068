//! `csv_to_json`: read a CSV body (a delivered file) into a JSON array of rows — see
//! [`crate::codec::csv`] for the options. A `split: { jq: '.[]' }` after it makes one
//! message per row.

use async_trait::async_trait;

use super::{Context, Step, StepError};
use crate::codec::{CsvOptions, csv_to_json};
use crate::core::envelope::{Body, Envelope, JSON};

use super::BuildError;
use super::kind::{CheckCx, Problems, StepKind, build_error};
use crate::resources::Resources;

impl StepKind for crate::codec::CsvOptions {
    fn lint(&self, at: &str, out: &mut dyn Problems) {
        for (column, mistake, fix) in crate::codec::csv::type_names_as_fields(&self.columns) {
            out.problem(&format!("{at}.columns.{column}"), mistake, Some(&fix));
        }
    }

    fn check(&self, at: &str, cx: &mut dyn CheckCx) {
        if let Err(e) = crate::codec::csv::check_options(self) {
            cx.problem(at, e.to_string(), None);
        }
    }

    fn build(&self, at: &str, _res: &Resources) -> Result<Box<dyn super::Step>, BuildError> {
        Ok(Box::new(
            CsvToJson::new(self).map_err(|e| build_error(at, e))?,
        ))
    }
}

/// The `csv_to_json` step.
pub struct CsvToJson {
    options: CsvOptions,
}

impl CsvToJson {
    /// Build from the route file's options (a bad separator or encoding is refused).
    pub fn new(spec: &CsvOptions) -> Result<Self, String> {
        crate::codec::csv::check_options(spec)?;
        Ok(CsvToJson {
            options: spec.clone(),
        })
    }
}

#[async_trait]
impl Step for CsvToJson {
    async fn apply(&self, mut m: Envelope, _cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let Body::Bytes(bytes) = &m.body else {
            return Err(StepError::permanent(
                "the body is already JSON; csv_to_json expects a CSV body",
            ));
        };
        let rows = csv_to_json(bytes, &self.options)
            .map_err(|e| StepError::permanent(format!("the body is not acceptable CSV: {e}")))?;
        m.body = Body::Json(rows);
        m.content_type = JSON.to_string();
        Ok(vec![m])
    }
}
