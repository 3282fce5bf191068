//! `excel_to_json`: read an Excel workbook (.xlsx/.xls) body into a JSON array of rows — see [`crate::codec::excel`]
//! for the options. A `split: { jq: '.[]' }` after it makes one message per row.

use async_trait::async_trait;

use super::{Context, Step, StepError};
use crate::codec::{ExcelOptions, excel_to_json};
use crate::core::envelope::{Body, Envelope, JSON};

use super::BuildError;
use super::kind::{Problems, StepKind, build_error};
use crate::resources::Resources;

impl StepKind for crate::codec::ExcelOptions {
    fn lint(&self, at: &str, out: &mut dyn Problems) {
        for (column, mistake, fix) in crate::codec::csv::type_names_as_fields(&self.columns) {
            out.problem(&format!("{at}.columns.{column}"), mistake, Some(&fix));
        }
    }

    fn build(&self, at: &str, _res: &Resources) -> Result<Box<dyn super::Step>, BuildError> {
        Ok(Box::new(
            ExcelToJson::new(self).map_err(|e| build_error(at, e))?,
        ))
    }
}

/// The `excel_to_json` step.
pub struct ExcelToJson {
    options: ExcelOptions,
}

impl ExcelToJson {
    /// Build from the route file's options.
    pub fn new(spec: &ExcelOptions) -> Result<Self, String> {
        Ok(ExcelToJson {
            options: spec.clone(),
        })
    }
}

#[async_trait]
impl Step for ExcelToJson {
    async fn apply(&self, mut m: Envelope, _cx: &Context) -> Result<Vec<Envelope>, StepError> {
        let Body::Bytes(bytes) = &m.body else {
            return Err(StepError::permanent(
                "the body is already JSON; excel_to_json expects an Excel workbook (.xlsx/.xls) body",
            ));
        };
        let rows = excel_to_json(bytes, &self.options).map_err(|e| {
            StepError::permanent(format!("the body is not an acceptable workbook: {e}"))
        })?;
        m.body = Body::Json(rows);
        m.content_type = JSON.to_string();
        Ok(vec![m])
    }
}
