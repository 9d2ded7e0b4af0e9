//! Public stream names: the part of an RTMP URL and of `/live/<name>/` that anyone may see.

/// Longest stream name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Why a stream name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("stream name is empty")]
    Empty,
    #[error("stream name is longer than {MAX_NAME_LEN} characters")]
    TooLong,
    #[error("stream name may contain only letters, digits, '-' and '_'")]
    BadCharacter,
}

/// Checks a public stream name: 1 to 64 ASCII letters, digits, `-` or `_`.
///
/// The alphabet keeps a name safe as a file name, a URL path segment and a JSON string
/// without any escaping, which is why no other character is allowed.
pub fn check_name(name: &[u8]) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    if !name
        .iter()
        .all(|&c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
    {
        return Err(NameError::BadCharacter);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_alphabet() {
        assert_eq!(check_name(b"alice"), Ok(()));
        assert_eq!(check_name(b"A-z_09"), Ok(()));
        assert_eq!(check_name(&[b'x'; 64]), Ok(()));
    }

    #[test]
    fn refuses_everything_else() {
        assert_eq!(check_name(b""), Err(NameError::Empty));
        assert_eq!(check_name(&[b'x'; 65]), Err(NameError::TooLong));
        for bad in [
            &b"../etc"[..],
            b"a b",
            b"a/b",
            b"a.b",
            b"a\0b",
            b"\xc3\xa9",
            b"a?key=1",
            b"a%2e",
        ] {
            assert_eq!(check_name(bad), Err(NameError::BadCharacter), "{bad:?}");
        }
    }
}
