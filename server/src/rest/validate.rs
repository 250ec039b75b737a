//! Validating requests before any room is asked: bodies parsed into their types, ids, short
//! texts, lists and enumerations checked, each refusal naming the field at fault.

use serde::de::DeserializeOwned;
use tandem_crdt_model::schema::{LIST_LEN_MAX, SHORT_TEXT_CHARS_MAX};
use warp::http::StatusCode;

use crate::api_error::ApiError;

/// An id from a path, a query or a body (`doc_name::validate_id`).
pub(super) fn check_id(field: &str, id: &str) -> Result<(), ApiError> {
    crate::doc_name::validate_id(id).map_err(|rule| ApiError::invalid(field, rule))
}

/// Parses a JSON body, naming the field at fault when it does not fit.
pub(super) fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if path == "." || path.is_empty() {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", inner.to_string())
        } else {
            ApiError::invalid(path, inner.to_string())
        }
    })
}

/// Short text fields are bounded in characters (what the OpenAPI schema can state).
pub(super) fn check_short(field: &str, value: &str) -> Result<(), ApiError> {
    if value.chars().count() > SHORT_TEXT_CHARS_MAX {
        return Err(ApiError::invalid(
            field,
            format!("longer than {SHORT_TEXT_CHARS_MAX} characters"),
        ));
    }
    Ok(())
}

pub(super) fn check_list(field: &str, values: &[String]) -> Result<(), ApiError> {
    if values.len() > LIST_LEN_MAX {
        return Err(ApiError::invalid(
            field,
            format!("more than {LIST_LEN_MAX} entries"),
        ));
    }
    for (i, v) in values.iter().enumerate() {
        check_short(&format!("{field}[{i}]"), v)?;
    }
    Ok(())
}

pub(super) fn check_enum(
    field: &str,
    value: Option<&str>,
    allowed: &[&str],
) -> Result<(), ApiError> {
    match value {
        Some(v) if !allowed.contains(&v) => Err(ApiError::invalid(
            field,
            format!("must be one of {}", allowed.join(", ")),
        )),
        _ => Ok(()),
    }
}
