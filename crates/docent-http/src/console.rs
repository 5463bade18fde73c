//! The web console: hand-written ES modules, CSS and one HTML page under `console/`, compiled
//! into the binary with `include_bytes!` and served at `/` (the page) and `/console/*` (its
//! assets). There is no front-end build: what is in `console/` is what the browser runs.
//!
//! Every console response carries a strict Content-Security-Policy (no inline script or style,
//! nothing from another host, no framing), an `ETag` of its bytes and `Cache-Control: no-cache`
//! (the browser revalidates, and gets a `304` while the binary is unchanged). Compression is
//! the router's (`gzip` for clients that accept it). The console talks to the server only
//! through the public `/api/v1` API.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::OnceLock;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, HeaderMap, HeaderValue,
    IF_NONE_MATCH,
};
use axum::response::{IntoResponse, Response};
use docent_config::StorageConfig;
use docent_domain::Code;

use crate::AppState;
use crate::error::ApiError;

/// The policy of console pages: scripts, styles, images and API calls from this origin only;
/// no plugins, no `<base>`, forms post here only, and no page may frame the console.
pub const CONSOLE_CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' data:; connect-src 'self'; font-src 'self'; object-src 'none'; \
     base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// The policy of the console page itself: [`CONSOLE_CSP`], and when the server signs direct
/// uploads to an S3 bucket, `connect-src` also names the bucket's origin, so the browser may
/// `PUT` a file there (the bucket's CORS rules must allow the console's origin too).
pub fn page_csp(storage: &StorageConfig, presigns: bool) -> String {
    let StorageConfig::S3 {
        bucket,
        region,
        endpoint,
        ..
    } = storage
    else {
        return CONSOLE_CSP.to_owned();
    };
    if !presigns {
        return CONSOLE_CSP.to_owned();
    }
    let origins = match endpoint {
        Some(e) => match e.parse::<axum::http::Uri>() {
            Ok(uri) => match (uri.scheme_str(), uri.authority()) {
                (Some(scheme), Some(authority)) => format!("{scheme}://{authority}"),
                _ => return CONSOLE_CSP.to_owned(),
            },
            Err(_) => return CONSOLE_CSP.to_owned(),
        },
        None => {
            format!("https://s3.{region}.amazonaws.com https://{bucket}.s3.{region}.amazonaws.com")
        }
    };
    // Only characters a CSP source may hold: anything else leaves the policy as it is.
    if !origins
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b".-:/ []".contains(&b))
    {
        return CONSOLE_CSP.to_owned();
    }
    CONSOLE_CSP.replace(
        "connect-src 'self'",
        &format!("connect-src 'self' {origins}"),
    )
}

