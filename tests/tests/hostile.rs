//! Hostile requests a schema fuzzer is unlikely to make (docs/RELIABILITY.md): mutations with
//! no token or a wrong one, path traversal in every id or name parameter (and in the static
//! files' paths), oversized and endless bodies, huge `k`, deeply nested or huge JSON, and slow
//! clients that never finish their headers or their body. Every answer is a JSON 4xx (never a
//! 5xx, never a file from outside the served roots), and the server keeps answering others.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use e2e::{PERPEFT, TOKEN, server};
use perpeft::api::{BODY_TIMEOUT, HEADER_TIMEOUT, MAX_BODY};
use serde_json::{Value, json};

/// A stand-in front end.
fn dist() -> std::path::PathBuf {
    e2e::stand_in_dist("hostile", "<html>perpeft-hostile-index</html>")
}

fn addr() -> std::net::SocketAddr {
    server(dist()).addr
}

/// Sends `raw` bytes on a fresh connection and reads the answer until the server closes it or
/// `wait` passes. Returns the status (0 when no status line came) and the whole text.
fn raw(raw: &[u8], wait: Duration) -> (u16, String) {
    let mut s = TcpStream::connect(addr()).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(raw).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|r| r.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A one-shot HTTP/1.1 request with the path exactly as given (no client normalises it).
fn request(method: &str, path: &str, headers: &str, body: &str) -> (u16, String) {
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n{headers}Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    raw(req.as_bytes(), Duration::from_secs(30))
}

/// The JSON body of a raw answer.
fn json_body(text: &str) -> Value {
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Names and ids that try to leave the runs root, or name a file in it.
const TRAVERSALS: [&str; 10] = [
    "..",
    "%2e%2e",
    "..%2F..%2F..%2Fetc%2Fpasswd",
    "%2Fetc%2Fpasswd",
    "registry.sqlite",
    ".perpeft-token",
    "..%5C..%5Cwindows",
    "a%00b",
    "%252e%252e%252f",
    "~root",
];

#[test]
fn path_traversal_in_every_id_or_name_parameter_is_a_json_4xx() {
    let run = PERPEFT;
    for bad in TRAVERSALS {
        let paths = [
            format!("/api/runs/{bad}"),
            format!("/api/runs/{bad}/groups"),
            format!("/api/runs/{bad}/map"),
            format!("/api/runs/{bad}/items"),
            format!("/api/runs/{bad}/users"),
            format!("/api/runs/{bad}/users/1"),
            format!("/api/runs/{run}/users/{bad}"),
            format!("/api/runs/{bad}/users/1/recommendations"),
            format!("/api/runs/{run}/users/{bad}/recommendations"),
            format!("/api/runs/{bad}/grouping"),
            format!("/api/runs/{bad}/groups/0/scorer"),
            format!("/api/runs/{run}/groups/{bad}/scorer"),
            format!("/api/runs/{bad}/groups/0/adapter"),
            format!("/api/runs/{run}/groups/{bad}/adapter"),
            format!("/api/compare?user=1&runs={bad}"),
            format!("/api/compare?user={bad}&runs={run}"),
            format!("/api/jobs/{bad}"),
            format!("/api/jobs/{bad}/events"),
        ];
        for path in &paths {
            let (status, text) = request("GET", path, "", "");
            assert!(
                matches!(status, 400 | 404),
                "GET {path}: status {status}: {text}"
            );
            assert!(json_body(&text)["error"].is_string(), "GET {path}: {text}");
            assert!(!text.contains("root:"), "GET {path} leaked a file: {text}");
        }
        let (status, text) = request(
            "POST",
            &format!("/api/runs/{bad}/assign"),
            "Content-Type: application/json\r\n",
            r#"{"history": [1]}"#,
        );
        assert!(
            matches!(status, 400 | 404),
            "assign {bad}: {status}: {text}"
        );
        let auth = format!("Authorization: Bearer {TOKEN}\r\n");
        let (status, text) = request("DELETE", &format!("/api/jobs/{bad}"), &auth, "");
        assert!(
            matches!(status, 400 | 404),
            "delete {bad}: {status}: {text}"
        );
    }
    // names in a job's body: refused before anything is queued or touched
    let auth = format!("Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n");
    for body in [
        json!({ "run": "../escape", "dataset": "ml-100k" }),
        json!({ "run": "/tmp/abs", "dataset": "ml-100k" }),
        json!({ "run": "ok-name", "dataset": "../../etc" }),
        json!({ "run": "ok-name", "dataset": "ml-100k", "config": { "global_from": "../../etc" } }),
        json!({ "run": "ok-name", "dataset": "ml-100k", "config": { "cache_dir": "/etc" } }),
        json!({ "run": "ok-name", "dataset": "ml-100k", "config": { "clip_dir": "/" } }),
        json!({ "run": "a\u{0}b", "dataset": "ml-100k" }),
    ] {
        let (status, text) = request("POST", "/api/jobs", &auth, &body.to_string());
        assert!(
            matches!(status, 400 | 404 | 422),
            "{body}: status {status}: {text}"
        );
    }
}

#[test]
fn static_paths_stay_inside_the_front_end() {
    for path in [
        "/../../../../etc/passwd",
        "/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/static/..%5c..%5c..%5cetc%5cpasswd",
        "//etc/passwd",
    ] {
        let (status, text) = request("GET", path, "", "");
        assert!(
            matches!(status, 200 | 400 | 404),
            "GET {path}: status {status}: {text}"
        );
        assert!(!text.contains("root:"), "GET {path} leaked a file: {text}");
        if status == 200 {
            assert!(text.contains("perpeft-hostile-index"), "GET {path}: {text}");
        }
    }
}

#[test]
fn mutations_refuse_every_wrong_credential() {
    let body = json!({ "run": "hostile-no-token", "dataset": "ml-100k" }).to_string();
    let json_type = "Content-Type: application/json\r\n";
    for auth in [
        String::new(),
        "Authorization: Bearer\r\n".into(),
        "Authorization: Bearer \r\n".into(),
        "Authorization: Bearer wrong\r\n".into(),
        format!("Authorization: Bearer {TOKEN}x\r\n"),
        format!("Authorization: Bearer {}\r\n", &TOKEN[..TOKEN.len() - 1]),
        format!("Authorization: Basic {TOKEN}\r\n"),
        format!("Authorization: bearer{TOKEN}\r\n"),
        format!("X-Token: {TOKEN}\r\n"),
    ] {
        let headers = format!("{auth}{json_type}");
        let (status, text) = request("POST", "/api/jobs", &headers, &body);
        assert_eq!(status, 401, "{auth:?}: {text}");
        assert!(text.contains("www-authenticate: Bearer"), "{text}");
        let (status, _) = request("DELETE", "/api/jobs/1", &auth, "");
        assert_eq!(status, 401, "delete with {auth:?}");
    }
    // and nothing was queued
    let (_, text) = request("GET", "/api/jobs", "", "");
    assert!(json_body(&text).is_array(), "{text}");
    assert!(!text.contains("hostile-no-token"), "{text}");
}

#[test]
fn huge_k_and_out_of_range_numbers_are_refused() {
    let base = format!("/api/runs/{PERPEFT}/users/1/recommendations");
    for k in [
        "201",
        "4294967296",
        "18446744073709551616",
        "-1",
        "1e9",
        "NaN",
        "0",
    ] {
        let (status, text) = request("GET", &format!("{base}?k={k}"), "", "");
        assert_eq!(status, 400, "k={k}: {text}");
    }
    for group in ["99", "18446744073709551616", "-1"] {
        let (status, text) = request("GET", &format!("{base}?group={group}"), "", "");
        assert!(
            matches!(status, 400 | 422),
            "group={group}: {status}: {text}"
        );
    }
    for limit in ["18446744073709551616", "501", "0", "-1"] {
        let path = format!("/api/runs/{PERPEFT}/users?limit={limit}");
        let (status, text) = request("GET", &path, "", "");
        assert_eq!(status, 400, "limit={limit}: {text}");
    }
    let assign = format!("/api/runs/{PERPEFT}/assign");
    let json_type = "Content-Type: application/json\r\n";
    for body in [
        r#"{"history": [1], "k": 100000000000}"#,
        r#"{"history": [1], "k": 1e400}"#,
        r#"{"history": [4294967296]}"#,
        r#"{"history": [1], "group": 18446744073709551615}"#,
    ] {
        let (status, text) = request("POST", &assign, json_type, body);
        assert!(matches!(status, 400 | 422), "{body}: {status}: {text}");
    }
}

#[test]
fn deep_or_huge_json_is_refused_without_harm() {
    let assign = format!("/api/runs/{PERPEFT}/assign");
    let json_type = "Content-Type: application/json\r\n";
    // nesting far past serde_json's recursion limit, inside the size limit
    let depth = MAX_BODY / 2 - 32;
    let deep = format!(
        r#"{{"history": {}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    assert!(deep.len() < MAX_BODY);
    let (status, text) = request("POST", &assign, json_type, &deep);
    assert!(matches!(status, 400 | 422), "deep: {status}: {text}");
    let deep_objects = format!(
        r#"{{"history": {}1{}}}"#,
        r#"{"a":"#.repeat(5000),
        "}".repeat(5000)
    );
    let (status, text) = request("POST", &assign, json_type, &deep_objects);
    assert!(
        matches!(status, 400 | 422),
        "deep objects: {status}: {text}"
    );
    // deep nesting in a field the request does not have is skipped, not recursed into
    let ignored = format!(
        r#"{{"history": [1], "x": {}1{}}}"#,
        r#"{"a":"#.repeat(5000),
        "}".repeat(5000)
    );
    let (status, text) = request("POST", &assign, json_type, &ignored);
    assert!(
        matches!(status, 200 | 400 | 422),
        "ignored nesting: {status}: {text}"
    );
    // over the limit, declared: 413
    let big = format!(r#"{{"history": [1], "pad": "{}"}}"#, "x".repeat(MAX_BODY));
    let (status, text) = request("POST", &assign, json_type, &big);
    assert_eq!(status, 413, "{text}");
    let lying = format!(
        "POST {assign} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{json_type}Content-Length: 1000000000000\r\n\r\n{{"
    );
    let (status, text) = raw(lying.as_bytes(), Duration::from_secs(30));
    assert_eq!(status, 413, "{text}");
    // no declared length (chunked): the limit counts the bytes as they come
    let chunk = format!(
        "{{\"history\": [1], \"pad\": \"{}\"}}",
        "x".repeat(MAX_BODY)
    );
    let chunked = format!(
        "POST {assign} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{json_type}Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    let (status, text) = raw(chunked.as_bytes(), Duration::from_secs(30));
    assert_eq!(status, 413, "chunked: {text}");
    // invalid UTF-8 and a lone surrogate
    let body = b"{\"history\": [\xff]}";
    let mut bytes = format!(
        "POST {assign} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{json_type}Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    bytes.extend_from_slice(body);
    let (status, text) = raw(&bytes, Duration::from_secs(30));
    assert_eq!(status, 400, "{text}");
    let (status, text) = request(
        "POST",
        &assign,
        json_type,
        r#"{"history": [1], "x": "\ud800"}"#,
    );
    assert!(matches!(status, 200 | 400 | 422), "{status}: {text}");
    // the server still answers
    let (status, _) = request("GET", "/api/health", "", "");
    assert_eq!(status, 200);
}

/// A client that never finishes its body is answered 408 after [`BODY_TIMEOUT`]; one that never
/// finishes its headers is disconnected after [`HEADER_TIMEOUT`]; many such clients at once do
/// not stop the server answering others.
#[test]
fn slow_clients_do_not_hold_the_server() {
    let addr = addr();
    let assign = format!("/api/runs/{PERPEFT}/assign");
    // many stalled connections: half with unfinished headers, half with unfinished bodies
    let stalled: Vec<TcpStream> = (0..200)
        .map(|i| {
            let mut s = TcpStream::connect(addr).unwrap();
            let head = if i % 2 == 0 {
                "GET /api/health HTTP/1.1\r\nHost: t\r\n".to_string()
            } else {
                format!(
                    "POST {assign} HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{\"history\""
                )
            };
            s.write_all(head.as_bytes()).unwrap();
            s
        })
        .collect();
    // others are still served meanwhile
    let (status, _) = request("GET", "/api/health", "", "");
    assert_eq!(status, 200);
    let clock = Instant::now();
    let limit = HEADER_TIMEOUT.max(BODY_TIMEOUT) + Duration::from_secs(10);
    for (i, mut s) in stalled.into_iter().enumerate() {
        s.set_read_timeout(Some(limit)).unwrap();
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        let text = String::from_utf8_lossy(&out);
        if i % 2 == 1 {
            assert!(
                text.starts_with("HTTP/1.1 408"),
                "body never finished: {text}"
            );
            assert!(
                json_body(&text)["error"]
                    .as_str()
                    .unwrap()
                    .contains("did not arrive")
            );
        } else {
            // hyper closes the connection (with a 408 or without a word)
            assert!(
                text.is_empty() || text.starts_with("HTTP/1.1 408"),
                "headers never finished: {text}"
            );
        }
    }
    // every one of them was let go, long before the read limit
    assert!(clock.elapsed() < limit, "{:?}", clock.elapsed());
    let (status, _) = request("GET", "/api/health", "", "");
    assert_eq!(status, 200);
}
