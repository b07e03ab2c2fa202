//! A POST whose body is held half-sent until the test releases it, so the
//! request is certainly in flight at a chosen moment (e.g. a SIGTERM),
//! however fast the server would otherwise answer.
use serde_json::Value;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::watch,
    task::JoinHandle,
};

/// Sends the headers and half of `body` to `url` (`http://host:port/path`),
/// waits until `release` is true, sends the rest; `(status, JSON body)`.
pub fn held_post(
    url: &str,
    body: Vec<u8>,
    mut release: watch::Receiver<bool>,
) -> JoinHandle<std::io::Result<(u16, Value)>> {
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (authority, path) = (authority.to_string(), path.to_string());
    tokio::spawn(async move {
        let mut conn = TcpStream::connect(&authority).await?;
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).await?;
        let half = body.len() / 2;
        conn.write_all(&body[..half]).await?;
        conn.flush().await?;
        let _ = release.wait_for(|go| *go).await;
        conn.write_all(&body[half..]).await?;
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).await?;
        Ok(raw_response(&answer))
    })
}

/// The status (0 if none) and JSON body (`Null` if not JSON) of a raw
/// HTTP/1.1 response.
pub fn raw_response(bytes: &[u8]) -> (u16, Value) {
    let text = String::from_utf8_lossy(bytes);
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let json = text
        .split_once("\r\n\r\n")
        .and_then(|(_, b)| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    (status, json)
}
