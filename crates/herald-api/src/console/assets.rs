//! The console's stylesheet and script, embedded in the binary (no CDN: the console works
//! offline), served with a content type and a cache lifetime.

use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::console::html::secure_headers;

const STYLESHEET: &str = include_str!("assets/console.css");
const SCRIPT: &str = include_str!("assets/console.js");

/// An hour: long enough to spare reloads, short enough that an upgrade shows within the hour
/// (the file names carry no version).
const CACHE_CONTROL: &str = "public, max-age=3600";

fn asset(content_type: &'static str, body: &'static str) -> Response {
    let mut response = (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, CACHE_CONTROL),
        ],
        body,
    )
        .into_response();
    secure_headers(&mut response);
    response
}

pub async fn stylesheet() -> Response {
    asset("text/css; charset=utf-8", STYLESHEET)
}

pub async fn script() -> Response {
    asset("text/javascript; charset=utf-8", SCRIPT)
}
