//! frankenstein's Bot API methods over the sidecar's own reqwest (rustls, no second TLS
//! stack): `POST {api_base}/bot{token}/{method}` with a JSON body, `{"ok": true, "result": …}`
//! or `{"ok": false, "error_code": …, "description": …, "parameters": {"retry_after": …}}`.
//!
//! The token is part of every URL, so no error of this module ever names the URL.

use std::path::PathBuf;
use std::time::Duration;

use frankenstein::AsyncTelegramApi;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The Bot API answered with an error.
    #[error("{code} {description}")]
    Api {
        code: u64,
        description: String,
        /// Seconds to wait before the next request (429 Too Many Requests).
        retry_after: Option<u64>,
    },
    /// No answer: connection refused, reset, timed out.
    #[error("{0}")]
    Network(String),
    /// An answer that is not what the method returns.
    #[error("unexpected answer: {0}")]
    Decode(String),
}

impl Failure {
    /// Editing a message to the text it already has (Telegram refuses it with a 400).
    pub fn is_not_modified(&self) -> bool {
        matches!(self, Failure::Api { code: 400, description, .. }
            if description.contains("message is not modified"))
    }
}

/// The Bot API for one bot: frankenstein's methods (`AsyncTelegramApi`) over reqwest.
pub struct Transport {
    /// `{api_base}/bot{token}`: a secret.
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Transport {
    /// `poll_timeout` is the longest a `getUpdates` waits: the HTTP timeout leaves it room.
    pub fn new(api_base: &str, token: &str, poll_timeout: Duration) -> Transport {
        Transport {
            base: format!("{}/bot{token}", api_base.trim_end_matches('/')),
            token: token.to_string(),
            http: reqwest::Client::builder()
                // A redirect would carry the token's URL to another host.
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(10))
                .timeout(poll_timeout + Duration::from_secs(15))
                .build()
                .expect("a client with timeouts"),
        }
    }

    /// One call, its answer as JSON (`{"ok": true, "result": …}`).
    pub async fn call(
        &self,
        method: &str,
        params: Option<&(impl serde::Serialize + Sync)>,
    ) -> Result<serde_json::Value, Failure> {
        let url = format!("{}/{method}", self.base);
        let mut req = self.http.post(url);
        if let Some(p) = params {
            req = req.json(p);
        }
        let resp = req.send().await.map_err(|e| Failure::Network(words(e)))?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| Failure::Network(words(e)))?;
        decode(status.as_u16(), &body).map_err(|f| match f {
            // A proxy's error may quote the path it was asked for.
            Failure::Api {
                code,
                description,
                retry_after,
            } => Failure::Api {
                code,
                description: description.replace(&self.token, "<token>"),
                retry_after,
            },
            other => other,
        })
    }
}

/// reqwest's words without the URL (it holds the token), with their causes.
fn words(e: reqwest::Error) -> String {
    let e = e.without_url();
    let mut text = e.to_string();
    let mut next = std::error::Error::source(&e);
    while let Some(cause) = next {
        text = format!("{text}: {cause}");
        next = cause.source();
    }
    text
}

/// An answer: its JSON when `ok`, else the error it states (or the status alone: a body
/// that is not the Bot API's is not repeated).
fn decode(status: u16, body: &[u8]) -> Result<serde_json::Value, Failure> {
    let value: serde_json::Value = serde_json::from_slice(body).unwrap_or_default();
    if value["ok"] == serde_json::Value::Bool(true) {
        return Ok(value);
    }
    Err(Failure::Api {
        code: value["error_code"].as_u64().unwrap_or(u64::from(status)),
        description: value["description"]
            .as_str()
            .unwrap_or("(no error description)")
            .chars()
            .take(300)
            .collect(),
        retry_after: value["parameters"]["retry_after"].as_u64(),
    })
}

#[async_trait::async_trait]
impl AsyncTelegramApi for Transport {
    type Error = Failure;