/// Declares the embedded files, relative to `console/`. Every file in that folder must be
/// listed (a test compares the list with the folder), so none is forgotten.
macro_rules! assets {
    ($($path:literal),* $(,)?) => {
        &[$(($path, include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/console/", $path)))),*]
    };
}

/// The console's files: path under `console/`, bytes.
static ASSETS: &[(&str, &[u8])] = assets![
    "index.html",
    "console.css",
    "favicon.svg",
    "js/api.js",
    "js/app.js",
    "js/dom.js",
    "js/format.js",
    "js/views/auth.js",
    "js/views/bots.js",
    "js/views/collections.js",
    "js/views/document.js",
    "js/views/embed.js",
    "js/views/keys.js",
    "js/views/members.js",
    "js/views/search.js",
    "js/views/tasks.js",
];

/// One embedded file, ready to serve.
struct Asset {
    bytes: &'static [u8],
    content_type: &'static str,
    etag: HeaderValue,
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        _ => "application/octet-stream",
    }
}

/// The files by path, with their ETags (a hash of the bytes, computed once).
fn assets() -> &'static HashMap<&'static str, Asset> {
    static MAP: OnceLock<HashMap<&'static str, Asset>> = OnceLock::new();
    MAP.get_or_init(|| {
        ASSETS
            .iter()
            .map(|&(path, bytes)| {
                // `DefaultHasher::new()` has fixed keys: the same bytes get the same tag in
                // every process of this binary.
                let mut h = std::hash::DefaultHasher::new();
                bytes.hash(&mut h);
                let tag = format!("\"{:016x}-{}\"", h.finish(), bytes.len());
                let etag = HeaderValue::from_str(&tag).unwrap_or(HeaderValue::from_static("\"\""));
                (
                    path,
                    Asset {
                        bytes,
                        content_type: content_type(path),
                        etag,
                    },
                )
            })
            .collect()
    })
}

/// Serves one embedded file under `csp`, or `304` when the browser's copy is current.
fn serve(path: &str, headers: &HeaderMap, csp: HeaderValue) -> Result<Response, ApiError> {
    let asset = assets()
        .get(path)
        .ok_or_else(|| ApiError::new(Code::RouteNotFound, format!("no console file {path}")))?;
    let fresh = headers
        .get(IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == asset.etag));
    let mut resp = if fresh {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        asset.bytes.into_response()
    };
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    h.insert(ETAG, asset.etag.clone());
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(CONTENT_SECURITY_POLICY, csp);
    Ok(resp)
}

/// `GET /`: the console page.
pub(crate) async fn index(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let services = &s.services;
    let csp = page_csp(&services.config.storage, services.presign_ttl().is_some());
    let csp = HeaderValue::from_str(&csp).unwrap_or(HeaderValue::from_static(CONSOLE_CSP));
    serve("index.html", &headers, csp)
}

/// `GET /console/{*path}`: its scripts, styles and images.
pub(crate) async fn asset(
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    serve(&path, &headers, HeaderValue::from_static(CONSOLE_CSP))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every file of `console/` is embedded, and every embedded path exists.
    #[test]
    fn the_asset_list_matches_the_folder() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("console");
        let mut on_disk = Vec::new();
        let mut stack = vec![root.clone()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let p = entry.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    let rel = p
                        .strip_prefix(&root)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    on_disk.push(rel.replace('\\', "/"));
                }
            }
        }
        on_disk.sort();
        let mut listed: Vec<String> = ASSETS.iter().map(|(p, _)| (*p).to_owned()).collect();
        listed.sort();
        assert_eq!(listed, on_disk, "console/ and the ASSETS list differ");
    }

    #[test]
    fn types_and_tags() {
        assert_eq!(content_type("js/app.js"), "text/javascript; charset=utf-8");
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        let a = &assets()["index.html"];
        let b = &assets()["console.css"];
        assert_ne!(a.etag, b.etag);
    }

    #[test]
    fn a_current_copy_gets_304_and_an_unknown_file_404() {
        let tag = assets()["js/app.js"].etag.clone();
        let mut h = HeaderMap::new();
        h.insert(IF_NONE_MATCH, tag);
        let csp = || HeaderValue::from_static(CONSOLE_CSP);
        assert_eq!(serve("js/app.js", &h, csp()).unwrap().status(), 304);
        let r = serve("js/app.js", &HeaderMap::new(), csp()).unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()[CONTENT_SECURITY_POLICY], CONSOLE_CSP);
        assert!(serve("../Cargo.toml", &HeaderMap::new(), csp()).is_err());
    }

    #[test]
    fn the_page_may_put_files_to_the_bucket_that_signs_uploads() {
        let s3 = |endpoint: Option<&str>| StorageConfig::S3 {
            bucket: "docs".into(),
            region: "eu-west-1".into(),
            endpoint: endpoint.map(str::to_owned),
            prefix: String::new(),
            allow_http: true,
            create_bucket: false,
            server_side_encryption: docent_config::ServerSideEncryption::None,
            kms_key_id: None,
            presign_ttl: std::time::Duration::from_secs(60),
            redirect_downloads: false,
        };
        let local = StorageConfig::Local {
            path: "blobs".into(),
        };
        assert_eq!(page_csp(&local, false), CONSOLE_CSP);
        assert_eq!(
            page_csp(&s3(None), false),
            CONSOLE_CSP,
            "no signing: no bucket"
        );
        let minio = page_csp(&s3(Some("http://127.0.0.1:9000/some/path")), true);
        assert!(
            minio.contains("connect-src 'self' http://127.0.0.1:9000;"),
            "{minio}"
        );
        let aws = page_csp(&s3(None), true);
        assert!(
            aws.contains(
                "connect-src 'self' https://s3.eu-west-1.amazonaws.com https://docs.s3.eu-west-1.amazonaws.com;"
            ),
            "{aws}"
        );
        let odd = page_csp(&s3(Some("http://evil;script-src *")), true);
        assert_eq!(odd, CONSOLE_CSP, "{odd}");
        assert_eq!(minio.replace(" http://127.0.0.1:9000", ""), CONSOLE_CSP);
    }
}
