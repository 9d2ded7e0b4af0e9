//! Asking an S3-compatible bucket for a library file on a viewer's behalf: nginx proxies
//! `/vod/ID/FILE` to a GET of the object, signed with AWS Signature V4 in the query string
//! (a presigned URL), so the bucket needs no public access and no viewer ever sees a key.

use std::time::Duration;

use rusty_s3::{Bucket, S3Action, UrlStyle};
use streamedge_formats::bucket::{object_key, Credentials};

/// How long a signed request stays good: it is made for one request, at once, so this is
/// only room for clocks that disagree. (nginx's error log names the URL of an upstream that
/// fails: short, so such a line is no lasting key to a private file.)
pub const SIGNED_FOR: Duration = Duration::from_secs(120);

/// A bucket and the key that reads it.
pub struct Signer {
    bucket: Bucket,
    credentials: rusty_s3::Credentials,
    /// What the signature covers as the `Host` header: `host` or `host:port`.
    host: String,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("bucket", &self.bucket.name())
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// `endpoint` is the store's URL (`http://127.0.0.1:3900`), with path-style requests
    /// (`/BUCKET/KEY`), which Garage, MinIO and AWS all take.
    pub fn new(
        endpoint: &str,
        bucket: &str,
        region: &str,
        credentials: &Credentials,
    ) -> Result<Signer, String> {
        let url: url::Url = endpoint
            .parse()
            .map_err(|e| format!("invalid endpoint \"{endpoint}\": {e}"))?;
        if url.path() != "/" || url.query().is_some() {
            return Err(format!(
                "invalid endpoint \"{endpoint}\": a scheme, host and port only"
            ));
        }
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_string(),
            (None, _) => return Err(format!("invalid endpoint \"{endpoint}\": no host")),
        };
        let bucket = Bucket::new(url, UrlStyle::Path, bucket.to_string(), region.to_string())
            .map_err(|e| format!("invalid bucket \"{bucket}\": {e}"))?;
        Ok(Signer {
            bucket,
            credentials: rusty_s3::Credentials::new(
                credentials.access_key_id.clone(),
                credentials.secret_access_key.clone(),
            ),
            host,
        })
    }

    /// The `Host` header the signature covers.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The path and query of a signed GET of file `file` of item `id` at `now` (Unix
    /// seconds): `/BUCKET/public/ID/FILE?X-Amz-Algorithm=...`.
    pub fn uri(&self, private: bool, id: &str, file: &str, now: u64) -> String {
        let key = object_key(private, id, file);
        let time = jiff::Timestamp::from_second(now as i64).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let url = self
            .bucket
            .get_object(Some(&self.credentials), &key)
            .sign_with_time(SIGNED_FOR, &time);
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer() -> Signer {
        let c = Credentials::parse("aws_access_key_id = AKIDEXAMPLE\naws_secret_access_key = wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n").unwrap();
        Signer::new("http://127.0.0.1:3900", "library", "garage", &c).unwrap()
    }

    #[test]
    fn a_presigned_get_of_the_items_key() {
        let s = signer();
        assert_eq!(s.host(), "127.0.0.1:3900");
        let uri = s.uri(true, "a1", "720p/index.m3u8", 1_700_000_000);
        let (path, query) = uri.split_once('?').unwrap();
        assert_eq!(path, "/library/private/a1/720p/index.m3u8");
        for part in [
            "X-Amz-Algorithm=AWS4-HMAC-SHA256",
            "X-Amz-Credential=AKIDEXAMPLE%2F20231114%2Fgarage%2Fs3%2Faws4_request",
            "X-Amz-Date=20231114T221320Z",
            "X-Amz-Expires=120",
            "X-Amz-SignedHeaders=host",
        ] {
            assert!(query.contains(part), "{part} in {query}");
        }
        let signature = query.split("X-Amz-Signature=").nth(1).unwrap();
        assert_eq!(signature.len(), 64);
        // Another second, another file, another privacy: another signature.
        assert_ne!(uri, s.uri(true, "a1", "720p/index.m3u8", 1_700_000_001));
        assert!(s
            .uri(false, "a1", "master.m3u8", 1)
            .starts_with("/library/public/a1/master.m3u8?"));
        assert!(!format!("{s:?}").contains("wJalr"));
    }

    #[test]
    fn endpoints_are_a_scheme_and_a_host() {
        let c = Credentials::parse("aws_access_key_id=a\naws_secret_access_key=b\n").unwrap();
        assert!(Signer::new("ftp://x", "b", "r", &c).is_err());
        assert!(Signer::new("http://x/path", "b", "r", &c).is_err());
        assert!(Signer::new("not a url", "b", "r", &c).is_err());
        assert_eq!(
            Signer::new("https://s3.example.net", "b", "r", &c)
                .unwrap()
                .host(),
            "s3.example.net"
        );
    }
}
