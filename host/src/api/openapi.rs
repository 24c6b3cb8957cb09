//! The OpenAPI 3 document of the API, written by hand in `openapi.json` beside this file and
//! served as is. A test compares its paths and methods with the [`RouteTable`](super::RouteTable).

use axum::http::header;
use axum::response::IntoResponse;

/// The document.
pub const DOCUMENT: &str = include_str!("openapi.json");

/// `GET /v1/openapi.json`.
pub async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], DOCUMENT)
}

/// The (METHOD, path) pairs the document describes.
///
/// # Errors
/// When the embedded document is not the expected JSON shape.
pub fn documented_routes() -> Result<Vec<(String, String)>, String> {
    let doc: serde_json::Value =
        serde_json::from_str(DOCUMENT).map_err(|e| format!("openapi.json: {e}"))?;
    let paths = doc["paths"]
        .as_object()
        .ok_or("openapi.json has no paths object")?;
    let mut routes = Vec::new();
    for (path, item) in paths {
        let item = item.as_object().ok_or("a path item is not an object")?;
        for method in item.keys() {
            routes.push((method.to_uppercase(), path.clone()));
        }
    }
    routes.sort();
    Ok(routes)
}
