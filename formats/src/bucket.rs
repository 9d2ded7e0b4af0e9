//! The library in S3-compatible storage (`library.storage = "s3"`): where an item's files
//! are in the bucket, and the credentials file nginx and the sidecar both read.
//!
//! An item's files are `public/<id>/<file>` or `private/<id>/<file>`, by whether it is
//! private: an edge that serves the library from the bucket, with no call home, asks for
//! `public/` on a plain path and for `private/` only once it has checked a signed one, so a
//! private item is never one guess away.

/// The folder of public items' files.
pub const PUBLIC: &str = "public";
/// The folder of private items' files.
pub const PRIVATE: &str = "private";

/// `public` or `private`.
pub fn prefix(private: bool) -> &'static str {
    if private {
        PRIVATE
    } else {
        PUBLIC
    }
}

/// The object key of file `file` (`master.m3u8`, `720p/seg_001.m4s`) of item `id`.
pub fn object_key(private: bool, id: &str, file: &str) -> String {
    format!("{}/{id}/{file}", prefix(private))
}

/// An S3 access key, from a file in the AWS shared-credentials form that Garage, MinIO and
/// the AWS tools write (one profile; `#` and `;` begin comments):
///
/// ```text
/// [default]
/// aws_access_key_id = GK31c2f218a2e44f485b94239e
/// aws_secret_access_key = b892c0665f0ada8a4755dae98baa3b133590e11dae3bcc1f
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches a log.
        f.debug_struct("Credentials")
            .field("access_key_id", &self.access_key_id)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Parses the file's text; an error names the line (1-based) and never quotes a secret.
    pub fn parse(text: &str) -> Result<Credentials, String> {
        let (mut id, mut secret) = (None, None);
        let mut profiles = 0;
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            let at = n + 1;
            if line.starts_with('[') {
                profiles += 1;
                if profiles > 1 {
                    return Err(format!(
                        "line {at}: a second profile; the file holds one key (its first)"
                    ));
                }
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(format!("line {at}: expected \"name = value\""));
            };
            let value = value.trim().trim_matches('"');
            let slot = match key.trim() {
                "aws_access_key_id" => &mut id,
                "aws_secret_access_key" => &mut secret,
                // Others of the form (region, session tokens) belong to other settings.
                _ => continue,
            };
            if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(format!(
                    "line {at}: {} is empty or not one word",
                    key.trim()
                ));
            }
            *slot = Some(value.to_string());
        }
        match (id, secret) {
            (Some(access_key_id), Some(secret_access_key)) => Ok(Credentials {
                access_key_id,
                secret_access_key,
            }),
            (None, _) => Err("no aws_access_key_id".into()),
            (_, None) => Err("no aws_secret_access_key".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_by_privacy() {
        assert_eq!(
            object_key(false, "a1", "master.m3u8"),
            "public/a1/master.m3u8"
        );
        assert_eq!(
            object_key(true, "a1", "720p/s.m4s"),
            "private/a1/720p/s.m4s"
        );
    }

    #[test]
    fn the_aws_form_and_its_mistakes() {
        let c = Credentials::parse(
            "# garage key\n[default]\naws_access_key_id = GK1\naws_secret_access_key=\"s3cr3t\"\nregion = garage\n",
        )
        .unwrap();
        assert_eq!(c.access_key_id, "GK1");
        assert_eq!(c.secret_access_key, "s3cr3t");
        assert!(!format!("{c:?}").contains("s3cr3t"));
        assert_eq!(
            Credentials::parse("aws_access_key_id = a\n").unwrap_err(),
            "no aws_secret_access_key"
        );
        assert_eq!(
            Credentials::parse("aws_access_key_id a\n").unwrap_err(),
            "line 1: expected \"name = value\""
        );
        let e = Credentials::parse("aws_access_key_id = a\naws_secret_access_key = two words\n")
            .unwrap_err();
        assert_eq!(e, "line 2: aws_secret_access_key is empty or not one word");
        assert!(!e.contains("words"));
        assert!(Credentials::parse("[a]\naws_access_key_id=x\n[b]\n")
            .unwrap_err()
            .starts_with("line 3:"));
    }
}
