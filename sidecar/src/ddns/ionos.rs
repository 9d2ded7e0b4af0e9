//! The IONOS DNS API (`/dns/v1`), both ways it offers: DynDNS (one update URL for a bulk of
//! names) and records (zones, records, update or create). Authenticated by `X-API-Key:
//! <prefix>.<secret>`; errors are JSON arrays of `{code, message}`.

use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

/// How a failed call should be treated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    /// 401/403: the key is wrong or lacks rights; retrying will not help.
    Auth(String),
    /// 429, 5xx, timeouts, refused connections: try again later, more slowly.
    Retry(String),
    /// Anything else (a 400, say): a bug or an unexpected answer.
    Other(String),
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Auth(m) | ApiError::Retry(m) | ApiError::Other(m) => f.write_str(m),
        }
    }
}

#[derive(Deserialize)]
struct Problem {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

/// The message IONOS gave, or the status if the body says nothing usable.
fn describe(status: u16, body: &str) -> String {
    let from_body = serde_json::from_str::<Vec<Problem>>(body)
        .ok()
        .and_then(|ps| {
            let text: Vec<String> = ps
                .iter()
                .map(|p| {
                    if p.message.is_empty() {
                        p.code.clone()
                    } else {
                        p.message.clone()
                    }
                })
                .filter(|m| !m.is_empty())
                .collect();
            (!text.is_empty()).then(|| text.join("; "))
        });
    format!(
        "IONOS answered {status}: {}",
        from_body.unwrap_or_else(|| "no details".into())
    )
}

fn classify(status: u16, body: &str) -> ApiError {
    let m = describe(status, body);
    match status {
        401 | 403 => ApiError::Auth(m),
        429 | 500..=599 => ApiError::Retry(m),
        _ => ApiError::Other(m),
    }
}

/// Sends a request; a 2xx gives the body, anything else a classified error.
async fn send(req: reqwest::RequestBuilder) -> Result<String, ApiError> {
    let resp = req
        .send()
        .await
        .map_err(|e| ApiError::Retry(format!("cannot reach IONOS: {e}")))?;
    let status = resp.status().as_u16();
    let body = resp.text().await.unwrap_or_default();
    if (200..300).contains(&status) {
        Ok(body)
    } else {
        Err(classify(status, &body))
    }
}

pub struct Client {
    base: String,
    key: String,
    http: reqwest::Client,
}

/// A zone as `GET /zones` lists it.
#[derive(Debug, Clone, Deserialize)]
pub struct Zone {
    pub id: String,
    pub name: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Record {
    pub id: String,
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default)]
    pub content: String,
}

#[derive(Deserialize)]
struct ZoneRecords {
    #[serde(default)]
    records: Vec<Record>,
}

/// What `POST /dyndns` returns.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bulk {
    pub bulk_id: String,
    pub update_url: String,
}

