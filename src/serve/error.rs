//! Errors as OpenAI sends them: a status and `{"error": {"message", "type", "param",
//! "code"}}`.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ponder_engine::EngineError;
use ponder_search::SearchError;
use serde_json::json;

/// An error reply.
#[derive(Clone, Debug)]
pub struct ApiError {
    /// The HTTP status.
    pub status: StatusCode,
    /// What went wrong, for a person.
    pub message: String,
    /// The request field at fault, if one is.
    pub param: Option<String>,
    /// A short machine-readable code.
    pub code: &'static str,
    /// Seconds after which to retry (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// A 400 naming the field at fault.
    pub fn invalid(param: Option<&str>, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            param: param.map(str::to_string),
            code,
            retry_after: None,
        }
    }

    /// Any status.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            param: None,
            code,
            retry_after: None,
        }
    }

    /// The OpenAI `type` for the status.
    pub fn kind(&self) -> &'static str {
        match self.status.as_u16() {
            401 => "authentication_error",
            404 => "not_found_error",
            429 => "rate_limit_error",
            400..=499 => "invalid_request_error",
            _ => "server_error",
        }
    }

    /// The JSON body.
    pub fn body(&self) -> serde_json::Value {
        json!({"error": {
            "message": self.message,
            "type": self.kind(),
            "param": self.param,
            "code": self.code,
        }})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(self.body())).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// The stop behind a search error, if a cancel or deadline is what ended it (in the
/// policy's engine, or in a scorer model's).
fn stop_of(e: &SearchError) -> Option<&EngineError> {
    let engine = match e {
        SearchError::Engine(e) => Some(e),
        SearchError::Score(s) => s.engine_error(),
        SearchError::Scoring { source, .. } => source.engine_error(),
        _ => None,
    };
    engine.filter(|e| matches!(e, EngineError::Cancelled | EngineError::DeadlinePassed))
}

impl From<SearchError> for ApiError {
    fn from(e: SearchError) -> Self {
        let msg = e.to_string();
        if let Some(stop) = stop_of(&e) {
            return stop.clone().into();
        }
        match e {
            SearchError::UnknownStrategy(_) => Self::invalid(Some("model"), "model_not_found", msg),
            SearchError::Setting { .. } => Self::invalid(Some("ponder"), "invalid_setting", msg),
            SearchError::InvalidParam { name, .. } => {
                Self::invalid(Some(name), "invalid_value", msg)
            }
            SearchError::Missing { .. } => {
                Self::invalid(Some("model"), "unsupported_strategy", msg)
            }
            SearchError::Engine(e) => e.into(),
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "search_failed", msg),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        let msg = e.to_string();
        match e {
            EngineError::PromptTooLong { .. }
            | EngineError::KvCapacity { .. }
            | EngineError::PositionOverflow { .. } => {
                Self::invalid(Some("messages"), "context_length_exceeded", msg)
            }
            EngineError::InvalidParam { name, .. } => {
                Self::invalid(Some(name), "invalid_value", msg)
            }
            EngineError::TooManySequences { .. } => Self::invalid(Some("n"), "invalid_value", msg),
            EngineError::Template { .. } => Self::invalid(Some("messages"), "template", msg),
            // Stopped before any answer existed (a stop during generation instead gives
            // the answer so far, marked truncated).
            EngineError::DeadlinePassed => Self::new(
                StatusCode::REQUEST_TIMEOUT,
                "timeout",
                format!("{msg}: no answer existed yet (raise ponder.timeout or --timeout)"),
            ),
            EngineError::Cancelled => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "cancelled",
                format!("{msg} (the client left or the server is shutting down)"),
            ),
            _ => Self::new(StatusCode::INTERNAL_SERVER_ERROR, "engine_failed", msg),
        }
    }
}
