//! Helpers shared by the group API handlers: string conversions and the one place that turns
//! an unexpected `GroupAnswer` into an error code.

use kafka_protocol::protocol::StrBytes;

use crate::groups::{GroupAnswer, GroupCode};

pub fn owned(s: &StrBytes) -> String {
    s.to_string()
}

pub fn owned_opt(s: &Option<StrBytes>) -> Option<String> {
    s.as_ref().map(owned)
}

pub fn str_opt(s: Option<&str>) -> Option<StrBytes> {
    s.map(super::str_bytes)
}

/// The outcome of an answer that is not the expected variant.
pub fn error_of(answer: &GroupAnswer) -> GroupCode {
    match answer {
        GroupAnswer::Error(code) | GroupAnswer::Code(code) => *code,
        _ => GroupCode::UnknownServerError,
    }
}
