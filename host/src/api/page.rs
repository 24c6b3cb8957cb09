//! The web status page: one HTML file with its script, embedded in the binary. It reads the
//! API like any client (lines, calls, phones, then the event stream) with the token the user
//! types in, kept in the browser's session storage, never in a URL.

use axum::http::header;
use axum::response::IntoResponse;

/// The page.
pub const INDEX: &str = include_str!("page.html");

/// `GET /`.
pub async fn index() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-cache"),
            // The page can place calls: no other site may frame it (clickjacking).
            (header::X_FRAME_OPTIONS, "DENY"),
            (
                header::CONTENT_SECURITY_POLICY,
                "frame-ancestors 'none'; default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'unsafe-inline'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        ],
        INDEX,
    )
}