    async fn request<Params, Output>(
        &self,
        method: &str,
        params: Option<Params>,
    ) -> Result<Output, Failure>
    where
        Params: serde::ser::Serialize + std::fmt::Debug + std::marker::Send,
        Output: serde::de::DeserializeOwned,
    {
        // `Params` need not be `Sync`: it is serialized here, before anything awaits.
        let body = params
            .map(|p| serde_json::to_value(p).map_err(|e| Failure::Decode(e.to_string())))
            .transpose()?;
        let answer = self.call(method, body.as_ref()).await?;
        serde_json::from_value(answer).map_err(|e| Failure::Decode(e.to_string()))
    }

    async fn request_with_form_data<Params, Output>(
        &self,
        method: &str,
        _params: Params,
        _files: Vec<(&str, PathBuf)>,
    ) -> Result<Output, Failure>
    where
        Params: serde::ser::Serialize + std::fmt::Debug + std::marker::Send,
        Output: serde::de::DeserializeOwned,
    {
        // The bot never uploads: items are played from the server, not sent to Telegram.
        Err(Failure::Decode(format!("{method}: uploads are not used")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Failure {
        fn is(&self, wanted: u64) -> bool {
            matches!(self, Failure::Api { code, .. } if *code == wanted)
        }
    }

    #[test]
    fn reads_the_bot_apis_answers() {
        let ok = decode(200, br#"{"ok":true,"result":[]}"#).unwrap();
        assert_eq!(ok["result"], serde_json::json!([]));
        let slow = br#"{"ok":false,"error_code":429,"description":"Too Many Requests: retry after 7","parameters":{"retry_after":7}}"#;
        match decode(429, slow) {
            Err(Failure::Api {
                code: 429,
                retry_after: Some(7),
                ..
            }) => {}
            other => panic!("{other:?}"),
        }
        let same = br#"{"ok":false,"error_code":400,"description":"Bad Request: message is not modified: specified new message content and reply markup are exactly the same as a current content and reply markup of the message"}"#;
        assert!(decode(400, same).unwrap_err().is_not_modified());
        let conflict = br#"{"ok":false,"error_code":409,"description":"Conflict: terminated by other getUpdates request; make sure that only one bot instance is running"}"#;
        assert!(decode(409, conflict).unwrap_err().is(409));
        // A proxy's error page: the status is what is known, its words are not repeated.
        let page = decode(502, b"<html>Cannot POST /bot1:secret/getUpdates</html>").unwrap_err();
        assert!(page.is(502));
        assert!(!page.to_string().contains("secret"), "{page}");
    }

    #[tokio::test]
    async fn no_error_names_the_token() {
        // A server that quotes the path it was asked for, in the Bot API's own shape.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let (mut c, _) = listener.accept().await.unwrap();
            let mut buf = vec![0; 4096];
            let n = c.read(&mut buf).await.unwrap();
            let path = String::from_utf8_lossy(&buf[..n])
                .split_whitespace()
                .nth(1)
                .unwrap_or_default()
                .to_string();
            let body = format!(r#"{{"ok":false,"error_code":404,"description":"no {path}"}}"#);
            let answer = format!(
                "HTTP/1.1 404 Not Found\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            c.write_all(answer.as_bytes()).await.unwrap();
        });
        let t = Transport::new(
            &format!("http://127.0.0.1:{port}"),
            "77:very-secret",
            Duration::from_secs(1),
        );
        let e = t.call("getMe", None::<&()>).await.unwrap_err().to_string();
        assert!(e.contains("<token>") && !e.contains("very-secret"), "{e}");
        // Nobody listening: reqwest's words, without the URL.
        let gone = Transport::new(
            "http://127.0.0.1:9",
            "77:very-secret",
            Duration::from_secs(1),
        );
        let e = gone
            .call("getMe", None::<&()>)
            .await
            .unwrap_err()
            .to_string();
        assert!(!e.contains("very-secret"), "{e}");
    }
}