impl Client {
    pub fn new(base: &str, key: &str) -> Self {
        Client {
            base: base.trim_end_matches('/').to_string(),
            key: key.to_string(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("a client with a timeout"),
        }
    }

    /// An API call: the key, then the answer checked.
    async fn call(&self, req: reqwest::RequestBuilder) -> Result<String, ApiError> {
        send(
            req.header("X-API-Key", &self.key)
                .header("Accept", "application/json"),
        )
        .await
    }

    fn parse<T: serde::de::DeserializeOwned>(body: &str, what: &str) -> Result<T, ApiError> {
        serde_json::from_str(body)
            .map_err(|e| ApiError::Other(format!("unexpected answer from IONOS ({what}): {e}")))
    }

    pub async fn dyndns_setup(
        &self,
        domains: &[String],
        description: &str,
    ) -> Result<Bulk, ApiError> {
        let body = json!({"domains": domains, "description": description});
        let text = self
            .call(
                self.http
                    .post(format!("{}/dns/v1/dyndns", self.base))
                    .json(&body),
            )
            .await?;
        Self::parse(&text, "dyndns")
    }

    pub async fn dyndns_delete(&self, bulk_id: &str) -> Result<(), ApiError> {
        self.call(
            self.http
                .delete(format!("{}/dns/v1/dyndns/{bulk_id}", self.base)),
        )
        .await
        .map(drop)
    }

    /// A GET of the update URL (it carries its own secret): IONOS takes the address the
    /// request comes from.
    pub async fn dyndns_update(&self, update_url: &str) -> Result<(), ApiError> {
        send(self.http.get(update_url)).await.map(drop)
    }

    pub async fn zones(&self) -> Result<Vec<Zone>, ApiError> {
        let text = self
            .call(self.http.get(format!("{}/dns/v1/zones", self.base)))
            .await?;
        Self::parse(&text, "zones")
    }

    pub async fn records(
        &self,
        zone_id: &str,
        name: &str,
        kind: &str,
    ) -> Result<Vec<Record>, ApiError> {
        let url = format!("{}/dns/v1/zones/{zone_id}", self.base);
        let text = self
            .call(
                self.http
                    .get(url)
                    .query(&[("suffix", name), ("recordType", kind)]),
            )
            .await?;
        let zone: ZoneRecords = Self::parse(&text, "zone records")?;
        Ok(zone
            .records
            .into_iter()
            .filter(|r| r.name == name && r.kind == kind)
            .collect())
    }

    pub async fn update_record(
        &self,
        zone_id: &str,
        record_id: &str,
        addr: IpAddr,
        ttl: u32,
    ) -> Result<(), ApiError> {
        let url = format!("{}/dns/v1/zones/{zone_id}/records/{record_id}", self.base);
        let body = json!({"content": addr.to_string(), "ttl": ttl, "prio": 0, "disabled": false});
        self.call(self.http.put(url).json(&body)).await.map(drop)
    }

    /// Creates records of one type in a zone, `(name, content)` each, in one request; IONOS
    /// answers with the records made, ids included (an empty answer gives none).
    pub async fn create_records(
        &self,
        zone_id: &str,
        kind: &str,
        records: &[(&str, &str)],
        ttl: u32,
    ) -> Result<Vec<Record>, ApiError> {
        let url = format!("{}/dns/v1/zones/{zone_id}/records", self.base);
        let body: Vec<_> = records
            .iter()
            .map(|(name, content)| json!({"name": name, "type": kind, "content": content, "ttl": ttl, "prio": 0, "disabled": false}))
            .collect();
        let text = self.call(self.http.post(url).json(&body)).await?;
        if text.trim().is_empty() {
            return Ok(Vec::new());
        }
        Self::parse(&text, "created records")
    }

    /// Deletes a record; one already gone (404) counts as deleted.
    pub async fn delete_record(&self, zone_id: &str, record_id: &str) -> Result<(), ApiError> {
        let url = format!("{}/dns/v1/zones/{zone_id}/records/{record_id}", self.base);
        let resp = self
            .http
            .delete(url)
            .header("X-API-Key", &self.key)
            .header("Accept", "application/json")
            .send()
            .await
            .map_err(|e| ApiError::Retry(format!("cannot reach IONOS: {e}")))?;
        let status = resp.status().as_u16();
        let body = resp.text().await.unwrap_or_default();
        match status {
            200..=299 | 404 => Ok(()),
            _ => Err(classify(status, &body)),
        }
    }
}

/// A TXT record's text as IONOS gives it back (in quotes) or as it was sent (without).
pub fn txt_text(content: &str) -> &str {
    content
        .strip_prefix('"')
        .and_then(|c| c.strip_suffix('"'))
        .unwrap_or(content)
}

/// The zone a name belongs to: the longest zone name it ends with.
pub fn zone_for<'a>(zones: &'a [Zone], name: &str) -> Option<&'a Zone> {
    zones
        .iter()
        .filter(|z| name == z.name || name.ends_with(&format!(".{}", z.name)))
        .max_by_key(|z| z.name.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_show_the_message_and_are_classified() {
        let body = r#"[{"code":"UNAUTHORIZED","message":"The customer is not authorized to do this operation."}]"#;
        assert_eq!(
            classify(401, body),
            ApiError::Auth(
                "IONOS answered 401: The customer is not authorized to do this operation.".into()
            )
        );
        assert!(
            matches!(classify(429, "[]"), ApiError::Retry(m) if m == "IONOS answered 429: no details")
        );
        assert!(matches!(classify(503, "<html>"), ApiError::Retry(_)));
        assert!(
            matches!(classify(400, r#"[{"code":"INVALID_DATA"}]"#), ApiError::Other(m) if m.ends_with("INVALID_DATA"))
        );
    }

    #[test]
    fn txt_content_loses_its_quotes() {
        assert_eq!(txt_text("\"abc-_1\""), "abc-_1");
        assert_eq!(txt_text("abc"), "abc");
        assert_eq!(txt_text("\""), "\"");
    }

    #[test]
    fn zones_by_longest_suffix() {
        let zones = vec![
            Zone {
                id: "1".into(),
                name: "example.org".into(),
            },
            Zone {
                id: "2".into(),
                name: "home.example.org".into(),
            },
            Zone {
                id: "3".into(),
                name: "ample.org".into(),
            },
        ];
        assert_eq!(zone_for(&zones, "cam.home.example.org").unwrap().id, "2");
        assert_eq!(zone_for(&zones, "www.example.org").unwrap().id, "1");
        assert_eq!(zone_for(&zones, "example.org").unwrap().id, "1");
        assert!(zone_for(&zones, "example.net").is_none());
    }
}
