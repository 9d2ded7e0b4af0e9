//! Errors a caller branches on, and the HTTP status each stands for: the one place where a
//! failure becomes a status. Everything else is an `anyhow` error with its context (a 500 in
//! the API, a message and exit code 1 on the command line).

/// What went wrong, as far as the caller can act on it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No such job, library item or endpoint.
    #[error("{0}")]
    NotFound(String),
    /// The request itself is wrong: a malformed id, URL, body or preset, a private address.
    #[error("{0}")]
    Invalid(String),
    /// The request needs the API token and has not got it.
    #[error("{0}")]
    Unauthorized(String),
    /// Refused whoever asks: a page of another site.
    #[error("{0}")]
    Forbidden(String),
    /// The method does not apply to this endpoint.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// Refused as things stand: already running, already ended.
    #[error("{0}")]
    Conflict(String),
    /// The request body is larger than the API takes.
    #[error("{0}")]
    TooLarge(String),
    /// Full for now: too many at once.
    #[error("{0}")]
    Unavailable(String),
    /// The data directory is below its free-space floor.
    #[error("{0}")]
    NoSpace(String),
    /// Anything else: a fault of this server, not of the request.
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl Error {
    /// The HTTP status of the API's answer.
    pub fn status(&self) -> u16 {
        match self {
            Error::Invalid(_) => 400,
            Error::Unauthorized(_) => 401,
            Error::Forbidden(_) => 403,
            Error::NotFound(_) => 404,
            Error::MethodNotAllowed(_) => 405,
            Error::Conflict(_) => 409,
            Error::TooLarge(_) => 413,
            Error::Unavailable(_) => 503,
            Error::NoSpace(_) => 507,
            Error::Other(_) => 500,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(Error::NotFound("x".into()).status(), 404);
        assert_eq!(Error::NoSpace("x".into()).status(), 507);
        let other = Error::from(anyhow::anyhow!("disk on fire"));
        assert_eq!(
            (other.status(), other.to_string()),
            (500, "disk on fire".into())
        );
    }
}
