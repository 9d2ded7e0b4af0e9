//! Telling a webhook how a job ended: a POST of the job's JSON. A job's own webhook URL is
//! checked like a fetch URL when the job is submitted, and again when it is called: its
//! name is resolved by a resolver that refuses private addresses (a name can change in
//! between), a literal address is checked the same way, and redirects are not followed.
//! `fetch.allow_private_addresses` lifts the checks; the owner's `fetch.webhook` is trusted.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

use super::{url, Job};
use crate::config::Fetch;

/// The webhook clients of a manager.
pub struct Webhooks {
    /// For URLs that must lead to the public internet.
    checked: reqwest::Client,
    /// For the owner's `fetch.webhook`, or any URL when private addresses are allowed.
    open: reqwest::Client,
    allow_private: bool,
    configured: Option<String>,
}

/// Resolves names to their addresses only when every one of them is public.
struct PublicOnly;

impl reqwest::dns::Resolve for PublicOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            // Port 0: reqwest puts the URL's port in.
            let addrs = url::public_addrs(&host, 0).await?;
            Ok(Box::new(addrs.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

impl Webhooks {
    pub fn new(fetch: &Fetch) -> Result<Webhooks> {
        let timeout = Duration::from_secs(10);
        let checked = reqwest::Client::builder()
            .timeout(timeout)
            .dns_resolver(Arc::new(PublicOnly))
            // A redirect would go where no check looked, and a proxy would resolve the
            // name itself.
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .context("cannot build an HTTP client")?;
        let open = reqwest::Client::builder()
            .timeout(timeout)
            .build()
            .context("cannot build an HTTP client")?;
        Ok(Webhooks {
            checked,
            open,
            allow_private: fetch.allow_private_addresses,
            configured: fetch.webhook.clone(),
        })
    }

    /// Whether `hook` must lead to the public internet.
    pub fn is_checked(&self, hook: &str) -> bool {
        !self.allow_private && self.configured.as_deref() != Some(hook)
    }

    /// Posts the job to `hook`; the answer's status, or why nothing was sent.
    pub async fn send(&self, hook: &str, job: &Job) -> Result<reqwest::StatusCode> {
        let client = if self.is_checked(hook) {
            let u = url::check(hook)?;
            if let Some(ip) = url::literal_ip(&u) {
                url::check_ip(u.host_str().unwrap_or_default(), ip)?;
            }
            &self.checked
        } else {
            &self.open
        };
        let answer = client.post(hook).json(job).send().await?;
        Ok(answer.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fetch::{Kind, Preset};

    fn job() -> Job {
        Job::queued(
            "x".into(),
            "https://example.org/a".into(),
            Kind::Video,
            Preset::default(),
            None,
        )
    }

    /// A loopback HTTP server that answers 204 and counts the requests it got.
    async fn receiver() -> (u16, Arc<std::sync::atomic::AtomicUsize>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            while let Ok((mut c, _)) = listener.accept().await {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let mut buf = [0u8; 4096];
                let _ = c.read(&mut buf).await;
                let _ = c
                    .write_all(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
                    .await;
            }
        });
        (port, count)
    }

    #[tokio::test]
    async fn private_webhooks_are_not_called() {
        let (port, count) = receiver().await;
        let hooks = Webhooks::new(&Fetch::default()).unwrap();
        for hook in [
            format!("http://127.0.0.1:{port}/hook"),
            format!("http://[::ffff:127.0.0.1]:{port}/hook"),
            // A name: the resolver refuses what it resolves to.
            format!("http://localhost:{port}/hook"),
        ] {
            let e = format!("{:#}", hooks.send(&hook, &job()).await.unwrap_err());
            assert!(e.contains("is a private address"), "{hook}: {e}");
            assert!(e.contains("fetch.allow_private_addresses"), "{hook}: {e}");
        }
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 0);

        // Allowed, or the owner's own fetch.webhook: called.
        let hook = format!("http://localhost:{port}/hook");
        let open = Fetch {
            allow_private_addresses: true,
            ..Fetch::default()
        };
        let owners = Fetch {
            webhook: Some(hook.clone()),
            ..Fetch::default()
        };
        for fetch in [open, owners] {
            let status = Webhooks::new(&fetch).unwrap().send(&hook, &job()).await;
            assert_eq!(status.unwrap(), reqwest::StatusCode::NO_CONTENT);
        }
        assert_eq!(count.load(std::sync::atomic::Ordering::SeqCst), 2);
    }
}
