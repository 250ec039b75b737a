//! The web demo served at `/`: the built bundle (`web-demo/dist`) embedded in the binary, so a
//! binary copied or installed anywhere serves it; `--static-dir` serves a directory instead.
//! Both with the same caching rule.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::LazyLock;

use include_dir::{include_dir, Dir};
use warp::filters::BoxedFilter;
use warp::http::{header, HeaderValue, StatusCode};
use warp::path::FullPath;
use warp::reply::{Reply, Response};
use warp::Filter;

/// The demo as it was built when this binary was (`build.rs` rebuilds the binary when `dist`
/// changes).
static DIST: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../web-demo/dist");

/// Vite emits every file under `assets/` with a hash of its content in the name, so a changed
/// file gets a new URL: those may be kept for a year without asking again.
const HASHED_DIR: &str = "assets/";
const HASHED: &str = "public, max-age=31536000, immutable";
/// Everything else (index.html, which names the hashed files; the service worker; the icon) is
/// asked for again each time, answered 304 while its ETag holds, so a new build is seen at once.
const REVALIDATED: &str = "no-cache";

/// The caching rule of a path of the demo (with or without its leading `/`).
pub fn cache_control(path: &str) -> &'static str {
    if path.trim_start_matches('/').starts_with(HASHED_DIR) {
        HASHED
    } else {
        REVALIDATED
    }
}

/// The files of a `--static-dir` (content types, `Last-Modified` and ranges by `warp::fs`),
/// with the caching rule; paths with no file there are left to the routes after it.
pub fn from_dir(dir: PathBuf) -> BoxedFilter<(Response,)> {
    warp::path::full()
        .and(warp::fs::dir(dir))
        .map(|path: FullPath, file: warp::fs::File| {
            let mut response = file.into_response();
            let rule = HeaderValue::from_static(cache_control(path.as_str()));
            response.headers_mut().insert(header::CACHE_CONTROL, rule);
            response
        })
        .boxed()
}

/// The embedded demo: `GET /` is its index.html; paths it has no file for are left to the
/// routes after it.
pub fn embedded() -> BoxedFilter<(Response,)> {
    warp::get()
        .or(warp::head())
        .unify()
        .and(warp::path::full())
        .and(warp::header::optional::<String>("if-none-match"))
        .and_then(|path: FullPath, known: Option<String>| async move {
            embedded_file(path.as_str(), known.as_deref()).ok_or_else(warp::reject::not_found)
        })
        .boxed()
}

/// The answer for `path` from the embedded bundle; `known` is the client's `If-None-Match`.
fn embedded_file(path: &str, known: Option<&str>) -> Option<Response> {
    let name = match path.trim_start_matches('/') {
        "" => "index.html",
        name => name,
    };
    let file = DIST.get_file(name)?;
    let etag = ETAGS.get(name)?;
    let unchanged = known.is_some_and(|known| {
        known.split(',').map(str::trim).any(|tag| {
            // A weak match is enough to answer 304 (RFC 9110, If-None-Match).
            tag == "*" || tag.trim_start_matches("W/") == etag
        })
    });
    let mut response = if unchanged {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = Response::new(file.contents().into());
        let mime = mime_guess::from_path(name).first_or_octet_stream();
        if let Ok(value) = HeaderValue::from_str(mime.as_ref()) {
            response.headers_mut().insert(header::CONTENT_TYPE, value);
        }
        response
    };
    let headers = response.headers_mut();
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(cache_control(name)),
    );
    if let Ok(value) = HeaderValue::from_str(etag) {
        headers.insert(header::ETAG, value);
    }
    Some(response)
}

/// An ETag per embedded file, worked out once: a hash of its content, so it changes exactly
/// when a build changes the file.
static ETAGS: LazyLock<HashMap<&'static str, String>> = LazyLock::new(|| {
    let mut etags = HashMap::new();
    let mut dirs = vec![&DIST];
    while let Some(dir) = dirs.pop() {
        dirs.extend(dir.dirs());
        for file in dir.files() {
            let Some(name) = file.path().to_str() else {
                continue;
            };
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            file.contents().hash(&mut hasher);
            etags.insert(name, format!("\"{:016x}\"", hasher.finish()));
        }
    }
    etags
});

#[cfg(test)]
mod tests {
    use super::*;

    // The bundle is in the binary: its index names the hashed assets, which are there too, and
    // each file is answered with its type and caching rule; an ETag the client holds is a 304.
    #[test]
    fn the_embedded_bundle_answers_with_types_and_caching() {
        let index = embedded_file("/", None).expect("index");
        let headers = index.headers();
        assert_eq!(headers[header::CONTENT_TYPE], "text/html");
        assert_eq!(headers[header::CACHE_CONTROL], "no-cache");
        let html = std::str::from_utf8(DIST.get_file("index.html").expect("index").contents())
            .expect("utf-8");
        let script = html
            .split('"')
            .find(|part| part.starts_with("./assets/") && part.ends_with(".js"))
            .expect("index names a hashed script")
            .trim_start_matches('.');
        let js = embedded_file(script, None).expect("the script is embedded");
        assert!(
            js.headers()[header::CONTENT_TYPE]
                .to_str()
                .expect("ascii")
                .ends_with("javascript"),
            "{:?}",
            js.headers()
        );
        assert_eq!(js.headers()[header::CACHE_CONTROL], HASHED);

        let etag = headers[header::ETAG].to_str().expect("ascii").to_string();
        let again = embedded_file("/index.html", Some(&etag)).expect("index");
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        let other = embedded_file("/index.html", Some("\"0\"")).expect("index");
        assert_eq!(other.status(), StatusCode::OK);
        assert!(embedded_file("/no-such-file.js", None).is_none());
        assert!(embedded_file("/../Cargo.toml", None).is_none());
    }
}
